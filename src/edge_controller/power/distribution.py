"""Splitting a power target between batteries: pure, deterministic, O(N log N).

The unit of distribution is an inverter with the battery (or batteries, aggregated)
behind it: the controller commands inverters. Powers are watts as floats, passive
sign convention (+ charges, − discharges).

Two algorithms share one interface (`DistributionAlgorithm`):

- `SocBalancing` (default) — *water-filling on a common SoC level*. Each unit's SoC is
  normalised to its own window (0 at its lower SoC bound, 1 at its upper). For a
  discharge it finds the level L with::

      p_i = clamp(-K_i · (s_i − L), lower_i, 0),   Σ p_i = target

  where `K_i` is the unit's usable energy divided by `horizon_s`. Units far above the
  level discharge at their full power, so differences shrink linearly — in finite time —
  instead of asymptotically; within `horizon_s` worth of energy of each other they share
  in proportion and move together. Charging mirrors it (emptiest first). The level is
  found exactly by sorting the 2N breakpoints of the piecewise-linear total.
- `Proportional` — the Frequenz SDK's scheme, for comparison: share ∝ capacity ×
  (SoC headroom)^exponent, clamped, with what does not fit passed on to the others.

After either: exclusion bands (a unit runs at exactly 0 W or at least its band edge),
then the inverter resolution (magnitudes floored, as the Microgrid API does), with the
rounding rest placed where it fits, so the total is within one resolution step of the
target whenever the target is feasible.

Both run in plain Python for small pools and on numpy arrays for large ones (see "The
fast path" below); the two give the same result, bit for bit.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from math import ceil, floor, isfinite
from typing import NamedTuple, Protocol

import numpy as np
import numpy.typing as npt

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


def whole_steps(magnitude_w: float, resolution_w: float) -> int:
    """The most whole steps of `resolution_w` (> 0) whose product stays within `magnitude_w`.

    A component floors a command's magnitude to its resolution and refuses one beyond
    its bounds, so every command to a bound is built from this — the one rounding rule
    of the battery and the direct paths (`power.direct.snap`, `power.planning`; the
    array path `_read_pool` applies it element-wise). The division alone misleads
    both ways: `_EPS` recovers a step it rounds down (9 421.64 W at 0.01 W is 942 164
    steps, the quotient 942 163.99…), and a step whose product lands a hair beyond the
    magnitude (13 597.9 W at 0.1 W: 135 979 × 0.1 = 13 597.900000000001) is dropped.
    """
    steps = floor(magnitude_w / resolution_w + _EPS)
    while steps > 0 and steps * resolution_w > magnitude_w:
        steps -= 1
    return steps


class _Side(NamedTuple):
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
    # `normalized_soc`, `window_wh` and `_reach_and_gap` written out: this
    # runs once per unit and call, and is most of the plain-Python path's time.
    soc, soc_lower, soc_upper = unit.soc_pct, unit.soc_lower_pct, unit.soc_upper_pct
    capacity = unit.capacity_wh
    window = soc_upper - soc_lower
    normalized = 0.5 if window <= 0 else (soc - soc_lower) / window
    level = normalized if discharge else 1.0 - normalized
    resolution = unit.resolution_w if unit.resolution_w > 0 else 1.0
    if not (
        isfinite(soc) and isfinite(soc_lower) and isfinite(soc_upper) and isfinite(capacity)
    ) or (capacity <= 0):
        return _Side(level, 0.0, 0.0, 0.0, resolution, 0.0, 0.0)
    allowed = unit.allowed
    if len(allowed) != 1:
        reach, gap = _reach_and_gap(allowed, discharge)
    elif discharge:
        lower, upper = allowed[0].lower, allowed[0].upper
        if lower < 0.0:
            reach, gap = lower, (0.0 if upper >= 0.0 else -upper)
        else:
            reach, gap = 0.0, -0.0
    else:
        lower, upper = allowed[0].lower, allowed[0].upper
        if upper > 0.0:
            reach, gap = -upper, (0.0 if lower <= 0.0 else lower)
        else:
            reach, gap = -0.0, 0.0
    headroom = (soc - soc_lower) if discharge else (soc_upper - soc)
    magnitude = -reach
    steps = whole_steps(magnitude, resolution)
    low = -steps * resolution  # toward 0: stays inside
    gap = ceil(gap / resolution - _EPS) * resolution  # away from 0: clears the band
    if headroom <= 0.0 or low == 0.0 or -low < gap:
        return _Side(level, 0.0, 0.0, 0.0, resolution, 0.0, 0.0)
    weight = capacity * max(window, 0.0) / 100.0 * 3600.0 / horizon_s
    return _Side(level, weight, low, gap, resolution, capacity, headroom)


def _reach_and_gap(allowed: Sequence[Range], discharge: bool) -> tuple[float, float]:
    """Mirrored reach (<= 0) and exclusion band edge (>= 0) of `allowed`, not yet rounded."""
    if discharge:
        side = [r for r in allowed if r.lower < 0.0]
        reach = min((r.lower for r in side), default=0.0)
        gap = (
            0.0 if any(r.upper >= 0.0 for r in side) else -max((r.upper for r in side), default=0.0)
        )
    else:
        side = [r for r in allowed if r.upper > 0.0]
        reach = -max((r.upper for r in side), default=0.0)
        gap = (
            0.0 if any(r.lower <= 0.0 for r in side) else min((r.lower for r in side), default=0.0)
        )
    return reach, gap


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
    knees: list[tuple[float, bool, int]] = []  # (-level, saturates, index): sorts as swept
    for i in usable:
        side = sides[i]
        knees.append((-side.level, False, i))
        knees.append((-(side.level + side.low / side.weight), True, i))
    knees.sort()
    slope = weighted = saturated = 0.0
    level = -knees[0][0]
    for negated_level, saturates, i in knees:
        knee_level = -negated_level
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
        min(max(weight * (level - at), low), 0.0) if weight > 0.0 else 0.0
        for at, weight, low, _, _, _, _ in sides
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
    for (_, _, low, gap, resolution, _, _), power in zip(sides, powers, strict=True):
        floored = -floor(-power / resolution + _EPS) * resolution
        if floored != 0.0 and -floored < gap:
            floored = -gap if -gap >= low else 0.0
        result.append(floored if floored != 0.0 else 0.0)
    rest = target - math.fsum(result)
    if rest == 0.0:
        return result
    keys = sorted([(-s.resolution, -s.level, i) for i, s in enumerate(sides)])
    order = [i for _, _, i in keys]
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


def _distribute_python(
    fill: Fill, target_w: float, units: Sequence[BatteryUnit], horizon_s: float
) -> Distribution:
    """The plain-Python path, unit by unit: for small pools, and the fast path's fallback."""
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
        allowed = unit.allowed
        if len(allowed) == 1:  # `allows` for the common case
            inside = value == 0.0 or allowed[0].lower <= value <= allowed[0].upper
        else:
            inside = allows(allowed, value)
        powers[unit.inverter_id] = value if inside else 0.0
    return Distribution(powers, target_w - math.fsum(powers.values()))


