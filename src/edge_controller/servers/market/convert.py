"""Electricity Trading API messages ↔ the market's plain types.

Only this module and the servicer know the protobuf types. Requests become plain
values without judgement (`OrderRequest` keeps what was sent, even if wrong, so that
`orders.validate_order` can say precisely what is wrong); filters with an enumeration
value the API does not define are refused here, naming the field.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from enum import Enum
from typing import Any, TypeVar

from frequenz.api.common.v1alpha8.grid import delivery_area_pb2, delivery_duration_pb2
from frequenz.api.common.v1alpha8.market import power_pb2, price_pb2
from frequenz.api.common.v1alpha8.types import decimal_pb2
from frequenz.api.electricity_trading.v1 import electricity_trading_pb2 as pb
from google.protobuf import json_format, struct_pb2, timestamp_pb2

from edge_controller.servers.market.clearing import Side
from edge_controller.servers.market.errors import invalid
from edge_controller.servers.market.orders import (
    DeliveryArea,
    DeliveryTimeFilter,
    OrderFilter,
    OrderRecord,
    OrderRequest,
    OrderState,
    PublicTradeFilter,
    PublicTradeRecord,
    TradeFilter,
    TradeRecord,
    TradeState,
)

_E = TypeVar("_E", bound=Enum)
Duration = delivery_duration_pb2.DeliveryDuration
DURATIONS: dict[Duration.ValueType, timedelta] = {
    Duration.DELIVERY_DURATION_5: timedelta(minutes=5),
    Duration.DELIVERY_DURATION_15: timedelta(minutes=15),
    Duration.DELIVERY_DURATION_30: timedelta(minutes=30),
    Duration.DELIVERY_DURATION_60: timedelta(minutes=60),
}
_DURATION_VALUES = {duration: value for value, duration in DURATIONS.items()}
_SIDES = {pb.MARKET_SIDE_BUY: Side.BUY, pb.MARKET_SIDE_SELL: Side.SELL}
_SIDE_VALUES = {side: value for value, side in _SIDES.items()}
_AREA_PREFIX = "ENERGY_MARKET_CODE_TYPE_"


def _name(enum: Any, value: int) -> str:
    """Return the API name of an enumeration value, or the number for an unknown one.

    `enum` is a generated enumeration (`pb.OrderType`); their stubs type each one apart.
    """
    try:
        return str(enum.Name(value))
    except ValueError:
        return f"{value} (unknown)"


def _strip(name: str, prefix: str) -> str:
    return name.removeprefix(prefix)


def to_datetime(timestamp: timestamp_pb2.Timestamp) -> datetime:
    """Return a protobuf timestamp as a UTC datetime."""
    return timestamp.ToDatetime(tzinfo=UTC)


def to_timestamp(moment: datetime) -> timestamp_pb2.Timestamp:
    """Return a datetime as a protobuf timestamp."""
    timestamp = timestamp_pb2.Timestamp()
    timestamp.FromDatetime(moment)
    return timestamp


def area_from_proto(area: delivery_area_pb2.DeliveryArea) -> DeliveryArea:
    """Return a delivery area as the market's type."""
    code_type = _name(delivery_area_pb2.EnergyMarketCodeType, area.code_type)
    return DeliveryArea(area.code, _strip(code_type, _AREA_PREFIX))


def area_to_proto(area: DeliveryArea) -> delivery_area_pb2.DeliveryArea:
    """Return a delivery area as the API's message."""
    try:
        code_type = delivery_area_pb2.EnergyMarketCodeType.Value(_AREA_PREFIX + area.code_type)
    except ValueError:
        code_type = delivery_area_pb2.ENERGY_MARKET_CODE_TYPE_UNSPECIFIED
    return delivery_area_pb2.DeliveryArea(code=area.code, code_type=code_type)


def _period(start: datetime, duration: timedelta) -> delivery_duration_pb2.DeliveryPeriod:
    return delivery_duration_pb2.DeliveryPeriod(
        start=to_timestamp(start),
        duration=_DURATION_VALUES.get(duration, Duration.DELIVERY_DURATION_UNSPECIFIED),
    )


