"""The bidding optimizer: what it trades, what it never risks, and that any fills are safe."""

from __future__ import annotations

import itertools
import math
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from edge_controller.trading.bids import PeriodOutlook, Side
from edge_controller.trading.optimizer import Committed, Settings, plan_bids
from edge_controller.trading.price_response import PriceResponse
from edge_controller.trading.storage import PoolWindow, StorageUnit
from edge_controller.trading.unit_paths import PoolPower, crossings, unit_paths
from tests.properties import examples

QUARTER = timedelta(minutes=15)
T0 = datetime(2025, 6, 21, 6, 0, tzinfo=UTC)
NOW = T0 - timedelta(minutes=6)


def unit(unit_id: int = 1, soc: float = 50.0, **changes: float) -> StorageUnit:
    values = {
        "capacity_wh": 400_000.0,
        "soc_lower_pct": 10.0,
        "soc_upper_pct": 90.0,
        "floor_pct": 20.0,
        "ceiling_pct": 85.0,
        "charge_max_w": 200_000.0,
        "discharge_max_w": 200_000.0,
        "efficiency": 0.96,
    }
    values.update(changes)
    return StorageUnit(unit_id, soc_pct=soc, **values)


def day(
    prices: list[float],
    load_w: float = 0.0,
    production_w: float = 0.0,
    slope_per_lot: float | None = None,
) -> list[PeriodOutlook]:
    """Periods at `prices`; with `slope_per_lot`, each 0.1 MW of ours moves the price so much."""
    return [
        PeriodOutlook(
            T0 + k * QUARTER,
            QUARTER,
            price,
            production_w,
            load_w,
            None if slope_per_lot is None else stack(price, slope_per_lot),
        )
        for k, price in enumerate(prices)
    ]


def stack(price: float, slope_per_lot: float, lots: int = 10) -> PriceResponse:
    """A supply stack: each lot sold lowers the clearing price, each lot bought raises it."""
    return PriceResponse(
        0.1,
        tuple(price - slope_per_lot * k for k in range(lots + 1)),
        tuple(0.1 * k for k in range(lots + 1)),
        tuple(price + slope_per_lot * k for k in range(lots + 1)),
        tuple(0.1 * k for k in range(lots + 1)),
    )


def test_it_buys_in_the_trough_and_sells_at_the_peak() -> None:
    prices = [40.0] * 8 + [150.0] * 8
    plan = plan_bids(day(prices), [unit(soc=20.0)], Settings(), now=NOW, place={T0})
    bought = sum(p.buy_mw for p in plan.periods[:8])
    sold = sum(p.sell_mw for p in plan.periods[8:])
    assert bought > 0.5
    assert sold > 0.5
    assert all(p.sell_mw < 1e-9 for p in plan.periods[:8])
    assert plan.orders[0].side is Side.BUY
    assert plan.value_eur > 0


def test_a_spread_below_losses_and_wear_is_not_traded() -> None:
    # 96 % each way and 10 EUR/MWh of wear each way: 50 → 60 EUR/MWh does not pay.
    prices = [50.0] * 8 + [60.0] * 8
    plan = plan_bids(
        day(prices),
        [unit(soc=50.0)],
        Settings(degradation_eur_per_mwh=10.0, terminal_price=55.0),
        now=NOW,
        place={T0},
    )
    assert all(p.buy_mw < 1e-9 and p.sell_mw < 1e-9 for p in plan.periods)
    assert plan.orders == ()


def test_the_floor_is_the_most_binding_unit_at_the_common_level() -> None:
    # Unit 2's window is 5..95: its 20 % reserve is level 1/6, unit 1's only 1/8.
    units = [unit(1, 50.0), unit(2, 50.0, soc_lower_pct=5.0, soc_upper_pct=95.0)]
    window = PoolWindow.of(units)
    assert math.isclose(window.floor_level, 15 / 90)
    # At that level unit 1 holds 10 + 80/6 = 23.3 %, unit 2 exactly its 20 %.
    assert math.isclose(window.floor_wh, 400_000 * (10 + 80 / 6) / 100 + 400_000 * 0.20)


