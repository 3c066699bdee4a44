"""Our controller and the Frequenz SDK's microgrid stack, side by side on the same site.

Every part is a process of its own on 127.0.0.1 (free ports), so each one's CPU and
memory is read from /proc/<pid>/stat apart from the others and from this script:

- the simulator, `edge-controller sim --command-log FILE` (at log level warning: the
  command log has the commands), on `benchmarks/battery_sites.py`'s site of N battery
  inverters (one battery each, telemetry at 10 Hz), a fresh one for every run;
- the SDK side: `benchmarks/sdk_stack.py` (frequenz-sdk rc2214: `microgrid.initialize`,
  a battery pool of every battery, `propose_power`), spoken to through its line
  protocol; it is asked once its pool has bounds (`ready`: it ignores earlier
  proposals);
- our side: the daemon, `edge-controller run --config FILE` (JSON log at info, as in
  production), with one `battery_power` use case, its dispatches from a local
  `edge-controller dispatch-server` (its own SQLite file per run). The config differs
  from the defaults only where the SDK's set-up has the same thing: the inverters'
  resolutions (from the site), `algorithm = "proportional"` (the SDK's distribution
  scheme, so both stacks give every inverter a non-zero share of the same size),
  a 5 s request timeout (the SDK's set-power timeout) and its default keep-alive (15 s).

Sizes 4, 50 and 200 inverters, 3 repetitions, runs interleaved (repetition → size →
SDK, ours) so that machine noise falls on both stacks alike.

**Requests.** Each run makes `--requests` requests (plus `--warmup` uncounted ones
first) on all batteries, alternating discharge and charge (−20 kW, +19 kW, −18 kW, ...
per inverter, times N), so that every inverter's new command has the opposite sign
of its last one and the SoCs stay put. The SDK: `propose <W>`. Ours: a BATTERY_POWER
dispatch for the battery category (all batteries), created through the dispatch
service `--lead` s (1) or more before its start, which is a whole second (the service
keeps whole seconds); indefinite; the newest dispatch owns the batteries, and the
previous one is deleted once the new one has reached every inverter.

**Latency** (request → last inverter command): from the request's origin to the
moment the simulator accepted, for the last of the N inverters, a non-zero command of
the request's sign (the command log's `at`, the simulator's wall clock, on the same
machine as ours). The origin, for the SDK, is its `proposed` event's time (stamped
right after `pool.propose_power()` returned, i.e. when the request entered the SDK's
power pipeline); for ours, the dispatch's **start time**, the instant the dispatch
asks for the power and the controller is due to act. Not the create call: a dispatch
is known ahead of its start by design (here ≥ `--lead` s), so timing from the create
call would add a wait that is the request's own schedule, not the controller's work;
from the start time, both figures cover the same path — request due → plan → one
command per inverter → accepted — and neither covers the request's transport (stdin
for the SDK, the dispatch service's stream for ours, both before the origin).
A request not complete within `--timeout` s (10) counts at the timeout (a lower bound)
and is listed with the number of inverters it reached.

**Holding a target.** After the last request (and the deletion of the one before),
`--settle` s (3), then a window of `--window` s (60; e.g. 20 for a quick run) with the
target unchanged: the CPU seconds of the controller process (ours: the daemon; SDK:
the sdk_stack process) and of the simulator over the window, scaled to a minute; the
accepted commands per inverter per minute (command log); the controller's RSS at the
end (and its peak). The SDK's proposals expire after 60 s and its commands carry the
API's default 60 s lifetime, so a program that holds a target with the SDK proposes
it again: the SDK side re-proposes the same value every `--sdk-repropose` s (20)
counted from its last proposal; ours holds it through the running dispatch (its own
keep-alive). For ours, the events of its log inside the window are counted (the most
frequent are printed), e.g. `telemetry_resumed`.

    .venv/bin/python benchmarks/sdk_side_by_side.py [--sizes 4 50 200] [--reps 3]
        [--window 60] [--requests 8]

Goals (issue 18), at 200 inverters: latency p99 ratio ours/SDK ≤ 0.5, CPU ratio ≤ 0.5,
≤ 6 commands per inverter per minute while the target is steady, p99 ≤ 500 ms. The
last line is machine-readable (nan where a figure is missing):

    latency_p99_ratio_vs_sdk_n200=<ours/sdk> cpu_ratio_vs_sdk_n200=<ours/sdk>
    commands_per_inverter_per_min_n200=<ours> latency_p99_ms_n200=<ours>
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import random
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.battery_sites import INVERTER_BASE, battery_site_document
from benchmarks.site_processes import (
    Child,
    CommandLogTail,
    LineTail,
    LogTail,
    ProcessStats,
    percentile,
    start_controller,
    start_dispatch_server,
    start_python_module,
    start_simulator,
    toml_text,
)
from edge_controller.dispatching.producer import DispatchProducer

KEY = "bench-key"
PER_INVERTER_W = 20_000.0
"""The first request's power per inverter; later ones alternate sign, 1 kW less each."""
GOALS = {"latency_ratio": 0.5, "cpu_ratio": 0.5, "commands_per_min": 6.0, "p99_ms": 500.0}
POLL_S = 0.02


