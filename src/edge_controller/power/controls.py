"""The operator's global power limit, as arithmetic on targets (watts).

`[controls] power_limit` bounds what the batteries do in total, whatever the use
cases ask: the sum of |target| over every running battery target stays within it.
Summing magnitudes (not signed powers) is deliberately conservative: a 300 kW
charge on one group and a 300 kW discharge on another are 600 kW through the site's
cables, even though they cancel at the grid meter.
"""

from __future__ import annotations

import math
from collections.abc import Iterable


def limit_target(target_w: float, others_w: Iterable[float], limit_w: float | None) -> float:
    """The part of `target_w` that fits in `limit_w` next to the other targets.

    The sign is kept; the magnitude shrinks to what is left of the limit after the
    other running targets (never below 0). No limit: the target unchanged.
    """
    if limit_w is None or not math.isfinite(target_w):
        return target_w
    left = max(0.0, limit_w - sum(abs(w) for w in others_w))
    return math.copysign(min(abs(target_w), left), target_w) if target_w else target_w
