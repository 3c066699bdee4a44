"""EV charging: the power each charger gets from an `EV_CHARGING` dispatch, now.

A dispatch asks for one of two things (`payload.parse_payload` checks it, field by
field):

- **power per charger** — `{"chargers": {"81": 11000, "82": "7.4 kW"}}`: each named
  charger gets its power, as far as its car and its bounds allow;
- **a site-wide budget** — `{"budget_w": "30 kW"}`: the chargers of the dispatch's
  target share it among the cars plugged in now.

Either may bound each session: `min_w`/`max_w` for every car, and `sessions` for one
charger's car (`{"sessions": {"81": {"min_w": 6000}}}`). The decision is taken again
on every dispatch and on every change of what the chargers report, so a car that
unplugs releases its share to the others at once and a car that arrives gets one.

The rules, for each charger (`ChargerNow` says what it can take now):

- **Unplugged, faulted or unknown → 0 W.** No car, a charger that is not working, or
  bounds not known: nothing is commanded above 0 W.
- **Never above its bounds.** A charger's bounds (union of ranges, as the Microgrid
  API gives them) are what it and its car can take now; its power is the largest
  allowed value at or below what the rules give it, never more. A charger does not
  discharge: anything below 0 W in its bounds is ignored.
- **A minimum, or nothing.** A charger that charges at all charges with at least its
  minimum: the larger of the dispatch's `min_w` (else the use case's `min_power`) and
  the lowest power its bounds allow above 0 W (a charger cannot go below 6 A per
  phase: 6 A × 230 V × 3 = 4.14 kW on three phases, which it reports as a gap above
  0 W). Below that it gets 0 W (`BELOW_MIN`), never a power it cannot run at.
- **A budget is shared fairly, minimums first.** The plugged cars are admitted in
  order of their minimum (smallest first, then by charger id) while the minimums fit
  in the budget, so as many cars as possible charge; the rest of the budget is then
  water-filled: every admitted car gets the same power, raised to its minimum and
  capped at its maximum, and what a capped car cannot take goes to the others. A car
  that does not fit gets 0 W (`BELOW_MIN`) and the others keep the budget.
- **Within the grid's room.** With an import limit (`[grid] max_import`) the cars
  together take at most what the site may still import (`grid_room_w`: the limit less
  what the site imports without them), shared by the same rules — power per charger
  then becomes each car's most. Left to the grid guard, every car would be cut in
  proportion, below its minimum: with 6 kW of room, two cars with a 4.14 kW minimum
  would each get 3 kW, which neither charger can run at; here one car gets the 6 kW.

Example, a 20 kW budget with a 4.14 kW minimum per car: a car limited to 11 kW and
one limited to 7.4 kW would get 10 kW each; the second takes only 7.4 kW, the first
gets the rest up to its 11 kW: 11 kW and 7.4 kW, 1.6 kW unused. A third car (22 kW)
arrives: 6.67 kW each. The 11 kW car leaves: 7.4 kW and 12.6 kW. With a budget of
8 kW only one car fits its minimum (two need 8.28 kW): the one at the lowest charger id
gets as much of the 8 kW as it can take, the others 0 W until a car leaves or the
budget grows.

Powers are watts as floats, passive sign convention: + charges the car. Pure: no I/O,
no clock.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from edge_controller.power.bounds import Range
from edge_controller.power.overlaps import settle_overlaps
from edge_controller.power.priority import Proposal, rank
from edge_controller.use_cases.ev_charging.payload import EvChargingPayload, SessionLimits

GRID_ROOM_STEP_W = 100.0
"""The grid's room for the cars is counted in whole steps of this (W)."""


class ChargerMode(StrEnum):
    """Why a charger gets the power it gets."""

    CHARGING = "charging"
    """It gets more than 0 W."""
    IDLE = "idle"
    """The dispatch asks 0 W of it."""
    UNPLUGGED = "unplugged"
    """No car: 0 W."""
    BELOW_MIN = "below_min"
    """Its share (or its asked power, or its maximum) is below its minimum: 0 W."""
    UNAVAILABLE = "unavailable"
    """Faulted, stopped, or its bounds are unknown: 0 W."""


@dataclass(frozen=True, slots=True)
class ChargerNow:
    """What a charger can take now, from its latest telemetry.

    `bounds` is the power it may be commanded to (W, union of ranges; 0 W always
    allowed besides), `None` when unknown; `working` whether it follows commands.
    """

    charger_id: int
    plugged: bool
    bounds: tuple[Range, ...] | None
    working: bool = True


def charger_now(
    charger_id: int,
    car_connected: bool | None,
    bounds: tuple[Range, ...] | None,
    *,
    working: bool = True,
) -> ChargerNow:
    """What a charger can take now, from its telemetry.

    `car_connected` is what its cable state says (`microgrid.telemetry.EvCable`),
    `None` when it reports none: then a car is plugged in when its bounds allow more
    than 0 W, for the bounds are what the charger can do with the car it has.
    """
    plugged = (
        car_connected
        if car_connected is not None
        else bounds is not None and any(r.upper > 0.0 for r in bounds)
    )
    return ChargerNow(charger_id, plugged, bounds, working)