def request_power_w(index: int, inverters: int) -> float:
    """−20 kW, +19 kW, −18 kW, ... per inverter (down to ±10 kW), times `inverters`."""
    per_inverter = PER_INVERTER_W - 1_000.0 * (index % 11)
    return (-per_inverter if index % 2 == 0 else per_inverter) * inverters


# ---------------------------------------------------------------- the two stacks


def _sdk_line_key(line: bytes) -> str:
    """`WARNING:frequenz.sdk.x:message` (logging's basic format) -> `warning frequenz.sdk.x`."""
    level, _, rest = line.decode(errors="replace").partition(":")
    logger = rest.partition(":")[0]
    return f"{level.lower()} {logger}" if level.isupper() and logger else "other lines"


class SdkSide:
    """`benchmarks/sdk_stack.py` in its own process, driven by its line protocol."""

    name = "sdk"

    def __init__(self, sim_url: str, directory: Path) -> None:
        self.sim_url = sim_url
        self.directory = directory
        self.child: Child | None = None
        self.events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.reports = 0
        self.last_proposed_at = 0.0
        self.last_w = 0.0
        self._reader: asyncio.Task[None] | None = None
        self._log: LineTail | None = None

    @property
    def pid(self) -> int:
        assert self.child is not None
        return self.child.pid

    async def start(self) -> None:
        self.child = await start_python_module(
            "sdk_stack", "benchmarks.sdk_stack", [self.sim_url], self.directory / "sdk.log"
        )
        self._log = LineTail(self.directory / "sdk.log")
        self._reader = asyncio.create_task(self._read())
        await self._next("ready", 90.0)

    async def _read(self) -> None:
        assert self.child is not None
        assert self.child.process.stdout is not None
        while line := await self.child.process.stdout.readline():
            with contextlib.suppress(ValueError):
                event = json.loads(line)
                if event.get("event") == "report":
                    self.reports += 1
                else:
                    self.events.put_nowait(event)

    async def _next(self, kind: str, timeout_s: float) -> dict[str, Any]:
        assert self.child is not None
        try:
            async with asyncio.timeout(timeout_s):
                while True:
                    event = await self.events.get()
                    if event.get("event") == kind:
                        return event
        except TimeoutError:
            raise RuntimeError(
                f"sdk_stack: no {kind!r} within {timeout_s:g} s: {self.child.tail_of_log()}"
            ) from None

    async def request(self, power_w: float) -> float:
        """Propose `power_w`; return the origin: the `proposed` event's time."""
        assert self.child is not None
        assert self.child.process.stdin is not None
        self.child.process.stdin.write(f"propose {power_w!r}\n".encode())
        await self.child.process.stdin.drain()
        proposed = await self._next("proposed", 10.0)
        self.last_proposed_at, self.last_w = float(proposed["at"]), power_w
        return self.last_proposed_at

    async def landed(self) -> None:
        """Nothing to tidy after a request."""

    async def hold(self, repropose_s: float) -> int:
        """Propose the same target again if the last proposal is `repropose_s` old."""
        if time.time() - self.last_proposed_at >= repropose_s:
            await self.request(self.last_w)
            return 1
        return 0

    def window_log_counts(self) -> Counter[str]:
        """Its log lines (stderr) since the last call, by level and logger."""
        if self._log is None:
            return Counter()
        return Counter(_sdk_line_key(line) for line in self._log.lines())

    async def stop(self) -> None:
        if self.child is None:
            return
        stdin = self.child.process.stdin
        if stdin is not None and self.child.process.returncode is None:
            with contextlib.suppress(OSError, ConnectionError):
                stdin.write(b"exit\n")
                await stdin.drain()
                stdin.close()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(5):
                    await self.child.process.wait()
        await self.child.stop()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader


