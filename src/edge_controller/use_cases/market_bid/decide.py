"""The market-bid ledger: what follows from our orders, trades and dispatches, without I/O.

The actor (`actor.py`) keeps, by delivery period start, our order (`PlacedOrder`), the
trades of our orders (`TradedPeriod`) and the dispatch that executes them
(`PeriodDispatch`); it lists, places and creates. What those records imply is decided
here, so it is tested without a market or a dispatch service:

- a trade counts once, by id, however often the stream and the listings deliver it
  (`TradedPeriod.count_trade`), and fills its order (`PlacedOrder.filled`);
- a period's dispatch carries the period's traded power: created for what is left of
  the period, updated in place when the sum changes, deleted at 0 W
  (`dispatch_change`, `new_dispatch`);
- what a new round treats as fixed: every period with an order or a trade of ours
  (`committed`);
- what is dropped an hour after its period ended (`forgotten`).

Powers are watts in the passive sign convention: + charges the batteries (a BUY), −
discharges them (a SELL).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Final, Literal

from edge_controller.trading.bids import Side
from edge_controller.trading.optimizer import Committed

FORGET_AFTER: Final = timedelta(hours=1)
"""How long after its end a period's orders, trades and dispatch are kept in memory."""
ACTIVE: Final = "ACTIVE"
"""The state of an order that may still fill (the trading client's `OrderState.ACTIVE`)."""


def side_power_w(side: Side, quantity_mw: Decimal) -> float:
    """A quantity on the market as a battery power: a SELL discharges (−), a BUY charges."""
    watts = float(quantity_mw) * 1e6
    return -watts if side is Side.SELL else watts


@dataclass(frozen=True, slots=True)
class PlacedOrder:
    """One of our orders for one period, as last seen."""

    order_id: int
    side: Side
    quantity_mw: Decimal
    limit_price: Decimal
    state: str
    open_mw: Decimal
    """What may still fill (0 once cleared)."""

    @property
    def open_power_w(self) -> float:
        """The open quantity as a battery power (passive sign)."""
        return side_power_w(self.side, self.open_mw)

    def filled(self, quantity_mw: Decimal) -> PlacedOrder:
        """The order after a trade of `quantity_mw`: that much less open, never below 0.

        Until the next listing tells the market's own figure, a new round must not
        count what has traded as open as well.
        """
        return replace(self, open_mw=max(Decimal(0), self.open_mw - quantity_mw))


@dataclass(frozen=True, slots=True)
class PeriodDispatch:
    """The dispatch that executes one period's trades."""

    dispatch_id: int
    power_w: float


@dataclass(slots=True)
class TradedPeriod:
    """One delivery period's trades of our orders, and when its dispatch is retried."""

    duration: timedelta
    traded_w: float = 0.0
    trade_ids: set[int] = field(default_factory=set)
    retry_at: datetime | None = None

    def count_trade(self, trade_id: int, power_w: float) -> bool:
        """Add a trade's power to the period; False, and nothing added, if it was counted.

        The trade stream and every round's listing may deliver the same trade.
        """
        if trade_id in self.trade_ids:
            return False
        self.trade_ids.add(trade_id)
        self.traded_w += power_w
        return True


@dataclass(frozen=True, slots=True)
class CreateDispatch:
    """Create the period's dispatch: `power_w` from `start` for `duration_s`."""

    power_w: float
    start: datetime | Literal["NOW"]
    """The period's start, or "NOW" for a period that has begun."""
    duration_s: int
    """Whole seconds to the period's end."""


@dataclass(frozen=True, slots=True)
class UpdateDispatch:
    """Set the period's dispatch to `power_w` in place (a running one takes it at once)."""

    dispatch_id: int
    power_w: float
    was_w: float


@dataclass(frozen=True, slots=True)
class DeleteDispatch:
    """Delete the period's dispatch: its trades sum to 0 W."""

    dispatch_id: int


DispatchChange = CreateDispatch | UpdateDispatch | DeleteDispatch


def dispatch_change(
    start: datetime, period: TradedPeriod, current: PeriodDispatch | None, now: datetime
) -> DispatchChange | None:
    """What makes the dispatch of the period at `start` carry its traded power now.

    None when it already does, or when the period has ended. A dispatch at another
    power is updated rather than replaced: a stop and a start would leave the
    batteries idle in between. If the service no longer has it, `new_dispatch` says
    what to create instead.
    """
    if now >= start + period.duration or (
        current is not None and current.power_w == period.traded_w
    ):
        return None
    if current is not None:
        if period.traded_w != 0.0:
            return UpdateDispatch(current.dispatch_id, period.traded_w, current.power_w)
        return DeleteDispatch(current.dispatch_id)
    return new_dispatch(start, period, now)


def new_dispatch(start: datetime, period: TradedPeriod, now: datetime) -> CreateDispatch | None:
    """The dispatch for what is left of the period, at its traded power.

    None at 0 W, or with less than a whole second left (a dispatch lasts whole
    seconds). A trade learnt after its period began starts "NOW".
    """
    if period.traded_w == 0.0:
        return None
    seconds = int((start + period.duration - max(start, now)).total_seconds())
    if seconds < 1:
        return None
    return CreateDispatch(period.traded_w, start if start > now else "NOW", seconds)


def committed(
    periods: Mapping[datetime, TradedPeriod],
    orders: Mapping[datetime, PlacedOrder],
    period: timedelta,
) -> list[Committed]:
    """Every period with a trade or an order of ours, at its traded and open power.

    What the optimizer fixes and what `outlook.committed_energy_wh` counts against a
    new round's pool. A period with an order counts even at 0 W (an order cancelled
    before it filled): it is fixed, so no second order goes there (see the actor).
    `period` is the market's, for a period that has an order but no trade yet.
    """
    starts = set(periods) | set(orders)
    found = []
    for start in sorted(starts):
        traded = periods.get(start)
        order = orders.get(start)
        open_w = order.open_power_w if order is not None and order.state == ACTIVE else 0.0
        duration = traded.duration if traded is not None else period
        traded_w = traded.traded_w if traded is not None else 0.0
        found.append(Committed(start, duration, traded_w=traded_w, open_w=open_w))
    return found


@dataclass(frozen=True, slots=True)
class Forgotten:
    """The period starts whose records are dropped."""

    periods: tuple[datetime, ...]
    """Trades and dispatch."""
    orders: tuple[datetime, ...]


def forgotten(
    periods: Mapping[datetime, TradedPeriod],
    orders: Mapping[datetime, PlacedOrder],
    now: datetime,
    period: timedelta,
) -> Forgotten:
    """What belongs to periods that ended more than `FORGET_AFTER` before `now`.

    Listings only reach back to the current period, so nothing older comes back.
    An order's period is the market's `period`.
    """
    cutoff = now - FORGET_AFTER
    return Forgotten(
        periods=tuple(s for s, p in periods.items() if s + p.duration < cutoff),
        orders=tuple(s for s in orders if s + period < cutoff),
    )


__all__ = [
    "ACTIVE",
    "FORGET_AFTER",
    "CreateDispatch",
    "DeleteDispatch",
    "DispatchChange",
    "Forgotten",
    "PeriodDispatch",
    "PlacedOrder",
    "TradedPeriod",
    "UpdateDispatch",
    "committed",
    "dispatch_change",
    "forgotten",
    "new_dispatch",
    "side_power_w",
]
