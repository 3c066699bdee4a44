"""Bidding value: the optimizer against the threshold strategy and perfect foresight.

For each seeded day the scenario loop (`edge_controller.tools.scenario.run`: the market
model clearing every 15-minute period with our order in the book, hourly weather
forecasts and a load forecast with seeded errors, won trades as dispatches, the power
distribution on the simulated batteries of `config/sim-site.toml`) runs twice from
`config/scenario-day.toml`:

- (a) the optimizer (`[strategy] kind = "optimal"`, a 24 h plan re-solved every period);
- (b) the threshold strategy (`kind = "threshold"`, its shipped 6 h mean), once with
  each spread of `SPREADS` (20 EUR/MWh, the shipped default, up to 120);

and (c) perfect foresight, as the issue defines it: *the same program on the realised
prices and loads* — `plan_bids` once over the day, from the same SoCs, on the realised
production and load (no forecast margin) and with the same price-response model fed
the *realised* supply and demand curves (the market model's book on the actual
weather, cleared with 0…max_volume of ours in it), so it knows what every order of its
own would have cleared at and filled (`scenario.value.perfect_foresight`). It is not a
price-taking ceiling: a 0.5 MW order in this market moves the price by ~15 EUR/MWh
(one 0.2 MW coal block = 6 EUR/MWh), and no strategy can sell 0.5 MW at the price
without it. What (c) still has that (a) has not: exact prices and loads, one plan for
the whole day instead of one order per period decided 5–20 minutes ahead, continuous
volumes (no 0.1 MW flooring, no per-unit trimming), and no end-of-horizon beyond the
day (the optimizer's 24 h horizon runs into tomorrow and may hold energy for it, which
the day's value counts only at the mean price).

Day d (seed d + 1) starts at local midnight on day 1 + 17·d of 2025 (so 20 days cover
the seasons: weather, wind-driven prices and PV differ), with the forecast errors of
seed d + 1; the physics sub-step is 10 s. Same seeds, same figures.

**Value** (EUR, per day): trades at the clearing price − the degradation cost (the
scenario's `degradation_cost`, per MWh charged or discharged) + the change of the
stored energy at the day's mean realised price (see `scenario.value`), the same
accounting for all three.

**Which threshold.** The shipped spread (20 EUR/MWh) does not cover the round trip's
cost — 2 × the degradation cost (10 EUR/MWh charged, 10 discharged) plus the losses
of 0.95 one-way efficiency — so it loses money every day, and a ratio against it says
nothing. The comparison is therefore against the threshold strategy at its *best*
spread: the one of `SPREADS` whose total over the run's days is highest, chosen per
run *in hindsight* on the very days it is measured on (no strategy could choose it
beforehand; this favours the threshold). The shipped spread's figures stay beside it.

**Figures.** `value_pct_of_perfect_foresight`: the median over days of
100·(a)/(c). `value_ratio_vs_threshold`: Σ(a) / Σ(b at the best spread) over all
days — a ratio of totals, because the threshold strategy's value is ≤ 0 on some days,
where a per-day ratio means nothing. When that Σ(b) ≤ 0 no ratio means anything: it
prints "n/a" and the summary line above gives the difference Σ(a) − Σ(b) in EUR
instead. The summary line also gives the ratio and difference against the shipped
spread. `reserve_violations`: over all
days of (a), control steps × batteries below their floor (max(reserve, lower bound +
taper)) and below where they started. `solve_ms_p99`: the 99th percentile of the
optimizer's solve time over all rounds (96-period plans, each with its per-unit fill
check).

    .venv/bin/python benchmarks/bidding_value.py [--days 20]

The last line is machine-readable:

    value_pct_of_perfect_foresight=<median %> value_ratio_vs_threshold=<x>
    reserve_violations=<n> solve_ms_p99=<ms>                       (on one line)
"""

from __future__ import annotations

import argparse
import math
import statistics
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

import structlog

from edge_controller.tools.scenario.file import load_scenario
from edge_controller.tools.scenario.run import build_setup, run_scenario
from edge_controller.tools.scenario.value import (
    day_value,
    perfect_foresight,
    reserve_crossings,
    terminal_price,
)

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "config" / "scenario-day.toml"
SHIPPED_SPREAD = 20.0
"""EUR/MWh: `price_spread` in config/scenario-day.toml (and the actor's default)."""
SPREADS = (20.0, 40.0, 60.0, 80.0, 100.0, 120.0)
"""The threshold strategy's spreads tried (EUR/MWh); the best total is compared with."""


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return math.nan
    return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)]


