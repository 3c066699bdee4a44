import math
from datetime import timedelta

import pytest

from edge_controller.microgrid.telemetry import (
    BatteryReading,
    EvCable,
    EvChargerReading,
    InverterReading,
    TelemetryCache,
    ranges_from_bounds,
    soc_window,
)
from edge_controller.power.bounds import Range
from tests.conftest import NOON

INF = math.inf


def battery(cid: int = 11, age_s: float = 0.0, **changes: object) -> BatteryReading:
    fields: dict[str, object] = {
        "component_id": cid,
        "sampled_at": NOON - timedelta(seconds=age_s),
        "soc_pct": 50.0,
        "soc_lower_pct": 10.0,
        "soc_upper_pct": 90.0,
        "capacity_wh": 500_000.0,
        "power_w": 0.0,
        "bounds": (Range(-250_000, 250_000),),
        "states": frozenset({"READY"}),
        "errors": frozenset(),
    }
    fields.update(changes)
    return BatteryReading(**fields)  # type: ignore[arg-type]


def inverter(cid: int = 10, age_s: float = 0.0, power_w: float = 0.0) -> InverterReading:
    return InverterReading(
        component_id=cid,
        sampled_at=NOON - timedelta(seconds=age_s),
        power_w=power_w,
        bounds=(Range(-250_000, 250_000),),
        states=frozenset({"READY"}),
        errors=frozenset(),
    )


# ---------------------------------------------------------------- bounds


def test_bounds_keep_the_union_form_with_an_exclusion_gap() -> None:
    assert ranges_from_bounds([(-10_000, -1_000), (1_000, 10_000)]) == (
        Range(-10_000, -1_000),
        Range(1_000, 10_000),
    )


def test_a_missing_end_is_infinite_and_overlaps_merge() -> None:
    assert ranges_from_bounds([(None, 0.0), (-5.0, None)]) == (Range(-INF, INF),)
    assert ranges_from_bounds([(None, None)]) == (Range(-INF, INF),)


@pytest.mark.parametrize(
    "ends",
    [
        [],
        [(math.nan, 10.0)],
        [(-10.0, math.nan)],
        [(-10.0, 10.0), (math.nan, math.nan)],
        [(10.0, -10.0)],
    ],
)
def test_unknown_bounds_are_none(ends: list[tuple[float | None, float | None]]) -> None:
    assert ranges_from_bounds(ends) is None


def test_soc_window_takes_the_first_range_and_fills_missing_ends() -> None:
    assert soc_window([(10.0, 90.0), (0.0, 100.0)]) == (10.0, 90.0)
    assert soc_window([(None, 95.0)]) == (0.0, 95.0)
    assert soc_window([(5.0, None)]) == (5.0, 100.0)
    lower, upper = soc_window([])
    assert math.isnan(lower)
    assert math.isnan(upper)


# ---------------------------------------------------------------- cache


def test_missing_readings_are_none() -> None:
    cache = TelemetryCache()
    assert cache.battery(11, NOON) is None
    assert cache.inverter(10, NOON) is None
    assert cache.last_battery(11) is None
    assert cache.age(11, NOON) is None


def test_a_reading_is_fresh_up_to_exactly_stale_after_and_stale_just_beyond() -> None:
    cache = TelemetryCache(stale_after=timedelta(seconds=10))
    reading = battery(age_s=0)
    cache.update(reading)
    at_boundary = NOON + timedelta(seconds=10)
    beyond = at_boundary + timedelta(microseconds=1)
    assert cache.battery(11, at_boundary) == reading
    assert cache.battery(11, beyond) is None
    assert cache.age(11, beyond) == timedelta(seconds=10, microseconds=1)


def test_inverter_readings_age_the_same_way() -> None:
    cache = TelemetryCache(stale_after=timedelta(seconds=2))
    cache.update(inverter(age_s=2))
    assert cache.inverter(10, NOON) is not None
    assert cache.inverter(10, NOON + timedelta(milliseconds=1)) is None
    assert cache.age(10, NOON) == timedelta(seconds=2)


