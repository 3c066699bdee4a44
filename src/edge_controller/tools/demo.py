"""`edge-controller demo`: the whole chain on the embedded default site, for a minute.

It starts, all on free loopback ports, the simulator (Microgrid API), the local
Dispatch API service (a temporary database and key) and the controller graph
(DispatchBroadcasting → the battery_power use case → PowerManaging →
PowerDistributing). It then creates a short dispatch schedule through the real
`frequenz-client-dispatch` client —
discharge, a dry run (logged by the controller, nothing commanded: the batteries
rest), charge, rest, plus one dispatch with a malformed payload that the controller
rejects while the others run — and shows the batteries (SoC, power, status), the
running dispatch and the grid power: a table refreshed in place on a terminal, a plain
line every few seconds otherwise. It ends with a summary: what became of each
dispatch, the use case's counters, the energy moved, SoC start → end and spread.

Exit codes: 0 when it ran its whole duration; on SIGINT (Ctrl-C) or SIGTERM it stops
early but cleanly — the controller releases every battery (0 W), the servers stop,
the summary so far is printed — and exits 128 + the signal number (130 for Ctrl-C),
as shells expect of an interrupted program. A second Ctrl-C forces the exit.

The running dispatches and the counters come from each use case's status
(`Controller.use_cases`, read through `framework.use_case.UseCaseStatus`);
their kind and time left from what the demo itself scheduled. The schedule, the energy
tally and the outcomes are pure (`planned_dispatches`, `EnergyTally`, `outcome_of`);
what is shown is built in `demo_view`; this module is the shell around both.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import shlex
import shutil
import signal
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path
from types import TracebackType
from typing import Any

from frequenz.channels import Receiver
from frequenz.client.common.microgrid import MicrogridId
from frequenz.client.dispatch import DispatchApiClient
from frequenz.client.dispatch.types import TargetIds
from rich.console import Console
from rich.live import Live

from edge_controller.common.waiting import cancel_and_wait, wait_event
from edge_controller.config.schema import KEY_ENVIRONMENT_VARIABLE, parse_config
from edge_controller.controller.graph import Controller
from edge_controller.controller.power_distributing import PowerDistributingActor
from edge_controller.daemon.console.server import demo_console
from edge_controller.power.status import BatteryStatus
from edge_controller.servers.dispatch.server import DispatchServer
from edge_controller.servers.sim.server import SimulatorServer
from edge_controller.servers.sim.site import SiteSpec, load_site
from edge_controller.servers.sim.site_details import BatterySpec, InverterSpec
from edge_controller.tools.demo_view import (
    BatteryView,
    DispatchOutcome,
    DispatchView,
    Snapshot,
    SummaryFigures,
    UpcomingView,
    battery_status,
    live_view,
    plain_line,
    summary_text,
)

REPORT_S = 5.0
"""Longest interval between plain lines (shorter for short demos)."""
LIVE_REFRESH_S = 0.5
TICK_S = 0.1
"""How often the shell samples the model (energy tally, running dispatches)."""
LEAD_S = 1
"""Seconds between the demo's start and its first dispatch: time to create them."""
GAP_S = 1
"""Rest between two dispatches, so that one ends before the next starts (no overlap,
which the use case would resolve — newest wins — but log as a conflict)."""
DISPATCH_TYPE = "BATTERY_POWER"
BAD_POWER = "a lot"


@dataclass(frozen=True, slots=True)
class Phase:
    """One dispatch of the built-in schedule: a target for all batteries."""

    name: str
    from_fraction: float
    """Starts at this fraction of the demo's duration."""
    until_fraction: float
    """Ends at this fraction of the demo's duration."""
    power_kw: float
    """Passive sign convention: − discharges, + charges, 0 rests."""
    dry_run: bool = False
    """The controller logs what it would request and commands nothing."""


SCHEDULE = (
    Phase("discharge", 0.0, 0.30, -600.0),
    Phase("dry run", 0.30, 0.45, -400.0, dry_run=True),
    Phase("charge", 0.45, 0.80, 500.0),
    Phase("rest", 0.80, 1.0, 0.0),
)


def phase_at(elapsed_fraction: float) -> Phase:
    """Return the phase in force at `elapsed_fraction` (0–1) of the demo."""
    for phase in SCHEDULE:
        if elapsed_fraction < phase.until_fraction:
            return phase
    return SCHEDULE[-1]


