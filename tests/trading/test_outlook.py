"""The outlook: periods, production, load and price per period, and the pool the bidder sees."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_controller.microgrid.graph import BatteryPairs, InverterBatteries
from edge_controller.microgrid.telemetry import BatteryReading, InverterReading, TelemetryCache
from edge_controller.power.bounds import Range
from edge_controller.trading.bids import BatteryPool, Order, PeriodOutlook, Side, Strategy
from edge_controller.trading.bids import build_orders as build
from edge_controller.trading.optimizer import Committed
from edge_controller.trading.outlook import (
    HourlyPrices,
    SiteProduction,
    committed_energy_wh,
    committed_pool,
    delivery_starts,
    flat_load,
    measured_power_w,
    period_outlooks,
    pool_from_telemetry,
    production_w,
    units_from_telemetry,
)
from edge_controller.weather.messages import ForecastStep, GeoLocation, WeatherForecast
from edge_controller.weather.production import pv_power_w, wind_power_w
from edge_controller.weather.wind import wind_speed_at_height
from tests.properties import examples

BERLIN = GeoLocation(52.52, 13.40, "DE")
NOON = datetime(2026, 6, 21, 12, 0, tzinfo=UTC)
QUARTER = timedelta(minutes=15)
GATE = timedelta(minutes=5)


def forecast(
    first: datetime = NOON - timedelta(hours=1),
    hours: int = 3,
    *,
    ghi: float = 700.0,
    wind_10m: float = 6.0,
) -> WeatherForecast:
    steps = tuple(
        ForecastStep(first + i * QUARTER, 20.0, wind_10m, wind_10m * 1.39, 270.0, ghi)
        for i in range(hours * 4 + 1)
    )
    return WeatherForecast(BERLIN, first, "test", steps)


# ---------------------------------------------------------------- periods


def test_the_next_periods_are_those_whose_gate_is_still_open() -> None:
    assert delivery_starts(NOON + timedelta(minutes=7), QUARTER, GATE, 3) == [
        NOON + QUARTER,
        NOON + 2 * QUARTER,
        NOON + 3 * QUARTER,
    ]
    # At 12:10 the gate of 12:15 has just closed.
    assert delivery_starts(NOON + timedelta(minutes=10), QUARTER, GATE, 1) == [NOON + 2 * QUARTER]
    assert delivery_starts(NOON + timedelta(minutes=9, seconds=59), QUARTER, GATE, 1) == [
        NOON + QUARTER
    ]


# ---------------------------------------------------------------- production


def test_a_site_without_pv_or_wind_needs_no_forecast() -> None:
    assert production_w(None, SiteProduction(), NOON, QUARTER) == 0.0


def test_production_is_unknown_without_a_forecast_covering_the_period() -> None:
    site = SiteProduction(pv_peak_w=100_000)
    assert production_w(None, site, NOON, QUARTER) is None
    late = forecast(NOON + timedelta(minutes=5))  # starts after the period's first instant
    assert production_w(late, site, NOON, QUARTER) is None
    no_sun = forecast(ghi=math.nan)
    assert production_w(no_sun, site, NOON, QUARTER) is None
    assert production_w(no_sun, SiteProduction(wind_rated_w=50_000), NOON, QUARTER) is not None


def test_production_is_the_mean_of_the_models_at_three_instants_as_a_magnitude() -> None:
    weather = forecast()
    site = SiteProduction(pv_peak_w=200_000, wind_rated_w=100_000)
    instants = [NOON + timedelta(seconds=s) for s in (150, 450, 750)]
    hub_ms = float(wind_speed_at_height(6.0, site.hub_height_m))
    expected = (
        -sum(
            pv_power_w(700.0, 20.0, when, BERLIN, 200_000, wind_speed_ms=6.0)
            + wind_power_w(hub_ms, 100_000)
            for when in instants
        )
        / 3
    )
    produced = production_w(weather, site, NOON, QUARTER)
    assert produced == pytest.approx(expected)
    assert 50_000 < expected < 300_000  # midsummer noon sun and a fresh breeze


def test_period_outlooks_leave_out_what_the_forecast_does_not_cover() -> None:
    weather = forecast(NOON - timedelta(hours=1), hours=1)  # ends at 12:00, lasts to 12:15
    outlooks = period_outlooks(
        [NOON - QUARTER, NOON, NOON + QUARTER],
        QUARTER,
        forecast=weather,
        site=SiteProduction(wind_rated_w=100_000),
        load_w=lambda at: 1000.0 * at.minute,
        expected_price=lambda start: 50.0 + start.minute,
    )
    assert [o.start for o in outlooks] == [NOON - QUARTER, NOON]
    first = outlooks[0]
    assert first.expected_price == 95.0  # 11:45
    assert first.load_w == pytest.approx(1000 * (47 + 52 + 57) / 3)  # 11:47:30, 11:52:30, …
    assert first.production_w > 0


def test_a_flat_load_is_the_same_at_every_instant_and_never_negative() -> None:
    assert flat_load(2500.0)(NOON) == 2500.0
    with pytest.raises(ValueError, match="load_w"):
        flat_load(-1.0)


# ---------------------------------------------------------------- prices


def test_prices_by_hour_of_day_with_fallbacks() -> None:
    prices = HourlyPrices(80.0)
    assert prices(NOON) == 80.0  # nothing known yet
    prices.record(NOON - timedelta(days=1), 100.0)
    prices.record(NOON - timedelta(days=1) + QUARTER, 120.0)
    prices.record(NOON - timedelta(days=1, hours=3), 40.0)
    assert prices(NOON + timedelta(minutes=30)) == 110.0  # the 12:xx prices
    assert prices(NOON + timedelta(hours=5)) == pytest.approx(260 / 3)  # no 17:xx: all
    prices.record(NOON - timedelta(days=1), 100.0)  # a replayed stream counts once
    prices.record(NOON - timedelta(days=1), math.nan)  # ignored
    assert len(prices) == 3
    prices.record(NOON + timedelta(days=7), 10.0)  # the day-old ones fall out of the week
    assert len(prices) == 1
    assert prices(NOON) == 10.0


# ---------------------------------------------------------------- commitments


def test_committed_energy_counts_what_is_left_of_each_period() -> None:
    commitments = [
        Committed(NOON, QUARTER, traded_w=-400_000),  # a sale, a third gone at 12:05
        Committed(NOON + QUARTER, QUARTER, open_w=200_000),  # a purchase still to come
        Committed(NOON - QUARTER, QUARTER, traded_w=-1e6),  # over
    ]
    sell_wh, buy_wh = committed_energy_wh(commitments, NOON + timedelta(minutes=5))
    assert sell_wh == pytest.approx(400_000 * 10 / 60)
    assert buy_wh == pytest.approx(200_000 / 4)


def test_a_trade_and_an_open_order_of_one_period_count_each_on_its_side() -> None:
    # A purchase traded and a sale still open in the same period: the sale may fill,
    # the purchase will be delivered; neither frees room for the other.
    both = Committed(NOON, QUARTER, traded_w=100_000, open_w=-300_000)
    assert committed_energy_wh([both], NOON) == pytest.approx((75_000, 25_000))


def test_the_committed_pool_shrinks_each_side_by_its_own_commitments_only() -> None:
    pool = BatteryPool(50.0, 1_000_000, 90.0, 500_000, 500_000, efficiency=0.9)
    reduced = committed_pool(pool, sell_wh=90_000, buy_wh=50_000)
    # Sellable at the meter: (50 − 20) % × 1 MWh × 0.9 = 270 kWh → 180 kWh.
    assert (reduced.soc_pct - 20) * 10_000 * 0.9 == pytest.approx(270_000 - 90_000)
    # Buyable at the meter: (90 − 50) % × 1 MWh / 0.9 → less 50 kWh.
    assert (reduced.soc_upper_pct - reduced.soc_pct) * 10_000 / 0.9 == pytest.approx(
        400_000 / 0.9 - 50_000
    )


pools = st.builds(
    BatteryPool,
    soc_pct=st.floats(0, 100),
    capacity_wh=st.floats(50_000, 5e6),
    soc_upper_pct=st.floats(0, 100),
    charge_max_w=st.floats(0, 3e6),
    discharge_max_w=st.floats(0, 3e6),
    efficiency=st.floats(0.5, 1.0),
)
strategies = st.builds(
    Strategy,
    reserve_soc_pct=st.floats(0, 100),
    price_spread=st.floats(0, 100),
    max_volume_mw=st.floats(0, 5),
)
price_lists = st.lists(st.floats(-500, 3000), min_size=2, max_size=10)


def _stored_wh(order: Order, efficiency: float) -> float:
    energy_wh = order.energy_mwh * 1e6
    return energy_wh / efficiency if order.side is Side.SELL else energy_wh * efficiency


@settings(max_examples=examples(300))
@given(pools, strategies, price_lists, price_lists)
def test_rounds_never_over_commit_together_whatever_fills(
    pool: BatteryPool, strategy: Strategy, first_prices: list[float], second_prices: list[float]
) -> None:
    """A second round, with the first round's orders still open, skipped and taken out
    of the pool, and with other prices and one period more: all orders of both rounds
    together keep the SoC in [reserve, upper] under any fill."""
    first = [PeriodOutlook(NOON + i * QUARTER, QUARTER, p) for i, p in enumerate(first_prices)]
    first_orders = build(first, pool, strategy)
    sell_wh, buy_wh = committed_energy_wh(
        [Committed(o.period_start, o.duration, open_w=o.battery_power_w) for o in first_orders],
        NOON,
    )
    second = [PeriodOutlook(NOON + i * QUARTER, QUARTER, p) for i, p in enumerate(second_prices)]
    second_orders = build(
        second,
        committed_pool(pool, sell_wh=sell_wh, buy_wh=buy_wh),
        strategy,
        skip={o.period_start for o in first_orders},
    )
    assert not {o.period_start for o in first_orders} & {o.period_start for o in second_orders}
    orders = first_orders + second_orders
    efficiency = min(1.0, max(1e-6, pool.efficiency))
    drained_pct = sum(_stored_wh(o, efficiency) for o in orders if o.side is Side.SELL)
    filled_pct = sum(_stored_wh(o, efficiency) for o in orders if o.side is Side.BUY)
    if any(o.side is Side.SELL for o in orders):
        assert (
            pool.soc_pct - drained_pct / pool.capacity_wh * 100 >= strategy.reserve_soc_pct - 1e-6
        )
    if any(o.side is Side.BUY for o in orders):
        assert pool.soc_pct + filled_pct / pool.capacity_wh * 100 <= pool.soc_upper_pct + 1e-6
    assert all(o.quantity_mw >= Decimal("0.1") for o in orders)


# ---------------------------------------------------------------- telemetry


def battery(
    component_id: int,
    soc: float,
    *,
    capacity_wh: float = 100_000,
    window: tuple[float, float] = (10, 90),
    bounds: tuple[float, float] = (-50_000, 50_000),
    at: datetime = NOON,
) -> BatteryReading:
    return BatteryReading(
        component_id=component_id,
        sampled_at=at,
        soc_pct=soc,
        soc_lower_pct=window[0],
        soc_upper_pct=window[1],
        capacity_wh=capacity_wh,
        power_w=0.0,
        bounds=(Range(*bounds),),
        states=frozenset({"READY"}),
        errors=frozenset(),
    )


def inverter(
    component_id: int, bounds: tuple[float, float] | None, power_w: float = 0.0
) -> InverterReading:
    return InverterReading(
        component_id=component_id,
        sampled_at=NOON,
        power_w=power_w,
        bounds=(Range(*bounds),) if bounds is not None else None,
        states=frozenset({"READY"}),
        errors=frozenset(),
    )


PAIRS = BatteryPairs(
    (InverterBatteries(10, (11,)), InverterBatteries(20, (21, 22)), InverterBatteries(30, (31,)))
)


def cache_with(*readings: BatteryReading | InverterReading) -> TelemetryCache:
    cache = TelemetryCache(timedelta(seconds=10))
    for reading in readings:
        cache.update(reading)
    return cache


def test_the_pool_keeps_each_batterys_own_window_and_the_inverters_bounds() -> None:
    cache = cache_with(
        battery(11, 50),  # 30 kWh above the 20 % reserve, 40 kWh of room
        battery(21, 30, window=(25, 80)),  # its own floor 25 %: 5 kWh; room 50 kWh
        battery(22, 15),  # below the reserve: nothing to sell; room 75 kWh
        battery(31, 60, at=NOON - timedelta(minutes=1)),  # stale: left out
        inverter(10, (-40_000, 40_000)),  # caps battery 11's 50 kW
        inverter(20, (-200_000, 200_000)),
        inverter(30, (-50_000, 50_000)),
    )
    pool = pool_from_telemetry(cache, PAIRS, NOON, reserve_soc_pct=20, efficiency=0.9)
    assert pool is not None
    assert pool.capacity_wh == 300_000
    assert (pool.soc_pct - 20) / 100 * pool.capacity_wh == pytest.approx(35_000)
    assert (pool.soc_upper_pct - pool.soc_pct) / 100 * pool.capacity_wh == pytest.approx(165_000)
    assert (pool.charge_max_w, pool.discharge_max_w) == (140_000, 140_000)
    assert pool.efficiency == 0.9
    only = pool_from_telemetry(cache, PAIRS, NOON, reserve_soc_pct=20, batteries={21})
    assert only is not None
    assert only.capacity_wh == 100_000
    assert only.charge_max_w == 50_000
    assert pool_from_telemetry(cache, PAIRS, NOON, reserve_soc_pct=20, batteries={31}) is None


def test_the_units_are_the_inverters_as_the_distribution_splits_a_target() -> None:
    cache = cache_with(
        battery(11, 50),
        battery(21, 30, window=(25, 80)),  # its lower bound lifts the unit's floor to 25 %
        battery(22, 15),
        battery(31, 60, at=NOON - timedelta(minutes=1)),  # stale: unit 30 left out
        inverter(10, (-40_000, 40_000)),
        inverter(20, (-200_000, 200_000)),
    )
    units = units_from_telemetry(cache, PAIRS, NOON, reserve_soc_pct=20, efficiency=0.9)
    assert [u.unit_id for u in units] == [10, 20]
    one, two = units
    assert (one.capacity_wh, one.soc_pct, one.floor_pct, one.ceiling_pct) == (100_000, 50, 20, 90)
    assert (one.charge_max_w, one.discharge_max_w, one.efficiency) == (40_000, 40_000, 0.9)
    assert two.capacity_wh == 200_000
    assert two.soc_pct == pytest.approx(22.5)  # by capacity, as the distribution weighs
    assert (two.soc_lower_pct, two.soc_upper_pct) == pytest.approx((17.5, 85.0))
    assert (two.floor_pct, two.ceiling_pct) == (25, 80)
    assert (two.charge_max_w, two.discharge_max_w) == (100_000, 100_000)  # the batteries' sum
    only = units_from_telemetry(cache, PAIRS, NOON, reserve_soc_pct=20, batteries={21})
    assert [(u.unit_id, u.capacity_wh) for u in only] == [(20, 100_000)]
    assert units_from_telemetry(cache, PAIRS, NOON, reserve_soc_pct=20, batteries={31}) == []


def test_an_inverter_without_bounds_moves_nothing() -> None:
    cache = cache_with(battery(11, 50), inverter(10, None))
    pool = pool_from_telemetry(cache, PAIRS, NOON, reserve_soc_pct=20, batteries={11})
    assert pool is not None
    assert (pool.charge_max_w, pool.discharge_max_w) == (0.0, 0.0)


def test_measured_power_is_the_trading_inverters_sum_or_unknown() -> None:
    cache = cache_with(inverter(10, None, -30_000), inverter(20, None, -20_000))
    assert measured_power_w(cache, PAIRS, NOON, batteries={11, 22}) == -50_000
    assert measured_power_w(cache, PAIRS, NOON, batteries={11, 31}) is None  # 30: no reading
    cache.update(inverter(30, None, math.nan))
    assert measured_power_w(cache, PAIRS, NOON) is None
