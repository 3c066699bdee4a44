"""What `edge-controller demo` shows: the live table, the plain line, the summary.

Pure: every function takes a plain snapshot (frozen dataclasses, filled in by the
shell in `demo.py`) and returns text or a rich renderable, so the view is tested
without a server, a terminal or a clock.

On a terminal the shell refreshes `live_view(snapshot)` in place (rich `Live`)::

    edge-controller demo   t=+23 s of 60 s   grid +151.2 kW   batteries -480.1 kW
     battery     ids   SoC %   power kW   status
    ─────────────────────────────────────────────
     Battery A   11     49.6     -180.1   working
     Battery B   21     61.0     -300.0   blocked
     ...
    running: #1 discharge -600.0 kW, 5 s left

otherwise it prints `plain_line(snapshot)` every few seconds. `summary_text(figures)`
closes both.

Powers follow the passive sign convention: + charges (or is consumed), − discharges
(or is produced).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from rich import box
from rich.console import Group
from rich.table import Table
from rich.text import Text

from edge_controller.power.status import BatteryStatus

STATUS_STYLES = {"working": "green", "uncertain": "yellow", "blocked": "bold red"}


@dataclass(frozen=True, slots=True)
class BatteryView:
    """One battery inverter and its batteries, as the demo shows them."""

    name: str
    battery_ids: tuple[int, ...]
    soc_pct: float
    """Mean SoC of the batteries behind the inverter."""
    power_w: float
    """The inverter's AC power; + charges, − discharges."""
    status: str
    """`working`, `uncertain`, `blocked` (see `battery_status`) or `unknown`."""


@dataclass(frozen=True, slots=True)
class DispatchView:
    """A dispatch the controller runs now."""

    dispatch_id: int
    kind: str
    """What the demo created it as (`discharge`, `dry run`, …) or `external`."""
    power_w: float
    """What it asks; + charges, − discharges."""
    dry_run: bool
    seconds_left: float | None
    """Until its scheduled end; None for a dispatch the demo did not create."""


@dataclass(frozen=True, slots=True)
class UpcomingView:
    """The next dispatch of the demo's schedule."""

    dispatch_id: int
    kind: str
    seconds_to_start: float


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything one refresh of the live view shows."""

    elapsed_s: float
    duration_s: float
    grid_power_w: float | None
    """None when the site has no single grid meter."""
    batteries: tuple[BatteryView, ...]
    running: tuple[DispatchView, ...]
    upcoming: UpcomingView | None = None


@dataclass(frozen=True, slots=True)
class DispatchOutcome:
    """One dispatch the demo created and what became of it."""

    dispatch_id: int
    kind: str
    power_w: float | None
    """None for a payload without a usable power."""
    start_s: float
    """Scheduled start, seconds after the demo started."""
    end_s: float
    outcome: str
    """E.g. `ran`, `rejected`, `not reached` (see `demo.outcome_of`)."""


@dataclass(frozen=True, slots=True)
class SummaryFigures:
    """What the summary reports; energies are simulated (physics-time) watt-hours."""

    ran_s: float
    duration_s: float
    speed: float
    interrupted_by: str | None
    """The signal's name when the demo was stopped early, e.g. `SIGINT`."""
    dispatches: tuple[DispatchOutcome, ...]
    use_case_counts: Mapping[str, int]
    charged_wh: float
    """Energy into the batteries, at the inverters' AC side."""
    discharged_wh: float
    """Energy out of the batteries (a positive number), at the AC side."""
    soc_start_pct: Mapping[str, float]
    """SoC per battery name at the start."""
    soc_end_pct: Mapping[str, float]
    commands_logged: int
    commands_outside_bounds: int


def battery_status(battery_ids: Iterable[int], status: BatteryStatus | None) -> str:
    """The worst status of `battery_ids` in the distributor's latest `BatteryStatus`.

    `blocked`: at least one battery is neither working nor uncertain (a failed command
    or no telemetry); `uncertain`: stale telemetry, used only as a last resort;
    `unknown`: no status published yet (the distributor publishes after its first plan).
    """
    if status is None:
        return "unknown"
    ids = set(battery_ids)
    if ids <= status.working:
        return "working"
    if ids <= status.working | status.uncertain:
        return "uncertain"
    return "blocked"


def soc_spread(socs_pct: Iterable[float]) -> float:
    """Highest minus lowest SoC, in percentage points (0 for no battery)."""
    values = list(socs_pct)
    return max(values) - min(values) if values else 0.0


def _kw(power_w: float | None, width: int = 0) -> str:
    if power_w is None:
        return "n/a"
    return f"{power_w / 1000:+{width}.1f} kW"


def _seconds(value: float) -> str:
    return f"{max(0.0, value):.0f} s"


def batteries_power_w(snapshot: Snapshot) -> float:
    """Sum of the battery inverters' power; + charges, − discharges."""
    return sum(b.power_w for b in snapshot.batteries)


def battery_rows(snapshot: Snapshot) -> list[tuple[str, str, str, str, str]]:
    """Rows of the battery table: name, ids, SoC %, power kW, status."""
    return [
        (
            b.name,
            ",".join(str(i) for i in b.battery_ids),
            f"{b.soc_pct:.1f}",
            f"{b.power_w / 1000:+.1f}",
            b.status,
        )
        for b in snapshot.batteries
    ]


