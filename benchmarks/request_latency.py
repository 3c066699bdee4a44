"""Latency of a power request through the PowerDistributingActor, against a floor.

One run, one in-process simulator on 127.0.0.1 (a site with a grid, a meter and 10
battery inverters with one battery each, telemetry at 5 Hz), one event loop: the
simulator's gRPC server, the controller's `MicrogridConnection`, the actor and the
floor's client share the process, so both figures carry the same in-process costs.

(a) request latency: a `PowerRequest` for all 10 batteries goes into a
    `BroadcastChannel`; the PowerDistributingActor plans and sends one command per
    inverter. Timed from `sender.send(request)` to the moment the simulator has
    accepted the 10th command of that request. Each variant alternates its own target
    between a discharge and a charge, so every actor round changes every inverter's
    command: the actor's command pacing (`power/command_pacing.py`) holds back a value
    an inverter already has from it, and a round with the actor's previous target
    would wait for commands that never come.
(b) the floor: 10 bare, concurrent `MicrogridApiClient.set_component_power_active`
    calls (a client of its own) with the same powers, timed from issuing them to the
    10th accepted command.

"Accepted" is stamped on the server side: the simulator's `CommandLog` is replaced
(before start, in this benchmark only) by a subclass that takes `time.perf_counter()`
as each accepted command is recorded and sets an `asyncio.Event` on the 10th.
Rounds of (a), (b) and two diagnostic variants (the same 10 commands through
`MicrogridConnection.set_power` concurrently, and through the bare client one after
another) are interleaved in random order, each after a short random pause, so
machine noise and the telemetry ticks fall on all variants alike.

Diagnostics: the actor's path split into stages (its `set_power` calls go through a
thin timing wrapper), garbage-collector pauses inside each round, the log records the
process produced, the actor's `tick` (its idle poll period) varied, and the CPU cost
of the actor's per-request steps. Logs are rendered as configured (JSON) but written
to /dev/null, so they cost what they cost without burying the report; `--show-logs`
sends them to stderr.

    .venv/bin/python benchmarks/request_latency.py [--rounds 200] [--warmup 30] [--profile]

The last line is machine-readable:

    request_latency_p50_ms=<float> request_latency_p99_ms=<float> floor_p99_ms=<float>
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import io
import logging
import math
import os
import pstats
import random
import sys
import time
import warnings
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TextIO

import structlog
from frequenz.channels import BroadcastChannel, BroadcastSender, Receiver
from frequenz.client.microgrid import MicrogridApiClient
from frequenz.quantities import Power

from edge_controller.common import logging as logs
from edge_controller.common.clock import WallClock
from edge_controller.controller.power_distributing import PowerDistributingActor
from edge_controller.framework.messages import PowerRequest, Result, Success
from edge_controller.microgrid.connection import MicrogridConnection
from edge_controller.microgrid.graph import BatteryPairs
from edge_controller.microgrid.telemetry import TelemetryCache
from edge_controller.microgrid.telemetry_gaps import GapTracker
from edge_controller.power.distribution import SocBalancing
from edge_controller.power.planning import Refusal, plan
from edge_controller.servers.sim.command_log import CommandLog
from edge_controller.servers.sim.model import CommandRecord, SiteModel
from edge_controller.servers.sim.server import SimulatorServer
from edge_controller.servers.sim.site import SiteSpec, parse_site

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from frequenz.client.common.microgrid.components import ComponentId

LISTEN = "127.0.0.1:0"
PAIRS = 10
INVERTER_IDS = tuple(10 * (k + 1) for k in range(PAIRS))
BATTERY_IDS = frozenset(i + 1 for i in INVERTER_IDS)
TELEMETRY_RATE_HZ = 5.0
RESOLUTION_W = 1.0
TARGETS_W = (-300_000.0, 200_000.0)
"""Site totals, alternating: -30 kW / +20 kW per inverter (SoCs stay near 50 %)."""
ACTOR_TICK = timedelta(milliseconds=10)
OTHER_TICKS = (timedelta(milliseconds=200), timedelta(milliseconds=1))
"""The actor's default tick, and a very short one, for the tick-sensitivity check."""
ROUND_TIMEOUT_S = 5.0
PAUSE_S = (0.001, 0.004)
"""Random pause before each round (uniform)."""
TARGET_RATIO = 1.25
LIFETIME = timedelta(seconds=60)
NAMESPACE = "bench"
GC_HIT_S = 0.001
"""A round with at least this much garbage collection inside counts as hit by GC."""


