"""The scenario day's value and reserve: the optimizer never crosses a battery's floor."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_controller.tools.scenario.file import load_scenario
from edge_controller.tools.scenario.records import ScenarioResult
from edge_controller.tools.scenario.run import build_setup, run_scenario
from edge_controller.tools.scenario.value import (
    day_value,
    perfect_foresight,
    reserve_crossings,
    reserve_floors,
    terminal_price,
)
from tests.scenario.conftest import SHIPPED


def shipped_day(tmp_path: Path, kind: str) -> ScenarioResult:
    """The shipped day with a 10 s physics sub-step (the same trades, four times faster)."""
    text = SHIPPED.read_text(encoding="utf-8")
    text = text.replace('physics_step = "1s"', 'physics_step = "10s"')
    text = text.replace('kind = "optimal"', f'kind = "{kind}"')
    if kind == "threshold":  # its mean price over 6 h, as the day shipped before
        text = text.replace('horizon = "24h"', 'horizon = "6h"')
    text = text.replace('site = "sim-site.toml"', f'site = "{SHIPPED.parent / "sim-site.toml"}"')
    text = text.replace(
        'file = "market-default.toml"', f'file = "{SHIPPED.parent / "market-default.toml"}"'
    )
    path = tmp_path / f"{kind}.toml"
    path.write_text(text, encoding="utf-8")
    return run_scenario(load_scenario(path))


@pytest.fixture(scope="module")
def optimal(tmp_path_factory: pytest.TempPathFactory) -> ScenarioResult:
    return shipped_day(tmp_path_factory.mktemp("value"), "optimal")


def test_the_optimizer_keeps_every_battery_above_its_floor(optimal: ScenarioResult) -> None:
    floors = reserve_floors(optimal)
    assert floors == (20.0, 20.0, 20.0, 20.0)
    for index, floor in enumerate(floors):
        lowest = min(min(s.soc_pct[index] for s in optimal.steps), optimal.final_soc_pct[index])
        assert lowest >= floor, optimal.battery_ids[index]
    assert reserve_crossings(optimal) == 0
    assert any(p.filled_mw > 0 for p in optimal.periods), "no trade: the check proves nothing"


def test_the_threshold_strategy_crosses_the_reserve_of_the_low_battery(tmp_path: Path) -> None:
    # The pool-average sizing the optimizer replaces: battery 31 (window 5-95 %) ends
    # below its 20 % reserve while the pool's average stays above it.
    threshold = shipped_day(tmp_path, "threshold")
    assert reserve_crossings(threshold) > 0
    assert threshold.final_soc_pct[threshold.battery_ids.index(31)] < 20.0


def test_every_round_has_a_plan_over_the_day(optimal: ScenarioResult) -> None:
    assert all(len(b.plan) == 96 for b in optimal.bids)
    assert all(b.solve_ms is not None and b.solve_ms > 0 for b in optimal.bids)


def test_the_value_counts_wear_and_the_stored_energy(optimal: ScenarioResult) -> None:
    value = day_value(optimal, degradation=10.0, terminal=100.0)
    assert value.degradation_eur == pytest.approx(10.0 * value.traded_mwh)
    assert value.value_eur == pytest.approx(
        value.trade_eur - value.degradation_eur + value.terminal_eur
    )


def test_perfect_foresight_is_worth_at_least_what_was_earned(optimal: ScenarioResult) -> None:
    setup = build_setup(optimal.scenario)
    terminal = terminal_price(setup)
    best = perfect_foresight(setup, terminal)
    earned = day_value(optimal, degradation=10.0, terminal=terminal)
    assert best.value_eur >= earned.value_eur
