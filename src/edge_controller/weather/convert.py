"""Weather API responses (as the client flattens them) → `WeatherForecast`.

Pure: the actor passes `Forecasts.flatten()` rows of `frequenz-client-weather`; this
module only needs their fields, so it imports neither the client nor gRPC.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import UTC, datetime
from enum import Enum
from typing import Protocol

from edge_controller.weather.messages import ForecastStep, GeoLocation, WeatherForecast
from edge_controller.weather.wind import speed_and_direction, wind_speed_at_height

KELVIN_OFFSET = 273.15


class FeatureRow(Protocol):
    """One value of a flattened forecast (`frequenz.client.weather` `ForecastData`)."""

    @property
    def creation_ts(self) -> datetime: ...

    @property
    def latitude(self) -> float: ...

    @property
    def longitude(self) -> float: ...

    @property
    def validity_ts(self) -> datetime: ...

    @property
    def feature(self) -> Enum: ...

    @property
    def value(self) -> float: ...


def _utc(moment: datetime) -> datetime:
    """Protobuf's `ToDatetime()` gives naive UTC times: make them aware."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def forecast_from_rows(
    rows: Iterable[FeatureRow], location: GeoLocation, source: str
) -> WeatherForecast | None:
    """Return the forecast for `location` in a response, None if it holds no values.

    The response's location nearest to `location` is taken (the API echoes the
    requested coordinates, in single precision). Temperature comes in kelvin; wind
    speeds and the direction are computed from the u/v components; without 100 m
    components the 100 m speed follows from 10 m by the profile in `wind`. A feature
    the response lacks is NaN.
    """
    by_location: dict[tuple[float, float], list[FeatureRow]] = {}
    for row in rows:
        by_location.setdefault((row.latitude, row.longitude), []).append(row)
    if not by_location:
        return None

    def distance(key: tuple[float, float]) -> float:
        return abs(key[0] - location.latitude) + abs(key[1] - location.longitude)

    chosen = by_location[min(by_location, key=distance)]
    issued_at = _utc(max(row.creation_ts for row in chosen))
    values: dict[datetime, dict[str, float]] = {}
    for row in chosen:
        if _utc(row.creation_ts) == issued_at:
            values.setdefault(_utc(row.validity_ts), {})[row.feature.name] = float(row.value)
    steps = [_step(valid_at, features) for valid_at, features in sorted(values.items())]
    return WeatherForecast(location, issued_at, source, tuple(steps))


def _step(valid_at: datetime, features: dict[str, float]) -> ForecastStep:
    nan = math.nan
    temperature_k = features.get("TEMPERATURE_2_METRE", nan)
    u10 = features.get("U_WIND_COMPONENT_10_METRE", nan)
    v10 = features.get("V_WIND_COMPONENT_10_METRE", nan)
    u100 = features.get("U_WIND_COMPONENT_100_METRE", nan)
    v100 = features.get("V_WIND_COMPONENT_100_METRE", nan)
    speed_10, direction_10 = (float(x) for x in speed_and_direction(u10, v10))
    speed_100, direction_100 = (float(x) for x in speed_and_direction(u100, v100))
    if math.isnan(speed_100) and not math.isnan(speed_10):
        speed_100 = float(wind_speed_at_height(speed_10, 100.0))
    direction = direction_10 if not math.isnan(direction_10) else direction_100
    return ForecastStep(
        valid_at=valid_at,
        temperature_c=temperature_k - KELVIN_OFFSET,
        wind_speed_10m_ms=speed_10,
        wind_speed_100m_ms=speed_100,
        wind_direction_deg=direction,
        ghi_wm2=features.get("SURFACE_SOLAR_RADIATION_DOWNWARDS", nan),
    )


__all__ = ["FeatureRow", "forecast_from_rows"]
