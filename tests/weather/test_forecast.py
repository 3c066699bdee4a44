from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_controller.weather.data import Dataset, actual_weather, nearest_dataset
from edge_controller.weather.forecast import (
    NO_ERROR,
    ForecastErrorModel,
    forecast_weather,
    lead_errors,
)
from edge_controller.weather.messages import GeoLocation
from tests.properties import examples

BERLIN = GeoLocation(52.52, 13.40)
ISSUED = datetime(2026, 6, 21, 0, tzinfo=UTC).timestamp()
HOUR = 3600.0


def test_error_is_zero_at_lead_zero() -> None:
    for seed in range(20):
        errors = lead_errors(ForecastErrorModel(), seed, BERLIN, ISSUED, [0.0, -HOUR])
        for values in (
            errors.temperature_c,
            errors.wind_speed_ms,
            errors.wind_direction_deg,
            errors.clearness,
        ):
            assert values.tolist() == [0.0, 0.0]


def test_forecast_at_lead_zero_is_the_actual_weather(datasets: tuple[Dataset, ...]) -> None:
    dataset = nearest_dataset(BERLIN, datasets)
    forecast = forecast_weather(dataset, BERLIN, ISSUED + 12 * HOUR, [ISSUED + 12 * HOUR])
    actual = actual_weather(dataset, BERLIN, [ISSUED + 12 * HOUR])
    assert forecast.temperature_c[0] == actual.temperature_c[0]
    assert forecast.wind_speed_10m_ms[0] == actual.wind_speed_10m_ms[0]
    assert forecast.ghi_wm2[0] == actual.ghi_wm2[0]


def test_rms_error_grows_with_lead_time_like_its_square_root() -> None:
    model = ForecastErrorModel()
    leads = np.array([1, 6, 24, 48]) * HOUR
    samples = np.array(
        [lead_errors(model, seed, BERLIN, ISSUED, leads).temperature_c for seed in range(400)]
    )
    rms = np.sqrt((samples**2).mean(axis=0))
    assert np.all(np.diff(rms) > 0)
    expected = model.temperature_k_24h * np.sqrt(leads / (24 * HOUR))
    assert rms == pytest.approx(expected, rel=0.15)


def test_same_seed_same_forecast_other_seed_other_forecast(datasets: tuple[Dataset, ...]) -> None:
    dataset = nearest_dataset(BERLIN, datasets)
    valid = ISSUED + np.arange(0, 48 * HOUR + 1, 900.0)
    first = forecast_weather(dataset, BERLIN, ISSUED, valid, step_s=900, seed=7)
    again = forecast_weather(dataset, BERLIN, ISSUED, valid, step_s=900, seed=7)
    other = forecast_weather(dataset, BERLIN, ISSUED, valid, step_s=900, seed=8)
    assert np.array_equal(first.temperature_c, again.temperature_c)
    assert np.array_equal(first.ghi_wm2, again.ghi_wm2)
    assert not np.array_equal(first.temperature_c, other.temperature_c)


def test_forecasts_do_not_depend_on_the_resolution_asked(datasets: tuple[Dataset, ...]) -> None:
    dataset = nearest_dataset(BERLIN, datasets)
    hourly = forecast_weather(dataset, BERLIN, ISSUED, ISSUED + np.arange(0, 25) * HOUR)
    fine = forecast_weather(dataset, BERLIN, ISSUED, ISSUED + np.arange(0, 97) * 900.0)
    assert fine.temperature_c[::4] == pytest.approx(hourly.temperature_c)
    assert fine.wind_speed_10m_ms[::4] == pytest.approx(hourly.wind_speed_10m_ms)


def test_a_perfect_forecaster_forecasts_the_actual_weather(datasets: tuple[Dataset, ...]) -> None:
    dataset = nearest_dataset(BERLIN, datasets)
    valid = ISSUED + np.arange(0, 48) * HOUR
    forecast = forecast_weather(dataset, BERLIN, ISSUED, valid, step_s=HOUR, model=NO_ERROR)
    actual = actual_weather(dataset, BERLIN, valid, step_s=HOUR)
    assert np.array_equal(forecast.ghi_wm2, actual.ghi_wm2)
    assert np.array_equal(forecast.wind_direction_deg, actual.wind_direction_deg)


def test_forecast_errors_stay_physical(datasets: tuple[Dataset, ...]) -> None:
    dataset = nearest_dataset(BERLIN, datasets)
    model = ForecastErrorModel(wind_speed_ms_24h=10.0, clearness_24h=1.0)
    valid = ISSUED + np.arange(0, 240) * HOUR
    forecast = forecast_weather(dataset, BERLIN, ISSUED, valid, model=model, seed=3)
    assert forecast.wind_speed_10m_ms.min() >= 0
    assert np.all((forecast.clearness >= 0) & (forecast.clearness <= 1))
    actual = actual_weather(dataset, BERLIN, valid)
    assert np.all(forecast.ghi_wm2[actual.ghi_wm2 == 0] == 0)  # never sun at night


@settings(max_examples=examples(30), deadline=None)
@given(
    seed=st.integers(min_value=0, max_value=2**32),
    issued=st.floats(min_value=0, max_value=4e9),
)
def test_errors_are_reproducible_for_any_seed_and_issue_time(seed: int, issued: float) -> None:
    leads = np.array([0.0, 0.5, 7.0, 30.0]) * HOUR
    a = lead_errors(ForecastErrorModel(), seed, BERLIN, issued, leads)
    b = lead_errors(ForecastErrorModel(), seed, BERLIN, issued, leads)
    assert np.array_equal(a.clearness, b.clearness)
    assert a.temperature_c[0] == 0.0


def test_bad_parameters_are_refused() -> None:
    with pytest.raises(ValueError, match=r"temperature_k_24h: expected a number >= 0, got -1"):
        ForecastErrorModel(temperature_k_24h=-1)
    with pytest.raises(ValueError, match="seed: expected an integer >= 0, got -1"):
        lead_errors(ForecastErrorModel(), -1, BERLIN, ISSUED, [HOUR])
