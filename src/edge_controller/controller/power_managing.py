"""PowerManagingActor: priorities between use cases, then the grid connection's limits.

The stage between the use cases and the PowerDistributingActor::

    use cases ─PowerRequest(priority)─▶ PowerManagingActor ─PowerRequest─▶ PowerDistributing
                                            ▲ grid meter + battery telemetry

1. **Priorities.** Every use case's latest request per battery set is a proposal;
   proposals for the same set are resolved by `power.priority.resolve` (the nested
   "Matryoshka" scheme: higher priority bounds lower ones; the innermost power wins
   within them). A dispatch-driven use case *holds* its power (`hold=True`): nothing
   below it can change it, so among dispatches the higher priority wins. Peak shaving
   proposes bounds instead ("charge no more than would make a peak"), so a
   lower-priority dispatch still runs within them. A request of 0 W without bounds
   withdraws the use case's proposal — that is how use cases release batteries.
   Proposals for *overlapping but different* sets (`power.overlaps`): the set whose
   best proposal has the higher priority (then the newer) keeps the batteries; the
   other set waits (`proposal_withheld`) and runs again when the overlap is gone —
   except inside a guard that has nothing it must do (peak shaving on the whole site
   with no peak: its bounds allow 0 W): then a dispatch on part of it runs within the
   guard's bounds, the guard's other batteries at 0 W (`running_inside_guard`), until
   the guard has a peak to shave.
2. **Grid limits.** The resolved targets are guarded together by
   `power.grid_guard.guard_targets` against `[grid] max_import / max_export`, from the
   grid meter's fresh power and the targeted batteries' measured power; stale grid data
   (`[grid] stale_after`) sends every target to `safe_power`. Re-evaluated on every
   request and every `tick` (1 s), so a load step is answered within a second; every
   clamp is logged (`grid_limit_clamp`) and counted.
3. Only a changed target (by more than `deadband_w`) is forwarded; the distributor
   keeps it alive. The forwarded request carries the namespace of the use case whose
   power drove it, so that use case gets the distributor's result.

Pure logic lives in `power/priority.py` and `power/grid_guard.py`; this is the shell.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog
from frequenz.channels import Receiver, Sender, select, selected_from
from frequenz.channels.timer import SkipMissedAndDrift, Timer
from frequenz.quantities import Power

from edge_controller.common.clock import Clock, WallClock
from edge_controller.config.schema import GridConfig
from edge_controller.framework.messages import PowerRequest
from edge_controller.framework.supervision import SupervisedActor
from edge_controller.microgrid.graph import BatteryPairs
from edge_controller.microgrid.site_view import meter_power_w, pool_view
from edge_controller.microgrid.telemetry import TelemetryCache
from edge_controller.power.grid_guard import GridLimits, GuardReason, guard_targets
from edge_controller.power.overlaps import settle_overlaps
from edge_controller.power.priority import Proposal


@dataclass(frozen=True, slots=True)
class _Submitted:
    request: PowerRequest
    at: datetime


def _proposal(namespace: str, submitted: _Submitted) -> Proposal:
    request = submitted.request
    power_w = request.power.as_watts()
    if request.bounds is not None:
        bounds = request.bounds
        # A use case whose own bounds exclude its power (rounding, a clamped shave)
        # keeps its power: the bounds widen to include it.
        bounds = type(bounds)(min(bounds.lower, power_w), max(bounds.upper, power_w))
        return Proposal(namespace, request.priority, submitted.at, power_w, bounds)
    return Proposal(namespace, request.priority, submitted.at, power_w, hold=request.hold)


class SiteAccess:
    """What the stage reads: the battery pairing, the telemetry cache, the grid meter."""

    def __init__(self, pairs: BatteryPairs, cache: TelemetryCache, grid_meter_id: int | None):
        """Hold the references (the connection's, read at each decision)."""
        self.pairs = pairs
        self.cache = cache
        self.grid_meter_id = grid_meter_id


class PowerManagingActor(SupervisedActor):
    """Resolves use-case priorities and enforces grid limits; see the module docstring."""

    def __init__(
        self,
        requests: Receiver[PowerRequest],
        distributor: Sender[PowerRequest],
        site: SiteAccess,
        *,
        grid: GridConfig | None = None,
        clock: Clock | None = None,
        tick: timedelta = timedelta(seconds=1),
        deadband_w: float = 50.0,
        name: str = "power_managing",
    ) -> None:
        """Wire the stage between the use cases' requests and the distributor."""
        super().__init__(name=name)
        self._requests = requests
        self._distributor = distributor
        self._site = site
        self._grid = grid or GridConfig()
        self._clock: Clock = clock or WallClock()
        self._tick = tick
        self._deadband_w = deadband_w
        self._proposals: dict[frozenset[int], dict[str, _Submitted]] = {}
        self._forwarded: dict[frozenset[int], PowerRequest] = {}
        self._withheld: set[frozenset[int]] = set()
        self._inside: dict[frozenset[int], frozenset[int]] = {}
        self.counts: dict[str, int] = {}
        """grid clamps by reason, withheld proposals, forwarded requests."""
        self._log = structlog.get_logger(__name__).bind(actor=name)

    @property
    def grid(self) -> GridConfig:
        """The grid limits in force."""
        return self._grid

    async def reconfigure(self, grid: GridConfig) -> None:
        """Take new grid limits (live edit); applied at once."""
        self._grid = grid
        await self._update()

    @property
    def forwarded(self) -> dict[frozenset[int], float]:
        """What the distributor was last asked per battery set (W)."""
        return {b: r.power.as_watts() for b, r in self._forwarded.items()}

    async def _run(self) -> None:
        timer = Timer(self._tick, SkipMissedAndDrift())
        try:
            async for selected in select(self._requests, timer):
                if selected_from(selected, self._requests):
                    self._propose(selected.message)
                    await self._update()
                elif selected_from(selected, timer):
                    await self._update()
        finally:
            timer.close()

    def _count(self, what: str) -> None:
        self.counts[what] = self.counts.get(what, 0) + 1

    def _propose(self, request: PowerRequest) -> None:
        """Record a use case's request; it replaces that use case's overlapping ones.

        A use case's batteries change between requests (a dispatch retargeted, two of
        its dispatches merging): its earlier proposals on overlapping sets are stale
        the moment it asks for something else on any of those batteries.
        """
        self._drop(request.namespace, lambda batteries: bool(batteries & request.batteries))
        if not request.withdraws:
            self._proposals.setdefault(request.batteries, {})[request.namespace] = _Submitted(
                request, self._clock.now()
            )

    def _drop(self, namespace: str, which: Callable[[frozenset[int]], bool]) -> None:
        for batteries in [b for b in self._proposals if which(b)]:
            by_use_case = self._proposals[batteries]
            by_use_case.pop(namespace, None)
            if not by_use_case:
                del self._proposals[batteries]

    async def withdraw(self, namespace: str) -> None:
        """Forget every proposal of `namespace` (a use case removed by a live edit)."""
        self._drop(namespace, lambda _: True)
        await self._update()

    def _resolved(self) -> dict[frozenset[int], tuple[PowerRequest, float]]:
        """Each battery set's winning request and target, overlaps settled by priority."""
        site = self._site
        settled = settle_overlaps(
            {
                batteries: [_proposal(ns, s) for ns, s in by_use_case.items()]
                for batteries, by_use_case in self._proposals.items()
            },
            lambda batteries: pool_view(site.pairs, site.cache, batteries).power_w,
        )
        for batteries in settled.withheld - self._withheld:
            self._count("withheld")
            self._log.warning(
                "proposal_withheld",
                namespaces=sorted(self._proposals[batteries]),
                batteries=sorted(batteries),
                reason="a higher-priority use case holds some of these batteries",
            )
        for batteries, guard in settled.inside.items():
            if self._inside.get(batteries) != guard:
                self._log.info(
                    "running_inside_guard",
                    batteries=sorted(batteries),
                    guard=sorted(guard),
                    guarded_by=sorted(self._proposals[guard]),
                )
        self._withheld = set(settled.withheld)
        self._inside = dict(settled.inside)
        chosen: dict[frozenset[int], tuple[PowerRequest, float]] = {}
        for drive in settled.drives:
            request = self._proposals[drive.source][drive.driven_by].request
            if request.batteries != drive.batteries:
                request = dataclasses.replace(request, batteries=drive.batteries)
            chosen[drive.batteries] = (request, drive.target_w)
        return chosen

    async def _update(self) -> None:
        chosen = self._resolved()
        targets = {b: target for b, (_, target) in chosen.items()}
        grid = self._grid
        if targets and (grid.max_import_w is not None or grid.max_export_w is not None):
            targets = self._guard(targets)
        # Releases first, and only of batteries no chosen set covers: the distributor
        # lets a request take over every overlapping target, so a release of a whole
        # old set would wipe out a new, smaller target on part of it.
        covered = frozenset().union(*chosen) if chosen else frozenset()
        for batteries in [b for b in self._forwarded if b not in chosen]:
            release = self._forwarded.pop(batteries)
            free = batteries - covered
            if free:
                await self._distributor.send(
                    dataclasses.replace(release, power=Power.zero(), batteries=free)
                )
        for batteries, (request, _) in chosen.items():
            target = targets[batteries]
            last = self._forwarded.get(batteries)
            if (
                last is not None
                and last.namespace == request.namespace
                and abs(last.power.as_watts() - target) <= self._deadband_w
                and (target == 0.0) == (last.power.as_watts() == 0.0)
            ):
                continue
            forward = dataclasses.replace(request, power=Power.from_watts(target))
            self._forwarded[batteries] = forward
            self._count("forwarded")
            await self._distributor.send(forward)

    def _guard(self, targets: dict[frozenset[int], float]) -> dict[frozenset[int], float]:
        site = self._site
        now = self._clock.now()
        grid_w = meter_power_w(site.cache, site.grid_meter_id, now, self._grid.stale_after)
        targeted = frozenset().union(*targets)
        battery_w = pool_view(site.pairs, site.cache, targeted).power_w
        bounds = {}
        for batteries in targets:
            view = pool_view(site.pairs, site.cache, batteries)
            if view.bounds is not None:
                bounds[batteries] = view.bounds
        limits = GridLimits(
            self._grid.max_import_w, self._grid.max_export_w, self._grid.safe_power_w
        )
        guarded = guard_targets(limits, grid_w, battery_w, targets, bounds)
        if guarded.reason is GuardReason.GRID_DATA_MISSING:
            self._count("grid_data_missing")
            if guarded.clamped:
                self._log.warning(
                    "grid_data_missing",
                    safe_power_w=self._grid.safe_power_w,
                    stale_after_s=self._grid.stale_after.total_seconds(),
                )
        elif guarded.clamped:
            self._count(f"clamp_{guarded.reason.value}")
            self._log.warning(
                "grid_limit_clamp",
                reason=guarded.reason.value,
                grid_w=grid_w,
                battery_w=None if math.isnan(battery_w) else battery_w,
                proposed_w={str(sorted(b)): t for b, t in targets.items()},
                guarded_w={str(sorted(b)): t for b, t in guarded.targets_w.items()},
                predicted_grid_w=None
                if math.isnan(guarded.predicted_grid_w)
                else guarded.predicted_grid_w,
                **(
                    {
                        "max_import_w": self._grid.max_import_w,
                        "max_export_w": self._grid.max_export_w,
                    }
                ),
            )
        return dict(guarded.targets_w)
