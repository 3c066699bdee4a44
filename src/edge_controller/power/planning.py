"""From a power request and the site's state to the inverter commands: pure.

The PowerDistributingActor gathers telemetry and battery status into `Unit`s; the
distributor's decision (`distribute.decide`) calls `plan()` for a battery set, and the
actor sends the commands it returns and reports. Everything that decides a battery
plan lives here, so it is tested without a server:

- the working units carry the target; uncertain ones (stale data) only when no
  working unit is left;
- one invariant, whatever the round (first plan, retry, keep-alive, re-plan): every
  inverter that may not take our command — blocked after a failure, retried after
  its blocking time but not answered yet, refused its last command, out of service or
  excluded — is counted at its *measured* power (it keeps its last command until that
  expires, or still ramps down), and only the rest is planned on the responsive ones,
  so the site delivers the target within one resolution step whether or not the
  silent one answers — no over-delivery (Frequenz SDK #1354). `reach()` is the one
  place that decides who is counted; `counted_moved()` tells when a counted power
  moved so far that the plan must be made again;
- the pool's bounds decide OutOfBounds (`adjust_power=False` outside them, or any
  request inside an exclusion band), otherwise the target is clamped to them;
- zero power is always forwarded, to every unit of the request.

Powers are watts (floats), passive sign convention (+ charges).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import Enum

from edge_controller.power.bounds import Range, allows, hull, inclusion_exclusion, intersect
from edge_controller.power.distribution import BatteryUnit, DistributionAlgorithm, whole_steps


class Reach(Enum):
    """Whether an inverter takes our command this round (`reach()` decides)."""

    COMMANDED = "commanded"
    """Takes our command: planned with the other responsive units."""
    PROBED = "probed"
    """Its blocking time is over but it has not answered since it failed: told to hold
    its measured power (the answer tells whether it is back) and counted at it."""
    COUNTED = "counted"
    """Does not take our command: not commanded, counted at its measured power."""


class Availability(Enum):
    """How far a unit can be trusted this round."""

    WORKING = "working"
    UNCERTAIN = "uncertain"
    BROKEN = "broken"


@dataclass(frozen=True, slots=True)
class BatteryState:
    """One battery's latest numbers (NaN = unknown) and power bounds (None = unknown)."""

    battery_id: int
    soc_pct: float
    soc_lower_pct: float
    soc_upper_pct: float
    capacity_wh: float
    bounds: tuple[Range, ...] | None


@dataclass(frozen=True, slots=True)
class Unit:
    """An inverter with its batteries, as the planner sees it this round."""

    inverter_id: int
    batteries: tuple[BatteryState, ...]
    inverter_bounds: tuple[Range, ...] | None
    resolution_w: float
    availability: Availability
    measured_power_w: float | None = None
    """The inverter's reported power if its telemetry is fresh, else None."""
    site_share: Range | None = None
    """What the site lets this inverter take this round (a feeder meter's limit,
    `power.meter_limits`), intersected with its own bounds; None = no such limit."""
    unconfirmed: bool = False
    """It failed a command, its blocking time is over, and no command answered since."""
    refused: bool = False
    """It refused its last command (out of range) and keeps the one before."""
    out_of_service: bool = False
    """Left out by the operator or by component recovery (told 0 W once, may still
    ramp down)."""

    @property
    def battery_ids(self) -> frozenset[int]:
        """The batteries behind this inverter."""
        return frozenset(b.battery_id for b in self.batteries)


@dataclass(frozen=True, slots=True)
class PoolBounds:
    """Inclusion range and exclusion band of a set of units (watts)."""

    inclusion: Range
    exclusion: Range

    def allows(self, power_w: float) -> bool:
        """Tell whether the pool can take `power_w` as a total."""
        if power_w == 0.0:
            return True
        in_band = self.exclusion.lower < power_w < self.exclusion.upper
        return self.inclusion.contains(power_w) and not in_band


@dataclass(frozen=True, slots=True)
class Plan:
    """The commands to send and what the request becomes."""

    commands: dict[int, float]
    """Watts per inverter."""
    excess_w: float
    """Requested power that will not be delivered (clamped away, or not placeable)."""
    counted_elsewhere_w: float
    """Power of broken inverters that still deliver, subtracted from the target."""
    skipped: dict[int, str]
    """Inverters left out this round, with the reason (for the log)."""
    counted_w: dict[int, float] = field(default_factory=dict)
    """Per inverter that may not take our command (`reach()`), the measured power it
    was counted at (0 W when unknown): `counted_moved()` compares against it."""


