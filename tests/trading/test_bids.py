import itertools
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from edge_controller.trading.bids import (
    BatteryPool,
    Order,
    PeriodOutlook,
    Side,
    Strategy,
    build_orders,
)
from tests.properties import examples

START = datetime(2026, 11, 24, 0, 0, tzinfo=UTC)
QUARTER = timedelta(minutes=15)
POOL = BatteryPool(
    soc_pct=60, capacity_wh=2_000_000, soc_upper_pct=90, charge_max_w=1e6, discharge_max_w=1e6
)


def outlook(
    prices: list[float], production_w: float = 0.0, load_w: float = 0.0
) -> list[PeriodOutlook]:
    return [
        PeriodOutlook(START + i * QUARTER, QUARTER, p, production_w, load_w)
        for i, p in enumerate(prices)
    ]


def test_sells_the_dear_periods_and_buys_the_cheap_ones_at_their_thresholds() -> None:
    orders = build_orders(outlook([40, 100, 70, 130]), POOL, Strategy(price_spread=20))
    # mean 85: sell at >= 95, buy at <= 75
    assert [(o.side, o.period_start) for o in orders] == [
        (Side.BUY, START),
        (Side.SELL, START + QUARTER),
        (Side.BUY, START + 2 * QUARTER),
        (Side.SELL, START + 3 * QUARTER),
    ]
    assert {o.limit_price for o in orders if o.side is Side.SELL} == {Decimal("95.00")}
    assert {o.limit_price for o in orders if o.side is Side.BUY} == {Decimal("75.00")}
    assert all(o.quantity_mw == Decimal("1.0") for o in orders)  # max_volume_mw


def test_quantities_are_floored_to_tenths_of_a_megawatt_and_tiny_ones_dropped() -> None:
    pool = BatteryPool(
        soc_pct=21,
        capacity_wh=200_000,
        soc_upper_pct=21.01,
        charge_max_w=0.37e6,
        discharge_max_w=0.37e6,
        efficiency=1.0,
    )
    orders = build_orders(outlook([10, 200]), pool, Strategy(reserve_soc_pct=20, price_spread=20))
    # 1 % of 200 kWh = 2 kWh above the reserve → 8 kW over 15 min: below 0.1 MW, no order;
    # 0.01 % room to buy: nothing either.
    assert orders == []
    pool = BatteryPool(
        soc_pct=90,
        capacity_wh=2_000_000,
        soc_upper_pct=90,
        charge_max_w=0.37e6,
        discharge_max_w=0.37e6,
    )
    (order,) = build_orders(outlook([10, 200]), pool, Strategy(price_spread=20))
    assert order.quantity_mw == Decimal("0.3")  # 0.37 MW floored


def test_the_grid_export_limit_leaves_room_for_the_forecast_surplus() -> None:
    orders = build_orders(
        outlook([10, 200], production_w=500_000, load_w=100_000),
        POOL,
        Strategy(price_spread=20, max_export_w=650_000),
    )
    sell = next(o for o in orders if o.side is Side.SELL)
    assert sell.quantity_mw == Decimal("0.2")  # 650 kW − 400 kW surplus = 250 kW → 0.2


pools = st.builds(
    BatteryPool,
    soc_pct=st.floats(0, 100),
    capacity_wh=st.floats(1_000, 5e6),
    soc_upper_pct=st.floats(0, 100),
    charge_max_w=st.floats(0, 3e6),
    discharge_max_w=st.floats(0, 3e6),
    efficiency=st.floats(0.5, 1.0),
)
strategies = st.builds(
    Strategy,
    reserve_soc_pct=st.floats(0, 100),
    price_spread=st.floats(0, 100),
    max_volume_mw=st.floats(0, 5),
    max_import_w=st.none() | st.floats(0, 5e6),
    max_export_w=st.none() | st.floats(0, 5e6),
)
prices = st.lists(st.floats(-500, 3000), min_size=1, max_size=12)


@settings(max_examples=examples(400))
@given(pools, strategies, prices, st.floats(0, 2e6), st.floats(0, 2e6))
def test_no_subset_of_filled_orders_leaves_the_soc_window_or_the_power_bounds(
    pool: BatteryPool, strategy: Strategy, price_list: list[float], production: float, load: float
) -> None:
    orders = build_orders(outlook(price_list, production, load), pool, strategy)
    for order in orders:
        assert order.quantity_mw >= Decimal("0.1")
        assert order.quantity_mw % Decimal("0.1") == 0
        assert float(order.quantity_mw) <= strategy.max_volume_mw + 1e-9
        power = abs(order.battery_power_w)
        assert (
            power <= (pool.discharge_max_w if order.side is Side.SELL else pool.charge_max_w) + 1e-3
        )
        if order.side is Side.SELL and strategy.max_export_w is not None:
            assert power + production - load <= strategy.max_export_w + 1e-3
        if order.side is Side.BUY and strategy.max_import_w is not None:
            assert power + load - production <= strategy.max_import_w + 1e-3
    # Worst cases over every fill pattern: all sells fill and no buy, and the reverse.
    drained_pct = (
        sum(_stored_wh(o, pool) for o in orders if o.side is Side.SELL) / pool.capacity_wh * 100
    )
    filled_pct = (
        sum(_stored_wh(o, pool) for o in orders if o.side is Side.BUY) / pool.capacity_wh * 100
    )
    if any(o.side is Side.SELL for o in orders):
        assert pool.soc_pct - drained_pct >= strategy.reserve_soc_pct - 1e-6
    if any(o.side is Side.BUY for o in orders):
        assert pool.soc_pct + filled_pct <= pool.soc_upper_pct + 1e-6


def _stored_wh(order: Order, pool: BatteryPool) -> float:
    energy_wh = order.energy_mwh * 1e6
    return energy_wh / pool.efficiency if order.side is Side.SELL else energy_wh * pool.efficiency


@given(strategies, prices)
def test_an_order_only_fills_at_a_price_that_made_it_worth_placing(
    strategy: Strategy, price_list: list[float]
) -> None:
    orders = build_orders(outlook(price_list), POOL, strategy)
    mean = sum(price_list) / len(price_list)
    for order, price in itertools.product(orders, [mean]):
        if order.side is Side.SELL:
            assert float(order.limit_price) >= price + strategy.price_spread / 2 - 1e-9
        else:
            assert float(order.limit_price) <= price - strategy.price_spread / 2 + 1e-9
