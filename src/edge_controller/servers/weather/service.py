"""The Weather API's operations, independent of gRPC: validation, features, forecasts.

The servicer (`servicer.py`) only converts messages; everything the server *decides*
is here, and every refusal is a `WeatherError` whose kind names the gRPC status.

**Forecasts.** A forecast is issued every `issue_interval` (aligned to the epoch, so
hourly issues fall on the hour); its steps are `resolution` apart from the issue time
to `horizon` (both ends included). The Weather API has no resolution field: the
server's `resolution` is the one interpolated to. Values come from `data` (measured
TMY3 data, nearest station, shifted to the location's solar time) with the seeded
error of `forecast`. Radiation features are the mean over `[valid_time, valid_time +
resolution)`, as the API defines them.

**Features** (`Feature`, numbered as `frequenz.api.weather.v1.ForecastFeature`):
temperature at 2 m in kelvin; u/v wind components at 10 m and 100 m in m/s (100 m by
the power-law profile of `wind`); surface solar radiation downwards (GHI) and surface
net solar radiation (GHI × (1 − the station's albedo; 0.2 when the file has none)) in
W/m². No features, or FORECAST_FEATURE_UNSPECIFIED among them, means all of them.

**Limits and refusals** (INVALID_ARGUMENT unless said otherwise; each message names
the field and the value): at least 1 and at most `max_locations` (50, as the API
documents) locations; latitude −90..90 and longitude −180..180; features the server
does not know; a negative or beyond-horizon `forecast_horizon.offset`, a negative
duration (duration 0 means "the rest of the horizon", as the client sends it unset);
historical: both create times required, end after start, start not in the future
(nothing was created yet; an end in the future is cut at now), at most
`max_historical_range` (7 days) per request. Streams of a server that stops, or that
a test drops (`drop_streams`), end with UNAVAILABLE, never a clean OK.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import Final

import numpy as np
import numpy.typing as npt
import structlog

from edge_controller.common.clock import Clock, WallClock
from edge_controller.common.waiting import wait_event
from edge_controller.servers.common.serving import RefusalError
from edge_controller.weather.data import (
    Dataset,
    WeatherSeries,
    bundled_datasets,
    nearest_dataset,
)
from edge_controller.weather.forecast import ForecastErrorModel, forecast_weather
from edge_controller.weather.messages import GeoLocation
from edge_controller.weather.wind import wind_components

Array = npt.NDArray[np.float64]

_LOG = structlog.get_logger("edge_controller.weather")

KELVIN_OFFSET: Final = 273.15
UNSPECIFIED_FEATURE: Final = 0


class Feature(Enum):
    """A forecast feature; the values are `frequenz.api.weather.v1.ForecastFeature` numbers."""

    TEMPERATURE_2_METRE = 1
    U_WIND_COMPONENT_100_METRE = 2
    V_WIND_COMPONENT_100_METRE = 3
    U_WIND_COMPONENT_10_METRE = 4
    V_WIND_COMPONENT_10_METRE = 5
    SURFACE_SOLAR_RADIATION_DOWNWARDS = 6
    SURFACE_NET_SOLAR_RADIATION = 7


ALL_FEATURES: Final = tuple(Feature)


class ErrorKind(Enum):
    """What kind of refusal, named after the gRPC status code it maps to."""

    INVALID_ARGUMENT = "INVALID_ARGUMENT"
    UNAVAILABLE = "UNAVAILABLE"


class WeatherError(RefusalError):
    """A request the weather service refuses, with a message naming the field and value."""


def invalid(message: str) -> WeatherError:
    """Return an INVALID_ARGUMENT error."""
    return WeatherError(ErrorKind.INVALID_ARGUMENT, message)


def _format_duration(duration: timedelta) -> str:
    seconds = int(duration.total_seconds())
    if duration.microseconds:
        return f"{duration.total_seconds():g}s"
    if seconds % 86400 == 0 and seconds:
        return f"{seconds // 86400}d"
    if seconds % 3600 == 0 and seconds:
        return f"{seconds // 3600}h"
    if seconds % 60 == 0 and seconds:
        return f"{seconds // 60}m"
    return f"{duration.total_seconds():g}s"


@dataclass(frozen=True, slots=True)
class ServiceSettings:
    """How the server issues forecasts and what it accepts.

    Raises:
        ValueError: on creation, a setting out of range, naming it.
    """

    resolution: timedelta = timedelta(minutes=15)
    horizon: timedelta = timedelta(hours=48)
    issue_interval: timedelta = timedelta(hours=1)
    seed: int = 1
    error_model: ForecastErrorModel = field(default_factory=ForecastErrorModel)
    max_locations: int = 50
    max_historical_range: timedelta = timedelta(days=7)

    def __post_init__(self) -> None:
        """Check the settings."""
        if not timedelta(seconds=1) <= self.resolution <= timedelta(days=1):
            raise ValueError(f"resolution: expected 1s..1d, got {self.resolution}")
        if not self.resolution <= self.horizon <= timedelta(days=10):
            raise ValueError(
                f"horizon: expected {self.resolution} (the resolution)..10 days, got {self.horizon}"
            )
        if self.horizon / self.resolution > 10_000:
            raise ValueError(
                f"horizon / resolution: at most 10000 steps, got {self.horizon / self.resolution:g}"
            )
        if not timedelta(seconds=1) <= self.issue_interval <= timedelta(days=1):
            raise ValueError(f"issue_interval: expected 1s..1d, got {self.issue_interval}")
        if self.seed < 0:
            raise ValueError(f"seed: expected an integer >= 0, got {self.seed}")
        if self.max_locations < 1:
            raise ValueError(f"max_locations: expected >= 1, got {self.max_locations}")
        if self.max_historical_range < self.issue_interval:
            raise ValueError(
                f"max_historical_range: expected >= issue_interval, got {self.max_historical_range}"
            )


@dataclass(frozen=True, slots=True)
class Window:
    """Which part of each forecast to send: leads from `offset` to `offset + duration`."""

    offset: timedelta = timedelta(0)
    duration: timedelta | None = None
    """None: to the end of the horizon."""


@dataclass(frozen=True, slots=True)
class RawLocation:
    """A location as it arrived, not yet checked."""

    latitude: float
    longitude: float
    country_code: str = ""


@dataclass(frozen=True, slots=True)
class ForecastRequest:
    """A checked request: where, which features, which part of each forecast."""

    locations: tuple[GeoLocation, ...]
    features: tuple[Feature, ...]
    window: Window


@dataclass(frozen=True, slots=True, eq=False)
class LocationForecast:
    """One issued forecast for one location: a value array per feature, one per step."""

    location: GeoLocation
    dataset_key: str
    valid_s: Array
    """Validity times, seconds since the epoch."""
    values: dict[Feature, Array]


@dataclass(frozen=True, slots=True, eq=False)
class IssuedForecast:
    """What one response carries: the forecast issued at `issued_at`, per location."""

    issued_at: datetime
    locations: tuple[LocationForecast, ...]


# ------------------------------------------------------------------ validation (pure)


def check_locations(raw: Sequence[RawLocation], max_locations: int = 50) -> tuple[GeoLocation, ...]:
    """Return the locations, or refuse an empty, too long or out-of-range list."""
    if not raw:
        raise invalid("locations: at least one location is required, got none")
    if len(raw) > max_locations:
        raise invalid(f"locations: at most {max_locations} per request, got {len(raw)}")
    checked = []
    for index, location in enumerate(raw):
        if not (math.isfinite(location.latitude) and -90.0 <= location.latitude <= 90.0):
            raise invalid(
                f"locations[{index}].latitude: expected -90..90, got {location.latitude!r}"
            )
        if not (math.isfinite(location.longitude) and -180.0 <= location.longitude <= 180.0):
            raise invalid(
                f"locations[{index}].longitude: expected -180..180, got {location.longitude!r}"
            )
        checked.append(GeoLocation(location.latitude, location.longitude, location.country_code))
    return tuple(checked)


def check_features(raw: Sequence[int]) -> tuple[Feature, ...]:
    """Return the features asked for (all of them for none or UNSPECIFIED), deduplicated."""
    known = {feature.value: feature for feature in Feature}
    chosen: list[Feature] = []
    for index, number in enumerate(raw):
        if number == UNSPECIFIED_FEATURE:
            continue
        if number not in known:
            supported = ", ".join(f"{feature.name} ({feature.value})" for feature in Feature)
            raise invalid(
                f"features[{index}]: unsupported feature {number}; "
                f"this server supports {supported}, or UNSPECIFIED (0) for all"
            )
        if known[number] not in chosen:
            chosen.append(known[number])
    if not chosen or UNSPECIFIED_FEATURE in raw:
        return ALL_FEATURES
    return tuple(chosen)


def check_window(
    offset: timedelta | None, duration: timedelta | None, horizon: timedelta
) -> Window:
    """Return the forecast window, refusing negative values and offsets past the horizon."""
    start = offset or timedelta(0)
    if start < timedelta(0):
        raise invalid(f"forecast_horizon.offset: expected >= 0, got {start.total_seconds():g}s")
    if start > horizon:
        raise invalid(
            f"forecast_horizon.offset: {_format_duration(start)} is beyond this server's "
            f"forecast horizon of {_format_duration(horizon)}"
        )
    if duration is not None and duration < timedelta(0):
        raise invalid(
            f"forecast_horizon.duration: expected >= 0, got {duration.total_seconds():g}s"
        )
    return Window(start, duration if duration else None)


def check_historical_range(
    start: datetime | None, end: datetime | None, now: datetime, max_range: timedelta
) -> tuple[datetime, datetime]:
    """Return (start, end) of a valid range of create times (`now` only checks start)."""
    if start is None:
        raise invalid("start_create_time: required")
    if end is None:
        raise invalid("end_create_time: required")
    if end <= start:
        raise invalid(
            f"end_create_time ({end.isoformat()}) must be after start_create_time "
            f"({start.isoformat()})"
        )
    if start > now:
        raise invalid(
            f"start_create_time ({start.isoformat()}) is in the future (now "
            f"{now.isoformat()}): no forecast has been created yet"
        )
    if end - start > max_range:
        raise invalid(
            f"end_create_time - start_create_time: at most {_format_duration(max_range)} per "
            f"request, got {_format_duration(end - start)}; split the range"
        )
    return start, end


# ------------------------------------------------------------------ forecasts (pure)


def issue_time(now: datetime, interval: timedelta) -> datetime:
    """Return the latest issue time at or before `now` (aligned to the epoch)."""
    step = interval.total_seconds()
    return datetime.fromtimestamp(math.floor(now.timestamp() / step) * step, UTC)


def issue_times(start: datetime, end: datetime, interval: timedelta) -> list[datetime]:
    """Return the issue times in `[start, end]`."""
    step = interval.total_seconds()
    first = math.ceil(start.timestamp() / step) * step
    count = max(0, math.floor((end.timestamp() - first) / step) + 1)
    return [datetime.fromtimestamp(first + index * step, UTC) for index in range(count)]


def valid_times_s(
    issued_at: datetime, resolution: timedelta, horizon: timedelta, window: Window
) -> Array:
    """Return the validity times (epoch s) of the steps inside `window` (ends included)."""
    step = resolution.total_seconds()
    last = horizon.total_seconds()
    if window.duration is not None:
        last = min(last, (window.offset + window.duration).total_seconds())
    first_index = math.ceil(window.offset.total_seconds() / step - 1e-9)
    last_index = math.floor(last / step + 1e-9)
    indices = np.arange(first_index, last_index + 1, dtype=np.float64)
    return np.asarray(issued_at.timestamp() + indices * step, dtype=np.float64)


def feature_values(series: WeatherSeries, feature: Feature) -> Array:
    """Return one feature's values in the API's unit (see the module docstring)."""
    match feature:
        case Feature.TEMPERATURE_2_METRE:
            return series.temperature_c + KELVIN_OFFSET
        case Feature.U_WIND_COMPONENT_10_METRE:
            return wind_components(series.wind_speed_10m_ms, series.wind_direction_deg)[0]
        case Feature.V_WIND_COMPONENT_10_METRE:
            return wind_components(series.wind_speed_10m_ms, series.wind_direction_deg)[1]
        case Feature.U_WIND_COMPONENT_100_METRE:
            return wind_components(series.wind_speed_100m_ms, series.wind_direction_deg)[0]
        case Feature.V_WIND_COMPONENT_100_METRE:
            return wind_components(series.wind_speed_100m_ms, series.wind_direction_deg)[1]
        case Feature.SURFACE_SOLAR_RADIATION_DOWNWARDS:
            return series.ghi_wm2
        case Feature.SURFACE_NET_SOLAR_RADIATION:
            return series.ghi_wm2 * (1.0 - series.albedo)


def make_forecast(
    settings: ServiceSettings,
    datasets: Sequence[Dataset],
    request: ForecastRequest,
    issued_at: datetime,
) -> IssuedForecast:
    """Return the forecast issued at `issued_at` for every location of `request`."""
    valid = valid_times_s(issued_at, settings.resolution, settings.horizon, request.window)
    locations = []
    for location in request.locations:
        dataset = nearest_dataset(location, datasets)
        series = forecast_weather(
            dataset,
            location,
            issued_at.timestamp(),
            valid,
            step_s=settings.resolution.total_seconds(),
            model=settings.error_model,
            seed=settings.seed,
        )
        values = {feature: feature_values(series, feature) for feature in request.features}
        locations.append(LocationForecast(location, dataset.key, valid, values))
    return IssuedForecast(issued_at, tuple(locations))


# ------------------------------------------------------------------ the service (async)


class WeatherService:
    """The operations behind the Weather API: live and historical forecasts.

    `clock` (default: the wall clock) decides which forecasts exist: the live stream
    starts with the latest issue at or before now and sends each next issue when the
    clock reaches it; a historical request sees issues up to now.
    """

    def __init__(
        self,
        settings: ServiceSettings | None = None,
        *,
        clock: Clock | None = None,
        datasets: Sequence[Dataset] | None = None,
    ) -> None:
        """Serve with `settings` from `datasets` (default: the bundled TMY3 files)."""
        self.settings = settings or ServiceSettings()
        self._clock: Clock = clock or WallClock()
        self._datasets = tuple(datasets) if datasets is not None else None
        self._interrupt = asyncio.Event()
        self._closed = False
        self.live_streams = 0
        """Live streams open now (tests wait on it)."""

    @property
    def datasets(self) -> tuple[Dataset, ...]:
        """The datasets served from (the bundled ones are read on first use)."""
        if self._datasets is None:
            self._datasets = bundled_datasets()
        return self._datasets

    def request(
        self,
        locations: Sequence[RawLocation],
        features: Sequence[int],
        offset: timedelta | None = None,
        duration: timedelta | None = None,
    ) -> ForecastRequest:
        """Check a request's common fields.

        Raises:
            WeatherError: INVALID_ARGUMENT, naming the field and the value.
        """
        return ForecastRequest(
            check_locations(locations, self.settings.max_locations),
            check_features(features),
            check_window(offset, duration, self.settings.horizon),
        )

    def forecast(self, request: ForecastRequest, issued_at: datetime) -> IssuedForecast:
        """Return the forecast issued at `issued_at` (pure; may take a few ms per location)."""
        return make_forecast(self.settings, self.datasets, request, issued_at)

    async def live(self, request: ForecastRequest) -> AsyncIterator[IssuedForecast]:
        """Yield the latest forecast, then each new one as it is issued; never end cleanly.

        Raises:
            WeatherError: UNAVAILABLE when the service closes or streams are dropped.
        """
        self._refuse_if_closed()
        interrupt = self._interrupt
        issued = issue_time(self._clock.now(), self.settings.issue_interval)
        self.live_streams += 1
        try:
            while True:
                yield await asyncio.to_thread(self.forecast, request, issued)
                issued += self.settings.issue_interval
                await self._wait_until(issued, interrupt)
        finally:
            self.live_streams -= 1

    async def historical(
        self,
        request: ForecastRequest,
        start: datetime | None,
        end: datetime | None,
    ) -> AsyncIterator[IssuedForecast]:
        """Yield every forecast issued in `[start, end)` (up to now), oldest first.

        Raises:
            WeatherError: INVALID_ARGUMENT for a bad range; UNAVAILABLE when closing.
        """
        self._refuse_if_closed()
        interrupt = self._interrupt
        now = self._clock.now()
        first, last = check_historical_range(start, end, now, self.settings.max_historical_range)
        candidates = issue_times(first, min(last, now), self.settings.issue_interval)
        for issued in (t for t in candidates if t < last):
            if interrupt.is_set():
                raise WeatherError(ErrorKind.UNAVAILABLE, "weather server shutting down")
            yield await asyncio.to_thread(self.forecast, request, issued)

    def drop_streams(self) -> None:
        """End every open stream with UNAVAILABLE (a simulated outage, for tests)."""
        self._interrupt.set()
        self._interrupt = asyncio.Event()

    async def close(self) -> None:
        """End every stream with UNAVAILABLE and refuse new ones."""
        self._closed = True
        self._interrupt.set()

    def _refuse_if_closed(self) -> None:
        if self._closed:
            raise WeatherError(ErrorKind.UNAVAILABLE, "weather server shutting down")

    async def _wait_until(self, moment: datetime, interrupt: asyncio.Event) -> None:
        """Wait until the clock reaches `moment` (re-read at least every second)."""
        while True:
            if interrupt.is_set():
                reason = "shutting down" if self._closed else "stream dropped"
                raise WeatherError(ErrorKind.UNAVAILABLE, f"weather server {reason}")
            remaining = (moment - self._clock.now()).total_seconds()
            if remaining <= 0:
                return
            await wait_event(interrupt, min(remaining, 1.0))


__all__ = [
    "ALL_FEATURES",
    "ErrorKind",
    "Feature",
    "ForecastRequest",
    "IssuedForecast",
    "LocationForecast",
    "RawLocation",
    "ServiceSettings",
    "WeatherError",
    "WeatherService",
    "Window",
    "check_features",
    "check_historical_range",
    "check_locations",
    "check_window",
    "feature_values",
    "invalid",
    "issue_time",
    "issue_times",
    "make_forecast",
    "valid_times_s",
]