@dataclass(frozen=True, slots=True)
class PlannedDispatch:
    """A dispatch the demo creates, with its window in seconds after the demo's start."""

    kind: str
    start_s: int
    end_s: int
    power_w: float | None
    """+ charges, − discharges; None for the malformed payload."""
    dry_run: bool = False

    @property
    def payload(self) -> dict[str, object]:
        """The dispatch payload: the power as a quantity string, or the bad value."""
        if self.power_w is None:
            return {"power_w": BAD_POWER}
        return {"power_w": f"{self.power_w / 1000:g} kW"}


def planned_dispatches(duration_s: float) -> tuple[PlannedDispatch, ...]:
    """The demo's dispatches for a run of `duration_s`, in the order they are created.

    `SCHEDULE` without the rests, in order, each at least 1 s, the first `LEAD_S` after
    the demo's start and each at least `GAP_S` after the previous one ended (so a very
    short demo may end before the last one starts); then the malformed one (from now,
    for half the run).
    """
    planned: list[PlannedDispatch] = []
    previous_end = LEAD_S - GAP_S
    for phase in SCHEDULE:
        if phase.power_kw == 0.0:
            continue
        start = max(LEAD_S + round(phase.from_fraction * duration_s), previous_end + GAP_S)
        end = max(start + 1, LEAD_S + round(phase.until_fraction * duration_s))
        planned.append(
            PlannedDispatch(phase.name, start, end, phase.power_kw * 1000, phase.dry_run)
        )
        previous_end = end
    planned.append(PlannedDispatch("bad payload", 0, max(1, round(duration_s / 2)), None))
    return tuple(planned)


def outcome_of(
    planned: PlannedDispatch, seen_running: bool, elapsed_s: float, rejected: int
) -> str:
    """What became of a dispatch by `elapsed_s`, for the summary.

    A dispatch whose window began but that the use case never ran counts as
    `rejected` when the use case rejected any dispatch (it does not say which), as
    `never ran` otherwise.
    """
    if seen_running:
        return "ran as a dry run: logged, nothing commanded" if planned.dry_run else "ran"
    if elapsed_s < planned.start_s:
        return "not reached"
    return "rejected" if rejected else "never ran"


def report_interval_s(duration_s: float) -> float:
    """Seconds between plain lines: `REPORT_S`, down to 1 s for short demos."""
    return min(REPORT_S, max(1.0, duration_s / 10))


@dataclass(slots=True)
class EnergyTally:
    """Energy charged and discharged, from cumulative signed energy counters.

    `add` takes each counter's running total (+ in, − out); the first call sets the
    baseline, every later one adds each counter's increase to `charged_wh` and its
    decrease to `discharged_wh`. Sampled often enough that a counter does not change
    direction between two calls, this splits the flows exactly.
    """

    charged_wh: float = 0.0
    discharged_wh: float = 0.0
    _last_wh: dict[int, float] = field(default_factory=dict)

    def add(self, totals_wh: Mapping[int, float]) -> None:
        """Account the change of each counter since the previous call."""
        for counter, total in totals_wh.items():
            delta = total - self._last_wh.get(counter, total)
            self._last_wh[counter] = total
            if delta > 0:
                self.charged_wh += delta
            else:
                self.discharged_wh -= delta


@dataclass(frozen=True, slots=True)
class CreatedDispatch:
    """A planned dispatch with the id the dispatch service gave it."""

    dispatch_id: int
    planned: PlannedDispatch


def running_views(
    created: Sequence[CreatedDispatch], running: Mapping[int, float], elapsed_s: float
) -> tuple[DispatchView, ...]:
    """The dispatches the use case runs (`running`: id → watts asked), sorted by id.

    With what the demo knows of them: kind, dry run, time left; a dispatch it did not
    create (e.g. one sent with `edge-controller dispatch create`) is `external`, its time
    left unknown.
    """
    by_id = {c.dispatch_id: c.planned for c in created}
    views = []
    for dispatch_id, power_w in sorted(running.items()):
        planned = by_id.get(dispatch_id)
        views.append(
            DispatchView(
                dispatch_id,
                "external" if planned is None else planned.kind,
                power_w,
                dry_run=planned is not None and planned.dry_run,
                seconds_left=None if planned is None else planned.end_s - elapsed_s,
            )
        )
    return tuple(views)