def site_document(command_log_size: int) -> dict[str, Any]:
    """Grid, meter, and PAIRS battery inverters with one battery each."""
    components: list[dict[str, Any]] = [
        {"id": 1, "kind": "grid", "rated_fuse_current": 4000},
        {"id": 2, "kind": "meter", "parent": 1},
    ]
    for inverter_id in INVERTER_IDS:
        components.append(
            {
                "id": inverter_id,
                "kind": "battery_inverter",
                "parent": 2,
                "active_power_bounds": ["-250 kW", "250 kW"],
                "resolution": f"{RESOLUTION_W:g} W",
                "efficiency": 0.97,
            }
        )
        components.append(
            {
                "id": inverter_id + 1,
                "kind": "battery",
                "parent": inverter_id,
                "capacity": "500 kWh",
                "initial_soc": 50,
                "soc_bounds": [10, 90],
                "power_bounds": ["-250 kW", "250 kW"],
            }
        )
    return {
        "microgrid": {"id": 1, "name": "request latency bench"},
        "simulation": {
            "telemetry_rate_hz": TELEMETRY_RATE_HZ,
            "time_step": 0.1,
            "command_log_size": command_log_size,
        },
        "components": components,
    }


def _component_id(value: int) -> ComponentId:
    # The 0.18 client wants this deprecated alias; keep its warning out of the output.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return ComponentId(value)


# ---------------------------------------------------------------- probes


class GcMonitor:
    """Adds up the time the garbage collector runs, per generation."""

    def __init__(self) -> None:
        self.total_s = 0.0
        self.count = [0, 0, 0]
        self.max_s = [0.0, 0.0, 0.0]
        self._started = 0.0

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        took = time.perf_counter() - self._started
        generation = info["generation"]
        self.total_s += took
        self.count[generation] += 1
        self.max_s[generation] = max(self.max_s[generation], took)

    def install(self) -> None:
        gc.callbacks.append(self._callback)

    def remove(self) -> None:
        gc.callbacks.remove(self._callback)

    def reset(self) -> None:
        self.count = [0, 0, 0]
        self.max_s = [0.0, 0.0, 0.0]


class LogTap(logging.Filter):
    """Counts the log records that reach the handler (they are still rendered)."""

    def __init__(self) -> None:
        super().__init__()
        self.counts: Counter[str] = Counter()

    def filter(self, record: logging.LogRecord) -> bool:
        event = record.msg.get("event") if isinstance(record.msg, dict) else record.msg
        text = str(event)
        self.counts[f"{record.levelname.lower()} {record.name}: {text[:72]}"] += 1
        return True


class TimedCommandLog(CommandLog):
    """A CommandLog that stamps each accepted command and signals a complete round."""

    def __init__(self, maxlen: int, gc_monitor: GcMonitor) -> None:
        super().__init__(maxlen)
        self._gc = gc_monitor
        self._waiting: set[int] = set()
        self._event: asyncio.Event | None = None
        self.done_at = math.nan
        self.gc_at_done = 0.0
        self.strays = 0
        """Commands accepted while no round was waiting for them (e.g. keep-alives)."""

    def arm(self, component_ids: Iterable[int]) -> asyncio.Event:
        """Wait for one command to each of `component_ids`."""
        self._waiting = set(component_ids)
        self._event = asyncio.Event()
        self.done_at = math.nan
        return self._event

    def record(self, record: CommandRecord) -> None:
        at = time.perf_counter()
        super().record(record)
        if record.component_id not in self._waiting:
            self.strays += 1
            return
        self._waiting.discard(record.component_id)
        if not self._waiting and self._event is not None:
            self.done_at = at
            self.gc_at_done = self._gc.total_s
            self._event.set()


