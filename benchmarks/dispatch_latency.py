"""Dispatch start time → first setpoint at the simulator: the controller's reaction time.

Everything real, in one process and event loop on 127.0.0.1, as in
`tests/e2e/test_dispatch_to_power.py`: the simulator (the example site
`config/sim-site.toml`), our Dispatch API service (SQLite in a temporary directory),
and the controller (`Controller`: frequenz-dispatch's `Dispatcher` →
DispatchBroadcastingActor → BatteryPowerActor → PowerDistributingActor → Microgrid API).
Dispatches are created through `DispatchProducer` (the producer helper).

Each run creates a BATTERY_POWER dispatch for battery 11 (inverter 10) that starts at
the next whole second at least `--lead` seconds ahead (the service rounds start times
to the second), with a power different from the previous run's (alternating discharge
and charge, so the SoC stays put). Latency is measured from the dispatch's start time
(wall clock) to the moment the simulator accepts the first non-zero command for
inverter 10 with that power (within the inverter's 88 W resolution). The dispatch is
deleted after its run and the release (0 W) awaited.

"Accepted" is stamped on the server side: the simulator's `CommandLog` is replaced
(before start, in this benchmark only) by a subclass that takes `datetime.now(UTC)` as
each accepted command is recorded. The path in between is stamped too, without
changing the controller: the dispatch library's scheduler (its `_send_running_state_
change`, called when its timer fires, is wrapped on the instance), the
DispatchBroadcastingActor and the BatteryPowerActor (their `dispatch_changed` and
`power_requested` log events, taken by a logging filter; logs run at info, as the
daemon's do, rendered and written to /dev/null), and the PowerDistributingActor's
`set_power` calls (the connection's method wrapped on the instance).

    .venv/bin/python benchmarks/dispatch_latency.py [--runs 20] [--lead 0.6]

The last two lines are machine-readable:

    dispatch_to_setpoint_p50_ms=<float>
    dispatch_to_setpoint_p99_ms=<float>
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

from frequenz.dispatch import Dispatch, Dispatcher

from edge_controller.common import logging as logs
from edge_controller.config.schema import parse_config
from edge_controller.controller.graph import Controller
from edge_controller.dispatching.producer import DispatchProducer
from edge_controller.servers.dispatch.server import DispatchServer
from edge_controller.servers.sim.command_log import CommandLog
from edge_controller.servers.sim.model import CommandRecord
from edge_controller.servers.sim.server import SimulatorServer
from edge_controller.servers.sim.site import load_site

ROOT = Path(__file__).resolve().parent.parent
SITE = ROOT / "config" / "sim-site.toml"
KEY = "bench-key"
BATTERY = 11
INVERTER = 10
RESOLUTIONS_W = {"10": 88, "20": 100, "30": 50, "40": 88}
TOLERANCE_W = 88.0
"""Inverter 10's resolution: the distributor floors a command's magnitude to it."""
RUN_TIMEOUT_S = 5.0
TARGET_P99_MS = 250.0


def now() -> datetime:
    return datetime.now(UTC)


# ---------------------------------------------------------------- probes


class TimedCommandLog(CommandLog):
    """A CommandLog that stamps each accepted command with the wall clock."""

    def __init__(self, maxlen: int) -> None:
        super().__init__(maxlen)
        self.stamped: list[tuple[datetime, CommandRecord]] = []
        self._wanted: tuple[float, asyncio.Event] | None = None
        self._release: asyncio.Event | None = None
        self.hit_at: datetime | None = None
        self.hit_w = math.nan

    def expect(self, power_w: float) -> asyncio.Event:
        """Signal the first non-zero command for INVERTER within TOLERANCE_W of `power_w`."""
        event = asyncio.Event()
        self._wanted = (power_w, event)
        self.hit_at = None
        return event

    def expect_release(self) -> asyncio.Event:
        """Signal the next 0 W command for INVERTER."""
        self._release = asyncio.Event()
        return self._release

    def record(self, record: CommandRecord) -> None:
        at = now()
        super().record(record)
        self.stamped.append((at, record))
        if (
            self._release is not None
            and record.component_id == INVERTER
            and not record.reactive
            and record.requested_w == 0.0
        ):
            self._release.set()
            self._release = None
        if (
            self._wanted is not None
            and record.component_id == INVERTER
            and not record.reactive
            and record.requested_w != 0.0
            and abs(record.requested_w - self._wanted[0]) <= TOLERANCE_W
        ):
            self.hit_at, self.hit_w = at, record.requested_w
            self._wanted[1].set()
            self._wanted = None


class LogStamps(logging.Filter):
    """Stamps the controller's `dispatch_changed` and `power_requested` log events."""

    def __init__(self) -> None:
        super().__init__()
        self.events: list[tuple[datetime, str, dict[str, Any]]] = []

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.msg
        if isinstance(message, dict) and message.get("event") in (
            "dispatch_changed",
            "power_requested",
            "power_distributed",
        ):
            self.events.append(
                (datetime.fromtimestamp(record.created, UTC), str(message["event"]), message)
            )
        return True

    def first(self, event: str, after: datetime, **fields: object) -> datetime | None:
        for at, name, message in self.events:
            if (
                name == event
                and at >= after
                and all(message.get(k) == v for k, v in fields.items())
            ):
                return at
        return None


