"""Fixtures for the Weather API server: a server on a free port, on a manual clock."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from edge_controller.common.clock import ManualClock
from edge_controller.servers.weather.server import WeatherServer
from tests.weather.conftest import datasets  # noqa: F401 - a fixture, found by pytest by name

MORNING = datetime(2026, 6, 21, 6, 30, tzinfo=UTC)
"""08:30 in Berlin (solar time ~07:30): the sun is up, the forecast covers two days."""


@pytest.fixture
def weather_clock() -> ManualClock:
    return ManualClock(MORNING)


@pytest.fixture
async def weather_server(weather_clock: ManualClock) -> AsyncIterator[WeatherServer]:
    async with WeatherServer("127.0.0.1:0", clock=weather_clock) as server:
        yield server
