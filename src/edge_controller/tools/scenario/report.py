"""The scenario report: totals and checks (`summarize`), and the files (`write_report`).

Files written to the output directory:

| file | what |
| --- | --- |
| `price.png` | cleared price per period, expected at bid time and day-ahead, our limits |
| `production.png` | PV and wind: actual, forecast at bid time, day-ahead forecast |
| `soc.png` | SoC per battery with its SoC bounds and the reserve |
| `trades.png` | bids and trades per period (+ buy, − sell), with the batteries' power |
| `grid.png` | grid power, load, production and batteries |
| `plan.png` | each round's plan against the outcome: volumes, prices, pool energy |
| `summary.md`, `.json` | totals, settlement, SoC range, checks; value; plan vs outcome |
| `steps.csv`, `periods.csv`, `rounds.csv` | the recorded time series; one row per bidding round |

Settlement: every trade is a dispatch for its period; *delivered* is the batteries'
average AC power over the period, *traded* the filled quantity (+ bought, − sold);
revenue = Σ sold MWh × price − Σ bought MWh × price (uniform price, EUR).

Value (when `write_report` is given `values`, as the `scenario` command does): the
run's value after wear and the stored-energy change, and perfect foresight's — the
optimizer's program on what really happened (`scenario.value`).

Checks ("violations", all 0 in a correct run): commands outside the bounds the
simulator had in force, commands it refused, steps with a battery outside its SoC
bounds, trades without a dispatch, and dispatches that never ran.

Plots use matplotlib's object API (`Figure` + Agg canvas, no pyplot): no global state,
safe in tests and threads. Times on the axes are local to the scenario's start offset.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta, tzinfo
from pathlib import Path
from typing import TYPE_CHECKING, Any

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from edge_controller.servers.sim.site_details import BatterySpec
from edge_controller.tools.scenario.file import show_duration
from edge_controller.tools.scenario.records import ScenarioResult
from edge_controller.tools.scenario.rounds import RoundRow, plan_vs_outcome
from edge_controller.trading.bids import Side

if TYPE_CHECKING:
    from edge_controller.tools.scenario.value import ValueFigures

PLOTS = ("price.png", "production.png", "soc.png", "trades.png", "grid.png", "plan.png")
"""The PNG files a report holds."""
SOC_TOLERANCE_PCT = 1e-6
"""Rounding slack when checking SoCs against their bounds."""
_DPI = 110
_SIZE = (11.0, 4.8)


@dataclass(frozen=True, slots=True)
class BatterySummary:
    """One battery over the run."""

    battery_id: int
    soc_start_pct: float
    soc_end_pct: float
    soc_min_pct: float
    soc_max_pct: float
    soc_lower_pct: float
    soc_upper_pct: float


@dataclass(frozen=True, slots=True)
class Checks:
    """What must be 0 in a correct run (see the module docstring)."""

    commands_sent: int
    commands_outside_bounds: int
    commands_refused: int
    soc_outside_bounds: int
    trades_without_dispatch: int
    dispatches_not_run: int

    @property
    def violations(self) -> int:
        """The sum of every check."""
        return (
            self.commands_outside_bounds
            + self.commands_refused
            + self.soc_outside_bounds
            + self.trades_without_dispatch
            + self.dispatches_not_run
        )


@dataclass(frozen=True, slots=True)
class Summary:
    """The run's totals (energies MWh, powers kW, prices EUR/MWh, money EUR)."""

    scenario: str
    site: str
    market: str
    start: str
    end: str
    step: str
    location: str
    weather_dataset: str
    weather: str
    """Where the weather comes from, in words (`weather_origin`)."""
    seed: int
    runtime_s: float
    periods_cleared: int
    bid_decisions: int
    orders_placed: int
    orders_rejected: int
    orders_filled: int
    orders_partly_filled: int
    orders_unfilled: int
    dispatches_created: int
    dispatches_ran: int
    energy_bought_mwh: float
    energy_sold_mwh: float
    energy_charged_mwh: float
    energy_discharged_mwh: float
    delivered_in_trades_mwh: float
    """Net battery energy during traded periods (+ charged, − discharged)."""
    traded_net_mwh: float
    """Net traded energy (+ bought, − sold): what `delivered_in_trades_mwh` should match."""
    settlement_deviation_mwh: float
    """Σ |delivered − traded| over traded periods."""
    max_period_deviation_kw: float
    revenue_eur: float
    average_buy_price: float | None
    average_sell_price: float | None
    price_min: float
    price_mean: float
    price_max: float
    pv_actual_mwh: float
    pv_forecast_at_bid_mwh: float
    """Over the periods bid for, the forecast the bid used."""
    pv_actual_in_bid_periods_mwh: float
    pv_day_ahead_mwh: float
    wind_actual_mwh: float
    wind_forecast_at_bid_mwh: float
    wind_actual_in_bid_periods_mwh: float
    wind_day_ahead_mwh: float
    load_mwh: float
    grid_import_mwh: float
    grid_export_mwh: float
    grid_peak_import_kw: float
    grid_peak_export_kw: float
    market_carbon_kg: float
    batteries: tuple[BatterySummary, ...]
    checks: Checks

    @property
    def violations(self) -> int:
        """Every check that failed, counted."""
        return self.checks.violations

    def to_json(self) -> dict[str, Any]:
        """Return the summary as JSON-ready data (with the violations' total)."""
        data = asdict(self)
        data["checks"]["violations"] = self.violations
        return data


