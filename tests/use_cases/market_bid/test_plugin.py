"""The market-bid plug-in: its `[market_bid]` table in the configuration (a table it
owns, not a `[[use_cases]]` entry), and the controller running its actors."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import structlog
from frequenz.client.electricity_trading import Client

from edge_controller.common.clock import ManualClock
from edge_controller.config.schema import ConfigError, ControllerConfig, parse_config
from edge_controller.servers.market.server import MarketServer
from edge_controller.servers.sim.site import SiteSpec
from edge_controller.servers.weather.server import WeatherServer
from edge_controller.use_cases.market_bid import MarketBidStatus
from edge_controller.use_cases.market_bid.config import MarketBidConfig
from tests.harness import site_running
from tests.test_config import ENV, GOOD
from tests.trading.conftest import MARKET_KEY, flat_market, until

SECTION: dict[str, Any] = {
    "trading_url": "grpc://127.0.0.1:1?ssl=false",
    "weather_url": "grpc://127.0.0.1:2?ssl=false",
    "latitude": 52.52,
    "longitude": 13.405,
    "batteries": [11, 21],
    "max_volume": "500 kW",
    "period": 900,
    "pv_peak": "350 kW",
}


def market_bid(config: ControllerConfig) -> MarketBidConfig | None:
    """The parsed `[market_bid]` table, if the configuration has one."""
    found = config.section("market_bid")
    if found is None:
        return None
    assert isinstance(found.options, MarketBidConfig)
    return found.options


def test_the_section_becomes_market_bid_options() -> None:
    env = {**ENV, "EDGE_CONTROLLER_TRADING_KEY": "t"}
    config = parse_config({**GOOD, "market_bid": SECTION}, environ=env)
    section = market_bid(config)
    assert section is not None
    assert section.auth_key == "t"
    assert "'t'" not in repr(section)
    assert section.options["batteries"] == {11, 21}
    assert section.options["max_volume_mw"] == 0.5
    assert section.options["period"] == timedelta(minutes=15)
    assert section.options["pv_peak_w"] == 350_000


def test_bad_values_are_named_with_their_key_path() -> None:
    env = {**ENV, "EDGE_CONTROLLER_TRADING_KEY": "t"}
    bad = {**SECTION, "period": 600, "latitude": 123, "max_volum": 1}
    with pytest.raises(ConfigError) as caught:
        parse_config({**GOOD, "market_bid": bad}, "ctl.toml", environ=env)
    text = str(caught.value)
    assert "ctl.toml: market_bid.latitude: expected degrees -90..90, got 123" in text
    assert "market_bid.max_volum: unknown key (did you mean 'max_volume'?)" in text
    del bad["latitude"], bad["max_volum"]
    bad["latitude"] = 52.0
    with pytest.raises(ConfigError, match=r"market_bid\.period: expected 5, 15, 30 or 60"):
        parse_config({**GOOD, "market_bid": bad}, "ctl.toml", environ=env)
    with pytest.raises(ConfigError, match=r"market_bid\.key_file: missing"):
        parse_config({**GOOD, "market_bid": SECTION}, "ctl.toml", environ=ENV)


async def test_the_controller_runs_the_weather_and_market_bid_actors(
    example_site: SiteSpec, tmp_path: Path
) -> None:
    Client._instances.clear()
    async with (
        WeatherServer("127.0.0.1:0", clock=ManualClock()) as weather,
        MarketServer(flat_market(), keys=frozenset({MARKET_KEY}), auto_clear=False) as market,
    ):
        (tmp_path / "trading.key").write_text(MARKET_KEY)
        section = {
            **SECTION,
            "trading_url": market.url,
            "weather_url": weather.url,
            "key_file": str(tmp_path / "trading.key"),
            "strategy": "optimal",
        }
        with structlog.testing.capture_logs() as logs:
            async with site_running(example_site, tmp_path, {"market_bid": section}) as site:
                (running,) = [u for u in site.controller.use_cases if u.kind == "market_bid"]
                assert isinstance(running.built.status, MarketBidStatus)
                bidder = running.built.status.bidder
                assert bidder.is_running
                assert all(actor.is_running for actor in running.built.actors)
                # Its first round lists our orders on the market and opens the trade stream.
                await until(lambda: market.exchange.stream_count("trades") >= 1, "listening", 10)
                # With strategy "optimal" it plans the site's battery inverters one by one.
                await until(lambda: any(e["event"] == "plan_solved" for e in logs), "planned", 10)
                trading_inverters = sorted(
                    pair.inverter_id
                    for pair in site.controller.connection.pairs.pairs
                    if {11, 21} & set(pair.battery_ids)
                )
        assert not bidder.is_running
        (planned, *_) = [e for e in logs if e["event"] == "plan_solved"]
        assert trading_inverters
        assert planned["units"] == trading_inverters
    Client._instances.clear()


def test_the_bidding_strategy_is_a_named_choice() -> None:
    env = {**ENV, "EDGE_CONTROLLER_TRADING_KEY": "t"}
    config = parse_config(
        {**GOOD, "market_bid": {**SECTION, "strategy": "optimal", "degradation_cost": 25}},
        environ=env,
    )
    section = market_bid(config)
    assert section is not None
    assert section.options["bidding"] == "optimal"
    assert section.options["degradation_cost"] == 25
    with pytest.raises(
        ConfigError,
        match=r"market_bid\.strategy: expected one of 'optimal', 'threshold', got 'greedy'",
    ):
        parse_config({**GOOD, "market_bid": {**SECTION, "strategy": "greedy"}}, environ=env)


def test_an_openweathermap_key_replaces_the_weather_api(tmp_path: Path) -> None:
    env = {**ENV, "EDGE_CONTROLLER_TRADING_KEY": "t"}
    (tmp_path / "owm.key").write_text("k")
    section = {k: v for k, v in SECTION.items() if k != "weather_url"}
    section["openweathermap_key_file"] = "owm.key"
    config = parse_config({**GOOD, "market_bid": section}, base_dir=tmp_path, environ=env)
    section_read = market_bid(config)
    assert section_read is not None
    assert section_read.openweathermap_key_file == tmp_path / "owm.key"
    section["openweathermap_key_file"] = "missing.key"
    with pytest.raises(ConfigError, match=r"market_bid\.openweathermap_key_file: expected an"):
        parse_config({**GOOD, "market_bid": section}, base_dir=tmp_path, environ=env)
    del section["openweathermap_key_file"]
    with pytest.raises(ConfigError, match=r"market_bid\.weather_url: missing"):
        parse_config({**GOOD, "market_bid": section}, base_dir=tmp_path, environ=env)
