"""What the weather sources publish: a location and a forecast of typed steps.

`WeatherActor` sends one `WeatherForecast` per forecast it receives; the market-bid
actor (and anyone else) subscribes to that channel. Plain frozen dataclasses: no
protobuf, no numpy.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass
from datetime import datetime, timedelta


class LocationError(ValueError):
    """A latitude or longitude outside its range, or not a number."""


@dataclass(frozen=True, slots=True)
class GeoLocation:
    """A point on Earth: latitude −90…90 (north +), longitude −180…180 (east +).

    `country_code` is ISO 3166-1 alpha-2 and may be empty (the Weather API ignores it).

    Raises:
        LocationError: on creation, naming the coordinate and the value.
    """

    latitude: float
    longitude: float
    country_code: str = ""

    def __post_init__(self) -> None:
        """Check the coordinates' ranges."""
        if not (math.isfinite(self.latitude) and -90.0 <= self.latitude <= 90.0):
            raise LocationError(f"latitude: expected -90..90, got {self.latitude!r}")
        if not (math.isfinite(self.longitude) and -180.0 <= self.longitude <= 180.0):
            raise LocationError(f"longitude: expected -180..180, got {self.longitude!r}")


@dataclass(frozen=True, slots=True)
class ForecastStep:
    """The weather forecast for one validity time.

    Wind directions are where the wind comes *from*, degrees clockwise from north
    (meteorological convention). `ghi_wm2` is the global horizontal irradiance
    averaged from `valid_at` until the next step, as the Weather API defines it.
    A feature the source did not provide is NaN.
    """

    valid_at: datetime
    temperature_c: float
    wind_speed_10m_ms: float
    wind_speed_100m_ms: float
    wind_direction_deg: float
    ghi_wm2: float


@dataclass(frozen=True, slots=True)
class WeatherForecast:
    """One issued forecast for one location: steps in increasing `valid_at` order.

    `source` names where it came from (`weather-api grpc://…`, `openweathermap …`), for
    logs and reports.
    """

    location: GeoLocation
    issued_at: datetime
    source: str
    steps: tuple[ForecastStep, ...]

    def step_at(self, when: datetime) -> ForecastStep | None:
        """Return the step in force at `when` (the last one with `valid_at <= when`).

        None before the first step or after the last step's interval (the last step
        counts for as long as the step before it).
        """
        if not self.steps:
            return None
        times = [step.valid_at for step in self.steps]
        index = bisect.bisect_right(times, when) - 1
        if index < 0:
            return None
        if index == len(times) - 1 and when > times[-1]:
            width = times[-1] - times[-2] if len(times) > 1 else timedelta(0)
            if when >= times[-1] + width:
                return None
        return self.steps[index]


__all__ = ["ForecastStep", "GeoLocation", "LocationError", "WeatherForecast"]
