"""PowerManagingActor: priorities between use cases, then the grid connection's limits.

The stage between the use cases and the PowerDistributingActor::

    use cases ─PowerRequest(priority)─▶ PowerManagingActor ─PowerRequest─▶ PowerDistributing
                                            ▲ grid meter + battery telemetry

1. **Priorities.** Every use case's latest request per component set is a proposal;
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
   the guard has a peak to shave. Each kind of target (`PowerRequest.target`:
   batteries, EV chargers, PV inverters) is settled on its own: sets of different
   kinds never overlap, whatever ids they name.
2. **Grid limits.** The resolved targets are guarded together by
   `power.grid_guard.guard_targets` against `[grid] max_import / max_export`, from the
   grid meter's fresh power and the targeted components' measured power — batteries,
   EV chargers and PV inverters alike, each target replacing what its components
   measure (a PV limit looser than what the sun gives now is predicted to change
   nothing). Stale grid data (`[grid] stale_after`) sends every battery target to
   `safe_power` and every EV charger to 0 W, and leaves a PV limit as it is (lifting it
   could break the export limit, tightening it the import limit). Re-evaluated on every
   request and every `tick` (1 s), so a load step is answered within a second; every
   clamp is logged (`grid_limit_clamp`) and counted.
3. Only a changed target (by more than `deadband_w`) is forwarded; the distributor
   keeps it alive. The forwarded request carries the namespace of the use case whose
   power drove it, so that use case gets the distributor's result. Components no set
   holds any more are given back with a withdraw (0 W without bounds: batteries and EV
   chargers to 0 W, PV inverters to full production); a PV target that resolves to
   0 W is forwarded with bounds `[0, 0]`, so it stays a limit ("produce nothing")
   rather than reading as a withdraw.

Pure logic lives in `power/priority.py` and `power/grid_guard.py`; this is the shell.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog
from frequenz.channels import Receiver, Sender, select, selected_from
from frequenz.channels.timer import SkipMissedAndDrift
from frequenz.quantities import Power

from edge_controller.common.clock import Clock, WallClock
from edge_controller.common.compat import Timer
from edge_controller.config.schema import GridConfig
from edge_controller.framework.messages import PowerRequest, TargetKind
from edge_controller.framework.supervision import SupervisedActor
from edge_controller.framework.use_case import SiteView
from edge_controller.microgrid.site_view import meter_power_w, pool_view
from edge_controller.power.bounds import Range, hull
from edge_controller.power.grid_guard import GridLimits, GuardReason, guard_targets
from edge_controller.power.overlaps import settle_overlaps
from edge_controller.power.priority import Proposal


@dataclass(frozen=True, slots=True)
class _Submitted:
    request: PowerRequest
    at: datetime


_Key = tuple[TargetKind, frozenset[int]]
"""A proposal set: what kind of components, and which."""


def _key(request: PowerRequest) -> _Key:
    return request.target, request.components


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


class PowerManagingActor(SupervisedActor):
    """Resolves use-case priorities and enforces grid limits; see the module docstring."""

    def __init__(
        self,
        requests: Receiver[PowerRequest],
        distributor: Sender[PowerRequest],
        site: SiteView,
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
        self._proposals: dict[_Key, dict[str, _Submitted]] = {}
        self._forwarded: dict[_Key, PowerRequest] = {}
        self._withheld: set[_Key] = set()
        self._inside: dict[_Key, _Key] = {}
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
        """What the distributor was last asked per component set (W), every kind."""
        return {ids: r.power.as_watts() for (_, ids), r in self._forwarded.items()}

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
        kind, ids = _key(request)
        self._drop(request.namespace, lambda key: key[0] is kind and bool(key[1] & ids))
        if not request.withdraws:
            self._proposals.setdefault((kind, ids), {})[request.namespace] = _Submitted(
                request, self._clock.now()
            )

    def _drop(self, namespace: str, which: Callable[[_Key], bool]) -> None:
        for key in [k for k in self._proposals if which(k)]:
            by_use_case = self._proposals[key]
            by_use_case.pop(namespace, None)
            if not by_use_case:
                del self._proposals[key]

    async def withdraw(self, namespace: str) -> None:
        """Forget every proposal of `namespace` (a use case removed by a live edit)."""
        self._drop(namespace, lambda _: True)
        await self._update()

    def _resolved(self) -> dict[_Key, tuple[PowerRequest, float]]:
        """Each set's winning request and target, overlaps settled by priority per kind."""
        withheld: set[_Key] = set()
        inside: dict[_Key, _Key] = {}
        chosen: dict[_Key, tuple[PowerRequest, float]] = {}
        for kind in TargetKind:
            sets = {
                ids: [_proposal(ns, s) for ns, s in by_use_case.items()]
                for (of_kind, ids), by_use_case in self._proposals.items()
                if of_kind is kind
            }
            if not sets:
                continue
            settled = settle_overlaps(sets, functools.partial(self._measured_w, kind))
            withheld |= {(kind, ids) for ids in settled.withheld}
            inside |= {(kind, ids): (kind, guard) for ids, guard in settled.inside.items()}
            for drive in settled.drives:
                request = self._proposals[kind, drive.source][drive.driven_by].request
                if request.components != drive.batteries:
                    request = dataclasses.replace(request, batteries=drive.batteries)
                chosen[kind, drive.batteries] = (request, drive.target_w)
        for key in withheld - self._withheld:
            self._count("withheld")
            self._log.warning(
                "proposal_withheld",
                namespaces=sorted(self._proposals[key]),
                batteries=sorted(key[1]),
                target=key[0].value,
                reason="a higher-priority use case holds some of these components",
            )
        for key, guard in inside.items():
            if self._inside.get(key) != guard:
                self._log.info(
                    "running_inside_guard",
                    batteries=sorted(key[1]),
                    guard=sorted(guard[1]),
                    guarded_by=sorted(self._proposals[guard]),
                )
        self._withheld = withheld
        self._inside = inside
        return chosen

    def _measured_w(self, kind: TargetKind, ids: frozenset[int]) -> float:
        """What `ids` measure together now (W, + consumes); NaN when none reported.

        Batteries through their inverters (`pool_view`); an EV charger or a PV inverter
        that never reported counts as 0 W, as a silent battery inverter does.
        """
        site = self._site
        if kind is TargetKind.BATTERIES:
            return pool_view(site.pairs, site.cache, ids).power_w
        powers = [self._direct_power_w(kind, i) for i in sorted(ids)]
        known = [p for p in powers if p is not None]
        return math.fsum(known) if known or not ids else math.nan

    def _direct_power_w(self, kind: TargetKind, component_id: int) -> float | None:
        cache = self._site.cache
        reading = (
            cache.last_ev_charger(component_id)
            if kind is TargetKind.EV_CHARGERS
            else cache.last_inverter(component_id)
        )
        if reading is None or not math.isfinite(reading.power_w):
            return None
        return reading.power_w

    def _bounds(self, kind: TargetKind, ids: frozenset[int]) -> Range | None:
        """What a set will really do, for the grid guard's prediction (W), None if unknown.

        Batteries: their envelope. EV chargers: the sum of what each may take now.
        PV inverters: from what they produce now up to 0 W — a PV inverter produces
        `max(available, limit)`, and what it makes now is the best guess of what the
        sun gives (the next second's measurement corrects it when it was limited).
        """
        site = self._site
        if kind is TargetKind.BATTERIES:
            return pool_view(site.pairs, site.cache, ids).bounds
        lower = upper = 0.0
        for component_id in sorted(ids):
            if kind is TargetKind.PV_INVERTERS:
                produced = self._direct_power_w(kind, component_id)
                if produced is None:
                    return None
                lower += min(produced, 0.0)
                continue
            charger = site.cache.last_ev_charger(component_id)
            if charger is None or not charger.bounds:
                return None
            envelope = hull(charger.bounds)
            if not (math.isfinite(envelope.lower) and math.isfinite(envelope.upper)):
                return None
            lower += min(envelope.lower, 0.0)
            upper += max(envelope.upper, 0.0)
        return Range(lower, upper)

    async def _update(self) -> None:
        chosen = self._resolved()
        targets = {key: target for key, (_, target) in chosen.items()}
        grid = self._grid
        if targets and (grid.max_import_w is not None or grid.max_export_w is not None):
            targets = self._guard(targets)
        # Releases first, and only of components no chosen set covers: the distributor
        # lets a request take over every overlapping target, so a release of a whole
        # old set would wipe out a new, smaller target on part of it. A release is a
        # withdraw (no bounds): for PV inverters it lifts the limit.
        covered = frozenset().union(*(ids for _, ids in chosen)) if chosen else frozenset()
        for key in [k for k in self._forwarded if k not in chosen]:
            release = self._forwarded.pop(key)
            free = key[1] - covered
            if free:
                await self._distributor.send(
                    dataclasses.replace(release, power=Power.zero(), batteries=free, bounds=None)
                )
        for key, (request, _) in chosen.items():
            target = targets[key]
            last = self._forwarded.get(key)
            if (
                last is not None
                and last.namespace == request.namespace
                and abs(last.power.as_watts() - target) <= self._deadband_w
                and (target == 0.0) == (last.power.as_watts() == 0.0)
            ):
                continue
            forward = dataclasses.replace(request, power=Power.from_watts(target))
            if forward.target is TargetKind.PV_INVERTERS and forward.withdraws:
                forward = dataclasses.replace(forward, bounds=Range(0.0, 0.0))
            self._forwarded[key] = forward
            self._count("forwarded")
            await self._distributor.send(forward)

    def _guard(self, targets: dict[_Key, float]) -> dict[_Key, float]:
        site = self._site
        now = self._clock.now()
        grid_w = meter_power_w(site.cache, site.grid_meter_id, now, self._grid.stale_after)
        measured_w = math.fsum(
            self._measured_w(kind, frozenset().union(*(ids for k, ids in targets if k is kind)))
            for kind in {kind for kind, _ in targets}
        )
        bounds = {key: found for key in targets if (found := self._bounds(*key)) is not None}
        safe_w = {
            key: 0.0 if key[0] is TargetKind.EV_CHARGERS else target
            for key, target in targets.items()
            if key[0] is not TargetKind.BATTERIES
        }
        limits = GridLimits(
            self._grid.max_import_w, self._grid.max_export_w, self._grid.safe_power_w
        )
        guarded = guard_targets(limits, grid_w, measured_w, targets, bounds, safe_w)
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
                measured_w=None if math.isnan(measured_w) else measured_w,
                proposed_w={str(sorted(ids)): t for (_, ids), t in targets.items()},
                guarded_w={str(sorted(ids)): t for (_, ids), t in guarded.targets_w.items()},
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
