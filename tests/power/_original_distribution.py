"""FROZEN COPY of src/edge_controller/power/distribution.py before the numpy fast path.

The oracle for tests/power/test_distribution_fast.py: every path of the production module
must give exactly what this gave. Do not edit (other than this docstring).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from edge_controller.power.bounds import Range, allows


@dataclass(frozen=True, slots=True)
class BatteryUnit:
    """One inverter with its battery(ies), as the algorithm sees it.

    `allowed` is the union form of what the inverter may be commanded to (battery ∩
    inverter inclusion bounds minus exclusion bands; 0 W is always allowed besides).
    """

    inverter_id: int
    soc_pct: float
    soc_lower_pct: float
    soc_upper_pct: float
    capacity_wh: float
    allowed: tuple[Range, ...]
    resolution_w: float = 1.0

    @property
    def normalized_soc(self) -> float:
        """SoC within the unit's window: 0 at the lower SoC bound, 1 at the upper."""
        window = self.soc_upper_pct - self.soc_lower_pct
        if window <= 0:
            return 0.5
        return (self.soc_pct - self.soc_lower_pct) / window

    @property
    def window_wh(self) -> float:
        """Energy between the SoC bounds."""
        return self.capacity_wh * max(self.soc_upper_pct - self.soc_lower_pct, 0.0) / 100.0


@dataclass(frozen=True, slots=True)
class Distribution:
    """Power per inverter and what could not be placed (target − Σ powers)."""

    power_w: dict[int, float]
    unplaced_w: float

    @property
    def total_w(self) -> float:
        """The power actually distributed."""
        return math.fsum(self.power_w.values())


class DistributionAlgorithm(Protocol):
    """Anything that splits a target between units."""

    def distribute(self, target_w: float, units: Sequence[BatteryUnit]) -> Distribution:
        """Split `target_w` (passive sign convention) between `units`."""
        ...


DEFAULT_HORIZON_S = 300.0
"""Balancing horizon: SoC differences worth less than this much time at full share are
evened out in proportion (time constant about the horizon), larger ones at full power.
Smaller is more aggressive; it must stay well above the control period."""
_EPS = 1e-9


@dataclass(frozen=True, slots=True)
class _Side:
    """A unit seen in the target's direction, mirrored so that it always discharges.

    A non-zero power must lie in `[low, -gap]`: `low` (<= 0) is the reach, `gap` the
    exclusion band edge; both are multiples of the resolution.
    """

    level: float  # normalised SoC, mirrored for charging: the highest goes first
    weight: float  # W per unit of normalised SoC: usable energy / horizon
    low: float
    gap: float
    resolution: float
    capacity_wh: float
    headroom_pct: float  # SoC percentage points left in the target's direction


def _side(unit: BatteryUnit, discharge: bool, horizon_s: float) -> _Side:
    level = unit.normalized_soc if discharge else 1.0 - unit.normalized_soc
    resolution = unit.resolution_w if unit.resolution_w > 0 else 1.0
    unusable = _Side(level, 0.0, 0.0, 0.0, resolution, 0.0, 0.0)
    values = (unit.soc_pct, unit.soc_lower_pct, unit.soc_upper_pct, unit.capacity_wh)
    if not all(math.isfinite(v) for v in values) or unit.capacity_wh <= 0:
        return unusable
    if discharge:
        side = [r for r in unit.allowed if r.lower < 0.0]
        reach = min((r.lower for r in side), default=0.0)
        gap = (
            0.0 if any(r.upper >= 0.0 for r in side) else -max((r.upper for r in side), default=0.0)
        )
        headroom = unit.soc_pct - unit.soc_lower_pct
    else:
        side = [r for r in unit.allowed if r.upper > 0.0]
        reach = -max((r.upper for r in side), default=0.0)
        gap = (
            0.0 if any(r.lower <= 0.0 for r in side) else min((r.lower for r in side), default=0.0)
        )
        headroom = unit.soc_upper_pct - unit.soc_pct
    low = -_steps_within(-reach, resolution) * resolution  # toward 0: stays inside
    gap = math.ceil(gap / resolution - _EPS) * resolution  # away from 0: clears the band
    if headroom <= 0.0 or low == 0.0 or -low < gap:
        return unusable
    weight = unit.window_wh * 3600.0 / horizon_s
    return _Side(level, weight, low, gap, resolution, unit.capacity_wh, headroom)


