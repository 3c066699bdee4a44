"""The pure site model, stepped by hand: no server, no clock, no sleeping."""

import dataclasses
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_controller.power.bounds import Range, allows
from edge_controller.servers.sim.errors import ErrorKind, SimError
from edge_controller.servers.sim.fault_spec import FaultKind
from edge_controller.servers.sim.model import (
    Metric,
    OperatingState,
    SiteModel,
    StateCode,
    battery_power_bounds,
    floor_to_resolution,
)
from edge_controller.servers.sim.site import SiteSpec, parse_site
from edge_controller.servers.sim.site_details import BatterySpec
from edge_controller.weather.power_curve import wind_fraction
from tests.conftest import NOON
from tests.properties import examples
from tests.servers.sim.sites import switched_site


def small_site(soc: float = 50.0, taper: float = 5.0, **inverter: Any) -> SiteSpec:
    return parse_site(
        {
            "microgrid": {"id": 1},
            "simulation": {"time_step": 1.0},
            "weather": {"irradiance": 500, "wind_speed": 9},
            "components": [
                {"id": 1, "kind": "grid"},
                {"id": 2, "kind": "meter", "parent": 1},
                {
                    "id": 10,
                    "kind": "battery_inverter",
                    "parent": 2,
                    "active_power_bounds": [-100_000, 100_000],
                    "resolution": 88,
                    "efficiency": 0.9,
                    **inverter,
                },
                {
                    "id": 11,
                    "kind": "battery",
                    "parent": 10,
                    "capacity": "100 kWh",
                    "initial_soc": soc,
                    "soc_bounds": [10, 90],
                    "power_bounds": [-50_000, 50_000],
                    "soc_taper": taper,
                },
                {"id": 20, "kind": "pv_inverter", "parent": 2, "peak_power": "30 kW"},
                {"id": 30, "kind": "wind_turbine", "parent": 2, "rated_power": "20 kW"},
                {"id": 40, "kind": "load", "parent": 2, "peak_power": "15 kW"},
                {"id": 50, "kind": "ev_charger", "parent": 2, "max_power": "11 kW"},
            ],
        }
    )


def value(model: SiteModel, cid: int, metric: Metric) -> float:
    sample = model.sample(cid, model.wall_time)
    return next(m.value for m in sample.metrics if m.metric is metric)


def test_power_magnitude_is_floored_to_the_resolution() -> None:
    assert floor_to_resolution(-1000, 88) == -968
    assert floor_to_resolution(1000, 88) == 968
    assert floor_to_resolution(87, 88) == 0.0
    model = SiteModel(small_site(), NOON)
    assert model.set_active_power(10, -1000, NOON).applied_w == -968


def test_discharging_lowers_soc_and_charging_raises_it() -> None:
    model = SiteModel(small_site(), NOON)
    model.set_active_power(10, -36_000 + 36_000 % 88, NOON)
    model.step(NOON + timedelta(seconds=59))
    assert model.soc_pct(11) < 50.0
    assert model.dc_power_w(11) < model.ac_power_w(10) < 0  # losses: the battery gives more
    model.set_active_power(10, 17_600, NOON + timedelta(seconds=59))
    before = model.soc_pct(11)
    model.step(NOON + timedelta(seconds=100))
    assert model.soc_pct(11) > before
    assert 0 < model.dc_power_w(11) < model.ac_power_w(10)


def test_command_expires_back_to_zero_after_its_lifetime() -> None:
    model = SiteModel(small_site(), NOON)
    record = model.set_active_power(10, -8_800, NOON, lifetime_s=10)
    assert record.valid_until == NOON + timedelta(seconds=10)
    model.step(NOON + timedelta(seconds=9))
    assert model.ac_power_w(10) == pytest.approx(-8_800)
    model.step(NOON + timedelta(seconds=11))
    assert model.ac_power_w(10) == 0.0
    assert value(model, 11, Metric.DC_POWER) == 0.0


def test_default_lifetime_is_60_s_and_out_of_range_lifetimes_are_refused() -> None:
    model = SiteModel(small_site(), NOON)
    assert model.set_active_power(10, 880, NOON).valid_until == NOON + timedelta(seconds=60)
    for lifetime in (9, 901):
        with pytest.raises(SimError) as caught:
            model.set_active_power(10, 880, NOON, lifetime_s=lifetime)
        assert caught.value.kind is ErrorKind.INVALID_ARGUMENT


