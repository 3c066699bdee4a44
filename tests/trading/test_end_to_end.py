"""End to end on loopback: weather → forecast → bids → a trade → a dispatch → a setpoint.

Everything is real and in this process: the Weather API server and the WeatherActor
(real weather client), the local market (real trading client), the MarketBidActor, the
dispatch service, the controller graph (Dispatcher → BatteryPowerActor →
PowerDistributingActor) and the simulator.

**Time.** The real clients schedule on the wall clock: the trading client refuses a
delivery period that has begun, the dispatch producer a start in the past, and the
controller starts a dispatch when the wall clock reaches its start. Delivery periods lie
on the market's grid (5 minutes is the shortest the trading API knows), so to see a won
period *executed* without waiting up to five minutes, the whole process runs
`time_machine`-shifted to `LEAD` seconds before a 5-minute boundary: every component
reads the same shifted wall clock (the shift is forward, so gRPC deadlines only get
longer). The market's own clock is a `ManualClock` at that time, so the test decides
when the period's gate closes and clears it; everything after the clearing — the
trade, the dispatch, its start at the period's first second and the setpoint in the
simulator — runs on its own.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import time_machine
from frequenz.channels import Broadcast
from frequenz.client.electricity_trading import Client

from edge_controller.common.clock import ManualClock, WallClock
from edge_controller.dispatching.producer import DispatchProducer
from edge_controller.servers.market.model import MarketRules
from edge_controller.servers.market.server import MarketServer
from edge_controller.servers.sim.site import SiteSpec
from edge_controller.servers.weather.server import WeatherServer
from edge_controller.trading.outlook import production_w
from edge_controller.trading.periods import period_floor
from edge_controller.use_cases.market_bid.actor import MarketBidActor
from edge_controller.use_cases.market_bid.config import MarketBidOptions
from edge_controller.use_cases.market_bid.site_reading import telemetry_inputs
from edge_controller.use_cases.market_bid.weather_actor import WeatherActor, WeatherApiSource
from edge_controller.weather.messages import GeoLocation, WeatherForecast
from tests.harness import KEY as DISPATCH_KEY
from tests.harness import Site, running_site
from tests.trading.conftest import MARKET_KEY, close_trading_client, flat_market, until

PERIOD = timedelta(minutes=5)
GATE = timedelta(seconds=2)
LEAD = timedelta(seconds=5)
"""How long before the traded period starts the test begins (set-up, bids, clearing)."""
SITE = GeoLocation(52.52, 13.405, "DE")  # the example site's location


async def test_a_won_bid_runs_on_the_batteries_from_its_period_start(
    example_site: SiteSpec, tmp_path: Path
) -> None:
    real_now = datetime.now(UTC)
    period_start = period_floor(real_now + LEAD + timedelta(seconds=1), PERIOD) + PERIOD
    with time_machine.travel(period_start - LEAD, tick=True):
        await _run_the_loop(example_site, tmp_path, period_start)


async def _run_the_loop(example_site: SiteSpec, tmp_path: Path, period_start: datetime) -> None:
    market_clock = ManualClock()
    options = MarketBidOptions(
        batteries=frozenset({11, 21}),
        bidding="threshold",  # the limit below is the threshold's (mean + spread / 2)
        period=PERIOD,
        gate_closure=GATE,
        round_delay=timedelta(seconds=1),
        horizon=2,
        max_volume_mw=0.5,
        pv_peak_w=350_000,  # the example site's PV and wind
        wind_rated_w=150_000,
        max_export_w=5_000_000,
    )
    weather = Broadcast[WeatherForecast](name="weather")
    seen = weather.new_receiver()
    Client._instances.clear()
    async with (
        WeatherServer("127.0.0.1:0", clock=ManualClock()) as weather_server,
        MarketServer(
            flat_market(MarketRules(period=PERIOD, gate_closure=GATE)),
            keys=frozenset({MARKET_KEY}),
            clock=market_clock,
            auto_clear=False,
        ) as market,
    ):
        async for site in running_site(example_site, tmp_path):
            trading = Client(server_url=market.url, auth_key=MARKET_KEY)
            producer = DispatchProducer(site.dispatch.url, 1, DISPATCH_KEY)
            inputs = telemetry_inputs(
                site.controller.connection.cache,
                site.controller.connection.pairs,
                options,
                WallClock(),
            )
            weather_actor = WeatherActor(
                WeatherApiSource(weather_server.url, SITE), weather.new_sender()
            )
            bidder = MarketBidActor(
                trading,
                producer,
                weather.new_receiver(),
                inputs.battery_pool,
                options=options,
                measured_power_w=inputs.measured_power_w,
                expected_price=lambda start: 150.0 if start == period_start else 50.0,
                tick=timedelta(seconds=0.05),
            )
            weather_actor.start()
            bidder.start()
            try:
                await _bid_win_and_deliver(site, market, market_clock, bidder, producer)
                forecast = await seen.receive()
                # The bids were built from the forecast the weather server issued.
                assert forecast.source == f"weather-api {weather_server.url}"
                assert bidder.last_outlooks
                for outlook in bidder.last_outlooks:
                    assert outlook.production_w == production_w(
                        forecast, options.site, outlook.start, PERIOD
                    )
            finally:
                await bidder.stop()
                await weather_actor.stop()
                await producer.close()
                await close_trading_client(trading)


async def _bid_win_and_deliver(
    site: Site,
    market: MarketServer,
    market_clock: ManualClock,
    bidder: MarketBidActor,
    producer: DispatchProducer,
) -> None:
    start = market.exchange.first_open_period()
    # The forecast arrives, the pool comes from the controller's telemetry: a sale for
    # the dear period at 110 EUR/MWh (mean 100 + half the 20 spread).
    await until(lambda: start in bidder.orders, "the bidder placed its sale")
    order = bidder.orders[start]
    assert (order.quantity_mw, order.limit_price) == (Decimal("0.5"), Decimal("110.00"))
    assert bidder.last_pool is not None
    await until(lambda: market.exchange.stream_count("trades") >= 1, "the bidder listens")

    # Gate closure: the market clears the period at 120 EUR/MWh; the sale is filled.
    market_clock.advance(start - GATE - market_clock.now())
    (record,) = market.clear_due()
    assert record.price == Decimal(120)
    await until(lambda: start in bidder.dispatches, "the trade became a dispatch")
    (dispatch,) = await producer.list()
    assert (dispatch.type, dispatch.start, dispatch.duration, dispatch.target) == (
        "BATTERY_POWER",
        start,
        PERIOD,
        "ids:11,21",
    )
    assert dispatch.payload == {"power_w": -500_000.0}
    assert datetime.now(UTC) < start
    assert site.power(10, 20) == 0.0  # nothing before the period starts

    # The controller runs it from the period's start: 500 kW out of batteries 11 and 21.
    await site.until(
        lambda: site.power(10, 20) == pytest.approx(-500_000, abs=1_000),
        "the won period runs on the batteries",
        timeout_s=LEAD.total_seconds() + 5,
    )
    assert datetime.now(UTC) >= start
    assert site.power(30, 40) == 0.0
    # Settlement follows the measured power of the trading batteries' inverters.
    await until(
        lambda: bidder.open_settlements[start].delivered_mwh < -0.0001,
        "delivered energy is measured",
    )
    assert bidder.open_settlements[start].traded_mwh == pytest.approx(-0.5 * 5 / 60)
    assert site.sim.command_log.violations() == []
