"""The storage units a bidding plan moves, and the one window that keeps each of them safe. Pure.

The power distribution (`power.distribution.SocBalancing`) splits every battery target
between *units* (an inverter and its batteries) by water-filling on a common
normalised SoC level: 0 at a unit's lower SoC bound, 1 at its upper. A discharge takes
the fullest units first, a charge the emptiest, and units that meet move together.

So the pool, as a planner may treat it, is not the units' average: `PoolWindow.of`
puts its floor where *every* unit sits at the common level of the most binding
reserve (the highest reserve in normalised terms), and its ceiling at the lowest
normalised ceiling. A pool that stays above that floor never asks the distribution to
take a unit below its own reserve while the units move together; `unit_paths` replays
the distribution step by step for what the level argument does not cover (a unit at
its power limit while another is near its floor).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


def _efficiency(value: float) -> float:
    return min(1.0, max(1e-6, value)) if math.isfinite(value) else 1.0


@dataclass(frozen=True, slots=True)
class StorageUnit:
    """One unit of the distribution (an inverter and its batteries), as the plan sees it.

    SoCs in % of `capacity_wh`; `soc_lower_pct` / `soc_upper_pct` are the bounds the
    distribution normalises with (0 at the lower bound, 1 at the upper), `floor_pct` /
    `ceiling_pct` the ones the plan keeps (the reserve, the taper). Powers W ≥ 0.
    """

    unit_id: int
    capacity_wh: float
    soc_pct: float
    soc_lower_pct: float
    soc_upper_pct: float
    floor_pct: float
    """Never below: max(reserve, lower bound + taper)."""
    ceiling_pct: float
    """Never above: upper bound − taper."""
    charge_max_w: float
    discharge_max_w: float
    """Largest discharge, as a magnitude."""
    efficiency: float = 0.95
    """One-way (AC ↔ stored), 0 < x ≤ 1."""

    @property
    def window_wh(self) -> float:
        """Energy between the distribution's SoC bounds."""
        return self.capacity_wh * max(0.0, self.soc_upper_pct - self.soc_lower_pct) / 100.0

    def level(self, soc_pct: float) -> float:
        """A SoC as the distribution normalises it: 0 at the lower bound, 1 at the upper."""
        span = self.soc_upper_pct - self.soc_lower_pct
        return 0.5 if span <= 0 else (soc_pct - self.soc_lower_pct) / span

    def soc_at(self, level: float) -> float:
        """The SoC (%) at a normalised level."""
        return self.soc_lower_pct + level * (self.soc_upper_pct - self.soc_lower_pct)


@dataclass(frozen=True, slots=True)
class PoolWindow:
    """The units as one store whose floor and ceiling keep every unit in its window (Wh).

    See the module docstring: the floor is where every unit sits at the common
    normalised level of the most binding reserve; `energy_wh` is what is stored now.
    """

    energy_wh: float
    floor_wh: float
    ceiling_wh: float
    floor_level: float
    ceiling_level: float
    charge_max_w: float
    discharge_max_w: float
    efficiency_low: float
    efficiency_high: float

    @classmethod
    def of(cls, units: Sequence[StorageUnit]) -> PoolWindow:
        """Aggregate `units` (see the class docstring).

        Raises:
            ValueError: no unit.
        """
        if not units:
            raise ValueError("units: expected at least one storage unit")
        floor_level = max(u.level(u.floor_pct) for u in units)
        ceiling_level = min(u.level(u.ceiling_pct) for u in units)
        return cls(
            energy_wh=math.fsum(u.capacity_wh * u.soc_pct / 100.0 for u in units),
            floor_wh=math.fsum(u.capacity_wh * u.soc_at(floor_level) / 100.0 for u in units),
            ceiling_wh=math.fsum(u.capacity_wh * u.soc_at(ceiling_level) / 100.0 for u in units),
            floor_level=floor_level,
            ceiling_level=ceiling_level,
            charge_max_w=math.fsum(max(0.0, u.charge_max_w) for u in units),
            discharge_max_w=math.fsum(max(0.0, u.discharge_max_w) for u in units),
            efficiency_low=min(_efficiency(u.efficiency) for u in units),
            efficiency_high=max(_efficiency(u.efficiency) for u in units),
        )

    @property
    def efficiency(self) -> float:
        """The nominal one-way efficiency (between the worst and the best)."""
        return math.sqrt(self.efficiency_low * self.efficiency_high)


__all__ = ["PoolWindow", "StorageUnit"]