class OurSide:
    """Our daemon (`edge-controller run`) and a local dispatch service, each a process."""

    name = "ours"

    def __init__(
        self,
        sim_url: str,
        directory: Path,
        resolutions: dict[str, float],
        *,
        lead_s: float,
        algorithm: str,
    ) -> None:
        self.sim_url = sim_url
        self.directory = directory
        self.resolutions = resolutions
        self.lead_s = lead_s
        self.algorithm = algorithm
        self.child: Child | None = None
        self.dispatch_child: Child | None = None
        self.producer: DispatchProducer | None = None
        self.log: LogTail | None = None
        self.previous_id: int | None = None
        self.current_id: int | None = None

    @property
    def pid(self) -> int:
        assert self.child is not None
        return self.child.pid

    async def start(self) -> None:
        keys = self.directory / "dispatch.keys"
        keys.write_text(KEY + "\n")
        self.dispatch_child, dispatch_url = await start_dispatch_server(
            "dispatch-server",
            self.directory / "dispatches.db",
            keys,
            self.directory / "dispatch-server.log",
        )
        config = {
            "microgrid": {"url": self.sim_url, "id": 1},
            "dispatch": {"url": dispatch_url, "key_file": str(keys), "startup_timeout": 30},
            "power_distribution": {
                "algorithm": self.algorithm,
                "request_timeout": 5,
                "resolutions": self.resolutions,
            },
            "logging": {"level": "info", "levels": {"grpc": "warning"}},
            "metrics": {"listen": "127.0.0.1:0"},
            "http": {"listen": ""},  # no web console: every daemon would ask for 8080
            "use_cases": [
                {
                    "kind": "battery_power",
                    "name": "battery_power",
                    "dispatch_types": ["BATTERY_POWER"],
                }
            ],
        }
        config_path = self.directory / "edge-controller.toml"
        config_path.write_text(toml_text(config))
        log_path = self.directory / "controller.log"
        self.child = await start_controller("controller", config_path, log_path)
        self.log = LogTail(log_path)
        await self.log.wait_for("controller_started", self.child, 90.0)
        self.producer = DispatchProducer(dispatch_url, 1, KEY)
        # The dispatch library's stream connects just after the start; an event sent
        # before it had connected was missed (FREQUENZ-NOTES): leave it a moment.
        await asyncio.sleep(1.0)

    async def request(self, power_w: float) -> float:
        """Create the dispatch; return the origin: its start time (a whole second)."""
        assert self.producer is not None
        earliest = datetime.now(UTC) + timedelta(seconds=self.lead_s)
        start = earliest.replace(microsecond=0) + timedelta(seconds=1)
        dispatch_id = await self.producer.create_battery_power(power_w, None, start, None)
        self.previous_id, self.current_id = self.current_id, dispatch_id
        return start.timestamp()

    async def landed(self) -> None:
        """The new dispatch owns every battery: delete the one it replaced."""
        if self.producer is not None and self.previous_id is not None:
            await self.producer.delete(self.previous_id)
            self.previous_id = None

    async def hold(self, repropose_s: float) -> int:
        """The running dispatch holds the target; nothing to do."""
        del repropose_s
        return 0

    def window_log_counts(self) -> Counter[str]:
        """The events logged since the last call, by name (level and event)."""
        assert self.log is not None
        return Counter(f"{e.get('level', '?')} {e.get('event')}" for e in self.log.read())

    async def stop(self) -> None:
        if self.producer is not None:
            with contextlib.suppress(Exception):
                await self.producer.close()
        for child in (self.child, self.dispatch_child):
            if child is not None:
                await child.stop()


Side = SdkSide | OurSide


# ---------------------------------------------------------------- one run


@dataclass
class Request:
    index: int
    power_w: float
    origin: float
    reached: dict[int, float] = field(default_factory=dict)
    """Inverter id -> when its first command of the request's sign was accepted."""

    def latency_s(self, inverters: int, timeout_s: float) -> float:
        if len(self.reached) < inverters:
            return timeout_s
        return max(0.0, max(self.reached.values()) - self.origin)

    def first_s(self) -> float:
        """From the origin to the first inverter's command (nan if none came)."""
        return min(self.reached.values()) - self.origin if self.reached else math.nan


