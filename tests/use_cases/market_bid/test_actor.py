"""The MarketBidActor against the real local market and a real dispatch service.

The market and the actor share a `ManualClock` started at the wall-clock time (the real
trading client and the dispatch producer check periods and starts against the wall
clock, so the clock only ever runs ahead of it); the tests leap it to gate closure and
clear with `server.clear_due()`. The periods traded lie minutes ahead of the wall
clock, so the dispatches created are checked as stored, not executed (the end-to-end
test executes one).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import structlog
from frequenz.channels import Broadcast
from frequenz.client.electricity_trading import Client

from edge_controller.common.clock import ManualClock
from edge_controller.dispatching.producer import DispatchProducer, DispatchProducerError
from edge_controller.servers.market.clearing import Side as MarketSide
from edge_controller.servers.market.model import MarketRules
from edge_controller.servers.market.orders import OrderFilter, OrderState
from edge_controller.servers.market.server import MarketServer
from edge_controller.trading.bids import BatteryPool, Side
from edge_controller.use_cases.market_bid.actor import MarketBidActor
from edge_controller.use_cases.market_bid.config import MarketBidOptions
from edge_controller.weather.messages import WeatherForecast
from tests.patience import evaluated
from tests.trading.conftest import MARKET_KEY, close_trading_client, flat_market, until

QUARTER = timedelta(minutes=15)
GATE = timedelta(minutes=5)
POOL = BatteryPool(
    soc_pct=60, capacity_wh=2_000_000, soc_upper_pct=90, charge_max_w=1e6, discharge_max_w=1e6
)
# These tests follow the threshold strategy's prices (test_market_bid_optimal: "optimal").
OPTIONS = MarketBidOptions(
    batteries=frozenset({11, 21}), bidding="threshold", horizon=4, max_volume_mw=0.5
)


def dear_then_cheap(first: datetime) -> Callable[[datetime], float]:
    """200 EUR/MWh for the first period, 20 for the second, 100 after: mean 105, so the
    first gets a SELL at 115 and the second a BUY at 95."""
    return lambda start: {first: 200.0, first + QUARTER: 20.0}.get(start, 100.0)


class Running:
    """An actor started for a test, stopped at its end."""

    def __init__(self) -> None:
        self.actors: list[MarketBidActor] = []
        self.weather = Broadcast[WeatherForecast](name="weather")

    def start(
        self,
        trading: Client,
        producer: DispatchProducer,
        clock: ManualClock,
        *,
        options: MarketBidOptions = OPTIONS,
        **kwargs: object,
    ) -> MarketBidActor:
        actor = MarketBidActor(
            trading,
            producer,
            self.weather.new_receiver(),
            lambda: POOL,
            options=options,
            clock=clock,
            tick=timedelta(seconds=0.01),
            **kwargs,  # type: ignore[arg-type]
        )
        actor.start()
        self.actors.append(actor)
        return actor

    async def stop(self) -> None:
        for actor in self.actors:
            if actor.is_running:
                await actor.stop()


@pytest.fixture
async def running() -> AsyncIterator[Running]:
    made = Running()
    try:
        yield made
    finally:
        await made.stop()


async def listening(market: MarketServer) -> None:
    """Wait until the actor's trade stream is open (a trade sent earlier is found only by
    the next listing)."""
    await until(lambda: market.exchange.stream_count("trades") >= 1, "the trade stream is open")


def our_orders(market: MarketServer) -> list[tuple[datetime, MarketSide, Decimal, Decimal]]:
    return [
        (r.order.period_start, r.order.side, r.order.quantity_mw, r.order.price)
        for r in market.exchange.list_orders(1, OrderFilter(tag=OPTIONS.order_tag))
    ]


async def test_orders_are_placed_a_sale_is_filled_and_becomes_a_dispatch_then_settled(
    market: MarketServer,
    trading: Client,
    producer: DispatchProducer,
    market_clock: ManualClock,
    running: Running,
) -> None:
    first = market.exchange.first_open_period()
    delivered_w = {"now": 0.0}
    sampled_at: list[datetime] = []  # the clock's time at each sample the actor takes

    def measured_power_w() -> float:
        sampled_at.append(market_clock.now())
        return delivered_w["now"]

    actor = running.start(
        trading,
        producer,
        market_clock,
        expected_price=dear_then_cheap(first),
        measured_power_w=measured_power_w,
        max_sample_gap=timedelta(minutes=20),
    )
    await until(lambda: len(actor.orders) == 2, "the first round placed its orders")
    assert our_orders(market) == [
        (first, MarketSide.SELL, Decimal("0.5"), Decimal("115.00")),
        (first + QUARTER, MarketSide.BUY, Decimal("0.5"), Decimal("95.00")),
    ]
    assert actor.orders[first].side is Side.SELL

    # Gate closure of the first period: the market clears it, our sale fills at 120.
    await listening(market)
    market_clock.advance(first - GATE - market_clock.now())
    (record,) = market.clear_due()
    assert record.price == Decimal(120)
    await until(lambda: first in actor.dispatches, "the trade became a dispatch")
    (dispatch,) = await producer.list()
    assert (dispatch.type, dispatch.start, dispatch.duration, dispatch.target) == (
        "BATTERY_POWER",
        first,
        QUARTER,
        "ids:11,21",
    )
    assert dispatch.payload == {"power_w": -500_000.0}
    assert actor.dispatches[first].dispatch_id == dispatch.id
    assert actor.traded_w == {first: -500_000.0}

    # Later rounds never place a second order for a period that has one.
    # (Wait for the order itself: a round counts itself before it lists and places.)
    market_clock.advance(timedelta(seconds=31))  # the round after this gate closure
    await until(
        lambda: any(start == first + 4 * QUARTER for start, *_ in our_orders(market)),
        "the newly open period got its order",
    )
    periods = [start for start, *_ in our_orders(market)]
    assert len(periods) == len(set(periods))

    # The period runs: the batteries deliver what was sold; at its end it is settled.
    delivered_w["now"] = -500_000.0
    market_clock.advance(first - market_clock.now())
    await until(lambda: sampled_at[-1] >= first, "the power at the start was sampled")
    market_clock.advance(QUARTER)
    await until(lambda: bool(actor.settlements), "the period was settled")
    (settled,) = actor.settlements
    assert settled.start == first
    assert settled.traded_mwh == pytest.approx(-0.125)
    assert settled.delivered_mwh == pytest.approx(-0.125)
    assert settled.imbalance_mwh == pytest.approx(0.0)
    assert settled.coverage == 1.0
    assert settled.value_eur == pytest.approx(0.125 * 120)
    assert actor.counts["orders_refused"] == 0


async def test_a_refused_order_is_logged_and_retried_next_round_without_a_crash(
    market_clock: ManualClock, producer: DispatchProducer, running: Running
) -> None:
    rules = MarketRules(delivery_areas=frozenset({"10YAT-APG------L"}))  # not ours
    async with MarketServer(
        flat_market(rules), keys=frozenset({MARKET_KEY}), clock=market_clock, auto_clear=False
    ) as market:
        Client._instances.clear()
        trading = Client(server_url=market.url, auth_key=MARKET_KEY)
        try:
            first = market.exchange.first_open_period()
            with structlog.testing.capture_logs() as logs:
                actor = running.start(
                    trading, producer, market_clock, expected_price=dear_then_cheap(first)
                )
                await until(lambda: actor.counts["orders_refused"] == 2, "both were refused")
                market_clock.advance(
                    actor.options.next_round(market_clock.now()) - market_clock.now()
                )
                await until(lambda: actor.counts["orders_refused"] >= 3, "retried next round")
            assert actor.is_running
            refused = [e for e in logs if e["event"] == "order_refused"]
            assert refused[0]["code"] == "INVALID_ARGUMENT"
            assert "delivery_area" in refused[0]["reason"]
            assert refused[0]["actor"] == "market_bid"
            assert refused[0]["retry"] == "next round"
            assert actor.orders == {}
        finally:
            await running.stop()
            await close_trading_client(trading)


async def test_a_restarted_actor_finds_its_orders_and_trades_and_adopts_its_dispatch(
    market: MarketServer,
    trading: Client,
    producer: DispatchProducer,
    market_clock: ManualClock,
    running: Running,
) -> None:
    first = market.exchange.first_open_period()
    before = running.start(trading, producer, market_clock, expected_price=dear_then_cheap(first))
    await until(lambda: len(before.orders) == 2, "the orders were placed")
    await before.stop()

    # The sale fills while no actor listens.
    market_clock.advance(first - GATE - market_clock.now())
    market.clear_due()

    # A new actor (default price forecast: the market's public trades) lists the market.
    after = running.start(trading, producer, market_clock)
    await until(lambda: first in after.dispatches, "the missed trade became a dispatch")
    assert after.orders[first].order_id == before.orders[first].order_id
    assert after.orders[first].state == OrderState.FILLED.value
    assert after.counts["orders_placed"] == 0  # no second order for either period
    assert after.traded_w == {first: -500_000.0}
    await until(lambda: len(after.prices or ()) == 1, "the cleared price was read back")
    assert after.prices is not None
    assert after.prices(first) == 120.0
    await after.stop()

    # And one more: it adopts the dispatch instead of creating a second one.
    again = running.start(trading, producer, market_clock)
    await until(lambda: again.counts["rounds"] >= 1 and first in again.dispatches, "adopted")
    await evaluated(again.counts, 5)  # ticks after the adoption: none creates one
    assert again.counts["dispatches_created"] == 0
    assert len(await producer.list()) == 1
    await again.stop()

    # Someone changed the dispatch's power meanwhile: the next actor puts the traded
    # power back into the same dispatch (no delete and create: no stop and start).
    (made,) = await producer.list()
    await producer.set_battery_power(made.id, -300_000.0)
    last = running.start(trading, producer, market_clock)
    await until(lambda: last.counts["dispatches_updated"] == 1, "the dispatch was updated")
    (kept,) = await producer.list()
    assert (kept.id, kept.payload) == (made.id, {"power_w": -500_000.0})
    assert last.counts["dispatches_created"] == 0
    assert last.dispatches[first].power_w == -500_000.0


class FlakyProducer:
    """The real producer, except that its first create fails as an unreachable service."""

    def __init__(self, producer: DispatchProducer) -> None:
        self._producer = producer
        self.failures = 1

    async def create_battery_power(self, *args: object, **kwargs: object) -> int:
        if self.failures:
            self.failures -= 1
            raise DispatchProducerError("UNAVAILABLE: connection refused", code="UNAVAILABLE")
        return await self._producer.create_battery_power(*args, **kwargs)  # type: ignore[arg-type]

    async def set_battery_power(self, dispatch_id: int, power_w: float) -> object:
        return await self._producer.set_battery_power(dispatch_id, power_w)

    async def delete(self, dispatch_id: int) -> None:
        await self._producer.delete(dispatch_id)

    async def list(self) -> list[object]:
        return await self._producer.list()  # type: ignore[return-value]


async def test_a_dispatch_that_fails_is_retried_until_it_is_created(
    market: MarketServer,
    trading: Client,
    producer: DispatchProducer,
    market_clock: ManualClock,
    running: Running,
) -> None:
    first = market.exchange.first_open_period()
    flaky = FlakyProducer(producer)
    actor = running.start(
        trading,
        flaky,  # type: ignore[arg-type]
        market_clock,
        expected_price=dear_then_cheap(first),
    )
    await until(lambda: first in actor.orders, "the sale was placed")
    await listening(market)
    market_clock.advance(first - GATE - market_clock.now())
    market.clear_due()
    await until(lambda: actor.counts["dispatch_failures"] == 1, "the first create failed")
    assert first not in actor.dispatches
    market_clock.advance(actor.options.dispatch_retry)
    await until(lambda: first in actor.dispatches, "the retry created it")
    (dispatch,) = await producer.list()
    assert (dispatch.start, dispatch.payload) == (first, {"power_w": -500_000.0})


def test_options_are_checked_naming_the_field() -> None:
    with pytest.raises(ValueError, match="period: expected 5, 15, 30 or 60 minutes") as error:
        MarketBidOptions(period=timedelta(minutes=10), reserve_soc_pct=120, batteries=frozenset())
    assert "reserve_soc_pct: expected 0..100" in str(error.value)
    assert "batteries: empty" in str(error.value)
    options = MarketBidOptions()
    assert options.bidding == "optimal"  # the default: per-battery plan after wear
    at = datetime(2026, 6, 21, 12, 0, tzinfo=UTC)
    # Rounds run 30 s after each gate closure (…:10, :25, :40, :55 for 15/5 minutes).
    assert options.next_round(at) == at + timedelta(minutes=10, seconds=30)
    assert options.next_round(at + timedelta(minutes=10, seconds=30)) == at + timedelta(
        minutes=25, seconds=30
    )


async def test_a_market_that_goes_away_is_logged_and_the_actor_keeps_running(
    market: MarketServer,
    trading: Client,
    producer: DispatchProducer,
    market_clock: ManualClock,
    running: Running,
) -> None:
    first = market.exchange.first_open_period()
    with structlog.testing.capture_logs() as logs:
        actor = running.start(
            trading, producer, market_clock, expected_price=dear_then_cheap(first)
        )
        await until(lambda: len(actor.orders) == 2, "the orders were placed")
        await listening(market)
        await market.stop()  # streams end with UNAVAILABLE; calls fail
        await until(
            lambda: any(e["event"] == "trades_stream_lost" for e in logs), "the loss is logged"
        )
        rounds = actor.counts["rounds_skipped"]
        market_clock.advance(actor.options.next_round(market_clock.now()) - market_clock.now())
        await until(lambda: actor.counts["rounds_skipped"] > rounds, "the next round gave up")
    assert actor.is_running
    lost = next(e for e in logs if e["event"] == "trades_stream_lost")
    assert lost["code"] == "UNAVAILABLE"
    assert lost["reason"]
    failed = next(e for e in logs if e["event"] == "orders_list_failed")
    assert failed["code"] == "UNAVAILABLE"
    skipped = [e for e in logs if e["event"] == "bidding_skipped"]
    assert skipped[-1]["reason"] == "our orders are unknown; next round"