def _steps_within(magnitude: float, resolution: float) -> int:
    """Whole resolution steps that fit in `magnitude`, never one too many."""
    steps = math.floor(magnitude / resolution + _EPS)
    return steps - 1 if steps * resolution > magnitude else steps


Fill = Callable[[float, Sequence[_Side]], list[float]]


def water_fill(target: float, sides: Sequence[_Side]) -> list[float]:
    """Solve Σ clamp(w_i·(L − s_i), low_i, 0) = target for the level L (target <= 0).

    Units above the level discharge in proportion to how far above it they are, up to
    their `low`. The total is piecewise linear and non-decreasing in L; its 2N knees are
    swept in decreasing order, so the level is exact and the cost O(N log N). A target
    beyond Σ low gives every unit its `low`.
    """
    usable = [i for i, s in enumerate(sides) if s.weight > 0.0 and s.low < 0.0]
    if target >= 0.0 or not usable:
        return [0.0] * len(sides)
    if target <= math.fsum(sides[i].low for i in usable):
        return [s.low if s.weight > 0.0 else 0.0 for s in sides]
    knees: list[tuple[float, bool, int]] = []  # (level, saturates, index)
    for i in usable:
        side = sides[i]
        knees.append((side.level, False, i))
        knees.append((side.level + side.low / side.weight, True, i))
    knees.sort(key=lambda knee: (-knee[0], knee[1], knee[2]))
    slope = weighted = saturated = 0.0
    level = knees[0][0]
    for knee_level, saturates, i in knees:
        if slope > 0.0 and slope * knee_level - weighted + saturated <= target:
            break
        side = sides[i]
        if saturates:
            slope -= side.weight
            weighted -= side.weight * side.level
            saturated += side.low
        else:
            slope += side.weight
            weighted += side.weight * side.level
        level = knee_level
    if slope > 0.0:
        level = (target - saturated + weighted) / slope
    return [
        min(max(s.weight * (level - s.level), s.low), 0.0) if s.weight > 0.0 else 0.0 for s in sides
    ]


def proportional_fill(exponent: float) -> Fill:
    """The SDK's split: share ∝ capacity × headroom^exponent, saturated ones passed on."""

    def fill(target: float, sides: Sequence[_Side]) -> list[float]:
        powers = [0.0] * len(sides)
        free = [i for i, s in enumerate(sides) if s.low < 0.0 and s.capacity_wh > 0.0]
        remaining = target
        while free and remaining < 0.0:
            shares = {i: sides[i].capacity_wh * sides[i].headroom_pct ** exponent for i in free}
            total = math.fsum(shares.values())
            if total <= 0.0:
                break
            saturated = [i for i in free if remaining * shares[i] / total <= sides[i].low]
            if not saturated:
                for i in free:
                    powers[i] = remaining * shares[i] / total
                return powers
            for i in saturated:
                powers[i] = sides[i].low
                remaining -= sides[i].low
            done = set(saturated)
            free = [i for i in free if i not in done]
        return powers

    return fill