@dataclass
class CallStamps:
    """Times of the distributor's set_power calls: (called, inverter, power)."""

    calls: list[tuple[datetime, int, float]] = field(default_factory=list)

    def first(self, after: datetime, power_w: float) -> datetime | None:
        for at, inverter, watts in self.calls:
            if (
                at >= after
                and inverter == INVERTER
                and watts != 0.0
                and abs(watts - power_w) <= TOLERANCE_W
            ):
                return at
        return None


@dataclass
class SchedulerStamps:
    """When the dispatch library's scheduler emitted a running-state change, per id."""

    sent: list[tuple[datetime, int, bool]] = field(default_factory=list)
    known: dict[int, datetime] = field(default_factory=dict)
    """When the library learnt of each dispatch (its Created lifecycle event)."""

    def first_started(self, dispatch_id: int) -> datetime | None:
        for at, sent_id, started in self.sent:
            if sent_id == dispatch_id and started:
                return at
        return None

    def early_fires(self, dispatch_id: int) -> int:
        return sum(1 for _, i, started in self.sent if i == dispatch_id and not started)


def wrap_scheduler(dispatcher: Dispatcher, stamps: SchedulerStamps) -> None:
    """Stamp every running-state change the library's scheduler sends (benchmark only)."""
    service = dispatcher._bg_service
    original: Callable[[Any], Any] = service._send_running_state_change

    async def stamped(dispatch: Any) -> None:
        stamps.sent.append((now(), int(dispatch.id), bool(dispatch.started)))
        await original(dispatch)

    service._send_running_state_change = stamped  # type: ignore[method-assign]


def wrap_set_power(controller: Controller, stamps: CallStamps) -> None:
    """Stamp every set_power call of the controller's connection (benchmark only)."""
    connection = controller.connection
    original = connection.set_power

    async def stamped(
        inverter_id: int,
        power_w: float,
        *,
        timeout_s: float,
        lifetime: timedelta = timedelta(seconds=60),
    ) -> datetime:
        stamps.calls.append((now(), inverter_id, power_w))
        return await original(inverter_id, power_w, timeout_s=timeout_s, lifetime=lifetime)

    connection.set_power = stamped  # type: ignore[method-assign]


# ---------------------------------------------------------------- runs