def _price(amount: Decimal, currency: str) -> price_pb2.Price:
    try:
        code = price_pb2.Price.Currency.Value(f"CURRENCY_{currency}")
    except ValueError:
        code = price_pb2.Price.CURRENCY_UNSPECIFIED
    return price_pb2.Price(amount=decimal_pb2.Decimal(value=str(amount)), currency=code)


def _power(mw: Decimal) -> power_pb2.Power:
    return power_pb2.Power(mw=decimal_pb2.Decimal(value=str(mw)))


def order_request(order: pb.Order) -> OrderRequest:
    """Return what an order message holds, unjudged (see `orders.validate_order`)."""
    period = order.delivery_period if order.HasField("delivery_period") else None
    has_price = order.HasField("price")
    unsupported = tuple(
        name
        for name in ("stop_price", "peak_price_delta", "display_quantity")
        if order.HasField(name)
    )
    return OrderRequest(
        area=area_from_proto(order.delivery_area) if order.HasField("delivery_area") else None,
        period_start=to_datetime(period.start) if period is not None else None,
        duration=DURATIONS.get(period.duration) if period is not None else None,
        duration_name=_name(Duration, period.duration) if period is not None else "nothing",
        order_type=_name(pb.OrderType, order.type),
        side=_SIDES.get(order.side),
        side_name=_name(pb.MarketSide, order.side),
        price_amount=order.price.amount.value if has_price else None,
        currency=(
            _strip(_name(price_pb2.Price.Currency, order.price.currency), "CURRENCY_")
            if has_price
            else ""
        ),
        quantity_mw=order.quantity.mw.value if order.HasField("quantity") else None,
        unsupported_fields=unsupported,
        execution_option=(
            _name(pb.OrderExecutionOption, order.execution_option)
            if order.HasField("execution_option")
            else None
        ),
        valid_until=to_datetime(order.valid_until) if order.HasField("valid_until") else None,
        payload=json_format.MessageToDict(order.payload) if order.HasField("payload") else None,
        tag=order.tag if order.HasField("tag") else None,
    )


def order_detail(record: OrderRecord) -> pb.OrderDetail:
    """Return an order with its state as the API's `OrderDetail`."""
    order = record.order
    message = pb.Order(
        delivery_area=area_to_proto(order.area),
        delivery_period=_period(order.period_start, order.duration),
        type=pb.ORDER_TYPE_LIMIT,
        side=_SIDE_VALUES[order.side],
        price=_price(order.price, order.currency),
        quantity=_power(order.quantity_mw),
    )
    if order.valid_until is not None:
        message.valid_until.CopyFrom(to_timestamp(order.valid_until))
    if order.payload is not None:
        payload = struct_pb2.Struct()
        json_format.ParseDict(dict(order.payload), payload)
        message.payload.CopyFrom(payload)
    if order.tag is not None:
        message.tag = order.tag
    detail = pb.OrderDetail.StateDetail
    return pb.OrderDetail(
        order_id=record.order_id,
        order=message,
        state_detail=detail(
            state=pb.OrderState.Value(f"ORDER_STATE_{record.state.value}"),
            state_reason=detail.StateReason.Value(f"STATE_REASON_{record.reason.value}"),
            market_actor=detail.MarketActor.Value(f"MARKET_ACTOR_{record.actor.value}"),
        ),
        open_quantity=_power(record.open_mw),
        filled_quantity=_power(record.filled_mw),
        create_time=to_timestamp(record.create_time),
        modification_time=to_timestamp(record.modification_time),
    )


def trade(record: TradeRecord) -> pb.Trade:
    """Return our side of a trade as the API's `Trade`."""
    return pb.Trade(
        id=record.trade_id,
        order_id=record.order_id,
        side=_SIDE_VALUES[record.side],
        delivery_area=area_to_proto(record.area),
        delivery_period=_period(record.period_start, record.duration),
        execution_time=to_timestamp(record.execution_time),
        price=_price(record.price, record.currency),
        quantity=_power(record.quantity_mw),
        state=pb.TradeState.Value(f"TRADE_STATE_{record.state.value}"),
    )


def public_trade(record: PublicTradeRecord) -> pb.PublicTrade:
    """Return a period's cleared volume as the API's `PublicTrade`."""
    area = area_to_proto(record.area)
    return pb.PublicTrade(
        id=record.trade_id,
        buy_delivery_area=area,
        sell_delivery_area=area,
        delivery_period=_period(record.period_start, record.duration),
        execution_time=to_timestamp(record.execution_time),
        price=_price(record.price, record.currency),
        quantity=_power(record.quantity_mw),
        state=pb.TradeState.Value(f"TRADE_STATE_{record.state.value}"),
    )


