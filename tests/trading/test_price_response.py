"""Price responses: what the next MW of ours earns, as segments a linear program can use."""

from __future__ import annotations

import math

import pytest

from edge_controller.trading.price_response import PriceResponse


def stack(price: float, slope_per_lot: float, lots: int = 5) -> PriceResponse:
    """A coal-like stack: each lot we sell lowers the price, each lot we buy raises it."""
    return PriceResponse(
        0.1,
        tuple(price - slope_per_lot * k for k in range(lots + 1)),
        tuple(0.1 * k for k in range(lots + 1)),
        tuple(price + slope_per_lot * k for k in range(lots + 1)),
        tuple(0.1 * k for k in range(lots + 1)),
    )


def test_each_further_lot_sold_earns_less_than_the_price() -> None:
    response = stack(140.0, 3.0)
    marginals = [s.marginal_eur_per_mwh for s in response.sell_segments()]
    # Revenue q·(140 − 30 q): the first lot earns 137, the fifth 113 EUR/MWh.
    assert marginals == pytest.approx([137.0, 131.0, 125.0, 119.0, 113.0])
    assert math.isclose(sum(s.width_mw for s in response.sell_segments()), 0.5)
    assert response.sell_price_at(0.3) == 131.0
    assert response.price_without_us == 140.0


def test_each_further_lot_bought_costs_more() -> None:
    marginals = [s.marginal_eur_per_mwh for s in stack(90.0, 3.0).buy_segments()]
    assert marginals == pytest.approx([93.0, 99.0, 105.0, 111.0, 117.0])


def test_a_price_step_is_bridged_by_the_hull_so_segments_still_fall() -> None:
    # Scarcity: 500 EUR/MWh until our second lot closes the gap, then the coal price.
    response = PriceResponse(
        0.1,
        (500.0, 500.0, 180.0, 180.0),
        (0.0, 0.1, 0.2, 0.3),
        (500.0, 500.0, 500.0, 500.0),
        (0.0, 0.1, 0.2, 0.3),
    )
    segments = response.sell_segments()
    marginals = [s.marginal_eur_per_mwh for s in segments]
    assert marginals == sorted(marginals, reverse=True)
    assert marginals[0] == pytest.approx(500.0)
    assert math.isclose(sum(s.width_mw for s in segments), 0.3)


def test_an_unfilled_part_earns_nothing() -> None:
    # Selling past the whole demand (0.2 MW) fills 0.2 MW at the renewable price.
    response = PriceResponse(
        0.1, (60.0, 30.0, 0.0, 0.0), (0.0, 0.1, 0.2, 0.2), (60.0,) * 4, (0.0, 0.1, 0.2, 0.3)
    )
    segments = response.sell_segments()
    # The first lot earns 30 EUR/MWh; every further one loses money (its own and the
    # price it takes from the first): a maximiser stops at 0.1 MW, 3 EUR/h.
    assert segments[0].width_mw == pytest.approx(0.1)
    assert segments[0].marginal_eur_per_mwh == pytest.approx(30.0)
    assert all(s.marginal_eur_per_mwh < 0 for s in segments[1:])
