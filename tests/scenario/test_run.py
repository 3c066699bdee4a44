"""The day loop: a short scenario end to end."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from edge_controller.common.clock import ManualClock
from edge_controller.tools.scenario.errors import ScenarioError
from edge_controller.tools.scenario.file import load_scenario
from edge_controller.tools.scenario.inverter_commands import DISPATCH_TYPE
from edge_controller.tools.scenario.layout import SiteLayout
from edge_controller.tools.scenario.records import ScenarioResult
from edge_controller.tools.scenario.run import run_scenario
from edge_controller.trading.bids import Side
from tests.scenario.conftest import scenario_text

QUARTER = timedelta(minutes=15)


@pytest.fixture(scope="module")
def short_run(tmp_path_factory: pytest.TempPathFactory) -> ScenarioResult:
    path = tmp_path_factory.mktemp("scenario") / "short.toml"
    path.write_text(scenario_text(), encoding="utf-8")
    return run_scenario(load_scenario(path))


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