@dataclass(frozen=True, slots=True)
class Refusal:
    """The request cannot be met; nothing is sent."""

    reason: str
    bounds: PoolBounds | None = None


def reach(unit: Unit) -> tuple[Reach, str | None]:
    """Whether `unit` takes our command this round, and why not (for the log).

    The one decision of who is counted at measured power, used by every plan:
    blocked (a failed command, within its blocking time), refused (out of range: it
    keeps its last command), out of service or excluded (still ramping down) → counted
    and not commanded; failed before and not answered since its blocking time ended →
    probed (told to hold what it measures) and counted; else commanded.
    """
    if unit.out_of_service:
        return Reach.COUNTED, "out of service or excluded"
    if unit.availability is Availability.BROKEN:
        return Reach.COUNTED, "broken (blocked after a failed command)"
    if unit.refused:
        return Reach.COUNTED, "refused its last command"
    if unit.unconfirmed:
        return Reach.PROBED, "retried: holds its measured power until it answers"
    return Reach.COMMANDED, None


def counted_power_w(unit: Unit) -> float:
    """The power a unit that may not take our command is counted at (0 W if unknown)."""
    measured = unit.measured_power_w
    return measured if measured is not None and math.isfinite(measured) else 0.0


def counted_moved(
    counted_w: Mapping[int, float],
    measured_w: Mapping[int, float | None],
    threshold_w: Mapping[int, float],
) -> list[int]:
    """The counted inverters whose measured power moved beyond their threshold.

    `counted_w` is what the last plan counted each at, `measured_w` what they measure
    now (None = unknown, counted as 0 W, like `counted_power_w`), `threshold_w` each
    one's step (its resolution, or a small floor). A silent inverter's command that
    expires (measured → 0 W) or an excluded one ramping down moves; the plan must be
    made again at once, or the others over- or under-deliver by the difference.
    """
    moved = []
    for inverter_id, counted in counted_w.items():
        measured = measured_w.get(inverter_id)
        now_w = measured if measured is not None and math.isfinite(measured) else 0.0
        if abs(now_w - counted) > threshold_w.get(inverter_id, 1.0):
            moved.append(inverter_id)
    return sorted(moved)


def _hold_w(unit: Unit, allowed: tuple[Range, ...] | None) -> float | None:
    """A probed unit's command: its measured power in whole steps, if allowed.

    None (not probed this round, only counted) when its bounds do not allow it.
    """
    power = counted_power_w(unit)
    if unit.resolution_w > 0:
        power = math.copysign(whole_steps(abs(power), unit.resolution_w) * unit.resolution_w, power)
    if power == 0.0:
        return 0.0
    return power if allowed is not None and allows(allowed, power) else None


def to_battery_unit(unit: Unit) -> BatteryUnit | str:
    """Aggregate a unit's batteries for the algorithm, or say why it cannot be used.

    NaN bounds are replaced from the adjacent component (battery ↔ inverter); a NaN
    SoC, SoC bound or capacity leaves the unit out this round.
    """
    for battery in unit.batteries:
        numbers = (battery.soc_pct, battery.soc_lower_pct, battery.soc_upper_pct)
        if not all(math.isfinite(v) for v in (*numbers, battery.capacity_wh)):
            return f"battery {battery.battery_id} reports NaN SoC, SoC bounds or capacity"
        if battery.capacity_wh <= 0:
            return f"battery {battery.battery_id} reports capacity {battery.capacity_wh:g} Wh"
    allowed = allowed_bounds(unit)
    if allowed is None:
        return f"inverter {unit.inverter_id} and its batteries report no usable bounds"
    if not all(math.isfinite(r.lower) and math.isfinite(r.upper) for r in allowed):
        return f"inverter {unit.inverter_id} and its batteries report unbounded power"
    capacity = math.fsum(b.capacity_wh for b in unit.batteries)

    def by_energy(values: Sequence[float]) -> float:
        weights = [b.capacity_wh for b in unit.batteries]
        return math.fsum(v * w for v, w in zip(values, weights, strict=True)) / capacity

    return BatteryUnit(
        inverter_id=unit.inverter_id,
        soc_pct=by_energy([b.soc_pct for b in unit.batteries]),
        soc_lower_pct=by_energy([b.soc_lower_pct for b in unit.batteries]),
        soc_upper_pct=by_energy([b.soc_upper_pct for b in unit.batteries]),
        capacity_wh=capacity,
        allowed=allowed,
        resolution_w=unit.resolution_w,
    )


