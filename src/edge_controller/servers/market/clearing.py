"""Uniform-price clearing at gate closure: the members' bids and offers plus our orders.

**The auction** (`clear`). Every order is a limit order: a buy of q at limit L takes any
price ≤ L, a sell of q at limit L any price ≥ L. Buys are matched best-first (highest
limit) against sells best-first (lowest limit) while the buy's limit is at least the
sell's; at equal limits the order given first goes first (our orders are given before
the members', so they have priority at an equal price). This matches the largest
possible volume. Everyone trades at one price: the lowest price that clears,

    price = max(limit of the last matched sell, limit of the best buy left unfilled)

so no buyer pays more than its limit, no seller gets less than its limit, every buy
above the price and every sell below it is filled completely, and at most one order on
each side (the one at the price) is filled partly. Quantities are whole units (the
market uses kW), so every sum is exact.

**The members' book** (`member_orders`), for one period with the demand and supply of
`model.situation`:

- consumers and prosumers short of energy buy their demand D at the price cap
  (9999 EUR/MWh: at any price);
- prosumers offer their surplus S at `renewable_price` (default 0 EUR/MWh);
- the coal plant offers its available capacity C = max_production × ratio (0 when off)
  in N equal blocks (`coal_tranches`, default 20), block k = 1…N at
  c0 + (c1 − c0) · k / N, with c0 = `marginal_cost` and c1 = `full_load_cost`;
- the manager's reserve offers whatever else is needed at `scarcity_price`.

**The price formula** that follows, without our orders (residual demand R = D − S, the
coal plant's load u = R / C):

    price = renewable_price                      if R ≤ 0      (wind covers demand)
          = c0 + (c1 − c0) · ⌈N · u⌉ / N          if 0 < u ≤ 1  (coal sets the price)
          = scarcity_price                       if u > 1      (demand exceeds supply)

so the price rises as demand grows past the free wind supply, climbs the coal plant's
cost curve as it loads up, and jumps to the scarcity price when demand exceeds all
supply. Defaults: 0 / 60 → 180 / 500 EUR/MWh. Our orders enter the same book: a sell at
limit L adds to S at every price ≥ L (lowering R, so the price can only fall), a buy at
limit L adds to D at every price ≤ L. A sell with a limit below the resulting price is
filled completely at that price; one above it is not filled.

When nothing trades (no demand at all), the period's price is the cheapest offer.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from enum import Enum
from typing import Generic, TypeVar

from edge_controller.servers.market.model import MarketSpec, Situation

K = TypeVar("K", bound=Hashable)
K_co = TypeVar("K_co", bound=Hashable, covariant=True)
CENT = Decimal("0.01")
KW_PER_MW = 1000


class Side(Enum):
    """The side of an order: buying or selling energy."""

    BUY = "BUY"
    SELL = "SELL"


@dataclass(frozen=True, slots=True)
class AuctionOrder(Generic[K_co]):
    """One limit order in the auction: `quantity` whole units at `limit` or better."""

    key: K_co
    side: Side
    limit: Decimal
    quantity: int


@dataclass(frozen=True, slots=True)
class Clearing(Generic[K]):
    """The result: one price, the volume traded, and each order's filled units.

    `price` is None when nothing trades. `fills` holds only orders filled at all.
    """

    price: Decimal | None
    volume: int
    fills: Mapping[K, int]


def clear(orders: Iterable[AuctionOrder[K]]) -> Clearing[K]:
    """Clear a book of limit orders at one uniform price (see the module docstring).

    Orders of quantity 0 are ignored.

    Raises:
        ValueError: a negative quantity, or two orders with the same key.
    """
    book = list(orders)
    keys = [order.key for order in book]
    if len(set(keys)) != len(keys):
        raise ValueError("clear: every order needs its own key")
    for order in book:
        if order.quantity < 0:
            raise ValueError(f"clear: order {order.key!r} has a negative quantity")
    # sorted() is stable: at an equal limit, the order given first keeps its priority.
    buys = sorted((o for o in book if o.side is Side.BUY and o.quantity), key=lambda o: -o.limit)
    sells = sorted((o for o in book if o.side is Side.SELL and o.quantity), key=lambda o: o.limit)
    fills: dict[K, int] = {}
    volume = 0
    b = s = 0
    buy_left = buys[0].quantity if buys else 0
    sell_left = sells[0].quantity if sells else 0
    last_sell_limit: Decimal | None = None
    while b < len(buys) and s < len(sells) and buys[b].limit >= sells[s].limit:
        matched = min(buy_left, sell_left)
        fills[buys[b].key] = fills.get(buys[b].key, 0) + matched
        fills[sells[s].key] = fills.get(sells[s].key, 0) + matched
        volume += matched
        last_sell_limit = sells[s].limit
        buy_left -= matched
        sell_left -= matched
        if buy_left == 0:
            b += 1
            buy_left = buys[b].quantity if b < len(buys) else 0
        if sell_left == 0:
            s += 1
            sell_left = sells[s].quantity if s < len(sells) else 0
    if last_sell_limit is None:
        return Clearing(price=None, volume=0, fills={})
    price = last_sell_limit
    if b < len(buys):
        price = max(price, buys[b].limit)
    return Clearing(price=price, volume=volume, fills=fills)


@dataclass(frozen=True, slots=True)
class Bid:
    """A participant's (our) order as the auction sees it: side, limit, whole kW."""

    order_id: int
    side: Side
    limit: Decimal
    quantity_kw: int