def upcoming_view(created: Sequence[CreatedDispatch], elapsed_s: float) -> UpcomingView | None:
    """The next dispatch of the schedule to start after `elapsed_s`, if any."""
    upcoming = min(
        (c for c in created if c.planned.start_s > elapsed_s and c.planned.power_w is not None),
        key=lambda c: c.planned.start_s,
        default=None,
    )
    if upcoming is None:
        return None
    return UpcomingView(
        upcoming.dispatch_id, upcoming.planned.kind, upcoming.planned.start_s - elapsed_s
    )


def own_command(argv0: str | None = None, python: str | None = None) -> list[str]:
    """How to run this program again from a shell, wherever it was installed.

    `make demo` runs `.venv/bin/edge-controller`, which is not on PATH: the program's
    own path (argv[0], made absolute; looked up on PATH when it has no directory) if it
    is an executable `edge-controller`, else this Python with `-m edge_controller.tools.cli`
    (e.g. under `python -m`), which works wherever this process does.
    """
    argv0 = sys.argv[0] if argv0 is None else argv0
    name = Path(argv0).name
    if name == "edge-controller":
        found = shutil.which(argv0) if os.sep not in argv0 else argv0
        if found and os.access(found, os.X_OK) and Path(found).is_file():
            return [str(Path(found).resolve())]
    return [python or sys.executable, "-m", "edge_controller.tools.cli"]


SUGGESTED_DISCHARGE_W = 50e3
"""What the suggested dispatch discharges, at most (less on a smaller battery)."""


@dataclass(frozen=True, slots=True)
class SuggestedDispatch:
    """The battery the "send your own" line targets, and its power (W, − discharges)."""

    battery_id: int
    power_w: float


def suggested_dispatch(site: SiteSpec) -> SuggestedDispatch | None:
    """Return a dispatch the demo's site can take: its first battery, discharging.

    The battery with the lowest id that can discharge, at 50 kW or half of what it and
    its inverter can discharge (their rated bounds), whichever is less: within its
    bounds, so the line passes the power check against this site (`demo --site`
    included). None when the site has no battery that can discharge.
    """
    inverter_bounds = {
        c.id: c.details.active_bounds
        for c in site.components
        if isinstance(c.details, InverterSpec)
    }
    for component in sorted(site.components, key=lambda c: c.id):
        if not isinstance(component.details, BatterySpec):
            continue
        lower_w = max(
            [component.details.power_bounds.lower]
            + [inverter_bounds[p].lower for p in component.parents if p in inverter_bounds]
        )
        if lower_w < 0:
            return SuggestedDispatch(component.id, max(-SUGGESTED_DISCHARGE_W, lower_w / 2))
    return None


def own_dispatch_arguments(
    dispatch_url: str,
    key_file: Path,
    microgrid_id: int,
    microgrid_url: str,
    suggested: SuggestedDispatch,
) -> list[str]:
    """The `edge-controller dispatch create` arguments the demo suggests (after the program).

    The `suggested` battery and power, 5 s from now, for 30 s; the power is checked
    against the simulated site's rated bounds.
    """
    return [
        "dispatch",
        "--url",
        dispatch_url,
        "--key-file",
        str(key_file),
        "--microgrid-id",
        str(microgrid_id),
        "create",
        f"--power={suggested.power_w / 1e3:g}kW",
        "--batteries",
        str(suggested.battery_id),
        "--start",
        "+5s",
        "--duration",
        "30s",
        "--microgrid-url",
        microgrid_url,
    ]


def own_dispatch_line(
    dispatch_url: str,
    key_file: Path,
    microgrid_id: int,
    microgrid_url: str,
    suggested: SuggestedDispatch,
) -> str:
    """The shell line that sends the demo site a dispatch while it runs."""
    arguments = own_dispatch_arguments(
        dispatch_url, key_file, microgrid_id, microgrid_url, suggested
    )
    return shlex.join([*own_command(), *arguments])


