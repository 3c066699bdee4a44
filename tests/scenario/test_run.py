"""The day loop: a short scenario end to end, and its pure pieces step by step."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from frequenz.client.common.microgrid.electrical_components import ElectricalComponentCategory
from frequenz.client.dispatch.types import Dispatch, TargetCategories, TargetIds

from edge_controller.common.clock import ManualClock
from edge_controller.power.bounds import allows
from edge_controller.servers.sim.model import SiteModel
from edge_controller.servers.sim.site import DEFAULT_WIND_CURVE
from edge_controller.tools.scenario.file import load_scenario
from edge_controller.tools.scenario.records import ScenarioResult
from edge_controller.tools.scenario.run import (
    DISPATCH_TYPE,
    PendingOrder,
    ScenarioError,
    Setup,
    SiteLayout,
    battery_commands,
    battery_pools,
    build_setup,
    clear_due,
    commitments,
    equivalent_weather,
    initial_controller_state,
    observe,
    run_scenario,
    speed_for_fraction,
    trade_dispatch,
)
from edge_controller.tools.scenario.schedule import DispatchSchedule
from edge_controller.trading.bids import Order, Side
from edge_controller.trading.outlook import committed_energy_wh
from tests.scenario.conftest import scenario_text

QUARTER = timedelta(minutes=15)


@pytest.fixture(scope="module")
def short_run(tmp_path_factory: pytest.TempPathFactory) -> ScenarioResult:
    path = tmp_path_factory.mktemp("scenario") / "short.toml"
    path.write_text(scenario_text(), encoding="utf-8")
    return run_scenario(load_scenario(path))


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Setup:
    path = tmp_path_factory.mktemp("scenario") / "short.toml"
    path.write_text(scenario_text(), encoding="utf-8")
    return build_setup(load_scenario(path))


def model_at(setup: Setup, now: datetime) -> SiteModel:
    return SiteModel(setup.scenario.site, now)


# ---------------------------------------------------------------------- end to end


def test_two_hours_at_60_s_steps_run_every_step(tmp_path: Path) -> None:
    # How fast: `edge-controller scenario` prints its runtime; no timed assertion here.
    path = tmp_path / "s.toml"
    path.write_text(scenario_text(), encoding="utf-8")
    result = run_scenario(load_scenario(path))
    assert len(result.steps) == 120
    assert result.runtime_s > 0


def test_it_trades_in_the_window(short_run: ScenarioResult) -> None:
    traded = [p for p in short_run.periods if p.filled_mw > 0]
    assert len(short_run.periods) == 7  # 06:15 .. 07:45: 06:00's gate closed before the start
    assert len(short_run.bids) == 7
    assert traded, "the short scenario must trade, or the checks below prove nothing"
    assert {p.order.side for p in traded if p.order is not None} == {Side.BUY, Side.SELL}


def test_no_command_outside_its_bounds(short_run: ScenarioResult) -> None:
    assert short_run.commands
    for check in short_run.commands:
        assert check.refused is None, check
        assert check.within_bounds, check
    assert len(short_run.commands) == len(short_run.steps) * len(short_run.inverter_ids)


def test_every_soc_stays_within_its_bounds(short_run: ScenarioResult) -> None:
    layout = SiteLayout.of(short_run.scenario.site)
    for column, battery_id in enumerate(short_run.battery_ids):
        bounds = layout.battery_specs[battery_id].soc_bounds_pct
        socs = [s.soc_pct[column] for s in short_run.steps] + [short_run.final_soc_pct[column]]
        assert all(bounds.lower - 1e-9 <= soc <= bounds.upper + 1e-9 for soc in socs)


def test_each_trade_ran_as_a_dispatch_in_its_period(short_run: ScenarioResult) -> None:
    layout = SiteLayout.of(short_run.scenario.site)
    tolerance_w = sum(spec.resolution_w for spec in layout.inverter_specs.values())
    dispatches = {int(d.id): d for d in short_run.dispatches}
    for period in short_run.periods:
        if period.filled_mw == 0:
            assert period.dispatch_id is None
            continue
        assert period.dispatch_id is not None
        dispatch = dispatches[period.dispatch_id]
        assert dispatch.type == DISPATCH_TYPE
        assert (dispatch.start_time, dispatch.duration) == (period.start, period.duration)
        assert dispatch.create_time < dispatch.start_time  # created at gate closure
        assert dispatch.payload == {"power_w": period.traded_power_w}
        assert abs(period.traded_power_w) == pytest.approx(period.filled_mw * 1e6)
        inside = [s for s in short_run.steps if period.start <= s.at < period.start + QUARTER]
        assert len(inside) == 15
        for step in inside:
            assert step.running == (period.dispatch_id,)
            assert step.target_w == period.traded_power_w
            delivered, traded = step.battery_power_w, period.traded_power_w
            if step.excess_w == 0:  # nothing held back by bounds or SoC
                assert delivered == pytest.approx(traded, abs=tolerance_w)
            else:  # less, never more, and the same way
                assert 0 <= delivered / traded <= 1 + tolerance_w / abs(traded)
        assert period.delivered_power_w == pytest.approx(period.traded_power_w, abs=tolerance_w)
    running = {d for s in short_run.steps for d in s.running}
    assert running == {p.dispatch_id for p in short_run.periods if p.dispatch_id is not None}
    idle = [s for s in short_run.steps if not s.running]
    assert all(s.battery_power_w == 0 and s.commanded_w == 0 for s in idle)


def test_orders_never_overcommit_the_batteries(short_run: ScenarioResult) -> None:
    for bid in short_run.bids:
        if bid.submitted is None:
            continue
        assert bid.submitted.period_start == bid.period_start
        assert float(bid.submitted.quantity_mw) <= 0.5  # max_volume
        assert bid.sell_soc_pct <= bid.buy_soc_pct


def test_the_grid_meter_sums_the_site(short_run: ScenarioResult) -> None:
    for step in short_run.steps:
        parts = step.load_w + step.pv_w + step.wind_w + step.battery_power_w
        assert step.grid_w == pytest.approx(parts, abs=1e-6)


def test_a_run_is_reproducible(tmp_path: Path, short_run: ScenarioResult) -> None:
    path = tmp_path / "s.toml"
    path.write_text(scenario_text(), encoding="utf-8")
    again = run_scenario(load_scenario(path))
    assert again.steps == short_run.steps
    assert [p.record for p in again.periods] == [p.record for p in short_run.periods]


def test_with_the_market_files_wind_expected_prices_are_exact(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text(scenario_text(wind="file", spread=1000, duration="1h"), encoding="utf-8")
    result = run_scenario(load_scenario(path))
    assert all(b.submitted is None for b in result.bids)  # the spread allows no order
    assert [p.expected_price for p in result.periods] == [p.price for p in result.periods]


def test_the_clock_must_show_the_start(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text(scenario_text(), encoding="utf-8")
    scenario = load_scenario(path)
    with pytest.raises(ScenarioError, match="the clock shows"):
        run_scenario(scenario, clock=ManualClock(scenario.spec.start + timedelta(seconds=1)))


# ---------------------------------------------------------------------- the pieces


def test_equivalent_weather_makes_the_model_produce_the_given_power(setup: Setup) -> None:
    now = setup.scenario.spec.start
    model = model_at(setup, now)
    layout = setup.layout
    model.site = replace(
        model.site, weather=equivalent_weather(layout, -123_000.0, -42_000.0, 20.0)
    )
    model.step(now + timedelta(seconds=1))
    assert sum(model.ac_power_w(c) for c in layout.pv_ids) == pytest.approx(-123_000.0)
    assert sum(model.ac_power_w(c) for c in layout.wind_ids) == pytest.approx(-42_000.0)


@pytest.mark.parametrize("fraction", [0.0, 0.05, 0.12, 0.5, 0.9, 1.0])
def test_speed_for_fraction_inverts_the_curve(fraction: float) -> None:
    from edge_controller.servers.sim.model import wind_fraction

    speed = speed_for_fraction(DEFAULT_WIND_CURVE, fraction)
    assert wind_fraction(DEFAULT_WIND_CURVE, speed) == pytest.approx(fraction)


def test_a_running_dispatch_becomes_commands_within_bounds(setup: Setup) -> None:
    start = setup.scenario.spec.start + QUARTER
    layout = setup.layout
    schedule = DispatchSchedule().add(
        trade_dispatch(1, start, QUARTER, layout.battery_ids, -300_000.0, start - QUARTER), start
    )
    model = model_at(setup, start)
    before = battery_commands(setup, schedule, observe(model, layout, start - QUARTER))
    assert set(before.commands.values()) == {0.0}
    assert before.running == ()
    observation = observe(model, layout, start)
    decision = battery_commands(setup, schedule, observation)
    assert decision.running == (1,)
    assert decision.target_w == -300_000.0
    assert math.fsum(decision.commands.values()) == pytest.approx(-300_000.0, abs=400)
    for inverter_id, power_w in decision.commands.items():
        assert allows(model.active_bounds(inverter_id, start), power_w) or power_w == 0.0
    # SoC balancing: the fullest battery (B, 72 %) discharges most, the emptiest not at all.
    assert decision.commands[20] == min(decision.commands.values())
    assert decision.commands[30] == 0.0


def test_the_newest_of_two_overlapping_dispatches_drives(setup: Setup) -> None:
    start = setup.scenario.spec.start + QUARTER
    layout = setup.layout
    older = trade_dispatch(1, start, QUARTER, layout.battery_ids, -300_000.0, start - QUARTER)
    newer = trade_dispatch(2, start, QUARTER, layout.battery_ids, 100_000.0, start)
    schedule = DispatchSchedule().add(older, start).add(newer, start)
    decision = battery_commands(setup, schedule, observe(model_at(setup, start), layout, start))
    assert decision.running == (1, 2)
    assert decision.target_w == 100_000.0
    assert math.fsum(decision.commands.values()) == pytest.approx(100_000.0, abs=400)


def test_dispatches_are_read_as_the_battery_power_actor_reads_them(setup: Setup) -> None:
    # Its payload and target rules: the battery category means every battery, a typo
    # in the payload or a battery the site lacks is refused (named), a dry run runs
    # without a command.
    start = setup.scenario.spec.start + QUARTER
    layout = setup.layout

    def trade(dispatch_id: int, power_w: float) -> Dispatch:
        return trade_dispatch(dispatch_id, start, QUARTER, layout.battery_ids, power_w, start)

    every = TargetCategories(ElectricalComponentCategory.BATTERY)
    model = model_at(setup, start)
    observation = observe(model, layout, start)
    category = DispatchSchedule().add(replace(trade(1, -200_000.0), target=every), start)
    decision = battery_commands(setup, category, observation)
    assert decision.running == (1,)
    assert math.fsum(decision.commands.values()) == pytest.approx(-200_000.0, abs=400)

    refused = (
        DispatchSchedule()
        .add(replace(trade(2, -200_000.0), payload={"powr_w": -200_000.0}), start)
        .add(replace(trade(3, -200_000.0), target=TargetIds(99)), start)
        .add(replace(trade(4, -200_000.0), dry_run=True), start)
    )
    decision = battery_commands(setup, refused, observation)
    assert decision.running == (4,)
    assert set(decision.commands.values()) == {0.0}
    assert decision.target_w == 0.0
    assert [note.split(":")[:2] for note in decision.notes] == [
        ["dispatch 2", " payload.powr_w"],
        ["dispatch 3", " target"],
    ]
    assert "[99] are not batteries of this site" in decision.notes[1]


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
