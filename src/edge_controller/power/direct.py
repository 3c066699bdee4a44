"""From a power request to commands for components set one by one: EV chargers, PV inverters.

A battery is reached through its inverter and balanced by SoC (`planning`). An EV
charger or a PV inverter *is* the power: the plan only shares the request's total
between the components of the set, within what each may take now, in whole steps of
its resolution. The PowerDistributingActor gathers each component into a
`DirectUnit`; the distributor's decision (`distribute.decide`) calls `plan_direct()`,
and the actor sends the commands with the same pacing, keep-alive, time-outs and
failure marking as inverter commands::

    EV chargers 80, 81 (bounds 0..22 kW, 0..0: no car), +15 kW   → 80: +15 kW, 81: 0 W
    PV inverters 50, 51 (rated 300 kW, 100 kW), −200 kW           → 50: −150 kW, 51: −50 kW
    PV inverters 50, 51, withdraw                                  → each at its lower bound

- **EV chargers** (`TargetKind.EV_CHARGERS`): + charges. The total is shared in
  proportion to what each charger can take now (the upper end of its bounds, 0 W
  without a car), so a charger without a car gets 0 W and its share goes to the others.
- **PV inverters** (`TargetKind.PV_INVERTERS`): the power is a production *limit*:
  −200 kW means "produce at most 200 kW together". It is shared in proportion to their
  rated power (their peak: the rating of the metadata, else the lower end of the
  bounds), so each array is curtailed by the same share. A PV inverter produces
  `max(available, limit)`: an inverter whose sun gives less than its share leaves the
  rest unused — the limit is never exceeded, that is what matters.
- **Withdraw** (0 W without bounds): EV chargers are told 0 W; PV inverters are each
  told their full production, the lower end of their bounds, *once*, so the limit is
  lifted at once instead of when the last command expires.

The rules every plan keeps (the property tests check them):

- no command is outside its component's bounds (0 W is always allowed), and each is a
  whole number of resolution steps, rounded towards 0 W: an EV never charges more,
  a PV inverter never produces more, than its share;
- the total commanded never goes beyond the request on its side of 0 W: the chargers
  never take more than asked, the PV never produces more than the limit; what could
  not be placed (bounds, resolution rests) is `excess_w`;
- a component that may not take our command (blocked after a failure, refused the last
  one) is counted at its measured power and not commanded; the rest of the request is
  shared by the others — as for battery inverters (`planning.reach`);
- a component whose bounds are unknown (no telemetry yet) is planned with its rating;
  with neither it is told 0 W on a target (the one safe value) and skipped on a
  withdraw (nothing to lift it to).

Powers are watts (floats), passive sign convention (+ consumes/charges, − produces).
Pure: no I/O, no clock.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from edge_controller.power.bounds import Range, hull
from edge_controller.power.distribution import whole_steps
from edge_controller.power.kinds import TargetKind
from edge_controller.power.planning import Availability, Plan, PoolBounds, Refusal


@dataclass(frozen=True, slots=True)
class DirectUnit:
    """An EV charger or PV inverter as the plan sees it this round."""

    component_id: int
    bounds: tuple[Range, ...] | None
    """What it may be commanded to now (its telemetry, the latest however old), union of
    ranges; `None` when unknown."""
    rated_w: float | None = None
    """Its rated power as a magnitude (W ≥ 0; a PV inverter's peak), `None` if unknown."""
    resolution_w: float = 1.0
    availability: Availability = Availability.WORKING
    measured_power_w: float | None = None
    """Its reported power if its telemetry is fresh, else None."""
    refused: bool = False
    """It refused its last command (out of range) and keeps the one before."""


def snap(power_w: float, bounds: Sequence[Range], resolution_w: float) -> float:
    """The allowed whole-step value nearest to `power_w` on its way to 0 W.

    A component floors the magnitude of a command to its resolution and refuses one
    whose floored value is outside its bounds, so a command must be a whole number of
    steps inside the bounds; of those, the one with the largest magnitude not beyond
    `power_w` (0 W when none is).
    """
    if power_w == 0.0 or not math.isfinite(power_w):
        return 0.0
    sign = 1.0 if power_w > 0 else -1.0
    wanted = abs(power_w)
    best = 0.0
    for bound in bounds:
        # this range's part on the power's side of 0 W, as magnitudes
        inner = max(sign * bound.lower, 0.0) if sign > 0 else max(-bound.upper, 0.0)
        outer = bound.upper if sign > 0 else -bound.lower
        if outer <= 0.0 or inner > wanted:
            continue
        top = min(wanted, outer)
        if resolution_w > 0:
            top = whole_steps(top, resolution_w) * resolution_w
        if inner <= top and top > best:
            best = top
    return sign * best if best > 0 else 0.0


def _own_bounds(unit: DirectUnit, kind: TargetKind) -> tuple[Range, ...] | None:
    """The unit's bounds, or the ones its rating implies when telemetry has none."""
    if unit.bounds is not None:
        return unit.bounds
    if unit.rated_w is None or not math.isfinite(unit.rated_w):
        return None
    if kind is TargetKind.PV_INVERTERS:
        return (Range(-unit.rated_w, 0.0),)
    return (Range(0.0, unit.rated_w),)


def _weight(unit: DirectUnit, bounds: tuple[Range, ...], kind: TargetKind) -> float:
    """How much of the total this unit takes, relative to the others."""
    if kind is TargetKind.PV_INVERTERS:
        if unit.rated_w is not None and math.isfinite(unit.rated_w) and unit.rated_w > 0:
            return unit.rated_w
        lower = hull(bounds).lower
        return -lower if math.isfinite(lower) and lower < 0 else 0.0
    upper = hull(bounds).upper
    return upper if math.isfinite(upper) and upper > 0 else 0.0


def _pool(bounds: Sequence[tuple[Range, ...]]) -> PoolBounds:
    """The set's reach: the sum of what each can do, the smallest step off 0 W per side."""
    lower = math.fsum(min(hull(b).lower, 0.0) for b in bounds)
    upper = math.fsum(max(hull(b).upper, 0.0) for b in bounds)
    charge_step = min((_step(b, 1.0) for b in bounds), default=math.inf)
    discharge_step = min((_step(b, -1.0) for b in bounds), default=math.inf)
    # no unit reaches a side at all: the inclusion range already keeps that side out
    return PoolBounds(
        Range(lower, upper),
        Range(
            -discharge_step if math.isfinite(discharge_step) else 0.0,
            charge_step if math.isfinite(charge_step) else 0.0,
        ),
    )


def _step(bounds: tuple[Range, ...], sign: float) -> float:
    """The smallest magnitude off 0 W a unit allows on one side (0: any; inf: none)."""
    magnitudes = []
    for bound in bounds:
        inner = bound.lower if sign > 0 else -bound.upper
        outer = bound.upper if sign > 0 else -bound.lower
        if outer > 0:
            magnitudes.append(max(inner, 0.0))
    return min(magnitudes, default=math.inf)


def _share(
    total_w: float,
    bounds: Mapping[int, tuple[Range, ...]],
    weights: Mapping[int, float],
    resolutions: Mapping[int, float],
) -> dict[int, float]:
    """Share `total_w` by weight, in whole steps inside each unit's bounds.

    Then what rounding and bounds left over goes, unit by unit (most room first), to
    whoever can still take it: a charger with a minimum power that its share missed
    gets the rest in one piece rather than nobody charging.
    """
    ids = sorted(bounds)
    weight_sum = math.fsum(weights[i] for i in ids)
    if weight_sum > 0:
        shares = {i: total_w * weights[i] / weight_sum for i in ids}
    else:
        shares = {i: total_w / len(ids) for i in ids}
    commands = {i: snap(shares[i], bounds[i], resolutions[i]) for i in ids}
    rest = total_w - math.fsum(commands.values())
    sign = 1.0 if total_w > 0 else -1.0

    def room(unit_id: int) -> float:
        end = hull(bounds[unit_id]).upper if sign > 0 else hull(bounds[unit_id]).lower
        return sign * (end - commands[unit_id])

    for unit_id in sorted(ids, key=lambda i: (-room(i), i)):
        if sign * rest <= 0:
            break
        more = snap(commands[unit_id] + rest, bounds[unit_id], resolutions[unit_id])
        if sign * (more - commands[unit_id]) > 0:
            rest -= more - commands[unit_id]
            commands[unit_id] = more
    return commands


def plan_direct(
    kind: TargetKind,
    target_w: float,
    units: Sequence[DirectUnit],
    *,
    withdraw: bool = False,
    adjust_power: bool = True,
) -> Plan | Refusal:
    """Decide the commands for `target_w` over `units` (see the module docstring).

    `withdraw` gives the components back (the request was 0 W without bounds): EV
    chargers to 0 W, PV inverters to full production. `adjust_power=False` refuses a
    target outside the set's reach instead of clamping it; a target inside the gap
    between 0 W and the set's smallest step (a charger's minimum power) is refused
    either way, with the bounds.

    Raises:
        ValueError: `kind` is batteries (they are planned through their inverters).
    """
    if kind is TargetKind.BATTERIES:
        raise ValueError("batteries are planned through their inverters (planning.plan)")
    if not math.isfinite(target_w):
        return Refusal(f"requested power must be finite, got {target_w}")
    counted: dict[int, float] = {}
    skipped: dict[int, str] = {}
    bounds: dict[int, tuple[Range, ...]] = {}
    commanded: list[DirectUnit] = []
    for unit in units:
        if unit.availability is Availability.BROKEN or unit.refused:
            measured = unit.measured_power_w
            counted[unit.component_id] = (
                measured if measured is not None and math.isfinite(measured) else 0.0
            )
            skipped[unit.component_id] = (
                "refused its last command"
                if unit.refused
                else "broken (blocked after a failed command)"
            )
            continue
        own = _own_bounds(unit, kind)
        if own is None:
            skipped[unit.component_id] = "reports no bounds and has no rating"
        else:
            bounds[unit.component_id] = own
        commanded.append(unit)
    delivering = math.fsum(counted.values())
    if withdraw:
        return _withdraw(kind, commanded, bounds, skipped, counted, delivering)
    if not commanded:
        return Refusal(
            "no component can be used: "
            + "; ".join(f"{cid}: {why}" for cid, why in sorted(skipped.items()))
        )
    by_id = {u.component_id: u for u in commanded}
    resolutions = {i: u.resolution_w for i, u in by_id.items()}
    wanted = target_w - delivering
    pool = _pool(list(bounds.values()))
    if wanted != 0.0 and not pool.allows(wanted):
        in_band = pool.exclusion.lower < wanted < pool.exclusion.upper
        if not adjust_power or in_band:
            return Refusal(
                f"{target_w:g} W is outside the components' bounds "
                f"[{pool.inclusion.lower:g}, {pool.inclusion.upper:g}] W"
                + (
                    f" or inside the gap around 0 W ({pool.exclusion.lower:g}, "
                    f"{pool.exclusion.upper:g}) W"
                    if in_band
                    else ""
                ),
                pool,
            )
    clamped = pool.inclusion.nearest(wanted)
    commands = dict.fromkeys((u.component_id for u in commanded), 0.0)
    if clamped != 0.0 and bounds:
        weights = {i: _weight(u, bounds[i], kind) for i, u in by_id.items() if i in bounds}
        commands.update(_share(clamped, bounds, weights, resolutions))
    placed = math.fsum(commands.values())
    return Plan(commands, wanted - placed, delivering, skipped, counted)


def _withdraw(
    kind: TargetKind,
    commanded: Sequence[DirectUnit],
    bounds: Mapping[int, tuple[Range, ...]],
    skipped: dict[int, str],
    counted: dict[int, float],
    delivering: float,
) -> Plan:
    """EV chargers to 0 W; PV inverters each to its full production (its lower bound)."""
    if kind is TargetKind.EV_CHARGERS:
        return Plan({u.component_id: 0.0 for u in commanded}, 0.0, delivering, skipped, counted)
    commands: dict[int, float] = {}
    for unit in commanded:
        own = bounds.get(unit.component_id)
        if own is None:
            continue  # nothing known to lift it to: its old limit runs out by itself
        full = hull(own).lower
        if not math.isfinite(full) and unit.rated_w is not None and math.isfinite(unit.rated_w):
            full = -unit.rated_w
        if not math.isfinite(full):
            skipped[unit.component_id] = "reports no finite lower bound and has no rating"
            continue
        commands[unit.component_id] = snap(full, own, unit.resolution_w)
    return Plan(commands, 0.0, delivering, skipped, counted)


def bounds_moved(
    planned: Mapping[int, Range | None],
    now: Mapping[int, Range | None],
    steps_w: Mapping[int, float],
) -> list[int]:
    """The components whose bounds (hull) moved by more than their step since planned.

    A car plugged in (0..0 → 0..22 kW) or out, a PV inverter whose bounds follow its
    sun: the shares change now, not at the next keep-alive. Bounds that became known or
    unknown moved; a move smaller than the component's step (its resolution, or a small
    floor) is noise.
    """
    moved = []
    for component_id, seen in planned.items():
        bounds = now.get(component_id)
        step = steps_w.get(component_id, 1.0)
        if (bounds is None) != (seen is None) or (
            bounds is not None
            and seen is not None
            and (abs(bounds.lower - seen.lower) > step or abs(bounds.upper - seen.upper) > step)
        ):
            moved.append(component_id)
    return moved


__all__ = ["DirectUnit", "bounds_moved", "plan_direct", "snap"]