@dataclass
class Run:
    index: int
    dispatch_id: int
    power_w: float
    start: datetime
    created_at: datetime
    create_ms: float
    known_at: datetime | None
    scheduled_at: datetime | None
    early_fires: int
    broadcast_at: datetime | None
    requested_at: datetime | None
    called_at: datetime | None
    accepted_at: datetime | None
    accepted_w: float

    @property
    def latency_s(self) -> float:
        if self.accepted_at is None:
            return math.inf
        return (self.accepted_at - self.start).total_seconds()


def _delta_ms(later: datetime | None, earlier: datetime | None) -> float:
    if later is None or earlier is None:
        return math.nan
    return (later - earlier).total_seconds() * 1e3


def run_power(index: int) -> float:
    """-20 kW, +21 kW, -22 kW, ...: each run differs from the last; the SoC stays put."""
    magnitude = 20_000.0 + 1_000.0 * index
    return -magnitude if index % 2 == 0 else magnitude


async def one_run(
    index: int,
    lead_s: float,
    producer: DispatchProducer,
    probe: TimedCommandLog,
    log_stamps: LogStamps,
    calls: CallStamps,
    scheduler: SchedulerStamps,
) -> Run:
    power_w = run_power(index)
    accepted = probe.expect(power_w)
    earliest = now() + timedelta(seconds=lead_s)
    start = earliest.replace(microsecond=0) + timedelta(seconds=1)
    created_at = now()
    t0 = time.perf_counter()
    dispatch_id = await producer.create_battery_power(
        power_w, [BATTERY], start, timedelta(minutes=5)
    )
    create_ms = (time.perf_counter() - t0) * 1e3
    wait_s = (start - now()).total_seconds() + RUN_TIMEOUT_S
    try:
        await asyncio.wait_for(accepted.wait(), wait_s)
    except TimeoutError:
        print(f"  run {index}: no command with {power_w:+.0f} W within {RUN_TIMEOUT_S} s of start")
    result = Run(
        index=index,
        dispatch_id=dispatch_id,
        power_w=power_w,
        start=start,
        created_at=created_at,
        create_ms=create_ms,
        known_at=scheduler.known.get(dispatch_id),
        scheduled_at=scheduler.first_started(dispatch_id),
        early_fires=scheduler.early_fires(dispatch_id),
        broadcast_at=log_stamps.first(
            "dispatch_changed", created_at, dispatch_id=dispatch_id, started=True
        ),
        requested_at=log_stamps.first("power_requested", created_at, dispatch_id=dispatch_id),
        called_at=calls.first(created_at, power_w),
        accepted_at=probe.hit_at,
        accepted_w=probe.hit_w,
    )
    # Clean up: delete, and wait for the release (0 W) so the next run starts from rest.
    released = probe.expect_release()
    await producer.delete(dispatch_id)
    await asyncio.wait_for(released.wait(), RUN_TIMEOUT_S)
    return result


async def watch_lifecycle(dispatcher: Dispatcher, stamps: SchedulerStamps) -> None:
    from frequenz.dispatch import Created

    receiver = dispatcher.new_lifecycle_events_receiver("BATTERY_POWER")
    async for event in receiver:
        if isinstance(event, Created):
            dispatch: Dispatch = event.dispatch
            stamps.known.setdefault(int(dispatch.id), now())


@dataclass
class Outcome:
    runs: list[Run]
    setup_s: float
    total_s: float
    timer_precision: list[float]


async def measure_timer_precision(samples: int) -> list[float]:
    """Lateness (ms) of frequenz-channels' Timer, used as the library uses it."""
    from frequenz.channels.timer import SkipMissedAndResync, Timer

    late: list[float] = []
    timer = Timer(timedelta(seconds=100), SkipMissedAndResync(), auto_start=False)
    try:
        for _ in range(samples):
            due = now() + timedelta(milliseconds=50)
            timer.reset(interval=due - now())
            await timer.receive()
            late.append((now() - due).total_seconds() * 1e3)
    finally:
        timer.close()
    return late


