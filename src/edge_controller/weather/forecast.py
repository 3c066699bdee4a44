"""Forecasts: the actual weather plus a seeded error that grows with lead time.

**Error model.** For one forecast — one seed, location and issue time — and each
quantity q, the error at lead time L is

    e_q(L) = σ_q · W_q(L / 24 h)

where W_q is a standard Brownian motion (independent per quantity and per forecast)
drawn at hourly knots and linear between them. Hence e_q(0) = 0 (lead 0 *is* the
actual weather), the mean error is 0, and the RMS error grows like √L: σ_q at 24 h,
σ_q·√2 at 48 h, σ_q/√24 after one hour. Errors of neighbouring steps are correlated,
as in real forecasts (a run that is too warm stays too warm for a while); forecasts
issued at different times are independent draws.

**Magnitudes** (σ_q, the RMS error at 24 h), typical of day-ahead numerical weather
prediction at a point — plausible, not calibrated against a forecast archive:

| quantity | σ at 24 h | applied as |
| --- | --- | --- |
| temperature (2 m) | 1.5 K | added |
| wind speed (10 m; 100 m follows by the profile) | 1.5 m/s | added, floored at 0 |
| wind direction | 20° | added, modulo 360° |
| clearness index (GHI / sun above the atmosphere) | 0.12 | added, clipped to 0..1 |

The irradiance error acts on the clearness index, so a forecast never has sunshine
at night and never more than the sun above the atmosphere; 0.12 is about a quarter
of the mean daytime clearness (~0.45), in line with day-ahead GHI errors of 20–30 %.

**Reproducible.** The same seed, location and issue time always give the same
forecast, whatever resolution or horizon is asked: the knots are drawn for a fixed
`max_lead_s` from a `numpy` generator seeded with (seed, location, issue time).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from edge_controller.weather.data import Dataset, Measured, WeatherSeries, weather_series
from edge_controller.weather.messages import GeoLocation

Array = npt.NDArray[np.float64]

_DAY_S: Final = 86_400.0


@dataclass(frozen=True, slots=True)
class ForecastErrorModel:
    """How large forecast errors are; see the module docstring.

    Raises:
        ValueError: on creation, a negative σ or a knot spacing / horizon that is not > 0.
    """

    temperature_k_24h: float = 1.5
    wind_speed_ms_24h: float = 1.5
    wind_direction_deg_24h: float = 20.0
    clearness_24h: float = 0.12
    knot_s: float = 3600.0
    """Spacing of the random walk's knots."""
    max_lead_s: float = 10 * _DAY_S
    """Knots are drawn up to this lead; the error stays constant beyond it."""

    def __post_init__(self) -> None:
        """Check the parameters."""
        for name in (
            "temperature_k_24h",
            "wind_speed_ms_24h",
            "wind_direction_deg_24h",
            "clearness_24h",
        ):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name}: expected a number >= 0, got {value!r}")
        if not (self.knot_s > 0 and self.max_lead_s >= self.knot_s):
            raise ValueError(
                f"knot_s must be > 0 and max_lead_s >= knot_s, got knot_s={self.knot_s!r}, "
                f"max_lead_s={self.max_lead_s!r}"
            )

    @property
    def sigmas_24h(self) -> tuple[float, float, float, float]:
        """σ at 24 h of (temperature, wind speed, wind direction, clearness)."""
        return (
            self.temperature_k_24h,
            self.wind_speed_ms_24h,
            self.wind_direction_deg_24h,
            self.clearness_24h,
        )


NO_ERROR: Final = ForecastErrorModel(0.0, 0.0, 0.0, 0.0)
"""A perfect forecaster: every forecast equals the actual weather."""


def _entropy(seed: int, location: GeoLocation, issued_at_s: float) -> list[int]:
    if seed < 0:
        raise ValueError(f"seed: expected an integer >= 0, got {seed!r}")
    return [
        seed,
        round((location.latitude + 90.0) * 10_000),
        round((location.longitude + 180.0) * 10_000),
        round(issued_at_s) % 2**63,
    ]


def _knots(
    model: ForecastErrorModel, seed: int, location: GeoLocation, issued_at_s: float
) -> Array:
    """Standard Brownian motion in days at the knots: shape (4, knots + 1), column 0 is 0."""
    count = math.ceil(model.max_lead_s / model.knot_s)
    generator = np.random.default_rng(_entropy(seed, location, issued_at_s))
    steps = generator.standard_normal((4, count)) * math.sqrt(model.knot_s / _DAY_S)
    walk = np.zeros((4, count + 1), dtype=np.float64)
    np.cumsum(steps, axis=1, out=walk[:, 1:])
    return walk


def lead_errors(
    model: ForecastErrorModel,
    seed: int,
    location: GeoLocation,
    issued_at_s: float,
    lead_s: npt.ArrayLike,
) -> Measured:
    """Return the additive errors of one forecast at the given leads (seconds).

    A negative lead (a step before the issue time) has no error.

    Raises:
        ValueError: a negative seed.
    """
    leads = np.clip(np.asarray(lead_s, dtype=np.float64), 0.0, model.max_lead_s)
    walk = _knots(model, seed, location, issued_at_s)
    knot_leads = np.arange(walk.shape[1], dtype=np.float64) * model.knot_s
    errors = [
        sigma * np.interp(leads, knot_leads, walk[row])
        for row, sigma in enumerate(model.sigmas_24h)
    ]
    return Measured(
        temperature_c=np.asarray(errors[0], dtype=np.float64),
        wind_speed_ms=np.asarray(errors[1], dtype=np.float64),
        wind_direction_deg=np.asarray(errors[2], dtype=np.float64),
        clearness=np.asarray(errors[3], dtype=np.float64),
    )


def forecast_weather(
    dataset: Dataset,
    location: GeoLocation,
    issued_at_s: float,
    valid_s: npt.ArrayLike,
    *,
    step_s: float = 0.0,
    model: ForecastErrorModel = ForecastErrorModel(),
    seed: int = 1,
) -> WeatherSeries:
    """Return the forecast issued at `issued_at_s` for `location` at the times `valid_s`.

    `step_s` > 0 averages the irradiance over each `[t, t + step_s)` (see
    `data.weather_series`). With `model=NO_ERROR` this is the actual weather.
    """

    def errors(times: Array) -> Measured:
        return lead_errors(model, seed, location, issued_at_s, times - issued_at_s)

    return weather_series(dataset, location, valid_s, step_s=step_s, errors=errors)


__all__ = ["NO_ERROR", "ForecastErrorModel", "forecast_weather", "lead_errors"]
