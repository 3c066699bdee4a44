from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge_controller.weather import solar
from edge_controller.weather.messages import GeoLocation
from edge_controller.weather.production import (
    pv_power_series_w,
    pv_power_w,
    turbine_power_curve,
    wind_power_series_w,
    wind_power_w,
)

BERLIN = GeoLocation(52.52, 13.40)
RATED_W = 10_000.0


def test_wind_curve_is_monotone_up_to_rated_and_scaled_to_it() -> None:
    speeds = np.arange(0.0, 25.0, 0.25)
    power = -wind_power_series_w(speeds, RATED_W)
    rated_at = int(np.argmax(power >= RATED_W))
    assert power[rated_at] == pytest.approx(RATED_W)
    assert np.all(np.diff(power[: rated_at + 1]) >= 0)
    assert np.all(power[rated_at:] == pytest.approx(RATED_W))
    assert 11.0 <= speeds[rated_at] <= 14.0
    assert power.max() == pytest.approx(RATED_W)


def test_wind_power_is_zero_in_a_calm_and_above_cut_out() -> None:
    assert wind_power_w(0.0, RATED_W) == 0.0
    assert wind_power_w(1.0, RATED_W) == 0.0
    assert wind_power_w(25.0, RATED_W) == pytest.approx(-RATED_W)
    assert wind_power_w(25.5, RATED_W) == 0.0
    assert wind_power_w(40.0, RATED_W) == 0.0


def test_wind_power_follows_the_library_curve_scaled() -> None:
    speeds, _fractions = turbine_power_curve("E-53/800")
    assert speeds[0] == 1.0
    assert speeds[-1] == 25.0
    # E-53/800: 336 kW of its 810 kW maximum at 8 m/s.
    assert wind_power_w(8.0, 810_000.0) == pytest.approx(-336_000.0)
    assert wind_power_w(8.0, RATED_W) == pytest.approx(-RATED_W * 336 / 810)


def test_unknown_turbine_and_negative_rating_are_refused() -> None:
    with pytest.raises(ValueError, match="'nope' has no power curve in windpowerlib's library"):
        wind_power_w(8.0, RATED_W, turbine_type="nope")
    with pytest.raises(ValueError, match=r"rated_power_w: expected a power >= 0 W, got -1"):
        wind_power_w(8.0, -1.0)


@given(speed=st.floats(min_value=0, max_value=60), rated=st.floats(min_value=0, max_value=1e7))
def test_wind_power_is_produced_power_within_the_rating(speed: float, rated: float) -> None:
    power = wind_power_w(speed, rated)
    assert -rated - 1e-6 <= power <= 0.0


def test_pv_makes_nothing_at_night() -> None:
    noon = solar.solar_noon_s(datetime(2026, 6, 21, tzinfo=UTC).timestamp(), BERLIN.longitude)
    midnight = datetime.fromtimestamp(noon + 12 * 3600, UTC)
    assert pv_power_w(0.0, 15.0, midnight, BERLIN, RATED_W) == 0.0
    # Even a (wrong) irradiance reading at night produces nothing: the sun is down.
    assert pv_power_w(500.0, 15.0, midnight, BERLIN, RATED_W) == 0.0


def test_pv_at_noon_in_summer_is_most_of_its_peak_and_never_above() -> None:
    noon = datetime.fromtimestamp(
        solar.solar_noon_s(datetime(2026, 6, 21, tzinfo=UTC).timestamp(), BERLIN.longitude), UTC
    )
    power = pv_power_w(900.0, 20.0, noon, BERLIN, RATED_W)
    assert -RATED_W <= power < -0.6 * RATED_W
    hotter = pv_power_w(900.0, 35.0, noon, BERLIN, RATED_W)
    assert hotter > power  # hot cells produce less (a smaller magnitude)
    given_split = pv_power_w(900.0, 20.0, noon, BERLIN, RATED_W, dni_wm2=800.0, dhi_wm2=120.0)
    assert -RATED_W <= given_split < 0


def test_pv_series_follows_the_day() -> None:
    start = datetime(2026, 6, 21, tzinfo=UTC).timestamp()
    times = start + np.arange(0, 86400, 900.0)
    clear = solar.clear_sky_ghi_wm2(times, BERLIN.latitude, BERLIN.longitude)
    power = pv_power_series_w(clear, 20.0, times, BERLIN, RATED_W)
    assert np.all(power <= 0)
    assert np.all(power >= -RATED_W)
    noon_index = int(np.argmin(power))
    noon = solar.solar_noon_s(start, BERLIN.longitude)
    assert abs(times[noon_index] - noon) <= 3600
    assert np.all(power[clear == 0] == 0)


def test_pv_refuses_naive_times_and_half_an_irradiance_split() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        pv_power_w(500.0, 20.0, datetime(2026, 6, 21, 12), BERLIN, RATED_W)
    with pytest.raises(ValueError, match="give both or neither"):
        pv_power_w(500.0, 20.0, datetime(2026, 6, 21, 12, tzinfo=UTC), BERLIN, RATED_W, dni_wm2=1)


@given(
    ghi=st.floats(min_value=0, max_value=1400),
    temperature=st.floats(min_value=-40, max_value=50),
    hour=st.floats(min_value=0, max_value=24),
    latitude=st.floats(min_value=-89, max_value=89),
)
def test_pv_power_is_produced_power_within_the_peak(
    ghi: float, temperature: float, hour: float, latitude: float
) -> None:
    when = datetime.fromtimestamp(datetime(2026, 3, 1, tzinfo=UTC).timestamp() + hour * 3600, UTC)
    power = pv_power_w(ghi, temperature, when, GeoLocation(latitude, 10.0), RATED_W)
    assert -RATED_W <= power <= 0.0
