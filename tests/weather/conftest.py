"""Fixtures for the weather package: the bundled datasets, and a place in Berlin.

The Weather API server's fixtures are in `tests/servers/weather/conftest.py`.
"""

from __future__ import annotations

import pytest

from edge_controller.weather.data import Dataset, bundled_datasets
from edge_controller.weather.messages import GeoLocation

BERLIN = GeoLocation(52.52, 13.40, "DE")


@pytest.fixture(scope="session")
def datasets() -> tuple[Dataset, ...]:
    return bundled_datasets()