def summarize(result: ScenarioResult) -> Summary:
    """Compute the totals and the checks of a run (pure)."""
    spec = result.scenario.spec
    steps, periods = result.steps, result.periods
    step_h = spec.step.total_seconds() / 3600.0
    mwh = step_h / 1e6  # W·step → MWh

    traded = [p for p in periods if p.filled_mw > 0]
    bought = [p for p in traded if p.traded_power_w > 0]
    sold = [p for p in traded if p.traded_power_w < 0]
    bought_mwh = math.fsum(p.filled_mw * p.hours for p in bought)
    sold_mwh = math.fsum(p.filled_mw * p.hours for p in sold)
    revenue = math.fsum(p.filled_mw * p.hours * p.price for p in sold) - math.fsum(
        p.filled_mw * p.hours * p.price for p in bought
    )
    deviations = [
        (p.delivered_power_w - p.traded_power_w)
        for p in traded
        if math.isfinite(p.delivered_power_w)
    ]
    ordered = [(p, p.order) for p in periods if p.order is not None]
    fully = sum(1 for p, order in ordered if p.filled_mw >= float(order.quantity_mw) - 1e-9)
    unfilled = sum(1 for p, _ in ordered if p.filled_mw == 0)
    ran = {d for s in steps for d in s.running}
    created = [int(d.id) for d in result.dispatches]

    bid_periods = {b.period_start for b in result.bids}
    in_bid = [s for s in steps if _period_of(s.at, spec.start, result) in bid_periods]

    batteries = []
    soc_outside = 0
    for column, battery_id in enumerate(result.battery_ids):
        lower, upper = _soc_bounds(result, battery_id)
        series = [s.soc_pct[column] for s in steps] + [result.final_soc_pct[column]]
        soc_outside += sum(
            1 for v in series if v < lower - SOC_TOLERANCE_PCT or v > upper + SOC_TOLERANCE_PCT
        )
        batteries.append(
            BatterySummary(
                battery_id, series[0], series[-1], min(series), max(series), lower, upper
            )
        )
    prices = [p.price for p in periods] or [math.nan]
    grid = [s.grid_w for s in steps] or [0.0]
    checks = Checks(
        commands_sent=len(result.commands),
        commands_outside_bounds=sum(1 for c in result.commands if not c.within_bounds),
        commands_refused=sum(1 for c in result.commands if c.refused is not None),
        soc_outside_bounds=soc_outside,
        trades_without_dispatch=sum(1 for p in traded if p.dispatch_id is None),
        dispatches_not_run=sum(1 for d in created if d not in ran),
    )
    return Summary(
        scenario=spec.source,
        site=result.scenario.site.source,
        market=spec.market_path.name if spec.market_path is not None else "default market",
        start=spec.start.isoformat(),
        end=spec.end.isoformat(),
        step=show_duration(spec.step),
        location=f"{result.location.latitude:.4f}, {result.location.longitude:.4f}",
        weather_dataset=result.dataset,
        weather=weather_origin(result),
        seed=spec.seed,
        runtime_s=round(result.runtime_s, 3),
        periods_cleared=len(periods),
        bid_decisions=len(result.bids),
        orders_placed=len(ordered),
        orders_rejected=sum(1 for b in result.bids if b.rejected is not None),
        orders_filled=fully,
        orders_partly_filled=len(ordered) - fully - unfilled,
        orders_unfilled=unfilled,
        dispatches_created=len(created),
        dispatches_ran=sum(1 for d in created if d in ran),
        energy_bought_mwh=bought_mwh,
        energy_sold_mwh=sold_mwh,
        energy_charged_mwh=math.fsum(max(0.0, s.battery_power_w) for s in steps) * mwh,
        energy_discharged_mwh=math.fsum(max(0.0, -s.battery_power_w) for s in steps) * mwh,
        delivered_in_trades_mwh=math.fsum(
            p.delivered_power_w * p.hours for p in traded if math.isfinite(p.delivered_power_w)
        )
        / 1e6,
        traded_net_mwh=bought_mwh - sold_mwh,
        settlement_deviation_mwh=math.fsum(
            abs(d) * p.hours
            for d, p in zip(
                deviations, (p for p in traded if math.isfinite(p.delivered_power_w)), strict=True
            )
        )
        / 1e6,
        max_period_deviation_kw=max((abs(d) for d in deviations), default=0.0) / 1e3,
        revenue_eur=revenue,
        average_buy_price=(
            math.fsum(p.filled_mw * p.price for p in bought)
            / math.fsum(p.filled_mw for p in bought)
            if bought
            else None
        ),
        average_sell_price=(
            math.fsum(p.filled_mw * p.price for p in sold) / math.fsum(p.filled_mw for p in sold)
            if sold
            else None
        ),
        price_min=min(prices),
        price_mean=math.fsum(prices) / len(prices),
        price_max=max(prices),
        pv_actual_mwh=-math.fsum(s.pv_w for s in steps) * mwh,
        pv_forecast_at_bid_mwh=-math.fsum(b.pv_forecast_w for b in result.bids)
        * _period_h(result)
        / 1e6,
        pv_actual_in_bid_periods_mwh=-math.fsum(s.pv_w for s in in_bid) * mwh,
        pv_day_ahead_mwh=-math.fsum(p.pv_w for p in result.day_ahead) * _period_h(result) / 1e6,
        wind_actual_mwh=-math.fsum(s.wind_w for s in steps) * mwh,
        wind_forecast_at_bid_mwh=-math.fsum(b.wind_forecast_w for b in result.bids)
        * _period_h(result)
        / 1e6,
        wind_actual_in_bid_periods_mwh=-math.fsum(s.wind_w for s in in_bid) * mwh,
        wind_day_ahead_mwh=-math.fsum(p.wind_w for p in result.day_ahead) * _period_h(result) / 1e6,
        load_mwh=math.fsum(s.load_w for s in steps) * mwh,
        grid_import_mwh=math.fsum(max(0.0, s.grid_w) for s in steps) * mwh,
        grid_export_mwh=math.fsum(max(0.0, -s.grid_w) for s in steps) * mwh,
        grid_peak_import_kw=max(0.0, max(grid)) / 1e3,
        grid_peak_export_kw=max(0.0, -min(grid)) / 1e3,
        market_carbon_kg=math.fsum(p.record.carbon_kg for p in periods),
        batteries=tuple(batteries),
        checks=checks,
    )


