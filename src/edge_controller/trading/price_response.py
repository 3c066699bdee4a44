"""How the clearing price answers our own volume in one period, as an LP can use it. Pure.

A uniform-price auction pays every seller the marginal offer's price. In a small
market our volume *is* marginal: selling 0.5 MW displaces the top 0.5 MW of the
supply stack, so the price falls (the shipped market: about 6 EUR/MWh per 0.2 MW coal
block, 15 EUR/MWh for 0.5 MW); buying climbs it. A plan that takes the price without us
as given overstates every trade, and an order whose limit is that price does not fill
(it becomes the marginal offer and fills only the sliver the curve leaves it).

`PriceResponse` holds, for one period, what a sell (or a buy) of k lots would clear at
and how much of it fills, for k = 0 … K (from the expected supply and demand curves:
the market model's book, cleared with our order in it). The plan needs the money:
revenue R(q) = filled(q) · price(q) for a sell, cost C(q) for a buy. Their *concave*
(resp. convex) hull, cut into segments of falling marginal revenue (rising marginal
cost), is a linear program's way to say "each further MW earns less":

    revenue(q) ≈ Σ_j  marginal_j · x_j,   0 ≤ x_j ≤ width_j,   q = Σ_j x_j

A maximiser fills the best segment first, so no integer variables are needed. At a
hull vertex (a whole number of lots on the hull) the figure is exact; between vertices
it is the chord, which is optimistic where the curve has a step (the scarcity price
falling to the coal plant's when our sell covers the gap).

A period without a response is *price-taking*: one segment, unbounded, at the
expected price (the trading actor's case: it has no book to read).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Segment:
    """`width_mw` of volume at `marginal_eur_per_mwh` (revenue or cost per MWh of it)."""

    width_mw: float
    marginal_eur_per_mwh: float


@dataclass(frozen=True, slots=True)
class PriceResponse:
    """What our sell or buy of k lots (k = 0 … K) would clear at and fill, in one period.

    `sell_price[k]` is the clearing price with our sell of k · `lot_mw` in the book (at
    any price), `sell_filled_mw[k]` how much of it fills; the same for buys. Index 0 is
    the market without us.
    """

    lot_mw: float
    sell_price: tuple[float, ...]
    sell_filled_mw: tuple[float, ...]
    buy_price: tuple[float, ...]
    buy_filled_mw: tuple[float, ...]

    def __post_init__(self) -> None:
        """Check that every table has a value for 0 lots and the same length per side."""
        if not (self.lot_mw > 0 and math.isfinite(self.lot_mw)):
            raise ValueError(f"lot_mw: expected > 0, got {self.lot_mw}")
        if not self.sell_price or len(self.sell_price) != len(self.sell_filled_mw):
            raise ValueError("sell_price and sell_filled_mw: expected the same length, ≥ 1")
        if not self.buy_price or len(self.buy_price) != len(self.buy_filled_mw):
            raise ValueError("buy_price and buy_filled_mw: expected the same length, ≥ 1")

    @property
    def price_without_us(self) -> float:
        """The clearing price of the period without an order of ours (EUR/MWh)."""
        return self.sell_price[0]

    def sell_segments(self) -> tuple[Segment, ...]:
        """Revenue's concave hull as segments of falling marginal revenue (EUR/MWh)."""
        revenue = [f * p for f, p in zip(self.sell_filled_mw, self.sell_price, strict=True)]
        return _hull(self.lot_mw, revenue, concave=True)

    def buy_segments(self) -> tuple[Segment, ...]:
        """Cost's convex hull as segments of rising marginal cost (EUR/MWh)."""
        cost = [f * p for f, p in zip(self.buy_filled_mw, self.buy_price, strict=True)]
        return _hull(self.lot_mw, cost, concave=False)

    def sell_price_at(self, quantity_mw: float) -> float:
        """The clearing price expected with our sell of `quantity_mw` (whole lots, floored)."""
        return self.sell_price[self._index(quantity_mw, len(self.sell_price))]

    def buy_price_at(self, quantity_mw: float) -> float:
        """The clearing price expected with our buy of `quantity_mw` (whole lots, floored)."""
        return self.buy_price[self._index(quantity_mw, len(self.buy_price))]

    def _index(self, quantity_mw: float, size: int) -> int:
        lots = math.floor(max(0.0, quantity_mw) / self.lot_mw + 1e-6)
        return min(size - 1, lots)


def _hull(lot_mw: float, money: Sequence[float], *, concave: bool) -> tuple[Segment, ...]:
    """The upper (concave) or lower (convex) hull of money(k · lot) as segments.

    A monotone chain over the points k = 0 … K: a point is kept only while the slopes
    keep falling (concave) or rising (convex).
    """
    sign = 1.0 if concave else -1.0
    hull: list[int] = [0]
    for k in range(1, len(money)):
        while len(hull) >= 2:
            a, b = hull[-2], hull[-1]
            slope_ab = (money[b] - money[a]) / (b - a)
            slope_bk = (money[k] - money[b]) / (k - b)
            if sign * slope_bk >= sign * slope_ab:
                hull.pop()
            else:
                break
        hull.append(k)
    return tuple(
        Segment((b - a) * lot_mw, (money[b] - money[a]) / ((b - a) * lot_mw))
        for a, b in itertools.pairwise(hull)
    )


__all__ = ["PriceResponse", "Segment"]
