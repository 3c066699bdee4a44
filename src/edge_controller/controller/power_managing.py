"""PowerManagingActor: priorities between use cases, then the grid connection's limits.

The stage between the use cases and the PowerDistributingActor::

    use cases ─PowerRequest(priority)─▶ PowerManagingActor ─PowerRequest─▶ PowerDistributing
                                            ▲ grid meter + battery telemetry

1. **Priorities — the one place overlaps are settled.** Every proposer's latest
   request per component set is a proposal; a proposer is a use case's namespace and,
   for a request that carries out a dispatch, that dispatch (`PowerRequest.origin`,
   with its creation time `created`): a use case sends one request per running
   dispatch and lets this stage decide. Proposals rank by priority, then the newest
   (a dispatch counts from its creation, any other proposal from its first request
   on that set, not its latest), then the higher dispatch id (`power.priority.rank`).
   Proposals for the same set are resolved by `power.priority.resolve` (the nested
   "Matryoshka" scheme: the higher-ranked bound the lower ones; the innermost power
   wins within them). A dispatch *holds* its
   power (`hold=True`): nothing below it can change it, so among dispatches the
   higher priority, then the newest, wins. Peak shaving proposes bounds instead
   ("charge no more than would make a peak"), so a lower-priority dispatch still runs
   within them. A request of 0 W without bounds withdraws its proposer's proposal —
   that is how use cases release components. Proposals for *overlapping but
   different* sets (`power.overlaps`): the set whose best proposal ranks higher takes
   its components; a set of held powers (dispatches) keeps those left to it
   (`proposal_reduced`: the newest dispatch drives the shared batteries, the older the
   rest, and all of them again when the newer ends); any other set waits
   (`proposal_withheld`) and runs again when the overlap is gone — except inside a
   guard that has nothing it must do (peak shaving on the whole site with no peak:
   its bounds allow 0 W): then a dispatch on part of it runs within the guard's
   bounds, the guard's other batteries at 0 W (`running_inside_guard`), until the
   guard has a peak to shave (batteries only: for a PV inverter 0 W means "produce
   nothing", for an EV charger "stop charging", so there the other set waits).
   Every held power that loses components is logged with both proposers
   (`proposal_conflict`). Each kind of target (`PowerRequest.target`:
   batteries, EV chargers, PV inverters) is settled on its own: sets of different
   kinds never overlap, whatever ids they name. `settle` is this rule, pure.
2. **Grid limits.** The resolved targets are guarded together by
   `power.grid_guard.guard_targets` against `[grid] max_import / max_export`, from the
   grid meter's fresh power and the targeted components' measured power — batteries,
   EV chargers and PV inverters alike, each target replacing what its components
   measure (a PV limit looser than what the sun gives now is predicted to change
   nothing). The guard may use a battery set's whole envelope, but an EV charge or a
   PV limit is a dispatch's budget: it only ever cuts an EV charge (between 0 W and
   its target) and only ever tightens a PV limit (`_bounds`). Stale grid data
   (`[grid] stale_after`) sends every battery target to `safe_power` and every EV
   charger to 0 W, and leaves a PV limit as it is (lifting it could break the export
   limit, tightening it the import limit). Re-evaluated on every
   request and every `tick` (1 s), so a load step is answered within a second; every
   clamp is logged (`grid_limit_clamp`) and counted.
3. Only a changed target (by more than `deadband_w`) is forwarded; the distributor
   keeps it alive. The forwarded request is the credited proposer's (its namespace
   and origin; its ids narrowed to the set it drives) — the holder when a power is
   held, else the innermost proposal with a power — so that proposer gets the
   distributor's result. Forwarded sets never overlap within a kind. Components no set
   holds any more are given back with a withdraw (0 W without bounds: batteries and EV
   chargers to 0 W, PV inverters to full production); a PV target that resolves to
   0 W is forwarded with bounds `[0, 0]`, so it stays a limit ("produce nothing")
   rather than reading as a withdraw.

Pure logic lives in `settle` (over `power/priority.py` and `power/overlaps.py`) and
`power/grid_guard.py`; the actor is the shell.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import structlog
from frequenz.channels import Receiver, Sender, select, selected_from
from frequenz.channels.timer import SkipMissedAndDrift
from frequenz.quantities import Power

from edge_controller.common.clock import Clock, WallClock
from edge_controller.common.compat import Timer
from edge_controller.framework.messages import (
    InForce,
    Overruled,
    PowerRequest,
    Result,
    TargetKind,
)
from edge_controller.framework.supervision import SupervisedActor
from edge_controller.framework.use_case import GridConfig, SiteView
from edge_controller.microgrid.site_view import meter_power_w, pool_view
from edge_controller.power.bounds import Range, hull
from edge_controller.power.grid_guard import GridLimits, GuardReason, guard_targets
from edge_controller.power.overlaps import settle_overlaps
from edge_controller.power.priority import Proposal

Key = tuple[TargetKind, frozenset[int]]
"""A proposal set: what kind of components, and which."""

Proposer = tuple[str, int | None]
"""Who proposes: a use case's namespace, and the dispatch (its id) the request carries."""


