"""BatteryPowerActor: the first use case — hold a dispatch's power on its batteries.

It receives running-state changes of dispatches of its type(s) from the
DispatchBroadcastingActor, reads each with `decide.read_dispatch` (watts and whole
inverter groups, by the one rule of what a battery request may name), keeps the set
of dispatches running now, and sends one `PowerRequest` per running dispatch
(`decide.dispatch_requests`, carrying the dispatch's id and creation time) to the
PowerManagingActor, which settles overlaps — the newest dispatch drives shared
batteries, the older keeps the rest — and keeps the winner in force. A dispatch that
ends or is retargeted withdraws what it asked; so does one updated to a bad payload or
target (rejected with a log naming the dispatch and the field; the others keep
running) or switched to a dry run — `UseCaseActor`'s rule for every use case. A
dry-run dispatch is logged ("would request") and commands nothing. The distributor's
results come back naming the dispatch that drove.
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import structlog
from frequenz.channels import Receiver, Sender
from frequenz.dispatch import Dispatch
from frequenz.quantities import Power
from typing_extensions import override

from edge_controller.framework.messages import PowerRequest, Result
from edge_controller.framework.use_case_actor import UseCaseActor
from edge_controller.microgrid.graph import BatteryPairs
from edge_controller.use_cases.battery_power.decide import (
    RunningBatteryDispatch,
    dispatch_requests,
    read_dispatch,
)


class BatteryPowerActor(UseCaseActor[RunningBatteryDispatch]):
    """Executes BATTERY_POWER dispatches; see the module docstring.

    No tick: what it asks changes only with its dispatches.
    """

    def __init__(
        self,
        dispatches: Receiver[Dispatch],
        requests: Sender[PowerRequest],
        results: Receiver[Result],
        *,
        pairs: BatteryPairs,
        namespace: str = "battery_power",
        request_timeout: timedelta = timedelta(seconds=5),
        priority: int = 0,
        name: str = "battery_power",
    ) -> None:
        """Wire the actor to its dispatches, the manager's requests and the results."""
        super().__init__(
            dispatches,
            requests,
            results,
            tick=None,
            priority=priority,
            request_timeout=request_timeout,
            name=name,
        )
        self._pairs = pairs
        self._namespace = namespace
        self._sent: dict[int, PowerRequest] = {}
        """What each dispatch last asked, by dispatch id (withdrawn ones removed)."""

    @property
    def driving(self) -> dict[frozenset[int], float]:
        """Battery sets its running dispatches ask for, with the watts asked.

        What they ask, not what runs: the PowerManagingActor decides which of two
        dispatches on the same batteries drives them (their results say which).
        """
        return {r.batteries: r.power.as_watts() for _, r in sorted(self._sent.items())}

    @property
    def running_dispatches(self) -> dict[int, float]:
        """Dispatch ids running now, with the watts each asks (dry runs included)."""
        both = {**self._running, **self._dry_runs}
        return {i: d.target.power_w for i, d in sorted(both.items())}

    @override
    def _read(
        self, dispatch: Dispatch, log: structlog.stdlib.BoundLogger
    ) -> RunningBatteryDispatch:
        target = read_dispatch(dispatch, self._pairs)
        if target.widened:
            log.warning("target_widened_to_inverter", batteries=sorted(target.batteries))
        log.info(
            "dispatch_running",
            power_w=target.power_w,
            batteries=sorted(target.batteries),
            dry_run=dispatch.dry_run,
        )
        if dispatch.dry_run:
            log.info(
                "dry_run_would_request", power_w=target.power_w, batteries=sorted(target.batteries)
            )
        self._count("started")
        return RunningBatteryDispatch(
            int(dispatch.id), dispatch.create_time, target, dispatch.dry_run
        )

    @override
    async def _step(self) -> None:
        """Send what each running dispatch asks now; withdraw what ended or moved."""
        wanted = dispatch_requests(
            self._running.values(),
            namespace=self._namespace,
            priority=self._priority,
            request_timeout=self._request_timeout,
        )
        for dispatch_id, request in wanted.items():
            last = self._sent.get(dispatch_id)
            if last != request:
                await self._send(request)
            # A request replaces its dispatch's overlapping ones at the manager; a set it
            # left entirely is withdrawn.
            if last is not None and not last.batteries & request.batteries:
                await self._send(_withdraw(last))
        for dispatch_id in sorted(self._sent.keys() - wanted.keys()):
            await self._send(_withdraw(self._sent[dispatch_id]))
        self._sent = wanted

    async def _send(self, request: PowerRequest) -> None:
        await self._requests.send(request)
        self._count("requests")
        self._log.info(
            "power_requested",
            dispatch_id=request.origin,
            power_w=request.power.as_watts(),
            batteries=sorted(request.batteries),
            release=request.withdraws,
        )


def _withdraw(request: PowerRequest) -> PowerRequest:
    """Give back what `request` asked: 0 W without bounds, from the same dispatch."""
    return dataclasses.replace(request, power=Power.zero(), bounds=None)