class TimedAccess:
    """The actor's view of the connection, stamping each `set_power` call it makes."""

    def __init__(self, connection: MicrogridConnection) -> None:
        self._connection = connection
        self.calls: list[float] = []

    @property
    def pairs(self) -> BatteryPairs:
        return self._connection.pairs

    @property
    def cache(self) -> TelemetryCache:
        return self._connection.cache

    @property
    def telemetry_gaps(self) -> GapTracker:
        return self._connection.telemetry_gaps

    async def set_power(
        self, inverter_id: int, power_w: float, *, timeout_s: float, lifetime: timedelta
    ) -> datetime:
        self.calls.append(time.perf_counter())
        return await self._connection.set_power(
            inverter_id, power_w, timeout_s=timeout_s, lifetime=lifetime
        )


# ---------------------------------------------------------------- rounds


@dataclass
class Series:
    """Per-round latencies (seconds) of one variant, with GC time inside each round."""

    name: str
    total: list[float] = field(default_factory=list)
    gc: list[float] = field(default_factory=list)
    stages: dict[str, list[float]] = field(default_factory=dict)

    def add(self, total: float, gc_s: float, **stages: float) -> None:
        self.total.append(total)
        self.gc.append(gc_s)
        for key, value in stages.items():
            self.stages.setdefault(key, []).append(value)

    def clear(self) -> None:
        self.total.clear()
        self.gc.clear()
        self.stages.clear()

    @property
    def gc_hits(self) -> int:
        return sum(1 for g in self.gc if g >= GC_HIT_S)

    @property
    def without_gc(self) -> list[float]:
        return [t - g for t, g in zip(self.total, self.gc, strict=True)]


@dataclass
class Rig:
    probe: TimedCommandLog
    gc_monitor: GcMonitor
    connection: MicrogridConnection
    access: TimedAccess
    client: MicrogridApiClient
    requests: BroadcastSender[PowerRequest]
    results: Receiver[Result]
    rounds: Counter[str] = field(default_factory=Counter)

    def next_powers(self, variant: str) -> tuple[float, float]:
        """`variant`'s next site target and its per-inverter share.

        The sign alternates per variant, not across them: the variants run in random
        order, and a shared alternation gave the actor its previous target whenever an
        odd number of other rounds ran in between.
        """
        self.rounds[variant] += 1
        total = TARGETS_W[self.rounds[variant] % 2]
        return total, total / PAIRS

    async def accepted(self, event: asyncio.Event) -> float:
        await asyncio.wait_for(event.wait(), ROUND_TIMEOUT_S)
        return self.probe.done_at

    async def actor_round(self, series: Series) -> None:
        total_w, _ = self.next_powers("actor")
        request = PowerRequest(NAMESPACE, Power.from_watts(total_w), BATTERY_IDS)
        self.access.calls.clear()
        event = self.probe.arm(INVERTER_IDS)
        gc0 = self.gc_monitor.total_s
        t0 = time.perf_counter()
        await self.requests.send(request)
        done = await self.accepted(event)
        result = await asyncio.wait_for(self.results.receive(), ROUND_TIMEOUT_S)
        t_result = time.perf_counter()
        if not isinstance(result, Success) or result.succeeded_batteries != BATTERY_IDS:
            raise RuntimeError(f"the actor did not succeed on all batteries: {result}")
        if len(self.access.calls) != PAIRS:
            raise RuntimeError(f"expected {PAIRS} set_power calls, got {len(self.access.calls)}")
        first, last = self.access.calls[0], self.access.calls[-1]
        series.add(
            done - t0,
            self.probe.gc_at_done - gc0,
            to_first_call=first - t0,
            calls_spread=last - first,
            last_call_to_accepted=done - last,
            accepted_to_result=t_result - done,
            to_result=t_result - t0,
        )

    async def _commands(
        self, series: Series, send: Callable[[int, float], Awaitable[object]], concurrent: bool
    ) -> None:
        _, per_inverter_w = self.next_powers(series.name)
        event = self.probe.arm(INVERTER_IDS)
        gc0 = self.gc_monitor.total_s
        t0 = time.perf_counter()
        if concurrent:
            await asyncio.gather(*(send(i, per_inverter_w) for i in INVERTER_IDS))
        else:
            for inverter_id in INVERTER_IDS:
                await send(inverter_id, per_inverter_w)
        t_replies = time.perf_counter()
        done = await self.accepted(event)
        series.add(done - t0, self.probe.gc_at_done - gc0, to_replies=t_replies - t0)

    async def floor_round(self, series: Series) -> None:
        await self._commands(series, self._bare, concurrent=True)

    async def sequential_round(self, series: Series) -> None:
        await self._commands(series, self._bare, concurrent=False)

    async def connection_round(self, series: Series) -> None:
        async def send(inverter_id: int, power_w: float) -> datetime:
            return await self.connection.set_power(
                inverter_id, power_w, timeout_s=ROUND_TIMEOUT_S, lifetime=LIFETIME
            )

        await self._commands(series, send, concurrent=True)

    async def _bare(self, inverter_id: int, power_w: float) -> object:
        return await self.client.set_component_power_active(
            _component_id(inverter_id), power_w, request_lifetime=LIFETIME
        )


