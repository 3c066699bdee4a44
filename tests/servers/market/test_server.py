"""End to end on loopback: the real trading client against the market server.

The server's clock is a `ManualClock` started at the wall-clock time (the client checks
delivery periods against the wall clock); tests leap it past gate closure and call
`clear_due()`, so nothing waits for real minutes.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from decimal import Decimal

import grpc
import pytest
from frequenz.api.common.v1alpha8.grid import delivery_area_pb2, delivery_duration_pb2
from frequenz.api.common.v1alpha8.market import power_pb2, price_pb2
from frequenz.api.common.v1alpha8.types import decimal_pb2
from frequenz.api.electricity_trading.v1 import electricity_trading_pb2 as pb
from frequenz.api.electricity_trading.v1 import electricity_trading_pb2_grpc as pb_grpc
from frequenz.client.electricity_trading import (
    Client,
    Currency,
    DeliveryArea,
    DeliveryDuration,
    DeliveryPeriod,
    EnergyMarketCodeType,
    MarketSide,
    OrderDetail,
    OrderState,
    OrderType,
    Power,
    Price,
)
from google.protobuf import struct_pb2

from edge_controller.common.clock import ManualClock
from edge_controller.servers.market import server as market_server
from edge_controller.servers.market.convert import to_timestamp
from edge_controller.servers.market.orders import OrderFilter
from edge_controller.servers.market.server import MarketServer
from tests.servers.market.conftest import AREA, KEY, METADATA, async_stub, gate_of, wait_for_streams

EIC = EnergyMarketCodeType.EUROPE_EIC


async def sell(
    client: Client,
    start: datetime,
    *,
    mw: str = "0.5",
    price: str = "10",
    gridpool_id: int = 1,
    duration: DeliveryDuration = DeliveryDuration.MINUTES_15,
    area: str = AREA,
) -> OrderDetail:
    return await client.create_gridpool_order(
        gridpool_id,
        delivery_area=DeliveryArea(area, EIC),
        delivery_period=DeliveryPeriod(start, duration),
        order_type=OrderType.LIMIT,
        side=MarketSide.SELL,
        price=Price(Decimal(price), Currency.EUR),
        quantity=Power(Decimal(mw)),
    )


async def test_a_sell_for_the_next_period_becomes_a_trade_on_the_stream(
    server: MarketServer, client: Client, wall_clock: ManualClock
) -> None:
    exchange = server.exchange
    start = exchange.first_open_period()
    trades = client.gridpool_trades_stream(1).new_receiver()
    orders = client.gridpool_orders_stream(1).new_receiver()
    public = client.receive_public_trades().new_receiver()
    for kind in ("trades", "orders", "public_trades"):
        await wait_for_streams(exchange, kind)

    order = await sell(client, start)
    assert order.state_detail.state is OrderState.ACTIVE
    assert order.open_quantity == Power(Decimal("0.5"))
    assert (await asyncio.wait_for(orders.receive(), 5)).order_id == order.order_id

    wall_clock.advance(gate_of(start) - wall_clock.now())
    (record,) = server.clear_due()

    trade = await asyncio.wait_for(trades.receive(), 5)
    assert (trade.order_id, trade.side, trade.quantity) == (
        order.order_id,
        MarketSide.SELL,
        Power(Decimal("0.5")),
    )
    assert trade.price == Price(record.price, Currency.EUR)
    assert record.price >= Decimal(10)  # no seller gets less than its limit
    assert trade.delivery_period == DeliveryPeriod(start, DeliveryDuration.MINUTES_15)
    filled = await asyncio.wait_for(orders.receive(), 5)
    assert (filled.order_id, filled.state_detail.state) == (order.order_id, OrderState.FILLED)
    assert filled.filled_quantity == Power(Decimal("0.5"))
    cleared = await asyncio.wait_for(public.receive(), 5)
    assert cleared.price == trade.price
    assert cleared.quantity.mw == Decimal(str(round(record.volume_mw, 3)))

    assert [t.id async for t in client.list_gridpool_trades(1)] == [trade.id]
    fetched = await client.get_gridpool_order(1, order_id=order.order_id)
    assert fetched.state_detail.state is OrderState.FILLED


async def test_tags_and_payloads_travel_with_the_order(
    server: MarketServer, client: Client
) -> None:
    start = server.exchange.first_open_period()
    payload = {"microgrids": struct_pb2.Value(string_value="7")}
    placed = await client.create_gridpool_order(
        1,
        delivery_area=DeliveryArea(AREA, EIC),
        delivery_period=DeliveryPeriod(start, DeliveryDuration.MINUTES_15),
        order_type=OrderType.LIMIT,
        side=MarketSide.BUY,
        price=Price(Decimal("-20.5"), Currency.EUR),
        quantity=Power(Decimal("1.1")),
        tag="battery-31",
        payload=payload,
    )
    payload_back: object = placed.order.payload  # the client types it loosely: a JSON dict
    assert (placed.order.tag, payload_back) == ("battery-31", {"microgrids": "7"})
    assert placed.order.price == Price(Decimal("-20.5"), Currency.EUR)
    tagged = [o.order_id async for o in client.list_gridpool_orders(1, tag="battery-31")]
    assert tagged == [placed.order_id]
    assert [o async for o in client.list_gridpool_orders(1, tag="other")] == []


async def test_cancel_and_list_through_the_client(server: MarketServer, client: Client) -> None:
    start = server.exchange.first_open_period()
    first = await sell(client, start, mw="0.1")
    second = await sell(client, start + timedelta(minutes=15), mw="0.2")
    cancelled = await client.cancel_gridpool_order(1, order_id=first.order_id)
    assert cancelled.state_detail.state is OrderState.CANCELED
    active = [
        o.order_id async for o in client.list_gridpool_orders(1, order_states=[OrderState.ACTIVE])
    ]
    assert active == [second.order_id]
    paged = [o.order_id async for o in client.list_gridpool_orders(1, page_size=1)]
    assert paged == [first.order_id, second.order_id]
    assert await client.cancel_all_gridpool_orders(1) == 1
    with pytest.raises(grpc.aio.AioRpcError) as again:
        await client.cancel_gridpool_order(1, order_id=second.order_id)
    assert again.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "order 2 is CANCELED" in (again.value.details() or "")


async def test_requests_without_a_valid_key_are_refused(server: MarketServer) -> None:
    start = server.exchange.first_open_period()
    for key, reason in ((None, "missing API key"), ("wrong", "invalid API key")):
        Client._instances.clear()
        stranger = Client(server_url=server.url, auth_key=key)
        try:
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await sell(stranger, start)
            assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
            assert reason in (caught.value.details() or "")
        finally:
            await stranger.disconnect()
            Client._instances.clear()
    async with grpc.aio.insecure_channel(server.address) as channel:
        stub = async_stub(channel)
        stream = stub.ReceiveGridpoolTradesStream(
            pb.ReceiveGridpoolTradesStreamRequest(gridpool_id=1)
        )
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stream.read()
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert server.exchange.list_orders(1, OrderFilter()) == []


async def test_orders_the_client_sends_but_the_market_refuses(
    server: MarketServer, client: Client, wall_clock: ManualClock
) -> None:
    start = server.exchange.first_open_period()
    cases = [
        ({"gridpool_id": 7}, grpc.StatusCode.NOT_FOUND, "gridpool_id: gridpool 7 is not served"),
        (
            {"duration": DeliveryDuration.MINUTES_60},
            grpc.StatusCode.INVALID_ARGUMENT,
            "order.delivery_period.duration: this market trades DELIVERY_DURATION_15",
        ),
        ({"area": ""}, grpc.StatusCode.INVALID_ARGUMENT, "order.delivery_area.code: missing"),
    ]
    for changes, code, message in cases:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await sell(client, start, **changes)  # type: ignore[arg-type]
        assert caught.value.code() == code
        assert message in (caught.value.details() or "")
    wall_clock.advance(gate_of(start) - wall_clock.now() + timedelta(seconds=1))
    with pytest.raises(grpc.aio.AioRpcError) as closed:
        await sell(client, start)
    assert closed.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "order.delivery_period.start: trading for the delivery period" in (
        closed.value.details() or ""
    )


def raw_order(start: datetime, *, mw: str = "0.5", price: str = "10") -> pb.Order:
    return pb.Order(
        delivery_area=delivery_area_pb2.DeliveryArea(
            code=AREA, code_type=delivery_area_pb2.ENERGY_MARKET_CODE_TYPE_EUROPE_EIC
        ),
        delivery_period=delivery_duration_pb2.DeliveryPeriod(
            start=to_timestamp(start), duration=delivery_duration_pb2.DELIVERY_DURATION_15
        ),
        type=pb.ORDER_TYPE_LIMIT,
        side=pb.MARKET_SIDE_SELL,
        price=price_pb2.Price(
            amount=decimal_pb2.Decimal(value=price), currency=price_pb2.Price.CURRENCY_EUR
        ),
        quantity=power_pb2.Power(mw=decimal_pb2.Decimal(value=mw)),
    )


@pytest.mark.parametrize(
    ("mw", "price", "message"),
    [
        ("-1", "10", "order.quantity.mw: expected a positive quantity (at least 0.1 MW), got -1"),
        ("0", "10", "order.quantity.mw: expected a positive quantity (at least 0.1 MW), got 0"),
        ("0.25", "10", "order.quantity.mw: expected a multiple of 0.1 MW"),
        ("0.5", "10000", "order.price.amount: expected -9999 to 9999 EUR/MWh, got 10000"),
        ("0.5", "12.345", "order.price.amount: expected at most 2 decimal places"),
    ],
)
async def test_orders_the_client_would_not_send_get_precise_errors(
    server: MarketServer,
    stub: pb_grpc.ElectricityTradingServiceAsyncStub,
    mw: str,
    price: str,
    message: str,
) -> None:
    start = server.exchange.first_open_period()
    request = pb.CreateGridpoolOrderRequest(
        gridpool_id=1, order=raw_order(start, mw=mw, price=price)
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.CreateGridpoolOrder(request, metadata=METADATA)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in (caught.value.details() or "")


async def test_methods_not_served_say_what_to_do_instead(
    server: MarketServer, client: Client, stub: pb_grpc.ElectricityTradingServiceAsyncStub
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as update:
        await client.update_gridpool_order(1, order_id=1, price=Price(Decimal(5), Currency.EUR))
    assert update.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert "cancel the order and create a new one" in (update.value.details() or "")
    book = stub.ReceivePublicOrderBookStream(
        pb.ReceivePublicOrderBookStreamRequest(), metadata=METADATA
    )
    with pytest.raises(grpc.aio.AioRpcError) as stream:
        await book.read()
    assert stream.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert "ReceivePublicTradesStream" in (stream.value.details() or "")


async def test_streams_end_unavailable_when_the_server_stops(
    wall_clock: ManualClock,
) -> None:
    async with (
        MarketServer(None, keys=frozenset({KEY}), clock=wall_clock) as running,
        grpc.aio.insecure_channel(running.address) as channel,
    ):
        stream = async_stub(channel).ReceiveGridpoolOrdersStream(
            pb.ReceiveGridpoolOrdersStreamRequest(gridpool_id=1), metadata=METADATA
        )
        await wait_for_streams(running.exchange, "orders")
        await running.stop()
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stream.read()
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE


@pytest.fixture
async def ticking_server(
    wall_clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[MarketServer]:
    monkeypatch.setattr(market_server, "MAX_NAP_S", 0.01)
    async with MarketServer(None, keys=frozenset({KEY}), clock=wall_clock) as running:
        yield running


async def test_the_server_clears_at_gate_closure_on_its_own_clock(
    ticking_server: MarketServer, wall_clock: ManualClock
) -> None:
    exchange = ticking_server.exchange
    start = exchange.first_open_period()
    await asyncio.sleep(0.05)
    assert exchange.records == {}
    wall_clock.advance(gate_of(start) - wall_clock.now())
    async with asyncio.timeout(5):
        while start not in exchange.records:
            await asyncio.sleep(0.01)
    assert exchange.next_clearing == start + timedelta(minutes=15)


def test_an_empty_key_set_or_a_bad_address_is_refused() -> None:
    with pytest.raises(ValueError, match="empty set would refuse every call"):
        MarketServer(keys=frozenset())
    with pytest.raises(ValueError, match="--listen: expected HOST:PORT"):
        MarketServer(listen="nowhere", keys=None)
