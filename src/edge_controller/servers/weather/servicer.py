"""`frequenz.api.weather.v1.WeatherForecastService` over `WeatherService`: a thin translator.

It converts requests into the service's plain types and its forecasts into
protobuf; every decision (and every refusal, with its status code) is the
service's. Refusals and bugs become status codes through `serving.streamed`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

from frequenz.api.common.v1 import location_pb2
from frequenz.api.weather.v1 import weather_pb2 as pb
from frequenz.api.weather.v1 import weather_pb2_grpc as pb_grpc
from google.protobuf import duration_pb2, timestamp_pb2
from typing_extensions import override

from edge_controller.servers.common.serving import Context, streamed
from edge_controller.servers.weather.service import (
    IssuedForecast,
    RawLocation,
    WeatherService,
)

_SERVICE = "weather"


def _timestamp(epoch_s: float) -> timestamp_pb2.Timestamp:
    seconds = int(epoch_s // 1)
    return timestamp_pb2.Timestamp(seconds=seconds, nanos=round((epoch_s - seconds) * 1e9))


def _duration(value: duration_pb2.Duration) -> timedelta:
    return timedelta(seconds=value.seconds, microseconds=value.nanos / 1000)


def _datetime(value: timestamp_pb2.Timestamp) -> datetime:
    return datetime.fromtimestamp(value.seconds + value.nanos / 1e9, UTC)


def location_forecasts(forecast: IssuedForecast) -> list[pb.LocationForecast]:
    """Return the protobuf form of one issued forecast, one entry per location."""
    create_time = _timestamp(forecast.issued_at.timestamp())
    result = []
    for entry in forecast.locations:
        columns = [
            (pb.ForecastFeature.ValueType(feature.value), values.tolist())
            for feature, values in entry.values.items()
        ]
        steps = [
            pb.LocationForecast.Forecasts(
                valid_time=_timestamp(valid),
                features=[
                    pb.LocationForecast.Forecasts.FeatureForecast(feature=number, value=values[i])
                    for number, values in columns
                ],
            )
            for i, valid in enumerate(entry.valid_s.tolist())
        ]
        result.append(
            pb.LocationForecast(
                forecasts=steps,
                location=location_pb2.Location(
                    latitude=entry.location.latitude,
                    longitude=entry.location.longitude,
                    country_code=entry.location.country_code,
                ),
                create_time=create_time,
            )
        )
    return result


def _locations(
    locations: list[location_pb2.Location],
) -> list[RawLocation]:
    return [RawLocation(loc.latitude, loc.longitude, loc.country_code) for loc in locations]


class WeatherServicer(pb_grpc.WeatherForecastServiceServicer):
    """Serves live and historical forecasts from a `WeatherService`."""

    def __init__(self, service: WeatherService) -> None:
        """Translate for `service`."""
        self._service = service

    @override
    async def ReceiveLiveWeatherForecast(
        self, request: pb.ReceiveLiveWeatherForecastRequest, context: Context
    ) -> AsyncIterator[pb.ReceiveLiveWeatherForecastResponse]:
        """Stream the latest forecast, then each new one; UNAVAILABLE on shutdown."""

        async def responses() -> AsyncIterator[pb.ReceiveLiveWeatherForecastResponse]:
            offset, duration = self._window(request)
            checked = self._service.request(
                _locations(list(request.locations)), list(request.features), offset, duration
            )
            async for forecast in self._service.live(checked):
                yield pb.ReceiveLiveWeatherForecastResponse(
                    location_forecasts=location_forecasts(forecast)
                )

        async for response in streamed(context, responses(), service=_SERVICE):
            yield response

    @override
    async def ReceiveHistoricalWeatherForecast(
        self, request: pb.ReceiveHistoricalWeatherForecastRequest, context: Context
    ) -> AsyncIterator[pb.ReceiveHistoricalWeatherForecastResponse]:
        """Stream every forecast created in the requested range, oldest first."""

        async def responses() -> AsyncIterator[pb.ReceiveHistoricalWeatherForecastResponse]:
            offset, duration = self._window(request)
            checked = self._service.request(
                _locations(list(request.locations)), list(request.features), offset, duration
            )
            start = (
                _datetime(request.start_create_time)
                if request.HasField("start_create_time")
                else None
            )
            end = (
                _datetime(request.end_create_time) if request.HasField("end_create_time") else None
            )
            async for forecast in self._service.historical(checked, start, end):
                yield pb.ReceiveHistoricalWeatherForecastResponse(
                    location_forecasts=location_forecasts(forecast)
                )

        async for response in streamed(context, responses(), service=_SERVICE):
            yield response

    @staticmethod
    def _window(
        request: pb.ReceiveLiveWeatherForecastRequest | pb.ReceiveHistoricalWeatherForecastRequest,
    ) -> tuple[timedelta | None, timedelta | None]:
        if not request.HasField("forecast_horizon"):
            return None, None
        horizon = request.forecast_horizon
        offset = _duration(horizon.offset) if horizon.HasField("offset") else None
        duration = _duration(horizon.duration) if horizon.HasField("duration") else None
        return offset, duration


__all__ = ["WeatherServicer", "location_forecasts"]
