from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal

import pytest
from frequenz.client.electricity_trading import OrderState
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_controller.trading.bids import Side
from edge_controller.trading.optimizer import Committed
from edge_controller.use_cases.market_bid.decide import (
    ACTIVE,
    FORGET_AFTER,
    CreateDispatch,
    DeleteDispatch,
    DispatchChange,
    PeriodDispatch,
    PlacedOrder,
    TradedPeriod,
    UpdateDispatch,
    committed,
    dispatch_change,
    forgotten,
    new_dispatch,
    side_power_w,
)
from tests.properties import examples
from tests.table import START, Step, run_table

KW = 1000.0
QUARTER = timedelta(minutes=15)
PERIOD = START + timedelta(minutes=15)
"""The delivery period the table trades, a quarter after the table's clock starts."""


def order(side: Side = Side.SELL, open_mw: str = "1.0", state: str = ACTIVE) -> PlacedOrder:
    return PlacedOrder(7, side, Decimal("1.0"), Decimal("90"), state, Decimal(open_mw))


def test_a_sell_discharges_and_a_buy_charges() -> None:
    assert side_power_w(Side.SELL, Decimal("1.5")) == -1_500_000.0
    assert side_power_w(Side.BUY, Decimal("0.2")) == 200_000.0
    assert order(Side.SELL, "0.3").open_power_w == -300_000.0


def test_a_fill_leaves_less_open_and_never_less_than_nothing() -> None:
    assert order(open_mw="1.0").filled(Decimal("0.4")).open_mw == Decimal("0.6")
    assert order(open_mw="0.2").filled(Decimal("0.4")).open_mw == Decimal(0)


def test_a_trade_delivered_by_the_stream_and_a_listing_counts_once() -> None:
    period = TradedPeriod(QUARTER)
    assert period.count_trade(1, -1_000_000.0)
    assert not period.count_trade(1, -1_000_000.0)
    assert period.count_trade(2, 400_000.0)
    assert period.traded_w == -600_000.0


@settings(max_examples=examples(500), deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(1, 8), st.sampled_from([Side.SELL, Side.BUY]), st.integers(1, 20)),
        max_size=30,
    )
)
def test_a_periods_power_is_the_sum_of_its_distinct_trades(
    deliveries: list[tuple[int, Side, int]],
) -> None:
    """Trades arrive in any order and any number of times; each id stands for one trade."""
    trades = {trade_id: (side, tenths) for trade_id, side, tenths in reversed(deliveries)}
    period = TradedPeriod(QUARTER)
    for trade_id, _side, _tenths in deliveries:
        side, tenths = trades[trade_id]
        period.count_trade(trade_id, side_power_w(side, Decimal(tenths) / 10))
    expected = sum(side_power_w(side, Decimal(tenths) / 10) for side, tenths in trades.values())
    assert period.traded_w == pytest.approx(expected)
    assert period.trade_ids == set(trades)


@dataclass(frozen=True)
class Ledger:
    """One period's traded power and the dispatch the service holds for it, in kW."""

    traded_kw: float = 0.0
    dispatch_kw: float | None = None
    """None: no dispatch."""


def sync(ledger: Ledger, now: datetime) -> dict[str, object]:
    current = None if ledger.dispatch_kw is None else PeriodDispatch(5, ledger.dispatch_kw * KW)
    change = dispatch_change(PERIOD, TradedPeriod(QUARTER, ledger.traded_kw * KW), current, now)
    return {
        "change": type(change).__name__ if change is not None else "none",
        "power_kw": getattr(change, "power_w", 0.0) / KW,
        "begins": getattr(change, "start", None),
        "duration_s": getattr(change, "duration_s", None),
        "raw": change,
    }


def service_follows(ledger: Ledger, result: dict[str, object]) -> Ledger:
    change = result["raw"]
    if isinstance(change, CreateDispatch | UpdateDispatch):
        return replace(ledger, dispatch_kw=change.power_w / KW)
    if isinstance(change, DeleteDispatch):
        return replace(ledger, dispatch_kw=None)
    return ledger