@dataclass
class RunResult:
    stack: str
    inverters: int
    rep: int
    startup_s: float
    requests: list[Request]
    incomplete: list[tuple[int, int]]
    """(request index, inverters reached) for requests not complete within the timeout."""
    window_s: float
    controller_cpu_per_min: float
    sim_cpu_per_min: float
    commands_per_inverter_per_min: float
    commands_per_inverter_max: int
    rss_mb: float
    peak_rss_mb: float
    reproposals: int
    log_counts: Counter[str]
    """The stack's log events in the window, by level and name (SDK: logger)."""
    requests_log_counts: Counter[str]
    """The same from its start to the window (start-up and the requests)."""
    latencies_ms: list[float] = field(default_factory=list)
    first_ms: list[float] = field(default_factory=list)
    """Per request, origin -> the first inverter's command: where the spread starts."""


async def _await_request(
    request: Request,
    tail: CommandLogTail,
    inverters: frozenset[int],
    since: float,
    timeout_s: float,
) -> None:
    """Collect, per inverter, the first accepted command of the request's sign."""
    sign = math.copysign(1.0, request.power_w)
    deadline = max(request.origin, time.time()) + timeout_s
    while True:
        for command in tail.read():
            if (
                command.at >= since
                and command.component_id in inverters
                and command.component_id not in request.reached
                and command.requested_w != 0.0
                and math.copysign(1.0, command.requested_w) == sign
            ):
                request.reached[command.component_id] = command.at
        if len(request.reached) == len(inverters) or time.time() > deadline:
            return
        await asyncio.sleep(POLL_S)


async def one_run(stack: str, inverters: int, rep: int, args: argparse.Namespace) -> RunResult:
    document = battery_site_document(inverters)
    inverter_ids = frozenset(INVERTER_BASE + i for i in range(inverters))
    resolutions = {
        str(c["id"]): c["resolution"]
        for c in document["components"]
        if c["kind"] == "battery_inverter"
    }
    with tempfile.TemporaryDirectory(prefix=f"ssb-{stack}-{inverters}-") as tmp:
        directory = Path(tmp)
        site_path = directory / "site.toml"
        site_path.write_text(toml_text(document))
        command_log = directory / "commands.jsonl"
        sim, sim_url = await start_simulator("sim", site_path, command_log, directory / "sim.log")
        side: Side = (
            SdkSide(sim_url, directory)
            if stack == "sdk"
            else OurSide(
                sim_url, directory, resolutions, lead_s=args.lead, algorithm=args.algorithm
            )
        )
        try:
            spawned = time.monotonic()
            await side.start()
            startup_s = time.monotonic() - spawned
            tail = CommandLogTail(command_log)
            requests: list[Request] = []
            incomplete: list[tuple[int, int]] = []
            for index in range(args.warmup + args.requests):
                power_w = request_power_w(index, inverters)
                since = time.time()
                origin = await side.request(power_w)
                request = Request(index, power_w, origin)
                await _await_request(request, tail, inverter_ids, since, args.timeout)
                if len(request.reached) < inverters:
                    incomplete.append((index, len(request.reached)))
                await side.landed()
                if index >= args.warmup:
                    requests.append(request)
                await asyncio.sleep(random.uniform(0.5, 1.0))
            await asyncio.sleep(args.settle)
            requests_log_counts = side.window_log_counts()  # before the window
            tail.read()
            sim_before, ctl_before = sim.stats(), ProcessStats.of(side.pid)
            window_start = time.time()
            reproposals = 0
            while time.time() - window_start < args.window:
                reproposals += await side.hold(args.sdk_repropose)
                await asyncio.sleep(0.2)
            window_end = time.time()
            sim_after, ctl_after = sim.stats(), ProcessStats.of(side.pid)
            log_counts = side.window_log_counts()
            per_inverter = Counter(
                c.component_id
                for c in tail.read()
                if c.component_id in inverter_ids and window_start <= c.at <= window_end
            )
        finally:
            await side.stop()
            await sim.stop()
    window_s = window_end - window_start
    assert sim_before is not None
    assert sim_after is not None
    latencies = [r.latency_s(inverters, args.timeout) * 1e3 for r in requests]
    return RunResult(
        stack=stack,
        inverters=inverters,
        rep=rep,
        startup_s=startup_s,
        requests=requests,
        incomplete=incomplete,
        window_s=window_s,
        controller_cpu_per_min=(ctl_after.cpu_s - ctl_before.cpu_s) / window_s * 60,
        sim_cpu_per_min=(sim_after.cpu_s - sim_before.cpu_s) / window_s * 60,
        commands_per_inverter_per_min=sum(per_inverter.values()) / inverters / window_s * 60,
        commands_per_inverter_max=max(per_inverter.values(), default=0),
        rss_mb=ctl_after.rss_mb,
        peak_rss_mb=ctl_after.peak_rss_mb,
        reproposals=reproposals,
        log_counts=log_counts,
        requests_log_counts=requests_log_counts,
        latencies_ms=latencies,
        first_ms=[r.first_s() * 1e3 for r in requests],
    )


