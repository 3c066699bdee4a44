from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from edge_controller.weather import solar
from edge_controller.weather.data import (
    YEAR_S,
    Dataset,
    actual_weather,
    dataset_from_columns,
    dataset_time_s,
    great_circle_km,
    interpolate_direction,
    interpolate_periodic,
    nearest_dataset,
)
from edge_controller.weather.messages import GeoLocation, LocationError


def epoch(year: int, month: int, day: int, hour: int = 0) -> float:
    return datetime(year, month, day, hour, tzinfo=UTC).timestamp()


def by_key(datasets: tuple[Dataset, ...], key: str) -> Dataset:
    return next(dataset for dataset in datasets if dataset.key == key)


def test_bundled_files_are_full_typical_years(datasets: tuple[Dataset, ...]) -> None:
    assert {d.key for d in datasets} == {"greensboro_nc", "sand_point_ak"}
    for dataset in datasets:
        assert dataset.instant_s.shape == (8760,)
        assert np.all(np.diff(dataset.instant_s) > 0)
        assert dataset.instant_s[0] >= 0
        assert dataset.instant_s[-1] < YEAR_S
        assert np.all((dataset.clearness >= 0) & (dataset.clearness <= 1))
        assert not np.isnan(dataset.clearness).any()
    sand_point = by_key(datasets, "sand_point_ak")
    assert sand_point.latitude == pytest.approx(55.317)
    assert 4 < float(np.mean(sand_point.wind_speed_ms)) < 6  # the windy one
    greensboro = by_key(datasets, "greensboro_nc")
    assert greensboro.albedo == 0.2  # its file has no albedo: the default


def test_periodic_interpolation_is_linear_and_wraps_the_year() -> None:
    xp = np.array([0.0, 3600.0, YEAR_S - 3600.0])
    fp = np.array([10.0, 20.0, 0.0])
    x = np.array([1800.0, YEAR_S - 1800.0, YEAR_S + 1800.0])
    assert interpolate_periodic(x, xp, fp).tolist() == pytest.approx([15.0, 5.0, 15.0])


def test_direction_interpolation_takes_the_shorter_arc() -> None:
    xp = np.array([0.0, 3600.0, 7200.0])
    values = interpolate_direction(np.array([1800.0]), xp, np.array([350.0, 10.0, 10.0]), 10800.0)
    assert values[0] == pytest.approx(0.0, abs=1e-6) or values[0] == pytest.approx(360.0)


def test_hourly_irradiance_sits_at_the_middle_of_its_hour() -> None:
    hours = np.arange(1, 8761, dtype=np.float64) * 3600.0  # time stamps: end of each hour
    ghi = np.where(np.arange(8760) % 24 == 12, 500.0, 0.0)
    dataset = dataset_from_columns(
        key="test",
        name="test",
        latitude=0.0,
        longitude=0.0,
        albedo=0.2,
        time_of_year_s=np.mod(hours, YEAR_S),
        temperature_c=np.full(8760, 20.0),
        wind_speed_ms=np.full(8760, 5.0),
        wind_direction_deg=np.full(8760, 90.0),
        ghi_wm2=ghi,
        ghi_extra_wm2=np.full(8760, 1000.0),
    )
    # The hour ending 13:00 (stamp 13) holds kt 0.5: it peaks at 12:30.
    peak = dataset.hour_mid_s[np.argmax(dataset.clearness)]
    assert peak % 86400 == 12.5 * 3600


def test_nearest_dataset_rule(datasets: tuple[Dataset, ...]) -> None:
    assert nearest_dataset(GeoLocation(35.0, -80.0), datasets).key == "greensboro_nc"
    assert nearest_dataset(GeoLocation(61.2, -149.9), datasets).key == "sand_point_ak"  # Anchorage
    # Southern locations are mirrored first: 36 S near Greensboro's longitude is Greensboro.
    assert nearest_dataset(GeoLocation(-36.0, -80.0), datasets).key == "greensboro_nc"
    with pytest.raises(ValueError, match="no weather dataset"):
        nearest_dataset(GeoLocation(0, 0), ())


def test_great_circle_distance() -> None:
    berlin, paris = GeoLocation(52.52, 13.405), GeoLocation(48.857, 2.352)
    assert great_circle_km(berlin, paris) == pytest.approx(878, abs=5)
    assert great_circle_km(berlin, berlin) == 0.0


def test_locations_are_checked() -> None:
    with pytest.raises(LocationError, match=r"latitude: expected -90..90, got 91"):
        GeoLocation(91, 0)
    with pytest.raises(LocationError, match=r"longitude: expected -180..180, got nan"):
        GeoLocation(0, float("nan"))


