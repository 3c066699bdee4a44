"""Bidding: what is committed counts against each side of the pools."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from decimal import Decimal

import pytest

from edge_controller.tools.scenario.bidding import battery_pools, commitments
from edge_controller.tools.scenario.setup import Setup
from edge_controller.tools.scenario.site_model import observe
from edge_controller.tools.scenario.state import PendingOrder, initial_controller_state
from edge_controller.tools.scenario.trades import trade_dispatch
from edge_controller.trading.bids import Order, Side
from edge_controller.trading.outlook import committed_energy_wh
from tests.scenario.conftest import model_at

QUARTER = timedelta(minutes=15)


def test_committed_energy_is_counted_against_each_side(setup: Setup) -> None:
    spec, layout = setup.scenario.spec, setup.layout
    now = spec.start
    state = initial_controller_state(setup, now)
    observation = observe(model_at(setup, now), layout, now)
    free_sell, free_buy, strategy = battery_pools(setup, state, observation)
    assert free_sell.soc_pct == free_buy.soc_pct
    assert strategy.reserve_soc_pct == 20  # above every battery's lower bound + taper
    sell = trade_dispatch(1, now + QUARTER, QUARTER, layout.battery_ids, -400_000.0, now)
    buy_order = Order(now + 2 * QUARTER, QUARTER, Side.BUY, Decimal("0.2"), Decimal(0))
    state = replace(
        state,
        schedule=state.schedule.add(sell, now),
        pending={buy_order.period_start: PendingOrder(1, buy_order)},
    )
    sell_wh, buy_wh = committed_energy_wh(commitments(setup, state, now), now)
    assert (sell_wh, buy_wh) == pytest.approx((100_000.0, 50_000.0))
    sell_pool, buy_pool, _ = battery_pools(setup, state, observation)
    capacity = layout.capacity_wh
    efficiency = sell_pool.efficiency
    assert free_sell.soc_pct - sell_pool.soc_pct == pytest.approx(
        100 * 100_000.0 / efficiency / capacity
    )
    assert buy_pool.soc_pct - free_buy.soc_pct == pytest.approx(
        100 * 50_000.0 * efficiency / capacity
    )