# ---------------------------------------------------------------- the decision


@dataclass(frozen=True, slots=True)
class ChargerPlan:
    """One charger's power and why."""

    power_w: float
    mode: ChargerMode


@dataclass(frozen=True, slots=True)
class EvChargingDecision:
    """The power of every charger the dispatch drives (0 W included).

    `unused_w` is the part of the budget (or of the grid's room) no car could take (0
    for power per charger without a room).
    """

    plans: Mapping[int, ChargerPlan]
    unused_w: float = 0.0
    grid_limited: bool = False
    """The grid's room, not the dispatch, held the cars back."""

    @property
    def power_w(self) -> dict[int, float]:
        """Each charger's power (W)."""
        return {charger: plan.power_w for charger, plan in self.plans.items()}

    @property
    def total_w(self) -> float:
        """What the chargers take together (W)."""
        return sum(plan.power_w for plan in self.plans.values())


@dataclass(frozen=True, slots=True)
class _Span:
    """What one car may take: `allowed` positive ranges, from `low` to `high`."""

    charger_id: int
    allowed: tuple[Range, ...]

    @property
    def low(self) -> float:
        return self.allowed[0].lower

    @property
    def high(self) -> float:
        return self.allowed[-1].upper

    def capped(self, power_w: float) -> _Span | ChargerMode:
        """The span up to `power_w` (a charger asked that much); BELOW_MIN below `low`."""
        allowed = tuple(
            Range(r.lower, min(r.upper, power_w)) for r in self.allowed if r.lower <= power_w
        )
        return _Span(self.charger_id, allowed) if allowed else ChargerMode.BELOW_MIN

    def at_most(self, power_w: float) -> float:
        """The largest allowed power at or below `power_w` (0 W if none)."""
        best = 0.0
        for allowed in self.allowed:
            if allowed.lower <= power_w:
                best = min(power_w, allowed.upper)
        return best


def _span(charger: ChargerNow, limits: SessionLimits, min_power_w: float) -> _Span | ChargerMode:
    """What a car may take, or why it may take nothing."""
    if not charger.working or charger.bounds is None:
        return ChargerMode.UNAVAILABLE
    if not charger.plugged:
        return ChargerMode.UNPLUGGED
    low = max(min_power_w if limits.min_w is None else limits.min_w, 0.0)
    high = math.inf if limits.max_w is None else limits.max_w
    allowed = tuple(
        Range(max(r.lower, low), min(r.upper, high))
        for r in sorted(charger.bounds)
        if max(r.lower, low) <= min(r.upper, high) and min(r.upper, high) > 0.0
    )
    if not allowed:
        return ChargerMode.BELOW_MIN
    return _Span(charger.charger_id, allowed)


def _water_fill(budget_w: float, spans: Sequence[_Span]) -> dict[int, float]:
    """Share `budget_w` at one level: each gets max(low, min(level, high)).

    The caller admitted only spans whose `low`s fit in the budget together.
    """
    if math.isinf(budget_w) or sum(span.high for span in spans) <= budget_w:
        return {span.charger_id: span.high for span in spans}
    points = sorted({p for span in spans for p in (span.low, span.high)})

    def total(level: float) -> float:
        return sum(max(span.low, min(level, span.high)) for span in spans)

    level = points[-1]
    for below, above in itertools.pairwise(points):
        if total(above) >= budget_w:
            slope = sum(1 for span in spans if span.low <= below and span.high >= above)
            level = below + (budget_w - total(below)) / slope if slope else below
            break
    return {span.charger_id: max(span.low, min(level, span.high)) for span in spans}


def grid_room_w(
    max_import_w: float | None, grid_w: float | None, chargers_w: float
) -> float | None:
    """What the chargers may take together without the grid importing more than allowed.

    `grid_w` is the grid meter's power now (+ import), `None` when stale; `chargers_w`
    what the chargers this decision drives take now (measured). The site without them
    may import `max_import_w`, less what it imports already. `None` (no room known, no
    cap here: the grid guard still holds the limit) without a limit or a fresh meter.
    Floored to whole 100 W, so a load that drifts by a few watts does not re-share the
    cars every time.
    """
    if max_import_w is None or grid_w is None or not math.isfinite(grid_w):
        return None
    room = max_import_w - (grid_w - chargers_w)
    return max(0.0, math.floor(room / GRID_ROOM_STEP_W) * GRID_ROOM_STEP_W)