def scenario_text(day: date, seed: int, kind: str, spread: float = SHIPPED_SPREAD) -> str:
    text = SHIPPED.read_text(encoding="utf-8")
    lines = []
    for line in text.splitlines():
        key = line.split("=")[0].strip()
        if key == "start":
            line = f"start = {day.isoformat()}T00:00:00+02:00"
        elif key == "seed":
            line = f"seed = {seed}"
        elif key == "physics_step":
            line = 'physics_step = "10s"'
        elif key == "site":
            line = f'site = "{ROOT / "config" / "sim-site.toml"}"'
        elif key == "file":
            line = f'file = "{ROOT / "config" / "market-default.toml"}"'
        elif key == "kind":
            line = f'kind = "{kind}"'
        elif key == "horizon" and kind == "threshold":
            line = 'horizon = "6h"'
        elif key == "price_spread":
            line = f"price_spread = {spread:g}"
        lines.append(line)
    return "\n".join(lines) + "\n"


def ratio_text(numerator: float, denominator: float) -> str:
    """A ratio of totals, or "n/a" when the denominator's total is not a gain."""
    return f"{numerator / denominator:.2f}" if denominator > 0 else "n/a"


def main(days: int) -> None:
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))
    rows = []
    solve_ms: list[float] = []
    violations = 0
    threshold_violations = dict.fromkeys(SPREADS, 0)
    threshold_by_spread: dict[float, list[float]] = {spread: [] for spread in SPREADS}
    began = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        for d in range(days):
            day = date(2025, 1, 1) + timedelta(days=17 * d)
            seed = d + 1
            runs = [("optimal", SHIPPED_SPREAD), *(("threshold", spread) for spread in SPREADS)]
            values = {}
            for kind, spread in runs:
                path = Path(folder) / f"day-{d}-{kind}-{spread:g}.toml"
                path.write_text(scenario_text(day, seed, kind, spread), encoding="utf-8")
                scenario = load_scenario(path)
                result = run_scenario(scenario)
                if kind == "optimal":
                    setup = build_setup(scenario)
                    terminal = terminal_price(setup)
                    best = perfect_foresight(setup, terminal).value_eur
                    solve_ms += [b.solve_ms for b in result.bids if b.solve_ms is not None]
                    violations += reserve_crossings(result)
                else:
                    threshold_violations[spread] += reserve_crossings(result)
                degradation = scenario.spec.degradation_eur_per_mwh
                values[kind, spread] = day_value(result, degradation=degradation, terminal=terminal)
                if kind == "threshold":
                    threshold_by_spread[spread].append(values[kind, spread].value_eur)
            optimal = values["optimal", SHIPPED_SPREAD]
            threshold = values["threshold", SHIPPED_SPREAD]
            pct = 100.0 * optimal.value_eur / best if best > 0 else math.nan
            rows.append((day, optimal.value_eur, threshold.value_eur, best, pct))
            print(
                f"{day} seed {seed:2d}: optimizer {optimal.value_eur:8.2f} EUR "
                f"({optimal.traded_mwh:.2f} MWh traded), threshold {threshold.value_eur:8.2f} EUR "
                f"({threshold.traded_mwh:.2f} MWh), perfect foresight {best:8.2f} EUR: "
                f"{pct:6.1f} %",
                flush=True,
            )
    total_a = math.fsum(r[1] for r in rows)
    total_b = math.fsum(r[2] for r in rows)
    total_c = math.fsum(r[3] for r in rows)
    median_pct = statistics.median(r[4] for r in rows if math.isfinite(r[4]))
    totals = {spread: math.fsum(found) for spread, found in threshold_by_spread.items()}
    best_spread = max(SPREADS, key=lambda spread: totals[spread])
    total_best = totals[best_spread]
    best_days = threshold_by_spread[best_spread]
    print(
        "\nthreshold by spread (EUR over the days): "
        + ", ".join(f"{spread:g} EUR/MWh: {total:.2f}" for spread, total in totals.items())
    )
    print(
        f"{days} days in {time.perf_counter() - began:.0f} s: optimizer {total_a:.2f} EUR; "
        f"threshold at its best spread, {best_spread:g} EUR/MWh (chosen in hindsight on these "
        f"days), {total_best:.2f} EUR (days <= 0: {sum(1 for v in best_days if v <= 0)}, "
        f"reserve crossings {threshold_violations[best_spread]}): ratio "
        f"{ratio_text(total_a, total_best)}, optimizer − threshold {total_a - total_best:.2f} EUR; "
        f"threshold at the shipped {SHIPPED_SPREAD:g} EUR/MWh {total_b:.2f} EUR "
        f"(days <= 0: {sum(1 for r in rows if r[2] <= 0)}, reserve crossings "
        f"{threshold_violations[SHIPPED_SPREAD]}): ratio {ratio_text(total_a, total_b)}, "
        f"optimizer − threshold {total_a - total_b:.2f} EUR; perfect foresight "
        f"{total_c:.2f} EUR, optimizer / perfect foresight over all days "
        f"{100 * total_a / total_c:.1f} %; {len(solve_ms)} solves, "
        f"p50 {percentile(solve_ms, 0.5):.1f} ms"
    )
    print(
        f"value_pct_of_perfect_foresight={median_pct:.1f} "
        f"value_ratio_vs_threshold={ratio_text(total_a, total_best)} "
        f"reserve_violations={violations} solve_ms_p99={percentile(solve_ms, 0.99):.1f}"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=20)
    main(parser.parse_args().days)
