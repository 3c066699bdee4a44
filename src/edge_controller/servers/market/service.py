"""The `frequenz.api.electricity_trading.v1.ElectricityTradingService` servicer: a thin shell.

Each method converts its request (`convert`), calls the `MarketExchange`, and converts
the result back. A `MarketError` ends the call with the status code it names and its
message; any other exception is a bug: logged with its traceback and reported as
INTERNAL, so a bad request never takes the server down.

Served: CreateGridpoolOrder, CancelGridpoolOrder, CancelAllGridpoolOrders,
GetGridpoolOrder, ListGridpoolOrders, ReceiveGridpoolOrdersStream, ListGridpoolTrades,
ReceiveGridpoolTradesStream, ReceivePublicTradesStream — what the
`frequenz-client-electricity-trading` client needs for a bidding agent.
UpdateGridpoolOrder and ReceivePublicOrderBookStream answer UNIMPLEMENTED, saying what
to do instead.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, NoReturn, TypeVar

import grpc
from frequenz.api.common.v1alpha8.pagination import pagination_info_pb2
from frequenz.api.electricity_trading.v1 import electricity_trading_pb2 as pb
from frequenz.api.electricity_trading.v1 import electricity_trading_pb2_grpc as pb_grpc
from typing_extensions import override

from edge_controller.servers.common import serving
from edge_controller.servers.market import convert
from edge_controller.servers.market.errors import ErrorKind, MarketError, invalid
from edge_controller.servers.market.exchange import MarketExchange
from edge_controller.servers.market.orders import page

_T = TypeVar("_T")
Context = grpc.aio.ServicerContext[Any, Any]
SERVICE = "electricity trading service"


def _unary(context: Context, call: Callable[[], Awaitable[_T]]) -> Awaitable[_T]:
    return serving.unary(context, call, service=SERVICE)


def _streamed(context: Context, items: AsyncIterator[_T]) -> AsyncIterator[_T]:
    return serving.streamed(context, items, service=SERVICE)


def _unimplemented(method: str, instead: str) -> MarketError:
    return MarketError(
        ErrorKind.UNIMPLEMENTED, f"{method} is not served by this local market; {instead}"
    )


async def _refuse(error: MarketError) -> NoReturn:
    raise error


async def _refused_order_book(
    error: MarketError,
) -> AsyncIterator[pb.ReceivePublicOrderBookStreamResponse]:
    raise error
    yield  # pragma: no cover - makes this an async generator


class ElectricityTradingServicer(pb_grpc.ElectricityTradingServiceServicer):
    """Serve a `MarketExchange` over gRPC."""

    def __init__(self, exchange: MarketExchange) -> None:
        """Translate calls to `exchange`."""
        self._exchange = exchange

    @override
    async def CreateGridpoolOrder(
        self, request: pb.CreateGridpoolOrderRequest, context: Context
    ) -> pb.CreateGridpoolOrderResponse:
        """Place a limit order for one delivery period; it comes back ACTIVE."""

        async def call() -> pb.CreateGridpoolOrderResponse:
            if not request.HasField("order"):
                raise invalid("order: missing; expected the order to place")
            record = self._exchange.create_order(
                request.gridpool_id, convert.order_request(request.order)
            )
            return pb.CreateGridpoolOrderResponse(
                gridpool_id=record.gridpool_id, order_detail=convert.order_detail(record)
            )

        return await _unary(context, call)

    @override
    async def UpdateGridpoolOrder(
        self, request: pb.UpdateGridpoolOrderRequest, context: Context
    ) -> pb.UpdateGridpoolOrderResponse:
        """Not served: cancel the order and create a new one."""
        error = _unimplemented(
            "UpdateGridpoolOrder", "cancel the order and create a new one before gate closure"
        )
        return await _unary(context, lambda: _refuse(error))

    @override
    async def CancelGridpoolOrder(
        self, request: pb.CancelGridpoolOrderRequest, context: Context
    ) -> pb.CancelGridpoolOrderResponse:
        """Cancel an ACTIVE order before its gate closes."""

        async def call() -> pb.CancelGridpoolOrderResponse:
            record = self._exchange.cancel_order(request.gridpool_id, request.order_id)
            return pb.CancelGridpoolOrderResponse(
                gridpool_id=record.gridpool_id, order_detail=convert.order_detail(record)
            )

        return await _unary(context, call)

    @override
    async def CancelAllGridpoolOrders(
        self, request: pb.CancelAllGridpoolOrdersRequest, context: Context
    ) -> pb.CancelAllGridpoolOrdersResponse:
        """Cancel every ACTIVE order of the gridpool whose gate is still open."""

        async def call() -> pb.CancelAllGridpoolOrdersResponse:
            self._exchange.cancel_all(request.gridpool_id)
            return pb.CancelAllGridpoolOrdersResponse(gridpool_id=request.gridpool_id)

        return await _unary(context, call)

    @override
    async def GetGridpoolOrder(
        self, request: pb.GetGridpoolOrderRequest, context: Context
    ) -> pb.GetGridpoolOrderResponse:
        """Return one order with its state."""

        async def call() -> pb.GetGridpoolOrderResponse:
            record = self._exchange.get_order(request.gridpool_id, request.order_id)
            return pb.GetGridpoolOrderResponse(
                gridpool_id=record.gridpool_id, order_detail=convert.order_detail(record)
            )

        return await _unary(context, call)

    @override
    async def ListGridpoolOrders(
        self, request: pb.ListGridpoolOrdersRequest, context: Context
    ) -> pb.ListGridpoolOrdersResponse:
        """List one page of the gridpool's orders that pass the filter, oldest first."""

        async def call() -> pb.ListGridpoolOrdersResponse:
            records = self._exchange.list_orders(
                request.gridpool_id, convert.order_filter(request.filter)
            )
            params = request.pagination_params
            chunk, token, total = page(records, params.page_size, params.page_token)
            return pb.ListGridpoolOrdersResponse(
                order_details=[convert.order_detail(r) for r in chunk],
                pagination_info=pagination_info_pb2.PaginationInfo(
                    total_items=total, next_page_token=token
                ),
            )

        return await _unary(context, call)

    @override
    async def ReceiveGridpoolOrdersStream(
        self, request: pb.ReceiveGridpoolOrdersStreamRequest, context: Context
    ) -> AsyncIterator[pb.ReceiveGridpoolOrdersStreamResponse]:
        """Stream every change to the gridpool's orders; ends UNAVAILABLE on shutdown."""

        async def items() -> AsyncIterator[pb.ReceiveGridpoolOrdersStreamResponse]:
            changes = self._exchange.follow_orders(
                request.gridpool_id, convert.order_filter(request.filter)
            )
            async for record in changes:
                yield pb.ReceiveGridpoolOrdersStreamResponse(
                    order_detail=convert.order_detail(record)
                )

        async for response in _streamed(context, items()):
            yield response

    @override
    async def ListGridpoolTrades(
        self, request: pb.ListGridpoolTradesRequest, context: Context
    ) -> pb.ListGridpoolTradesResponse:
        """List one page of the gridpool's trades that pass the filter, oldest first."""

        async def call() -> pb.ListGridpoolTradesResponse:
            trades = self._exchange.list_trades(
                request.gridpool_id, convert.trade_filter(request.filter)
            )
            params = request.pagination_params
            chunk, token, total = page(trades, params.page_size, params.page_token)
            return pb.ListGridpoolTradesResponse(
                trades=[convert.trade(t) for t in chunk],
                pagination_info=pagination_info_pb2.PaginationInfo(
                    total_items=total, next_page_token=token
                ),
            )

        return await _unary(context, call)

    @override
    async def ReceiveGridpoolTradesStream(
        self, request: pb.ReceiveGridpoolTradesStreamRequest, context: Context
    ) -> AsyncIterator[pb.ReceiveGridpoolTradesStreamResponse]:
        """Stream the gridpool's new trades; ends UNAVAILABLE on shutdown."""

        async def items() -> AsyncIterator[pb.ReceiveGridpoolTradesStreamResponse]:
            trades = self._exchange.follow_trades(
                request.gridpool_id, convert.trade_filter(request.filter)
            )
            async for trade in trades:
                yield pb.ReceiveGridpoolTradesStreamResponse(trade=convert.trade(trade))

        async for response in _streamed(context, items()):
            yield response

    @override
    async def ReceivePublicTradesStream(
        self, request: pb.ReceivePublicTradesStreamRequest, context: Context
    ) -> AsyncIterator[pb.ReceivePublicTradesStreamResponse]:
        """Stream each cleared period's volume and price (from `start_time` if given)."""

        async def items() -> AsyncIterator[pb.ReceivePublicTradesStreamResponse]:
            trades = self._exchange.follow_public_trades(
                convert.public_trade_filter(request.filter),
                start_time=(
                    convert.to_datetime(request.start_time)
                    if request.HasField("start_time")
                    else None
                ),
                end_time=(
                    convert.to_datetime(request.end_time) if request.HasField("end_time") else None
                ),
            )
            async for trade in trades:
                yield pb.ReceivePublicTradesStreamResponse(public_trade=convert.public_trade(trade))

        async for response in _streamed(context, items()):
            yield response

    @override
    async def ReceivePublicOrderBookStream(
        self, request: pb.ReceivePublicOrderBookStreamRequest, context: Context
    ) -> AsyncIterator[pb.ReceivePublicOrderBookStreamResponse]:
        """Not served: the book is sealed until gate closure; follow public trades."""
        error = _unimplemented(
            "ReceivePublicOrderBookStream",
            "its call auction keeps the book sealed until gate closure; follow "
            "ReceivePublicTradesStream for each period's cleared volume and price",
        )
        async for response in _streamed(context, _refused_order_book(error)):
            yield response


__all__ = ["ElectricityTradingServicer"]