def _soc_bounds(result: ScenarioResult, battery_id: int) -> tuple[float, float]:
    details = result.scenario.site.by_id[battery_id].details
    if not isinstance(details, BatterySpec):  # pragma: no cover - ids come from the layout
        raise TypeError(f"component {battery_id} is not a battery")
    return details.soc_bounds_pct.lower, details.soc_bounds_pct.upper


def _period_h(result: ScenarioResult) -> float:
    return result.scenario.market.rules.period.total_seconds() / 3600.0


def _period_of(moment: datetime, start: datetime, result: ScenarioResult) -> datetime:
    period = result.scenario.market.rules.period
    return start + ((moment - start) // period) * period


# ---------------------------------------------------------------------- files


def write_report(
    result: ScenarioResult, out_dir: Path, *, values: ValueFigures | None = None
) -> list[Path]:
    """Write the plots, the summary and the CSV files into `out_dir` (created if needed).

    `values` (`scenario.value.value_figures`) adds the value section; it is computed
    apart because perfect foresight re-reads the weather and solves the day again.
    Returns the paths written.

    Raises:
        OSError: the directory or a file cannot be written.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = summarize(result)
    rows = plan_vs_outcome(result)
    written = [
        _save(plot_price(result), out_dir / "price.png"),
        _save(plot_production(result), out_dir / "production.png"),
        _save(plot_soc(result), out_dir / "soc.png"),
        _save(plot_trades(result), out_dir / "trades.png"),
        _save(plot_grid(result), out_dir / "grid.png"),
        _save(plot_plan(result, rows), out_dir / "plan.png"),
    ]
    data = summary.to_json()
    data["value"] = value_json(values) if values is not None else None
    data["rounds"] = [_round_json(row) for row in rows]
    json_path = out_dir / "summary.json"
    json_path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    md_path = out_dir / "summary.md"
    markdown = summary_markdown(summary)
    extra = [value_markdown(values)] if values is not None else []
    extra.append(rounds_markdown(rows, result.battery_ids, result.scenario.spec.start.tzinfo))
    md_path.write_text(markdown + "\n" + "\n".join(extra), encoding="utf-8")
    written += [
        json_path,
        md_path,
        _steps_csv(result, out_dir),
        _periods_csv(result, out_dir),
        _rounds_csv(rows, result.battery_ids, out_dir),
    ]
    return written


def value_json(values: ValueFigures) -> dict[str, Any]:
    """The value figures as JSON-ready data (EUR, EUR/MWh, MWh, %)."""
    day = values.day
    return {
        "strategy": values.strategy,
        "value_eur": day.value_eur,
        "trade_eur": day.trade_eur,
        "degradation_eur": day.degradation_eur,
        "stored_energy_change_eur": day.terminal_eur,
        "traded_mwh": day.traded_mwh,
        "perfect_foresight_eur": values.perfect_foresight_eur,
        "pct_of_perfect_foresight": values.pct_of_perfect_foresight,
        "terminal_price": values.terminal_price,
    }


def value_markdown(values: ValueFigures) -> str:
    """The `## Value` section: the run against perfect foresight."""
    day = values.day
    pct = values.pct_of_perfect_foresight
    return "\n".join(
        [
            "## Value",
            "",
            f"After wear, with the stored-energy change at the day's mean realised price "
            f"({values.terminal_price:.2f} EUR/MWh). Perfect foresight: the optimizer's "
            "program on the realised prices, loads and price response (what each of its own "
            "orders would have cleared at).",
            "",
            "| | EUR |",
            "| --- | --- |",
            f"| {values.strategy}: trades | {day.trade_eur:.2f} |",
            f"| {values.strategy}: wear ({day.traded_mwh:.3f} MWh traded) | "
            f"−{day.degradation_eur:.2f} |",
            f"| {values.strategy}: stored-energy change | {day.terminal_eur:.2f} |",
            f"| **{values.strategy}: value** | **{day.value_eur:.2f}** |",
            f"| perfect foresight | {values.perfect_foresight_eur:.2f} |",
            f"| {values.strategy} / perfect foresight | "
            f"{'n/a' if pct is None else f'{pct:.1f} %'} |",
            "",
        ]
    )


def rounds_markdown(
    rows: Sequence[RoundRow], battery_ids: Sequence[int], local: tzinfo | None = None
) -> str:
    """The `## Plan vs outcome` table: one row per bidding round, periods in `local` time."""

    def opt(value: float | None, digits: int = 2) -> str:
        return "–" if value is None else f"{value:.{digits}f}"

    head = (
        "| period | planned | ordered @ limit | filled | price expected / with us / cleared "
        "| pool kWh planned / measured | "
        + " | ".join(f"SoC {b}" for b in battery_ids)
        + " | solve ms |"
    )
    lines = [
        "## Plan vs outcome",
        "",
        "Per bidding round, for the period it decided (local time): MW + bought / − sold; "
        "prices EUR/MWh; the pool's stored energy and each battery's SoC at the period's end.",
        "",
        head,
        "| " + " | ".join(["---"] * (7 + len(battery_ids))) + " |",
    ]
    for row in rows:
        ordered = (
            "–" if row.limit_price is None else f"{row.ordered_mw:+.1f} @ {row.limit_price:.2f}"
        )
        planned_kwh = None if row.planned_energy_wh is None else row.planned_energy_wh / 1e3
        measured_kwh = None if row.energy_wh is None else row.energy_wh / 1e3
        socs = [f"{v:.1f} %" for v in row.soc_pct] or ["–"] * len(battery_ids)
        lines.append(
            f"| {row.period_start.astimezone(local).strftime('%H:%M')} | "
            f"{row.planned_mw:+.2f} | {ordered} | "
            f"{row.filled_mw:+.3f} | {row.expected_price:.2f} / "
            f"{row.expected_clearing_price:.2f} / {opt(row.cleared_price)} | "
            f"{opt(planned_kwh, 1)} / {opt(measured_kwh, 1)} | "
            + " | ".join(socs)
            + f" | {opt(row.solve_ms, 1)} |"
        )
    return "\n".join([*lines, ""])


def _round_json(row: RoundRow) -> dict[str, Any]:
    return {
        "period_start": row.period_start.isoformat(),
        "decided_at": row.decided_at.isoformat(),
        "planned_mw": row.planned_mw,
        "ordered_mw": row.ordered_mw,
        "limit_price": row.limit_price,
        "filled_mw": row.filled_mw,
        "expected_price": row.expected_price,
        "expected_clearing_price": row.expected_clearing_price,
        "cleared_price": row.cleared_price,
        "planned_energy_wh": row.planned_energy_wh,
        "energy_wh": row.energy_wh,
        "soc_pct": list(row.soc_pct),
        "solve_ms": row.solve_ms,
    }


def _rounds_csv(rows: Sequence[RoundRow], battery_ids: Sequence[int], out_dir: Path) -> Path:
    path = out_dir / "rounds.csv"

    def opt(value: float | None, digits: int) -> str:
        return "" if value is None else f"{value:.{digits}f}"

    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            [
                "period_start",
                "decided_at",
                "planned_mw",
                "ordered_mw",
                "limit_price",
                "filled_mw",
                "expected_price",
                "expected_clearing_price",
                "cleared_price",
                "planned_energy_wh",
                "energy_wh",
                *(f"soc_{b}_pct" for b in battery_ids),
                "solve_ms",
            ]
        )
        for row in rows:
            socs = [f"{v:.4f}" for v in row.soc_pct] or [""] * len(battery_ids)
            writer.writerow(
                [
                    row.period_start.isoformat(),
                    row.decided_at.isoformat(),
                    f"{row.planned_mw:.4f}",
                    f"{row.ordered_mw:.1f}",
                    opt(row.limit_price, 2),
                    f"{row.filled_mw:.3f}",
                    f"{row.expected_price:.2f}",
                    f"{row.expected_clearing_price:.2f}",
                    opt(row.cleared_price, 2),
                    opt(row.planned_energy_wh, 1),
                    opt(row.energy_wh, 1),
                    *socs,
                    opt(row.solve_ms, 2),
                ]
            )
    return path


def weather_origin(result: ScenarioResult) -> str:
    """Say where the run's weather was measured and that it is replayed at the site.

    The bundled measured weather is a US station's typical year (the NREL TMY3 files
    `pvlib` ships); a site elsewhere gets the nearest station's, shifted to the site's
    solar time (`weather.data`). Without this line a Berlin site shows North Carolina
    weather unexplained.
    """
    return (
        f"measured at {result.weather_station}, a bundled sample (the NREL TMY3 data pvlib "
        f"ships; the nearest of its stations), replayed at the site's coordinates "
        f"{result.location.latitude:.4f}, {result.location.longitude:.4f} on local solar time"
    )


def summary_markdown(summary: Summary) -> str:
    """Return `summary.md`: the totals, one table per topic, and the plots."""

    def number(value: float | None, digits: int = 3) -> str:
        return "–" if value is None or not math.isfinite(value) else f"{value:,.{digits}f}"

    c = summary.checks
    lines = [
        f"# Scenario {summary.scenario}",
        "",
        f"{summary.start} → {summary.end}, step {summary.step}; site `{summary.site}`, "
        f"market `{summary.market}`; weather `{summary.weather_dataset}` at "
        f"{summary.location}, seed {summary.seed}. Ran in {summary.runtime_s:.2f} s.",
        "",
        f"Weather: {summary.weather}.",
        "",
        f"**Violations: {summary.violations}**",
        "",
        "## Trading",
        "",
        "| | |",
        "| --- | --- |",
        f"| periods cleared / bid decisions | {summary.periods_cleared} / "
        f"{summary.bid_decisions} |",
        f"| orders placed (filled / partly / not / rejected) | {summary.orders_placed} "
        f"({summary.orders_filled} / {summary.orders_partly_filled} / "
        f"{summary.orders_unfilled} / {summary.orders_rejected}) |",
        f"| energy bought / sold | {number(summary.energy_bought_mwh)} / "
        f"{number(summary.energy_sold_mwh)} MWh |",
        f"| average buy / sell price | {number(summary.average_buy_price, 2)} / "
        f"{number(summary.average_sell_price, 2)} EUR/MWh |",
        f"| revenue | {number(summary.revenue_eur, 2)} EUR |",
        f"| price min / mean / max | {number(summary.price_min, 2)} / "
        f"{number(summary.price_mean, 2)} / {number(summary.price_max, 2)} EUR/MWh |",
        f"| market CO2 | {number(summary.market_carbon_kg, 0)} kg |",
        "",
        "## Settlement (traded vs delivered)",
        "",
        "| | |",
        "| --- | --- |",
        f"| dispatches created / ran | {summary.dispatches_created} / {summary.dispatches_ran} |",
        f"| traded net (+ bought) | {number(summary.traded_net_mwh)} MWh |",
        f"| delivered net in traded periods (+ charged) | "
        f"{number(summary.delivered_in_trades_mwh)} MWh |",
        f"| Σ \\|delivered − traded\\| | {number(summary.settlement_deviation_mwh, 4)} MWh |",
        f"| largest period deviation | {number(summary.max_period_deviation_kw, 1)} kW |",
        f"| batteries charged / discharged (whole run) | {number(summary.energy_charged_mwh)} / "
        f"{number(summary.energy_discharged_mwh)} MWh |",
        "",
        "## Site",
        "",
        "| | actual | forecast at bid (same periods: actual) | day-ahead |",
        "| --- | --- | --- | --- |",
        f"| PV | {number(summary.pv_actual_mwh)} MWh | {number(summary.pv_forecast_at_bid_mwh)} "
        f"({number(summary.pv_actual_in_bid_periods_mwh)}) MWh | "
        f"{number(summary.pv_day_ahead_mwh)} MWh |",
        f"| wind | {number(summary.wind_actual_mwh)} MWh | "
        f"{number(summary.wind_forecast_at_bid_mwh)} "
        f"({number(summary.wind_actual_in_bid_periods_mwh)}) MWh | "
        f"{number(summary.wind_day_ahead_mwh)} MWh |",
        "",
        f"Load {number(summary.load_mwh)} MWh; grid import {number(summary.grid_import_mwh)} "
        f"MWh, export {number(summary.grid_export_mwh)} MWh; peaks "
        f"{number(summary.grid_peak_import_kw, 1)} kW import, "
        f"{number(summary.grid_peak_export_kw, 1)} kW export.",
        "",
        "| battery | SoC start | end | min | max | bounds |",
        "| --- | --- | --- | --- | --- | --- |",
        *(
            f"| {b.battery_id} | {b.soc_start_pct:.1f} % | {b.soc_end_pct:.1f} % | "
            f"{b.soc_min_pct:.1f} % | {b.soc_max_pct:.1f} % | "
            f"{b.soc_lower_pct:g}–{b.soc_upper_pct:g} % |"
            for b in summary.batteries
        ),
        "",
        "## Checks",
        "",
        "| | |",
        "| --- | --- |",
        f"| commands sent | {c.commands_sent} |",
        f"| commands outside the bounds in force | {c.commands_outside_bounds} |",
        f"| commands refused by the simulator | {c.commands_refused} |",
        f"| steps with a battery outside its SoC bounds | {c.soc_outside_bounds} |",
        f"| trades without a dispatch | {c.trades_without_dispatch} |",
        f"| dispatches that never ran | {c.dispatches_not_run} |",
        "",
        "## Plots",
        "",
        *(f"![{name[:-4]}]({name})" for name in PLOTS),
        "",
    ]
    return "\n".join(lines)


def _steps_csv(result: ScenarioResult, out_dir: Path) -> Path:
    path = out_dir / "steps.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            [
                "time",
                *(f"soc_{b}_pct" for b in result.battery_ids),
                *(f"inverter_{i}_w" for i in result.inverter_ids),
                "battery_w",
                "target_w",
                "commanded_w",
                "excess_w",
                "pv_w",
                "wind_w",
                "load_w",
                "grid_w",
                "running",
            ]
        )
        for s in result.steps:
            writer.writerow(
                [
                    s.at.isoformat(),
                    *(f"{v:.4f}" for v in s.soc_pct),
                    *(f"{v:.1f}" for v in s.inverter_power_w),
                    *(
                        f"{v:.1f}"
                        for v in (
                            s.battery_power_w,
                            s.target_w,
                            s.commanded_w,
                            s.excess_w,
                            s.pv_w,
                            s.wind_w,
                            s.load_w,
                            s.grid_w,
                        )
                    ),
                    " ".join(str(d) for d in s.running),
                ]
            )
    return path


def _periods_csv(result: ScenarioResult, out_dir: Path) -> Path:
    path = out_dir / "periods.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            [
                "start",
                "price",
                "expected_price",
                "side",
                "quantity_mw",
                "limit_price",
                "filled_mw",
                "dispatch_id",
                "traded_w",
                "delivered_w",
                "demand_mw",
                "coal_mw",
                "carbon_kg",
            ]
        )
        for p in result.periods:
            writer.writerow(
                [
                    p.start.isoformat(),
                    f"{p.price:.2f}",
                    "" if p.expected_price is None else f"{p.expected_price:.2f}",
                    "" if p.order is None else p.order.side.value,
                    "" if p.order is None else str(p.order.quantity_mw),
                    "" if p.order is None else str(p.order.limit_price),
                    f"{p.filled_mw:.3f}",
                    "" if p.dispatch_id is None else p.dispatch_id,
                    f"{p.traded_power_w:.1f}",
                    "" if not math.isfinite(p.delivered_power_w) else f"{p.delivered_power_w:.1f}",
                    f"{p.record.demand_mw:.3f}",
                    f"{p.record.coal_mw:.3f}",
                    f"{p.record.carbon_kg:.1f}",
                ]
            )
    return path


# ---------------------------------------------------------------------- plots


def _save(figure: Figure, path: Path) -> Path:
    FigureCanvasAgg(figure)
    figure.savefig(path, dpi=_DPI)
    return path


class _TimeAxis:
    """Hours since the scenario's start, labelled in its local time."""

    def __init__(self, result: ScenarioResult) -> None:
        spec = result.scenario.spec
        self.start = spec.start
        self.hours = spec.duration.total_seconds() / 3600.0

    def x(self, moment: datetime) -> float:
        return (moment - self.start).total_seconds() / 3600.0

    def xs(self, moments: Sequence[datetime]) -> list[float]:
        return [self.x(m) for m in moments]

    def format(self, axes: Axes, *, label: bool = True) -> None:
        every = max(1, math.ceil(self.hours / 8))
        ticks = [float(h) for h in range(0, math.floor(self.hours) + 1, every)]
        days = self.hours > 24
        axes.set_xticks(ticks)
        axes.set_xticklabels(
            [
                (self.start + timedelta(hours=h)).strftime("%a %H:%M" if days else "%H:%M")
                for h in ticks
            ]
        )
        axes.set_xlim(0.0, self.hours)
        axes.grid(True, alpha=0.3)
        if label:
            offset = self.start.strftime("%z")
            axes.set_xlabel(f"local time (UTC{offset[:3]}:{offset[3:]})")


