"""Building buy/sell orders for the coming delivery periods: pure, no I/O.

The strategy is plain price arbitrage with the batteries, bounded by physics:

- A period whose expected price is at least `mean + spread/2` (the mean over the
  horizon) gets a SELL order (the batteries discharge), one at most `mean − spread/2`
  a BUY order (they charge). The limit price is that threshold, so an order only fills
  when the market pays at least (or asks at most) what made it worth placing.
- Quantities are in MW, at least `min_quantity_mw` and in `step_mw` steps (the
  Frequenz trading API: 0.1 MW), always floored — never rounded up.
- **Never over-committed, whatever fills.** The energy of *all* sell orders together
  fits in what the batteries hold above the reserve SoC now, and the energy of *all*
  buy orders together fits in the room below the upper SoC bound now. Planned buys are
  not counted as energy to sell later (nor sells as room to buy): any subset of the
  orders may fill, and every subset keeps the SoC within [reserve, upper].
- Power: each order's MW fits the pool's power bounds and `max_volume_mw`, and — from
  the weather and load forecasts — the grid connection: a discharge adds to the site's
  export (production − load), a charge to its import, and both must stay within the
  configured grid limits.
- Efficiency: selling E at the meter drains E / efficiency from the batteries; buying
  E stores E × efficiency.

Earlier periods get the energy first (they are the surest forecasts).

**Rounds.** A bidder that places orders period after period passes the whole horizon
each time, with the periods that already have an order in `skip`: they still count
for the mean price (the thresholds do not jump as the horizon slides) but get no new
order. What earlier orders and trades may still move must already be taken out of the
pool (`outlook.committed_pool`), so that the old and the new orders together stay
within the bounds under any fill.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from enum import Enum

from edge_controller.trading.price_response import PriceResponse


class Side(Enum):
    """Which way an order trades, from the site's point of view."""

    BUY = "buy"
    """The site buys energy: the batteries charge."""
    SELL = "sell"
    """The site sells energy: the batteries discharge."""


@dataclass(frozen=True, slots=True)
class PeriodOutlook:
    """What is expected for one delivery period (watts, EUR/MWh)."""

    start: datetime
    duration: timedelta
    expected_price: float
    production_w: float = 0.0
    """Forecast PV + wind production of the site (≥ 0)."""
    load_w: float = 0.0
    """Forecast consumption of the site (≥ 0)."""
    response: PriceResponse | None = None
    """How the clearing price answers our volume (None: take `expected_price` as given).
    Only the optimizer reads it; the thresholds compare expected prices."""


@dataclass(frozen=True, slots=True)
class BatteryPool:
    """The batteries that trade, aggregated (watts, watt-hours, %)."""

    soc_pct: float
    capacity_wh: float
    soc_upper_pct: float
    charge_max_w: float
    """Largest charging power (≥ 0)."""
    discharge_max_w: float
    """Largest discharging power, as a positive number."""
    efficiency: float = 0.95
    """One-way (AC ↔ stored) efficiency, 0 < x ≤ 1."""


@dataclass(frozen=True, slots=True)
class Strategy:
    """Strategy parameters (config `[market_bid]`)."""

    reserve_soc_pct: float = 20.0
    """Never sold below: energy kept for the site itself."""
    price_spread: float = 20.0
    """EUR/MWh between the buy and the sell threshold, centred on the mean price."""
    max_volume_mw: float = 1.0
    min_quantity_mw: float = 0.1
    step_mw: float = 0.1
    max_import_w: float | None = None
    """Grid connection import limit, if any."""
    max_export_w: float | None = None
    """Grid connection export limit, if any."""


@dataclass(frozen=True, slots=True)
class Order:
    """One limit order for one delivery period."""

    period_start: datetime
    duration: timedelta
    side: Side
    quantity_mw: Decimal
    limit_price: Decimal
    """EUR/MWh: the lowest we sell at, or the highest we buy at."""

    @property
    def battery_power_w(self) -> float:
        """The battery target that executes this order (passive sign: + charges)."""
        watts = float(self.quantity_mw) * 1e6
        return watts if self.side is Side.BUY else -watts

    @property
    def energy_mwh(self) -> float:
        """Energy traded at the meter, MWh."""
        return float(self.quantity_mw) * self.duration.total_seconds() / 3600.0


def _floor_step(value_mw: float, step_mw: float) -> Decimal:
    if not math.isfinite(value_mw) or value_mw <= 0:
        return Decimal(0)
    step = Decimal(str(step_mw))
    return (Decimal(repr(value_mw)) / step).to_integral_value(rounding=ROUND_FLOOR) * step


def build_orders(
    periods: list[PeriodOutlook],
    pool: BatteryPool,
    strategy: Strategy,
    *,
    skip: Collection[datetime] = (),
) -> list[Order]:
    """The orders to place for `periods` (see the module docstring).

    Periods whose start is in `skip` set the price thresholds with the others but get
    no order (see "Rounds" in the module docstring).
    """
    if not periods or pool.capacity_wh <= 0:
        return []
    prices = [p.expected_price for p in periods if math.isfinite(p.expected_price)]
    if not prices:
        return []
    mean = sum(prices) / len(prices)
    sell_at = mean + strategy.price_spread / 2
    buy_at = mean - strategy.price_spread / 2
    efficiency = min(1.0, max(1e-6, pool.efficiency))
    # Energy at the meter (Wh) that all sells / all buys together may move.
    stored_above_reserve = max(0.0, pool.soc_pct - strategy.reserve_soc_pct) * pool.capacity_wh
    room_below_upper = max(0.0, pool.soc_upper_pct - pool.soc_pct) * pool.capacity_wh
    sellable_wh = stored_above_reserve / 100.0 * efficiency
    buyable_wh = room_below_upper / 100.0 / efficiency
    orders: list[Order] = []
    for period in sorted(periods, key=lambda p: p.start):
        hours = period.duration.total_seconds() / 3600.0
        if hours <= 0 or not math.isfinite(period.expected_price) or period.start in skip:
            continue
        surplus_w = period.production_w - period.load_w
        if period.expected_price >= sell_at:
            power_w = min(pool.discharge_max_w, strategy.max_volume_mw * 1e6, sellable_wh / hours)
            if strategy.max_export_w is not None:
                power_w = min(power_w, strategy.max_export_w - surplus_w)
            side, limit = Side.SELL, sell_at
        elif period.expected_price <= buy_at:
            power_w = min(pool.charge_max_w, strategy.max_volume_mw * 1e6, buyable_wh / hours)
            if strategy.max_import_w is not None:
                power_w = min(power_w, strategy.max_import_w + surplus_w)
            side, limit = Side.BUY, buy_at
        else:
            continue
        quantity = _floor_step(power_w / 1e6, strategy.step_mw)
        if quantity < Decimal(str(strategy.min_quantity_mw)):
            continue
        energy_wh = float(quantity) * 1e6 * hours
        if side is Side.SELL:
            sellable_wh -= energy_wh
        else:
            buyable_wh -= energy_wh
        orders.append(
            Order(
                period.start,
                period.duration,
                side,
                quantity,
                Decimal(repr(limit)).quantize(
                    Decimal("0.01"), rounding=ROUND_CEILING if side is Side.SELL else ROUND_FLOOR
                ),
            )
        )
    return orders
