"""The members: profiles, prosumers' batteries, the coal plant, and the weather seam."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_controller.servers.market.clearing import clear_period
from edge_controller.servers.market.model import (
    BatterySpec,
    DailyProfile,
    MarketState,
    ProsumerSpec,
    Weather,
    default_market,
    hourly_wind,
    initial_state,
    piecewise_curve,
    situation,
    weather_from_spec,
)
from tests.properties import examples
from tests.servers.market.conftest import CALM, NOON, coal, flat_market

RAMP = DailyProfile(tuple(float(h) for h in range(24)))


def test_daily_profile_interpolates_between_hours_and_wraps_at_midnight() -> None:
    assert RAMP.at(datetime(2026, 1, 1, 12, 30)) == pytest.approx(12.5)
    assert RAMP.at(datetime(2026, 1, 1, 23, 30)) == pytest.approx(11.5)  # halfway 23 → 0
    with pytest.raises(ValueError, match="24 hourly values"):
        DailyProfile((1.0,) * 23)


def test_power_curve_interpolates_and_cuts_out() -> None:
    curve = piecewise_curve([(3.0, 0.0), (13.0, 1.0), (25.0, 1.0)])
    assert [curve(v) for v in (0.0, 8.0, 13.0, 25.0, 25.1, float("nan"))] == [
        0.0,
        pytest.approx(0.5),
        1.0,
        1.0,
        0.0,
        0.0,
    ]


def test_hourly_wind_reads_local_time() -> None:
    wind = hourly_wind(RAMP, default_market().timezone)  # Europe/Berlin: UTC+2 in June
    assert wind(datetime(2026, 6, 21, 10, 0, tzinfo=UTC)) == pytest.approx(12.0)


def house(**changes: object) -> ProsumerSpec:
    """One house: a 10 kW turbine, 1 kW flat load, a 10 kWh / 4 kW battery half full."""
    base = ProsumerSpec(
        name="house",
        count=1,
        turbines_mw=(0.010,),
        peak_demand_mw=0.001,
        profile=DailyProfile.constant(1.0),
        batteries=(BatterySpec(0.010, 0.004, 0.004, 0.005),),
        input_ratio=0.5,
        output_ratio=1.0,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def windy(fraction: float) -> Weather:
    return Weather(wind_speed_at=lambda _t: 10.0, power_curve=lambda _v: fraction)


def test_a_surplus_is_partly_stored_and_the_rest_sold() -> None:
    spec = replace(flat_market(0.0), prosumers=(house(),))
    period = situation(spec, initial_state(spec), NOON, windy(0.5))  # 5 kW − 1 kW load
    assert period.turbine_mw == pytest.approx(0.005)
    assert period.battery_charge_mw == pytest.approx(0.002)  # input_ratio 0.5 of 4 kW
    assert period.surplus_mw == pytest.approx(0.002)
    assert period.shortfall_mw == 0.0
    assert period.next_state.battery_mwh[0] == pytest.approx(0.005 + 0.002 * 0.25)


def test_charging_stops_at_the_power_limit_and_when_full() -> None:
    spec = replace(flat_market(0.0), prosumers=(house(input_ratio=1.0),))
    strong = situation(spec, initial_state(spec), NOON, windy(1.0))  # 9 kW surplus
    assert strong.battery_charge_mw == pytest.approx(0.004)
    assert strong.surplus_mw == pytest.approx(0.005)
    full = situation(spec, MarketState((0.010,)), NOON, windy(1.0))
    assert full.battery_charge_mw == 0.0
    assert full.surplus_mw == pytest.approx(0.009)


def test_a_shortfall_is_drawn_from_the_battery_until_empty_then_bought() -> None:
    spec = replace(flat_market(0.0), prosumers=(house(output_ratio=0.5),))
    period = situation(spec, initial_state(spec), NOON, CALM)  # 1 kW load, no wind
    assert period.battery_discharge_mw == pytest.approx(0.0005)
    assert period.shortfall_mw == pytest.approx(0.0005)
    empty = situation(spec, MarketState((0.0,)), NOON, CALM)
    assert empty.battery_discharge_mw == 0.0
    assert empty.shortfall_mw == pytest.approx(0.001)


def test_stopped_turbines_produce_nothing_and_counts_multiply() -> None:
    spec = replace(flat_market(0.0), prosumers=(house(status=False, count=10),))
    period = situation(spec, initial_state(spec), NOON, windy(1.0))
    assert period.turbine_mw == 0.0
    assert period.prosumer_load_mw == pytest.approx(0.010)


def test_coal_plant_offers_max_production_times_ratio_only_when_on() -> None:
    assert coal(4.0, ratio=0.5).available_mw == 2.0
    assert coal(4.0, status=False).available_mw == 0.0


def test_the_weather_seam_drives_the_turbines() -> None:
    spec = default_market()
    still = situation(spec, initial_state(spec), NOON, CALM)
    breezy = situation(spec, initial_state(spec), NOON, weather_from_spec(spec))
    assert still.turbine_mw == 0.0
    assert breezy.turbine_mw > 0.0


def test_a_default_day_balances_and_the_price_follows_the_load() -> None:
    spec = default_market()
    weather = weather_from_spec(spec)
    state = initial_state(spec)
    prices = {}
    start = datetime(2026, 6, 21, 22, 0, tzinfo=UTC)  # local midnight
    for step in range(96):
        period = situation(spec, state, start + step * timedelta(minutes=15), weather)
        record = clear_period(spec, period, []).record
        state = period.next_state
        balance = record.production_mw - record.battery_charge_mw + record.battery_discharge_mw
        assert balance == pytest.approx(record.demand_mw, abs=0.005)
        assert record.carbon_kg == pytest.approx(record.coal_mw * 0.25 * 900)
        prices[step // 4] = record.price
    assert prices[3] < prices[19]  # 03:00 local (windy, quiet) is cheaper than 19:00 (peak)
    assert all(0 <= e <= 0.0135 for e in state.battery_mwh)


@settings(max_examples=examples(60), deadline=None)
@given(
    fraction=st.floats(min_value=0, max_value=1),
    energy=st.floats(min_value=0, max_value=0.010),
    input_ratio=st.floats(min_value=0, max_value=1),
    output_ratio=st.floats(min_value=0, max_value=1),
    load=st.floats(min_value=0, max_value=0.02),
)
def test_prosumer_batteries_stay_within_bounds_and_energy_balances(
    fraction: float, energy: float, input_ratio: float, output_ratio: float, load: float
) -> None:
    prosumer = house(input_ratio=input_ratio, output_ratio=output_ratio, peak_demand_mw=load)
    spec = replace(flat_market(0.0), prosumers=(prosumer,))
    period = situation(spec, MarketState((energy,)), NOON, windy(fraction))
    assert 0 <= period.next_state.battery_mwh[0] <= 0.010
    assert period.battery_charge_mw <= 0.004 + 1e-12
    assert period.battery_discharge_mw <= 0.004 + 1e-12
    assert min(period.surplus_mw, period.shortfall_mw) == 0.0
    inflow = period.turbine_mw + period.battery_discharge_mw + period.shortfall_mw
    outflow = period.prosumer_load_mw + period.battery_charge_mw + period.surplus_mw
    assert inflow == pytest.approx(outflow, abs=1e-12)