def _figure(rows: int = 1) -> tuple[Figure, list[Axes]]:
    figure = Figure(figsize=(_SIZE[0], _SIZE[1] * (0.65 * rows + 0.35)), layout="constrained")
    first = figure.add_subplot(rows, 1, 1)
    axes = [first] + [figure.add_subplot(rows, 1, r + 1, sharex=first) for r in range(1, rows)]
    return figure, axes


def _period_steps(
    axis: _TimeAxis, starts: Sequence[datetime], values: Sequence[float], period: timedelta
) -> tuple[list[float], list[float]]:
    """Return x and y of a step line that holds each value over its period."""
    if not starts:
        return [], []
    xs = [*axis.xs(starts), axis.x(starts[-1] + period)]
    return xs, [*values, values[-1]]


def plot_price(result: ScenarioResult) -> Figure:
    """Clearing price per period, expected prices, and our orders' limit prices."""
    axis = _TimeAxis(result)
    period = result.scenario.market.rules.period
    figure, (ax,) = _figure()
    periods = result.periods
    starts = [p.start for p in periods]
    ax.step(
        *_period_steps(axis, starts, [p.price for p in periods], period),
        where="post",
        color="black",
        linewidth=1.8,
        label="cleared price",
    )
    expected = [(p.start, p.expected_price) for p in periods if p.expected_price is not None]
    if expected:
        ax.step(
            *_period_steps(axis, [s for s, _ in expected], [v for _, v in expected], period),
            where="post",
            color="tab:blue",
            linestyle="--",
            label="expected at bid time",
        )
    ahead = result.day_ahead
    ax.step(
        *_period_steps(axis, [p.start for p in ahead], [p.expected_price for p in ahead], period),
        where="post",
        color="tab:gray",
        linestyle=":",
        label="expected day-ahead",
    )
    for side, marker, colour in ((Side.BUY, "^", "tab:green"), (Side.SELL, "v", "tab:red")):
        mine = [p for p in periods if p.order is not None and p.order.side is side]
        if not mine:
            continue
        mids = [axis.x(p.start + period / 2) for p in mine]
        limits = [float(p.order.limit_price) for p in mine if p.order is not None]
        filled = [p.filled_mw > 0 for p in mine]
        ax.scatter(
            [x for x, f in zip(mids, filled, strict=True) if f],
            [v for v, f in zip(limits, filled, strict=True) if f],
            marker=marker,
            color=colour,
            zorder=3,
            label=f"{side.value} limit (filled)",
        )
        ax.scatter(
            [x for x, f in zip(mids, filled, strict=True) if not f],
            [v for v, f in zip(limits, filled, strict=True) if not f],
            marker=marker,
            facecolors="none",
            edgecolors=colour,
            zorder=3,
            label=f"{side.value} limit (not filled)",
        )
    ax.set_ylabel("EUR/MWh")
    ax.set_title("Price: cleared per delivery period, expected, and our limit prices")
    ax.legend(loc="best", fontsize="small")
    axis.format(ax)
    return figure


