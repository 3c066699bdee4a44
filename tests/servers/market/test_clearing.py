"""The uniform-price auction on hand-made books, its properties, and the price formula."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge_controller.servers.market.clearing import (
    AuctionOrder,
    Bid,
    Clearing,
    Side,
    clear,
    clear_period,
    coal_blocks,
)
from tests.servers.market.conftest import flat_market, period

BUY, SELL = Side.BUY, Side.SELL


def order(key: str, side: Side, limit: str | int, quantity: int) -> AuctionOrder[str]:
    return AuctionOrder(key, side, Decimal(limit), quantity)


# ------------------------------------------------------------------ hand-made books


def test_demand_climbs_the_supply_curve_and_the_marginal_offer_sets_the_price() -> None:
    result = clear(
        [
            order("b", BUY, 100, 10),
            order("s1", SELL, 20, 4),
            order("s2", SELL, 50, 4),
            order("s3", SELL, 80, 4),
        ]
    )
    assert result == Clearing(Decimal(80), 10, {"b": 10, "s1": 4, "s2": 4, "s3": 2})


def test_excess_supply_trades_at_the_cheapest_sellers_price() -> None:
    result = clear([order("b", BUY, 100, 4), order("s", SELL, 20, 10)])
    assert (result.price, result.volume) == (Decimal(20), 4)


def test_excess_demand_trades_at_the_price_of_the_buyer_left_out() -> None:
    result = clear([order("b1", BUY, 100, 10), order("b2", BUY, 80, 5), order("s", SELL, 20, 4)])
    assert (result.price, result.volume) == (Decimal(100), 4)
    assert result.fills == {"b1": 4, "s": 4}


def test_books_that_do_not_cross_do_not_trade() -> None:
    assert clear([order("b", BUY, 10, 5), order("s", SELL, 20, 5)]) == Clearing(None, 0, {})
    assert clear([order("b", BUY, 10, 5)]) == Clearing(None, 0, {})
    assert clear([]) == Clearing(None, 0, {})


def test_exactly_exhausted_book_clears_at_the_lowest_clearing_price() -> None:
    result = clear([order("b", BUY, 100, 4), order("s1", SELL, 20, 4), order("s2", SELL, 50, 4)])
    assert (result.price, result.volume) == (Decimal(20), 4)


def test_at_an_equal_limit_the_order_given_first_goes_first() -> None:
    result = clear([order("a", SELL, 20, 3), order("b", SELL, 20, 3), order("buy", BUY, 100, 4)])
    assert result.fills == {"a": 3, "b": 1, "buy": 4}


def test_bad_books_are_refused() -> None:
    with pytest.raises(ValueError, match="own key"):
        clear([order("a", SELL, 20, 3), order("a", BUY, 30, 3)])
    with pytest.raises(ValueError, match="negative"):
        clear([order("a", SELL, 20, -1)])


# ------------------------------------------------------------------ properties

prices = st.integers(min_value=-5000, max_value=5000).map(lambda cents: Decimal(cents) / 100)
books = st.lists(
    st.tuples(st.sampled_from([BUY, SELL]), prices, st.integers(min_value=0, max_value=60)),
    max_size=25,
).map(lambda rows: [AuctionOrder(i, side, limit, qty) for i, (side, limit, qty) in enumerate(rows)])


def demand_at(book: list[AuctionOrder[int]], price: Decimal) -> int:
    return sum(o.quantity for o in book if o.side is BUY and o.limit >= price)


def supply_at(book: list[AuctionOrder[int]], price: Decimal) -> int:
    return sum(o.quantity for o in book if o.side is SELL and o.limit <= price)


@given(books)
def test_clearing_is_a_uniform_price_equilibrium(book: list[AuctionOrder[int]]) -> None:
    result = clear(book)
    if result.price is None:
        assert result.volume == 0
        assert result.fills == {}
        return
    price = result.price
    bought = sum(q for k, q in result.fills.items() if book[k].side is BUY)
    sold = sum(q for k, q in result.fills.items() if book[k].side is SELL)
    assert bought == sold == result.volume > 0
    assert result.volume <= min(supply_at(book, price), demand_at(book, price))
    for o in book:
        filled = result.fills.get(o.key, 0)
        assert 0 <= filled <= o.quantity
        if filled:  # no buyer pays more than its limit, no seller gets less than its limit
            assert (o.limit >= price) if o.side is BUY else (o.limit <= price)
        better = o.limit > price if o.side is BUY else o.limit < price
        if better:  # everyone strictly better than the price is served completely
            assert filled == o.quantity


@given(books)
def test_clearing_trades_the_largest_volume_any_price_could(book: list[AuctionOrder[int]]) -> None:
    result = clear(book)
    for candidate in {o.limit for o in book}:
        assert min(supply_at(book, candidate), demand_at(book, candidate)) <= result.volume


# ------------------------------------------------------------------ the members' book


def test_coal_blocks_split_the_capacity_exactly_and_climb_to_full_load_cost() -> None:
    blocks = coal_blocks(flat_market(tranches=3), 1000)
    assert blocks == [(334, Decimal("100.00")), (333, Decimal("140.00")), (333, Decimal("180.00"))]


@pytest.mark.parametrize(
    ("demand_mw", "surplus_mw", "price"),
    [
        (0.8, 1.0, "0"),  # wind covers demand: renewable price
        (0.5, 0.0, "90.00"),  # coal a quarter loaded: 60 + 120 · 1/4
        (2.0, 0.0, "120.00"),  # half loaded: 60 + 120 · 2/4
        (2.5, 1.0, "120.00"),  # residual 1.5 MW: 60 + 120 · ⌈1.5⌉/4
        (4.0, 0.0, "180.00"),  # full load
        (4.5, 0.0, "500"),  # demand exceeds all supply: scarcity
    ],
)
def test_price_formula(demand_mw: float, surplus_mw: float, price: str) -> None:
    spec = flat_market()
    outcome = clear_period(spec, period(spec, demand_mw, surplus_mw=surplus_mw), [])
    assert outcome.record.price == Decimal(price)
    assert outcome.fills_kw == {}


def test_price_rises_when_demand_exceeds_supply() -> None:
    spec = flat_market()
    prices = [
        clear_period(spec, period(spec, demand / 10, surplus_mw=1.0), []).record.price
        for demand in range(0, 80)
    ]
    assert prices == sorted(prices)
    assert prices[5] == Decimal(0)  # 0.5 MW < 1 MW of wind
    assert prices[-1] == Decimal(500)  # 7.9 MW > 1 MW wind + 4 MW coal


def test_with_the_coal_plant_off_any_residual_demand_costs_the_scarcity_price() -> None:
    spec = flat_market(coal_on=False)
    record = clear_period(spec, period(spec, 1.2, surplus_mw=1.0), []).record
    assert (record.price, record.reserve_mw, record.coal_mw) == (Decimal(500), 0.2, 0.0)


def test_our_sell_below_the_price_is_filled_at_the_clearing_price_and_above_it_not() -> None:
    spec = flat_market()
    situation = period(spec, 2.0)
    cheap = clear_period(spec, situation, [Bid(1, SELL, Decimal(100), 500)])
    assert cheap.fills_kw == {1: 500}
    assert cheap.record.price == Decimal("120.00")  # residual 1.5 MW still sets coal's block 2
    assert cheap.record.participants_sold_mw == 0.5
    assert cheap.record.coal_mw == pytest.approx(1.5)

    dear = clear_period(spec, situation, [Bid(1, SELL, Decimal(130), 500)])
    assert dear.fills_kw == {}
    assert dear.record.price == Decimal("120.00")


def test_a_large_cheap_sell_pushes_the_price_down() -> None:
    spec = flat_market()
    outcome = clear_period(spec, period(spec, 2.0), [Bid(1, SELL, Decimal(70), 1600)])
    assert outcome.fills_kw == {1: 1600}
    assert outcome.record.price == Decimal("90.00")  # residual 0.4 MW: block 1


def test_our_buy_is_filled_only_when_its_limit_reaches_the_price() -> None:
    spec = flat_market()
    situation = period(spec, 1.0)  # price 90 without us
    low = clear_period(spec, situation, [Bid(7, BUY, Decimal(80), 300)])
    assert low.fills_kw == {}
    high = clear_period(spec, situation, [Bid(7, BUY, Decimal(150), 1500)])
    assert high.fills_kw == {7: 1500}
    assert high.record.price == Decimal("150.00")  # residual 2.5 MW: coal's block 3
    assert high.record.participants_bought_mw == 1.5
    partial = clear_period(spec, situation, [Bid(7, BUY, Decimal(140), 1500)])
    assert partial.fills_kw == {7: 1000}  # block 2 (120) fills it, block 3 (150) is too dear
    assert partial.record.price == Decimal(140)  # the buyer left out sets the price


def test_a_period_record_balances_and_counts_carbon() -> None:
    spec = flat_market()
    record = clear_period(spec, period(spec, 2.0, surplus_mw=0.5), []).record
    assert record.demand_mw == pytest.approx(2.0)
    assert record.production_mw == pytest.approx(2.0)
    assert record.coal_mw == pytest.approx(1.5)
    assert record.volume_mw == pytest.approx(2.0)
    assert record.carbon_kg == pytest.approx(1.5 * 0.25 * 900)  # MW · h · kg/MWh