# ---------------------------------------------------------------- report


def describe(run: RunResult) -> str:
    lat = run.latencies_ms
    text = (
        f"  {run.stack:>4} n={run.inverters:<3} rep {run.rep}: start-up {run.startup_s:5.1f} s; "
        f"latency p50 {percentile(lat, 0.5):7.1f} p99 {percentile(lat, 0.99):7.1f} ms "
        f"(min {min(lat):.1f}; first inverter p50 {percentile(run.first_ms, 0.5):.1f}); "
        f"holding {run.window_s:.0f} s: controller "
        f"{run.controller_cpu_per_min:5.2f} CPU-s/min, simulator {run.sim_cpu_per_min:5.2f} "
        f"CPU-s/min ({run.sim_cpu_per_min / 60 * 100:.0f} % of a core), "
        f"{run.commands_per_inverter_per_min:5.2f} commands/inverter/min "
        f"(max {run.commands_per_inverter_max} on one inverter), "
        f"RSS {run.rss_mb:.0f} MB (peak {run.peak_rss_mb:.0f})"
    )
    if run.reproposals:
        text += f"; {run.reproposals} re-proposals"
    if run.incomplete:
        text += (
            "\n        incomplete within the timeout (request: inverters reached): "
            + ", ".join(f"{i}: {k}/{run.inverters}" for i, k in run.incomplete)
        )
    for label, counts in (
        ("before the window (start-up, requests)", run.requests_log_counts),
        ("in the window", run.log_counts),
    ):
        notable = Counter({k: n for k, n in counts.items() if not k.startswith("info ")})
        if label == "in the window":
            notable = counts
        if notable:
            top = ", ".join(f"{name} x{n}" for name, n in notable.most_common(6))
            text += f"\n        log {label}: {top}"
    return text


def _median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else math.nan


@dataclass
class Summary:
    latency_p50_ms: float
    latency_p99_ms: float
    cpu_per_min: float
    sim_cpu_per_min: float
    commands_per_min: float
    rss_mb: float


def summarize(runs: Sequence[RunResult]) -> Summary:
    latencies = [x for run in runs for x in run.latencies_ms]
    return Summary(
        latency_p50_ms=percentile(latencies, 0.5),
        latency_p99_ms=percentile(latencies, 0.99),
        cpu_per_min=_median([r.controller_cpu_per_min for r in runs]),
        sim_cpu_per_min=_median([r.sim_cpu_per_min for r in runs]),
        commands_per_min=_median([r.commands_per_inverter_per_min for r in runs]),
        rss_mb=_median([r.rss_mb for r in runs]),
    )


def _ratio(ours: float, sdk: float) -> float:
    return ours / sdk if sdk > 0 else math.nan


