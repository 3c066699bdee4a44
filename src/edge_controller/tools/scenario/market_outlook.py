"""What the market model expects, seen from our side: prices without us, responses with us.

The scenario bids on the same market model that clears (`servers.market`), run on the
forecast weather instead of the actual one: `expected_prices` clears each coming
period without an order of ours, `expected_responses` with one of 0…`lots` lots in it
(what the optimizer's price response reads). The members' batteries roll forward
from the market's present state, period by period, as they will when it clears.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from functools import lru_cache

from edge_controller.servers.market import clearing
from edge_controller.servers.market.model import (
    MarketSpec,
    MarketState,
    Situation,
    Weather,
    situation,
)
from edge_controller.tools.scenario.setup import Setup
from edge_controller.trading.bids import Side
from edge_controller.trading.price_response import PriceResponse


def expected_prices(
    market: MarketSpec, state: MarketState, first: datetime, last: datetime, weather: Weather
) -> dict[datetime, float]:
    """Return the clearing price the market model expects for each period first..last.

    The members' batteries roll forward from `state` (the state before `first`); our
    own orders are left out (the price without us).
    """
    prices: dict[datetime, float] = {}
    start = first
    while start <= last:
        period = situation(market, state, start, weather)
        prices[start] = float(clearing.clear_period(market, period, []).record.price)
        state = period.next_state
        start += market.rules.period
    return prices


def expected_responses(
    market: MarketSpec,
    state: MarketState,
    first: datetime,
    last: datetime,
    weather: Weather,
    lots: int,
) -> dict[datetime, PriceResponse]:
    """Return how each period first..last would clear with our sell or buy of 0…`lots` lots.

    The members' book of the market model on `weather` (their batteries rolled forward
    from `state`, as in `expected_prices`), cleared with one order of ours in it: a sell
    at the renewable price (the lowest any member offers, so it is matched before the
    coal plant and takes the price the rest of the stack sets) or a buy at the price cap.
    Index 0 is the price without us (`expected_prices`).
    """
    responses: dict[datetime, PriceResponse] = {}
    start = first
    while start <= last:
        period = situation(market, state, start, weather)
        responses[start] = _book_response(
            market,
            clearing.to_kw(period.consumer_demand_mw),
            clearing.to_kw(period.shortfall_mw),
            clearing.to_kw(period.surplus_mw),
            clearing.to_kw(period.coal_available_mw),
            max(0, lots),
        )
        state = period.next_state
        start += market.rules.period
    return responses


@lru_cache(maxsize=1 << 16)
def _book_response(
    market: MarketSpec,
    consumers_kw: int,
    shortfall_kw: int,
    surplus_kw: int,
    coal_kw: int,
    lots: int,
) -> PriceResponse:
    """The response of one period's book, which depends only on these four whole-kW figures.

    (`clearing.member_orders` reads nothing else of the period.) A round asks for the
    same books again and again: 96 periods × 96 rounds a day, most of them unchanged.
    """
    period = Situation(
        start=datetime(2000, 1, 1, tzinfo=UTC),
        duration=market.rules.period,
        wind_speed_m_s=0.0,
        consumer_demand_mw=consumers_kw / clearing.KW_PER_MW,
        prosumer_load_mw=0.0,
        turbine_mw=0.0,
        battery_charge_mw=0.0,
        battery_discharge_mw=0.0,
        surplus_mw=surplus_kw / clearing.KW_PER_MW,
        shortfall_mw=shortfall_kw / clearing.KW_PER_MW,
        coal_available_mw=coal_kw / clearing.KW_PER_MW,
        next_state=MarketState(()),
    )
    lot_kw = round(float(market.rules.lot_mw) * clearing.KW_PER_MW)
    sell_limit, buy_limit = market.pricing.renewable_price, market.rules.max_price
    tables: list[tuple[tuple[float, ...], tuple[float, ...]]] = []
    for side, limit in ((clearing.Side.SELL, sell_limit), (clearing.Side.BUY, buy_limit)):
        prices: list[float] = []
        filled: list[float] = []
        for k in range(lots + 1):
            bids = [clearing.Bid(1, side, limit, k * lot_kw)] if k else []
            outcome = clearing.clear_period(market, period, bids)
            prices.append(float(outcome.record.price))
            filled.append(outcome.fills_kw.get(1, 0) / clearing.KW_PER_MW)
        tables.append((tuple(prices), tuple(filled)))
    (sell_price, sell_filled), (buy_price, buy_filled) = tables
    return PriceResponse(float(market.rules.lot_mw), sell_price, sell_filled, buy_price, buy_filled)


def response_lots(setup: Setup) -> int:
    """How many lots a price response covers: the largest order (`max_volume`)."""
    lot = float(setup.market.rules.lot_mw)
    return max(1, math.floor(setup.scenario.spec.strategy.max_volume_mw / lot + 1e-9))


def market_side(side: Side) -> clearing.Side:
    """Our order's side (`trading.bids`) as the market's clearing names it."""
    return clearing.Side.BUY if side is Side.BUY else clearing.Side.SELL


__all__ = ["expected_prices", "expected_responses", "market_side", "response_lots"]
