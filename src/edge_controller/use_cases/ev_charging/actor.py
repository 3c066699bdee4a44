"""EvChargingActor: holds EV_CHARGING dispatches on the site's EV chargers.

On every dispatch, and every `tick` (what the chargers report may have changed: a car
arrived, left, or the charger faulted), it reads each charger from the telemetry
cache — plugged in or not (its cable state), its bounds, whether it works — and asks
`decide` for each charger's power. It sends one `PowerRequest` per charger whose power
changed (`target=TargetKind.EV_CHARGERS`, held for the dispatch); the distributor
keeps it alive within the charger's bounds and resolution. A charger whose power
falls to 0 W (its car left, its share fell below its minimum) or that no dispatch
drives any more is released with a 0 W withdraw.

With an import limit (`[grid] max_import`) the cars share only the grid's room
(`decide.grid_room_w`, from the grid meter and the chargers' measured power), so the
grid guard need not cut them below their minimums; the guard still holds the limit
should the room be misjudged (a load step between two readings).

Several dispatches: each charger goes to the newest running dispatch whose target
holds it (`decide.charger_owners`, the PowerManagingActor's own rule, which settles
the requests in the end); an older dispatch keeps the rest, its budget shared by the
chargers it still has; the grid's room goes to the newest first. Each request carries
the dispatch that drives the charger (`origin`, `created`); when a charger changes
hands, the new dispatch's request goes first and the old one's is withdrawn.
A bad payload or target is rejected with a log naming the dispatch and the field
(`rejected`) and, if it ran, releases its chargers; a dry-run dispatch is logged
("would request") and commands nothing, and one switched to a dry run releases its
chargers (`UseCaseActor`'s rule for every use case). A stale charger reading counts
as unknown: 0 W, never a guess above it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime, timedelta

import structlog
from frequenz.channels import Receiver, Sender
from frequenz.dispatch import Dispatch
from typing_extensions import override

from edge_controller.common.clock import Clock, WallClock
from edge_controller.framework.messages import PowerRequest, Result, TargetKind
from edge_controller.framework.use_case import GridConfig, SiteView
from edge_controller.framework.use_case_actor import UseCaseActor
from edge_controller.microgrid.site_view import meter_power_w
from edge_controller.microgrid.telemetry import ComponentState, TelemetryCache
from edge_controller.use_cases.ev_charging.decide import (
    ChargerMode,
    ChargerNow,
    RunningEv,
    charger_now,
    decide_all,
    grid_room_w,
)
from edge_controller.use_cases.ev_charging.payload import read_dispatch

NOT_WORKING = frozenset(
    {
        ComponentState.ERROR,
        ComponentState.OFF,
        ComponentState.UNAVAILABLE,
        ComponentState.SWITCHING_OFF,
    }
)
"""States in which a charger follows no command (standby wakes up on one)."""


def read_charger(cache: TelemetryCache, charger_id: int, now: datetime) -> ChargerNow:
    """A charger as its fresh telemetry shows it; unknown (0 W) when stale or missing."""
    reading = cache.ev_charger(charger_id, now)
    if reading is None:
        return ChargerNow(charger_id, plugged=False, bounds=None, working=False)
    return charger_now(
        charger_id,
        reading.cable.car_connected,
        reading.bounds,
        working=reading.state not in NOT_WORKING,
    )


def chargers_power_w(cache: TelemetryCache, chargers: frozenset[int], now: datetime) -> float:
    """What `chargers` take now (W), as their fresh readings say; unknown counts as 0 W."""
    total = 0.0
    for charger_id in chargers:
        reading = cache.ev_charger(charger_id, now)
        if reading is not None and math.isfinite(reading.power_w):
            total += reading.power_w
    return total


class EvChargingActor(UseCaseActor[RunningEv]):
    """Shares EV_CHARGING dispatches among the cars plugged in; see the module docstring."""

    def __init__(
        self,
        dispatches: Receiver[Dispatch],
        requests: Sender[PowerRequest],
        results: Receiver[Result],
        site: SiteView,
        *,
        chargers: frozenset[int],
        grid: GridConfig | None = None,
        min_power_w: float = 0.0,
        tick: timedelta = timedelta(seconds=0.5),
        priority: int = 0,
        clock: Clock | None = None,
        request_timeout: timedelta = timedelta(seconds=5),
        name: str = "ev_charging",
    ) -> None:
        """Drive `chargers` (EV charger ids) from the dispatches received."""
        super().__init__(
            dispatches,
            requests,
            results,
            tick=tick,
            priority=priority,
            request_timeout=request_timeout,
            name=name,
        )
        self._site = site
        self._grid = grid or GridConfig()
        self._chargers = chargers
        self._min_power_w = min_power_w
        self._clock: Clock = clock or WallClock()
        self._sent: dict[int, tuple[int, float]] = {}
        """Each charger it drives: the dispatch and the power last asked (0 W released)."""
        self._modes: dict[int, ChargerMode] = {}
        self._would_request: dict[int, dict[int, float]] = {}
        """What each dry run was last logged to ask per charger."""

    @property
    def driving(self) -> Mapping[frozenset[int], float]:
        """Each charger it holds above 0 W now, with the watts asked."""
        return {frozenset({c}): power_w for c, (_, power_w) in self._sent.items() if power_w > 0}

    @property
    def running_dispatches(self) -> Mapping[int, float]:
        """EV_CHARGING dispatches running now, each with its budget or total asked (W)."""
        return {
            dispatch_id: (
                running.payload.budget_w
                if running.payload.budget_w is not None
                else sum((running.payload.chargers_w or {}).values())
            )
            for dispatch_id, running in sorted({**self._running, **self._dry_runs}.items())
        }

    @property
    def modes(self) -> Mapping[int, ChargerMode]:
        """Why each charger it drives gets what it gets (for the demo and the console)."""
        return dict(self._modes)

    @override
    def _read(self, dispatch: Dispatch, log: structlog.stdlib.BoundLogger) -> RunningEv:
        read = read_dispatch(dispatch, self._chargers)
        log.info(
            "dispatch_running",
            chargers=sorted(read.chargers),
            budget_w=read.payload.budget_w,
            chargers_w=read.payload.chargers_w,
            dry_run=dispatch.dry_run,
        )
        self._count("started")
        return RunningEv(
            int(dispatch.id), dispatch.create_time, read.payload, read.chargers, dispatch.dry_run
        )

    @override
    async def _step(self) -> None:
        """Decide every running dispatch again; send what changed, release the rest."""
        now = self._clock.now()
        cache = self._site.cache
        driven = frozenset().union(*(r.chargers for r in self._running.values()))
        decisions = decide_all(
            [*self._running.values(), *self._dry_runs.values()],
            {c: read_charger(cache, c, now) for c in self._chargers},
            min_power_w=self._min_power_w,
            room_w=self._grid_room_w(now, driven),
        )
        wanted: dict[int, tuple[int, float]] = {}
        modes: dict[int, ChargerMode] = {}
        for dispatch_id, decision in decisions.items():
            if dispatch_id in self._dry_runs:
                if self._would_request.get(dispatch_id) != decision.power_w:
                    self._log.info(
                        "dry_run_would_request", dispatch_id=dispatch_id, power_w=decision.power_w
                    )
                    self._would_request[dispatch_id] = decision.power_w
                continue
            for charger_id, plan in decision.plans.items():
                wanted[charger_id] = (dispatch_id, plan.power_w)
                modes[charger_id] = plan.mode
                if self._modes.get(charger_id) is not plan.mode:
                    self._log.info(
                        "charger_mode",
                        dispatch_id=dispatch_id,
                        charger=charger_id,
                        mode=plan.mode.value,
                        power_w=plan.power_w,
                        grid_limited=decision.grid_limited,
                    )
        self._would_request = {i: p for i, p in self._would_request.items() if i in self._dry_runs}
        sent = self._sent
        changes = {
            c: wanted.get(c)
            for c in set(sent) | {c for c, (_, p) in wanted.items() if p > 0}
            if sent.get(c) != wanted.get(c)
        }

        def power_w(driver: tuple[int, float] | None) -> float:
            return 0.0 if driver is None else driver[1]

        # Decreases first: while the commands land, the chargers together never take
        # more than the old or the new decision gives them, whichever is more.
        for charger_id in sorted(
            changes, key=lambda c: (power_w(changes[c]) > power_w(sent.get(c)), c)
        ):
            new, old = changes[charger_id], sent.get(charger_id)
            if new is not None and new[1] > 0:
                await self._send(charger_id, new[1], new[0])
            if old is not None and (new is None or new[1] <= 0 or new[0] != old[0]):
                await self._send(charger_id, 0.0, old[0])  # its dispatch gives it back
        self._sent = {c: (i, p) for c, (i, p) in wanted.items() if p > 0}
        self._modes = modes

    def _grid_room_w(self, now: datetime, chargers: frozenset[int]) -> float | None:
        """What `chargers` may take together within the import limit, None: no cap."""
        grid_w = meter_power_w(
            self._site.cache, self._site.grid_meter_id, now, self._grid.stale_after
        )
        return grid_room_w(
            self._grid.max_import_w, grid_w, chargers_power_w(self._site.cache, chargers, now)
        )

    async def _send(self, charger_id: int, power_w: float, dispatch_id: int) -> None:
        """Hold `power_w` on one charger for a dispatch; 0 W (no bounds) releases it."""
        await self._requests.send(
            self._power_request(
                power_w,
                frozenset({charger_id}),
                hold=power_w > 0,
                target=TargetKind.EV_CHARGERS,
                origin=dispatch_id,
                created=running.created if (running := self._running.get(dispatch_id)) else None,
            )
        )
        self._count("requests")
        self._log.info(
            "power_requested",
            charger=charger_id,
            power_w=power_w,
            dispatch_id=dispatch_id,
            release=power_w == 0.0,
        )
