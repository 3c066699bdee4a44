"""The `scenario` subcommand: run a simulated day of the whole loop and write its report.

    edge-controller scenario FILE --out DIR

`cli.py` wires it in with `add_scenario_parser(commands)` and, for the `scenario`
command, `return run_scenario_command(args)`. Light to import: the loop (numpy, pvlib,
the market model) and matplotlib load only when the subcommand runs.

Prints where the report went, a few totals, and the run's value against perfect
foresight (`scenario.value`) on stdout. Exit codes as for every
command: 0 done; 1 the run finished but a check failed (a command outside its bounds,
a SoC outside its bounds, a trade that never ran: see `report`), or it crashed;
2 bad input — the scenario, site or market file, or an `--out` that cannot be
written — with a message naming the file (and key) or the flag.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

COMMAND = "scenario"


def add_scenario_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `scenario` to the command line's subcommands."""
    parser = commands.add_parser(
        COMMAND,
        help="run a simulated day of the whole loop (weather, bids, market, dispatches, "
        "batteries) in seconds and write a report with plots",
        description="Run a scenario file (see config/scenario-day.toml) on a manual clock in "
        "one process: measured weather and seeded forecasts, bids on the local market model, "
        "won trades as BATTERY_POWER dispatches, SoC-balancing distribution on the simulated "
        "site. Writes price, production, SoC, trades and grid plots (PNG), summary.md, "
        "summary.json and CSV time series into --out.",
    )
    parser.add_argument("file", type=Path, metavar="FILE", help="scenario file (TOML)")
    parser.add_argument(
        "--out",
        type=Path,
        required=True,
        metavar="DIR",
        help="directory for the report (created if missing; files in it are overwritten)",
    )


def run_scenario_command(args: argparse.Namespace) -> int:
    """Run `scenario`; return the exit code (0, 1 or 2)."""
    from edge_controller.servers.market.file import MarketFileError
    from edge_controller.servers.sim.site import SiteFileError
    from edge_controller.tools.scenario.file import ScenarioFileError, load_scenario

    out: Path = args.out
    if out.exists() and not out.is_dir():
        return _fail(f"--out: expected a directory, got the file {str(out)!r}", 2)
    try:
        scenario = load_scenario(args.file)
    except (ScenarioFileError, SiteFileError, MarketFileError) as error:
        return _fail(str(error), 2)

    from edge_controller.tools.scenario.errors import ScenarioError
    from edge_controller.tools.scenario.report import summarize, write_report
    from edge_controller.tools.scenario.run import run_scenario

    try:
        result = run_scenario(scenario)
    except ScenarioError as error:
        return _fail(str(error), 2)
    from edge_controller.tools.scenario.run import build_setup
    from edge_controller.tools.scenario.value import value_figures

    values = value_figures(result, build_setup(scenario))
    try:
        written = write_report(result, out, values=values)
    except OSError as error:
        return _fail(f"--out: cannot write the report into {str(out)!r}: {error}", 2)
    summary = summarize(result)
    print(
        f"scenario {summary.scenario}: {summary.start} → {summary.end} in {summary.runtime_s:.1f} s"
    )
    print(f"  weather: {summary.weather}")
    print(
        f"  traded: bought {summary.energy_bought_mwh:.3f} MWh, sold "
        f"{summary.energy_sold_mwh:.3f} MWh, revenue {summary.revenue_eur:.2f} EUR; "
        f"{summary.dispatches_ran}/{summary.dispatches_created} dispatches ran"
    )
    pct = values.pct_of_perfect_foresight
    print(
        f"  value ({values.strategy}, after wear): {values.day.value_eur:.2f} EUR; perfect "
        f"foresight {values.perfect_foresight_eur:.2f} EUR"
        + (f" ({pct:.1f} %)" if pct is not None else "")
    )
    print(f"  violations: {summary.violations}")
    print(f"report: {out / 'summary.md'} ({len(written)} files in {out})")
    if summary.violations:
        return _fail(f"{summary.violations} check(s) failed; see {out / 'summary.md'}", 1)
    return 0


def _fail(message: str, code: int) -> int:
    print(f"edge-controller {COMMAND}: {message}", file=sys.stderr)
    return code


__all__ = ["COMMAND", "add_scenario_parser", "run_scenario_command"]
