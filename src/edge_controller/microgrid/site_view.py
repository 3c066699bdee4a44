"""Site-level readings derived from the telemetry cache: grid power, battery pools.

The grid guard and peak shaving both look at the site as a whole — the grid meter's
power and a group of batteries' measured power, envelope of bounds and SoC — rather
than component by component. These helpers read the cache once per decision; what
counts as fresh is the caller's (a grid limit wants a tighter staleness than
distribution does).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from edge_controller.microgrid.graph import BatteryPairs
from edge_controller.microgrid.telemetry import BatteryReading, TelemetryCache
from edge_controller.power.bounds import Range, hull


def meter_power_w(
    cache: TelemetryCache, meter_id: int | None, now: datetime, stale_after: timedelta
) -> float | None:
    """A meter's active power (W, + down), or None when stale, NaN or missing.

    Read for the grid meter (where + is import) and for feeder meters alike.
    """
    if meter_id is None:
        return None
    reading = cache.last_meter(meter_id)
    if reading is None or now - reading.sampled_at > stale_after:
        return None
    return reading.power_w if math.isfinite(reading.power_w) else None


@dataclass(frozen=True, slots=True)
class PoolView:
    """A group of batteries as measured now (W, %): NaN where unknown."""

    power_w: float
    """Their inverters' AC power, summed (+ charging), over the inverters that reported."""
    bounds: Range | None
    """Envelope of what their inverters and batteries allow together, None if unknown."""
    soc_pct: float
    """Capacity-weighted mean SoC; NaN if unknown."""
    silent: tuple[int, ...] = ()
    """Inverters that never reported a power: counted as 0 W (an inverter that has
    never spoken has most likely never been commanded either); NaN only if all are."""


def pool_view(pairs: BatteryPairs, cache: TelemetryCache, batteries: Iterable[int]) -> PoolView:
    """Read the latest telemetry of `batteries` (whole inverter groups) as one pool.

    The last reading is used even when old: a silent inverter that still delivers is
    best estimated by what it last reported (the distributor counts it the same way).
    """
    inverters = sorted({pairs.inverter_of(b) for b in batteries})
    power = 0.0
    silent: list[int] = []
    lower = upper = 0.0
    bounds_known = True
    energy = capacity = 0.0
    for inverter_id in inverters:
        reading = cache.last_inverter(inverter_id)
        if reading is None or not math.isfinite(reading.power_w):
            silent.append(inverter_id)
        else:
            power += reading.power_w
        envelope = _envelope(
            reading.bounds if reading is not None else None,
            [cache.last_battery(b) for b in pairs.batteries_of(inverter_id)],
        )
        if envelope is None:
            bounds_known = False
        else:
            lower += envelope.lower
            upper += envelope.upper
        for battery_id in pairs.batteries_of(inverter_id):
            battery = cache.last_battery(battery_id)
            if battery is not None and math.isfinite(battery.soc_pct * battery.capacity_wh):
                energy += battery.soc_pct * battery.capacity_wh
                capacity += battery.capacity_wh
    return PoolView(
        power_w=math.nan if inverters and len(silent) == len(inverters) else power,
        bounds=Range(lower, upper) if bounds_known and inverters else None,
        soc_pct=energy / capacity if capacity > 0 else math.nan,
        silent=tuple(silent),
    )


def _envelope(
    inverter_bounds: tuple[Range, ...] | None, batteries: list[BatteryReading | None]
) -> Range | None:
    """What an inverter and its batteries allow together, as one range around 0 W."""
    ranges: list[Range] = []
    if inverter_bounds:
        ranges.append(hull(inverter_bounds))
    battery_bounds = [b.bounds if b is not None else None for b in batteries]
    if battery_bounds and all(bounds for bounds in battery_bounds):
        known = [hull(bounds) for bounds in battery_bounds if bounds]
        ranges.append(Range(sum(r.lower for r in known), sum(r.upper for r in known)))
    if not ranges:
        return None
    low = max(r.lower for r in ranges)
    high = min(r.upper for r in ranges)
    if not (math.isfinite(low) and math.isfinite(high)) or low > high:
        return None
    return Range(min(low, 0.0), max(high, 0.0))