def test_power_outside_bounds_is_refused_but_zero_is_always_allowed() -> None:
    model = SiteModel(small_site(exclusion_bounds=[-2_000, 2_000]), NOON)
    with pytest.raises(SimError) as caught:
        model.set_active_power(10, -60_000, NOON)  # the battery allows only 50 kW
    assert caught.value.kind is ErrorKind.OUT_OF_RANGE
    assert "outside its bounds" in caught.value.message
    with pytest.raises(SimError):
        model.set_active_power(10, 1_000, NOON)  # inside the exclusion band
    with pytest.raises(SimError, match="floors to 1936"):
        model.set_active_power(10, 2_000, NOON)  # 2000 floors into the band
    assert model.set_active_power(10, 0.0, NOON).applied_w == 0.0


def test_charging_stops_at_the_upper_soc_bound() -> None:
    model = SiteModel(small_site(soc=88.0, taper=0.0), NOON)
    model.set_active_power(10, 44_000, NOON, lifetime_s=900)
    model.step(NOON + timedelta(minutes=10))
    assert model.soc_pct(11) == pytest.approx(90.0)
    assert model.ac_power_w(10) == 0.0
    with pytest.raises(SimError):
        model.set_active_power(10, 8_800, NOON + timedelta(minutes=10))
    model.set_active_power(10, -8_800, NOON + timedelta(minutes=10))  # discharging is fine


def test_power_bounds_taper_near_the_soc_limits() -> None:
    spec = small_site().by_id[11].details
    assert isinstance(spec, BatterySpec)
    assert battery_power_bounds(spec, 50.0) == Range(-50_000, 50_000)
    assert battery_power_bounds(spec, 87.5) == Range(-50_000, 25_000)
    assert battery_power_bounds(spec, 12.5) == Range(-25_000, 50_000)
    assert battery_power_bounds(spec, 95.0) == Range(-50_000, 0.0)


def test_grid_meter_is_the_sum_of_all_flows() -> None:
    model = SiteModel(small_site(), NOON)
    model.set_active_power(10, -17_600, NOON)
    model.set_active_power(50, 11_000, NOON)
    model.step(NOON + timedelta(seconds=5))
    leaves = [model.ac_power_w(cid) for cid in (10, 20, 30, 40, 50)]
    assert model.ac_power_w(2) == pytest.approx(sum(leaves))
    assert model.ac_power_w(1) == pytest.approx(sum(leaves))
    assert model.ac_power_w(20) == pytest.approx(-15_000)  # 30 kW peak at 500 W/m²
    curve = model.site.by_id[30].details.power_curve  # type: ignore[union-attr]
    assert model.ac_power_w(30) == pytest.approx(-20_000 * wind_fraction(curve, 9))
    assert 0 < wind_fraction(curve, 9) < 1


def test_speed_scales_energy_but_not_command_expiry() -> None:
    model = SiteModel(small_site(), NOON, speed=60)
    model.set_active_power(10, -8_800, NOON, lifetime_s=10)
    energy_before = model.energy_wh(11)
    model.step(NOON + timedelta(seconds=5))
    # 5 wall seconds at x60 = 5 physics minutes of about 8.8 kW / 0.9 efficiency.
    assert energy_before - model.energy_wh(11) == pytest.approx(8_800 / 0.9 * 5 / 60, rel=0.01)
    model.step(NOON + timedelta(seconds=11))
    assert model.ac_power_w(10) == 0.0


def test_added_bounds_narrow_merge_and_expire() -> None:
    model = SiteModel(small_site(), NOON)
    until = model.add_bounds(
        10, Metric.AC_ACTIVE_POWER, [Range(-5_000, 0), Range(-1_000, 3_000)], NOON
    )
    assert until == NOON + timedelta(seconds=5)
    assert model.active_bounds(10, NOON) == (Range(-5_000, 3_000),)
    with pytest.raises(SimError):
        model.set_active_power(10, -8_800, NOON)
    # Added bounds never widen the component's own bounds.
    model.add_bounds(10, Metric.AC_ACTIVE_POWER, [Range(-1e9, 1e9)], NOON, validity_s=60)
    assert model.active_bounds(10, NOON) == (Range(-50_000, 50_000),)
    later = NOON + timedelta(seconds=61)
    model.step(later)
    assert model.active_bounds(10, later) == (Range(-50_000, 50_000),)