async def _wait_for_telemetry(connection: MicrogridConnection, timeout_s: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    clock = WallClock()
    while True:
        now = clock.now()
        if all(connection.cache.battery(b, now) is not None for b in BATTERY_IDS) and all(
            connection.cache.inverter(i, now) is not None for i in INVERTER_IDS
        ):
            return
        if loop.time() > deadline:
            raise RuntimeError("no fresh telemetry of every battery and inverter")
        await asyncio.sleep(0.05)


def _new_actor(
    access: TimedAccess, tick: timedelta
) -> tuple[PowerDistributingActor, BroadcastSender[PowerRequest], Receiver[Result]]:
    sender, receiver = BroadcastChannel[PowerRequest](name="requests")
    actor = PowerDistributingActor(
        receiver,
        access,
        resolutions_w=dict.fromkeys(INVERTER_IDS, RESOLUTION_W),
        keepalive_interval=timedelta(seconds=50),  # no keep-alive inside the run
        tick=tick,
    )
    results = actor.new_result_receiver(NAMESPACE)
    actor.start()
    return actor, sender, results


# ---------------------------------------------------------------- CPU of the steps


def _per_call_us(fn: Callable[[], object], min_s: float = 0.05) -> float:
    """Microseconds per call of `fn`, repeated for at least `min_s`."""
    calls = 0
    start = time.perf_counter()
    elapsed = 0.0
    while elapsed < min_s:
        for _ in range(20):
            fn()
        calls += 20
        elapsed = time.perf_counter() - start
    return 1e6 * elapsed / calls


async def _async_per_call_us(fn: Callable[[], Awaitable[object]], calls: int = 300) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        await fn()
    return 1e6 * (time.perf_counter() - start) / calls


async def step_costs(actor: PowerDistributingActor) -> dict[str, float]:
    """CPU cost (us) of the actor's per-request steps, on live telemetry.

    The actor's private methods are called directly: this measures, it changes nothing.
    """
    clock = WallClock()
    request = PowerRequest(NAMESPACE, Power.from_watts(TARGETS_W[0]), BATTERY_IDS)
    units = actor._units(request, clock.now())
    algorithm = SocBalancing()
    decided = plan(request.power.as_watts(), units, algorithm)
    if isinstance(decided, Refusal):
        raise RuntimeError(f"plan() refused: {decided.reason}")
    log = structlog.get_logger("edge_controller.controller.power_distributing").bind(actor="bench")

    def log_once() -> None:  # what _handle logs per request, with the same fields
        log.bind(namespace=NAMESPACE, keepalive=False).info(
            "power_distributed",
            target_w=TARGETS_W[0],
            commands_w=decided.commands,
            counted_elsewhere_w=0.0,
            excess_w=decided.excess_w,
            failed=[],
            skipped=None,
        )

    def component_ids() -> None:
        for inverter_id in INVERTER_IDS:
            _component_id(inverter_id)

    costs = {
        "_validate(request)": _per_call_us(lambda: actor._validate(request)),
        "_units(request, now): telemetry snapshot": _per_call_us(
            lambda: actor._units(request, clock.now())
        ),
        "plan(): SocBalancing over 10 units": _per_call_us(
            lambda: plan(request.power.as_watts(), units, algorithm)
        ),
        "log.bind(...).info('power_distributed', ...)": _per_call_us(log_once),
        "10 x ComponentId() under catch_warnings": _per_call_us(component_ids),
    }

    async def status() -> None:
        await actor._publish_status(clock.now())

    costs["_publish_status(now) [after the commands]"] = await _async_per_call_us(status)
    channels_log = logging.getLogger("frequenz.channels._broadcast")
    level = channels_log.level
    channels_log.setLevel(logging.ERROR)
    try:
        costs["  the same, its 'receiver is full' warning muted"] = await _async_per_call_us(status)
    finally:
        channels_log.setLevel(level)
    return costs


def simulator_cost_ms(site: SiteSpec) -> float:
    """Milliseconds of the simulator's model work for one round's 10 commands.

    Server-side and common to (a) and (b): each accepted command steps the model to
    now and settles it, over the whole site. Measured on a separate model instance.
    """
    clock = WallClock()
    model = SiteModel(site, clock.now())
    rounds = 0
    start = time.perf_counter()
    while time.perf_counter() - start < 0.2:
        power_w = TARGETS_W[rounds % 2] / PAIRS
        for inverter_id in INVERTER_IDS:
            model.set_active_power(inverter_id, power_w, clock.now(), 60)
        rounds += 1
    return 1e3 * (time.perf_counter() - start) / rounds


def _open_calls() -> int:
    """Client calls whose status is still awaited (grpc.aio keeps a task for each)."""
    return sum(
        1
        for task in asyncio.all_tasks()
        if "_handle_status_once_received" in getattr(task.get_coro(), "__qualname__", "")
    )


# ---------------------------------------------------------------- statistics


def _percentile(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return math.nan
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def _ms(values: Sequence[float]) -> str:
    return (
        f"p50 {1e3 * _percentile(values, 0.5):6.2f}  p90 {1e3 * _percentile(values, 0.9):6.2f}"
        f"  p99 {1e3 * _percentile(values, 0.99):6.2f}  max {1e3 * max(values):6.2f} ms"
    )


def _bootstrap_ratio(
    a: Sequence[float], b: Sequence[float], fraction: float, rng: random.Random, n: int = 1000
) -> tuple[float, float]:
    """5th and 95th percentile of percentile(a)/percentile(b) over resamples."""
    ratios = sorted(
        _percentile(rng.choices(a, k=len(a)), fraction)
        / _percentile(rng.choices(b, k=len(b)), fraction)
        for _ in range(n)
    )
    return ratios[int(0.05 * n)], ratios[int(0.95 * n)]


def _load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"loadavg {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} CPUs"


# ---------------------------------------------------------------- run


@dataclass
class Outcome:
    series: dict[str, Series]
    ticks: dict[timedelta, Series]
    costs: dict[str, float]
    strays: int
    cpu_s: float
    wall_s: float
    gc_count: list[int]
    gc_max_s: list[float]
    heap_objects: int
    tasks_alive: int
    open_calls: int
    simulator_ms: float
    log_counts: Counter[str]
    profile: str | None


async def run(args: argparse.Namespace, tap: LogTap) -> Outcome:
    rng = random.Random(args.seed)
    site = parse_site(site_document(args.command_log_size), "request_latency.py")
    server = SimulatorServer(site, LISTEN)
    gc_monitor = GcMonitor()
    probe = TimedCommandLog(site.simulation.command_log_size, gc_monitor)
    server.service.command_log = probe  # in-process only: stamp accepted commands
    gc_monitor.install()
    try:
        async with server:
            connection = MicrogridConnection(server.url)
            await connection.start()
            client = MicrogridApiClient(server.url)
            try:
                await _wait_for_telemetry(connection)
                access = TimedAccess(connection)
                actor, requests, results = _new_actor(access, ACTOR_TICK)
                rig = Rig(probe, gc_monitor, connection, access, client, requests, results)
                series = {name: Series(name) for name in ("actor", "floor", "conn", "seq")}
                steps: list[tuple[Callable[[Series], Awaitable[None]], Series]] = [
                    (rig.actor_round, series["actor"]),
                    (rig.floor_round, series["floor"]),
                    (rig.connection_round, series["conn"]),
                    (rig.sequential_round, series["seq"]),
                ]

                async def interleaved(count: int) -> None:
                    for _ in range(count):
                        order = steps[:]
                        rng.shuffle(order)
                        for step, into in order:
                            await asyncio.sleep(rng.uniform(*PAUSE_S))
                            await step(into)

                await interleaved(args.warmup)
                for one in series.values():
                    one.clear()
                probe.strays = 0
                gc_monitor.reset()
                tap.counts.clear()
                cpu0, wall0 = time.process_time(), time.perf_counter()
                await interleaved(args.rounds)
                cpu_s, wall_s = time.process_time() - cpu0, time.perf_counter() - wall0
                strays = probe.strays
                gc_count, gc_max_s = list(gc_monitor.count), list(gc_monitor.max_s)
                log_counts = Counter(tap.counts)
                heap_objects = len(gc.get_objects())
                tasks_alive, open_calls = len(asyncio.all_tasks()), _open_calls()

                profile_text = None
                if args.profile:
                    profiler = cProfile.Profile()
                    extra = Series("profiled")
                    profiler.enable()
                    for _ in range(args.rounds):
                        await asyncio.sleep(rng.uniform(*PAUSE_S))
                        await rig.actor_round(extra)
                    profiler.disable()
                    out = io.StringIO()
                    stats = pstats.Stats(profiler, stream=out)
                    stats.sort_stats("tottime").print_stats(30)
                    profile_text = (
                        f"{args.rounds} extra actor rounds under cProfile: "
                        f"{_ms(extra.total)}\n{out.getvalue()}"
                    )

                costs = await step_costs(actor)
                await actor.stop()

                ticks: dict[timedelta, Series] = {}
                for tick in OTHER_TICKS:
                    actor, rig.requests, rig.results = _new_actor(access, tick)
                    tick_series = Series(f"tick {tick.total_seconds() * 1e3:g} ms")
                    for _ in range(args.warmup // 2):
                        await asyncio.sleep(rng.uniform(*PAUSE_S))
                        await rig.actor_round(tick_series)
                    tick_series.clear()
                    for _ in range(args.tick_rounds):
                        await asyncio.sleep(rng.uniform(*PAUSE_S))
                        await rig.actor_round(tick_series)
                    ticks[tick] = tick_series
                    await actor.stop()
            finally:
                await client.__aexit__(None, None, None)
                await connection.stop()
    finally:
        gc_monitor.remove()
    return Outcome(
        series=series,
        ticks=ticks,
        costs=costs,
        strays=strays,
        cpu_s=cpu_s,
        wall_s=wall_s,
        gc_count=gc_count,
        gc_max_s=gc_max_s,
        heap_objects=heap_objects,
        tasks_alive=tasks_alive,
        open_calls=open_calls,
        simulator_ms=simulator_cost_ms(site),
        log_counts=log_counts,
        profile=profile_text,
    )


def _configure_logs(level: str, show: bool) -> LogTap:
    """Configure logging as the CLI does; count the records; send them to /dev/null."""
    logs.configure(level)
    tap = LogTap()
    for handler in logging.getLogger().handlers:
        handler.addFilter(tap)
        if not show and isinstance(handler, logging.StreamHandler):
            sink: TextIO = open(os.devnull, "w", encoding="utf-8")  # noqa: SIM115
            handler.setStream(sink)
    return tap


# ---------------------------------------------------------------- report


def report(args: argparse.Namespace, out: Outcome) -> None:
    actor, floor = out.series["actor"], out.series["floor"]
    rng = random.Random(args.seed + 1)
    print(
        f"\n{args.rounds} measured rounds per variant after {args.warmup} warm-up, "
        f"interleaved in random order, each after a {PAUSE_S[0] * 1e3:g}-{PAUSE_S[1] * 1e3:g}"
        f" ms pause; time until the simulator accepted all {PAIRS} commands:"
    )
    tick_ms = ACTOR_TICK.total_seconds() * 1e3
    rows = (
        (f"(a) request -> actor (tick {tick_ms:g} ms)", actor),
        (f"(b) floor: {PAIRS} bare client calls, gather", floor),
        (f"    MicrogridConnection.set_power x{PAIRS}, gather", out.series["conn"]),
        (f"    {PAIRS} bare client calls one after another", out.series["seq"]),
    )
    for label, one in rows:
        print(f"  {label:<46} {_ms(one.total)}")
    p50_ratio = _percentile(actor.total, 0.5) / _percentile(floor.total, 0.5)
    p99_ratio = _percentile(actor.total, 0.99) / _percentile(floor.total, 0.99)
    low, high = _bootstrap_ratio(actor.total, floor.total, 0.99, rng)
    verdict = "meets" if p99_ratio <= TARGET_RATIO else "MISSES"
    print(
        f"  (a)/(b): p50 {p50_ratio:.2f}, p99 {p99_ratio:.2f} (bootstrap 90 % interval "
        f"{low:.2f}-{high:.2f}); target p99 <= {TARGET_RATIO:g} x floor: {verdict}"
    )

    print(
        f"\ngarbage collection in the measured rounds: gen0/1/2 ran "
        f"{out.gc_count[0]}/{out.gc_count[1]}/{out.gc_count[2]} times, longest "
        f"{1e3 * out.gc_max_s[0]:.1f}/{1e3 * out.gc_max_s[1]:.1f}/{1e3 * out.gc_max_s[2]:.1f} ms;"
        f" {out.heap_objects:,} objects tracked at the end"
    )
    print(
        f"  {out.tasks_alive:,} asyncio tasks alive at the end, {out.open_calls:,} of them "
        f"client calls still awaiting their status (set-power calls are kept open)"
    )
    for label, one in rows:
        print(
            f"  {label.strip():<46} {one.gc_hits:3d} rounds with >= {GC_HIT_S * 1e3:g} ms GC;"
            f" minus GC: p99 {1e3 * _percentile(one.without_gc, 0.99):6.2f} ms"
        )
    gc_free_ratio = _percentile(actor.without_gc, 0.99) / _percentile(floor.without_gc, 0.99)
    print(
        f"  (a)/(b) p99 with each round's GC time taken out: {gc_free_ratio:.2f} "
        f"(the GC pauses fall on whichever variant is running)"
    )

    print("\n(a) split into stages, from sender.send():")
    labels = {
        "to_first_call": "request -> actor's 1st set_power call",
        "calls_spread": "1st -> 10th set_power call",
        "last_call_to_accepted": "10th call -> 10th command accepted",
        "accepted_to_result": "10th accepted -> Success received",
        "to_result": "request -> Success received",
    }
    for key, label in labels.items():
        print(f"  {label:<46} {_ms(actor.stages[key])}")
    print(f"  {'(b) issue -> all 10 replies back':<46} {_ms(floor.stages['to_replies'])}")

    print("\nthe actor's tick (idle poll period; a request wakes the actor through an Event):")
    print(f"  tick {tick_ms:>5g} ms, {args.rounds} rounds (main run)   {_ms(actor.total)}")
    for tick, one in out.ticks.items():
        label = f"tick {tick.total_seconds() * 1e3:>5g} ms, {len(one.total)} rounds"
        print(f"  {label:<37} {_ms(one.total)}  ({one.gc_hits} rounds with GC)")

    print("\nCPU per call of the actor's per-request steps (live telemetry, 10 units):")
    for label, us in out.costs.items():
        print(f"  {label:<50} {us:8.1f} us")
    print(
        f"  {'simulator: model work for 10 accepted commands':<50} "
        f"{1e3 * out.simulator_ms:8.1f} us  [server side, in (a) and (b) alike]"
    )
    print(
        f"\nprocess CPU during the measured rounds: {out.cpu_s:.2f} s in {out.wall_s:.2f} s "
        f"({100 * out.cpu_s / out.wall_s:.0f} % of one core, all threads); "
        f"commands accepted outside any round: {out.strays}"
    )
    total_logs = sum(out.log_counts.values())
    print(
        f"log records at level {args.log_level} in the measured rounds: {total_logs}"
        + ("" if args.show_logs else " (rendered, written to /dev/null)")
    )
    for text, count in out.log_counts.most_common(5):
        print(f"  {count:5d} x {text}")
    if out.profile is not None:
        print("\ncProfile (main thread, by own time):")
        print(out.profile)


def main() -> int:
    parser = argparse.ArgumentParser(description="Power request latency vs. a bare-client floor.")
    parser.add_argument("--rounds", type=int, default=200, help="measured rounds per variant")
    parser.add_argument("--warmup", type=int, default=30, help="warm-up rounds per variant")
    parser.add_argument("--tick-rounds", type=int, default=100, help="rounds per extra tick")
    parser.add_argument("--log-level", default="warning", help="process log level (warning)")
    parser.add_argument("--show-logs", action="store_true", help="write the logs to stderr")
    parser.add_argument(
        "--command-log-size",
        type=int,
        default=100_000,
        help="records the simulator keeps in memory (its default, 100000)",
    )
    parser.add_argument("--profile", action="store_true", help="cProfile extra actor rounds")
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args()
    tap = _configure_logs(args.log_level, args.show_logs)

    print(
        f"site: grid + meter + {PAIRS} battery inverters with one battery each, telemetry "
        f"{TELEMETRY_RATE_HZ:g} Hz per stream ({2 * PAIRS} streams to the controller)"
    )
    print(
        "the simulator's gRPC server, the MicrogridConnection, the actor and the floor's "
        "client share ONE process and event loop on 127.0.0.1: both figures carry the "
        "same in-process costs"
    )
    print(f"python {sys.version.split()[0]}; log level {args.log_level}; before: {_load()}")
    sys.stdout.flush()
    out = asyncio.run(run(args, tap))
    report(args, out)
    actor, floor = out.series["actor"].total, out.series["floor"].total
    print(f"after: {_load()}")
    print(
        f"request_latency_p50_ms={1e3 * _percentile(actor, 0.5):.3f} "
        f"request_latency_p99_ms={1e3 * _percentile(actor, 0.99):.3f} "
        f"floor_p99_ms={1e3 * _percentile(floor, 0.99):.3f}",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