def allowed_bounds(unit: Unit) -> tuple[Range, ...] | None:
    """What `unit` may be commanded to this round (union of ranges), None if unknown.

    Its batteries' bounds (summed when several, the widest exclusion band kept)
    intersected with its inverter's (either alone when the other is unknown); then its
    feeder-meter share (`site_share`). The one place a unit's bounds are read: a plan
    depends on a unit's `site_share` only through this, which is how
    `distribute.decide` knows a share that narrows nothing needs no second plan.
    """
    battery_sets = [b.bounds for b in unit.batteries]
    battery_bounds: tuple[Range, ...] | None = None
    if all(bounds is not None for bounds in battery_sets):
        known = [bounds for bounds in battery_sets if bounds is not None]
        if len(known) == 1:
            battery_bounds = known[0]
        else:
            lower = math.fsum(hull(b).lower for b in known)
            upper = math.fsum(hull(b).upper for b in known)
            # The widest exclusion band of any battery still applies to the sum.
            band_lower = min((_band(b)[0] for b in known), default=0.0)
            band_upper = max((_band(b)[1] for b in known), default=0.0)
            battery_bounds = inclusion_exclusion(Range(lower, upper), Range(band_lower, band_upper))
    inverter_bounds = unit.inverter_bounds
    if battery_bounds is None and inverter_bounds is None:
        return None
    if battery_bounds is None:
        own = inverter_bounds
    elif inverter_bounds is None:
        own = battery_bounds
    else:
        own = intersect(battery_bounds, inverter_bounds)
    if own is None or unit.site_share is None:
        return own
    # The share always contains 0 W; bounds with an exclusion band may not overlap it
    # at all, and then 0 W is what is left.
    return intersect(own, (unit.site_share,)) or (Range(0.0, 0.0),)


def _band(allowed: tuple[Range, ...]) -> tuple[float, float]:
    """The exclusion band around 0 W of a union of ranges, as (lower, upper)."""
    return (-_gap(allowed, discharge=True), _gap(allowed, discharge=False))


def pool_bounds(units: Sequence[BatteryUnit]) -> PoolBounds:
    """Sum the units' reach; the band is the smallest non-zero step on each side."""
    lower = math.fsum(min(hull(u.allowed).lower, 0.0) for u in units if u.allowed)
    upper = math.fsum(max(hull(u.allowed).upper, 0.0) for u in units if u.allowed)
    discharge_gaps = [_gap(u.allowed, discharge=True) for u in units if u.allowed]
    charge_gaps = [_gap(u.allowed, discharge=False) for u in units if u.allowed]
    return PoolBounds(
        Range(lower, upper),
        Range(-min(discharge_gaps, default=0.0), min(charge_gaps, default=0.0)),
    )


def _gap(allowed: tuple[Range, ...], discharge: bool) -> float:
    if any(r.contains(0.0) and (r.lower < 0 if discharge else r.upper > 0) for r in allowed):
        return 0.0
    if discharge:
        return -max((r.upper for r in allowed if r.upper < 0), default=0.0)
    return min((r.lower for r in allowed if r.lower > 0), default=0.0)