def test_state_machine_standby_stop_start() -> None:
    model = SiteModel(small_site(), NOON)
    model.standby(10, NOON)
    assert model.operating_state(10) is OperatingState.STANDBY
    model.set_active_power(10, -880, NOON)  # a command starts it from standby
    assert model.operating_state(10) is OperatingState.READY
    model.step(NOON + timedelta(seconds=2))
    with pytest.raises(SimError) as caught:
        model.stop(11, NOON + timedelta(seconds=2))
    assert caught.value.kind is ErrorKind.FAILED_PRECONDITION
    model.stop(10, NOON + timedelta(seconds=2))
    model.step(NOON + timedelta(seconds=3))
    model.stop(11, NOON + timedelta(seconds=3))  # now at 0 W
    with pytest.raises(SimError, match="stopped; start it first"):
        model.set_active_power(10, -880, NOON + timedelta(seconds=3))
    with pytest.raises(SimError, match="only a started component"):
        model.standby(10, NOON + timedelta(seconds=3))
    model.start(10, NOON + timedelta(seconds=4))
    with pytest.raises(SimError, match="battery 11 behind component 10 is OFF"):
        model.set_active_power(10, -880, NOON + timedelta(seconds=4))
    model.start(11, NOON + timedelta(seconds=4))
    model.set_active_power(10, -880, NOON + timedelta(seconds=4))


def test_error_fault_latches_until_acknowledged_after_it_ends() -> None:
    model = SiteModel(small_site(), NOON)
    model.faults.inject(
        10, FaultKind.ERROR, now=NOON, duration=timedelta(seconds=10), error_code="OVERTEMPERATURE"
    )
    model.step(NOON + timedelta(seconds=1))
    sample = model.sample(10, NOON + timedelta(seconds=1))
    assert sample.states == (StateCode.ERROR,)
    assert sample.errors == ("OVERTEMPERATURE",)
    with pytest.raises(SimError, match="ERROR"):
        model.set_active_power(10, -880, NOON + timedelta(seconds=1))
    with pytest.raises(SimError, match="persists"):
        model.acknowledge_error(10, NOON + timedelta(seconds=5))
    model.acknowledge_error(10, NOON + timedelta(seconds=11))
    assert model.operating_state(10) is OperatingState.STANDBY
    model.set_active_power(10, -880, NOON + timedelta(seconds=11))
    assert model.operating_state(10) is OperatingState.READY


def test_nan_fault_reports_nan_for_the_listed_metrics() -> None:
    model = SiteModel(small_site(), NOON)
    model.faults.inject(11, FaultKind.NAN_METRICS, now=NOON, metrics=("battery_soc_pct",))
    sample = model.sample(11, NOON)
    soc = next(m for m in sample.metrics if m.metric is Metric.BATTERY_SOC_PCT)
    power = next(m for m in sample.metrics if m.metric is Metric.DC_POWER)
    assert soc.value != soc.value  # NaN
    assert power.value == 0.0


def test_unknown_and_uncontrollable_components_are_refused() -> None:
    model = SiteModel(small_site(), NOON)
    with pytest.raises(SimError) as caught:
        model.set_active_power(999, 0.0, NOON)
    assert caught.value.kind is ErrorKind.NOT_FOUND
    with pytest.raises(SimError) as caught:
        model.set_active_power(2, 0.0, NOON)
    assert caught.value.kind is ErrorKind.INVALID_ARGUMENT


commands = st.lists(
    st.tuples(
        st.floats(min_value=-150_000, max_value=150_000, allow_nan=False),
        st.integers(min_value=1, max_value=600),
    ),
    min_size=1,
    max_size=12,
)


@settings(max_examples=examples(60), deadline=None)
@given(commands, st.floats(min_value=0, max_value=100))
def test_soc_stays_in_bounds_energy_balances_and_no_command_leaves_bounds(
    steps: list[tuple[float, int]], initial_soc: float
) -> None:
    model = SiteModel(small_site(soc=min(max(initial_soc, 10), 90), taper=2.0), NOON)
    now = NOON
    for power, seconds in steps:
        bounds_before = model.active_bounds(10, now)
        if allows(bounds_before, power) and allows(bounds_before, floor_to_resolution(power, 88)):
            record = model.set_active_power(10, power, now, lifetime_s=60)
            assert allows(record.bounds, record.applied_w)
        else:
            with pytest.raises(SimError) as refused:
                model.set_active_power(10, power, now, lifetime_s=60)
            assert refused.value.kind is ErrorKind.OUT_OF_RANGE
        now += timedelta(seconds=seconds)
        model.step(now)
        assert 10.0 - 1e-9 <= model.soc_pct(11) <= 90.0 + 1e-9
        flows = sum(model.ac_power_w(cid) for cid in (10, 20, 30, 40, 50))
        assert model.ac_power_w(1) == pytest.approx(flows)
        bounds = model.active_bounds(10, now)
        assert allows(bounds, model.ac_power_w(10)) or abs(model.ac_power_w(10)) < 1e-6