def _own_dispatch_text(
    dispatch_url: str, key_file: Path, site: SiteSpec, microgrid_url: str
) -> str:
    """What the banner says about sending your own dispatch."""
    suggested = suggested_dispatch(site)
    if suggested is None:
        return "  (no battery at this site that can discharge: no dispatch of your own to send)"
    line = own_dispatch_line(dispatch_url, key_file, site.microgrid.id, microgrid_url, suggested)
    return "  send your own while it runs (demo-only key in a temporary file):\n    " + line


def demo_site(site_path: Path | None) -> SiteSpec:
    """The site at `site_path`, else the embedded default site (`sim/sites/sim-site.toml`)."""
    if site_path is not None:
        return load_site(site_path)
    resource = resources.files("edge_controller.servers.sim") / "sites" / "sim-site.toml"
    with resources.as_file(resource) as path:
        return load_site(path)


async def run_demo(site_path: Path | None, duration_s: float, speed: float) -> int:
    """Run the demo; return the exit code (see the module docstring)."""
    site = demo_site(site_path)
    resolutions = {
        str(c.id): c.details.resolution_w
        for c in site.components
        if isinstance(c.details, InverterSpec)
    }
    key = secrets.token_hex(16)
    with _stop_on_signals() as stop:
        with tempfile.TemporaryDirectory(prefix="edge-controller-demo-") as state:
            key_file = Path(state) / "dispatch.key"
            key_file.touch(mode=0o600)
            key_file.write_text(key + "\n", encoding="utf-8")
            async with (
                SimulatorServer(site, "127.0.0.1:0", speed=speed) as sim,
                DispatchServer(Path(state) / "dispatches.db", keys=frozenset({key})) as dispatch,
            ):
                print(f"listening address={sim.address}", flush=True)
                print(
                    f"demo: site {site.microgrid.name!r} ({len(site.components)} components), "
                    f"physics x{speed:g}, {duration_s:g} s; Ctrl-C stops it\n"
                    f"  simulator (Microgrid API) {sim.url}\n"
                    f"  dispatch service          {dispatch.url}\n"
                    "  controller: dispatches -> battery_power use case -> PowerManaging"
                    " -> PowerDistributing\n"
                    + _own_dispatch_text(dispatch.url, key_file, site, sim.url),
                    flush=True,
                )
                config = parse_config(
                    {
                        "microgrid": {"url": sim.url},
                        "dispatch": {"url": dispatch.url, "microgrid_id": site.microgrid.id},
                        "power_distribution": {"resolutions": resolutions},
                        "use_cases": [{"kind": "battery_power", "dispatch_types": [DISPATCH_TYPE]}],
                    },
                    "demo",
                    environ={KEY_ENVIRONMENT_VARIABLE: key},
                )
                async with (
                    Controller(config) as controller,
                    demo_console(controller, Path(state)) as console_lines,
                ):
                    print(console_lines, end="", flush=True)
                    client = DispatchApiClient(server_url=dispatch.url, auth_key=key)
                    figures = await _drive(
                        sim, controller, client, site.microgrid.id, duration_s, stop
                    )
            # Printed once the controller released the batteries and the servers stopped.
            print("\n" + summary_text(figures), flush=True)
        if stop.signal is not None:
            print(
                f"demo: stopped by {stop.signal.name}: batteries released (0 W), "
                f"servers stopped; exit code {128 + stop.signal}",
                flush=True,
            )
            return 128 + stop.signal
    return 0


class _Stop:
    """Set by the first SIGINT/SIGTERM; remembers which."""

    def __init__(self) -> None:
        self.event = asyncio.Event()
        self.signal: signal.Signals | None = None

    def is_set(self) -> bool:
        return self.event.is_set()

    def set(self, signum: signal.Signals) -> None:
        if self.signal is None:
            self.signal = signum
        self.event.set()

    async def wait(self, timeout_s: float) -> None:
        """Return after `timeout_s` or at once when stopped."""
        await wait_event(self.event, timeout_s)