def _solve(fill: Fill, target: float, sides: Sequence[_Side]) -> list[float]:
    """Fill, then honour exclusion bands, then the resolution (all mirrored: target <= 0)."""
    n = len(sides)
    fixed: dict[int, float] = {}
    powers = fill(target, sides)
    for _ in range(n):
        violators = [i for i in range(n) if i not in fixed and 0.0 < -powers[i] < sides[i].gap]
        if not violators:
            break
        worst = min(violators, key=lambda i: (-powers[i] / sides[i].gap, i))
        fixed[worst] = 0.0 if -powers[worst] < sides[worst].gap / 2 else -sides[worst].gap
        free_sides = [
            s if i not in fixed else _Side(s.level, 0.0, 0.0, 0.0, s.resolution, 0.0, 0.0)
            for i, s in enumerate(sides)
        ]
        powers = fill(target - math.fsum(fixed.values()), free_sides)
        for i, value in fixed.items():
            powers[i] = value
    return _apply_resolution(target, sides, powers)


def _apply_resolution(target: float, sides: Sequence[_Side], powers: list[float]) -> list[float]:
    """Floor each magnitude to its resolution, then place the rounding rest where it fits.

    The rest goes to the coarsest resolutions first (they take the biggest bites), then
    to the highest level (fullest first when discharging); an overshoot, which can only
    come from rounding up to an exclusion edge, is taken back from the lowest level.
    """
    result = []
    for side, power in zip(sides, powers, strict=True):
        floored = -math.floor(-power / side.resolution + _EPS) * side.resolution
        if floored != 0.0 and -floored < side.gap:
            floored = -side.gap if -side.gap >= side.low else 0.0
        result.append(floored if floored != 0.0 else 0.0)
    rest = target - math.fsum(result)
    order = sorted(range(len(sides)), key=lambda i: (-sides[i].resolution, -sides[i].level, i))
    if rest < 0.0:
        for i in order:
            side = sides[i]
            steps = min(
                math.floor(-rest / side.resolution + _EPS),
                math.floor((result[i] - side.low) / side.resolution + _EPS),
            )
            if steps <= 0 or (result[i] == 0.0 and steps * side.resolution < side.gap):
                continue
            result[i] -= steps * side.resolution
            rest += steps * side.resolution
    elif rest > 0.0:
        for i in reversed(order):
            side = sides[i]
            above_gap = math.floor((-result[i] - side.gap) / side.resolution + _EPS)
            steps = min(math.floor(rest / side.resolution + _EPS), max(above_gap, 0))
            if steps <= 0:
                continue
            result[i] += steps * side.resolution
            rest -= steps * side.resolution
    return result


def _distribute(
    fill: Fill, target_w: float, units: Sequence[BatteryUnit], horizon_s: float
) -> Distribution:
    if not math.isfinite(target_w):
        raise ValueError(f"target power must be finite, got {target_w}")
    if target_w == 0.0 or not units:
        return Distribution({u.inverter_id: 0.0 for u in units}, target_w)
    discharge = target_w < 0.0
    sides = [_side(unit, discharge, horizon_s) for unit in units]
    mirrored = _solve(fill, target_w if discharge else -target_w, sides)
    powers: dict[int, float] = {}
    for unit, power in zip(units, mirrored, strict=True):
        value = power if discharge else -power
        # The last guard: never hand out a power the unit's bounds do not allow.
        powers[unit.inverter_id] = value if allows(unit.allowed, value) else 0.0
    return Distribution(powers, target_w - math.fsum(powers.values()))


@dataclass(frozen=True, slots=True)
class SocBalancing:
    """Water-filling on a common normalised SoC level (the default; see module doc)."""

    horizon_s: float = DEFAULT_HORIZON_S

    def distribute(self, target_w: float, units: Sequence[BatteryUnit]) -> Distribution:
        """Split `target_w` (+ charges, − discharges) between `units`."""
        return _distribute(water_fill, target_w, units, self.horizon_s)


@dataclass(frozen=True, slots=True)
class Proportional:
    """The Frequenz SDK's split: capacity × SoC headroom^exponent (for comparison)."""

    exponent: float = 1.0

    def distribute(self, target_w: float, units: Sequence[BatteryUnit]) -> Distribution:
        """Split `target_w` (+ charges, − discharges) between `units`."""
        return _distribute(proportional_fill(self.exponent), target_w, units, DEFAULT_HORIZON_S)
