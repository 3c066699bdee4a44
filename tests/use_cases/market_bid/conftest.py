"""The market-bid tests' fixtures: the trading ones (a local market, the trading client,
a dispatch service) and the weather ones (a Weather API server on a manual clock)."""

from tests.servers.weather.conftest import weather_clock, weather_server  # noqa: F401
from tests.trading.conftest import (  # noqa: F401 - fixtures, found by pytest by name
    collect_garbage,
    dispatch_server,
    market,
    market_clock,
    producer,
    trading,
)
