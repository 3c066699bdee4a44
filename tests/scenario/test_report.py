"""The report: the files it writes, the totals, and the checks that must stay 0."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import pytest
from frequenz.client.dispatch.types import DispatchId

from edge_controller.scenario.file import load_scenario
from edge_controller.scenario.records import CommandCheck, ScenarioResult
from edge_controller.scenario.report import PLOTS, summarize, summary_markdown, write_report
from edge_controller.scenario.run import run_scenario
from tests.scenario.conftest import scenario_text

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def result(tmp_path_factory: pytest.TempPathFactory) -> ScenarioResult:
    path = tmp_path_factory.mktemp("scenario") / "short.toml"
    path.write_text(scenario_text(), encoding="utf-8")
    return run_scenario(load_scenario(path))


def test_the_report_writes_every_plot_and_the_summaries(
    result: ScenarioResult, tmp_path: Path
) -> None:
    out = tmp_path / "report" / "day"
    written = write_report(result, out)
    names = {p.name for p in written}
    assert names == {*PLOTS, "summary.md", "summary.json", "steps.csv", "periods.csv"}
    for name in PLOTS:
        data = (out / name).read_bytes()
        assert data.startswith(PNG_SIGNATURE), name
        assert len(data) > 10_000, name  # axes, lines and labels, not an empty canvas
    summary = json.loads((out / "summary.json").read_text())
    assert summary["checks"]["violations"] == 0
    assert summary["checks"]["commands_sent"] == len(result.commands)
    markdown = (out / "summary.md").read_text()
    assert "**Violations: 0**" in markdown
    assert all(f"]({name})" in markdown for name in PLOTS)
    assert (out / "steps.csv").read_text().count("\n") == len(result.steps) + 1
    assert (out / "periods.csv").read_text().count("\n") == len(result.periods) + 1


def test_the_summary_says_where_the_weather_was_measured(result: ScenarioResult) -> None:
    summary = summarize(result)
    assert summary.weather_dataset == "greensboro_nc"
    assert summary.weather.startswith(
        "measured at Greensboro Piedmont Triad Int, NC (USAF 723170), a bundled sample"
    )
    assert summary.weather.endswith(
        "replayed at the site's coordinates 52.5200, 13.4050 on local solar time"
    )
    assert f"Weather: {summary.weather}." in summary_markdown(summary)
    assert summary.to_json()["weather"] == summary.weather


def test_the_totals_follow_the_records(result: ScenarioResult) -> None:
    summary = summarize(result)
    traded = [p for p in result.periods if p.filled_mw > 0]
    bought = sum(p.filled_mw * p.hours for p in traded if p.traded_power_w > 0)
    sold = sum(p.filled_mw * p.hours for p in traded if p.traded_power_w < 0)
    assert summary.energy_bought_mwh == pytest.approx(bought)
    assert summary.energy_sold_mwh == pytest.approx(sold)
    assert bought > 0
    assert sold > 0
    revenue = sum(
        p.filled_mw * p.hours * p.price * (-1 if p.traded_power_w > 0 else 1) for p in traded
    )
    assert summary.revenue_eur == pytest.approx(revenue)
    assert summary.dispatches_created == summary.dispatches_ran == len(traded)
    assert summary.delivered_in_trades_mwh == pytest.approx(bought - sold, abs=1e-3)
    assert summary.settlement_deviation_mwh < 1e-3
    assert summary.orders_placed == (
        summary.orders_filled + summary.orders_partly_filled + summary.orders_unfilled
    )
    for battery in summary.batteries:
        assert battery.soc_lower_pct <= battery.soc_min_pct <= battery.soc_max_pct
        assert battery.soc_max_pct <= battery.soc_upper_pct
    assert summary.pv_actual_mwh > 0
    assert math.isclose(summary.pv_actual_in_bid_periods_mwh, summary.pv_actual_mwh, rel_tol=0.2)
    assert summary.violations == 0


def test_a_failed_check_counts_as_a_violation(result: ScenarioResult) -> None:
    first = result.commands[0]
    broken = replace(
        result,
        commands=(
            replace(first, within_bounds=False),
            CommandCheck(first.at, first.inverter_id, 1e9, 0.0, True, "OUT_OF_RANGE: ..."),
            *result.commands[1:],
        ),
        dispatches=(
            *result.dispatches,
            replace(result.dispatches[0], id=DispatchId(999)),
        ),
    )
    checks = summarize(broken).checks
    assert checks.commands_outside_bounds == 1
    assert checks.commands_refused == 1
    assert checks.dispatches_not_run == 1
    assert checks.violations == 3