# --- The fast path ----------------------------------------------------------------------
#
# The same algorithm on numpy arrays, one array per `_Side` field. Every step performs the
# same IEEE operations in the same order as the plain-Python path above, so the results
# are the same bit for bit: sums that path folds one term at a time are cumulative sums
# (numpy accumulates one term at a time too), `math.fsum` stays an exactly rounded sum,
# sorts keep that path's tie-breaks, and the rounding rest is still placed by a sequential
# loop, only one that skips the units that loop would pass over unchanged. Whatever the
# fast path is not sure to treat identically (a non-finite number anywhere, an
# intermediate that would overflow, a horizon that is not a positive number, a value that
# is not a number) goes to the plain-Python path instead, which behaves as it always did.
# tests/power/test_distribution_fast.py holds both paths to the original code.

_FAST_PATH_MIN_UNITS = 40
"""Below this many units plain Python beats numpy's fixed cost per call."""

_FloatArray = npt.NDArray[np.float64]
_IndexArray = npt.NDArray[np.intp]
_EXACT_LIMIT = 2.0**53  # integers up to this are exact floats, and so are their sums
_NUMPY_SUM_MIN = 200  # below this many terms `math.fsum` is the quicker exact sum


@dataclass(frozen=True, slots=True)
class _Sides:
    """The `_Side`s of all units as arrays (mirrored: the target is a discharge)."""

    level: _FloatArray
    weight: _FloatArray
    low: _FloatArray
    gap: _FloatArray
    resolution: _FloatArray
    capacity_wh: _FloatArray
    headroom_pct: _FloatArray

    def without(self, fixed: _IndexArray) -> _Sides:
        """These sides with the `fixed` units made unusable (as `_solve` does)."""
        weight, low, gap = self.weight.copy(), self.low.copy(), self.gap.copy()
        capacity, headroom = self.capacity_wh.copy(), self.headroom_pct.copy()
        for array in (weight, low, gap, capacity, headroom):
            array[fixed] = 0.0
        return _Sides(self.level, weight, low, gap, self.resolution, capacity, headroom)