def plan(
    target_w: float,
    units: Sequence[Unit],
    algorithm: DistributionAlgorithm,
    *,
    adjust_power: bool = True,
    include_broken: bool = False,
) -> Plan | Refusal:
    """Decide the commands for `target_w` over `units` (see the module docstring)."""
    if not math.isfinite(target_w):
        return Refusal(f"requested power must be finite, got {target_w}")
    if target_w == 0.0:
        # A release: every unit is told 0 W (none compensates another), except those
        # out of service, which were told already.
        return Plan({u.inverter_id: 0.0 for u in units if not u.out_of_service}, 0.0, 0.0, {})
    skipped: dict[int, str] = {}
    candidates: dict[Availability, list[BatteryUnit]] = {a: [] for a in Availability}
    counted: dict[int, float] = {}
    probes: dict[int, float] = {}
    for unit in units:
        unit_reach, why = reach(unit)
        converted = to_battery_unit(unit)
        if unit_reach is not Reach.COMMANDED:
            counted[unit.inverter_id] = counted_power_w(unit)
            skipped[unit.inverter_id] = why or ""
            if unit_reach is Reach.PROBED:
                # What it runs already: its own bounds decide, not a site share (the
                # hold adds nothing to a feeder).
                hold = _hold_w(unit, allowed_bounds(replace(unit, site_share=None)))
                if hold is not None:
                    probes[unit.inverter_id] = hold
            elif unit.availability is Availability.BROKEN and not isinstance(converted, str):
                candidates[Availability.BROKEN].append(converted)
        elif isinstance(converted, str):
            skipped[unit.inverter_id] = converted
        else:
            candidates[unit.availability].append(converted)
    usable = candidates[Availability.WORKING] or candidates[Availability.UNCERTAIN]
    delivering = math.fsum(counted.values())
    if not usable and not (include_broken and candidates[Availability.BROKEN]):
        if probes:
            # Only retried units are left: probe them (they hold what they deliver);
            # each that answers takes its share in the re-plan that follows at once.
            return Plan(probes, target_w - delivering, delivering, skipped, counted)
        return Refusal(
            "no battery can be used: "
            + "; ".join(f"{cid}: {why}" for cid, why in sorted(skipped.items()))
        )
    wanted = target_w - delivering
    bounds = pool_bounds(usable)
    if not bounds.allows(wanted):
        in_band = bounds.exclusion.lower < wanted < bounds.exclusion.upper
        if not adjust_power or in_band:
            return Refusal(
                f"{target_w:g} W is outside the batteries' bounds "
                f"[{bounds.inclusion.lower:g}, {bounds.inclusion.upper:g}] W"
                + (
                    f" or inside their exclusion band ({bounds.exclusion.lower:g}, "
                    f"{bounds.exclusion.upper:g}) W"
                    if in_band
                    else ""
                ),
                bounds,
            )
    clamped = bounds.inclusion.nearest(wanted)
    distribution = algorithm.distribute(clamped, usable) if usable else None
    commands = dict(distribution.power_w) if distribution is not None else {}
    rest = (wanted - clamped) + (distribution.unplaced_w if distribution is not None else clamped)
    if include_broken and abs(rest) > 0.0:
        rest = _spread_over_broken(rest, candidates[Availability.BROKEN], counted, commands)
    commands.update(probes)
    # Every reachable unit left out this round (NaN data, or uncertain while working
    # ones carry the target) is told 0 W: its last command must not keep running
    # uncounted next to the new ones.
    for unit in units:
        if reach(unit)[0] is Reach.COMMANDED:
            commands.setdefault(unit.inverter_id, 0.0)
    return Plan(commands, rest, delivering, skipped, counted)


def _spread_over_broken(
    rest_w: float,
    broken: list[BatteryUnit],
    counted_w: Mapping[int, float],
    commands: dict[int, float],
) -> float:
    """Share `rest_w` equally over broken units with known bounds, clamped to them.

    Each is told its counted power plus its share: if it takes the command, the site
    gets the share on top of what it counted; if not, only the share is missing —
    never more than the target.
    """
    if not broken:
        return rest_w
    share = rest_w / len(broken)
    for unit in broken:
        base = counted_w.get(unit.inverter_id, 0.0)
        power = hull(unit.allowed).nearest(base + share)
        steps = whole_steps(abs(power), unit.resolution_w) if unit.resolution_w > 0 else 0
        power = math.copysign(steps * unit.resolution_w, power) if steps else 0.0
        if not allows(unit.allowed, power):
            power = 0.0
        commands[unit.inverter_id] = power
        rest_w -= power - base
    return rest_w


__all__ = [
    "Availability",
    "BatteryState",
    "Plan",
    "PoolBounds",
    "Reach",
    "Refusal",
    "Unit",
    "allowed_bounds",
    "counted_moved",
    "counted_power_w",
    "plan",
    "pool_bounds",
    "reach",
    "to_battery_unit",
]
