"""UseCaseActor: the loop every dispatched use case runs, written once.

Each use case's actor receives the running-state changes of its dispatches, the
results of the requests it sent and, when it watches the site, a tick. What differs
from one use case to the next is how a running dispatch is read and what is decided;
the loop around them, the end of a dispatch and what a result leaves in the log and
the counts are the same for all, and written here so that they stay the same:

```
dispatches ──┐           running now: _read(dispatch) ─ kept, a dry run aside,  ┐
             │             or rejected; ended: forgotten, `dispatch_stopped`    ├─ then _step()
results ─────┼─ select ─ counted, `power_result` (a warning unless Success); the
             │           manager's word (Overruled, InForce) kept, then _step()
tick ────────┘           ──────────────────────────────────────────────────────── _step()
```

A subclass writes `_read` (read a running dispatch — new or changed — into what it
keeps; a bad payload or target raises `ValueError`, as `PayloadError` does) and
`_step` (decide again from `_running` and what it reads of the site, send what
changed). What becomes of a read is one rule for every use case, here:

- **Only what may command is in `_running`.** A dry run is kept apart, in
  `_dry_runs`, for the use case to say what it would do; it commands nothing, and a
  running dispatch switched to a dry run stops as if it had ended.
- **A bad update stops its dispatch.** A dispatch whose payload or target cannot be
  read is rejected (`dispatch_rejected`, with the field) and forgotten, as if it had
  ended — also when an earlier version of it ran: its author changed it, so what it
  asked before is no longer what anyone wants, and keeping it would command a value
  the dispatch no longer states. The other dispatches keep running.

The steps are idempotent: `_step` runs after every dispatch message, and on every
tick, whether anything changed or not. A use case without a tick (`tick=None`)
decides only when a dispatch changes.

State lives on the actor, not in `_run`: a crash restarts `_run` (`SupervisedActor`)
with the dispatches it knew still running.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar

import structlog
from frequenz.channels import Receiver, Sender, select, selected_from
from frequenz.channels.timer import SkipMissedAndDrift
from frequenz.dispatch import Dispatch
from frequenz.quantities import Power

from edge_controller.common.compat import Timer
from edge_controller.dispatching.schedule import running_now
from edge_controller.framework.messages import (
    InForce,
    Overruled,
    PowerRequest,
    Result,
    Success,
    TargetKind,
)
from edge_controller.framework.supervision import SupervisedActor
from edge_controller.power.bounds import Range

RunningT = TypeVar("RunningT")
"""What a use case keeps of each dispatch running now (its threshold, its limit, …)."""


class UseCaseActor(SupervisedActor, Generic[RunningT]):
    """A use case's actor: its dispatches in, its requests out; see the module docstring.

    `counts` holds its events for `/metrics`: `evaluations` (each `_step`), `stopped`,
    `rejected`, `result_<kind>` here, and what the subclass counts (`started`, `requests`, …).
    """

    def __init__(
        self,
        dispatches: Receiver[Dispatch],
        requests: Sender[PowerRequest],
        results: Receiver[Result],
        *,
        tick: timedelta | None,
        priority: int,
        request_timeout: timedelta,
        name: str,
    ) -> None:
        """Wire the use case to its dispatches, the manager's requests and its results."""
        super().__init__(name=name)
        self._dispatches = dispatches
        self._requests = requests
        self._results = results
        self._tick = tick
        self._priority = priority
        self._request_timeout = request_timeout
        self._running: dict[int, RunningT] = {}
        """What each dispatch that may command asks, by dispatch id."""
        self._dry_runs: dict[int, RunningT] = {}
        """What each dry-run dispatch would ask, by dispatch id: never commanded."""
        self._overruled: dict[tuple[TargetKind, frozenset[int], int | None], Overruled] = {}
        """The manager's word on each request of this use case it overrules, by what the
        request names (kind, ids, dispatch); gone once it runs again."""
        self.counts: dict[str, int] = {}
        self._log: structlog.stdlib.BoundLogger = structlog.get_logger(type(self).__module__).bind(
            actor=name
        )

    @property
    def tick(self) -> timedelta | None:
        """How often it decides again without a dispatch message; None: only on one."""
        return self._tick

    @abc.abstractmethod
    def _read(self, dispatch: Dispatch, log: structlog.stdlib.BoundLogger) -> RunningT:
        """Read a dispatch that runs now (new or changed, dry run or not) into what is kept.

        `log` is bound to the dispatch (its id and type); log here what the use case
        reads of it. What becomes of the read is the base's rule (module docstring).

        Raises:
            ValueError: a bad payload or target (a `PayloadError` names the field); the
                dispatch is rejected and stops.
        """

    @abc.abstractmethod
    async def _step(self) -> None:
        """Decide again from `_running` and the site; send only what changed."""

    def _in_force(self) -> Mapping[str, object]:
        """What a `dispatch_stopped` log adds: what is in force now that it ended."""
        return {}

    def _power_request(
        self,
        power_w: float,
        components: frozenset[int],
        *,
        hold: bool,
        bounds: Range | None = None,
        target: TargetKind = TargetKind.BATTERIES,
        origin: int | None = None,
        created: datetime | None = None,
    ) -> PowerRequest:
        """A request in this use case's name, with its priority and command timeout.

        `power_w` in W, passive sign convention (+ charges / consumes); the one place
        a use case's watts become a `Power`. Every request of a use case shares its
        namespace, so the manager's result comes back to it.
        """
        return PowerRequest(
            self.name,
            Power.from_watts(power_w),
            components,
            request_timeout=self._request_timeout,
            priority=self._priority,
            hold=hold,
            bounds=bounds,
            target=target,
            origin=origin,
            created=created,
        )

    def _count(self, what: str) -> None:
        self.counts[what] = self.counts.get(what, 0) + 1

    def _reject(self, log: structlog.stdlib.BoundLogger, error: ValueError) -> None:
        """Log and count a dispatch that cannot run; the others keep running."""
        log.error("dispatch_rejected", reason=str(error), field=getattr(error, "field", None))
        self._count("rejected")

    def _stop(self, dispatch_id: int, log: structlog.stdlib.BoundLogger, **why: object) -> None:
        """Forget a dispatch that ran; it commands nothing from the next step on."""
        for at in [at for at in self._overruled if at[2] == dispatch_id]:
            del self._overruled[at]
        if self._running.pop(dispatch_id, None) is not None:
            self._count("stopped")
            log.info("dispatch_stopped", **why, **self._in_force())

    async def _run(self) -> None:
        timer = None if self._tick is None else Timer(self._tick, SkipMissedAndDrift())
        receivers: list[Receiver[Any]] = [self._dispatches, self._results]
        if timer is not None:
            receivers.append(timer)
        try:
            async for selected in select(*receivers):
                if selected_from(selected, self._dispatches):
                    await self._on_dispatch(selected.message)
                    await self._evaluate()
                elif selected_from(selected, self._results):
                    if self._on_result(selected.message):
                        await self._evaluate()
                elif timer is not None and selected_from(selected, timer):
                    await self._evaluate()
        finally:
            if timer is not None:
                timer.close()

    async def _evaluate(self) -> None:
        """Decide again, counted: `evaluations` shows the loop turning (a test waits on it)."""
        await self._step()
        self._count("evaluations")

    async def _on_dispatch(self, dispatch: Dispatch) -> None:
        """Keep a running dispatch, forget an ended, rejected or dry-run one.

        The module docstring's rule; the step that follows acts on it. A coroutine,
        although nothing here waits: what replaces it may (the crash tests put a
        raising coroutine in its place, `tests/daemon`, `tests/reliability`).
        """
        dispatch_id = int(dispatch.id)
        log = self._log.bind(dispatch_id=dispatch_id, type=dispatch.type)
        if not running_now(dispatch):
            self._dry_runs.pop(dispatch_id, None)
            self._stop(dispatch_id, log, reason="ended", deleted=dispatch.deleted)
            return
        try:
            read = self._read(dispatch, log)
        except ValueError as error:
            self._reject(log, error)
            self._dry_runs.pop(dispatch_id, None)
            self._stop(dispatch_id, log, reason="rejected")
            return
        if dispatch.dry_run:
            self._dry_runs[dispatch_id] = read
            log.info("dispatch_dry_run")
            self._stop(dispatch_id, log, reason="dry_run")
            return
        self._dry_runs.pop(dispatch_id, None)
        self._running[dispatch_id] = read

    def overruled(
        self, target: TargetKind, components: frozenset[int], origin: int | None = None
    ) -> Overruled | None:
        """What the manager said of this use case's request on `components`, if it overrules it.

        Its latest word: a higher-ranked proposal leaves the request the range in it
        (or none, `allowed=None`: its set waits). `None`: it runs as asked, as far as
        the manager knows — the default, for the manager speaks only of an overrule.
        """
        return self._overruled.get((target, components, origin))

    def _forget_overruled(
        self, target: TargetKind, components: frozenset[int], origin: int | None = None
    ) -> None:
        """Drop the manager's word on a request this use case withdrew (it asks nothing now)."""
        self._overruled.pop((target, components, origin), None)

    def _on_result(self, result: Result) -> bool:
        """Count and log a result; keep the manager's word. True: decide again on it.

        The distributor's results report what was done and change nothing a use case
        decides from; the manager's word (`Overruled`, `InForce`) changes what it knows
        of its own requests, so it decides again at once rather than at its next tick.
        """
        kind = type(result).__name__
        self._count(f"result_{kind}")
        dispatch_id = result.request.origin
        request = result.request
        at = (request.target, request.components, request.origin)
        if isinstance(result, Overruled):
            self._overruled[at] = result
            allowed = result.allowed
            self._log.info(
                "power_overruled",
                dispatch_id=dispatch_id,
                components=sorted(request.components),
                asked_w=request.power.as_watts(),
                allowed_w=None if allowed is None else [allowed.lower, allowed.upper],
            )
            return True
        if isinstance(result, InForce):
            self._overruled.pop(at, None)
            self._log.info(
                "power_in_force", dispatch_id=dispatch_id, components=sorted(request.components)
            )
            return True
        if isinstance(result, Success):
            self._log.debug("power_result", result=kind, dispatch_id=dispatch_id)
        else:
            self._log.warning(
                "power_result", result=kind, dispatch_id=dispatch_id, detail=repr(result)
            )
        return False
