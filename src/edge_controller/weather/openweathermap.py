"""An optional second weather source: an OpenWeatherMap-style HTTP forecast API.

For sites that have no Weather API: the `OpenWeatherMapSource` polls the 5-day /
3-hour forecast (the same endpoint the market simulation's weather module used) and
yields `WeatherForecast`s for the `WeatherActor`:

    GET {base_url}/data/2.5/forecast?lat=LAT&lon=LON&appid=KEY&units=metric

of which it reads, per entry of `list`: `dt` (epoch seconds), `main.temp` (°C),
`wind.speed` (m/s, 10 m) and `wind.deg`, and `clouds.all` (cloud cover, %).

That API forecasts no irradiance, so GHI is estimated from the cloud cover:
clear-sky GHI (Haurwitz, from the sun's position at the location, averaged over the
step) × (1 − 0.75 · c^3.4), c the cloud fraction (Kasten & Czeplak, 1980). The 100 m
wind follows from 10 m by the profile in `wind`.

The key is read from a file (one key; blank lines and `#` comments ignored), again
before every request so that a replaced key is picked up; it is never logged (the
request URL, which carries it, is never logged either). Failures (network, HTTP
errors, a refused key, a malformed answer) are logged and retried after
`retry_interval`, doubling up to `poll_interval`: a weather outage never crashes the
actor. Uses only the standard library (`urllib`), in a worker thread.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import AsyncGenerator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import numpy as np
import structlog

from edge_controller.common.clock import Clock, WallClock
from edge_controller.weather.messages import ForecastStep, GeoLocation, WeatherForecast
from edge_controller.weather.solar import clear_sky_ghi_wm2
from edge_controller.weather.wind import wind_speed_at_height, wrap_degrees

_LOG = structlog.get_logger(__name__)

DEFAULT_BASE_URL: Final = "https://api.openweathermap.org"
FORECAST_PATH: Final = "/data/2.5/forecast"


class ApiKeyFileError(ValueError):
    """The key file cannot be read or does not hold exactly one key."""


class OpenWeatherMapError(Exception):
    """A request failed or its answer is not a forecast; the message says which."""


def read_api_key(path: Path) -> str:
    """Return the one key in `path` (blank lines and `#` comments ignored).

    Raises:
        ApiKeyFileError: naming the file, what was expected and what was found.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
        raise ApiKeyFileError(f"key file {str(path)!r}: cannot read: {reason}") from None
    keys = [
        line.strip()
        for line in text.splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]
    if len(keys) != 1:
        raise ApiKeyFileError(
            f"key file {str(path)!r}: expected exactly one key, found {len(keys)}"
        )
    return keys[0]


def cloud_factor(cloud_fraction: float) -> float:
    """Return GHI / clear-sky GHI under cloud cover 0..1 (Kasten & Czeplak)."""
    fraction = min(1.0, max(0.0, cloud_fraction))
    return 1.0 - 0.75 * math.pow(fraction, 3.4)


def _number(entry: Mapping[str, Any], path: str, index: int) -> float:
    value: Any = entry
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            raise OpenWeatherMapError(f"list[{index}].{path}: missing")
        value = value[part]
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise OpenWeatherMapError(f"list[{index}].{path}: expected a number, got {value!r}")
    return float(value)


def parse_forecast(
    document: Mapping[str, Any], location: GeoLocation, issued_at: datetime, source: str
) -> WeatherForecast:
    """Return the forecast in an answer of the forecast endpoint.

    Raises:
        OpenWeatherMapError: naming the entry and field that is missing or malformed.
    """
    entries = document.get("list")
    if not isinstance(entries, list) or not entries:
        raise OpenWeatherMapError("list: expected a non-empty list of forecast entries")
    rows = []
    for index, entry in enumerate(entries):
        if not isinstance(entry, Mapping):
            raise OpenWeatherMapError(f"list[{index}]: expected an object, got {entry!r}")
        rows.append(
            (
                _number(entry, "dt", index),
                _number(entry, "main.temp", index),
                _number(entry, "wind.speed", index),
                _number(entry, "wind.deg", index),
                _number(entry, "clouds.all", index),
            )
        )
    rows.sort()
    times = [row[0] for row in rows]
    widths = [b - a for a, b in itertools.pairwise(times)]
    widths.append(widths[-1] if widths else 3 * 3600.0)
    steps = []
    for (when, temp_c, speed, direction, clouds_pct), width in zip(rows, widths, strict=True):
        samples = when + (np.arange(6) + 0.5) / 6 * max(width, 0.0)
        clear = float(np.mean(clear_sky_ghi_wm2(samples, location.latitude, location.longitude)))
        steps.append(
            ForecastStep(
                valid_at=datetime.fromtimestamp(when, UTC),
                temperature_c=temp_c,
                wind_speed_10m_ms=max(0.0, speed),
                wind_speed_100m_ms=float(wind_speed_at_height(max(0.0, speed), 100.0)),
                wind_direction_deg=float(wrap_degrees(direction)),
                ghi_wm2=clear * cloud_factor(clouds_pct / 100.0),
            )
        )
    return WeatherForecast(location, issued_at, source, tuple(steps))