async def run(args: argparse.Namespace, log_stamps: LogStamps) -> Outcome:
    started = time.perf_counter()
    site = load_site(SITE)
    sim = SimulatorServer(site)
    probe = TimedCommandLog(site.simulation.command_log_size)
    sim.service.command_log = probe  # in-process only: stamp accepted commands
    calls = CallStamps()
    scheduler = SchedulerStamps()
    with tempfile.TemporaryDirectory(prefix="dispatch-latency-") as tmp:
        async with (
            sim,
            DispatchServer(Path(tmp) / "dispatches.db", keys=frozenset({KEY})) as dispatch,
        ):
            config = parse_config(
                {
                    "microgrid": {"url": sim.url},
                    "dispatch": {"url": dispatch.url, "microgrid_id": 1, "startup_timeout": 10},
                    "power_distribution": {"resolutions": RESOLUTIONS_W},
                    "use_cases": [{"kind": "battery_power", "dispatch_types": ["BATTERY_POWER"]}],
                },
                environ={"EDGE_CONTROLLER_DISPATCH_KEY": KEY},
            )
            controller = Controller(config)
            wrap_set_power(controller, calls)
            async with controller, DispatchProducer(dispatch.url, 1, KEY) as producer:
                dispatcher = controller._dispatcher
                assert dispatcher is not None
                wrap_scheduler(dispatcher, scheduler)
                watcher = asyncio.create_task(watch_lifecycle(dispatcher, scheduler))
                # The library's stream must be connected, or an event sent now is lost.
                async with asyncio.timeout(10):
                    while dispatch.service.subscriber_count(1) < 1:  # noqa: ASYNC110
                        await asyncio.sleep(0.02)
                setup_s = time.perf_counter() - started
                runs = []
                for index in range(args.runs):
                    runs.append(
                        await one_run(
                            index, args.lead, producer, probe, log_stamps, calls, scheduler
                        )
                    )
                watcher.cancel()
                violations = probe.violations()
                if violations:
                    print(f"  WARNING: {len(violations)} accepted commands outside their bounds")
    timer_precision = await measure_timer_precision(args.timer_samples)
    return Outcome(runs, setup_s, time.perf_counter() - started, timer_precision)