@contextlib.contextmanager
def _stop_on_signals() -> Iterator[_Stop]:
    """Turn the first SIGINT/SIGTERM into a clean stop.

    A second Ctrl-C is the default KeyboardInterrupt: the CLI exits 130 at once.
    """
    loop = asyncio.get_running_loop()
    stop = _Stop()
    signals = (signal.SIGINT, signal.SIGTERM)

    def on_signal(signum: signal.Signals) -> None:
        if not stop.is_set():
            print(f"\ndemo: {signum.name}: stopping (Ctrl-C again to force)", file=sys.stderr)
        stop.set(signum)
        loop.remove_signal_handler(signum)

    for signum in signals:
        loop.add_signal_handler(signum, on_signal, signum)
    try:
        yield stop
    finally:
        for signum in signals:
            with contextlib.suppress(Exception):
                loop.remove_signal_handler(signum)


async def _create_schedule(
    client: DispatchApiClient,
    microgrid_id: int,
    batteries: Sequence[int],
    duration_s: float,
    started: datetime,
) -> list[CreatedDispatch]:
    created: list[CreatedDispatch] = []
    for planned in planned_dispatches(duration_s):
        bad = planned.power_w is None
        dispatch = await client.create(
            microgrid_id=MicrogridId(microgrid_id),
            type=DISPATCH_TYPE,
            start_time="NOW" if bad else started + timedelta(seconds=planned.start_s),
            duration=timedelta(seconds=planned.end_s - planned.start_s),
            target=TargetIds(*(batteries[:1] if bad else batteries)),
            dry_run=planned.dry_run,
            payload=planned.payload,
        )
        created.append(CreatedDispatch(int(dispatch.id), planned))
        what = (
            f"payload power_w={BAD_POWER!r} (to be rejected)"
            if planned.power_w is None
            else f"{planned.kind} {planned.power_w / 1000:+.0f} kW on batteries {list(batteries)}"
            f" at +{planned.start_s}s for {planned.end_s - planned.start_s} s"
            + (" (dry run: logged, nothing commanded)" if planned.dry_run else "")
        )
        print(f"  dispatch {int(dispatch.id)}: {what}", flush=True)
    return created


class _StatusFollower:
    """Keeps the distributor's latest `BatteryStatus` while it runs."""

    def __init__(self, distributor: PowerDistributingActor | None) -> None:
        self.latest: BatteryStatus | None = None
        self._distributor = distributor
        self._task: asyncio.Task[None] | None = None

    async def _follow(self, receiver: Receiver[BatteryStatus]) -> None:
        async for status in receiver:
            self.latest = status

    async def __aenter__(self) -> _StatusFollower:
        if self._distributor is not None:
            receiver = self._distributor.new_status_receiver()
            self._task = asyncio.create_task(self._follow(receiver), name="demo_status")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._task is not None:
            await cancel_and_wait(self._task)


@contextlib.contextmanager
def _logs_above(live: Live) -> Iterator[None]:
    """Send log lines through the live display (printed above it, not through it).

    The log handler holds the stderr it was configured with; `Live` only swaps
    `sys.stderr`, so the handler is pointed at the swapped stream while the table runs.
    """
    original = getattr(sys.stderr, "rich_proxied_file", None)
    swapped: list[tuple[logging.StreamHandler[Any], Any]] = []
    for handler in logging.getLogger().handlers:
        if type(handler) is logging.StreamHandler and handler.stream is original:
            swapped.append((handler, handler.setStream(sys.stderr)))
    try:
        yield
    finally:
        for handler, previous in swapped:
            if previous is not None:
                handler.setStream(previous)


@dataclass(frozen=True, slots=True)
class _Display:
    in_place: bool
    """A live table on a terminal; plain lines otherwise."""
    interval_s: float
    show: Callable[[Snapshot], None]


@contextlib.contextmanager
def _display(duration_s: float) -> Iterator[_Display]:
    """A table refreshed in place when stdout is a terminal, else periodic lines."""
    console = Console()
    if not console.is_terminal or console.is_dumb_terminal:
        yield _Display(False, report_interval_s(duration_s), _print_line)
        return
    redirect = sys.stderr.isatty()
    with (
        Live(console=console, auto_refresh=False, redirect_stderr=redirect) as live,
        _logs_above(live) if redirect else contextlib.nullcontext(),
    ):
        yield _Display(
            True,
            LIVE_REFRESH_S,
            lambda snapshot: live.update(live_view(snapshot), refresh=True),
        )


def _print_line(snapshot: Snapshot) -> None:
    print(plain_line(snapshot), flush=True)