@dataclass(frozen=True, slots=True)
class _Pool:
    """What the fast path reads from the units: their sides and their bounds."""

    sides: _Sides
    inverter_ids: list[int]
    single_lower: _FloatArray  # the one range of single-range units (0 W for others)
    single_upper: _FloatArray
    multi: list[int]  # indices of the units whose `allowed` is not exactly one range
    allowed: list[tuple[Range, ...]]


def _columns(*columns: list[float]) -> _FloatArray:
    """The columns as rows of one float array (ints are converted as `float()` does)."""
    count = sum(len(column) for column in columns)
    packed = b"".join(struct.pack(f"{len(column)}d", *column) for column in columns)
    return np.frombuffer(packed, dtype=np.float64, count=count).reshape(len(columns), -1)


def _sum(values: _FloatArray) -> float:
    """`math.fsum(values)` (up to the sign of a zero total), quicker for many whole numbers.

    When every value is a whole number and the magnitudes add up to less than 2**53,
    every partial sum is exact in any order, so numpy's sum is the exactly rounded one.
    """
    if (
        values.size >= _NUMPY_SUM_MIN
        and np.equal(values, np.rint(values)).all()
        and float(np.add.reduce(np.abs(values))) < _EXACT_LIMIT
    ):
        return float(np.add.reduce(values))
    return math.fsum(values.tolist())


def _finite(values: _FloatArray) -> bool:
    """Tell whether every value is finite, by whether their sum is.

    A false alarm needs an overflowing sum; it merely sends the call to plain Python.
    """
    return math.isfinite(float(np.add.reduce(values, axis=None)))


def _indices(mask: npt.NDArray[np.bool_]) -> _IndexArray:
    return mask.nonzero()[0]


