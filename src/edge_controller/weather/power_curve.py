"""A wind turbine's power curve given as points: the fraction of rated power by wind speed.

The simulator's turbines (a site file's `power_curve`) and the market's prosumer
turbines (a market file's `power_curve`) read their output off the same kind of
curve, with the same default, so both evaluate it here: one rule for what a turbine
makes between, below and beyond the points a file gives.

The rule is the one `production` gets from `windpowerlib` for library turbines:
linear between the points, 0 below the first (the turbine has not cut in) and above
the last (it has cut out). A speed that is not a number makes nothing.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Sequence
from operator import itemgetter
from typing import Final

from edge_controller.common.toml_reader import number

DEFAULT_WIND_CURVE: Final[tuple[tuple[float, float], ...]] = (
    (0.0, 0.0),
    (3.0, 0.0),
    (5.0, 0.12),
    (7.0, 0.35),
    (9.0, 0.65),
    (11.0, 0.9),
    (12.5, 1.0),
    (25.0, 1.0),
)
"""Fraction of rated power by wind speed (m/s), shaped like a small turbine's curve;
above the last point the turbine cuts out. The default of both the simulator's site
file and the market file."""

_SPEED = itemgetter(0)


def read_curve(raw: object) -> tuple[tuple[float, float], ...] | None:
    """A file's `power_curve` as points, None unless it is a curve `wind_fraction` takes.

    At least two `[speed, fraction]` pairs, speeds ≥ 0 and strictly increasing,
    fractions 0-1. The simulator's site file and the market file read theirs here
    (each naming what it expected in its own words).
    """
    if not isinstance(raw, list) or len(raw) < 2:
        return None
    points: list[tuple[float, float]] = []
    for item in raw:
        if not (isinstance(item, list) and len(item) == 2):
            return None
        speed, fraction = number(item[0]), number(item[1])
        if speed is None or fraction is None or speed < 0 or not 0.0 <= fraction <= 1.0:
            return None
        points.append((speed, fraction))
    if any(b <= a for (a, _), (b, _) in itertools.pairwise(points)):
        return None
    return tuple(points)


def wind_fraction(curve: Sequence[tuple[float, float]], speed_m_s: float) -> float:
    """Return the fraction of rated power a turbine makes at `speed_m_s` along `curve`.

    `curve` is `(speed m/s, fraction)` points with increasing speeds, as both file
    readers check. Linear between the points; 0 below the first, above the last and
    for a NaN speed, so that no reading outside the curve makes power.
    """
    if not curve[0][0] <= speed_m_s <= curve[-1][0]:
        return 0.0
    index = bisect.bisect_right(curve, speed_m_s, key=_SPEED)
    if index == len(curve):  # exactly the last point
        return curve[-1][1]
    (lo_speed, lo), (hi_speed, hi) = curve[index - 1], curve[index]
    return lo + (hi - lo) * (speed_m_s - lo_speed) / (hi_speed - lo_speed)


__all__ = ["DEFAULT_WIND_CURVE", "read_curve", "wind_fraction"]