def plot_production(result: ScenarioResult) -> Figure:
    """PV and wind production: actual, forecast at bid time, day-ahead forecast (kW)."""
    axis = _TimeAxis(result)
    period = result.scenario.market.rules.period
    figure, axes = _figure(2)
    steps = result.steps
    times = axis.xs([s.at for s in steps])
    bids = sorted(result.bids, key=lambda b: b.period_start)
    ahead = result.day_ahead
    for ax, name, actual, at_bid, day in (
        (
            axes[0],
            "PV",
            [s.pv_w for s in steps],
            [b.pv_forecast_w for b in bids],
            [p.pv_w for p in ahead],
        ),
        (
            axes[1],
            "wind",
            [s.wind_w for s in steps],
            [b.wind_forecast_w for b in bids],
            [p.wind_w for p in ahead],
        ),
    ):
        ax.step(
            times,
            [-v / 1e3 for v in actual],
            where="post",
            color="tab:orange",
            linewidth=1.2,
            label="actual",
        )
        ax.step(
            *_period_steps(
                axis, [b.period_start for b in bids], [-v / 1e3 for v in at_bid], period
            ),
            where="post",
            color="tab:blue",
            linestyle="--",
            label="forecast at bid time",
        )
        ax.step(
            *_period_steps(axis, [p.start for p in ahead], [-v / 1e3 for v in day], period),
            where="post",
            color="tab:gray",
            linestyle=":",
            label="day-ahead forecast",
        )
        ax.set_ylabel(f"{name} produced, kW")
        ax.legend(loc="upper left", fontsize="small")
        axis.format(ax, label=ax is axes[-1])
    axes[0].set_title("Production: forecast vs actual")
    return figure