def _read_pool(units: Sequence[BatteryUnit], discharge: bool, horizon_s: float) -> _Pool | None:
    """`_side` for every unit at once, or None where plain Python must decide."""
    if not (math.isfinite(horizon_s) and horizon_s > 0):
        return None
    allowed = [u.allowed for u in units]
    multi: list[int] = []
    try:
        try:
            firsts = [only for (only,) in allowed]
        except ValueError:  # some unit has not exactly one range
            multi = [i for i, ranges in enumerate(allowed) if len(ranges) != 1]
            firsts = [a[0] if len(a) == 1 else Range(0.0, 0.0) for a in allowed]
        block = _columns(
            [u.soc_pct for u in units],
            [u.soc_lower_pct for u in units],
            [u.soc_upper_pct for u in units],
            [u.capacity_wh for u in units],
            [r.lower for r in firsts],
            [r.upper for r in firsts],
            [u.resolution_w for u in units],
        )
    except (TypeError, ValueError, OverflowError, struct.error):
        return None
    if not _finite(block[:6]):
        return None
    soc, soc_lower, soc_upper, capacity, single_lower, single_upper, resolution_w = block
    resolution = np.where(resolution_w > 0.0, resolution_w, 1.0)  # NaN: 1 W as well

    if discharge:
        inside = single_lower < 0.0
        reach = np.where(inside, single_lower, 0.0)
        gap = np.where(inside & (single_upper < 0.0), -single_upper, 0.0)
        headroom = soc - soc_lower
    else:
        inside = single_upper > 0.0
        reach = np.where(inside, -single_upper, 0.0)
        gap = np.where(inside & (single_lower > 0.0), single_lower, 0.0)
        headroom = soc_upper - soc
    for i in multi:
        reach[i], gap[i] = _reach_and_gap(allowed[i], discharge)

    # low = -whole_steps(-reach, resolution) * resolution, then the band edge rounded up
    magnitude = -reach
    scaled = magnitude / resolution + _EPS
    gap_scaled = gap / resolution - _EPS
    # An infinite resolution makes `low` NaN in `_side`; math.floor / math.ceil of a
    # non-finite value would raise there.
    if not _finite(resolution + scaled + gap_scaled):
        return None
    steps = np.floor(scaled)
    steps -= steps * resolution > magnitude
    low = -steps * resolution
    gap = np.ceil(gap_scaled) * resolution + 0.0  # + 0.0: a ceiling of -0.0 is 0 W

    window = soc_upper - soc_lower
    positive = window > 0.0
    normalized = np.where(positive, (soc - soc_lower) / np.where(positive, window, 1.0), 0.5)
    level = normalized if discharge else 1.0 - normalized
    usable = (capacity > 0.0) & (headroom > 0.0) & (low != 0.0) & (-low >= gap)
    weight = np.where(usable, capacity * np.maximum(window, 0.0) / 100.0 * 3600.0 / horizon_s, 0.0)
    if not _finite(level + weight):
        return None
    sides = _Sides(
        level=level,
        weight=weight,
        low=np.where(usable, low, 0.0),
        gap=np.where(usable, gap, 0.0),
        resolution=resolution,
        capacity_wh=np.where(usable, capacity, 0.0),
        headroom_pct=np.where(usable, headroom, 0.0),
    )
    ids = [u.inverter_id for u in units]
    return _Pool(sides, ids, single_lower, single_upper, multi, allowed)


def _stable_argsort(keys: _FloatArray) -> _IndexArray:
    """`np.argsort(keys, kind="stable")` for NaN-free keys, several times faster.

    The default (SIMD) sort is not stable, but equal keys end up next to each other; the
    few positions in such runs are then put back in their original order.
    """
    order = np.argsort(keys)
    ordered = keys.take(order)
    ties = ordered[1:] == ordered[:-1]
    if not ties.any():
        return order
    as_previous = np.zeros(keys.size, dtype=bool)  # equal to the key sorted before it
    as_previous[1:] = ties
    as_next = np.zeros(keys.size, dtype=bool)
    as_next[:-1] = ties
    in_run = _indices(as_previous | as_next)
    run = np.cumsum(~as_previous.take(in_run))  # which run of equal keys
    tied = order.take(in_run)
    order[in_run] = tied.take(np.argsort(run * keys.size + tied))
    return order


_FastFill = Callable[[float, _Sides], _FloatArray]


def _water_fill_fast(target: float, sides: _Sides) -> _FloatArray:
    """`water_fill` on arrays: the knee sweep becomes cumulative sums over sorted knees."""
    weight, low, level = sides.weight, sides.low, sides.level
    usable = _indices((weight > 0.0) & (low < 0.0))
    if target >= 0.0 or usable.size == 0:
        return np.zeros(weight.size)
    lows = low[usable]
    if target <= _sum(lows):
        return np.where(weight > 0.0, low, 0.0)
    weights, levels = weight[usable], level[usable]
    count = usable.size
    # Knees in `water_fill`'s order: level descending, then non-saturating first, then
    # by unit index — a stable sort of [non-saturating..., saturating...] on -level.
    knees = np.concatenate((levels, levels + lows / weights))
    order = _stable_argsort(-knees)
    knees = knees.take(order)
    # What each knee adds to the slope, the weighted levels and the saturated total.
    deltas = np.zeros((3, 2 * count))
    deltas[0, :count] = weights
    deltas[0, count:] = -weights
    deltas[1, :count] = weights * levels
    deltas[1, count:] = -deltas[1, :count]
    deltas[2, count:] = lows
    # Row-wise running sums, entry k being the state before knee k (as the sweep's).
    state = np.zeros((3, 2 * count + 1))
    state[:, 1:] = deltas.take(order, axis=1)
    np.cumsum(state, axis=1, out=state)
    slope, weighted, saturated = state
    # The sweep stops at the first knee where the total already reaches the target.
    before = slope[:-1]
    stops = _indices((before > 0.0) & (before * knees - weighted[:-1] + saturated[:-1] <= target))
    k = int(stops[0]) if stops.size else knees.size
    found = float(knees[k - 1])  # k >= 1: the slope before the first knee is 0
    s, w, sat = float(slope[k]), float(weighted[k]), float(saturated[k])
    if s > 0.0:
        found = (target - sat + w) / s
    return np.where(weight > 0.0, np.minimum(np.maximum(weight * (found - level), low), 0.0), 0.0)