def report(runs: Sequence[RunResult], sizes: Sequence[int]) -> str:
    print(
        "\nper size (latency over every counted request of every repetition; the others "
        "the median of the repetitions):"
    )
    print(
        f"{'N':>4} {'stack':>5} {'p50 ms':>8} {'p99 ms':>8} {'CPU-s/min':>10} "
        f"{'sim CPU-s/min':>14} {'cmd/inv/min':>12} {'RSS MB':>7}"
    )
    summaries: dict[tuple[int, str], Summary] = {}
    for n in sizes:
        for stack in ("sdk", "ours"):
            chosen = [r for r in runs if r.inverters == n and r.stack == stack]
            if not chosen:
                continue
            s = summaries[(n, stack)] = summarize(chosen)
            print(
                f"{n:4d} {stack:>5} {s.latency_p50_ms:8.1f} {s.latency_p99_ms:8.1f} "
                f"{s.cpu_per_min:10.2f} {s.sim_cpu_per_min:14.2f} {s.commands_per_min:12.2f} "
                f"{s.rss_mb:7.0f}"
            )
        if (n, "sdk") in summaries and (n, "ours") in summaries:
            ours, sdk = summaries[(n, "ours")], summaries[(n, "sdk")]
            print(
                f"{'':4} ratio ours/SDK: latency p99 "
                f"{_ratio(ours.latency_p99_ms, sdk.latency_p99_ms):.2f}, "
                f"CPU {_ratio(ours.cpu_per_min, sdk.cpu_per_min):.2f}"
            )
    nan = Summary(math.nan, math.nan, math.nan, math.nan, math.nan, math.nan)
    ours, sdk = summaries.get((200, "ours"), nan), summaries.get((200, "sdk"), nan)
    latency_ratio = _ratio(ours.latency_p99_ms, sdk.latency_p99_ms)
    cpu_ratio = _ratio(ours.cpu_per_min, sdk.cpu_per_min)
    if (200, "ours") in summaries:
        checks = [
            ("latency p99 ratio", latency_ratio, GOALS["latency_ratio"]),
            ("CPU ratio", cpu_ratio, GOALS["cpu_ratio"]),
            ("commands per inverter per minute", ours.commands_per_min, GOALS["commands_per_min"]),
            ("latency p99 ms", ours.latency_p99_ms, GOALS["p99_ms"]),
        ]
        print("\ngoals at 200 inverters:")
        for label, value, goal in checks:
            verdict = "meets" if value <= goal else "MISSES"
            print(f"  {label:<34} {value:9.2f}  (goal <= {goal:g}): {verdict}")
    return (
        f"latency_p99_ratio_vs_sdk_n200={latency_ratio:.3f} cpu_ratio_vs_sdk_n200={cpu_ratio:.3f} "
        f"commands_per_inverter_per_min_n200={ours.commands_per_min:.2f} "
        f"latency_p99_ms_n200={ours.latency_p99_ms:.1f}"
    )


async def run_all(args: argparse.Namespace) -> list[RunResult]:
    runs: list[RunResult] = []
    for rep in range(1, args.reps + 1):
        for n in args.sizes:
            for stack in args.stacks:
                result = await one_run(stack, n, rep, args)
                runs.append(result)
                print(describe(result), flush=True)
    return runs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[4, 50, 200])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--stacks", nargs="+", choices=("sdk", "ours"), default=["sdk", "ours"])
    parser.add_argument("--requests", type=int, default=8, help="timed requests per run (8)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed requests first (1)")
    parser.add_argument("--window", type=float, default=60.0, help="steady window, s (60)")
    parser.add_argument("--settle", type=float, default=3.0, help="s before the window (3)")
    parser.add_argument("--timeout", type=float, default=10.0, help="per request, s (10)")
    parser.add_argument("--lead", type=float, default=1.0, help="dispatch create -> start (1)")
    parser.add_argument(
        "--sdk-repropose", type=float, default=20.0, help="SDK: propose again every s (20)"
    )
    parser.add_argument(
        "--algorithm", choices=("proportional", "soc_balancing"), default="proportional"
    )
    args = parser.parse_args()
    if args.requests < 1 or args.reps < 1 or args.window <= 0:
        parser.error("--requests and --reps must be >= 1, --window > 0")
    print(
        f"sizes {args.sizes} inverters, {args.reps} repetitions, {args.requests} timed requests "
        f"(+{args.warmup} warm-up) per run, steady window {args.window:g} s; "
        f"ours: algorithm {args.algorithm}, dispatch lead >= {args.lead:g} s; "
        f"SDK re-proposes every {args.sdk_repropose:g} s"
    )
    print(
        f"python {sys.version.split()[0]}; {os.cpu_count()} CPUs; loadavg {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    runs = asyncio.run(run_all(args))
    last = report(runs, args.sizes)
    print(last, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
