"""What PV curtailment reads of the site at each decision, from the telemetry cache.

The decision (`decide.py`) takes six figures; this module makes them out of the
latest readings, with the freshness rule of the grid limits (`[grid] stale_after`):

- the grid meter's power: `None` when stale, NaN or missing (the decision holds);
- the PV's power: the controlled PV inverters' AC power summed; NaN as soon as one of
  them is stale or NaN (the decision holds rather than guess what it produces);
- the PV's rated production: the magnitude of each PV inverter's lower bound (what it
  may be told to produce at most), summed; `inf` while one is unknown;
- the batteries in service: their measured power, their charge bound (the upper
  end of their inverter's bounds with its batteries') and their discharge bound (the
  lower end), each summed over the battery inverters. A group that is out of
  service — its inverter or a battery silent beyond `stale_after`, or in a state that
  takes no commands (error, off, standby, ...) — is left out of all three: it takes
  no ask and absorbs nothing the controller can count on (its power is part of the
  rest of the site, in the grid power). A fresh
  reading with a NaN power makes the power NaN (hold); a group whose bounds are
  unknown has charge and discharge bounds of 0 W.

Pure: reads the cache it is given, no I/O. Passive sign convention (+ consumes or
charges, − produces); headroom and rating are magnitudes (W ≥ 0).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import datetime, timedelta

from edge_controller.microgrid.graph import BatteryPairs
from edge_controller.microgrid.site_view import meter_power_w, pool_view
from edge_controller.microgrid.telemetry import (
    BatteryReading,
    ComponentState,
    InverterReading,
    TelemetryCache,
)
from edge_controller.power.bounds import hull
from edge_controller.use_cases.pv_curtailment.decide import PvSite


def _fresh(
    reading: InverterReading | BatteryReading | None, now: datetime, stale_after: timedelta
) -> bool:
    return reading is not None and now - reading.sampled_at <= stale_after


def _in_service(reading: InverterReading | BatteryReading | None) -> bool:
    """Working, or saying nothing of its state (no reason to count it out)."""
    if reading is None:
        return False
    state = reading.state
    return state.is_working or state is ComponentState.UNKNOWN


def pv_power(
    cache: TelemetryCache, inverters: Iterable[int], now: datetime, stale_after: timedelta
) -> tuple[float, float]:
    """Return the PV inverters' power and rated production, each summed (W).

    The power is ≤ 0 while producing, NaN if any inverter's is stale or NaN; the
    rating is ≥ 0, `inf` if any inverter's bounds are unknown.
    """
    power = rated = 0.0
    for inverter_id in inverters:
        reading = cache.last_inverter(inverter_id)
        if reading is not None and reading.bounds:
            lower = hull(reading.bounds).lower
            rated += -lower if math.isfinite(lower) and lower <= 0 else math.inf
        else:
            rated = math.inf
        if reading is None or not _fresh(reading, now, stale_after):
            power = math.nan
        else:
            power += reading.power_w
    return power, rated


def batteries_in_service(
    pairs: BatteryPairs,
    cache: TelemetryCache,
    batteries: Iterable[int],
    now: datetime,
    stale_after: timedelta,
) -> tuple[float, float, float]:
    """Return the in-service batteries' measured power, charge and discharge bounds (W).

    Each summed. The power is + charging, NaN if a group in service reads NaN; the
    charge bound is ≥ 0, the discharge bound ≤ 0.
    """
    power = upper = lower = 0.0
    for inverter_id in sorted({pairs.inverter_of(b) for b in batteries}):
        group = pairs.batteries_of(inverter_id)
        readings: list[InverterReading | BatteryReading | None] = [
            cache.last_inverter(inverter_id),
            *(cache.last_battery(b) for b in group),
        ]
        if not all(
            r is not None and _fresh(r, now, stale_after) and _in_service(r) for r in readings
        ):
            continue
        view = pool_view(pairs, cache, group)
        power += view.power_w
        if view.bounds is not None:
            upper += max(0.0, view.bounds.upper)
            lower += min(0.0, view.bounds.lower)
    return power, upper, lower


def read_site(
    pairs: BatteryPairs,
    cache: TelemetryCache,
    grid_meter_id: int | None,
    *,
    inverters: Iterable[int],
    batteries: Iterable[int],
    now: datetime,
    stale_after: timedelta,
) -> PvSite:
    """The six figures of the module docstring, as of `now`."""
    pv_w, rated_w = pv_power(cache, inverters, now, stale_after)
    battery_w, battery_upper_w, battery_lower_w = batteries_in_service(
        pairs, cache, batteries, now, stale_after
    )
    return PvSite(
        grid_w=meter_power_w(cache, grid_meter_id, now, stale_after),
        pv_w=pv_w,
        battery_w=battery_w,
        battery_upper_w=battery_upper_w,
        pv_rated_w=rated_w,
        battery_lower_w=battery_lower_w,
    )