def _proportional_fill_fast(exponent: float) -> _FastFill:
    """`proportional_fill` on arrays (the shares' powers still computed by Python's `**`)."""

    def fill(target: float, sides: _Sides) -> _FloatArray:
        low = sides.low
        powers = np.zeros(low.size)
        free = _indices((low < 0.0) & (sides.capacity_wh > 0.0))
        remaining = target
        if free.size == 0 or not remaining < 0.0:
            return powers
        capacity, headroom = sides.capacity_wh[free].tolist(), sides.headroom_pct[free].tolist()
        share = np.zeros(low.size)
        share[free] = [c * h**exponent for c, h in zip(capacity, headroom, strict=True)]
        while free.size and remaining < 0.0:
            shares = share[free]
            total = math.fsum(shares.tolist())
            if total <= 0.0:
                break
            portions = remaining * shares / total
            saturated = portions <= low[free]
            if not saturated.any():
                powers[free] = portions
                return powers
            hit = free[saturated]
            powers[hit] = low[hit]
            for value in low[hit].tolist():
                remaining -= value
            free = free[~saturated]
        return powers

    return fill


def _solve_fast(fill: _FastFill, target: float, sides: _Sides) -> _FloatArray | None:
    """`_solve` on arrays; None where plain Python must decide."""
    n = sides.level.size
    gap = sides.gap
    fixed: dict[int, float] = {}
    powers = fill(target, sides)
    if bool((gap > 0.0).any()):
        is_fixed = np.zeros(n, dtype=bool)
        for _ in range(n):
            magnitude = -powers
            violators = _indices(~is_fixed & (magnitude > 0.0) & (magnitude < gap))
            if violators.size == 0:
                break
            worst = int(violators[np.argmin(magnitude[violators] / gap[violators])])
            edge = float(gap[worst])
            fixed[worst] = 0.0 if float(magnitude[worst]) < edge / 2 else -edge
            is_fixed[worst] = True
            indices = np.fromiter(fixed, dtype=np.intp, count=len(fixed))
            powers = fill(target - math.fsum(fixed.values()), sides.without(indices))
            powers[indices] = list(fixed.values())
    return _apply_resolution_fast(target, sides, powers)


def _runs(order: _IndexArray, resolution: _FloatArray) -> list[tuple[float, list[int]]]:
    """`order` split into runs of equal resolution, each with its resolution."""
    if order.size == 0:
        return []
    ordered = resolution.take(order)
    first = np.ones(order.size, dtype=bool)
    first[1:] = ordered[1:] != ordered[:-1]
    starts = _indices(first).tolist()
    units = order.tolist()
    steps = ordered[starts].tolist()
    ends = [*starts[1:], len(units)]
    return [(step, units[a:b]) for step, a, b in zip(steps, starts, ends, strict=True)]


