"""WeatherActor: receives weather forecasts for the site and publishes them on a channel.

```
 Weather API (gRPC) --frequenz-client-weather--> WeatherApiSource --.
                                                                     +--> WeatherActor
 OpenWeatherMap-style HTTP API --> OpenWeatherMapSource (optional) --'        |
                                                          Sender[WeatherForecast]
```

A *source* turns one connection into an async stream of `WeatherForecast`s; it ends
when the connection is gone. The actor publishes each forecast newer than the last
one it sent (a reconnect re-delivers the latest forecast: it is not sent twice) and
reconnects when the source ends or stays silent for `stale_after`.

**Reconnecting, and what the client does itself.** `frequenz-client-weather` 0.3.1
streams through `frequenz-client-base`'s `GrpcStreamBroadcaster`: on any gRPC error
(UNAVAILABLE from a server going down, but also INVALID_ARGUMENT) it retries the call
every 3 s + up to 1 s of jitter, forever, and the receiver stays open; when the server
ends the stream cleanly, the receiver closes for good, and asking the same client
again returns that closed stream. So the actor (1) checks the location before
connecting — a bad one would be retried forever —, (2) makes a new client when the
receiver closes, and (3) makes a new client when no forecast came for `stale_after`
(default 3 h; forecasts are typically issued hourly), which also covers a stream
that hangs without an error. The client offers no way to stop a stream: closing one
stops its broadcaster before disconnecting, so that no retry task outlives it
(`common.compat.close_weather_client`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Protocol

import structlog
from frequenz.channels import Sender

from edge_controller.common.compat import close_weather_client
from edge_controller.framework.supervision import SupervisedActor
from edge_controller.weather.convert import forecast_from_rows
from edge_controller.weather.messages import GeoLocation, WeatherForecast

if TYPE_CHECKING:
    from frequenz.client.weather import ForecastFeature

_LOG = structlog.get_logger(__name__)

DEFAULT_FEATURE_NAMES = (
    "TEMPERATURE_2_METRE",
    "U_WIND_COMPONENT_10_METRE",
    "V_WIND_COMPONENT_10_METRE",
    "U_WIND_COMPONENT_100_METRE",
    "V_WIND_COMPONENT_100_METRE",
    "SURFACE_SOLAR_RADIATION_DOWNWARDS",
)
"""What `WeatherForecast` carries: temperature, wind at 10 m and 100 m, GHI."""


class ForecastSource(Protocol):
    """One connection to a weather provider, as a stream of forecasts."""

    @property
    def name(self) -> str:
        """Where the forecasts come from (for logs; never holds a key)."""
        ...

    def forecasts(self) -> AsyncGenerator[WeatherForecast, None]:
        """Yield forecasts as they come; end when the connection is lost."""
        ...


class WeatherApiSource:
    """Live forecasts for one location from a Frequenz Weather API server.

    Uses the real `frequenz.client.weather.Client` (`stream_live_forecast`); `url` as
    the client takes it, e.g. `grpc://127.0.0.1:50053?ssl=false` for a plain local
    server.
    """

    def __init__(
        self,
        url: str,
        location: GeoLocation,
        *,
        feature_names: Sequence[str] = DEFAULT_FEATURE_NAMES,
    ) -> None:
        """Stream `feature_names` (`ForecastFeature` names) for `location` from `url`.

        Raises:
            ValueError: an empty URL or an unknown feature name.
        """
        from frequenz.client.weather import ForecastFeature

        if not url:
            raise ValueError("url: expected the Weather API's URL, got ''")
        known = {feature.name: feature for feature in ForecastFeature}
        unknown = [name for name in feature_names if name not in known or name == "UNSPECIFIED"]
        if unknown or not feature_names:
            raise ValueError(
                f"feature_names: expected names of ForecastFeature, got {list(feature_names)!r}"
            )
        self._url = url
        self._location = location
        self._features: list[ForecastFeature] = [known[name] for name in feature_names]

    @property
    def name(self) -> str:
        """`weather-api URL`."""
        return f"weather-api {self._url}"

    async def forecasts(self) -> AsyncGenerator[WeatherForecast, None]:
        """Yield each live forecast; end when the client's stream closes."""
        from frequenz.client.weather import Client, Location

        client = Client(self._url)
        try:
            location = Location(
                latitude=self._location.latitude,
                longitude=self._location.longitude,
                country_code=self._location.country_code,
            )
            receiver = await client.stream_live_forecast([location], self._features)
            async for response in receiver:
                forecast = forecast_from_rows(response.flatten(), self._location, self.name)
                if forecast is not None and forecast.steps:
                    yield forecast
        finally:
            await close_weather_client(client)


class WeatherActor(SupervisedActor):
    """Publishes the site's weather forecasts on a channel.

    Each forecast newer than the last published one is sent on `sender`; the source
    is reconnected (after `retry_delay`) when it ends or is silent for `stale_after`.
    `connections` counts connection attempts and `last_issued_at` is the issue time of
    the last published forecast (both for tests and metrics).
    """

    def __init__(
        self,
        source: ForecastSource,
        sender: Sender[WeatherForecast],
        *,
        stale_after: timedelta = timedelta(hours=3),
        retry_delay: timedelta = timedelta(seconds=5),
        name: str = "weather",
    ) -> None:
        """Publish `source`'s forecasts on `sender`.

        Raises:
            ValueError: a `stale_after` or `retry_delay` that is not > 0.
        """
        if stale_after <= timedelta(0) or retry_delay <= timedelta(0):
            raise ValueError(
                f"stale_after and retry_delay must be > 0, got {stale_after}, {retry_delay}"
            )
        super().__init__(name=name)
        self._source = source
        self._sender = sender
        self._stale_after = stale_after
        self._retry_delay = retry_delay
        self._log = structlog.get_logger(__name__).bind(actor=name)
        self.connections = 0
        self.last_issued_at: datetime | None = None

    async def _run(self) -> None:
        while True:
            self.connections += 1
            self._log.info("weather_source_connecting", source=self._source.name)
            reason = await self._follow()
            self._log.warning(
                "weather_source_lost",
                source=self._source.name,
                reason=reason,
                retry_in_s=self._retry_delay.total_seconds(),
            )
            await asyncio.sleep(self._retry_delay.total_seconds())

    async def _follow(self) -> str:
        """Publish forecasts until the source ends ("ended") or is silent ("stale")."""
        forecasts = self._source.forecasts()
        try:
            while True:
                try:
                    async with asyncio.timeout(self._stale_after.total_seconds()):
                        forecast = await anext(forecasts)
                except StopAsyncIteration:
                    return "ended"
                except TimeoutError:
                    return "stale"
                await self._publish(forecast)
        finally:
            await forecasts.aclose()

    async def _publish(self, forecast: WeatherForecast) -> None:
        if self.last_issued_at is not None and forecast.issued_at <= self.last_issued_at:
            self._log.debug("weather_forecast_unchanged", issued_at=forecast.issued_at.isoformat())
            return
        self.last_issued_at = forecast.issued_at
        await self._sender.send(forecast)
        self._log.info(
            "weather_forecast_published",
            source=self._source.name,
            issued_at=forecast.issued_at.isoformat(),
            steps=len(forecast.steps),
            first_valid_at=forecast.steps[0].valid_at.isoformat() if forecast.steps else None,
            last_valid_at=forecast.steps[-1].valid_at.isoformat() if forecast.steps else None,
        )


__all__ = [
    "DEFAULT_FEATURE_NAMES",
    "ForecastSource",
    "WeatherActor",
    "WeatherApiSource",
]
