"""Use cases on overlapping but different battery sets: who drives which batteries.

`priority.resolve` settles use cases that want the *same* set of batteries. Sets can
also overlap without being equal — peak shaving watches every battery while a
dispatch targets two of them, or two dispatches share a battery. The distributor
drives each battery from one target only, so the sets are settled here, pure and
deterministic — the one place that decides it (the PowerManagingActor applies it;
the scenario and the EV charging use case, which must know who drives, call it too):

1. Each set's proposals are resolved on their own; a set ranks by its best proposal
   (`priority.rank`: priority, then the newest — a dispatch counts from its
   creation — then the higher dispatch id), ties by its battery ids.
2. In rank order a set takes its batteries. When some of them are taken already:
   - **a held set keeps the rest**: a set whose proposals all hold a power (the
     dispatches) drives the batteries nobody ranked above it took, at its resolved
     power (`reduced`), and gets the others back when the overlap is gone. Among
     dispatches of one priority: the newest drives the shared batteries, the older
     keeps the rest and resumes on all of them when the newer ends;
   - any other set is *withheld*: it runs again when the overlap is gone (a guard's
     bounds are about its whole set: on part of it they would mean something else) —
3. except inside a **yielding guard**: a taken set that contains the newcomer
   entirely, whose proposals steer by bounds that all allow 0 W (none holds a
   power). Nothing it must do then: its own power is a preference (peak shaving's
   recharge), which on one set an inner use case replaces too. So the guard's
   batteries outside the newcomer go to 0 W, the guard's bounds — about the total —
   apply to the newcomer's power as they stand, and the newcomer is resolved
   together with the guard's proposals and drives its batteries within them. That
   is peak shaving on the whole site with a lower-priority dispatch on part of it:
   the dispatch runs, cut so that it makes no peak (a newcomer that would not nest
   inside every proposal of the guard waits instead, so the guard's bounds always
   hold). One newcomer per guard, the first in rank: two of them could each use the
   guard's whole range. When the guard must act (its bounds exclude 0 W: a peak to
   shave needs all its batteries) it drives them all again and the newcomer waits
   (or, held, keeps what is left to it: nothing, for it is inside the guard).

   Batteries only (`settle_overlaps(..., guards_yield=False)` for the other kinds):
   0 W is a battery's idle, so the guard's other batteries at 0 W cost nothing. For a
   PV inverter 0 W is the limit "produce nothing", for an EV charger "stop charging":
   the rest of a PV or EV guard would be switched off by a use case that never asked
   about it. There the higher rank takes its components and the other set waits (a
   set of held powers keeps what is left to it), as with any guard that must act.

   The guard's other batteries are *told* 0 W; until they get there (ramping down
   from a recharge) or if they never do (an inverter that stopped answering keeps its
   last command), what they measure is taken out of the guard's range before the
   newcomer gets it — on each side the worse of their power and 0 W — so the total
   stays within the guard's bounds whatever the rest does. Their power unknown: the
   newcomer waits.

Powers are watts as floats (+ charges). Pure: no I/O, no clock.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from edge_controller.power.bounds import Range
from edge_controller.power.priority import Proposal, Rank, Resolution, rank, resolve


@dataclass(frozen=True, slots=True)
class Drive:
    """One battery set's target and the proposal (by name) whose power it is.

    `source` is the proposal set the driver was submitted on: the set itself, or a
    bigger one — a yielding guard's, of whose batteries this is the rest, or a held
    set's, of whose batteries this is what nobody above it took.
    """

    batteries: frozenset[int]
    driven_by: str
    target_w: float
    source: frozenset[int]


@dataclass(frozen=True, slots=True)
class Settlement:
    """What runs (`drives`, disjoint sets) and what waits (`withheld`).

    `inside` maps each set running inside a yielding guard to the guard's set;
    `reduced` each held set that drives only part of its batteries (the rest were
    taken by sets ranked above it) to that part. `overruled` names, per set, the
    proposals that do not run as they asked: overruled within their set (the range
    the ones above left them — the set runs at its point nearest their bounds,
    `priority.resolve`), or on a withheld set (`None`: nothing of it runs). The
    manager tells their use cases, which may plan around it at once instead of
    finding out from what the batteries measure.
    """

    drives: tuple[Drive, ...]
    withheld: frozenset[frozenset[int]] = frozenset()
    inside: Mapping[frozenset[int], frozenset[int]] = field(default_factory=dict)
    reduced: Mapping[frozenset[int], frozenset[int]] = field(default_factory=dict)
    overruled: Mapping[frozenset[int], Mapping[str, Range | None]] = field(default_factory=dict)


def _rank(proposals: Sequence[Proposal]) -> Rank:
    return max(rank(p) for p in proposals)


def _holds(proposals: Sequence[Proposal]) -> bool:
    """Every proposal holds a power: a set of dispatches, which may run on part of it."""
    return all(p.hold for p in proposals)


def _yields(proposals: Sequence[Proposal]) -> bool:
    """Bounds only, all allowing 0 W: nothing this set must do right now."""
    return all(not p.hold and (p.bounds is None or p.bounds.contains(0.0)) for p in proposals)


def _without(proposal: Proposal, running_w: float) -> Proposal | None:
    """`proposal` for the newcomer alone, the rest of the guard running `running_w`.

    None when nothing is left (the rest alone is beyond the bounds).
    """
    if proposal.bounds is None:
        return proposal
    bounds = proposal.bounds
    lower = bounds.lower - min(running_w, 0.0)
    upper = bounds.upper - max(running_w, 0.0)
    if lower > upper:
        return None
    narrowed = Range(lower, upper)
    power = proposal.power_w
    if power is not None:
        power = narrowed.nearest(power)
    return replace(proposal, bounds=narrowed, power_w=power)


def settle_overlaps(
    sets: Mapping[frozenset[int], Sequence[Proposal]],
    power_w: Callable[[frozenset[int]], float] = lambda _: 0.0,
    *,
    guards_yield: bool = True,
) -> Settlement:
    """Decide which set drives which batteries (see the module docstring).

    `guards_yield=False` turns the yielding-guard rule (3.) off: for components whose
    0 W is an action, not idle (PV inverters, EV chargers).

    `power_w(batteries)` is what those batteries measure now together (W, NaN if
    unknown). A set whose proposals state no power at all drives nothing and takes
    nothing. Independent of the order of `sets`.
    """
    resolved: list[tuple[frozenset[int], Sequence[Proposal], Resolution]] = []
    for batteries, proposals in sets.items():
        if not proposals:
            continue
        resolution = resolve(proposals)
        if resolution.target_w is None or resolution.driven_by is None:
            continue
        resolved.append((batteries, proposals, resolution))
    resolved.sort(key=lambda r: (_rank(r[1]), sorted(r[0])), reverse=True)

    owner: dict[int, frozenset[int]] = {}
    drives: dict[frozenset[int], Drive] = {}
    proposals_of: dict[frozenset[int], Sequence[Proposal]] = {}
    yielding: set[frozenset[int]] = set()
    inside: dict[frozenset[int], frozenset[int]] = {}
    reduced: dict[frozenset[int], frozenset[int]] = {}
    withheld: set[frozenset[int]] = set()

    overruled: dict[frozenset[int], dict[str, Range | None]] = {}
    for batteries, _, resolution in resolved:
        for name in sorted(resolution.overruled):
            overruled.setdefault(batteries, {})[name] = resolution.allowed[name]

    def take(part: frozenset[int], drive: Drive) -> None:
        drives[part] = drive
        for battery in part:
            owner[battery] = part

    for batteries, proposals, resolution in resolved:
        assert resolution.target_w is not None
        assert resolution.driven_by is not None
        owners = {owner[b] for b in batteries if b in owner}
        if not owners:
            take(batteries, Drive(batteries, resolution.driven_by, resolution.target_w, batteries))
            proposals_of[batteries] = proposals
            if guards_yield and _yields(proposals):
                yielding.add(batteries)
            continue
        (guard,) = owners if len(owners) == 1 else (None,)
        if guard is None or guard not in yielding or not batteries < guard:
            rest = frozenset(b for b in batteries if b not in owner)
            if _holds(proposals) and rest:
                take(rest, Drive(rest, resolution.driven_by, resolution.target_w, batteries))
                reduced[batteries] = rest
            else:
                withheld.add(batteries)
            continue
        plain = resolve([*proposals_of[guard], *proposals])
        names = {p.name for p in proposals}
        guarding = {p.name for p in proposals_of[guard]}
        rest = guard - batteries
        running_w = power_w(rest)
        known = math.isfinite(running_w)
        narrowed = [_without(p, running_w) for p in proposals_of[guard]] if known else [None]
        if (
            plain.driven_by not in names
            or not plain.target_w  # the guard's bounds leave it nothing to do
            or plain.overruled & guarding  # it would nest outside the guard
            or None in narrowed
        ):
            withheld.add(batteries)
            continue
        together = resolve([*(p for p in narrowed if p is not None), *proposals])
        if together.overruled & guarding or together.driven_by not in names:
            withheld.add(batteries)
            continue
        assert together.target_w is not None
        yielding.discard(guard)  # one newcomer per guard
        overruled.pop(batteries, None)
        for name in sorted(together.overruled & names):
            overruled.setdefault(batteries, {})[name] = together.allowed[name]
        guard_drive = drives.pop(guard)
        drives[rest] = Drive(rest, guard_drive.driven_by, 0.0, guard)
        drives[batteries] = Drive(batteries, together.driven_by, together.target_w, batteries)
        inside[batteries] = guard
    for batteries in withheld:
        overruled[batteries] = {p.name: None for p in sets[batteries]}
    return Settlement(tuple(drives.values()), frozenset(withheld), inside, reduced, overruled)


__all__ = ["Drive", "Settlement", "settle_overlaps"]
