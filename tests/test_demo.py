"""`edge-controller demo`: its pure schedule and tallies, its view, and whole runs."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import itertools
import os
import re
import shlex
import signal
import sys
from pathlib import Path

import pytest
from rich.console import Console

from edge_controller.power.status import BatteryStatus
from edge_controller.servers.sim.site import SiteSpec, parse_site
from edge_controller.servers.sim.site_details import BatterySpec, InverterSpec
from edge_controller.tools.cli import build_parser
from edge_controller.tools.demo import (
    GAP_S,
    LEAD_S,
    CreatedDispatch,
    EnergyTally,
    PlannedDispatch,
    SuggestedDispatch,
    demo_site,
    outcome_of,
    own_command,
    own_dispatch_arguments,
    own_dispatch_line,
    phase_at,
    planned_dispatches,
    report_interval_s,
    run_demo,
    running_views,
    suggested_dispatch,
    upcoming_view,
)
from edge_controller.tools.demo_view import (
    BatteryView,
    DispatchOutcome,
    DispatchView,
    Snapshot,
    SummaryFigures,
    UpcomingView,
    battery_rows,
    battery_status,
    live_view,
    plain_line,
    running_text,
    soc_spread,
    summary_text,
)

# ------------------------------------------------------------------ the schedule


def test_the_default_schedule_discharges_dry_runs_charges_then_rests() -> None:
    planned = planned_dispatches(60)
    assert [(p.kind, p.start_s, p.end_s, p.power_w, p.dry_run) for p in planned] == [
        ("discharge", 1, 19, -600_000.0, False),
        ("dry run", 20, 28, -400_000.0, True),
        ("charge", 29, 49, 500_000.0, False),
        ("bad payload", 0, 30, None, False),
    ]
    assert [p.payload for p in planned] == [
        {"power_w": "-600 kW"},
        {"power_w": "-400 kW"},
        {"power_w": "500 kW"},
        {"power_w": "a lot"},
    ]


@pytest.mark.parametrize("duration_s", [1, 3, 6, 8, 10, 17, 60, 61, 600])
def test_dispatches_never_overlap_and_last_at_least_a_second(duration_s: float) -> None:
    timed = [p for p in planned_dispatches(duration_s) if p.power_w is not None]
    assert timed[0].start_s == LEAD_S
    for earlier, later in itertools.pairwise(timed):
        assert later.start_s >= earlier.end_s + GAP_S
    assert all(p.end_s - p.start_s >= 1 for p in timed)


def test_a_ten_second_demo_still_runs_every_dispatch() -> None:
    assert max(p.end_s for p in planned_dispatches(10)) <= 10
    assert max(p.end_s for p in planned_dispatches(8)) <= 8


def test_phase_at_names_the_phase_in_force() -> None:
    assert [phase_at(f).name for f in (0.0, 0.29, 0.3, 0.5, 0.8, 1.0, 1.5)] == [
        "discharge",
        "discharge",
        "dry run",
        "charge",
        "rest",
        "rest",
        "rest",
    ]


def test_plain_lines_come_every_five_seconds_or_more_often_in_short_demos() -> None:
    assert report_interval_s(60) == 5.0
    assert report_interval_s(600) == 5.0
    assert report_interval_s(20) == 2.0
    assert report_interval_s(6) == 1.0


def test_energy_tally_splits_counters_into_charged_and_discharged() -> None:
    tally = EnergyTally()
    tally.add({10: 100.0, 20: -50.0})  # baseline: nothing counted
    assert (tally.charged_wh, tally.discharged_wh) == (0.0, 0.0)
    tally.add({10: 80.0, 20: -20.0})  # 10 gave 20 Wh, 20 took 30 Wh
    tally.add({10: 80.0, 20: 0.0, 30: 5.0})  # 20 took 20 Wh; 30 is new: its baseline
    tally.add({30: 7.5})
    assert tally.charged_wh == pytest.approx(52.5)
    assert tally.discharged_wh == pytest.approx(20.0)


@pytest.mark.parametrize(
    ("planned", "seen", "elapsed_s", "rejected", "expected"),
    [
        (PlannedDispatch("charge", 5, 9, 1e3), True, 10, 0, "ran"),
        (PlannedDispatch("dry run", 5, 9, -1e3, dry_run=True), True, 10, 0, "ran as a dry run"),
        (PlannedDispatch("charge", 5, 9, 1e3), False, 4.9, 1, "not reached"),
        (PlannedDispatch("bad payload", 0, 9, None), False, 3, 1, "rejected"),
        (PlannedDispatch("charge", 5, 9, 1e3), False, 10, 0, "never ran"),
    ],
)
def test_outcome_of_a_dispatch(
    planned: PlannedDispatch, seen: bool, elapsed_s: float, rejected: int, expected: str
) -> None:
    assert outcome_of(planned, seen, elapsed_s, rejected).startswith(expected)


# ------------------------------------------------------------------ the view

SNAPSHOT = Snapshot(
    elapsed_s=23.4,
    duration_s=60,
    grid_power_w=151_234.0,
    batteries=(
        BatteryView("Battery A", (11,), 49.64, -180_100.0, "working"),
        BatteryView("Battery B", (21,), 61.0, -300_000.0, "blocked"),
        BatteryView("Battery C + Battery E", (31, 32), 28.0, 0.0, "uncertain"),
    ),
    running=(DispatchView(1, "discharge", -600_000.0, dry_run=False, seconds_left=5.2),),
)


def test_battery_status_is_the_worst_of_the_batteries_behind_an_inverter() -> None:
    status = BatteryStatus(working=frozenset({1, 2}), uncertain=frozenset({3}))
    assert battery_status([1, 2], status) == "working"
    assert battery_status([1, 3], status) == "uncertain"
    assert battery_status([3, 4], status) == "blocked"
    assert battery_status([1], None) == "unknown"


def test_soc_spread() -> None:
    assert soc_spread([50.0, 72.0, 28.0]) == pytest.approx(44.0)
    assert soc_spread([]) == 0.0


def test_battery_rows() -> None:
    assert battery_rows(SNAPSHOT) == [
        ("Battery A", "11", "49.6", "-180.1", "working"),
        ("Battery B", "21", "61.0", "-300.0", "blocked"),
        ("Battery C + Battery E", "31,32", "28.0", "+0.0", "uncertain"),
    ]


def test_running_text_names_the_dispatch_or_what_comes_next() -> None:
    assert running_text(SNAPSHOT) == "#1 discharge -600.0 kW, 5 s left"
    dry = DispatchView(2, "dry run", -400_000.0, dry_run=True, seconds_left=0.4)
    external = DispatchView(7, "external", -50_000.0, dry_run=False, seconds_left=None)
    both = Snapshot(0, 60, None, (), (dry, external))
    assert running_text(both) == (
        "#2 dry run -400.0 kW, nothing commanded, 0 s left; #7 external -50.0 kW"
    )
    resting = Snapshot(0.2, 60, 0.0, (), (), UpcomingView(1, "discharge", 0.8))
    assert running_text(resting) == "none, batteries rest (next #1 discharge in 1 s)"
    assert running_text(Snapshot(59, 60, 0.0, (), ())) == "none, batteries rest"


def test_plain_line_holds_time_grid_total_dispatch_and_each_battery() -> None:
    line = plain_line(SNAPSHOT)
    assert "\n" not in line
    assert line.startswith("t=+23s grid  +151.2 kW batteries  -480.1 kW | running: #1 discharge")
    assert "Battery A  49.6%  -180.1 kW working" in line
    assert "Battery B  61.0%  -300.0 kW blocked" in line
    assert "Battery C + Battery E  28.0%    +0.0 kW uncertain" in line
    assert "grid n/a" in plain_line(Snapshot(1, 60, None, (), ()))


def test_live_view_renders_the_table() -> None:
    out = io.StringIO()
    Console(file=out, width=100, color_system=None).print(live_view(SNAPSHOT))
    text = out.getvalue()
    assert "t=+23 s of 60 s   grid +151.2 kW   batteries -480.1 kW" in text
    assert re.search(r"battery\s+ids\s+SoC %\s+power kW\s+status", text)
    assert re.search(r"Battery A\s+11\s+49\.6\s+-180\.1\s+working", text)
    assert re.search(r"Battery C \+ Battery E\s+31,32\s+28\.0\s+\+0\.0\s+uncertain", text)
    assert "running: #1 discharge -600.0 kW, 5 s left" in text


FIGURES = SummaryFigures(
    ran_s=60.02,
    duration_s=60,
    speed=60,
    interrupted_by=None,
    dispatches=(
        DispatchOutcome(1, "discharge", -600_000.0, 1, 19, "ran"),
        DispatchOutcome(2, "dry run", -400_000.0, 20, 28, "ran as a dry run"),
        DispatchOutcome(4, "bad payload", None, 0, 30, "rejected"),
    ),
    use_case_counts={"started": 2, "rejected": 1, "requests": 4},
    charged_wh=150_000.0,
    discharged_wh=180_049.0,
    soc_start_pct={"Battery B": 72.0, "Battery A": 50.0},
    soc_end_pct={"Battery B": 60.5, "Battery A": 49.25},
    commands_logged=16,
    commands_outside_bounds=0,
)


def test_summary_reports_outcomes_energy_and_soc() -> None:
    assert summary_text(FIGURES).splitlines() == [
        "summary",
        "  ran 60 s (physics x60: 1.00 h simulated); 3 dispatches created",
        "  results by kind:",
        "    discharge    #1     -600.0 kW  +1..+19 s   ran",
        "    dry run      #2     -400.0 kW  +20..+28 s  ran as a dry run",
        "    bad payload  #4           n/a  +0..+30 s   rejected",
        "  battery power use case: rejected 1, requests 4, started 2",
        "  energy moved (battery inverters, AC, simulated): 180.0 kWh discharged, "
        "150.0 kWh charged",
        "  Battery A: SoC 50.00% -> 49.25% (-0.75)",
        "  Battery B: SoC 72.00% -> 60.50% (-11.50)",
        "  SoC spread 22.00 pp -> 11.25 pp",
        "  simulator: 16 accepted commands logged, 0 outside their bounds",
    ]


def test_summary_says_when_a_signal_stopped_the_demo() -> None:
    stopped = dataclasses.replace(FIGURES, ran_s=12.3, interrupted_by="SIGINT")
    assert (
        summary_text(stopped)
        .splitlines()[1]
        .startswith("  stopped by SIGINT after 12 s of 60 s (physics x60: 0.20 h simulated)")
    )


# ------------------------------------------------------------------ the line to send your own


def assert_parses_as_a_dispatch_create(line: str, site: SiteSpec) -> None:
    """The line runs our program and our own parser reads it as a checked create of a
    battery `site` has, with a discharge within that battery's (and inverter's) bounds."""
    words = shlex.split(line)
    program = words[: words.index("dispatch")]
    assert program in ([str(Path(program[0]))], [program[0], "-m", "edge_controller.tools.cli"])
    assert Path(program[0]).is_absolute() or program[0] == sys.executable
    assert os.access(program[0], os.X_OK)
    args = build_parser().parse_args(words[len(program) :])
    assert (args.command, args.dispatch_command) == ("dispatch", "create")
    assert args.batteries is not None
    assert len(args.batteries) == 1
    battery = site.by_id.get(args.batteries[0])
    assert battery is not None, f"battery {args.batteries[0]} is not in {site.source}"
    assert isinstance(battery.details, BatterySpec)
    lower_w = max(
        [battery.details.power_bounds.lower]
        + [
            spec.details.active_bounds.lower
            for spec in (site.by_id[p] for p in battery.parents)
            if isinstance(spec.details, InverterSpec)
        ]
    )
    assert lower_w <= args.power < 0
    assert args.microgrid_url is not None  # the power is checked against the site
    assert not args.force
    assert args.key_file is not None


def small_site(battery_id: int, battery_w: float, inverter_w: float) -> SiteSpec:
    """A site other than the default: one battery, other ids, other bounds."""
    return parse_site(
        {
            "microgrid": {"id": 7},
            "components": [
                {"id": 1, "kind": "grid"},
                {"id": 2, "kind": "meter", "parent": 1},
                {
                    "id": 5,
                    "kind": "battery_inverter",
                    "parent": 2,
                    "active_power_bounds": [-inverter_w, inverter_w],
                },
                {
                    "id": battery_id,
                    "kind": "battery",
                    "parent": 5,
                    "capacity": "20 kWh",
                    "initial_soc": 50,
                    "power_bounds": [-battery_w, battery_w],
                },
            ],
        },
        "small-site.toml",
    )


def test_the_line_to_send_your_own_parses_with_our_parser(
    tmp_path: Path, example_site: SiteSpec
) -> None:
    suggested = suggested_dispatch(example_site)
    assert suggested == SuggestedDispatch(11, -50e3)
    line = own_dispatch_line(
        "grpc://127.0.0.1:40001?ssl=false",
        tmp_path / "dispatch key",
        1,
        "grpc://127.0.0.1:40000?ssl=false",
        suggested,
    )
    assert_parses_as_a_dispatch_create(line, example_site)
    assert "'grpc://127.0.0.1:40001?ssl=false'" in line  # quoted for the shell
    arguments = own_dispatch_arguments("u", tmp_path / "k", 7, "m", suggested)
    args = build_parser().parse_args(arguments)
    assert (args.url, args.key_file, args.microgrid_id) == ("u", tmp_path / "k", 7)


@pytest.mark.parametrize(
    ("battery_w", "inverter_w", "power_w"),
    [(250e3, 250e3, -50e3), (40e3, 30e3, -15e3), (20e3, 60e3, -10e3)],
)
def test_the_line_targets_a_battery_of_another_site_within_its_bounds(
    tmp_path: Path, battery_w: float, inverter_w: float, power_w: float
) -> None:
    """`demo --site OTHER.toml`: the line once named battery 31 whatever the site."""
    site = small_site(7, battery_w, inverter_w)
    suggested = suggested_dispatch(site)
    assert suggested == SuggestedDispatch(7, power_w)
    line = own_dispatch_line("u", tmp_path / "k", 7, "m", suggested)
    assert_parses_as_a_dispatch_create(line, site)


def test_a_site_without_batteries_gets_no_line() -> None:
    site = parse_site({"microgrid": {"id": 7}, "components": [{"id": 1, "kind": "grid"}]})
    assert suggested_dispatch(site) is None


def test_the_program_is_named_by_its_absolute_path_or_run_through_this_python(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    script = tmp_path / "bin" / "edge-controller"
    script.parent.mkdir()
    script.write_text("#!/bin/sh\n")
    script.chmod(0o755)
    # `make demo` runs .venv/bin/edge-controller, relative and not on PATH.
    monkeypatch.chdir(tmp_path)
    assert own_command("bin/edge-controller") == [str(script.resolve())]
    assert own_command(str(script)) == [str(script.resolve())]
    # Found on PATH by its bare name.
    monkeypatch.setenv("PATH", str(script.parent))
    assert own_command("edge-controller") == [str(script.resolve())]
    # `python -m edge_controller.tools.cli`, or a name that is no executable here.
    python = "/opt/python/bin/python3"
    module = [python, "-m", "edge_controller.tools.cli"]
    assert own_command("/src/edge_controller/cli.py", python) == module
    monkeypatch.setenv("PATH", "")
    assert own_command("edge-controller", python) == module
    script.chmod(0o644)
    assert own_command(str(script), python) == module


# ------------------------------------------------------------------ whole runs


async def test_a_short_fast_demo_runs_every_kind_of_dispatch_and_summarises(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert await run_demo(None, duration_s=8, speed=600) == 0
    out = capsys.readouterr().out
    # (structlog, unconfigured in this process, logs to stdout too)
    assert re.search(r"^listening address=127\.0\.0\.1:\d+$", out, re.MULTILINE)
    assert re.search(r"^t=\+\d+s grid .* \| running: .*Battery A ", out, re.MULTILINE)
    printed = re.search(r"^    (.+ dispatch --url .+)$", out, re.MULTILINE)
    assert printed is not None, out
    assert_parses_as_a_dispatch_create(printed.group(1), demo_site(None))
    summary = out.split("\nsummary\n", 1)[1]
    assert re.search(r"discharge +#1 +-600\.0 kW +\+1\.\.\+3 s +ran$", summary, re.MULTILINE)
    assert re.search(r"dry run +#2 +-400\.0 kW .* ran as a dry run", summary)
    assert re.search(r"charge +#3 +\+500\.0 kW .* ran$", summary, re.MULTILINE)
    assert re.search(r"bad payload +#4 +n/a .* rejected$", summary, re.MULTILINE)
    assert "rejected 1" in summary
    assert "started 3" in summary  # discharge, dry run, charge
    assert "0 outside their bounds" in summary
    energy = re.search(r"([\d.]+) kWh discharged, ([\d.]+) kWh charged", summary)
    assert energy is not None
    # -600 kW for 2 s at x600 is 200 kWh; the dry run moved nothing.
    assert float(energy.group(1)) == pytest.approx(200, abs=20)
    assert float(energy.group(2)) > 0
    spread = re.search(r"SoC spread ([\d.]+) pp -> ([\d.]+) pp", summary)
    assert spread is not None
    assert float(spread.group(2)) < float(spread.group(1))


async def test_ctrl_c_stops_cleanly_prints_the_summary_and_exits_130() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "edge_controller.tools.cli",
        "demo",
        "--duration",
        "60",
        "--speed",
        "600",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    lines = []
    while not (line := (await asyncio.wait_for(process.stdout.readline(), 30)).decode()).startswith(
        "t=+"
    ):
        assert line, "the demo ended before its first report"
        lines.append(line)
    process.send_signal(signal.SIGINT)
    out, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 130, err
    text = out.decode()
    assert "\nsummary\n  stopped by SIGINT after" in text
    assert "batteries released (0 W), servers stopped; exit code 130" in text


def test_running_dispatches_are_shown_with_what_the_demo_scheduled() -> None:
    created = [
        CreatedDispatch(1, PlannedDispatch("discharge", 1, 19, -600e3)),
        CreatedDispatch(2, PlannedDispatch("dry run", 20, 28, -400e3, dry_run=True)),
        CreatedDispatch(3, PlannedDispatch("charge", 29, 49, 500e3)),
        CreatedDispatch(4, PlannedDispatch("bad payload", 0, 30, None)),
    ]
    assert running_views(created, {9: -50e3, 2: -400e3}, 25.5) == (
        DispatchView(2, "dry run", -400e3, dry_run=True, seconds_left=2.5),
        DispatchView(9, "external", -50e3, dry_run=False, seconds_left=None),
    )
    assert upcoming_view(created, 0.0) == UpcomingView(1, "discharge", 1.0)
    assert upcoming_view(created, 19.5) == UpcomingView(2, "dry run", 0.5)
    assert upcoming_view(created, 29.0) is None