def test_last_readings_ignore_age() -> None:
    cache = TelemetryCache(stale_after=timedelta(seconds=1))
    cache.update(battery(age_s=3600))
    cache.update(inverter(age_s=3600))
    assert cache.battery(11, NOON) is None
    last_battery = cache.last_battery(11)
    assert last_battery is not None
    assert last_battery.sampled_at == NOON - timedelta(hours=1)
    assert cache.last_inverter(10) == inverter(age_s=3600)


def test_nan_values_and_unknown_bounds_are_kept_as_given() -> None:
    cache = TelemetryCache()
    reading = battery(
        soc_pct=math.nan,
        soc_lower_pct=math.nan,
        soc_upper_pct=math.nan,
        capacity_wh=math.nan,
        power_w=math.nan,
        bounds=None,
    )
    cache.update(reading)
    kept = cache.battery(11, NOON)
    assert kept is reading
    assert math.isnan(kept.soc_pct)
    assert math.isnan(kept.power_w)
    assert kept.bounds is None


def test_a_late_older_reading_does_not_replace_a_newer_one() -> None:
    cache = TelemetryCache()
    newer = battery(age_s=1, soc_pct=51.0)
    cache.update(newer)
    cache.update(battery(age_s=2, soc_pct=49.0))
    assert cache.last_battery(11) == newer
    same_time = battery(age_s=1, soc_pct=52.0)
    cache.update(same_time)
    assert cache.last_battery(11) == same_time


def test_batteries_and_inverters_are_kept_apart() -> None:
    cache = TelemetryCache()
    cache.update(battery(cid=11))
    cache.update(inverter(cid=10, power_w=-968.0))
    assert cache.inverter(11, NOON) is None
    assert cache.battery(10, NOON) is None
    found = cache.inverter(10, NOON)
    assert found is not None
    assert found.power_w == -968.0


def test_a_negative_stale_after_is_refused() -> None:
    with pytest.raises(ValueError, match="stale_after"):
        TelemetryCache(stale_after=timedelta(seconds=-1))


def charger(age_s: float = 0.0, power_w: float = 0.0, *states: str) -> EvChargerReading:
    return EvChargerReading(
        component_id=80,
        sampled_at=NOON - timedelta(seconds=age_s),
        power_w=power_w,
        bounds=(Range(0, 22_000),),
        states=frozenset(states),
        errors=frozenset(),
    )


def test_ev_chargers_are_cached_apart_and_age_like_the_rest() -> None:
    cache = TelemetryCache(stale_after=timedelta(seconds=2))
    cache.update(charger(3, 7_000.0))
    cache.update(charger(1, 11_000.0))
    cache.update(charger(2, 9_000.0))  # late: older than the one held
    fresh = cache.ev_charger(80, NOON)
    assert fresh is not None
    assert fresh.power_w == 11_000.0
    assert cache.inverter(80, NOON) is None
    assert cache.age(80, NOON) == timedelta(seconds=1)
    assert cache.ev_charger(80, NOON + timedelta(seconds=1, milliseconds=1)) is None
    last = cache.last_ev_charger(80)
    assert last is not None
    assert last.power_w == 11_000.0


@pytest.mark.parametrize(
    ("codes", "cable", "car"),
    [
        ((), EvCable.UNKNOWN, None),
        (("READY", "RELAY_CLOSED"), EvCable.UNKNOWN, None),
        (("EV_CHARGING_CABLE_UNPLUGGED",), EvCable.UNPLUGGED, False),
        (("EV_CHARGING_CABLE_LOCKED_AT_STATION",), EvCable.LOCKED_AT_STATION, False),
        (("EV_CHARGING_CABLE_PLUGGED_AT_EV",), EvCable.PLUGGED_AT_EV, True),
        # a car that is there is never hidden by a stale "unplugged" beside it
        (
            ("EV_CHARGING_CABLE_UNPLUGGED", "EV_CHARGING_CABLE_LOCKED_AT_EV"),
            EvCable.LOCKED_AT_EV,
            True,
        ),
    ],
)
def test_the_cable_state_says_whether_a_car_is_connected(
    codes: tuple[str, ...], cable: EvCable, car: bool | None
) -> None:
    assert charger(0, 0.0, *codes).cable is cable
    assert cable.car_connected is car
