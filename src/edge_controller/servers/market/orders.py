"""Participants' orders: validation, states, trades, filters and pages, all pure.

An order arrives as an `OrderRequest` (plain values taken from the API message, not yet
checked) and becomes an `Order` once `validate_order` accepts it. Its life:

```
create ─► ACTIVE ─┬─ cancel (before gate closure) ───────────► CANCELED
                  └─ gate closure: cleared ─┬─ filled fully ──► FILLED
                                            ├─ filled partly ─► EXPIRED (PARTIAL_EXECUTION)
                                            └─ not filled ────► EXPIRED
```

Decisions where the API leaves room:

- Limit orders only; no execution options (the market clears in one call auction at
  gate closure, so fill-or-kill and immediate-or-cancel have no meaning); no stop or
  iceberg fields.
- Quantities: whole multiples of 0.1 MW, at least 0.1 MW and at most 1000 MW (the
  trading client's step). Prices: −9999 to 9999 EUR/MWh with at most 2 decimals (the
  trading client's limits) in the market's currency (EUR).
- Delivery periods: the market's duration (15 minutes by default), starting on the
  period grid (the quarter hours), after now, at most `horizon` (48 h) ahead. A period
  whose gate has closed is FAILED_PRECONDITION; one already started is INVALID_ARGUMENT.
- A gridpool the market does not serve is NOT_FOUND (as the dispatch service does with
  microgrids); gridpool id 0 (unset) is INVALID_ARGUMENT.
- An order whose `valid_until` comes before its gate closure expires unfilled then.
- A partly filled order ends EXPIRED with its filled quantity: the auction runs once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from enum import Enum
from typing import Any, TypeVar

from edge_controller.servers.market.clearing import KW_PER_MW, Side
from edge_controller.servers.market.errors import failed_precondition, invalid, not_found
from edge_controller.servers.market.model import MarketRules
from edge_controller.trading.periods import first_open_period, gate_closure, is_period_start

_T = TypeVar("_T")
MAX_PAGE_SIZE = 1000
"""Items per page when the request asks for none or for more."""


class OrderState(Enum):
    """An order's state (the API's names; this market uses ACTIVE and the final ones)."""

    UNSPECIFIED = "UNSPECIFIED"
    PENDING = "PENDING"
    ACTIVE = "ACTIVE"
    FILLED = "FILLED"
    CANCELED = "CANCELED"
    EXPIRED = "EXPIRED"
    FAILED = "FAILED"
    HIBERNATE = "HIBERNATE"


class StateReason(Enum):
    """Why an order is in its state (the subset of the API's reasons this market gives)."""

    ADD = "ADD"
    DELETE = "DELETE"
    DEACTIVATE = "DEACTIVATE"
    FULL_EXECUTION = "FULL_EXECUTION"
    PARTIAL_EXECUTION = "PARTIAL_EXECUTION"


class MarketActor(Enum):
    """Who changed the order's state."""

    USER = "USER"
    SYSTEM = "SYSTEM"


class TradeState(Enum):
    """A trade's state (the API's names; trades here are always ACTIVE)."""

    UNSPECIFIED = "UNSPECIFIED"
    ACTIVE = "ACTIVE"
    CANCEL_REQUESTED = "CANCEL_REQUESTED"
    CANCEL_REJECTED = "CANCEL_REJECTED"
    CANCELED = "CANCELED"
    RECALLED = "RECALLED"
    RECALL_REQUESTED = "RECALL_REQUESTED"
    RECALL_REJECTED = "RECALL_REJECTED"
    APPROVAL_REQUESTED = "APPROVAL_REQUESTED"


@dataclass(frozen=True, slots=True)
class DeliveryArea:
    """A delivery area: its code and the kind of code (`EUROPE_EIC`, `US_NERC`)."""

    code: str
    code_type: str = "EUROPE_EIC"


@dataclass(frozen=True, slots=True)
class OrderRequest:
    """An order as received, before any check: every field as the message held it.

    Enumerations are given by their API names (`"ORDER_TYPE_LIMIT"`), decimals as the
    text the message carried; None means the field was not set.
    """

    area: DeliveryArea | None
    period_start: datetime | None
    duration: timedelta | None
    """None when the duration is unset or unknown; see `duration_name`."""
    duration_name: str
    order_type: str
    side: Side | None
    side_name: str
    price_amount: str | None
    currency: str
    quantity_mw: str | None
    unsupported_fields: tuple[str, ...] = ()
    """Fields set that this market does not support (`stop_price`, ...)."""
    execution_option: str | None = None
    valid_until: datetime | None = None
    payload: Mapping[str, Any] | None = None
    tag: str | None = None


@dataclass(frozen=True, slots=True)
class Order:
    """A valid limit order for one delivery period."""

    area: DeliveryArea
    period_start: datetime
    duration: timedelta
    side: Side
    price: Decimal
    """Limit, in `currency` per MWh: the most a buy pays, the least a sell takes."""
    currency: str
    quantity_mw: Decimal
    valid_until: datetime | None = None
    payload: Mapping[str, Any] | None = None
    tag: str | None = None

    @property
    def quantity_kw(self) -> int:
        """The quantity in whole kW (exact: quantities are multiples of 0.1 MW)."""
        return int(self.quantity_mw * KW_PER_MW)


@dataclass(frozen=True, slots=True)
class OrderRecord:
    """An order with its id, gridpool, state and history."""

    order_id: int
    gridpool_id: int
    order: Order
    state: OrderState
    reason: StateReason
    actor: MarketActor
    filled_mw: Decimal
    create_time: datetime
    modification_time: datetime

    @property
    def open_mw(self) -> Decimal:
        """What is still open in the market: the unfilled rest while ACTIVE, else 0."""
        if self.state is OrderState.ACTIVE:
            return self.order.quantity_mw - self.filled_mw
        return Decimal(0)


@dataclass(frozen=True, slots=True)
class TradeRecord:
    """Our side of a trade: one filled order at the period's clearing price."""

    trade_id: int
    order_id: int
    gridpool_id: int
    side: Side
    area: DeliveryArea
    period_start: datetime
    duration: timedelta
    execution_time: datetime
    price: Decimal
    currency: str
    quantity_mw: Decimal
    state: TradeState = TradeState.ACTIVE
    tag: str | None = None
    """The order's tag (trades are filtered by it)."""


@dataclass(frozen=True, slots=True)
class PublicTradeRecord:
    """A period's whole cleared volume at its price, as the public sees it."""

    trade_id: int
    area: DeliveryArea
    period_start: datetime
    duration: timedelta
    execution_time: datetime
    price: Decimal
    currency: str
    quantity_mw: Decimal
    state: TradeState = TradeState.ACTIVE


def show_time(moment: datetime) -> str:
    """Return a UTC timestamp the way messages show it: `2026-06-21T12:15:00Z`."""
    return moment.isoformat().replace("+00:00", "Z")


def _minutes(duration: timedelta) -> str:
    return f"{duration.total_seconds() / 60:g}-minute"


def _span(duration: timedelta) -> str:
    minutes = duration.total_seconds() / 60
    return f"{minutes:g} minute{'' if minutes == 1 else 's'}"


def _decimal(text: str, path: str) -> Decimal:
    try:
        value = Decimal(text.strip())
    except (InvalidOperation, ValueError):
        raise invalid(f"{path}: expected a decimal number, got {text!r}") from None
    if not value.is_finite():
        raise invalid(f"{path}: expected a finite decimal number, got {text!r}")
    return value


def check_gridpool(gridpool_id: int, rules: MarketRules) -> None:
    """Refuse a gridpool id that is unset or not served.

    Raises:
        MarketError: INVALID_ARGUMENT for 0 (unset), NOT_FOUND for one not served.
    """
    served = sorted(rules.gridpool_ids)
    if gridpool_id == 0:
        raise invalid(f"gridpool_id: missing; expected the id of a gridpool served here {served}")
    if gridpool_id not in rules.gridpool_ids:
        raise not_found(
            f"gridpool_id: gridpool {gridpool_id} is not served by this market (served: {served})"
        )


def check_period(start: datetime, rules: MarketRules, now: datetime) -> None:
    """Refuse a period start off the grid, already begun, closed, or beyond the horizon.

    Raises:
        MarketError: INVALID_ARGUMENT, or FAILED_PRECONDITION for a closed gate.
    """
    path = "order.delivery_period.start"
    period = rules.period
    if not is_period_start(start, period):
        raise invalid(
            f"{path}: expected the start of a {_minutes(period)} period on the UTC grid, "
            f"got {show_time(start)}"
        )
    if start <= now:
        raise invalid(
            f"{path}: the delivery period starting {show_time(start)} has already begun "
            f"(now {show_time(now)}); the next open period starts "
            f"{show_time(first_open_period(now, period, rules.gate_closure))}"
        )
    closes = gate_closure(start, rules.gate_closure)
    if closes <= now:
        raise failed_precondition(
            f"{path}: trading for the delivery period starting {show_time(start)} closed at "
            f"{show_time(closes)} (gate closure: {_span(rules.gate_closure)} before "
            f"delivery; now {show_time(now)}); the next open period starts "
            f"{show_time(first_open_period(now, period, rules.gate_closure))}"
        )
    if start - now > rules.horizon:
        raise invalid(
            f"{path}: {show_time(start)} lies beyond the trading horizon of "
            f"{rules.horizon.total_seconds() / 3600:g} h (now {show_time(now)})"
        )


def _check_price(request: OrderRequest, rules: MarketRules) -> Decimal:
    if request.price_amount is None:
        raise invalid("order.price: missing; expected a limit price")
    if request.currency != rules.currency:
        raise invalid(
            f"order.price.currency: this market trades in CURRENCY_{rules.currency}, "
            f"got CURRENCY_{request.currency}"
        )
    path = "order.price.amount"
    price = _decimal(request.price_amount, path)
    if not rules.min_price <= price <= rules.max_price:
        raise invalid(
            f"{path}: expected {rules.min_price} to {rules.max_price} "
            f"{rules.currency}/MWh, got {request.price_amount}"
        )
    if price != price.quantize(Decimal("0.01")):
        raise invalid(
            f"{path}: expected at most 2 decimal places (0.01 {rules.currency}/MWh), "
            f"got {request.price_amount}"
        )
    return price


def _check_quantity(request: OrderRequest, rules: MarketRules) -> Decimal:
    if request.quantity_mw is None:
        raise invalid("order.quantity: missing; expected a quantity in MW")
    path = "order.quantity.mw"
    quantity = _decimal(request.quantity_mw, path)
    if quantity <= 0:
        raise invalid(
            f"{path}: expected a positive quantity (at least {rules.lot_mw} MW), "
            f"got {request.quantity_mw}"
        )
    if quantity % rules.lot_mw != 0:
        raise invalid(
            f"{path}: expected a multiple of {rules.lot_mw} MW (at least {rules.lot_mw} MW), "
            f"got {request.quantity_mw}"
        )
    if quantity > rules.max_quantity_mw:
        raise invalid(f"{path}: expected at most {rules.max_quantity_mw} MW, got {quantity}")
    return quantity


def validate_order(request: OrderRequest, rules: MarketRules, now: datetime) -> Order:
    """Return the order `request` describes, or refuse it naming the field.

    Raises:
        MarketError: INVALID_ARGUMENT naming the field, what was expected and what was
            given; FAILED_PRECONDITION when the period's gate has closed.
    """
    if request.order_type != "ORDER_TYPE_LIMIT":
        raise invalid(f"order.type: only ORDER_TYPE_LIMIT is supported, got {request.order_type}")
    if request.side is None:
        raise invalid(
            f"order.side: expected MARKET_SIDE_BUY or MARKET_SIDE_SELL, got {request.side_name}"
        )
    if request.unsupported_fields:
        raise invalid(
            f"order.{request.unsupported_fields[0]}: only plain limit orders are supported; "
            "leave it unset"
        )
    if request.execution_option not in (None, "ORDER_EXECUTION_OPTION_UNSPECIFIED"):
        raise invalid(
            "order.execution_option: this market clears in one call auction at gate closure; "
            f"{request.execution_option} is not supported (leave it unset)"
        )
    area = request.area
    if area is None or not area.code.strip():
        raise invalid("order.delivery_area.code: missing; expected a delivery area code")
    if rules.delivery_areas and area.code not in rules.delivery_areas:
        raise invalid(
            f"order.delivery_area.code: this market serves {sorted(rules.delivery_areas)}, "
            f"got {area.code!r}"
        )
    if request.period_start is None:
        raise invalid("order.delivery_period: missing; expected a start and a duration")
    if request.duration != rules.period:
        expected = f"DELIVERY_DURATION_{rules.period.total_seconds() / 60:g}"
        raise invalid(
            f"order.delivery_period.duration: this market trades {expected} "
            f"({_minutes(rules.period)}) periods, got {request.duration_name}"
        )
    check_period(request.period_start, rules, now)
    price = _check_price(request, rules)
    quantity = _check_quantity(request, rules)
    if request.valid_until is not None and request.valid_until <= now:
        raise invalid(
            f"order.valid_until: expected a time in the future, got "
            f"{show_time(request.valid_until)} (now {show_time(now)})"
        )
    return Order(
        area=area,
        period_start=request.period_start,
        duration=rules.period,
        side=request.side,
        price=price,
        currency=rules.currency,
        quantity_mw=quantity,
        valid_until=request.valid_until,
        payload=request.payload,
        tag=request.tag,
    )


def new_record(order_id: int, gridpool_id: int, order: Order, now: datetime) -> OrderRecord:
    """Return a freshly accepted order: ACTIVE, nothing filled."""
    return OrderRecord(
        order_id=order_id,
        gridpool_id=gridpool_id,
        order=order,
        state=OrderState.ACTIVE,
        reason=StateReason.ADD,
        actor=MarketActor.USER,
        filled_mw=Decimal(0),
        create_time=now,
        modification_time=now,
    )


def cancel(record: OrderRecord, rules: MarketRules, now: datetime) -> OrderRecord:
    """Return the order cancelled by its owner.

    Raises:
        MarketError: FAILED_PRECONDITION when the order is no longer ACTIVE or its
            period's gate has closed (it is being cleared).
    """
    if record.state is not OrderState.ACTIVE:
        raise failed_precondition(
            f"order_id: order {record.order_id} is {record.state.value}; "
            "only ACTIVE orders can be cancelled"
        )
    closes = gate_closure(record.order.period_start, rules.gate_closure)
    if closes <= now:
        raise failed_precondition(
            f"order_id: trading for order {record.order_id}'s delivery period closed at "
            f"{show_time(closes)}; it is cleared and can no longer be cancelled"
        )
    return replace(
        record,
        state=OrderState.CANCELED,
        reason=StateReason.DELETE,
        actor=MarketActor.USER,
        modification_time=now,
    )


def settle(record: OrderRecord, filled_mw: Decimal, at: datetime) -> OrderRecord:
    """Return the order after its period's auction filled `filled_mw` of it."""
    if filled_mw >= record.order.quantity_mw:
        state, reason = OrderState.FILLED, StateReason.FULL_EXECUTION
    elif filled_mw > 0:
        state, reason = OrderState.EXPIRED, StateReason.PARTIAL_EXECUTION
    else:
        state, reason = OrderState.EXPIRED, StateReason.DEACTIVATE
    return replace(
        record,
        state=state,
        reason=reason,
        actor=MarketActor.SYSTEM,
        filled_mw=filled_mw,
        modification_time=at,
    )


@dataclass(frozen=True, slots=True)
class DeliveryTimeFilter:
    """Periods starting in [start_from, start_until) with one of `durations` (empty: any)."""

    start_from: datetime | None = None
    start_until: datetime | None = None
    durations: frozenset[timedelta] = frozenset()

    def matches(self, start: datetime, duration: timedelta) -> bool:
        """Tell whether a period passes the filter."""
        if self.start_from is not None and start < self.start_from:
            return False
        if self.start_until is not None and start >= self.start_until:
            return False
        return not self.durations or duration in self.durations


@dataclass(frozen=True, slots=True)
class OrderFilter:
    """Orders matching every criterion set (an empty set or None matches everything)."""

    states: frozenset[OrderState] = frozenset()
    side: Side | None = None
    delivery: DeliveryTimeFilter | None = None
    area_code: str | None = None
    tag: str | None = None
    order_ids: frozenset[int] = frozenset()

    def matches(self, record: OrderRecord) -> bool:
        """Tell whether `record` passes the filter."""
        order = record.order
        return (
            (not self.states or record.state in self.states)
            and (self.side is None or order.side is self.side)
            and (self.delivery is None or self.delivery.matches(order.period_start, order.duration))
            and (self.area_code is None or order.area.code == self.area_code)
            and (self.tag is None or order.tag == self.tag)
            and (not self.order_ids or record.order_id in self.order_ids)
        )


@dataclass(frozen=True, slots=True)
class TradeFilter:
    """Trades matching every criterion set (an empty set or None matches everything)."""

    states: frozenset[TradeState] = frozenset()
    trade_ids: frozenset[int] = frozenset()
    side: Side | None = None
    delivery: DeliveryTimeFilter | None = None
    area_code: str | None = None
    tag: str | None = None

    def matches(self, trade: TradeRecord) -> bool:
        """Tell whether `trade` passes the filter."""
        return (
            (not self.states or trade.state in self.states)
            and (not self.trade_ids or trade.trade_id in self.trade_ids)
            and (self.side is None or trade.side is self.side)
            and (self.delivery is None or self.delivery.matches(trade.period_start, trade.duration))
            and (self.area_code is None or trade.area.code == self.area_code)
            and (self.tag is None or trade.tag == self.tag)
        )


@dataclass(frozen=True, slots=True)
class PublicTradeFilter:
    """Public trades matching every criterion set."""

    states: frozenset[TradeState] = frozenset()
    period_start: datetime | None = None
    duration: timedelta | None = None
    buy_area_code: str | None = None
    sell_area_code: str | None = None

    def matches(self, trade: PublicTradeRecord) -> bool:
        """Tell whether `trade` passes the filter."""
        return (
            (not self.states or trade.state in self.states)
            and (self.period_start is None or trade.period_start == self.period_start)
            and (self.duration is None or trade.duration == self.duration)
            and (self.buy_area_code is None or trade.area.code == self.buy_area_code)
            and (self.sell_area_code is None or trade.area.code == self.sell_area_code)
        )


def page(items: Sequence[_T], page_size: int, token: str) -> tuple[Sequence[_T], str, int]:
    """Return one page of `items`, the next page's token ("" when last) and the total.

    A token is the offset of the page's first item; `page_size` 0 means the default.

    Raises:
        MarketError: INVALID_ARGUMENT for a token no page gave out, or a negative size.
    """
    if page_size < 0:
        raise invalid(f"pagination_params.page_size: expected 0 or more, got {page_size}")
    size = min(page_size or MAX_PAGE_SIZE, MAX_PAGE_SIZE)
    offset = 0
    if token:
        if not token.isdigit() or int(token) > len(items):
            raise invalid(
                f"pagination_params.page_token: expected a token from a previous page, "
                f"got {token!r}"
            )
        offset = int(token)
    chunk = items[offset : offset + size]
    following = offset + size
    return chunk, (str(following) if following < len(items) else ""), len(items)


__all__ = [
    "MAX_PAGE_SIZE",
    "DeliveryArea",
    "DeliveryTimeFilter",
    "MarketActor",
    "Order",
    "OrderFilter",
    "OrderRecord",
    "OrderRequest",
    "OrderState",
    "PublicTradeFilter",
    "PublicTradeRecord",
    "StateReason",
    "TradeFilter",
    "TradeRecord",
    "TradeState",
    "cancel",
    "check_gridpool",
    "check_period",
    "new_record",
    "page",
    "settle",
    "show_time",
    "validate_order",
]