def test_solar_time_shift_keeps_the_station_day_at_local_solar_noon(
    datasets: tuple[Dataset, ...],
) -> None:
    station = by_key(datasets, "greensboro_nc")
    far_east = GeoLocation(station.latitude, station.longitude + 150.0)
    times = epoch(2026, 6, 1) + np.arange(0, 86400, 3600.0)
    # The same solar hour: 150 degrees east is 10 hours earlier in UTC.
    shifted = dataset_time_s(times, far_east, station)
    at_station = dataset_time_s(times + 10 * 3600, station.location, station)
    assert np.allclose(np.mod(shifted - at_station, YEAR_S), 0.0)


@pytest.mark.parametrize("longitude", [100.0, -30.0, 170.0])
def test_ghi_peaks_within_an_hour_of_local_solar_noon(
    datasets: tuple[Dataset, ...], longitude: float
) -> None:
    """Far from both stations, the month's mean day still peaks at solar noon."""
    location = GeoLocation(45.0, longitude)
    dataset = nearest_dataset(location, datasets)
    start = epoch(2026, 6, 1)
    times = start + np.arange(0, 30 * 86400, 300.0)
    ghi = actual_weather(dataset, location, times).ghi_wm2
    mean_day = ghi.reshape(30, -1).mean(axis=0)
    peak_s = start + float(np.argmax(mean_day)) * 300.0
    noon_s = solar.solar_noon_s(start + 15 * 86400, longitude) - 15 * 86400
    gap_h = ((peak_s - noon_s + 43200) % 86400 - 43200) / 3600
    assert abs(gap_h) < 1.0
    assert mean_day.max() > 300


def test_no_sunshine_at_night_anywhere(datasets: tuple[Dataset, ...]) -> None:
    for location in (GeoLocation(52.5, 13.4), GeoLocation(-33.9, 151.2), GeoLocation(0, -60)):
        dataset = nearest_dataset(location, datasets)
        times = epoch(2026, 3, 1) + np.arange(0, 7 * 86400, 900.0)
        weather = actual_weather(dataset, location, times)
        night = solar.solar_position(times, location.latitude, location.longitude).zenith_deg > 90
        assert np.all(weather.ghi_wm2[night] == 0.0)
        assert np.all(weather.ghi_wm2 >= 0)
        assert weather.ghi_wm2.max() < 1100


def test_southern_locations_have_summer_in_january(datasets: tuple[Dataset, ...]) -> None:
    station = by_key(datasets, "greensboro_nc")
    south = GeoLocation(-station.latitude, station.longitude)
    january = epoch(2026, 1, 1) + np.arange(0, 31 * 86400, 3600.0)
    july = epoch(2026, 7, 1) + np.arange(0, 31 * 86400, 3600.0)
    south_jan = actual_weather(station, south, january).temperature_c.mean()
    north_jul = actual_weather(station, station.location, july).temperature_c.mean()
    north_jan = actual_weather(station, station.location, january).temperature_c.mean()
    assert south_jan == pytest.approx(north_jul, abs=1.0)
    assert south_jan > north_jan + 10


def test_interpolation_between_hours_is_linear(datasets: tuple[Dataset, ...]) -> None:
    station = by_key(datasets, "sand_point_ak")
    hour = epoch(2026, 3, 10, 6)
    values = actual_weather(station, station.location, [hour, hour + 1800, hour + 3600])
    for series in (values.temperature_c, values.wind_speed_10m_ms):
        assert series[1] == pytest.approx((series[0] + series[2]) / 2)


def test_actual_weather_values_are_sensible(datasets: tuple[Dataset, ...]) -> None:
    location = GeoLocation(52.52, 13.40)
    dataset = nearest_dataset(location, datasets)
    times = epoch(2026, 1, 1) + np.arange(0, 365 * 86400, 3 * 3600.0)
    weather = actual_weather(dataset, location, times, step_s=3 * 3600)
    assert weather.temperature_c.min() > -30
    assert weather.temperature_c.max() < 45
    assert weather.wind_speed_10m_ms.min() >= 0
    assert weather.wind_speed_10m_ms.max() < 40
    assert np.all(weather.wind_speed_100m_ms > weather.wind_speed_10m_ms - 1e-9)
    assert np.all((weather.wind_direction_deg >= 0) & (weather.wind_direction_deg < 360))
    # Yearly irradiation of a mid-latitude place: roughly 1000-2000 kWh/m².
    kwh_per_m2 = weather.ghi_wm2.sum() * 3 / 1000
    assert 900 < kwh_per_m2 < 2200


def test_a_step_average_spreads_the_irradiance_over_the_step(
    datasets: tuple[Dataset, ...],
) -> None:
    location = GeoLocation(52.52, 13.40)
    dataset = nearest_dataset(location, datasets)
    start = epoch(2026, 6, 21)
    hourly = actual_weather(dataset, location, start + np.arange(24) * 3600.0, step_s=3600)
    fine = actual_weather(dataset, location, start + np.arange(0, 86400, 60.0))
    assert hourly.ghi_wm2.sum() * 60 == pytest.approx(fine.ghi_wm2.sum(), rel=0.02)
    assert timedelta(seconds=hourly.step_s) == timedelta(hours=1)