def running_text(snapshot: Snapshot) -> str:
    """The running dispatches in one phrase, or what comes next when none runs."""
    if not snapshot.running:
        rest = "none, batteries rest"
        if snapshot.upcoming is not None:
            up = snapshot.upcoming
            rest += f" (next #{up.dispatch_id} {up.kind} in {_seconds(up.seconds_to_start)})"
        return rest
    parts = []
    for d in snapshot.running:
        left = "" if d.seconds_left is None else f", {_seconds(d.seconds_left)} left"
        dry = ", nothing commanded" if d.dry_run else ""
        parts.append(f"#{d.dispatch_id} {d.kind} {_kw(d.power_w)}{dry}{left}")
    return "; ".join(parts)


def _header(snapshot: Snapshot) -> str:
    return (
        f"t=+{snapshot.elapsed_s:.0f} s of {snapshot.duration_s:g} s   "
        f"grid {_kw(snapshot.grid_power_w)}   batteries {_kw(batteries_power_w(snapshot))}"
    )


def live_view(snapshot: Snapshot) -> Group:
    """The renderable refreshed in place on a terminal."""
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, header_style="bold")
    table.add_column("battery")
    table.add_column("ids")
    table.add_column("SoC %", justify="right")
    table.add_column("power kW", justify="right")
    table.add_column("status")
    for name, ids, soc, power, status in battery_rows(snapshot):
        table.add_row(name, ids, soc, power, Text(status, style=STATUS_STYLES.get(status, "")))
    return Group(
        Text("edge-controller demo   " + _header(snapshot), style="bold"),
        table,
        Text("running: " + running_text(snapshot)),
    )


def plain_line(snapshot: Snapshot) -> str:
    """One line for a log or a pipe: time, grid, the running dispatch, each battery."""
    batteries = " | ".join(
        f"{b.name} {b.soc_pct:5.1f}% {_kw(b.power_w, 7)} {b.status}" for b in snapshot.batteries
    )
    return (
        f"t=+{snapshot.elapsed_s:.0f}s grid {_kw(snapshot.grid_power_w, 7)} "
        f"batteries {_kw(batteries_power_w(snapshot), 7)} | "
        f"running: {running_text(snapshot)} | {batteries}"
    )


def use_case_line(counts: Mapping[str, int]) -> str:
    """The use case's counters, sorted by name: `rejected 1, requests 4, ...`."""
    return ", ".join(f"{what} {count}" for what, count in sorted(counts.items())) or "nothing"


def summary_text(figures: SummaryFigures) -> str:
    """The closing summary; its first line is `summary`."""
    simulated_h = figures.ran_s * figures.speed / 3600
    how = (
        f"stopped by {figures.interrupted_by} after {figures.ran_s:.0f} s of "
        f"{figures.duration_s:g} s"
        if figures.interrupted_by is not None
        else f"ran {figures.ran_s:.0f} s"
    )
    lines = [
        "summary",
        f"  {how} (physics x{figures.speed:g}: {simulated_h:.2f} h simulated); "
        f"{len(figures.dispatches)} dispatches created",
        "  results by kind:",
    ]
    kind_width = max((len(d.kind) for d in figures.dispatches), default=0)
    windows = [f"+{d.start_s:.0f}..+{d.end_s:.0f} s" for d in figures.dispatches]
    window_width = max((len(w) for w in windows), default=0)
    for d, window in zip(figures.dispatches, windows, strict=True):
        lines.append(
            f"    {d.kind:<{kind_width}}  #{d.dispatch_id:<3} {_kw(d.power_w):>11}  "
            f"{window:<{window_width}}  {d.outcome}"
        )
    lines.append(f"  battery power use case: {use_case_line(figures.use_case_counts)}")
    lines.append(
        f"  energy moved (battery inverters, AC, simulated): "
        f"{figures.discharged_wh / 1000:.1f} kWh discharged, "
        f"{figures.charged_wh / 1000:.1f} kWh charged"
    )
    for name in sorted(figures.soc_start_pct):
        start, end = figures.soc_start_pct[name], figures.soc_end_pct[name]
        lines.append(f"  {name}: SoC {start:.2f}% -> {end:.2f}% ({end - start:+.2f})")
    lines.append(
        f"  SoC spread {soc_spread(figures.soc_start_pct.values()):.2f} pp -> "
        f"{soc_spread(figures.soc_end_pct.values()):.2f} pp"
    )
    lines.append(
        f"  simulator: {figures.commands_logged} accepted commands logged, "
        f"{figures.commands_outside_bounds} outside their bounds"
    )
    return "\n".join(lines)


__all__ = [
    "BatteryView",
    "DispatchOutcome",
    "DispatchView",
    "Snapshot",
    "SummaryFigures",
    "UpcomingView",
    "batteries_power_w",
    "battery_rows",
    "battery_status",
    "live_view",
    "plain_line",
    "running_text",
    "soc_spread",
    "summary_text",
    "use_case_line",
]
