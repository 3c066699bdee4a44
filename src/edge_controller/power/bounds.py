"""Sets of allowed power values, as the Microgrid API describes them.

The API gives a component's bounds as a list of closed ranges whose *union* is
allowed; an exclusion band around zero appears as a gap, e.g. inclusion [-10, 10] kW
with exclusion (-1, 1) kW is `[[-10000, -1000], [1000, 10000]]`. For power, 0 W is
always allowed whatever the bounds say. Values are watts (floats), passive sign
convention: positive charges, negative discharges.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True, order=True)
class Range:
    """A closed range `[lower, upper]` of watts; either end may be infinite."""

    lower: float
    upper: float

    def __post_init__(self) -> None:
        """Reject NaN and inverted ranges: they can only come from a bug or bad input."""
        if math.isnan(self.lower) or math.isnan(self.upper):
            raise ValueError(f"a range cannot have NaN ends, got [{self.lower}, {self.upper}]")
        if self.lower > self.upper:
            raise ValueError(f"lower must be <= upper, got [{self.lower}, {self.upper}]")

    def contains(self, value: float) -> bool:
        """Tell whether `value` lies inside this closed range."""
        return self.lower <= value <= self.upper

    def nearest(self, value: float) -> float:
        """The value of this range nearest `value` (`value` itself when inside).

        One range only: 0 W is not special here, unlike `clamp` over a union.
        """
        return min(max(value, self.lower), self.upper)


UNBOUNDED = Range(-math.inf, math.inf)


def merge(ranges: Iterable[Range]) -> tuple[Range, ...]:
    """Merge overlapping or touching ranges into a sorted, disjoint tuple.

    `[[0, 10], [5, 15], [20, 30]]` becomes `[[0, 15], [20, 30]]`, as the Microgrid API
    does for added bounds.
    """
    merged: list[Range] = []
    for current in sorted(ranges):
        if merged and current.lower <= merged[-1].upper:
            last = merged[-1]
            merged[-1] = Range(last.lower, max(last.upper, current.upper))
        else:
            merged.append(current)
    return tuple(merged)


def intersect(left: Sequence[Range], right: Sequence[Range]) -> tuple[Range, ...]:
    """Return the values allowed by both unions of ranges, merged."""
    pieces = (
        Range(max(a.lower, b.lower), min(a.upper, b.upper))
        for a in left
        for b in right
        if max(a.lower, b.lower) <= min(a.upper, b.upper)
    )
    return merge(pieces)


def inclusion_exclusion(inclusion: Range, exclusion: Range | None = None) -> tuple[Range, ...]:
    """Build the union form from an inclusion range minus an open exclusion band.

    The exclusion band `(lower, upper)` is open: its ends stay allowed. A band that
    does not overlap the inclusion range removes nothing.
    """
    if exclusion is None or exclusion.lower >= exclusion.upper:
        return (inclusion,)
    pieces = []
    if inclusion.lower <= exclusion.lower:
        pieces.append(Range(inclusion.lower, min(inclusion.upper, exclusion.lower)))
    if inclusion.upper >= exclusion.upper:
        pieces.append(Range(max(inclusion.lower, exclusion.upper), inclusion.upper))
    return merge(pieces)


def allows(ranges: Sequence[Range], power_w: float) -> bool:
    """Tell whether `power_w` is allowed: inside one of the ranges, or exactly 0 W."""
    if power_w == 0.0:
        return True
    if math.isnan(power_w):
        return False
    return any(r.contains(power_w) for r in ranges)


def hull(ranges: Sequence[Range]) -> Range:
    """Return the smallest single range covering all of `ranges` (0 W if empty)."""
    if not ranges:
        return Range(0.0, 0.0)
    return Range(min(r.lower for r in ranges), max(r.upper for r in ranges))


def clamp(ranges: Sequence[Range], power_w: float) -> float:
    """Return the allowed value nearest to `power_w` (ties go toward 0 W).

    Used by the simulator to apply a standing command after bounds shrank under it
    (e.g. a battery reaching its SoC limit): the device delivers what it can.
    """
    if allows(ranges, power_w):
        return power_w
    best = 0.0
    for candidate_range in ranges:
        nearest = min(max(power_w, candidate_range.lower), candidate_range.upper)
        if abs(nearest - power_w) < abs(best - power_w):
            best = nearest
    return best
