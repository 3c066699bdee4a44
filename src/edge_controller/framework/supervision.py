"""Restarting crashed actors: exponential backoff with jitter, and a limit.

The SDK's `Actor` restarts a crashed `_run` after a fixed 2 s, with a counter that
never resets (frequenz-sdk #632, #745): a bug that crashes an actor every few seconds
spins forever, and a daemon that crashed twice last month is one crash from giving
up. Here the wait doubles from `initial_s` up to `max_s` (±20 % jitter so actors that
fail together do not retry in lock-step), a run that lasted `healthy_after_s` resets
the count, and past `limit` crashes in a row the actor gives up: the controller then
stops (releasing its batteries) and exits non-zero, so systemd restarts the process
from a clean state.

`RestartTracker` is the pure decision; `SupervisedActor` is the shell that applies
it around `_run`.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from dataclasses import dataclass

import structlog
from typing_extensions import override

from edge_controller.common.compat import ActorWithOwnRestarts


@dataclass(frozen=True, slots=True)
class RestartPolicy:
    """How crashed actors are restarted; see the module docstring."""

    initial_s: float = 1.0
    max_s: float = 60.0
    limit: int = 5
    """Crashes in a row that are restarted; the next one gives up."""
    healthy_after_s: float = 300.0
    jitter: float = 0.2

    def delay_s(self, attempt: int, draw: float) -> float:
        """The wait before restart number `attempt` (1-based); `draw` is uniform in [0, 1)."""
        base = min(self.max_s, self.initial_s * 2.0 ** (attempt - 1))
        return base * (1.0 + self.jitter * (2.0 * draw - 1.0))


@dataclass(slots=True)
class RestartTracker:
    """Counts crashes in a row; decides the next wait or that it is time to give up."""

    policy: RestartPolicy
    crashes: int = 0

    def crashed(self, ran_for_s: float, draw: float) -> float | None:
        """Record a crash after a run of `ran_for_s`; the wait, or None to give up."""
        if ran_for_s >= self.policy.healthy_after_s:
            self.crashes = 0
        self.crashes += 1
        if self.crashes > self.policy.limit:
            return None
        return self.policy.delay_s(self.crashes, draw)


class ActorGaveUpError(RuntimeError):
    """An actor crashed more often in a row than its restart policy allows."""


class SupervisedActor(ActorWithOwnRestarts):
    """An `Actor` whose crashes are restarted under a `RestartPolicy`.

    Replaces the SDK's restart loop (through `common.compat.ActorWithOwnRestarts`: the
    SDK has no hook for it). `on_restart(name, wait_s)` is called for each restart
    (metrics), `on_give_up(name, error)` when the policy is exhausted.
    """

    restart_policy: RestartPolicy = RestartPolicy()
    on_restart: Callable[[str, float], None] | None = None
    on_give_up: Callable[[str, BaseException], None] | None = None

    def supervise(
        self,
        policy: RestartPolicy,
        *,
        on_restart: Callable[[str, float], None] | None = None,
        on_give_up: Callable[[str, BaseException], None] | None = None,
    ) -> None:
        """Set the restart policy and the callbacks (before `start`)."""
        self.restart_policy = policy
        self.on_restart = on_restart
        self.on_give_up = on_give_up

    @override
    async def _restart_loop(self) -> None:
        log = structlog.get_logger(__name__).bind(actor=self.name)
        tracker = RestartTracker(self.restart_policy)
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            try:
                await self._run()
            except asyncio.CancelledError:
                raise
            except Exception as error:
                if self.stopping:
                    log.error("actor_failed_while_stopping", exc_info=True)
                    return
                tracker.policy = self.restart_policy  # a live edit applies to the next crash
                wait_s = tracker.crashed(loop.time() - started, random.random())
                if wait_s is None:
                    log.critical(
                        "actor_gave_up",
                        crashes=tracker.crashes,
                        limit=self.restart_policy.limit,
                        exc_info=True,
                    )
                    if self.on_give_up is not None:
                        self.on_give_up(self.name, error)
                    raise ActorGaveUpError(
                        f"actor {self.name} crashed {tracker.crashes} times in a row"
                    ) from error
                log.error(
                    "actor_crashed",
                    restart_in_s=round(wait_s, 3),
                    crashes=tracker.crashes,
                    limit=self.restart_policy.limit,
                    exc_info=True,
                )
                if self.on_restart is not None:
                    self.on_restart(self.name, wait_s)
                await asyncio.sleep(wait_s)
                continue
            log.info("actor_finished")
            return
