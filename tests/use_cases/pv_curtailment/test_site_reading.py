"""What PV curtailment reads of the site: stale is unknown, out of service is left out."""

from __future__ import annotations

import math
from datetime import timedelta

from edge_controller.microgrid.graph import BatteryPairs, InverterBatteries
from edge_controller.microgrid.telemetry import (
    BatteryReading,
    InverterReading,
    MeterReading,
    TelemetryCache,
)
from edge_controller.power.bounds import Range
from edge_controller.use_cases.pv_curtailment.decide import PvSite
from edge_controller.use_cases.pv_curtailment.site_reading import read_site
from tests.table import START

KW = 1000.0
STALE_AFTER = timedelta(seconds=3)
PAIRS = BatteryPairs((InverterBatteries(10, (11,)), InverterBatteries(20, (21,))))


def pv(cache: TelemetryCache, inverter_id: int, power_kw: float, rated_kw: float | None) -> None:
    bounds = None if rated_kw is None else (Range(-rated_kw * KW, 0.0),)
    cache.update(
        InverterReading(
            inverter_id, START, power_kw * KW, bounds, frozenset({"READY"}), frozenset()
        )
    )


def battery_group(
    cache: TelemetryCache,
    inverter_id: int,
    power_kw: float,
    upper_kw: float,
    *,
    state: str = "READY",
    age_s: float = 0.0,
) -> None:
    at = START - timedelta(seconds=age_s)
    bounds = (Range(-100 * KW, upper_kw * KW),)
    cache.update(
        InverterReading(inverter_id, at, power_kw * KW, bounds, frozenset({state}), frozenset())
    )
    cache.update(
        BatteryReading(
            inverter_id + 1,
            at,
            50.0,
            0.0,
            100.0,
            100_000.0,
            power_kw * KW,
            bounds,
            frozenset({state}),
            frozenset(),
        )
    )


def site(cache: TelemetryCache, *, inverters: tuple[int, ...] = (50, 51)) -> PvSite:
    return read_site(
        PAIRS,
        cache,
        1,
        inverters=inverters,
        batteries=(11, 21),
        now=START,
        stale_after=STALE_AFTER,
    )


def test_the_pv_is_summed_and_its_rating_too() -> None:
    cache = TelemetryCache()
    cache.update(MeterReading(1, START, -50 * KW))
    pv(cache, 50, -100, 150)
    pv(cache, 51, -40, 50)
    reading = site(cache)
    assert reading.grid_w == -50 * KW
    assert reading.pv_w == -140 * KW
    assert reading.pv_rated_w == 200 * KW


def test_one_silent_pv_inverter_makes_the_pv_unknown_and_an_unknown_bound_the_rating() -> None:
    cache = TelemetryCache()
    pv(cache, 50, -100, 150)
    assert math.isnan(site(cache).pv_w)  # 51 never reported
    pv(cache, 51, -40, None)
    assert site(cache).pv_rated_w == math.inf
    assert site(cache).grid_w is None  # no grid meter reading


def test_the_batteries_in_service_are_summed_out_of_service_ones_left_out() -> None:
    cache = TelemetryCache()
    battery_group(cache, 10, 30, 100)
    battery_group(cache, 20, 0, 50)
    reading = site(cache)
    assert (reading.battery_w, reading.battery_upper_w) == (30 * KW, 150 * KW)
    assert reading.battery_lower_w == -200 * KW  # each group may discharge 100 kW
    assert reading.battery_headroom_w == 120 * KW
    battery_group(cache, 20, -40, 50, state="ERROR")  # takes no ask: left out
    assert (site(cache).battery_w, site(cache).battery_upper_w) == (30 * KW, 100 * KW)
    assert site(cache).battery_lower_w == -100 * KW
    battery_group(cache, 20, 0, 50, age_s=4)  # silent beyond stale_after
    assert site(cache).battery_upper_w == 100 * KW
    battery_group(cache, 20, 60, 50)  # beyond its bound (a bound that just fell)
    assert site(cache).battery_headroom_w == 60 * KW


def test_a_fresh_nan_battery_power_makes_the_batteries_unknown() -> None:
    cache = TelemetryCache()
    battery_group(cache, 10, math.nan, 100)
    battery_group(cache, 20, 0, 50)
    assert math.isnan(site(cache).battery_w)
    assert math.isnan(site(cache).battery_headroom_w)
