"""Moved to `edge_controller.trading.periods`: the bidder and the exchange share it.

Kept for the importers outside the move (`tools/scenario/`, the market-bid use case);
delete once they import `trading.periods`.
"""

from edge_controller.trading.periods import (
    EPOCH,
    first_open_period,
    gate_closure,
    is_period_start,
    period_floor,
)

__all__ = ["EPOCH", "first_open_period", "gate_closure", "is_period_start", "period_floor"]
