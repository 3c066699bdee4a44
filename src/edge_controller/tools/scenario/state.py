"""What the loop carries from one control step to the next, besides the simulated site.

The market's state (its members' batteries, the next period to clear), our orders
waiting for their gate closure, the prices expected when each period was decided, the
dispatches our trades became (`schedule`), and the next ids. Frozen: each step
returns a new `ControllerState`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from edge_controller.servers.market.model import MarketState, initial_state
from edge_controller.tools.scenario.schedule import DispatchSchedule
from edge_controller.tools.scenario.setup import Setup
from edge_controller.trading.bids import Order
from edge_controller.trading.periods import first_open_period


@dataclass(frozen=True, slots=True)
class PendingOrder:
    """Our order for one period, waiting for its gate closure."""

    order_id: int
    order: Order


@dataclass(frozen=True, slots=True)
class ControllerState:
    """What carries over from one step to the next, besides the simulated site."""

    market_state: MarketState
    """The market members' batteries, before `next_clearing`."""
    next_clearing: datetime
    """The next period to clear."""
    bid_through: datetime | None
    """The last period a bidding decision was made for."""
    pending: Mapping[datetime, PendingOrder]
    expected: Mapping[datetime, float]
    """Expected price at bid time, per period decided (also without an order)."""
    schedule: DispatchSchedule
    next_order_id: int = 1
    next_dispatch_id: int = 1


def initial_controller_state(setup: Setup, now: datetime) -> ControllerState:
    """The state at the scenario's start: the market opens, nothing is traded."""
    rules = setup.market.rules
    return ControllerState(
        market_state=initial_state(setup.market),
        next_clearing=first_open_period(now, rules.period, rules.gate_closure),
        bid_through=None,
        pending={},
        expected={},
        schedule=DispatchSchedule(),
    )


__all__ = ["ControllerState", "PendingOrder", "initial_controller_state"]