def decide(
    payload: EvChargingPayload,
    chargers: Iterable[ChargerNow],
    *,
    min_power_w: float = 0.0,
    room_w: float | None = None,
) -> EvChargingDecision:
    """Return each charger's power for `payload`; rules in the module docstring.

    `chargers` are the chargers the dispatch drives (`payload_chargers`), as they are
    now; `min_power_w` is the use case's least power per car (W, ≥ 0), used where the
    dispatch names no `min_w`; `room_w` what they may take together at most (the grid's
    room, `grid_room_w`; None: no such cap).
    """
    plans: dict[int, ChargerPlan] = {}
    spans: list[_Span] = []
    for charger in sorted(chargers, key=lambda c: c.charger_id):
        span = _span(charger, payload.session_limits(charger.charger_id), min_power_w)
        if payload.chargers_w is not None and isinstance(span, _Span):
            asked = payload.chargers_w.get(charger.charger_id, 0.0)
            span = span.capped(asked) if asked > 0.0 else ChargerMode.IDLE
        if isinstance(span, ChargerMode):
            plans[charger.charger_id] = ChargerPlan(0.0, span)
        else:
            spans.append(span)

    asked_w = payload.budget_w if payload.budget_w is not None else math.inf
    budget_w = asked_w if room_w is None else min(asked_w, max(room_w, 0.0))
    admitted: list[_Span] = []
    committed = 0.0
    for span in sorted(spans, key=lambda s: (s.low, s.charger_id)):
        if budget_w > 0.0 and committed + span.low <= budget_w:
            admitted.append(span)
            committed += span.low
        else:
            mode = ChargerMode.IDLE if asked_w <= 0.0 else ChargerMode.BELOW_MIN
            plans[span.charger_id] = ChargerPlan(0.0, mode)
    shares = _water_fill(budget_w, admitted) if admitted else {}
    for span in admitted:
        power_w = span.at_most(shares[span.charger_id])
        mode = ChargerMode.CHARGING if power_w > 0.0 else ChargerMode.IDLE
        plans[span.charger_id] = ChargerPlan(power_w, mode)
    used = sum(plan.power_w for plan in plans.values())
    return EvChargingDecision(
        dict(sorted(plans.items())),
        unused_w=max(0.0, budget_w - used) if math.isfinite(budget_w) else 0.0,
        grid_limited=budget_w < asked_w and used < sum(span.high for span in spans),
    )


@dataclass(frozen=True, slots=True)
class RunningEv:
    """A running EV_CHARGING dispatch, read: its payload and the chargers it targets."""

    dispatch_id: int
    created: datetime
    payload: EvChargingPayload
    chargers: frozenset[int]
    dry_run: bool = False


def charger_owners(running: Iterable[RunningEv]) -> dict[int, frozenset[int]]:
    """The chargers each commanding dispatch drives, by dispatch id.

    The PowerManagingActor's rule (`power.overlaps`), which settles the requests in
    the end: a charger two dispatches target goes to the newest (created last, then
    the higher id), the older keeps the rest. Known here because a budget is shared
    by the chargers a dispatch has. A dry run commands nothing, so it takes nothing.
    """
    sets: dict[frozenset[int], list[Proposal]] = {}
    for dispatch in running:
        if not dispatch.dry_run:
            sets.setdefault(dispatch.chargers, []).append(_claim(dispatch))
    return {int(d.driven_by): d.batteries for d in settle_overlaps(sets).drives}


def _claim(dispatch: RunningEv) -> Proposal:
    """A dispatch as the manager ranks it: held, one priority, its creation and id."""
    name = str(dispatch.dispatch_id)
    return Proposal(name, 0, dispatch.created, 0.0, hold=True, origin=dispatch.dispatch_id)


def decide_all(
    running: Iterable[RunningEv],
    chargers: Mapping[int, ChargerNow],
    *,
    min_power_w: float = 0.0,
    room_w: float | None = None,
) -> dict[int, EvChargingDecision]:
    """Each running dispatch's decision, over the chargers it drives (`charger_owners`).

    The grid's room goes to the newest first, each dispatch leaving the next what it
    did not take. A dry run is decided over every charger it targets, without the
    room: it commands nothing and takes nothing.
    """
    by_id = {r.dispatch_id: r for r in running}
    owned = charger_owners(by_id.values())
    owned |= {i: r.chargers for i, r in by_id.items() if r.dry_run}
    newest_first = sorted(
        owned, key=lambda i: (not by_id[i].dry_run, rank(_claim(by_id[i]))), reverse=True
    )
    decisions: dict[int, EvChargingDecision] = {}
    for dispatch_id in newest_first:
        dispatch = by_id[dispatch_id]
        decision = decide(
            dispatch.payload,
            [chargers[c] for c in sorted(owned[dispatch_id]) if c in chargers],
            min_power_w=min_power_w,
            room_w=None if dispatch.dry_run else room_w,
        )
        if room_w is not None and not dispatch.dry_run:
            room_w = max(0.0, room_w - decision.total_w)
        decisions[dispatch_id] = decision
    return decisions