def _apply_resolution_fast(target: float, sides: _Sides, powers: _FloatArray) -> _FloatArray | None:
    """`_apply_resolution` on arrays; None where plain Python must decide.

    The flooring is vectorised. The rest is placed by `_apply_resolution`'s loop, restricted to
    the units that can take a step (it passes over the others unchanged) and leaving a run
    of equal resolutions as soon as the rest is below one step of it (it would pass over
    the rest of that run unchanged as well).
    """
    resolution, low, gap, level = sides.resolution, sides.low, sides.gap, sides.level
    scaled = -powers / resolution + _EPS
    if not _finite(scaled):
        return None  # math.floor would raise
    floored = -np.floor(scaled) * resolution
    into_band = (floored != 0.0) & (-floored < gap)
    floored = np.where(into_band, np.where(-gap >= low, -gap, 0.0), floored)
    result = np.where(floored != 0.0, floored, 0.0)
    rest = target - _sum(result)
    if rest < 0.0:
        candidates = _indices(np.floor((result - low) / resolution + _EPS) > 0.0)
        # `_apply_resolution`'s order: coarsest resolution, highest level, then index.
        order = candidates[np.lexsort((-level[candidates], -resolution[candidates]))]
        for step, run in _runs(order, resolution):
            for i in run:
                wanted = math.floor(-rest / step + _EPS)
                if wanted <= 0:
                    break
                value = float(result[i])
                steps = min(wanted, math.floor((value - float(low[i])) / step + _EPS))
                if steps <= 0 or (value == 0.0 and steps * step < float(gap[i])):
                    continue
                result[i] = value - steps * step
                rest += steps * step
    elif rest > 0.0:
        candidates = _indices(np.floor((-result - gap) / resolution + _EPS) > 0.0)
        order = candidates[np.lexsort((-level[candidates], -resolution[candidates]))][::-1]
        for step, run in _runs(order, resolution):
            for i in run:
                wanted = math.floor(rest / step + _EPS)
                if wanted <= 0:
                    break
                value = float(result[i])
                steps = min(wanted, max(math.floor((-value - float(gap[i])) / step + _EPS), 0))
                if steps <= 0:
                    continue
                result[i] = value + steps * step
                rest -= steps * step
    return result


def _distribute_fast(
    fill: _FastFill, target_w: float, units: Sequence[BatteryUnit], horizon_s: float
) -> Distribution | None:
    """`_distribute_python` on arrays, or None where plain Python must decide.

    Only call it with a finite, non-zero target and at least one unit.
    """
    discharge = target_w < 0.0
    with np.errstate(all="ignore"):
        pool = _read_pool(units, discharge, horizon_s)
        if pool is None:
            return None
        mirrored = _solve_fast(fill, target_w if discharge else -target_w, pool.sides)
        if mirrored is None:
            return None
        values = mirrored if discharge else -mirrored
        # The last guard: never hand out a power the unit's bounds do not allow.
        inside = (values == 0.0) | ((pool.single_lower <= values) & (values <= pool.single_upper))
        guarded = np.where(inside, values, 0.0)
        for i in pool.multi:
            value = float(values[i])
            guarded[i] = value if allows(pool.allowed[i], value) else 0.0
        powers = dict(zip(pool.inverter_ids, guarded.tolist(), strict=True))
        # Duplicate ids keep the last value: then only the dict has the right terms.
        total = _sum(guarded) if len(powers) == guarded.size else math.fsum(powers.values())
    return Distribution(powers, target_w - total)


def _distribute(
    fast_fill: _FastFill,
    fill: Fill,
    target_w: float,
    units: Sequence[BatteryUnit],
    horizon_s: float,
) -> Distribution:
    if len(units) >= _FAST_PATH_MIN_UNITS and math.isfinite(target_w) and target_w != 0.0:
        result = _distribute_fast(fast_fill, target_w, units, horizon_s)
        if result is not None:
            return result
    return _distribute_python(fill, target_w, units, horizon_s)


@dataclass(frozen=True, slots=True)
class SocBalancing:
    """Water-filling on a common normalised SoC level (the default; see module doc)."""

    horizon_s: float = DEFAULT_HORIZON_S

    def distribute(self, target_w: float, units: Sequence[BatteryUnit]) -> Distribution:
        """Split `target_w` (+ charges, − discharges) between `units`."""
        return _distribute(_water_fill_fast, water_fill, target_w, units, self.horizon_s)


@dataclass(frozen=True, slots=True)
class Proportional:
    """The Frequenz SDK's split: capacity × SoC headroom^exponent (for comparison)."""

    exponent: float = 1.0

    def distribute(self, target_w: float, units: Sequence[BatteryUnit]) -> Distribution:
        """Split `target_w` (+ charges, − discharges) between `units`."""
        return _distribute(
            _proportional_fill_fast(self.exponent),
            proportional_fill(self.exponent),
            target_w,
            units,
            DEFAULT_HORIZON_S,
        )
