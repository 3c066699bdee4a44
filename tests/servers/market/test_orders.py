"""Order validation, cancellation, settlement, filters and pages (pure)."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from decimal import Decimal

import pytest

from edge_controller.servers.market.clearing import Side
from edge_controller.servers.market.errors import ErrorKind, MarketError
from edge_controller.servers.market.model import MarketRules
from edge_controller.servers.market.orders import (
    DeliveryArea,
    DeliveryTimeFilter,
    MarketActor,
    OrderFilter,
    OrderRequest,
    OrderState,
    StateReason,
    cancel,
    check_gridpool,
    new_record,
    page,
    settle,
    validate_order,
)
from edge_controller.trading.periods import first_open_period, is_period_start, period_floor
from tests.servers.market.conftest import AREA, NOON

RULES = MarketRules()
START = NOON + timedelta(minutes=30)  # gate closes 12:25, now is 12:00


def request(**changes: object) -> OrderRequest:
    """A valid SELL of 0.5 MW at 42 EUR/MWh for 12:30–12:45 UTC."""
    base = OrderRequest(
        area=DeliveryArea(AREA),
        period_start=START,
        duration=timedelta(minutes=15),
        duration_name="DELIVERY_DURATION_15",
        order_type="ORDER_TYPE_LIMIT",
        side=Side.SELL,
        side_name="MARKET_SIDE_SELL",
        price_amount="42",
        currency="EUR",
        quantity_mw="0.5",
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def test_a_valid_order() -> None:
    order = validate_order(request(tag="bid-1"), RULES, NOON)
    assert (order.side, order.price, order.quantity_mw, order.quantity_kw) == (
        Side.SELL,
        Decimal(42),
        Decimal("0.5"),
        500,
    )
    assert order.tag == "bid-1"


@pytest.mark.parametrize(
    ("changes", "kind", "message"),
    [
        ({"quantity_mw": "-1"}, "INVALID_ARGUMENT", r"^order.quantity.mw: expected a positive"),
        ({"quantity_mw": "0"}, "INVALID_ARGUMENT", r"^order.quantity.mw: expected a positive"),
        ({"quantity_mw": "0.25"}, "INVALID_ARGUMENT", r"multiple of 0.1 MW.*got 0.25$"),
        ({"quantity_mw": "0.05"}, "INVALID_ARGUMENT", r"multiple of 0.1 MW.*got 0.05$"),
        ({"quantity_mw": "5000"}, "INVALID_ARGUMENT", r"at most 1000 MW, got 5000$"),
        ({"quantity_mw": "lots"}, "INVALID_ARGUMENT", r"^order.quantity.mw: expected a decimal"),
        ({"quantity_mw": None}, "INVALID_ARGUMENT", r"^order.quantity: missing"),
        ({"price_amount": "10000"}, "INVALID_ARGUMENT", r"amount: expected -9999 to 9999 EUR/MWh"),
        ({"price_amount": "-9999.5"}, "INVALID_ARGUMENT", r"expected -9999 to 9999"),
        ({"price_amount": "1.234"}, "INVALID_ARGUMENT", r"at most 2 decimal places"),
        ({"price_amount": "NaN"}, "INVALID_ARGUMENT", r"amount: expected a finite decimal"),
        ({"price_amount": None}, "INVALID_ARGUMENT", r"^order.price: missing"),
        ({"currency": "USD"}, "INVALID_ARGUMENT", r"currency: .*CURRENCY_EUR, got CURRENCY_USD"),
        (
            {"duration": timedelta(hours=1), "duration_name": "DELIVERY_DURATION_60"},
            "INVALID_ARGUMENT",
            r"duration: this market trades DELIVERY_DURATION_15 .*got DELIVERY_DURATION_60$",
        ),
        (
            {"period_start": START + timedelta(minutes=7)},
            "INVALID_ARGUMENT",
            r"start: expected the start of a 15-minute period .*got 2026-06-21T12:37:00Z$",
        ),
        (
            {"period_start": NOON},
            "INVALID_ARGUMENT",
            r"start: the delivery period starting 2026-06-21T12:00:00Z has already begun",
        ),
        (
            {"period_start": NOON + timedelta(days=3)},
            "INVALID_ARGUMENT",
            r"beyond the trading horizon of 48 h",
        ),
        ({"period_start": None}, "INVALID_ARGUMENT", r"^order.delivery_period: missing"),
        ({"area": None}, "INVALID_ARGUMENT", r"^order.delivery_area.code: missing"),
        ({"area": DeliveryArea(" ")}, "INVALID_ARGUMENT", r"^order.delivery_area.code: missing"),
        (
            {"order_type": "ORDER_TYPE_ICEBERG"},
            "INVALID_ARGUMENT",
            r"^order.type: only ORDER_TYPE_LIMIT .*got ORDER_TYPE_ICEBERG$",
        ),
        (
            {"side": None, "side_name": "MARKET_SIDE_UNSPECIFIED"},
            "INVALID_ARGUMENT",
            r"^order.side: expected MARKET_SIDE_BUY or MARKET_SIDE_SELL",
        ),
        ({"unsupported_fields": ("stop_price",)}, "INVALID_ARGUMENT", r"^order.stop_price: "),
        (
            {"execution_option": "ORDER_EXECUTION_OPTION_FOK"},
            "INVALID_ARGUMENT",
            r"^order.execution_option: .*ORDER_EXECUTION_OPTION_FOK is not supported",
        ),
        (
            {"valid_until": NOON - timedelta(seconds=1)},
            "INVALID_ARGUMENT",
            r"^order.valid_until: expected a time in the future",
        ),
    ],
)
def test_bad_orders_are_refused_naming_the_field(
    changes: dict[str, object], kind: str, message: str
) -> None:
    with pytest.raises(MarketError, match=message) as caught:
        validate_order(request(**changes), RULES, NOON)
    assert caught.value.kind is ErrorKind[kind]


def test_a_period_whose_gate_has_closed_is_a_failed_precondition() -> None:
    now = NOON + timedelta(minutes=11)  # 12:15 closed at 12:10
    closed = request(period_start=NOON + timedelta(minutes=15))
    with pytest.raises(MarketError) as caught:
        validate_order(closed, RULES, now)
    assert caught.value.kind is ErrorKind.FAILED_PRECONDITION
    assert caught.value.message == (
        "order.delivery_period.start: trading for the delivery period starting "
        "2026-06-21T12:15:00Z closed at 2026-06-21T12:10:00Z (gate closure: 5 minutes before "
        "delivery; now 2026-06-21T12:11:00Z); the next open period starts 2026-06-21T12:30:00Z"
    )


def test_only_listed_delivery_areas_when_the_market_names_them() -> None:
    rules = replace(RULES, delivery_areas=frozenset({AREA}))
    validate_order(request(), rules, NOON)
    with pytest.raises(MarketError, match=r"serves \['10YDE-EON------1'\], got 'ELSEWHERE'"):
        validate_order(request(area=DeliveryArea("ELSEWHERE")), rules, NOON)


def test_gridpools() -> None:
    check_gridpool(1, RULES)
    with pytest.raises(MarketError, match=r"^gridpool_id: missing") as unset:
        check_gridpool(0, RULES)
    assert unset.value.kind is ErrorKind.INVALID_ARGUMENT
    with pytest.raises(MarketError, match=r"gridpool 7 is not served .*\[1\]") as unknown:
        check_gridpool(7, RULES)
    assert unknown.value.kind is ErrorKind.NOT_FOUND


def test_period_grid() -> None:
    assert period_floor(NOON + timedelta(minutes=14, seconds=59), RULES.period) == NOON
    assert is_period_start(NOON + timedelta(minutes=45), RULES.period)
    assert not is_period_start(NOON + timedelta(minutes=5), RULES.period)
    lead = RULES.gate_closure
    assert first_open_period(NOON, RULES.period, lead) == NOON + timedelta(minutes=15)
    at_gate = NOON + timedelta(minutes=10)  # the 12:15 gate closes exactly now
    assert first_open_period(at_gate, RULES.period, lead) == NOON + timedelta(minutes=30)


def test_cancel_only_while_active_and_before_gate_closure() -> None:
    record = new_record(1, 1, validate_order(request(), RULES, NOON), NOON)
    later = NOON + timedelta(minutes=1)
    cancelled = cancel(record, RULES, later)
    assert (cancelled.state, cancelled.reason, cancelled.actor) == (
        OrderState.CANCELED,
        StateReason.DELETE,
        MarketActor.USER,
    )
    assert cancelled.modification_time == later
    assert cancelled.open_mw == 0
    with pytest.raises(MarketError, match="order 1 is CANCELED; only ACTIVE") as again:
        cancel(cancelled, RULES, later)
    assert again.value.kind is ErrorKind.FAILED_PRECONDITION
    with pytest.raises(MarketError, match=r"closed at 2026-06-21T12:25:00Z"):
        cancel(record, RULES, NOON + timedelta(minutes=25))


def test_settlement_states() -> None:
    record = new_record(1, 1, validate_order(request(quantity_mw="1.0"), RULES, NOON), NOON)
    assert record.open_mw == Decimal("1.0")
    full = settle(record, Decimal("1.0"), START)
    partial = settle(record, Decimal("0.4"), START)
    none = settle(record, Decimal(0), START)
    assert (full.state, full.reason) == (OrderState.FILLED, StateReason.FULL_EXECUTION)
    assert (partial.state, partial.reason) == (OrderState.EXPIRED, StateReason.PARTIAL_EXECUTION)
    assert (none.state, none.reason) == (OrderState.EXPIRED, StateReason.DEACTIVATE)
    assert partial.filled_mw == Decimal("0.4")
    assert partial.actor is MarketActor.SYSTEM


def test_order_filter() -> None:
    order = validate_order(request(tag="t"), RULES, NOON)
    record = new_record(3, 1, order, NOON)
    assert OrderFilter().matches(record)
    assert OrderFilter(states=frozenset({OrderState.ACTIVE}), side=Side.SELL).matches(record)
    assert not OrderFilter(states=frozenset({OrderState.FILLED})).matches(record)
    assert not OrderFilter(side=Side.BUY).matches(record)
    assert not OrderFilter(tag="other").matches(record)
    assert not OrderFilter(order_ids=frozenset({4})).matches(record)
    assert not OrderFilter(area_code="X").matches(record)
    inside = DeliveryTimeFilter(START, START + timedelta(minutes=1), frozenset({RULES.period}))
    assert OrderFilter(delivery=inside).matches(record)
    assert not OrderFilter(delivery=DeliveryTimeFilter(start_until=START)).matches(record)
    hourly = DeliveryTimeFilter(durations=frozenset({timedelta(hours=1)}))
    assert not OrderFilter(delivery=hourly).matches(record)


def test_pages() -> None:
    items = list(range(5))
    assert page(items, 2, "") == ([0, 1], "2", 5)
    assert page(items, 2, "4") == ([4], "", 5)
    assert page(items, 0, "") == (items, "", 5)
    with pytest.raises(MarketError, match=r"page_token: expected a token .*got 'x'"):
        page(items, 2, "x")
    with pytest.raises(MarketError, match=r"page_size: expected 0 or more"):
        page(items, -1, "")
