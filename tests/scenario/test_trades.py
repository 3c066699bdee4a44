"""Gate closure: our order cleared, the trade a dispatch."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from decimal import Decimal

import pytest

from edge_controller.tools.scenario.setup import Setup
from edge_controller.tools.scenario.state import PendingOrder, initial_controller_state
from edge_controller.tools.scenario.trades import clear_due
from edge_controller.trading.bids import Order, Side

QUARTER = timedelta(minutes=15)


def test_a_trade_becomes_a_dispatch_at_gate_closure(setup: Setup) -> None:
    spec = setup.scenario.spec
    state = initial_controller_state(setup, spec.start)
    first = state.next_clearing
    assert first == spec.start + QUARTER
    order = Order(first, QUARTER, Side.SELL, Decimal("0.3"), Decimal(0))
    state = replace(state, pending={first: PendingOrder(7, order)}, expected={first: 100.0})
    gate = first - timedelta(minutes=5)
    unchanged, results, created = clear_due(setup, state, gate - timedelta(seconds=60))
    assert (results, created) == ((), ())
    assert unchanged.next_clearing == first
    after, results, created = clear_due(setup, state, gate)
    (result,) = results
    assert result.start == first
    assert result.order == order
    assert result.filled_mw == pytest.approx(0.3)  # a sell at 0 EUR/MWh always fills
    assert result.expected_price == 100.0
    (dispatch,) = created
    assert (dispatch.start_time, dispatch.create_time) == (first, gate)
    assert dispatch.payload == {"power_w": -300_000.0}
    assert after.schedule.dispatches == (dispatch,)
    assert after.next_clearing == first + QUARTER
    assert after.pending == {}
    assert after.next_dispatch_id == 2