def test_a_periods_dispatch_follows_its_traded_power_until_the_period_ends() -> None:
    run_table(
        sync,
        Ledger(),
        [
            Step("nothing traded: no dispatch", expect={"change": "none"}),
            Step(
                "1 MW sold ahead: a dispatch for the whole period",
                inputs={"traded_kw": -1000},
                expect={
                    "change": "CreateDispatch",
                    "power_kw": -1000,
                    "begins": PERIOD,
                    "duration_s": 900,
                },
            ),
            Step(
                "nothing new: nothing sent", advance=timedelta(minutes=5), expect={"change": "none"}
            ),
            Step(
                "0.4 MW bought back: the dispatch changed in place",
                inputs={"traded_kw": -600},
                expect={"change": "UpdateDispatch", "power_kw": -600},
            ),
            Step(
                "the rest bought back: the dispatch deleted",
                inputs={"traded_kw": 0},
                expect={"change": "DeleteDispatch"},
            ),
            Step(
                "a sale learnt 5 min into the period: from now to its end",
                advance=timedelta(minutes=15),
                inputs={"traded_kw": -200},
                expect={
                    "change": "CreateDispatch",
                    "power_kw": -200,
                    "begins": "NOW",
                    "duration_s": 600,
                },
            ),
            Step(
                "the period is over: a later trade changes nothing",
                advance=timedelta(minutes=10),
                inputs={"traded_kw": -300},
                expect={"change": "none"},
            ),
        ],
        carry=service_follows,
    )


def test_a_dispatch_the_service_lost_is_created_for_what_is_left_of_its_period() -> None:
    period = TradedPeriod(QUARTER, traded_w=-500_000.0)
    change: DispatchChange | None = dispatch_change(
        PERIOD, period, PeriodDispatch(5, -1_000_000.0), PERIOD + timedelta(minutes=10)
    )
    assert change == UpdateDispatch(5, -500_000.0, was_w=-1_000_000.0)
    # The update found no dispatch: the actor creates one instead.
    assert new_dispatch(PERIOD, period, PERIOD + timedelta(minutes=10)) == CreateDispatch(
        -500_000.0, "NOW", 300
    )


def test_no_dispatch_is_created_for_less_than_a_second_or_for_nothing() -> None:
    sold = TradedPeriod(QUARTER, traded_w=-500_000.0)
    assert new_dispatch(PERIOD, sold, PERIOD + QUARTER - timedelta(seconds=0.5)) is None
    assert new_dispatch(PERIOD, sold, PERIOD + QUARTER - timedelta(seconds=1)) == CreateDispatch(
        -500_000.0, "NOW", 1
    )
    assert new_dispatch(PERIOD, TradedPeriod(QUARTER), PERIOD) is None


def test_committed_counts_trades_and_open_orders_and_fixes_a_cancelled_orders_period() -> None:
    later = PERIOD + QUARTER
    cancelled = PERIOD + 2 * QUARTER
    periods = {PERIOD: TradedPeriod(QUARTER, traded_w=-300_000.0)}
    orders = {
        PERIOD: order(Side.SELL, open_mw="0.7"),
        later: order(Side.BUY, open_mw="0.5"),
        cancelled: order(Side.SELL, open_mw="1.0", state=OrderState.CANCELED.name),
    }
    assert committed(periods, orders, QUARTER) == [
        Committed(PERIOD, QUARTER, traded_w=-300_000.0, open_w=-700_000.0),
        Committed(later, QUARTER, traded_w=0.0, open_w=500_000.0),
        Committed(cancelled, QUARTER, traded_w=0.0, open_w=0.0),
    ]


def test_active_is_the_trading_clients_name_for_an_order_that_may_fill() -> None:
    assert OrderState.ACTIVE.name == ACTIVE


def test_a_period_is_forgotten_only_an_hour_after_it_ended() -> None:
    periods = {PERIOD: TradedPeriod(QUARTER), PERIOD + QUARTER: TradedPeriod(QUARTER)}
    orders = {PERIOD: order(), PERIOD + QUARTER: order()}
    end = PERIOD + QUARTER
    at_the_hour = forgotten(periods, orders, end + FORGET_AFTER, QUARTER)
    assert at_the_hour.periods == ()
    assert at_the_hour.orders == ()
    just_after = forgotten(periods, orders, end + FORGET_AFTER + timedelta(seconds=1), QUARTER)
    assert just_after.periods == (PERIOD,)
    assert just_after.orders == (PERIOD,)
