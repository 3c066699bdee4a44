"""The PowerDistributingActor's sending: what a plan's commands need to reach the site.

`decide()` says what each component should get; getting it there is a concern of its
own, with state that outlives every plan: which value each component holds and when
it needs it again (`power.command_pacing.CommandPacer`), which batteries failed and
for how long they are blocked (`power.status.BlockingTracker`), each component's
resolution, the command lifetime, how many calls may be in flight. The `Commander`
owns all of it, so the actor plans and reports while the commander alone talks to
the Microgrid API::

    Plan ──▶ Commander.send ──▶ set power per inverter/charger (paced, ≤ 64 at once, timed)
                  │                  │
                  │                  └──▶ pacer (held value, keep-alive), blocking (failures)
                  └──▶ Outcome ──▶ Result (Success / PartialFailure)

A failure is the component's, never the round's: a timeout or an API error blocks its
batteries (growing blocking time, `battery_blocked` / `component_blocked`), an
OUT_OF_RANGE refusal does not (`command_out_of_range`: the plan counts it at its
measured power until the next keep-alive). What to release, and when, is the actor's
to decide; `release` only sends it, come what may.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

import structlog
from frequenz.client.microgrid import ApiClientError, OperationOutOfRange
from frequenz.quantities import Power

from edge_controller.common.clock import Clock
from edge_controller.framework.messages import PartialFailure, PowerRequest, Result, Success
from edge_controller.power.command_pacing import CommandPacer
from edge_controller.power.kinds import TargetKind
from edge_controller.power.planning import Plan
from edge_controller.power.status import BlockingTracker

MAX_CONCURRENT_COMMANDS = 64
"""Set-power calls in flight at once: a site of hundreds of inverters is commanded
concurrently without opening hundreds of calls on one connection at the same instant."""

__all__ = ["MAX_CONCURRENT_COMMANDS", "Commander", "Outcome", "PowerSetter", "check_timing"]


class PowerSetter(Protocol):
    """The one call the commander makes on the microgrid connection."""

    async def set_power(
        self, inverter_id: int, power_w: float, *, timeout_s: float, lifetime: timedelta
    ) -> datetime:
        """Command an inverter, EV charger or PV inverter; raise on refusal, error, timeout."""
        ...


def check_timing(command_lifetime: timedelta, keepalive_interval: timedelta) -> None:
    """Refuse a timing under which a command could expire before its keep-alive.

    Raises:
        ValueError: a lifetime outside 10-900 s, or a keep-alive not shorter than it.
    """
    if not timedelta(seconds=10) <= command_lifetime <= timedelta(seconds=900):
        raise ValueError(f"command_lifetime must be 10-900 s, got {command_lifetime}")
    if keepalive_interval >= command_lifetime:
        raise ValueError("keepalive_interval must be shorter than command_lifetime")


@dataclass
class Outcome:
    """What one plan's sending came to: the actor's result and next plan are made from it."""

    succeeded_w: float = 0.0
    failed_w: float = 0.0
    succeeded: frozenset[int] = frozenset()
    failed: frozenset[int] = frozenset()
    blocked: bool = False
    """A command failed by timeout or API error (not a refusal): its batteries are blocked."""
    answered: set[int] = dataclasses.field(default_factory=set)
    """Inverters that took their command."""
    refused: set[int] = dataclasses.field(default_factory=set)
    """Inverters that refused theirs (out of range)."""
    held: int = 0
    """Commands held back: the component holds that value already (`commands_held`)."""

    def result(self, request: PowerRequest, decided: Plan) -> Result:
        """The request's answer: Success when nothing failed, else PartialFailure."""
        excess = Power.from_watts(decided.excess_w)
        if not self.failed:
            return Success(request, Power.from_watts(self.succeeded_w), self.succeeded, excess)
        return PartialFailure(
            request,
            Power.from_watts(self.succeeded_w),
            self.succeeded,
            Power.from_watts(self.failed_w),
            self.failed,
            excess,
        )


