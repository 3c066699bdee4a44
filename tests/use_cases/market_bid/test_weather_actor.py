"""The WeatherActor: forecasts from a real Weather API server onto a channel."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncGenerator
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import NamedTuple

import pytest
from frequenz.channels import BroadcastChannel, Receiver

from edge_controller.common.clock import ManualClock
from edge_controller.servers.weather.server import WeatherServer
from edge_controller.use_cases.market_bid.weather_actor import WeatherActor, WeatherApiSource
from edge_controller.weather.convert import forecast_from_rows
from edge_controller.weather.messages import ForecastStep, GeoLocation, WeatherForecast
from tests.patience import PATIENCE_S
from tests.weather.conftest import BERLIN


async def next_forecast(
    receiver: Receiver[WeatherForecast], timeout_s: float = PATIENCE_S
) -> WeatherForecast:
    async with asyncio.timeout(timeout_s):
        return await receiver.receive()


async def test_the_actor_publishes_the_servers_forecast(weather_server: WeatherServer) -> None:
    sender, receiver = BroadcastChannel[WeatherForecast](name="weather")
    actor = WeatherActor(WeatherApiSource(weather_server.url, BERLIN), sender)
    actor.start()
    try:
        forecast = await next_forecast(receiver)
    finally:
        await actor.stop()
    assert forecast.location == BERLIN
    assert forecast.issued_at == datetime(2026, 6, 21, 6, tzinfo=UTC)
    assert forecast.source == f"weather-api {weather_server.url}"
    assert len(forecast.steps) == 193
    assert forecast.steps[0].valid_at == forecast.issued_at
    assert forecast.steps[-1].valid_at == forecast.issued_at + timedelta(hours=48)
    for step in forecast.steps:
        assert -10 < step.temperature_c < 45
        assert 0 <= step.wind_speed_10m_ms < 30
        assert step.wind_speed_100m_ms == pytest.approx(
            step.wind_speed_10m_ms * 10 ** (1 / 7), rel=1e-5
        )
        assert 0 <= step.wind_direction_deg < 360
        assert 0 <= step.ghi_wm2 < 1100
    noon = forecast.step_at(datetime(2026, 6, 21, 11, 5, tzinfo=UTC))
    assert noon is not None
    assert noon.valid_at == datetime(2026, 6, 21, 11, tzinfo=UTC)
    assert forecast.step_at(datetime(2026, 6, 21, 5, tzinfo=UTC)) is None


async def test_the_actor_reconnects_after_the_stream_drops(
    weather_server: WeatherServer, weather_clock: ManualClock
) -> None:
    sender, receiver = BroadcastChannel[WeatherForecast](name="weather")
    actor = WeatherActor(
        WeatherApiSource(weather_server.url, BERLIN),
        sender,
        stale_after=timedelta(seconds=0.5),
        retry_delay=timedelta(seconds=0.05),
    )
    actor.start()
    try:
        first = await next_forecast(receiver)
        weather_server.service.drop_streams()
        weather_clock.advance(timedelta(hours=1))
        second = await next_forecast(receiver)
        # Each reconnect re-delivers the latest forecast: it is published once only.
        with pytest.raises(TimeoutError):
            await next_forecast(receiver, timeout_s=0.7)
    finally:
        await actor.stop()
    assert second.issued_at - first.issued_at == timedelta(hours=1)
    assert actor.connections >= 3
    assert actor.last_issued_at == second.issued_at


class ScriptedSource:
    """A source that yields what it is given, then ends or hangs."""

    def __init__(self, *batches: list[WeatherForecast]) -> None:
        self._batches = list(batches)
        self.opened = 0

    @property
    def name(self) -> str:
        return "scripted"

    async def forecasts(self) -> AsyncGenerator[WeatherForecast, None]:
        self.opened += 1
        batch = self._batches.pop(0) if self._batches else []
        for forecast in batch:
            yield forecast
        if not self._batches:
            await asyncio.Event().wait()  # silent from now on


def forecast_at(hour: int) -> WeatherForecast:
    issued = datetime(2026, 6, 21, hour, tzinfo=UTC)
    step = ForecastStep(issued, 20.0, 5.0, 7.0, 270.0, 300.0)
    return WeatherForecast(BERLIN, issued, "scripted", (step,))


async def test_only_newer_forecasts_are_published_and_an_ended_source_is_reopened() -> None:
    sender, receiver = BroadcastChannel[WeatherForecast](name="weather")
    source = ScriptedSource([forecast_at(6), forecast_at(6)], [forecast_at(6), forecast_at(7)])
    actor = WeatherActor(source, sender, retry_delay=timedelta(seconds=0.01))
    actor.start()
    try:
        assert (await next_forecast(receiver)).issued_at.hour == 6
        assert (await next_forecast(receiver)).issued_at.hour == 7
        with pytest.raises(TimeoutError):
            await next_forecast(receiver, timeout_s=0.1)
    finally:
        await actor.stop()
    assert source.opened == 2


def test_bad_settings_are_refused() -> None:
    sender, _ = BroadcastChannel[WeatherForecast](name="weather")
    with pytest.raises(ValueError, match="stale_after and retry_delay must be > 0"):
        WeatherActor(ScriptedSource(), sender, stale_after=timedelta(0))
    with pytest.raises(ValueError, match="feature_names: expected names of ForecastFeature"):
        WeatherApiSource("grpc://127.0.0.1:1?ssl=false", BERLIN, feature_names=["WIND"])
    with pytest.raises(ValueError, match="url: expected the Weather API's URL"):
        WeatherApiSource("", BERLIN)


class Feature(Enum):
    TEMPERATURE_2_METRE = 1
    U_WIND_COMPONENT_10_METRE = 4
    V_WIND_COMPONENT_10_METRE = 5


class Row(NamedTuple):
    creation_ts: datetime
    latitude: float
    longitude: float
    validity_ts: datetime
    feature: Feature
    value: float


def test_conversion_picks_the_location_and_fills_what_is_missing() -> None:
    created = datetime(2026, 6, 21, 6)  # naive, as protobuf's ToDatetime() gives it
    rows = [
        Row(created, 52.52, 13.4, created, Feature.TEMPERATURE_2_METRE, 293.15),
        Row(created, 52.52, 13.4, created, Feature.U_WIND_COMPONENT_10_METRE, 3.0),
        Row(created, 52.52, 13.4, created, Feature.V_WIND_COMPONENT_10_METRE, 4.0),
        Row(created, 10.0, 10.0, created, Feature.TEMPERATURE_2_METRE, 250.0),
    ]
    forecast = forecast_from_rows(rows, GeoLocation(52.52, 13.4), "test")
    assert forecast is not None
    assert forecast.issued_at == created.replace(tzinfo=UTC)
    (step,) = forecast.steps
    assert step.temperature_c == pytest.approx(20.0)
    assert step.wind_speed_10m_ms == pytest.approx(5.0)
    assert step.wind_direction_deg == pytest.approx(216.87, abs=0.01)  # blowing to the NE
    assert step.wind_speed_100m_ms == pytest.approx(5.0 * 10 ** (1 / 7))  # by the profile
    assert math.isnan(step.ghi_wm2)
    assert forecast_from_rows([], GeoLocation(0, 0), "test") is None


def test_step_at_finds_the_step_in_force() -> None:
    steps = tuple(
        ForecastStep(datetime(2026, 6, 21, h, tzinfo=UTC), 20.0, 5.0, 7.0, 270.0, 100.0 * h)
        for h in (6, 7, 8)
    )
    forecast = WeatherForecast(BERLIN, steps[0].valid_at, "test", steps)

    def ghi_at(hour: int, minute: int = 0) -> float | None:
        step = forecast.step_at(datetime(2026, 6, 21, hour, minute, tzinfo=UTC))
        return None if step is None else step.ghi_wm2

    assert [ghi_at(5, 59), ghi_at(6), ghi_at(7, 59), ghi_at(8, 30), ghi_at(9)] == [
        None,
        600.0,
        700.0,
        800.0,
        None,
    ]
    assert WeatherForecast(BERLIN, steps[0].valid_at, "test", ()).step_at(steps[0].valid_at) is None
