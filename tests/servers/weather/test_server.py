"""End to end on loopback: the real `frequenz-client-weather` against `WeatherServer`."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, cast

import grpc
import pytest
from frequenz.api.common.v1 import location_pb2
from frequenz.api.weather.v1 import weather_pb2 as pb
from frequenz.api.weather.v1 import weather_pb2_grpc as pb_grpc
from frequenz.client.weather import Client, ForecastFeature, Location
from google.protobuf import duration_pb2, timestamp_pb2

from edge_controller.common.clock import ManualClock
from edge_controller.common.compat import close_weather_client
from edge_controller.servers.common.serving import ListenAddressError
from edge_controller.servers.weather.server import WeatherServer
from tests.servers.weather.conftest import MORNING

if TYPE_CHECKING:
    from frequenz.api.weather.v1.weather_pb2_grpc import (
        WeatherForecastServiceAsyncStub as Stub,
    )

BERLIN = Location(latitude=52.52, longitude=13.40, country_code="DE")
FEATURES = [
    ForecastFeature.TEMPERATURE_2_METRE,
    ForecastFeature.U_WIND_COMPONENT_10_METRE,
    ForecastFeature.V_WIND_COMPONENT_10_METRE,
    ForecastFeature.U_WIND_COMPONENT_100_METRE,
    ForecastFeature.V_WIND_COMPONENT_100_METRE,
    ForecastFeature.SURFACE_SOLAR_RADIATION_DOWNWARDS,
]


@pytest.fixture
async def client(weather_server: WeatherServer) -> AsyncIterator[Client]:
    api = Client(weather_server.url)
    try:
        yield api
    finally:
        await close_weather_client(api)


@pytest.fixture
async def stub(weather_server: WeatherServer) -> AsyncIterator[Stub]:
    async with grpc.aio.insecure_channel(weather_server.address) as channel:
        yield cast("Stub", pb_grpc.WeatherForecastServiceStub(channel))


def ts(moment: datetime) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(moment)
    return stamp


async def test_live_forecast_through_the_real_client(client: Client) -> None:
    receiver = await client.stream_live_forecast([BERLIN], FEATURES)
    async with asyncio.timeout(5):
        forecasts = await receiver.receive()
    rows = forecasts.flatten()
    issued = datetime(2026, 6, 21, 6, tzinfo=UTC)  # the latest hourly issue before 06:30
    assert {row.creation_ts.replace(tzinfo=UTC) for row in rows} == {issued}
    by_feature: dict[ForecastFeature, list[float]] = {}
    for row in rows:
        by_feature.setdefault(row.feature, []).append(row.value)
    assert set(by_feature) == set(FEATURES)
    assert all(len(values) == 193 for values in by_feature.values())  # 48 h every 15 min
    temperatures_c = [k - 273.15 for k in by_feature[ForecastFeature.TEMPERATURE_2_METRE]]
    assert all(-10 < t < 45 for t in temperatures_c)
    ghi = by_feature[ForecastFeature.SURFACE_SOLAR_RADIATION_DOWNWARDS]
    assert min(ghi) == 0.0
    assert 200 < max(ghi) < 1100
    u10 = by_feature[ForecastFeature.U_WIND_COMPONENT_10_METRE]
    v10 = by_feature[ForecastFeature.V_WIND_COMPONENT_10_METRE]
    u100 = by_feature[ForecastFeature.U_WIND_COMPONENT_100_METRE]
    v100 = by_feature[ForecastFeature.V_WIND_COMPONENT_100_METRE]
    for i in range(0, 193, 10):
        assert math.hypot(u100[i], v100[i]) == pytest.approx(
            math.hypot(u10[i], v10[i]) * 10 ** (1 / 7), rel=1e-5
        )
        assert math.hypot(u10[i], v10[i]) < 30
    # The client's own tooling reads it: resample to hourly validity times.
    hourly = [issued + timedelta(hours=h) for h in range(1, 48)]
    array = forecasts.to_resampled_ndarray(hourly, [BERLIN], FEATURES)
    assert array.shape == (47, 1, 6)


async def test_a_new_forecast_streams_when_it_is_issued(
    client: Client, weather_clock: ManualClock
) -> None:
    receiver = await client.stream_live_forecast([BERLIN], [ForecastFeature.TEMPERATURE_2_METRE])
    async with asyncio.timeout(5):
        first = (await receiver.receive()).flatten()[0].creation_ts
        weather_clock.advance(timedelta(hours=1))
        second = (await receiver.receive()).flatten()[0].creation_ts
    assert second - first == timedelta(hours=1)


async def test_historical_forecasts_through_the_real_client(client: Client) -> None:
    start = MORNING - timedelta(hours=3)
    iterator = await client.stream_historical_forecast(
        [BERLIN], [ForecastFeature.TEMPERATURE_2_METRE], start, MORNING + timedelta(hours=6)
    )
    created = []
    async with asyncio.timeout(5):
        async for forecasts in iterator:
            rows = forecasts.flatten()
            created.append(rows[0].creation_ts.replace(tzinfo=UTC))
            assert len(rows) == 193
    # Issued hourly from 03:30 on, up to now (06:30): later ones do not exist yet.
    assert [t.hour for t in created] == [4, 5, 6]


async def test_historical_with_a_window_and_the_same_values_as_live(client: Client) -> None:
    iterator = await client.stream_historical_forecast(
        [BERLIN],
        [ForecastFeature.SURFACE_SOLAR_RADIATION_DOWNWARDS],
        MORNING - timedelta(hours=1),
        MORNING,
        offset=timedelta(hours=1),
        duration=timedelta(hours=2),
    )
    rows = [row async for forecasts in iterator for row in forecasts.flatten()]
    leads = [(row.validity_ts - row.creation_ts) / timedelta(minutes=15) for row in rows]
    assert leads == [4, 5, 6, 7, 8, 9, 10, 11, 12]
    live = await client.stream_live_forecast(
        [BERLIN], [ForecastFeature.SURFACE_SOLAR_RADIATION_DOWNWARDS]
    )
    live_rows = (await live.receive()).flatten()
    assert [row.value for row in rows] == [row.value for row in live_rows[4:13]]


async def test_historical_errors_reach_the_real_client(client: Client) -> None:
    iterator = await client.stream_historical_forecast(
        [BERLIN], FEATURES, MORNING, MORNING - timedelta(hours=1)
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        async for _ in iterator:
            pass
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "must be after start_create_time" in (caught.value.details() or "")


def live_request(
    locations: list[tuple[float, float]], features: list[int], offset_s: int | None = None
) -> pb.ReceiveLiveWeatherForecastRequest:
    request = pb.ReceiveLiveWeatherForecastRequest(
        locations=[location_pb2.Location(latitude=lat, longitude=lon) for lat, lon in locations],
        features=features,  # type: ignore[arg-type]
    )
    if offset_s is not None:
        request.forecast_horizon.offset.CopyFrom(duration_pb2.Duration(seconds=offset_s))
    return request


@pytest.mark.parametrize(
    ("request_message", "details"),
    [
        (live_request([], [1]), "locations: at least one location is required, got none"),
        (live_request([(95.0, 0.0)], [1]), "locations[0].latitude: expected -90..90, got 95.0"),
        (
            live_request([(10.0, 10.0), (0.0, 200.0)], [1]),
            "locations[1].longitude: expected -180..180, got 200.0",
        ),
        (live_request([(10.0, 10.0)], [1, 42]), "features[1]: unsupported feature 42;"),
        (
            live_request([(10.0, 10.0)], [1], offset_s=-60),
            "forecast_horizon.offset: expected >= 0, got -60s",
        ),
        (
            live_request([(10.0, 10.0)], [1], offset_s=3 * 86400),
            "forecast_horizon.offset: 3d is beyond this server's forecast horizon of 2d",
        ),
    ],
)
async def test_bad_live_requests_get_precise_errors(
    stub: Stub,
    request_message: pb.ReceiveLiveWeatherForecastRequest,
    details: str,
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        async for _ in stub.ReceiveLiveWeatherForecast(request_message):
            pass
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert details in (caught.value.details() or "")


@pytest.mark.parametrize(
    ("start", "end", "details"),
    [
        (None, MORNING, "start_create_time: required"),
        (MORNING, None, "end_create_time: required"),
        (MORNING, MORNING, "must be after start_create_time"),
        (MORNING - timedelta(days=8), MORNING, "at most 7d per request, got 8d; split the range"),
        (MORNING + timedelta(hours=1), MORNING + timedelta(hours=2), "is in the future"),
    ],
)
async def test_bad_historical_requests_get_precise_errors(
    stub: Stub,
    start: datetime | None,
    end: datetime | None,
    details: str,
) -> None:
    request = pb.ReceiveHistoricalWeatherForecastRequest(
        locations=[location_pb2.Location(latitude=52.5, longitude=13.4)],
        features=[pb.FORECAST_FEATURE_TEMPERATURE_2_METRE],
    )
    if start is not None:
        request.start_create_time.CopyFrom(ts(start))
    if end is not None:
        request.end_create_time.CopyFrom(ts(end))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        async for _ in stub.ReceiveHistoricalWeatherForecast(request):
            pass
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert details in (caught.value.details() or "")


async def test_unspecified_feature_means_all_of_them(
    stub: Stub,
) -> None:
    call = stub.ReceiveLiveWeatherForecast(live_request([(52.5, 13.4)], []))
    async with asyncio.timeout(5):
        response = await call.read()
    call.cancel()
    assert isinstance(response, pb.ReceiveLiveWeatherForecastResponse)
    features = {f.feature for f in response.location_forecasts[0].forecasts[0].features}
    assert features == set(range(1, 8))


async def test_live_streams_end_with_unavailable_on_shutdown(weather_clock: ManualClock) -> None:
    server = WeatherServer(clock=weather_clock)
    await server.start()
    async with grpc.aio.insecure_channel(server.address) as channel:
        call = cast("Stub", pb_grpc.WeatherForecastServiceStub(channel)).ReceiveLiveWeatherForecast(
            live_request([(52.5, 13.4)], [1])
        )
        await call.read()
        await server.stop()
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call.read()
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_a_busy_port_is_refused(weather_server: WeatherServer) -> None:
    with pytest.raises(ListenAddressError, match="cannot bind"):
        await WeatherServer(weather_server.address).start()
    with pytest.raises(ListenAddressError, match="expected HOST:PORT"):
        WeatherServer("localhost")