def test_it_never_sells_below_the_reserve_of_the_lowest_unit() -> None:
    units = [unit(1, 80.0), unit(2, 22.0, soc_lower_pct=5.0, soc_upper_pct=95.0)]
    plan = plan_bids(day([200.0] * 16), units, Settings(), now=NOW, place={T0})
    window = plan.window
    assert min(p.energy_wh for p in plan.periods) >= window.floor_wh - 1.0
    paths = unit_paths(units, [PoolPower(p.start, p.duration, p.power_w) for p in plan.periods])
    assert crossings(units, paths, tolerance_pct=0.05) == {}


def test_buys_keep_within_the_grid_import_limit_with_the_forecast_margin() -> None:
    prices = [20.0] * 4 + [200.0] * 4
    plan = plan_bids(
        day(prices, load_w=300_000.0),
        [unit(soc=20.0, charge_max_w=1e6)],
        Settings(max_import_w=500_000.0, forecast_margin=0.1),
        now=NOW,
        place={T0},
    )
    # 500 kW − 300 kW × 1.1 = 170 kW of room: the order is 0.1 MW (floored to the step).
    assert max(p.buy_mw for p in plan.periods) <= 0.17 + 1e-9
    assert plan.orders[0].quantity_mw == Decimal("0.1")


def test_a_committed_period_is_fixed_and_gets_no_order() -> None:
    commitment = Committed(T0, QUARTER, traded_w=-100_000.0)
    plan = plan_bids(
        day([150.0] * 4), [unit(soc=60.0)], Settings(), now=NOW, place={T0}, committed=[commitment]
    )
    assert plan.periods[0].fixed
    assert math.isclose(plan.periods[0].sell_mw, 0.1)
    assert plan.orders == ()


def test_committed_sells_leave_less_to_sell() -> None:
    units = [unit(soc=30.0)]  # 40 kWh above the 20 % floor
    alone = plan_bids(day([200.0, 150.0, 150.0]), units, Settings(), now=NOW, place={T0})
    committed = [Committed(NOW, QUARTER, open_w=-100_000.0)]  # 25 kWh, may fill
    after = plan_bids(
        day([200.0, 150.0, 150.0]), units, Settings(), now=NOW, place={T0}, committed=committed
    )
    # Alone: 40 kWh × 0.96 = 38.4 kWh at the meter, 0.1 MW; with 25 kWh committed: none.
    assert alone.orders[0].quantity_mw == Decimal("0.1")
    assert after.orders == ()


