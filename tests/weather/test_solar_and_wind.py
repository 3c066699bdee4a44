from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge_controller.weather import solar
from edge_controller.weather.wind import (
    speed_and_direction,
    wind_components,
    wind_speed_at_height,
)


def epoch(year: int, month: int, day: int, hour: int = 0) -> float:
    return datetime(year, month, day, hour, tzinfo=UTC).timestamp()


def test_day_of_year_starts_at_one_and_is_fractional() -> None:
    days = solar.day_of_year([epoch(2026, 1, 1), epoch(2026, 1, 1, 12), epoch(2026, 12, 31)])
    assert days.tolist() == pytest.approx([1.0, 1.5, 365.0])


def test_sun_is_highest_at_solar_noon_and_below_the_horizon_at_midnight() -> None:
    noon = solar.solar_noon_s(epoch(2026, 6, 21), 13.4)
    # Berlin: solar noon about 11:05 UTC at midsummer.
    assert datetime.fromtimestamp(noon, UTC).hour == 11
    times = noon + np.arange(-6, 7) * 3600.0
    zenith = solar.solar_position(times, 52.5, 13.4).zenith_deg
    assert np.argmin(zenith) == 6
    assert zenith[6] == pytest.approx(90 - (90 - 52.5 + 23.44), abs=0.5)
    midnight = solar.solar_position(noon + 12 * 3600, 52.5, 13.4)
    assert midnight.zenith_deg[0] > 90
    assert solar.extraterrestrial_horizontal_wm2(noon + 12 * 3600, 52.5, 13.4)[0] == 0.0


def test_azimuth_points_south_at_noon_in_the_north() -> None:
    noon = solar.solar_noon_s(epoch(2026, 3, 20), 0.0)
    assert solar.solar_position(noon, 45.0, 0.0).azimuth_deg[0] == pytest.approx(180.0, abs=1)
    morning = solar.solar_position(noon - 3 * 3600, 45.0, 0.0).azimuth_deg[0]
    assert 90 < morning < 180


def test_clear_sky_is_zero_at_night_and_bright_at_noon() -> None:
    noon = solar.solar_noon_s(epoch(2026, 6, 21), 13.4)
    values = solar.clear_sky_ghi_wm2([noon, noon + 12 * 3600], 52.5, 13.4)
    assert 750 < values[0] < 1000
    assert values[1] == 0.0


def test_wind_profile_from_10_to_100_metres() -> None:
    assert wind_speed_at_height(10.0, 100.0)[()] == pytest.approx(10 * 10 ** (1 / 7))
    assert wind_speed_at_height(5.0, 10.0)[()] == pytest.approx(5.0)
    with pytest.raises(ValueError, match="heights must be > 0"):
        wind_speed_at_height(5.0, 0.0)


def test_wind_components_follow_the_meteorological_convention() -> None:
    u, v = wind_components([10.0, 10.0], [270.0, 0.0])  # from the west, from the north
    assert u.tolist() == pytest.approx([10.0, 0.0], abs=1e-9)
    assert v.tolist() == pytest.approx([0.0, -10.0], abs=1e-9)


@given(
    speed=st.floats(min_value=0.1, max_value=60),
    direction=st.floats(min_value=0, max_value=359.9),
)
def test_components_round_trip(speed: float, direction: float) -> None:
    u, v = wind_components(speed, direction)
    back_speed, back_direction = speed_and_direction(u, v)
    assert back_speed[()] == pytest.approx(speed)
    difference = (back_direction[()] - direction + 180) % 360 - 180
    assert difference == pytest.approx(0.0, abs=1e-6)