def _by_key(at: tuple[Key, Proposer]) -> tuple[str, list[int], str]:
    (kind, ids), proposer = at
    return kind.value, sorted(ids), proposer_name(proposer)


def _by_proposal(item: tuple[tuple[Key, Proposer], object]) -> tuple[str, list[int], str]:
    return _by_key(item[0])


def key_of(request: PowerRequest) -> Key:
    """The set a request proposes for."""
    return request.target, request.components


def proposer_of(request: PowerRequest) -> Proposer:
    """Who a request is from: its namespace and origin."""
    return request.namespace, request.origin


def proposer_name(proposer: Proposer) -> str:
    """`namespace`, or `namespace#origin` for a dispatch: a proposal's name, in logs too."""
    namespace, origin = proposer
    return namespace if origin is None else f"{namespace}#{origin}"


@dataclass(frozen=True, slots=True)
class Submitted:
    """A use case's request as the manager holds it: with the time it arrived."""

    request: PowerRequest
    at: datetime


def proposal_of(submitted: Submitted) -> Proposal:
    """The request as `power.priority` ranks it.

    It counts from its dispatch's creation (`PowerRequest.created`), else from when it
    arrived. A held power is held whatever bounds it carries (a dispatch of 0 W
    carries [0, 0] so as not to read as a withdraw); bounds that exclude a request's
    own power (rounding, a clamped shave) widen to include it, so the use case keeps
    its power.
    """
    request = submitted.request
    name = proposer_name(proposer_of(request))
    since = submitted.at if request.created is None else request.created
    power_w = request.power.as_watts()
    if request.bounds is not None and not request.hold:
        bounds = request.bounds
        bounds = type(bounds)(min(bounds.lower, power_w), max(bounds.upper, power_w))
        return Proposal(name, request.priority, since, power_w, bounds, origin=request.origin)
    return Proposal(
        name, request.priority, since, power_w, hold=request.hold, origin=request.origin
    )


@dataclass(frozen=True, slots=True)
class Conflict:
    """A held power that does not run on some of its components: another proposal drives them."""

    winner: Proposer
    loser: Proposer
    kind: TargetKind
    components: frozenset[int]


@dataclass(frozen=True, slots=True)
class Settled:
    """What the manager forwards, before the grid guard: one request per driven set.

    `drives` maps each driven set (disjoint within a kind) to the credited request —
    its ids narrowed to that set — and the target (W); `withheld` the sets that wait;
    `inside` each set running inside a yielding guard to the guard's set; `reduced`
    each held set that drives only part of its components to that part; `conflicts`
    every held power that lost components, and to whom; `overruled` each proposal that
    does not run as it asked (`power.overlaps.Settlement.overruled`), with its request
    and the range left to it (`None`: its set waits).
    """

    drives: Mapping[Key, tuple[PowerRequest, float]]
    withheld: frozenset[Key] = frozenset()
    inside: Mapping[Key, Key] = field(default_factory=dict)
    reduced: Mapping[Key, Key] = field(default_factory=dict)
    conflicts: tuple[Conflict, ...] = ()
    overruled: Mapping[tuple[Key, Proposer], tuple[PowerRequest, Range | None]] = field(
        default_factory=dict
    )


