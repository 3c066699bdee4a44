"""The service's decisions, without a server: validation, times, features."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from edge_controller.servers.weather.service import (
    ALL_FEATURES,
    ErrorKind,
    Feature,
    ForecastRequest,
    RawLocation,
    ServiceSettings,
    WeatherError,
    Window,
    check_features,
    check_historical_range,
    check_locations,
    check_window,
    issue_time,
    issue_times,
    make_forecast,
    valid_times_s,
)
from edge_controller.weather.data import Dataset
from tests.weather.conftest import BERLIN

NOW = datetime(2026, 6, 21, 10, 20, tzinfo=UTC)


def refused(message: str) -> pytest.RaisesExc[WeatherError]:
    return pytest.raises(WeatherError, match=message)


def test_feature_numbers_are_the_apis() -> None:
    from frequenz.api.weather.v1 import weather_pb2 as pb

    for feature in Feature:
        assert pb.ForecastFeature.Value(f"FORECAST_FEATURE_{feature.name}") == feature.value


@pytest.mark.parametrize(
    ("locations", "message"),
    [
        ([], r"locations: at least one location is required, got none"),
        ([RawLocation(95.0, 0.0)], r"locations\[0\].latitude: expected -90..90, got 95.0"),
        (
            [RawLocation(0.0, 0.0), RawLocation(0.0, -181.0)],
            r"locations\[1\].longitude: expected -180..180, got -181.0",
        ),
        ([RawLocation(float("nan"), 0.0)], r"locations\[0\].latitude: expected -90..90, got nan"),
        ([RawLocation(0.0, 0.0)] * 51, r"locations: at most 50 per request, got 51"),
    ],
)
def test_bad_locations_are_refused(locations: list[RawLocation], message: str) -> None:
    with refused(message) as caught:
        check_locations(locations)
    assert caught.value.kind is ErrorKind.INVALID_ARGUMENT


def test_good_locations_keep_their_country() -> None:
    (location,) = check_locations([RawLocation(52.5, 13.4, "DE")])
    assert (location.latitude, location.longitude, location.country_code) == (52.5, 13.4, "DE")


def test_features() -> None:
    assert check_features([]) == ALL_FEATURES
    assert check_features([0]) == ALL_FEATURES
    assert check_features([6, 1, 6]) == (
        Feature.SURFACE_SOLAR_RADIATION_DOWNWARDS,
        Feature.TEMPERATURE_2_METRE,
    )
    with refused(
        r"features\[1\]: unsupported feature 42; this server supports TEMPERATURE_2_METRE"
    ):
        check_features([1, 42])


def test_window() -> None:
    horizon = timedelta(hours=48)
    assert check_window(None, None, horizon) == Window()
    assert check_window(timedelta(hours=1), timedelta(0), horizon) == Window(timedelta(hours=1))
    with refused(r"forecast_horizon.offset: expected >= 0, got -3600s"):
        check_window(timedelta(hours=-1), None, horizon)
    with refused(r"forecast_horizon.offset: 3d is beyond this server's forecast horizon of 2d"):
        check_window(timedelta(days=3), None, horizon)
    with refused(r"forecast_horizon.duration: expected >= 0, got -5s"):
        check_window(None, timedelta(seconds=-5), horizon)


def test_historical_range() -> None:
    week = timedelta(days=7)
    start = NOW - timedelta(days=1)
    assert check_historical_range(start, NOW + timedelta(hours=5), NOW, week) == (
        start,
        NOW + timedelta(hours=5),
    )
    with refused("start_create_time: required"):
        check_historical_range(None, NOW, NOW, week)
    with refused("end_create_time: required"):
        check_historical_range(start, None, NOW, week)
    with refused(
        r"end_create_time \(2026-06-20T09:20:00\+00:00\) must be after start_create_time "
        r"\(2026-06-20T10:20:00\+00:00\)"
    ):
        check_historical_range(start, start - timedelta(hours=1), NOW, week)
    with refused(r"start_create_time \(.*\) is in the future .*no forecast has been created yet"):
        check_historical_range(NOW + timedelta(hours=1), NOW + timedelta(hours=2), NOW, week)
    with refused(r"at most 7d per request, got 8d; split the range"):
        check_historical_range(NOW - timedelta(days=8), NOW, NOW, week)


def test_issue_times_are_aligned_to_the_interval() -> None:
    assert issue_time(NOW, timedelta(hours=1)) == datetime(2026, 6, 21, 10, tzinfo=UTC)
    assert issue_time(NOW, timedelta(minutes=15)) == datetime(2026, 6, 21, 10, 15, tzinfo=UTC)
    times = issue_times(NOW - timedelta(hours=3), NOW, timedelta(hours=1))
    assert [t.hour for t in times] == [8, 9, 10]


def test_valid_times_cover_the_horizon_or_the_window() -> None:
    issued = datetime(2026, 6, 21, 10, tzinfo=UTC)
    full = valid_times_s(issued, timedelta(minutes=15), timedelta(hours=48), Window())
    assert len(full) == 193
    assert full[0] == issued.timestamp()
    assert full[-1] == issued.timestamp() + 48 * 3600
    window = Window(timedelta(minutes=20), timedelta(hours=1))
    part = valid_times_s(issued, timedelta(minutes=15), timedelta(hours=48), window)
    assert ((part - issued.timestamp()) / 60).tolist() == [30.0, 45.0, 60.0, 75.0]


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError, match=r"resolution: expected 1s\.\.1d"):
        ServiceSettings(resolution=timedelta(0))
    with pytest.raises(ValueError, match="horizon: expected"):
        ServiceSettings(horizon=timedelta(days=11))
    with pytest.raises(ValueError, match=r"issue_interval: expected 1s\.\.1d"):
        ServiceSettings(issue_interval=timedelta(days=2))


def test_forecast_values_are_in_the_apis_units(datasets: tuple[Dataset, ...]) -> None:
    request = ForecastRequest((BERLIN,), ALL_FEATURES, Window())
    issued = datetime(2026, 6, 21, 10, tzinfo=UTC)
    forecast = make_forecast(ServiceSettings(), datasets, request, issued)
    (entry,) = forecast.locations
    assert entry.dataset_key == "greensboro_nc"
    values = entry.values
    assert np.all(
        (values[Feature.TEMPERATURE_2_METRE] > 250) & (values[Feature.TEMPERATURE_2_METRE] < 320)
    )
    speed_10 = np.hypot(
        values[Feature.U_WIND_COMPONENT_10_METRE], values[Feature.V_WIND_COMPONENT_10_METRE]
    )
    speed_100 = np.hypot(
        values[Feature.U_WIND_COMPONENT_100_METRE], values[Feature.V_WIND_COMPONENT_100_METRE]
    )
    assert speed_100 == pytest.approx(speed_10 * 10 ** (1 / 7))
    ghi = values[Feature.SURFACE_SOLAR_RADIATION_DOWNWARDS]
    assert np.all(ghi >= 0)
    assert ghi.max() > 200
    assert ghi.min() == 0.0
    net = values[Feature.SURFACE_NET_SOLAR_RADIATION]
    assert net == pytest.approx(ghi * 0.8)