def plot_soc(result: ScenarioResult) -> Figure:
    """SoC per battery with its SoC bounds (dotted) and the strategy's reserve."""
    axis = _TimeAxis(result)
    figure, (ax,) = _figure()
    end = result.scenario.spec.end
    times = [*axis.xs([s.at for s in result.steps]), axis.x(end)]
    specs = result.scenario.site.by_id
    colours = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown")
    for column, battery_id in enumerate(result.battery_ids):
        colour = colours[column % len(colours)]
        series = [*(s.soc_pct[column] for s in result.steps), result.final_soc_pct[column]]
        # Balanced batteries run together: narrower lines on top keep each visible.
        width = max(0.8, 3.2 - 0.6 * column)
        ax.plot(
            times,
            series,
            color=colour,
            linewidth=width,
            label=f"{specs[battery_id].name} ({battery_id})",
        )
        for value in _soc_bounds(result, battery_id):
            ax.axhline(value, color=colour, linestyle=":", linewidth=0.8)
    reserve = result.scenario.spec.strategy.reserve_soc_pct
    ax.axhline(
        reserve, color="black", linestyle="--", linewidth=0.8, label=f"reserve {reserve:g} %"
    )
    ax.set_ylim(0, 100)
    ax.set_ylabel("SoC, %")
    ax.set_title("State of charge per battery (dotted: its SoC bounds)")
    ax.legend(loc="best", fontsize="small")
    axis.format(ax)
    return figure