def test_a_command_wakes_a_standby_battery_behind_the_inverter() -> None:
    model = SiteModel(small_site(), NOON)
    model.standby(11, NOON)
    assert model.active_bounds(10, NOON) == (Range(0.0, 0.0),)  # only 0 W
    model.set_active_power(10, -880, NOON)
    assert model.operating_state(11) is OperatingState.READY
    assert model.ac_power_w(10) == pytest.approx(-880)


def test_a_battery_reports_its_relay_closed_only_while_it_can_carry_power() -> None:
    # The Frequenz SDK counts a battery as working only with RELAY_CLOSED reported.
    model = SiteModel(small_site(), NOON)
    assert model.sample(11, NOON).states == (StateCode.READY, StateCode.RELAY_CLOSED)
    model.set_active_power(10, 880, NOON)
    assert model.sample(11, NOON).states == (StateCode.CHARGING, StateCode.RELAY_CLOSED)
    model.set_active_power(10, 0, NOON)
    model.standby(11, NOON)
    assert model.sample(11, NOON).states == (StateCode.STANDBY, StateCode.RELAY_OPEN)
    model.stop(11, NOON)
    assert model.sample(11, NOON).states == (StateCode.OFF, StateCode.RELAY_OPEN)
    assert model.sample(10, NOON).states == (StateCode.READY,)  # inverters have no relay here


def test_a_burst_of_commands_shows_in_the_next_sample_and_moves_energy_from_the_last_step() -> None:
    model = SiteModel(small_site(), NOON)
    model.step(NOON + timedelta(seconds=1))
    energy = model.energy_wh(11)
    for power in (-880, -1760, -8800):  # the last command wins
        model.set_active_power(10, power, NOON + timedelta(seconds=1.5))
    assert value(model, 10, Metric.AC_ACTIVE_POWER) == pytest.approx(-8800)
    assert model.energy_wh(11) == energy  # reading settles the powers; no time passed
    model.step(NOON + timedelta(seconds=2))
    # It counts from the physics sub-step it came in (time_step 1 s here: from 1 s).
    assert model.energy_wh(11) == pytest.approx(energy - 8800 / 0.9 / 3600)


def test_a_standby_component_takes_the_sites_wake_up_time_to_deliver() -> None:
    """The API documentation: from standby "it can take a few minutes" to operate."""
    site = small_site()
    site = dataclasses.replace(
        site, simulation=dataclasses.replace(site.simulation, standby_wake_s=120.0)
    )
    model = SiteModel(site, NOON)
    model.standby(11, NOON)
    model.set_active_power(10, -8800, NOON, lifetime_s=300)  # taken; it wakes the battery
    assert model.sample(11, NOON).states == (StateCode.SWITCHING_ON, StateCode.RELAY_OPEN)
    model.step(NOON + timedelta(seconds=119))
    assert model.ac_power_w(10) == 0.0
    model.step(NOON + timedelta(seconds=121))
    assert model.operating_state(11) is OperatingState.READY
    assert model.ac_power_w(10) == pytest.approx(-8800)
    assert model.sample(11, NOON + timedelta(seconds=121)).states[1] is StateCode.RELAY_CLOSED

    model.standby(10, NOON + timedelta(seconds=130))
    model.start(10, NOON + timedelta(seconds=130))
    assert model.sample(10, NOON + timedelta(seconds=130)).states == (StateCode.SWITCHING_ON,)
    model.step(NOON + timedelta(seconds=251))
    assert model.operating_state(10) is OperatingState.READY


