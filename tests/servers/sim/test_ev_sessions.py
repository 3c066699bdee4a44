"""EV sessions at the simulator's chargers: cars arrive, charge, leave; stepped by hand."""

import itertools
import math
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from frequenz.api.common.v1.microgrid.components import components_pb2
from frequenz.api.common.v1alpha8.microgrid.electrical_components import (
    electrical_components_pb2 as ec_pb2,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_controller.microgrid.from_proto import inverter_reading
from edge_controller.power.bounds import Range
from edge_controller.servers.sim.api_v1 import component_data_to_proto
from edge_controller.servers.sim.api_v1alpha18 import telemetry_to_proto
from edge_controller.servers.sim.errors import ErrorKind, SimError
from edge_controller.servers.sim.ev_sessions import (
    EvArrivals,
    EvPlug,
    EvSession,
    car_power_w,
)
from edge_controller.servers.sim.model import Metric, SiteModel, StateCode
from edge_controller.servers.sim.site import SiteFileError, SiteSpec, load_site, parse_site
from edge_controller.servers.sim.site_details import EvChargerSpec
from tests.conftest import NOON, ROOT
from tests.properties import examples

EV_SITE = ROOT / "config" / "sim-site-ev.toml"


def ev_site(**charger: Any) -> SiteSpec:
    """grid 1 - meter 2 - EV charger 81 (22 kW) with what `charger` says."""
    return parse_site(
        {
            "microgrid": {"id": 1},
            "simulation": {"time_step": 1.0},
            "components": [
                {"id": 1, "kind": "grid"},
                {"id": 2, "kind": "meter", "parent": 1},
                {"id": 81, "kind": "ev_charger", "parent": 2, "max_power": "22 kW", **charger},
            ],
        },
        "site.toml",
    )


def bounds(model: SiteModel, cid: int = 81) -> tuple[Range, ...]:
    return next(
        m.bounds
        for m in model.sample(cid, model.wall_time).metrics
        if m.metric is Metric.AC_ACTIVE_POWER
    )


def power(model: SiteModel, cid: int = 81) -> float:
    return model.ac_power_w(cid)


def problems(**charger: Any) -> list[str]:
    with pytest.raises(SiteFileError) as caught:
        ev_site(**charger)
    return str(caught.value).splitlines()


# ---------------------------------------------------------------- pure physics


@pytest.mark.parametrize(
    ("commanded", "car_max", "needed_wh", "dt_h", "taken"),
    [
        (11_000, math.inf, 30_000, 0.1, 11_000),  # what is commanded
        (11_000, 7_400, 30_000, 0.1, 7_400),  # the car's own limit
        (-5_000, 7_400, 30_000, 0.1, 0.0),  # a charger never discharges a car
        (11_000, math.inf, 500, 0.1, 5_000),  # only what fills it in this sub-step
        (11_000, 7_400, 500, 0.0, 7_400),  # settling without time: limits only
        (11_000, math.inf, 0.0, 0.1, 0.0),  # full: nothing
    ],
)
def test_a_car_takes_the_command_within_its_limit_and_its_need(
    commanded: float, car_max: float, needed_wh: float, dt_h: float, taken: float
) -> None:
    assert car_power_w(commanded, car_max, needed_wh, dt_h) == pytest.approx(taken)


def test_a_scheduled_car_plugs_in_at_arrival_and_leaves_at_its_departure() -> None:
    plug = EvPlug(81, (EvSession(600, 3600, 50_000), EvSession(4000, math.inf, 1_000)))
    plug.advance(599)
    assert plug.car is None
    assert plug.limit_w(22_000) == 0.0
    assert not plug.advance(600)
    assert plug.car is not None
    assert plug.limit_w(22_000) == 22_000
    assert plug.advance(3600)  # not full, but its time is up
    assert plug.car is None
    plug.advance(4000)
    assert plug.car is not None
    assert plug.car.session.energy_wh == 1_000
    assert plug.visits == 2


def test_a_full_car_leaves_and_a_visit_inside_a_leap_never_plugs_in() -> None:
    plug = EvPlug(81, (EvSession(0, math.inf, 1_000, max_power_w=4_000),))
    plug.advance(0)
    taken, left = plug.charge(11_000, 0.2, 720)
    assert (taken, left) == (4_000, False)  # 800 Wh of 1 000
    taken, left = plug.charge(11_000, 0.2, 1440)
    assert taken == pytest.approx(1_000)
    assert left
    assert plug.car is None

    leap = EvPlug(81, (EvSession(100, 200, 1_000), EvSession(300, 400, 1_000)))
    assert not leap.advance(350)  # the first car came and went unseen
    assert leap.car is not None
    assert leap.car.session.arrive_s == 300
    assert leap.visits == 1


def test_random_cars_repeat_with_the_seed_and_differ_between_chargers() -> None:
    arrivals = EvArrivals(
        seed=7,
        mean_gap_s=1800,
        energy_wh=Range(10_000, 50_000),
        stay_s=Range(3600, 21600),
        max_power_w=Range(7_400, 22_000),
    )

    def first_cars(charger_id: int) -> list[EvSession]:
        plug = EvPlug(charger_id, arrivals=arrivals)
        seen: list[EvSession] = []
        t = 0.0
        while len(seen) < 5:
            t += 60
            plug.advance(t)
            car = plug.car
            if car is not None and (not seen or seen[-1] != car.session):
                seen.append(car.session)
        return seen

    cars = first_cars(83)
    assert cars == first_cars(83)
    assert cars != first_cars(84)
    for car in cars:
        assert 10_000 <= car.energy_wh <= 50_000
        assert 3600 <= car.leave_s - car.arrive_s <= 21600
        assert 7_400 <= car.max_power_w <= 22_000
    assert all(b.arrive_s >= a.leave_s for a, b in itertools.pairwise(cars))


@settings(max_examples=examples(300), deadline=None)
@given(
    need_wh=st.floats(100, 80_000),
    car_max=st.floats(1_000, 50_000),
    steps=st.lists(
        st.tuples(st.floats(-10_000, 30_000), st.floats(0.0, 0.5)), min_size=1, max_size=40
    ),
)
def test_a_car_never_takes_more_than_it_needs_nor_faster_than_it_may(
    need_wh: float, car_max: float, steps: list[tuple[float, float]]
) -> None:
    plug = EvPlug(81, (EvSession(0, math.inf, need_wh, car_max),))
    plug.advance(0)
    booked = 0.0
    elapsed = 0.0
    for commanded, dt_h in steps:
        elapsed += dt_h * 3600
        car = plug.car
        taken, left = plug.charge(commanded, dt_h, elapsed)
        assert 0.0 <= taken <= max(0.0, min(commanded, car_max)) + 1e-9
        booked += taken * dt_h
        if car is None:
            assert taken == 0.0
        if left:
            assert booked == pytest.approx(need_wh)
    assert booked <= need_wh + 1e-6
    if plug.car is not None:
        assert plug.car.charged_wh == pytest.approx(booked)


# ---------------------------------------------------------------- the model


def test_an_empty_charger_shows_0_w_bounds_refuses_power_and_says_unplugged() -> None:
    model = SiteModel(ev_site(sessions=[{"arrive": 3600, "energy": "10 kWh"}]), NOON)
    assert bounds(model) == (Range(0.0, 0.0),)
    with pytest.raises(SimError) as refused:
        model.set_active_power(81, 11_000, NOON)
    assert refused.value.kind is ErrorKind.OUT_OF_RANGE
    model.set_active_power(81, 0.0, NOON)
    assert power(model) == 0.0
    assert StateCode.EV_CHARGING_CABLE_UNPLUGGED in model.sample(81, NOON).states
    assert model.ev_car(81) is None


def test_a_plugged_car_takes_the_command_up_to_the_lower_of_the_two_limits() -> None:
    site = ev_site(sessions=[{"arrive": 0, "energy": "30 kWh", "max_power": "7.4 kW"}])
    model = SiteModel(site, NOON)
    assert bounds(model) == (Range(0.0, 7_400.0),)
    assert StateCode.EV_CHARGING_CABLE_LOCKED_AT_EV in model.sample(81, NOON).states
    with pytest.raises(SimError):
        model.set_active_power(81, 11_000, NOON)
    model.set_active_power(81, 7_400, NOON, lifetime_s=900)
    model.step(NOON + timedelta(minutes=10))
    assert power(model) == 7_400
    car = model.ev_car(81)
    assert car is not None
    assert car.charged_wh == pytest.approx(7_400 / 6, rel=1e-3)
    assert StateCode.CHARGING in model.sample(81, model.wall_time).states


def test_a_car_leaves_when_full_and_the_next_one_starts_at_0_w() -> None:
    site = ev_site(
        sessions=[
            {"arrive": 0, "leave": 7200, "energy": "2 kWh"},
            {"arrive": 7200, "energy": "20 kWh"},
        ]
    )
    model = SiteModel(site, NOON)
    model.set_active_power(81, 10_000, NOON, lifetime_s=900)
    model.step(NOON + timedelta(minutes=6))
    assert model.energy_delivered_wh[81] == pytest.approx(1_000, rel=1e-3)
    model.step(NOON + timedelta(minutes=14))  # full after 12 min: left, took 2 kWh
    assert model.energy_delivered_wh[81] == pytest.approx(2_000, rel=1e-6)
    assert model.ev_car(81) is None
    assert bounds(model) == (Range(0.0, 0.0),)
    assert power(model) == 0.0
    model.step(NOON + timedelta(hours=2, minutes=1))
    car = model.ev_car(81)
    assert car is not None
    assert car.session.energy_wh == 20_000
    assert bounds(model) == (Range(0.0, 22_000.0),)
    assert power(model) == 0.0  # the command went with the first car


def test_a_car_leaves_at_its_time_unfinished_and_a_faster_clock_runs_sessions_faster() -> None:
    site = ev_site(sessions=[{"arrive": 0, "leave": 3600, "energy": "50 kWh"}])
    model = SiteModel(site, NOON, speed=60)  # one wall minute: one simulated hour
    model.set_active_power(81, 20_000, NOON, lifetime_s=600)
    model.step(NOON + timedelta(seconds=30))
    assert model.ev_car(81) is not None
    assert power(model) == 20_000
    model.step(NOON + timedelta(seconds=61))
    assert model.ev_car(81) is None
    assert power(model) == 0.0
    assert model.energy_delivered_wh[81] == pytest.approx(20_000, rel=1e-9)


def test_a_minimum_power_shows_as_a_gap_above_0_w() -> None:
    site = ev_site(min_power="4140 W", sessions=[{"arrive": 0, "energy": "30 kWh"}])
    model = SiteModel(site, NOON)
    assert bounds(model) == (Range(0.0, 0.0), Range(4_140.0, 22_000.0))
    with pytest.raises(SimError) as refused:
        model.set_active_power(81, 2_000, NOON)
    assert refused.value.kind is ErrorKind.OUT_OF_RANGE
    small_car = ev_site(
        min_power="4140 W", sessions=[{"arrive": 0, "energy": "3 kWh", "max_power": "3.7 kW"}]
    )
    assert bounds(SiteModel(small_car, NOON)) == (Range(0.0, 0.0),)


def test_a_charger_without_sessions_has_a_car_plugged_in_for_good() -> None:
    model = SiteModel(ev_site(), NOON)
    assert bounds(model) == (Range(0.0, 22_000.0),)
    model.set_active_power(81, 22_000, NOON, lifetime_s=900)
    model.step(NOON + timedelta(minutes=10))
    assert power(model) == 22_000  # no car to fill up
    assert model.energy_delivered_wh[81] == pytest.approx(22_000 / 6)
    assert model.ev_plugged(81)
    assert StateCode.EV_CHARGING_CABLE_LOCKED_AT_EV in model.sample(81, model.wall_time).states
    with pytest.raises(SimError):
        model.ev_car(81)


def test_both_apis_and_the_controllers_reader_show_the_cable_state() -> None:
    model = SiteModel(ev_site(sessions=[{"arrive": 60, "energy": "10 kWh"}]), NOON)
    unplugged = model.sample(81, NOON)
    alpha = telemetry_to_proto(unplugged, frozenset())
    codes = ec_pb2.ElectricalComponentStateCode
    assert codes.ELECTRICAL_COMPONENT_STATE_CODE_EV_CHARGING_CABLE_UNPLUGGED in (
        alpha.state_snapshots[0].states
    )
    v1 = component_data_to_proto(unplugged, frozenset())
    assert components_pb2.ComponentStateCode.COMPONENT_STATE_CODE_EV_CHARGING_CABLE_UNPLUGGED in (
        v1.states[0].states
    )
    reading = inverter_reading(alpha)
    assert reading is not None
    assert "EV_CHARGING_CABLE_UNPLUGGED" in reading.states
    assert reading.bounds == (Range(0.0, 0.0),)
    model.step(NOON + timedelta(seconds=61))
    plugged = inverter_reading(telemetry_to_proto(model.sample(81, model.wall_time), frozenset()))
    assert plugged is not None
    assert "EV_CHARGING_CABLE_LOCKED_AT_EV" in plugged.states
    assert plugged.bounds == (Range(0.0, 22_000.0),)


# ---------------------------------------------------------------- the site file


@pytest.mark.parametrize(
    ("charger", "expected"),
    [
        (
            {"sessions": [{"arrive": 0, "energy": "1 kWh"}], "arrivals": {"mean_gap": 60}},
            "components[2].arrivals: expected either sessions (a schedule) or arrivals "
            "(random cars), not both",
        ),
        (
            {"sessions": [{"arrive": 600, "leave": 600, "energy": "1 kWh"}]},
            "components[2].sessions[0].leave: expected a time after arrive (600 s), got 600",
        ),
        (
            {"sessions": [{"arrive": 0, "energy": -3}]},
            "components[2].sessions[0].energy: expected energy > 0 (what the car needs), got -3",
        ),
        (
            {"sessions": [{"arrive": 0, "energi": "1 kWh"}]},
            "components[2].sessions[0].energi: unknown key (did you mean 'energy'?)",
        ),
        (
            {
                "sessions": [
                    {"arrive": 0, "leave": 3600, "energy": "1 kWh"},
                    {"arrive": 1800, "energy": "1 kWh"},
                ]
            },
            "components[2].sessions[1].arrive: expected a time at or after the car before "
            "leaves (3600 s), got 1800",
        ),
        (
            {
                "sessions": [
                    {"arrive": 0, "energy": "1 kWh"},
                    {"arrive": 1800, "energy": "1 kWh"},
                ]
            },
            "components[2].sessions[0].leave: expected a departure time (only the last car may "
            "stay until full)",
        ),
        (
            {"sessions": {"arrive": 0}},
            "components[2].sessions: expected an array of sessions",
        ),
        (
            {"arrivals": {"energy": ["50 kWh", "10 kWh"], "stay": 3600}},
            "components[2].arrivals.energy: expected energy > 0 or [lower, upper] energies, "
            "got ['50 kWh', '10 kWh']",
        ),
        (
            {"arrivals": {"energy": "10 kWh", "stay": 3600}},
            "components[2].arrivals.mean_gap: missing; expected seconds > 0",
        ),
        (
            {"min_power": "30 kW"},
            "components[2].min_power: expected at most max_power (22000 W), got 30000.0",
        ),
    ],
)
def test_bad_session_keys_are_named_with_what_was_expected(
    charger: dict[str, Any], expected: str
) -> None:
    lines = problems(**charger)
    assert any(expected in line for line in lines), lines
    assert all(line.startswith("site.toml: ") for line in lines)


def test_the_car_park_site_has_three_chargers_whose_cars_come_and_go() -> None:
    site = load_site(Path(EV_SITE))
    chargers = {c.id: c.details for c in site.components if isinstance(c.details, EvChargerSpec)}
    assert sorted(chargers) == [81, 82, 83]
    assert all(spec.has_sessions for spec in chargers.values())
    model = SiteModel(site, NOON)
    assert model.ev_plugged(81)
    assert model.ev_plugged(82)
    assert bounds(model, 81) == (Range(0.0, 0.0), Range(4_140.0, 11_000.0))
    assert bounds(model, 82) == (Range(0.0, 7_400.0),)
    model.step(NOON + timedelta(hours=2, seconds=1))  # the hybrid's two hours are up
    assert not model.ev_plugged(82)