class Commander:
    """Sends a plan's commands: paced, concurrent, timed, with failures booked.

    Owns the pacer, the blocking bookkeeping, the resolutions and the command timing;
    the actor reads them through `blocking`, `resolution_w`, `next_due`, `keepalive`
    (never holding the pacer itself: a timing change replaces it).
    """

    def __init__(
        self,
        microgrid: PowerSetter,
        *,
        clock: Clock,
        log: structlog.typing.FilteringBoundLogger,
        resolutions_w: Mapping[int, float] | None = None,
        command_lifetime: timedelta = timedelta(seconds=60),
        keepalive_interval: timedelta = timedelta(seconds=15),
        blocking: BlockingTracker | None = None,
        on_command: Callable[[float, bool], None] | None = None,
    ) -> None:
        """Set up for `microgrid`; `on_command(seconds, ok)` is told how long each call took.

        `log` is the actor's (bound to its name): the commander's events are the actor's.

        Raises:
            ValueError: inconsistent timing (`check_timing`).
        """
        check_timing(command_lifetime, keepalive_interval)
        self._microgrid = microgrid
        self._clock = clock
        self._log = log
        self._resolutions = dict(resolutions_w or {})
        self._lifetime = command_lifetime
        self._keepalive = keepalive_interval
        self._pacer = CommandPacer(keepalive_interval)
        self._blocking = blocking or BlockingTracker()
        self._on_command = on_command

    @property
    def lifetime(self) -> timedelta:
        """How long a command stays in force on the component (the API's lifetime)."""
        return self._lifetime

    @property
    def keepalive(self) -> timedelta:
        """How often a running target is planned again, well within the lifetime."""
        return self._keepalive

    @property
    def blocking(self) -> BlockingTracker:
        """Which batteries failed and until when they are blocked (kept across changes)."""
        return self._blocking

    @property
    def resolutions_w(self) -> Mapping[int, float]:
        """Each component's command resolution (W); 1 W for one not listed."""
        return self._resolutions

    def resolution_w(self, component_id: int) -> float:
        """The component's command resolution (W)."""
        return self._resolutions.get(component_id, 1.0)

    def next_due(self, component_ids: Iterable[int]) -> datetime | None:
        """When the first of `component_ids` needs its command again (`CommandPacer.next_due`)."""
        return self._pacer.next_due(component_ids)

    def reopened(self, component_id: int) -> None:
        """Its stream was re-opened: re-send its command once the pacer lets it."""
        self._pacer.reopened(component_id)

    def reconfigure(
        self,
        *,
        command_lifetime: timedelta,
        keepalive_interval: timedelta,
        resolutions_w: Mapping[int, float] | None = None,
        blocking_initial: timedelta | None = None,
        blocking_max: timedelta | None = None,
    ) -> None:
        """Take new settings; the blocking times of batteries blocked now run on.

        Raises:
            ValueError: inconsistent timing (nothing is changed then).
        """
        check_timing(command_lifetime, keepalive_interval)
        if (command_lifetime, keepalive_interval) != (self._lifetime, self._keepalive):
            # What the inverters hold was sent with the old timing: the pacer cannot
            # tell when it expires, so every command is sent again at the next plan.
            self._pacer = CommandPacer(keepalive_interval)
        self._lifetime, self._keepalive = command_lifetime, keepalive_interval
        if resolutions_w is not None:
            self._resolutions = dict(resolutions_w)
        if blocking_initial is not None:
            self._blocking.initial_block = blocking_initial
        if blocking_max is not None:
            self._blocking.max_block = blocking_max

    async def send(
        self,
        request: PowerRequest,
        decided: Plan,
        batteries_of: Mapping[int, frozenset[int]],
        always: frozenset[int],
    ) -> Outcome:
        """Send the plan's commands that mean something (`command_pacing`), concurrently.

        `batteries_of` names, per commanded component, the request's ids it serves (a
        battery inverter's batteries; an EV charger or PV inverter itself): they are
        what succeeds, fails and is blocked. A component in `always` (a probe, a
        broken unit) gets its command whatever it was last told: its answer is the point.
        Each command has the request's timeout; none raises here.
        """
        timeout_s = request.request_timeout.total_seconds()
        outcome = Outcome()
        now = self._clock.now()
        sending: dict[int, float] = {}
        for inverter_id, power_w in decided.commands.items():
            if (
                inverter_id in always
                or self._pacer.due(inverter_id, power_w, now, self.resolution_w(inverter_id))
                is not None
            ):
                sending[inverter_id] = power_w
                continue
            # It holds this command already (taken within the keep-alive).
            outcome.succeeded_w += power_w
            outcome.succeeded |= batteries_of.get(inverter_id, frozenset())
            outcome.held += 1
        # Timed from acquiring a slot: a queued command does not eat its time-out.
        slots = asyncio.Semaphore(MAX_CONCURRENT_COMMANDS)

        async def one(inverter_id: int, power_w: float) -> tuple[int, float, BaseException | None]:
            async with slots:
                try:
                    await self.set_power(inverter_id, power_w, timeout_s)
                except Exception as error:  # every failure is this inverter's, not the round's
                    return inverter_id, power_w, error
            return inverter_id, power_w, None

        replies = await asyncio.gather(*(one(i, p) for i, p in sending.items()))
        now = self._clock.now()
        for inverter_id, power_w, error in replies:
            batteries = batteries_of.get(inverter_id, frozenset())
            if error is None:
                outcome.answered.add(inverter_id)
                outcome.succeeded_w += power_w
                outcome.succeeded |= batteries
                for battery_id in batteries:
                    self._blocking.succeeded(battery_id)
                continue
            outcome.failed_w += power_w
            outcome.failed |= batteries
            if isinstance(error, OperationOutOfRange):
                self._log.warning("command_out_of_range", inverter=inverter_id, power_w=power_w)
                outcome.refused.add(inverter_id)
                continue
            outcome.blocked = True
            for battery_id in batteries:
                until = self._blocking.failed(battery_id, now)
                if request.target is TargetKind.BATTERIES:
                    self._log.warning(
                        "battery_blocked",
                        battery=battery_id,
                        inverter=inverter_id,
                        until=until.isoformat(),
                        error=type(error).__name__,
                    )
                else:
                    self._log.warning(
                        "component_blocked",
                        component=battery_id,
                        target=request.target.value,
                        until=until.isoformat(),
                        error=type(error).__name__,
                    )
        return outcome

    async def release(self, commands: Mapping[int, float], timeout_s: float) -> None:
        """Send each of `commands` (in id order), come what may: a failure is logged.

        What a release sends (0 W, a PV inverter's full production) is the caller's;
        a component that does not answer is left to its command lifetime.
        """
        for component_id, power_w in sorted(commands.items()):
            try:
                await self.set_power(component_id, power_w, timeout_s)
            except (ApiClientError, TimeoutError, OSError) as error:
                self._log.warning("release_failed", inverter=component_id, error=repr(error))

    async def set_power(self, inverter_id: int, power_w: float, timeout_s: float) -> None:
        """One set-power call, timed for `on_command`; the pacer learns what it holds.

        Raises:
            Exception: whatever the call raised (refusal, API error, timeout); the pacer
                then forgets the component's value: what it holds is not known.
        """
        loop = asyncio.get_running_loop()
        began = loop.time()
        ok = False
        # Its lifetime runs from when the API took it, a little later than this: the
        # keep-alive counted from here comes early, never late.
        issued = self._clock.now()
        try:
            await self._microgrid.set_power(
                inverter_id, power_w, timeout_s=timeout_s, lifetime=self._lifetime
            )
            self._pacer.sent(inverter_id, power_w, issued)
            ok = True
        finally:
            if not ok:
                self._pacer.forget(inverter_id)  # what it holds now is not known
            if self._on_command is not None:
                self._on_command(loop.time() - began, ok)