def test_an_open_relay_cuts_everything_below_it_and_start_closes_it() -> None:
    model = SiteModel(switched_site(), NOON)
    model.set_active_power(10, -8800, NOON)
    model.step(NOON + timedelta(seconds=1))
    assert model.ac_power_w(2) == pytest.approx(-8800)  # the meter sees it through the relay
    model.stop(5, NOON + timedelta(seconds=1))  # opens, under load
    assert model.sample(5, NOON + timedelta(seconds=1)).states == (StateCode.RELAY_OPEN,)
    model.step(NOON + timedelta(seconds=2))
    assert model.ac_power_w(10) == model.ac_power_w(2) == 0.0
    assert model.active_bounds(10, NOON + timedelta(seconds=2)) == ()  # only 0 W
    with pytest.raises(SimError, match="relay 5 above component 10 is open") as refused:
        model.set_active_power(10, -8800, NOON + timedelta(seconds=2))
    assert refused.value.kind is ErrorKind.FAILED_PRECONDITION
    with pytest.raises(SimError, match="no standby"):
        model.standby(5, NOON + timedelta(seconds=2))
    model.start(5, NOON + timedelta(seconds=3))
    assert model.sample(5, NOON + timedelta(seconds=3)).states == (StateCode.RELAY_CLOSED,)
    model.set_active_power(10, -8800, NOON + timedelta(seconds=3))
    model.step(NOON + timedelta(seconds=4))
    assert model.ac_power_w(10) == pytest.approx(-8800)


def test_a_precharger_precharges_before_it_connects_the_batteries() -> None:
    model = SiteModel(switched_site(), NOON)
    assert model.sample(12, NOON).states == (StateCode.PRECHARGER_CLOSED,)
    model.stop(12, NOON)
    assert model.sample(12, NOON).states == (StateCode.PRECHARGER_OPEN,)
    assert model.active_bounds(10, NOON) == (Range(0.0, 0.0),)  # no battery behind it now
    model.start(12, NOON + timedelta(seconds=1))
    assert model.sample(12, NOON + timedelta(seconds=1)).states == (
        StateCode.PRECHARGER_PRECHARGING,
    )
    model.step(NOON + timedelta(seconds=10))
    assert model.active_bounds(10, NOON + timedelta(seconds=10)) == (Range(0.0, 0.0),)
    model.step(NOON + timedelta(seconds=12))  # 10 s of precharge are over
    assert model.sample(12, NOON + timedelta(seconds=12)).states == (StateCode.PRECHARGER_CLOSED,)
    model.set_active_power(10, -8800, NOON + timedelta(seconds=12))
    model.step(NOON + timedelta(seconds=13))
    assert model.ac_power_w(10) == pytest.approx(-8800)


def test_a_battery_in_standby_behind_a_shared_inverter_takes_no_power() -> None:
    site = small_site()
    components = [*site.components]
    twin = next(c for c in components if c.id == 11)
    components.append(dataclasses.replace(twin, id=12, name="battery 12"))
    model = SiteModel(dataclasses.replace(site, components=tuple(components)), NOON)
    model.set_active_power(10, -8800, NOON, lifetime_s=300)
    model.standby(12, NOON)
    assert model.sample(12, NOON).states == (StateCode.STANDBY, StateCode.RELAY_OPEN)
    model.step(NOON + timedelta(seconds=10))
    assert model.dc_power_w(12) == 0.0  # its relay is open
    assert model.dc_power_w(11) < 0.0


def test_a_command_sees_an_error_that_began_since_the_last_tick() -> None:
    model = SiteModel(small_site(), NOON)
    model.step(NOON + timedelta(seconds=1))
    model.faults.inject(
        10, FaultKind.ERROR, now=NOON + timedelta(seconds=1.5), error_code="OVERTEMPERATURE"
    )
    with pytest.raises(SimError, match="ERROR"):
        model.set_active_power(10, -880, NOON + timedelta(seconds=1.6))


def test_a_command_between_ticks_moves_energy_from_when_it_came_to_one_sub_step() -> None:
    site = small_site()
    site = dataclasses.replace(
        site, simulation=dataclasses.replace(site.simulation, time_step_s=0.1)
    )
    model = SiteModel(site, NOON)
    energy = model.energy_wh(11)
    model.set_active_power(10, -8800, NOON + timedelta(seconds=0.55), lifetime_s=60)
    model.step(NOON + timedelta(seconds=1))  # one tick of ten 0.1 s sub-steps
    moved_s = (energy - model.energy_wh(11)) / (8800 / 0.9) * 3600
    assert 0.45 - 1e-9 <= moved_s <= 0.55 + 1e-9  # 0.45 s since it came, to one sub-step