def settle(
    submitted: Iterable[Submitted],
    power_w: Callable[[TargetKind, frozenset[int]], float] = lambda kind, ids: 0.0,
) -> Settled:
    """Every proposal at once, settled: priorities per set, overlaps per kind.

    The manager's one rule, pure (`power.priority`, `power.overlaps`): the actor
    applies it on every request and tick, the scenario (`tools/scenario`) to the
    requests its dispatches make. A proposer's sets do not overlap (the actor keeps
    its latest request only: `_propose`).
    `power_w(kind, ids)` is what those components measure together now (W, NaN if
    unknown), for a set running inside a guard.
    """
    by_key: dict[Key, dict[str, Submitted]] = {}
    for each in submitted:
        by_key.setdefault(key_of(each.request), {})[proposer_name(proposer_of(each.request))] = each
    drives: dict[Key, tuple[PowerRequest, float]] = {}
    withheld: set[Key] = set()
    inside: dict[Key, Key] = {}
    reduced: dict[Key, Key] = {}
    conflicts: list[Conflict] = []
    overruled: dict[tuple[Key, Proposer], tuple[PowerRequest, Range | None]] = {}
    for kind in TargetKind:
        named = {ids: by_name for (of_kind, ids), by_name in by_key.items() if of_kind is kind}
        if not named:
            continue
        settled = settle_overlaps(
            {ids: [proposal_of(s) for s in by_name.values()] for ids, by_name in named.items()},
            functools.partial(power_w, kind),
            guards_yield=kind is TargetKind.BATTERIES,
        )
        withheld |= {(kind, ids) for ids in settled.withheld}
        inside |= {(kind, ids): (kind, guard) for ids, guard in settled.inside.items()}
        reduced |= {(kind, ids): (kind, part) for ids, part in settled.reduced.items()}
        for ids, allowed_by_name in settled.overruled.items():
            for name, allowed in allowed_by_name.items():
                request = named[ids][name].request
                overruled[(kind, ids), proposer_of(request)] = (request, allowed)
        driver: dict[int, Proposer] = {}
        for drive in settled.drives:
            request = named[drive.source][drive.driven_by].request
            if request.components != drive.batteries:
                request = dataclasses.replace(request, batteries=drive.batteries)
            drives[kind, drive.batteries] = (request, drive.target_w)
            driver |= dict.fromkeys(drive.batteries, proposer_of(request))
        for ids, by_name in sorted(named.items(), key=lambda item: sorted(item[0])):
            for each in by_name.values():
                if not each.request.hold or each.request.withdraws:
                    continue
                loser = proposer_of(each.request)
                lost: dict[Proposer, set[int]] = {}
                for component in sorted(ids):
                    winner = driver.get(component)
                    if winner is not None and winner != loser:
                        lost.setdefault(winner, set()).add(component)
                conflicts.extend(
                    Conflict(winner, loser, kind, frozenset(components))
                    for winner, components in lost.items()
                )
    return Settled(drives, frozenset(withheld), inside, reduced, tuple(conflicts), overruled)


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
        reports: Callable[[Result], Awaitable[None]] | None = None,
        name: str = "power_managing",
    ) -> None:
        """Wire the stage between the use cases' requests and the distributor.

        `reports` publishes the manager's own word to a use case (`Overruled`,
        `InForce`) on the results channel its requests' results come back on.
        """
        super().__init__(name=name)
        self._requests = requests
        self._distributor = distributor
        self._site = site
        self._grid = grid or GridConfig()
        self._clock: Clock = clock or WallClock()
        self._tick = tick
        self._deadband_w = deadband_w
        self._proposals: dict[Key, dict[Proposer, Submitted]] = {}
        self._forwarded: dict[Key, PowerRequest] = {}
        self._withheld: set[Key] = set()
        self._inside: dict[Key, Key] = {}
        self._reduced: dict[Key, Key] = {}
        self._conflicts: set[Conflict] = set()
        self._reports = reports
        self._overruled: dict[tuple[Key, Proposer], Overruled] = {}
        """What each proposer was last told of its overruled proposal."""
        self.counts: dict[str, int] = {}
        """grid clamps by reason, withheld proposals, forwarded requests, evaluations."""
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
        """Record a request; it replaces its proposer's overlapping ones.

        A proposer's components change between requests (a dispatch retargeted, a use
        case's decision moving): its earlier proposals on overlapping sets are stale
        the moment it asks for something else on any of those components. Each
        dispatch (`PowerRequest.origin`) is a proposer of its own.
        """
        kind, ids = key_of(request)
        proposer = proposer_of(request)
        earlier = self._proposals.get((kind, ids), {}).get(proposer)
        self._drop(
            lambda other: other == proposer, lambda key: key[0] is kind and bool(key[1] & ids)
        )
        if not request.withdraws:
            # A proposal without a dispatch counts from its first submission on this set,
            # not from its latest: a use case that re-sends on every change (peak
            # shaving) would otherwise be the newest each time it spoke, and outrank a
            # dispatch of its priority one second, lose to it the next.
            since = self._clock.now() if earlier is None else earlier.at
            self._proposals.setdefault((kind, ids), {})[proposer] = Submitted(request, since)

    def _drop(self, whose: Callable[[Proposer], bool], which: Callable[[Key], bool]) -> None:
        for key in [k for k in self._proposals if which(k)]:
            by_proposer = self._proposals[key]
            for proposer in [p for p in by_proposer if whose(p)]:
                del by_proposer[proposer]
            if not by_proposer:
                del self._proposals[key]

    async def withdraw(self, namespace: str) -> None:
        """Forget every proposal of `namespace` (a use case removed by a live edit)."""
        self._drop(lambda proposer: proposer[0] == namespace, lambda _: True)
        await self._update()

    def _names(self, key: Key) -> list[str]:
        return sorted(proposer_name(p) for p in self._proposals.get(key, {}))

    def _resolved(self) -> Settled:
        """Every proposal settled (`settle`); what changed is logged."""
        settled = settle(
            (s for by_proposer in self._proposals.values() for s in by_proposer.values()),
            self._measured_w,
        )
        for key in settled.withheld - self._withheld:
            self._count("withheld")
            self._log.warning(
                "proposal_withheld",
                proposers=self._names(key),
                components=sorted(key[1]),
                target=key[0].value,
                reason="a higher-ranked proposal holds some of these components",
            )
        for key, guard in settled.inside.items():
            if self._inside.get(key) != guard:
                self._log.info(
                    "running_inside_guard",
                    components=sorted(key[1]),
                    guard=sorted(guard[1]),
                    guarded_by=self._names(guard),
                )
        for key, part in settled.reduced.items():
            if self._reduced.get(key) != part:
                self._log.info(
                    "proposal_reduced",
                    proposers=self._names(key),
                    components=sorted(part[1]),
                    of=sorted(key[1]),
                    target=key[0].value,
                )
        for conflict in sorted(
            set(settled.conflicts) - self._conflicts,
            key=lambda c: (proposer_name(c.winner), proposer_name(c.loser)),
        ):
            self._count("conflicts")
            self._log.warning(
                "proposal_conflict",
                winner=proposer_name(conflict.winner),
                loser=proposer_name(conflict.loser),
                components=sorted(conflict.components),
                target=conflict.kind.value,
                rule="the higher priority, then the newest, drives shared components",
            )
        self._withheld = set(settled.withheld)
        self._inside = dict(settled.inside)
        self._reduced = dict(settled.reduced)
        self._conflicts = set(settled.conflicts)
        return settled

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

    def _bounds(self, kind: TargetKind, ids: frozenset[int], target_w: float) -> Range | None:
        """How far the grid guard may move a set's target (W), None if unknown.

        Batteries: their envelope — the guard may use all of it. EV chargers and PV
        inverters are someone's budget, not the site's reserve: the guard may only cut
        them, never go past what the dispatch asked. An EV charge moves between 0 W and
        its target (a car asked for 11 kW may have a reason; the customer pays for
        more), within what the chargers may take now. A PV limit moves between what the
        set will produce under it and 0 W: a PV inverter produces `max(available,
        limit)`, and what it makes now is the best guess of what the sun gives (the
        next second's measurement corrects it when it was limited) — so the guard only
        ever tightens a limit, never loosens it; production unknown, the limit itself
        is the guess.
        """
        site = self._site
        if kind is TargetKind.BATTERIES:
            return pool_view(site.pairs, site.cache, ids).bounds
        if kind is TargetKind.PV_INVERTERS:
            limit_w = min(target_w, 0.0)
            produced = [self._direct_power_w(kind, i) for i in sorted(ids)]
            if any(p is None for p in produced):
                return Range(limit_w, 0.0)
            now_w = math.fsum(min(p, 0.0) for p in produced if p is not None)
            return Range(max(now_w, limit_w), 0.0)
        lower, upper = min(target_w, 0.0), max(target_w, 0.0)
        can_lower = can_upper = 0.0
        for component_id in sorted(ids):
            charger = site.cache.last_ev_charger(component_id)
            if charger is None or not charger.bounds:
                return Range(lower, upper)
            envelope = hull(charger.bounds)
            if not (math.isfinite(envelope.lower) and math.isfinite(envelope.upper)):
                return Range(lower, upper)
            can_lower += min(envelope.lower, 0.0)
            can_upper += max(envelope.upper, 0.0)
        return Range(max(lower, can_lower), min(upper, can_upper))

    async def _update(self) -> None:
        self._count("evaluations")
        settled = self._resolved()
        chosen = dict(settled.drives)
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
                and proposer_of(last) == proposer_of(request)
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
        await self._report(settled.overruled)

    async def _report(
        self, overruled: Mapping[tuple[Key, Proposer], tuple[PowerRequest, Range | None]]
    ) -> None:
        """Tell each proposer whose proposal became overruled, or is no longer, once.

        After the forwarding, so a use case that plans around its overrule finds the
        components already told. A new request of the proposer on the same set under
        the same range is not news (PV curtailment's ask creeps with the SoC): kept
        silently. Every `Overruled` is closed by an `InForce` — also when the proposal
        was withdrawn or replaced on another set: a word still queued for the use case
        when it withdrew would otherwise stand for ever.
        """
        for at, (request, allowed) in sorted(overruled.items(), key=_by_proposal):
            told = self._overruled.get(at)
            if told is not None and told.allowed == allowed:
                self._overruled[at] = Overruled(request, allowed)
                continue
            word = Overruled(request, allowed)
            self._count("overruled")
            self._log.info(
                "proposal_overruled",
                proposer=proposer_name(at[1]),
                components=sorted(at[0][1]),
                target=at[0][0].value,
                allowed_w=None if allowed is None else [allowed.lower, allowed.upper],
            )
            if self._reports is not None:
                await self._reports(word)
            self._overruled[at] = word
        for at in sorted(self._overruled.keys() - overruled.keys(), key=_by_key):
            current = self._proposals.get(at[0], {}).get(at[1])
            request = self._overruled[at].request if current is None else current.request
            self._count("in_force")
            self._log.info(
                "proposal_in_force",
                proposer=proposer_name(at[1]),
                components=sorted(at[0][1]),
                withdrawn=current is None,
            )
            if self._reports is not None:
                await self._reports(InForce(request))
            del self._overruled[at]

    def _guard(self, targets: dict[Key, float]) -> dict[Key, float]:
        site = self._site
        now = self._clock.now()
        grid_w = meter_power_w(site.cache, site.grid_meter_id, now, self._grid.stale_after)
        measured_w = math.fsum(
            self._measured_w(kind, frozenset().union(*(ids for k, ids in targets if k is kind)))
            for kind in {kind for kind, _ in targets}
        )
        bounds = {
            key: found
            for key, target in targets.items()
            if (found := self._bounds(*key, target)) is not None
        }
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