def plot_trades(result: ScenarioResult) -> Figure:
    """Our orders and their fills per period (MW, + buy, − sell), with the batteries' power."""
    axis = _TimeAxis(result)
    period = result.scenario.market.rules.period
    width = period.total_seconds() / 3600.0
    figure, (ax,) = _figure()
    ordered = [p for p in result.periods if p.order is not None]

    def signed(p_side: Side, value: float) -> float:
        return value if p_side is Side.BUY else -value

    if ordered:
        xs = axis.xs([p.start for p in ordered])
        bids = [signed(p.order.side, float(p.order.quantity_mw)) for p in ordered if p.order]
        fills = [signed(p.order.side, p.filled_mw) for p in ordered if p.order]
        ax.bar(
            xs,
            bids,
            width=width,
            align="edge",
            facecolor="none",
            edgecolor="tab:gray",
            label="order (bid)",
        )
        ax.bar(
            xs,
            fills,
            width=width,
            align="edge",
            color="tab:cyan",
            alpha=0.7,
            label="filled (trade → dispatch)",
        )
    steps = result.steps
    times = axis.xs([s.at for s in steps])
    ax.step(
        times,
        [s.battery_power_w / 1e6 for s in steps],
        where="post",
        color="tab:red",
        linewidth=1.0,
        label="batteries, delivered",
    )
    ax.step(
        times,
        [s.target_w / 1e6 for s in steps],
        where="post",
        color="black",
        linestyle="--",
        linewidth=0.8,
        label="dispatch target",
    )
    ax.axhline(0.0, color="black", linewidth=0.5)
    ax.set_ylabel("MW (+ buy / charge, − sell / discharge)")
    ax.set_title("Bids and trades per delivery period, and the batteries' power")
    ax.legend(loc="best", fontsize="small")
    axis.format(ax)
    return figure