# ---------------------------------------------------------------- report


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile (with 20 values, p99 is the maximum)."""
    ordered = sorted(v for v in values if not math.isnan(v))
    if not ordered:
        return math.nan
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def _stats(values: Sequence[float]) -> str:
    return (
        f"p50 {percentile(values, 0.5):7.1f}  p90 {percentile(values, 0.9):7.1f}  "
        f"p99 {percentile(values, 0.99):7.1f}  max {max(values):7.1f}  "
        f"min {min(values):7.1f} ms"
    )


def report(args: argparse.Namespace, out: Outcome) -> tuple[float, float]:
    runs = out.runs
    print(
        f"\n{len(runs)} runs; setup {out.setup_s:.1f} s, whole run {out.total_s:.1f} s; "
        f"each dispatch starts at the next whole second >= {args.lead:g} s after its create"
    )
    print(
        f"\n{'run':>3} {'id':>3} {'power W':>9} {'start (UTC)':>12} {'lead ms':>8} "
        f"{'timer':>7} {'bcast':>6} {'actor':>6} {'distr':>6} {'grpc':>6} {'total ms':>9}"
    )
    for r in runs:
        print(
            f"{r.index:3d} {r.dispatch_id:3d} {r.power_w:+9.0f} {r.start:%H:%M:%S}    "
            f"{_delta_ms(r.start, r.known_at):8.0f} "
            f"{_delta_ms(r.scheduled_at, r.start):7.1f} "
            f"{_delta_ms(r.broadcast_at, r.scheduled_at):6.1f} "
            f"{_delta_ms(r.requested_at, r.broadcast_at):6.1f} "
            f"{_delta_ms(r.called_at, r.requested_at):6.1f} "
            f"{_delta_ms(r.accepted_at, r.called_at):6.1f} "
            f"{r.latency_s * 1e3:9.1f}"
            + (f"  (timer fired early {r.early_fires}x)" if r.early_fires else "")
        )
    stages = {
        "start time -> scheduler emits (library timer)": [
            _delta_ms(r.scheduled_at, r.start) for r in runs
        ],
        "scheduler -> DispatchBroadcastingActor": [
            _delta_ms(r.broadcast_at, r.scheduled_at) for r in runs
        ],
        "broadcasting -> BatteryPowerActor request": [
            _delta_ms(r.requested_at, r.broadcast_at) for r in runs
        ],
        "request -> PowerDistributingActor set_power": [
            _delta_ms(r.called_at, r.requested_at) for r in runs
        ],
        "set_power call -> simulator accepted": [
            _delta_ms(r.accepted_at, r.called_at) for r in runs
        ],
    }
    print("\nwhere the time goes (ms):")
    for label, values in stages.items():
        print(f"  {label:<46} {_stats(values)}")
    latencies = [r.latency_s * 1e3 for r in runs]
    print(f"  {'dispatch start -> first setpoint accepted':<46} {_stats(latencies)}")
    print(
        f"\nthe library's Timer alone ({len(out.timer_precision)} x 50 ms, idle loop): "
        f"{_stats(out.timer_precision)} late"
    )
    creates = [r.create_ms for r in runs]
    print(f"create RPC through DispatchProducer: {_stats(creates)}")
    margins = [_delta_ms(r.start, r.known_at) for r in runs]
    print(f"dispatch known to the library before its start: min {min(margins):.0f} ms")
    missing = [r.index for r in runs if r.accepted_at is None]
    if missing:
        print(f"runs without the expected setpoint: {missing}")
    p50, p99 = percentile(latencies, 0.5), percentile(latencies, 0.99)
    verdict = "meets" if p99 <= TARGET_P99_MS else "MISSES"
    print(f"\ntarget p99 <= {TARGET_P99_MS:g} ms: {verdict} (p99 {p99:.1f} ms, p50 {p50:.1f} ms)")
    return p50, p99


def _configure_logs(show: bool) -> LogStamps:
    """Configure logs as the daemon does (info); stamp events; send them to /dev/null."""
    logs.configure("info", "json")
    stamps = LogStamps()
    for handler in logging.getLogger().handlers:
        handler.addFilter(stamps)
        if not show and isinstance(handler, logging.StreamHandler):
            sink: TextIO = open(os.devnull, "w", encoding="utf-8")  # noqa: SIM115
            handler.setStream(sink)
    return stamps


def main() -> int:
    parser = argparse.ArgumentParser(description="Dispatch start -> first setpoint latency.")
    parser.add_argument("--runs", type=int, default=20, help="dispatches to time (20)")
    parser.add_argument(
        "--lead", type=float, default=0.6, help="min seconds between create and start (0.6)"
    )
    parser.add_argument("--timer-samples", type=int, default=20, help="bare Timer samples")
    parser.add_argument("--show-logs", action="store_true", help="write the logs to stderr")
    args = parser.parse_args()
    if args.runs < 1 or not args.lead > 0:
        parser.error("--runs must be >= 1 and --lead > 0")
    stamps = _configure_logs(args.show_logs)
    print(
        f"site {SITE.name}: battery {BATTERY} behind inverter {INVERTER}; simulator, dispatch "
        "service and controller in ONE process and event loop on 127.0.0.1"
    )
    print(f"python {sys.version.split()[0]}; loadavg {os.getloadavg()[0]:.2f}", flush=True)
    outcome = asyncio.run(run(args, stamps))
    p50, p99 = report(args, outcome)
    print(f"dispatch_to_setpoint_p50_ms={p50:.3f}")
    print(f"dispatch_to_setpoint_p99_ms={p99:.3f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