@dataclass(frozen=True, slots=True)
class PeriodRecord:
    """What happened in one delivery period (MW are averages over the period).

    Balance: production − battery charge + battery discharge = demand (within rounding
    to whole kW).
    """

    start: datetime
    duration: timedelta
    price: Decimal
    """The clearing price, EUR/MWh."""
    volume_mw: float
    """Energy traded on the market (as average power)."""
    demand_mw: float
    """All consumption: consumers, prosumers' own load, and participants' buys."""
    production_mw: float
    """All generation used: turbines (less curtailment), coal, reserve, participants' sells."""
    coal_mw: float
    reserve_mw: float
    """Supplied by the manager's reserve at the scarcity price (demand beyond supply)."""
    curtailed_mw: float
    """Prosumers' surplus nobody bought."""
    wind_speed_m_s: float
    battery_charge_mw: float
    battery_discharge_mw: float
    participants_bought_mw: float
    participants_sold_mw: float
    carbon_kg: float
    """CO2 of the coal plant's output in this period."""


@dataclass(frozen=True, slots=True)
class PeriodOutcome:
    """One period cleared: the record and each participant order's filled kW."""

    record: PeriodRecord
    fills_kw: Mapping[int, int]
    """Order id → filled kW; orders not filled at all are absent."""


def to_kw(mw: float) -> int:
    """Round an average power in MW to whole kW."""
    return round(mw * KW_PER_MW)


def coal_blocks(spec: MarketSpec, available_kw: int) -> list[tuple[int, Decimal]]:
    """Return the coal plant's offer blocks (kW, EUR/MWh), cheapest first."""
    tranches = spec.pricing.coal_tranches
    low, high = spec.manager.marginal_cost, spec.manager.full_load_cost
    base, extra = divmod(available_kw, tranches)
    blocks = []
    for k in range(1, tranches + 1):
        size = base + (1 if k <= extra else 0)
        if size > 0:
            price = (low + (high - low) * k / tranches).quantize(CENT, ROUND_HALF_UP)
            blocks.append((size, price))
    return blocks


def member_orders(
    spec: MarketSpec, period: Situation, participant_buy_kw: int
) -> list[AuctionOrder[str]]:
    """Return the members' bids and offers for one period (see the module docstring).

    The reserve offers enough to cover every buy, participants' included.
    """
    rules, pricing = spec.rules, spec.pricing
    consumers_kw = to_kw(period.consumer_demand_mw)
    shortfall_kw = to_kw(period.shortfall_mw)
    orders = [
        AuctionOrder("consumers", Side.BUY, rules.max_price, consumers_kw),
        AuctionOrder("prosumers:shortfall", Side.BUY, rules.max_price, shortfall_kw),
        AuctionOrder(
            "prosumers:surplus", Side.SELL, pricing.renewable_price, to_kw(period.surplus_mw)
        ),
    ]
    for index, (size, price) in enumerate(coal_blocks(spec, to_kw(period.coal_available_mw))):
        orders.append(AuctionOrder(f"coal:{index}", Side.SELL, price, size))
    reserve_kw = consumers_kw + shortfall_kw + participant_buy_kw
    orders.append(AuctionOrder("reserve", Side.SELL, pricing.scarcity_price, reserve_kw))
    return orders


def clear_period(spec: MarketSpec, period: Situation, bids: Sequence[Bid]) -> PeriodOutcome:
    """Clear one period: the members' book plus the participants' `bids`.

    Participants' bids go first, so they have priority over members at an equal limit.
    """
    participants: list[AuctionOrder[int | str]] = [
        AuctionOrder(bid.order_id, bid.side, bid.limit, bid.quantity_kw) for bid in bids
    ]
    participant_buy_kw = sum(b.quantity_kw for b in bids if b.side is Side.BUY)
    members = member_orders(spec, period, participant_buy_kw)
    book: list[AuctionOrder[int | str]] = [*participants, *members]
    result = clear(book)
    fills = result.fills

    def filled_mw(key: int | str) -> float:
        return fills.get(key, 0) / KW_PER_MW

    coal_mw = sum(filled_mw(o.key) for o in members if o.key.startswith("coal:"))
    reserve_mw = filled_mw("reserve")
    curtailed_mw = to_kw(period.surplus_mw) / KW_PER_MW - filled_mw("prosumers:surplus")
    bought_mw = sum(filled_mw(b.order_id) for b in bids if b.side is Side.BUY)
    sold_mw = sum(filled_mw(b.order_id) for b in bids if b.side is Side.SELL)
    price = result.price
    if price is None:
        offers = [o.limit for o in members if o.side is Side.SELL and o.quantity > 0]
        price = min(offers, default=spec.pricing.renewable_price)
    hours = period.duration.total_seconds() / 3600
    record = PeriodRecord(
        start=period.start,
        duration=period.duration,
        price=price,
        volume_mw=result.volume / KW_PER_MW,
        demand_mw=period.consumer_demand_mw + period.prosumer_load_mw + bought_mw,
        production_mw=period.turbine_mw - curtailed_mw + coal_mw + reserve_mw + sold_mw,
        coal_mw=coal_mw,
        reserve_mw=reserve_mw,
        curtailed_mw=curtailed_mw,
        wind_speed_m_s=period.wind_speed_m_s,
        battery_charge_mw=period.battery_charge_mw,
        battery_discharge_mw=period.battery_discharge_mw,
        participants_bought_mw=bought_mw,
        participants_sold_mw=sold_mw,
        carbon_kg=coal_mw * hours * spec.manager.carbon_intensity_kg_per_mwh,
    )
    participant_fills = {b.order_id: fills[b.order_id] for b in bids if b.order_id in fills}
    return PeriodOutcome(record=record, fills_kw=participant_fills)


__all__ = [
    "AuctionOrder",
    "Bid",
    "Clearing",
    "PeriodOutcome",
    "PeriodRecord",
    "Side",
    "clear",
    "clear_period",
    "coal_blocks",
    "member_orders",
    "to_kw",
]
