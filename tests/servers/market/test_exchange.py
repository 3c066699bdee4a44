"""The market's operations on a manual clock: orders, clearing at gate closure, streams.

Read as a table of steps: place orders, leap the clock, `clear_due()`, check states.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import datetime, timedelta
from decimal import Decimal

import pytest

from edge_controller.common.clock import ManualClock
from edge_controller.servers.market.clearing import Side
from edge_controller.servers.market.errors import ErrorKind, MarketError
from edge_controller.servers.market.exchange import MarketExchange
from edge_controller.servers.market.model import default_market
from edge_controller.servers.market.orders import (
    DeliveryArea,
    OrderFilter,
    OrderRequest,
    OrderState,
    PublicTradeFilter,
    StateReason,
    TradeFilter,
)
from tests.servers.market.conftest import AREA, CALM, NOON, flat_market, gate_of, with_rules

FIRST = NOON + timedelta(minutes=15)  # the first period still open at 12:00


def order(
    side: Side = Side.SELL,
    price: str = "100",
    mw: str = "0.5",
    start: datetime = FIRST,
    **changes: object,
) -> OrderRequest:
    base = OrderRequest(
        area=DeliveryArea(AREA),
        period_start=start,
        duration=timedelta(minutes=15),
        duration_name="DELIVERY_DURATION_15",
        order_type="ORDER_TYPE_LIMIT",
        side=side,
        side_name=f"MARKET_SIDE_{side.value}",
        price_amount=price,
        currency="EUR",
        quantity_mw=mw,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(NOON)


@pytest.fixture
def exchange(clock: ManualClock) -> MarketExchange:
    """2 MW of flat demand against 4 MW of coal in 4 blocks: 120 EUR/MWh without us."""
    spec = with_rules(flat_market(2.0), gridpool_ids=frozenset({1, 2}))
    return MarketExchange(spec, clock=clock, weather=CALM)


def test_a_period_clears_at_its_gate_closure_not_before(
    exchange: MarketExchange, clock: ManualClock
) -> None:
    assert exchange.next_clearing == FIRST
    assert exchange.next_gate_closure == gate_of(FIRST)
    sell = exchange.create_order(1, order())
    assert sell.state is OrderState.ACTIVE
    clock.advance(gate_of(FIRST) - NOON - timedelta(seconds=1))
    assert exchange.clear_due() == []
    clock.advance(1)
    (record,) = exchange.clear_due()
    assert (record.start, record.price) == (FIRST, Decimal("120.00"))
    filled = exchange.get_order(1, sell.order_id)
    assert (filled.state, filled.filled_mw, filled.open_mw) == (
        OrderState.FILLED,
        Decimal("0.5"),
        Decimal(0),
    )
    assert filled.modification_time == gate_of(FIRST)
    (trade,) = exchange.list_trades(1, TradeFilter())
    assert (trade.order_id, trade.price, trade.quantity_mw, trade.execution_time) == (
        sell.order_id,
        Decimal("120.00"),
        Decimal("0.5"),
        gate_of(FIRST),
    )


def test_every_period_clears_once_in_order_even_when_the_clock_leaps(
    exchange: MarketExchange, clock: ManualClock
) -> None:
    clock.advance(timedelta(hours=1))  # 13:00: gates up to the 13:15 period have closed
    records = exchange.clear_due()
    assert [r.start for r in records] == [FIRST + k * timedelta(minutes=15) for k in range(4)]
    assert exchange.clear_due() == []
    assert sorted(exchange.records) == [r.start for r in records]
    assert exchange.first_open_period() == NOON + timedelta(hours=1, minutes=15)


def test_orders_for_a_closed_or_cleared_period_are_refused(
    exchange: MarketExchange, clock: ManualClock
) -> None:
    clock.advance(timedelta(minutes=11))
    with pytest.raises(MarketError, match="closed at 2026-06-21T12:10:00Z") as caught:
        exchange.create_order(1, order())
    assert caught.value.kind is ErrorKind.FAILED_PRECONDITION


def test_cancelled_orders_do_not_trade_and_cannot_be_cancelled_after_gate_closure(
    exchange: MarketExchange, clock: ManualClock
) -> None:
    kept = exchange.create_order(1, order(mw="0.3"))
    dropped = exchange.create_order(1, order(mw="0.2"))
    assert exchange.cancel_order(1, dropped.order_id).state is OrderState.CANCELED
    clock.advance(timedelta(minutes=10))
    with pytest.raises(MarketError, match="can no longer be cancelled") as late:
        exchange.cancel_order(1, kept.order_id)
    assert late.value.kind is ErrorKind.FAILED_PRECONDITION
    exchange.clear_due()
    assert [t.order_id for t in exchange.list_trades(1, TradeFilter())] == [kept.order_id]
    assert exchange.get_order(1, dropped.order_id).state is OrderState.CANCELED


def test_cancel_all_cancels_only_open_orders_of_the_gridpool(exchange: MarketExchange) -> None:
    mine = exchange.create_order(1, order())
    theirs = exchange.create_order(2, order())
    assert [r.order_id for r in exchange.cancel_all(1)] == [mine.order_id]
    assert exchange.get_order(2, theirs.order_id).state is OrderState.ACTIVE


def test_gridpools_see_only_their_own_orders(exchange: MarketExchange) -> None:
    theirs = exchange.create_order(2, order())
    with pytest.raises(MarketError, match=r"no order 1 in gridpool 1") as caught:
        exchange.get_order(1, theirs.order_id)
    assert caught.value.kind is ErrorKind.NOT_FOUND
    assert exchange.list_orders(1, OrderFilter()) == []
    with pytest.raises(MarketError, match="gridpool 9 is not served"):
        exchange.create_order(9, order())


def test_an_order_valid_until_before_gate_closure_expires_unfilled(
    exchange: MarketExchange, clock: ManualClock
) -> None:
    brief = exchange.create_order(1, order(valid_until=NOON + timedelta(minutes=5)))
    clock.advance(timedelta(minutes=10))
    exchange.clear_due()
    expired = exchange.get_order(1, brief.order_id)
    assert (expired.state, expired.reason, expired.filled_mw) == (
        OrderState.EXPIRED,
        StateReason.DEACTIVATE,
        Decimal(0),
    )
    assert exchange.list_trades(1, TradeFilter()) == []


def test_a_sell_larger_than_demand_is_filled_partly_and_expires(
    exchange: MarketExchange, clock: ManualClock
) -> None:
    flood = exchange.create_order(1, order(price="0", mw="3.0"))
    clock.advance(timedelta(minutes=10))
    (record,) = exchange.clear_due()
    assert record.price == Decimal(0)
    settled = exchange.get_order(1, flood.order_id)
    assert (settled.state, settled.reason, settled.filled_mw) == (
        OrderState.EXPIRED,
        StateReason.PARTIAL_EXECUTION,
        Decimal(2),
    )
    (trade,) = exchange.list_trades(1, TradeFilter())
    assert trade.quantity_mw == Decimal(2)


def test_buy_and_sell_of_ours_in_one_period(exchange: MarketExchange, clock: ManualClock) -> None:
    buy = exchange.create_order(2, order(Side.BUY, price="130", mw="0.5"))
    cheap_sell = exchange.create_order(1, order(Side.SELL, price="50", mw="1.0"))
    dear_sell = exchange.create_order(1, order(Side.SELL, price="200", mw="1.0"))
    clock.advance(timedelta(minutes=10))
    (record,) = exchange.clear_due()
    assert record.price == Decimal("120.00")  # residual 2.5 − 1.0 = 1.5 MW: block 2
    states = {
        r.order_id: r.state
        for gridpool in (1, 2)
        for r in exchange.list_orders(gridpool, OrderFilter())
    }
    assert states == {
        buy.order_id: OrderState.FILLED,
        cheap_sell.order_id: OrderState.FILLED,
        dear_sell.order_id: OrderState.EXPIRED,
    }
    assert (record.participants_bought_mw, record.participants_sold_mw) == (0.5, 1.0)


def test_the_default_market_carries_its_batteries_from_period_to_period() -> None:
    clock = ManualClock(NOON)
    exchange = MarketExchange(default_market(), clock=clock)
    before = exchange.state
    clock.advance(timedelta(hours=2))
    records = exchange.clear_due()
    assert len(records) == 8
    assert exchange.state != before
    assert all(r.carbon_kg > 0 and r.demand_mw > 0 for r in records)


async def test_streams_carry_order_changes_trades_and_public_trades(
    exchange: MarketExchange, clock: ManualClock
) -> None:
    orders = exchange.follow_orders(1, OrderFilter(side=Side.SELL))
    trades = exchange.follow_trades(1, TradeFilter())
    public = exchange.follow_public_trades(PublicTradeFilter())
    first_order = asyncio.ensure_future(anext(orders))
    first_trade = asyncio.ensure_future(anext(trades))
    first_public = asyncio.ensure_future(anext(public))
    await asyncio.sleep(0)
    assert [exchange.stream_count(k) for k in ("orders", "trades", "public_trades")] == [1, 1, 1]

    exchange.create_order(1, order(Side.BUY, price="1", mw="0.1"))  # filtered out: a buy
    sell = exchange.create_order(1, order())
    assert (await first_order).order_id == sell.order_id
    clock.advance(timedelta(minutes=10))
    exchange.clear_due()
    assert (await anext(orders)).state is OrderState.FILLED
    assert (await first_trade).order_id == sell.order_id
    public_trade = await first_public
    assert (public_trade.period_start, public_trade.quantity_mw) == (FIRST, Decimal(2))

    replay = exchange.follow_public_trades(PublicTradeFilter(), start_time=NOON, end_time=FIRST)
    assert [t.trade_id async for t in replay] == [public_trade.trade_id]

    await exchange.close()
    with pytest.raises(MarketError, match="shutting down") as caught:
        await anext(orders)
    assert caught.value.kind is ErrorKind.UNAVAILABLE
    await trades.aclose()  # type: ignore[attr-defined]
    await public.aclose()  # type: ignore[attr-defined]
    with pytest.raises(MarketError, match="shutting down"):
        exchange.create_order(1, order())


async def test_public_trades_replay_history_up_to_an_end_time(
    exchange: MarketExchange, clock: ManualClock
) -> None:
    clock.advance(timedelta(hours=1))
    records = exchange.clear_due()
    replay = exchange.follow_public_trades(
        PublicTradeFilter(), start_time=NOON, end_time=gate_of(records[2].start)
    )
    assert [t.period_start async for t in replay] == [r.start for r in records[:3]]
    one = exchange.follow_public_trades(
        PublicTradeFilter(period_start=records[1].start), start_time=NOON, end_time=clock.now()
    )
    assert [t.period_start async for t in one] == [records[1].start]
    nothing = exchange.follow_public_trades(PublicTradeFilter(), end_time=NOON)
    assert [t async for t in nothing] == []
    assert exchange.stream_count("public_trades") == 0