def _running(controller: Controller) -> dict[int, float]:
    running: dict[int, float] = {}
    for use_case in controller.use_cases:
        running.update(use_case.running_dispatches)
    return running


async def _drive(
    sim: SimulatorServer,
    controller: Controller,
    client: DispatchApiClient,
    microgrid_id: int,
    duration_s: float,
    stop: _Stop,
) -> SummaryFigures:
    model = sim.model
    connection = controller.connection
    pairs = connection.pairs
    batteries = sorted(pairs.battery_ids)
    names = {b: model.spec(b).name for b in batteries}
    soc_start = {names[b]: model.soc_pct(b) for b in batteries}
    loop = asyncio.get_running_loop()
    started_at, started = datetime.now(UTC), loop.time()
    created = await _create_schedule(client, microgrid_id, batteries, duration_s, started_at)
    tally = EnergyTally()
    seen_running: set[int] = set()

    def energy() -> dict[int, float]:
        return {i: model.energy_delivered_wh[i] for i in pairs.inverter_ids}

    def snapshot(
        elapsed_s: float, running: Mapping[int, float], status: BatteryStatus | None
    ) -> Snapshot:
        grid = connection.grid_meter_id
        return Snapshot(
            elapsed_s=elapsed_s,
            duration_s=duration_s,
            grid_power_w=model.ac_power_w(grid) if grid is not None else None,
            batteries=tuple(
                BatteryView(
                    name=" + ".join(names[b] for b in pair.battery_ids),
                    battery_ids=pair.battery_ids,
                    soc_pct=sum(model.soc_pct(b) for b in pair.battery_ids) / len(pair.battery_ids),
                    power_w=model.ac_power_w(pair.inverter_id),
                    status=battery_status(pair.battery_ids, status),
                )
                for pair in pairs.pairs
            ),
            running=running_views(created, running, elapsed_s),
            upcoming=upcoming_view(created, elapsed_s),
        )

    tally.add(energy())
    elapsed_s = 0.0
    async with _StatusFollower(controller.power_distributing) as status:
        with _display(duration_s) as display:
            next_show = 0.0
            while not stop.is_set() and (elapsed_s := loop.time() - started) < duration_s:
                tally.add(energy())
                running = _running(controller)
                seen_running.update(running)
                if elapsed_s >= next_show:
                    next_show = elapsed_s + display.interval_s
                    display.show(snapshot(elapsed_s, running, status.latest))
                await stop.wait(min(TICK_S, duration_s - elapsed_s))
            elapsed_s = min(loop.time() - started, duration_s)
            tally.add(energy())
            if display.in_place:  # leave the last state on screen
                display.show(snapshot(elapsed_s, _running(controller), status.latest))
    counts: dict[str, int] = {}
    for use_case in controller.use_cases:
        for what, count in use_case.counts.items():
            counts[what] = counts.get(what, 0) + count
    return SummaryFigures(
        ran_s=elapsed_s,
        duration_s=duration_s,
        speed=model.speed,
        interrupted_by=stop.signal.name if stop.signal is not None else None,
        dispatches=tuple(
            DispatchOutcome(
                dispatch_id=c.dispatch_id,
                kind=c.planned.kind,
                power_w=c.planned.power_w,
                start_s=c.planned.start_s,
                end_s=c.planned.end_s,
                outcome=outcome_of(
                    c.planned,
                    c.dispatch_id in seen_running,
                    elapsed_s,
                    counts.get("rejected", 0),
                ),
            )
            for c in created
        ),
        use_case_counts=counts,
        charged_wh=tally.charged_wh,
        discharged_wh=tally.discharged_wh,
        soc_start_pct=soc_start,
        soc_end_pct={names[b]: model.soc_pct(b) for b in batteries},
        commands_logged=sim.command_log.total,
        commands_outside_bounds=len(sim.command_log.violations()),
    )


__all__ = [
    "SCHEDULE",
    "CreatedDispatch",
    "EnergyTally",
    "Phase",
    "PlannedDispatch",
    "SuggestedDispatch",
    "demo_site",
    "outcome_of",
    "own_command",
    "own_dispatch_arguments",
    "own_dispatch_line",
    "phase_at",
    "planned_dispatches",
    "report_interval_s",
    "run_demo",
    "running_views",
    "suggested_dispatch",
    "upcoming_view",
]