def plot_plan(result: ScenarioResult, rows: Sequence[RoundRow] | None = None) -> Figure:
    """Each round's plan for its period against the outcome: volume, price, pool energy."""
    rows = plan_vs_outcome(result) if rows is None else rows
    axis = _TimeAxis(result)
    period = result.scenario.market.rules.period
    width = period.total_seconds() / 3600.0
    figure, (volume, price, energy) = _figure(3)
    xs = axis.xs([r.period_start for r in rows])
    volume.bar(
        xs,
        [r.planned_mw for r in rows],
        width=width,
        align="edge",
        facecolor="none",
        edgecolor="tab:gray",
        label="planned",
    )
    volume.bar(
        xs,
        [r.filled_mw for r in rows],
        width=width * 0.6,
        align="edge",
        color="tab:cyan",
        alpha=0.8,
        label="filled",
    )
    volume.axhline(0.0, color="black", linewidth=0.5)
    volume.set_ylabel("MW (+ buy, − sell)")
    volume.set_title("Each round's plan for its period against what happened")
    volume.legend(loc="best", fontsize="small")
    centres = [x + width / 2 for x in xs]
    price.plot(centres, [r.expected_price for r in rows], color="tab:gray", label="expected")
    price.plot(
        centres,
        [r.expected_clearing_price for r in rows],
        color="tab:blue",
        linestyle="--",
        label="expected with our volume",
    )
    price.plot(
        centres,
        [math.nan if r.cleared_price is None else r.cleared_price for r in rows],
        color="black",
        label="cleared",
    )
    price.set_ylabel("EUR/MWh")
    price.legend(loc="best", fontsize="small")
    ends = [x + width for x in xs]
    energy.plot(
        ends,
        [math.nan if r.planned_energy_wh is None else r.planned_energy_wh / 1e3 for r in rows],
        color="tab:blue",
        linestyle="--",
        marker=".",
        label="planned",
    )
    energy.plot(
        ends,
        [math.nan if r.energy_wh is None else r.energy_wh / 1e3 for r in rows],
        color="tab:red",
        label="measured",
    )
    energy.set_ylabel("pool kWh at the period's end")
    energy.legend(loc="best", fontsize="small")
    for ax in (volume, price):
        axis.format(ax, label=False)
    axis.format(energy)
    return figure


def plot_grid(result: ScenarioResult) -> Figure:
    """Grid power with its parts: load, production, batteries (kW, passive sign)."""
    axis = _TimeAxis(result)
    figure, (ax,) = _figure()
    steps = result.steps
    times = axis.xs([s.at for s in steps])
    for values, label, colour, width in (
        ([s.load_w for s in steps], "load", "tab:purple", 0.9),
        ([s.pv_w + s.wind_w for s in steps], "PV + wind", "tab:orange", 0.9),
        ([s.battery_power_w for s in steps], "batteries", "tab:red", 0.9),
        ([s.grid_w for s in steps], "grid (+ import, − export)", "black", 1.6),
    ):
        ax.step(
            times,
            [v / 1e3 for v in values],
            where="post",
            label=label,
            color=colour,
            linewidth=width,
        )
    ax.axhline(0.0, color="black", linewidth=0.5)
    ax.set_ylabel("kW (passive sign: + consumed)")
    ax.set_title("Grid power and its parts")
    ax.legend(loc="best", fontsize="small")
    axis.format(ax)
    return figure


__all__ = [
    "PLOTS",
    "BatterySummary",
    "Checks",
    "Summary",
    "plot_grid",
    "plot_plan",
    "plot_price",
    "plot_production",
    "plot_soc",
    "plot_trades",
    "rounds_markdown",
    "summarize",
    "summary_markdown",
    "value_json",
    "value_markdown",
    "write_report",
]
