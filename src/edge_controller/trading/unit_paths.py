"""What the power distribution does to each storage unit under a sequence of pool powers. Pure.

The optimizer (`optimizer`) plans the pool; the controller then splits every target
between the units with `power.distribution.SocBalancing`, once per control step. This
module replays that split — the same algorithm, on the units' own SoC windows, in
control steps — so that a plan's orders can be checked per unit before they are placed:

```
units (SoC, bounds, capacity, power, efficiency) ─┐
[(start, duration, pool power W)] ────────────────┴─► unit_paths ─► lowest / highest SoC per unit
```

Between the given powers the pool rests (0 W): nothing moves. Efficiency as the
simulator applies it: a unit's stored energy moves by `p · η` when charging and
`p / η` when discharging (AC power p, one-way η).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from edge_controller.power.bounds import Range
from edge_controller.power.distribution import BatteryUnit, SocBalancing
from edge_controller.trading.storage import StorageUnit

CONTROL_STEP: Final = timedelta(seconds=60)
"""How often the controller re-plans the split (the scenario's and the default actor's)."""


@dataclass(frozen=True, slots=True)
class PoolPower:
    """The pool's power over one interval (passive: + charges), W."""

    start: datetime
    duration: timedelta
    power_w: float


@dataclass(frozen=True, slots=True)
class UnitRange:
    """One unit's SoC over the replay: where it ended and its extremes (%)."""

    unit_id: int
    soc_end_pct: float
    soc_min_pct: float
    soc_max_pct: float


def unit_paths(
    units: Sequence[StorageUnit],
    powers: Sequence[PoolPower],
    *,
    step: timedelta = CONTROL_STEP,
) -> tuple[UnitRange, ...]:
    """Replay `powers` (in time order) through the distribution; return each unit's range.

    Raises:
        ValueError: a step that is not > 0.
    """
    if step <= timedelta(0):
        raise ValueError(f"step: expected > 0, got {step}")
    algorithm = SocBalancing()
    soc = {u.unit_id: u.soc_pct for u in units}
    low = dict(soc)
    high = dict(soc)
    for interval in sorted(powers, key=lambda p: p.start):
        if interval.power_w == 0.0 or not math.isfinite(interval.power_w):
            continue
        remaining = interval.duration
        while remaining > timedelta(0):
            dt = min(step, remaining)
            remaining -= dt
            hours = dt.total_seconds() / 3600.0
            split = algorithm.distribute(
                interval.power_w,
                [
                    BatteryUnit(
                        u.unit_id,
                        soc[u.unit_id],
                        u.soc_lower_pct,
                        u.soc_upper_pct,
                        u.capacity_wh,
                        (Range(-max(0.0, u.discharge_max_w), max(0.0, u.charge_max_w)),),
                    )
                    for u in units
                ],
            )
            for unit in units:
                power_w = split.power_w.get(unit.unit_id, 0.0)
                eta = min(1.0, max(1e-6, unit.efficiency))
                stored_w = power_w * eta if power_w > 0 else power_w / eta
                soc[unit.unit_id] += stored_w * hours / unit.capacity_wh * 100.0
                low[unit.unit_id] = min(low[unit.unit_id], soc[unit.unit_id])
                high[unit.unit_id] = max(high[unit.unit_id], soc[unit.unit_id])
    return tuple(
        UnitRange(u.unit_id, soc[u.unit_id], low[u.unit_id], high[u.unit_id]) for u in units
    )


def crossings(
    units: Sequence[StorageUnit], ranges: Sequence[UnitRange], *, tolerance_pct: float = 1e-6
) -> dict[int, float]:
    """Return how far each unit that left its window went out (SoC points).

    + below its floor, − above its ceiling; empty when every unit stayed within
    `[floor, ceiling]`. A unit that starts outside counts only if it moves further out.
    """
    by_id = {r.unit_id: r for r in ranges}
    found: dict[int, float] = {}
    for unit in units:
        path = by_id[unit.unit_id]
        below = (
            max(0.0, unit.floor_pct - path.soc_min_pct) if path.soc_min_pct < unit.soc_pct else 0
        )
        above = (
            max(0.0, path.soc_max_pct - unit.ceiling_pct) if path.soc_max_pct > unit.soc_pct else 0
        )
        if below > tolerance_pct:
            found[unit.unit_id] = below
        elif above > tolerance_pct:
            found[unit.unit_id] = -above
    return found


__all__ = ["CONTROL_STEP", "PoolPower", "UnitRange", "crossings", "unit_paths"]
