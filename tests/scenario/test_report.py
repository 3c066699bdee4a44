"""The report: the files it writes, the totals, and the checks that must stay 0."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import pytest
from frequenz.client.dispatch.types import DispatchId

from edge_controller.tools.scenario.file import load_scenario
from edge_controller.tools.scenario.records import CommandCheck, ScenarioResult
from edge_controller.tools.scenario.report import PLOTS, summarize, summary_markdown, write_report
from edge_controller.tools.scenario.rounds import plan_vs_outcome
from edge_controller.tools.scenario.run import build_setup, run_scenario
from edge_controller.tools.scenario.value import value_figures
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
    assert names == {
        *PLOTS,
        "summary.md",
        "summary.json",
        "steps.csv",
        "periods.csv",
        "rounds.csv",
    }
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


@pytest.fixture(scope="module")
def optimal(tmp_path_factory: pytest.TempPathFactory) -> ScenarioResult:
    path = tmp_path_factory.mktemp("scenario") / "optimal.toml"
    # 04:00–07:00 with a 6-hour plan: it buys in the night's trough for the morning peak.
    text = scenario_text(
        start="2025-06-21T04:00:00+02:00", duration="3h", horizon="6h", kind="optimal"
    )
    path.write_text(text, encoding="utf-8")
    return run_scenario(load_scenario(path))


def test_each_round_shows_its_plan_against_what_happened(optimal: ScenarioResult) -> None:
    rows = plan_vs_outcome(optimal)
    assert [r.period_start for r in rows] == sorted(b.period_start for b in optimal.bids)
    cleared = {p.start: p for p in optimal.periods}
    traded = [r for r in rows if r.filled_mw != 0]
    assert traded
    for row in rows:
        period = cleared[row.period_start]
        assert row.cleared_price == period.price
        assert abs(row.filled_mw) == pytest.approx(period.filled_mw)
        # Ordered never more than planned (floored to lots, trimmed per battery), and a
        # fill never more than ordered, on the same side.
        assert abs(row.ordered_mw) <= abs(row.planned_mw) + 1e-6
        assert abs(row.filled_mw) <= abs(row.ordered_mw) + 1e-9
        assert row.filled_mw * row.ordered_mw >= 0
        assert len(row.soc_pct) == len(optimal.battery_ids)
        assert row.solve_ms is not None
    # The plan counted on what our volume does to the price: a sell lowers it, a buy
    # raises it — and the limit lets the order fill at that price.
    for row in traded:
        if row.ordered_mw < 0:
            assert row.expected_clearing_price <= row.expected_price
            assert row.limit_price is not None
            assert row.limit_price <= row.expected_clearing_price
        else:
            assert row.expected_clearing_price >= row.expected_price


def test_the_pool_energy_the_plan_expected_is_what_the_batteries_held(
    optimal: ScenarioResult,
) -> None:
    # Planned from the forecast at the round; measured at the period's end. They differ
    # by the fill and the inverters' real losses, not by more than one period's trade.
    rows = [r for r in plan_vs_outcome(optimal) if r.energy_wh is not None]
    assert rows
    for row in rows:
        assert row.planned_energy_wh is not None
        assert row.planned_energy_wh == pytest.approx(row.energy_wh, abs=0.5e6 * 0.25)


def test_the_report_shows_plan_vs_outcome_and_the_value(
    optimal: ScenarioResult, tmp_path: Path
) -> None:
    values = value_figures(optimal, build_setup(optimal.scenario))
    write_report(optimal, tmp_path, values=values)
    markdown = (tmp_path / "summary.md").read_text()
    assert "## Plan vs outcome" in markdown
    assert "## Value" in markdown
    assert f"| **optimal: value** | **{values.day.value_eur:.2f}** |" in markdown
    assert f"| perfect foresight | {values.perfect_foresight_eur:.2f} |" in markdown
    rows = plan_vs_outcome(optimal)
    table = markdown.split("## Plan vs outcome")[1]
    assert sum(1 for line in table.splitlines() if line[:5] in {"| 04:", "| 05:", "| 06:"}) == len(
        rows
    )
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["value"]["perfect_foresight_eur"] == pytest.approx(values.perfect_foresight_eur)
    assert summary["value"]["value_eur"] == pytest.approx(values.day.value_eur)
    assert len(summary["rounds"]) == len(rows)
    assert (tmp_path / "rounds.csv").read_text().count("\n") == len(rows) + 1
    # Perfect foresight knows what really happened: the run cannot beat it by much
    # (only by what the 2-hour window's end values at the mean price).
    assert values.day.value_eur <= values.perfect_foresight_eur + 1.0