class OpenWeatherMapSource:
    """Polls an OpenWeatherMap-style forecast API for one location.

    A forecast is yielded after every successful poll, `poll_interval` apart; failures
    are retried (see the module docstring) and never end the stream.
    """

    def __init__(
        self,
        location: GeoLocation,
        key_file: Path,
        *,
        base_url: str = DEFAULT_BASE_URL,
        poll_interval: timedelta = timedelta(minutes=30),
        retry_interval: timedelta = timedelta(minutes=1),
        timeout_s: float = 10.0,
        clock: Clock | None = None,
    ) -> None:
        """Poll `base_url` for `location` with the key in `key_file`.

        Raises:
            ApiKeyFileError: the key file is unusable (checked now, and before each poll).
            ValueError: a URL that is not http(s), or intervals that are not > 0.
        """
        scheme = urllib.parse.urlsplit(base_url).scheme
        if scheme not in ("http", "https"):
            raise ValueError(f"base_url: expected an http:// or https:// URL, got {base_url!r}")
        if poll_interval <= timedelta(0) or retry_interval <= timedelta(0) or timeout_s <= 0:
            raise ValueError(
                f"poll_interval, retry_interval and timeout_s must be > 0, got {poll_interval}, "
                f"{retry_interval}, {timeout_s}"
            )
        read_api_key(key_file)
        self._location = location
        self._key_file = key_file
        self._base_url = base_url.rstrip("/")
        self._poll_interval = poll_interval
        self._retry_interval = retry_interval
        self._timeout_s = timeout_s
        self._clock: Clock = clock or WallClock()
        self._log = _LOG.bind(source=self.name)

    @property
    def name(self) -> str:
        """`openweathermap BASE_URL` (never the key)."""
        return f"openweathermap {self._base_url}"

    def fetch(self) -> WeatherForecast:
        """Request and parse one forecast (blocking; the source runs it in a thread).

        Raises:
            ApiKeyFileError: the key file became unusable.
            OpenWeatherMapError: the request failed or the answer is not a forecast.
        """
        key = read_api_key(self._key_file)
        query = urllib.parse.urlencode(
            {
                "lat": f"{self._location.latitude:.4f}",
                "lon": f"{self._location.longitude:.4f}",
                "appid": key,
                "units": "metric",
            }
        )
        request = urllib.request.Request(
            f"{self._base_url}{FORECAST_PATH}?{query}",
            headers={"Accept": "application/json", "User-Agent": "edge-controller"},
        )
        issued_at = self._clock.now()
        try:
            with urllib.request.urlopen(request, timeout=self._timeout_s) as response:
                body = response.read()
        except urllib.error.HTTPError as error:
            if error.code in (401, 403):
                raise OpenWeatherMapError(
                    f"HTTP {error.code}: the key in {str(self._key_file)!r} was refused"
                ) from None
            raise OpenWeatherMapError(f"HTTP {error.code} {error.reason}") from None
        except (urllib.error.URLError, TimeoutError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise OpenWeatherMapError(f"cannot reach {self._base_url}: {reason}") from None
        try:
            document = json.loads(body)
        except (ValueError, UnicodeDecodeError) as error:
            raise OpenWeatherMapError(f"the answer is not JSON: {error}") from None
        if not isinstance(document, Mapping):
            raise OpenWeatherMapError("the answer is not a JSON object")
        return parse_forecast(document, self._location, issued_at, self.name)

    async def forecasts(self) -> AsyncGenerator[WeatherForecast, None]:
        """Poll forever: yield each forecast; log and retry failures."""
        retry_s = self._retry_interval.total_seconds()
        while True:
            try:
                forecast = await asyncio.to_thread(self.fetch)
            except (OpenWeatherMapError, ApiKeyFileError) as error:
                self._log.warning("openweathermap_failed", error=str(error), retry_in_s=retry_s)
                await asyncio.sleep(retry_s)
                retry_s = min(retry_s * 2, self._poll_interval.total_seconds())
                continue
            retry_s = self._retry_interval.total_seconds()
            yield forecast
            await asyncio.sleep(self._poll_interval.total_seconds())


__all__ = [
    "DEFAULT_BASE_URL",
    "ApiKeyFileError",
    "OpenWeatherMapError",
    "OpenWeatherMapSource",
    "cloud_factor",
    "parse_forecast",
    "read_api_key",
]