def test_orders_are_in_steps_and_limits_pay_at_least_the_break_even() -> None:
    prices = [30.0, 35.0, 160.0, 170.0]
    plan = plan_bids(
        day(prices), [unit(soc=50.0)], Settings(), now=NOW, place={p.start for p in day(prices)}
    )
    assert plan.orders
    for order in plan.orders:
        assert order.quantity_mw % Decimal("0.1") == 0
        expected = prices[(order.period_start - T0) // QUARTER]
        if order.side is Side.SELL:
            assert order.limit_price <= Decimal(str(expected)) + Decimal("0.01")
        else:
            assert order.limit_price >= Decimal(str(expected)) - Decimal("0.01")


def test_it_sells_into_a_falling_price_only_while_the_next_mw_still_pays() -> None:
    # 4 peak periods at 150, a 10 % SoC headroom... enough energy for 1 MW in each.
    # Taking 150 as given, it sells 1 MW per period; with 6 EUR/MWh per 0.1 MW sold, the
    # sixth lot earns 150 − 66 = 84 < what the energy is worth at the horizon's end (100).
    settings = Settings(max_volume_mw=1.0, terminal_price=100.0, degradation_eur_per_mwh=0.0)
    units = [unit(soc=85.0, capacity_wh=4e6, discharge_max_w=1e6)]
    taker = plan_bids(day([150.0] * 4), units, settings, now=NOW, place={T0})
    answered = plan_bids(day([150.0] * 4, slope_per_lot=6.0), units, settings, now=NOW, place={T0})
    assert all(p.sell_mw > 0.99 for p in taker.periods)
    assert all(0.2 <= p.sell_mw <= 0.5 + 1e-9 for p in answered.periods)
    assert answered.value_eur < taker.value_eur


def test_a_sell_limit_is_at_most_the_price_expected_with_our_volume() -> None:
    # So the order fills when the forecast is right: with 0.5 MW of ours the price falls
    # from 150 to 135; a limit of 150 would make us the marginal seller, barely filled.
    units = [unit(soc=85.0, capacity_wh=4e6, discharge_max_w=1e6)]
    settings = Settings(max_volume_mw=0.5, terminal_price=60.0)
    plan = plan_bids(day([150.0] * 4, slope_per_lot=3.0), units, settings, now=NOW, place={T0})
    order = plan.orders[0]
    assert order.side is Side.SELL
    assert order.quantity_mw == Decimal("0.5")
    assert plan.periods[0].expected_clearing_price == 135.0
    assert order.limit_price <= Decimal(135)
    # …and never below what keeping the energy is worth.
    assert order.limit_price >= Decimal(60)


def test_a_buy_limit_is_at_least_the_price_expected_with_our_volume() -> None:
    units = [unit(soc=25.0, capacity_wh=4e6, charge_max_w=1e6)]
    settings = Settings(max_volume_mw=0.5, terminal_price=150.0)
    plan = plan_bids(day([60.0] * 4, slope_per_lot=3.0), units, settings, now=NOW, place={T0})
    order = plan.orders[0]
    assert order.side is Side.BUY
    assert order.limit_price >= Decimal(str(plan.periods[0].expected_clearing_price))


def test_a_day_of_96_periods_is_planned() -> None:
    prices = [80 + 60 * math.sin(2 * math.pi * k / 48) for k in range(96)]
    plan = plan_bids(day(prices), [unit(soc=50.0)], Settings(), now=NOW, place={T0})
    assert len(plan.periods) == 96
    assert plan.shortfall_wh == 0.0
    assert plan.solve_ms > 0


# ---------------------------------------------------------------------- any subset of fills

unit_strategy = st.builds(
    lambda uid, soc, wide, cap, power, eff: unit(
        uid,
        soc,
        capacity_wh=cap,
        soc_lower_pct=5.0 if wide else 10.0,
        soc_upper_pct=95.0 if wide else 90.0,
        charge_max_w=power,
        discharge_max_w=power,
        efficiency=eff,
    ),
    st.just(0),
    st.floats(15.0, 90.0),
    st.booleans(),
    st.sampled_from([200_000.0, 400_000.0, 600_000.0]),
    st.sampled_from([100_000.0, 250_000.0, 300_000.0]),
    st.sampled_from([0.9, 0.96, 0.97]),
)


@settings(max_examples=examples(200), deadline=None)
@given(
    units=st.lists(unit_strategy, min_size=1, max_size=4),
    prices=st.lists(st.floats(-50.0, 300.0), min_size=7, max_size=12),
    placed=st.integers(1, 3),
    slope=st.sampled_from([None, 0.0, 3.0, 20.0]),
)
def test_every_subset_of_fills_keeps_every_unit_in_its_window(
    units: list[StorageUnit], prices: list[float], placed: int, slope: float | None
) -> None:
    # Two rounds, as the bidder runs them: the first places the period before T0, the
    # second plans from T0 with that order still open (6 minutes of it left).
    units = [StorageUnit(i, *_fields(u)) for i, u in enumerate(units)]
    earlier = [PeriodOutlook(T0 - QUARTER, QUARTER, prices[0])]
    first = plan_bids(
        [*earlier, *day(prices[1:])],
        units,
        Settings(max_volume_mw=1.0),
        now=NOW - QUARTER,
        place={T0 - QUARTER},
    )
    committed = [
        Committed(o.period_start, o.duration, open_w=o.battery_power_w) for o in first.orders
    ]
    periods = day(prices[1:], slope_per_lot=slope)
    plan = plan_bids(
        periods,
        units,
        Settings(max_volume_mw=1.0),
        now=NOW,
        place={p.start for p in periods[:placed]},
        committed=committed,
    )
    fills = [PoolPower(o.period_start, o.duration, o.battery_power_w) for o in plan.orders]
    fills += [PoolPower(NOW, c.start + c.duration - NOW, c.open_w) for c in committed]
    for size in range(len(fills) + 1):
        for subset in itertools.combinations(fills, size):
            paths = unit_paths(units, list(subset))
            assert crossings(units, paths, tolerance_pct=0.05) == {}, (subset, paths)


def _fields(u: StorageUnit) -> tuple[float, ...]:
    return (
        u.capacity_wh,
        u.soc_pct,
        u.soc_lower_pct,
        u.soc_upper_pct,
        u.floor_pct,
        u.ceiling_pct,
        u.charge_max_w,
        u.discharge_max_w,
        u.efficiency,
    )
