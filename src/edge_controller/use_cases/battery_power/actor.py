"""BatteryPowerActor: the first use case — hold a dispatch's power on its batteries.

It receives running-state changes of dispatches of its type(s) from the
DispatchBroadcastingActor, reads each with `decide.read_dispatch` (watts and whole
inverter groups), keeps the set of dispatches running now, lets
`dispatching.ownership.assign` decide which dispatch drives which battery (the newest
wins an overlap; both ids are logged), and sends one `PowerRequest` per owned battery
set to the PowerDistributingActor, which keeps it in force. Batteries that nobody owns
any more are released with 0 W. A dry-run dispatch is logged ("would request") and
commands nothing. A bad payload or target is rejected with a log naming the dispatch
and the field; the other dispatches keep running.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import timedelta

import structlog
from frequenz.channels import Receiver, Sender, select, selected_from
from frequenz.dispatch import Dispatch
from frequenz.quantities import Power

from edge_controller.dispatching.ownership import RunningDispatch, assign
from edge_controller.dispatching.payload import PayloadError
from edge_controller.dispatching.schedule import running_now
from edge_controller.framework.messages import PowerRequest, Result, Success
from edge_controller.framework.supervision import SupervisedActor
from edge_controller.use_cases.battery_power.decide import TargetError, read_dispatch


class BatteryPowerActor(SupervisedActor):
    """Executes BATTERY_POWER dispatches; see the module docstring."""

    def __init__(
        self,
        dispatches: Receiver[Dispatch],
        requests: Sender[PowerRequest],
        results: Receiver[Result],
        *,
        site_batteries: Iterable[int],
        battery_groups: Mapping[int, frozenset[int]] | None = None,
        namespace: str = "battery_power",
        request_timeout: timedelta = timedelta(seconds=5),
        priority: int = 0,
        name: str = "battery_power",
    ) -> None:
        """Wire the actor to its dispatches, the distributor's requests and results."""
        super().__init__(name=name)
        self._dispatches = dispatches
        self._requests = requests
        self._results = results
        self._site_batteries = frozenset(site_batteries)
        # Batteries sharing an inverter move together: a dispatch that names one of
        # them drives the whole group, so ownership never splits an inverter.
        self._groups = dict(battery_groups or {})
        self._namespace = namespace
        self._request_timeout = request_timeout
        self._priority = priority
        self._running: dict[int, RunningDispatch] = {}
        self._driving: dict[frozenset[int], tuple[int, float]] = {}
        self.counts: dict[str, int] = {}
        self._log = structlog.get_logger(__name__).bind(actor=name)

    @property
    def driving(self) -> dict[frozenset[int], float]:
        """Battery sets this actor holds a target on now, with the watts asked."""
        return {batteries: power_w for batteries, (_, power_w) in self._driving.items()}

    @property
    def running_dispatches(self) -> dict[int, float]:
        """Dispatch ids running now, with the watts each asks (dry runs included)."""
        return {i: d.power_w for i, d in self._running.items()}

    async def _run(self) -> None:
        async for selected in select(self._dispatches, self._results):
            if selected_from(selected, self._dispatches):
                await self._on_dispatch(selected.message)
            elif selected_from(selected, self._results):
                self._on_result(selected.message)

    def _count(self, what: str) -> None:
        self.counts[what] = self.counts.get(what, 0) + 1

    async def _on_dispatch(self, dispatch: Dispatch) -> None:
        dispatch_id = int(dispatch.id)
        log = self._log.bind(dispatch_id=dispatch_id, type=dispatch.type)
        if not running_now(dispatch):
            if self._running.pop(dispatch_id, None) is not None:
                log.info("dispatch_stopped", deleted=dispatch.deleted)
                self._count("stopped")
            await self._apply()
            return
        try:
            target = read_dispatch(dispatch, self._site_batteries, self._groups)
        except (PayloadError, TargetError) as error:
            log.error("dispatch_rejected", reason=str(error))
            self._count("rejected")
            if self._running.pop(dispatch_id, None) is not None:
                await self._apply()
            return
        if target.widened:
            log.warning("target_widened_to_inverter", batteries=sorted(target.batteries))
        self._running[dispatch_id] = RunningDispatch(
            dispatch_id, dispatch.create_time, target.batteries, target.power_w, dispatch.dry_run
        )
        log.info(
            "dispatch_running",
            power_w=target.power_w,
            batteries=sorted(target.batteries),
            dry_run=dispatch.dry_run,
        )
        self._count("started")
        await self._apply()

    async def _apply(self) -> None:
        """Send what the running dispatches now ask; release what nobody owns."""
        assignment = assign(self._running.values())
        for conflict in assignment.conflicts:
            self._log.warning(
                "dispatch_conflict",
                winner=conflict.winner,
                loser=conflict.loser,
                batteries=sorted(conflict.batteries),
                rule="the newest running dispatch drives the shared batteries",
            )
        wanted: dict[frozenset[int], tuple[int, float]] = {}
        for dispatch_id, batteries in assignment.owned.items():
            dispatch = self._running[dispatch_id]
            if dispatch.dry_run:
                self._log.info(
                    "dry_run_would_request",
                    dispatch_id=dispatch_id,
                    power_w=dispatch.power_w,
                    batteries=sorted(batteries),
                )
                continue
            wanted[batteries] = (dispatch_id, dispatch.power_w)
        owned_now = frozenset().union(*wanted) if wanted else frozenset()
        released = frozenset().union(*self._driving) - owned_now if self._driving else frozenset()
        for batteries, (dispatch_id, power_w) in wanted.items():
            if self._driving.get(batteries) != (dispatch_id, power_w):
                await self._send(batteries, power_w, dispatch_id)
        if released:
            await self._send(released, 0.0, None)
        self._driving = wanted

    async def _send(
        self, batteries: frozenset[int], power_w: float, dispatch_id: int | None
    ) -> None:
        await self._requests.send(
            PowerRequest(
                self._namespace,
                Power.from_watts(power_w),
                batteries,
                request_timeout=self._request_timeout,
                priority=self._priority,
            )
        )
        self._count("requests")
        self._log.info(
            "power_requested",
            dispatch_id=dispatch_id,
            power_w=power_w,
            batteries=sorted(batteries),
            release=dispatch_id is None,
        )

    def _on_result(self, result: Result) -> None:
        kind = type(result).__name__
        self._count(f"result_{kind}")
        if isinstance(result, Success):
            self._log.debug("power_result", result=kind)
        else:
            self._log.warning("power_result", result=kind, detail=repr(result))