def _states(
    values: Iterable[int], enum: Any, prefix: str, states: type[_E], path: str
) -> frozenset[_E]:
    chosen = set()
    for value in values:
        name = _name(enum, value)
        try:
            chosen.add(states[_strip(name, prefix)])
        except KeyError:
            raise invalid(f"{path}: unknown state {name}") from None
    return frozenset(chosen)


def _side(value: pb.MarketSide.ValueType, path: str) -> Side | None:
    if value == pb.MARKET_SIDE_UNSPECIFIED:
        return None
    side = _SIDES.get(value)
    if side is None:
        raise invalid(f"{path}: unknown market side {value}")
    return side


def _delivery(message: pb.DeliveryTimeFilter, path: str) -> DeliveryTimeFilter:
    interval = message.time_interval
    durations = set()
    for value in message.duration_filters:
        if value == Duration.DELIVERY_DURATION_UNSPECIFIED:
            continue
        if value not in DURATIONS:
            raise invalid(f"{path}.duration_filters: unknown delivery duration {value}")
        durations.add(DURATIONS[value])
    return DeliveryTimeFilter(
        start_from=to_datetime(interval.start_time) if interval.HasField("start_time") else None,
        start_until=to_datetime(interval.end_time) if interval.HasField("end_time") else None,
        durations=frozenset(durations),
    )


def order_filter(message: pb.GridpoolOrderFilter) -> OrderFilter:
    """Return an order filter; unset fields match everything.

    Raises:
        MarketError: INVALID_ARGUMENT for an enumeration value the API does not define.
    """
    return OrderFilter(
        states=_states(message.states, pb.OrderState, "ORDER_STATE_", OrderState, "filter.states"),
        side=_side(message.side, "filter.side") if message.HasField("side") else None,
        delivery=(
            _delivery(message.delivery_time_filter, "filter.delivery_time_filter")
            if message.HasField("delivery_time_filter")
            else None
        ),
        area_code=(
            message.delivery_area.code
            if message.HasField("delivery_area") and message.delivery_area.code
            else None
        ),
        tag=message.tag if message.HasField("tag") else None,
        order_ids=frozenset(message.order_ids),
    )


def trade_filter(message: pb.GridpoolTradeFilter) -> TradeFilter:
    """Return a trade filter; unset fields match everything (see `order_filter`)."""
    return TradeFilter(
        states=_states(message.states, pb.TradeState, "TRADE_STATE_", TradeState, "filter.states"),
        trade_ids=frozenset(message.trade_ids),
        side=_side(message.side, "filter.side") if message.HasField("side") else None,
        delivery=(
            _delivery(message.delivery_time_filter, "filter.delivery_time_filter")
            if message.HasField("delivery_time_filter")
            else None
        ),
        area_code=(
            message.delivery_area.code
            if message.HasField("delivery_area") and message.delivery_area.code
            else None
        ),
        tag=message.tag if message.HasField("tag") else None,
    )


def public_trade_filter(message: pb.PublicTradeFilter) -> PublicTradeFilter:
    """Return a public trade filter; unset fields match everything (see `order_filter`)."""
    period = message.delivery_period if message.HasField("delivery_period") else None
    return PublicTradeFilter(
        states=_states(message.states, pb.TradeState, "TRADE_STATE_", TradeState, "filter.states"),
        period_start=to_datetime(period.start) if period is not None else None,
        duration=DURATIONS.get(period.duration) if period is not None else None,
        buy_area_code=(
            message.buy_delivery_area.code
            if message.HasField("buy_delivery_area") and message.buy_delivery_area.code
            else None
        ),
        sell_area_code=(
            message.sell_delivery_area.code
            if message.HasField("sell_delivery_area") and message.sell_delivery_area.code
            else None
        ),
    )


__all__ = [
    "DURATIONS",
    "area_from_proto",
    "area_to_proto",
    "order_detail",
    "order_filter",
    "order_request",
    "public_trade",
    "public_trade_filter",
    "to_datetime",
    "to_timestamp",
    "trade",
    "trade_filter",
]
