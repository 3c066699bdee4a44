"""Fixtures for the weather package: the bundled datasets and a server on a free port."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from edge_controller.common.clock import ManualClock
from edge_controller.servers.weather.server import WeatherServer
from edge_controller.weather.data import Dataset, bundled_datasets
from edge_controller.weather.messages import GeoLocation

BERLIN = GeoLocation(52.52, 13.40, "DE")
MORNING = datetime(2026, 6, 21, 6, 30, tzinfo=UTC)
"""08:30 in Berlin (solar time ~07:30): the sun is up, the forecast covers two days."""


@pytest.fixture(scope="session")
def datasets() -> tuple[Dataset, ...]:
    return bundled_datasets()


@pytest.fixture
def weather_clock() -> ManualClock:
    return ManualClock(MORNING)


@pytest.fixture
async def weather_server(weather_clock: ManualClock) -> AsyncIterator[WeatherServer]:
    async with WeatherServer("127.0.0.1:0", clock=weather_clock) as server:
        yield server
