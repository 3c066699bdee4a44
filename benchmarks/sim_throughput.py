"""Simulator throughput on the large site (config/sim-site-large.toml).

(a) The pure model: `SiteModel.step` with a synthetic, advancing `now` (one tick of
    1/telemetry_rate_hz per call), battery inverters and EV chargers under commands.
    Reported as component-steps per second = components x physics sub-steps / time
    spent in `step()`.
(b) The server: ONE telemetry stream per component of the site, opened with the real
    `frequenz.client.microgrid.MicrogridApiClient` asking for the metrics the SDK
    asks for (its `*Data.METRICS`), counted over `--duration` seconds of wall time
    after a warm-up. The server runs in its own process (`edge-controller sim`) when
    that CLI exists, so its CPU is read from /proc/<pid>/stat apart from the client's;
    otherwise in-process, and then the CPU figure covers client and server together.

The last line is machine-readable:

    sim_steps_per_s=<float> telemetry_samples_per_s=<float> cpu_pct_one_core=<float>

where cpu_pct_one_core is the simulator server's CPU time / wall time x 100.
Only 127.0.0.1 and free ports (port 0) are used.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import shutil
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO

from frequenz.channels import Receiver
from frequenz.client.common.microgrid.components import ComponentId
from frequenz.client.microgrid import MicrogridApiClient
from frequenz.client.microgrid.component import ComponentDataSamples
from frequenz.client.microgrid.metrics import Metric as ClientMetric
from frequenz.sdk.microgrid._old_component_data import (
    BatteryData,
    EVChargerData,
    InverterData,
    MeterData,
)

from edge_controller.servers.sim.errors import SimError
from edge_controller.servers.sim.model import MAX_SUBSTEPS, SiteModel
from edge_controller.servers.sim.site import SiteSpec, load_site
from edge_controller.servers.sim.site_details import ComponentKind

REPO = Path(__file__).resolve().parent.parent
LARGE_SITE = REPO / "config" / "sim-site-large.toml"
TARGET_CPU_PCT = 25.0
LISTEN = "127.0.0.1:0"
STARTUP_TIMEOUT_S = 30.0
FIRST_SAMPLE_TIMEOUT_S = 20.0
MODEL_START = datetime(2026, 6, 21, 10, 0, tzinfo=UTC)
"""Mid-morning: PV, wind and loads all non-zero."""

SDK_METRICS: dict[ComponentKind, frozenset[ClientMetric]] = {
    ComponentKind.GRID: MeterData.METRICS,
    ComponentKind.METER: MeterData.METRICS,
    ComponentKind.LOAD: MeterData.METRICS,
    ComponentKind.WIND_TURBINE: MeterData.METRICS,
    ComponentKind.BATTERY_INVERTER: InverterData.METRICS,
    ComponentKind.PV_INVERTER: InverterData.METRICS,
    ComponentKind.BATTERY: BatteryData.METRICS,
    ComponentKind.EV_CHARGER: EVChargerData.METRICS,
}
"""What frequenz-sdk rc2214 subscribes with, per category (its legacy `*Data.METRICS`);
the SDK has no wind-turbine wrapper, so the turbines get the meter's AC metrics."""


# ---------------------------------------------------------------- (a) pure model


@dataclass
class ModelResult:
    components: int
    steps: int
    substeps: int
    step_time_s: float
    commands: int
    refused: int
    sample_calls: int
    sample_time_s: float

    @property
    def component_steps_per_s(self) -> float:
        return self.components * self.substeps / self.step_time_s

    @property
    def sample_us(self) -> float:
        return 1e6 * self.sample_time_s / self.sample_calls if self.sample_calls else math.nan


def _command_all(model: SiteModel, site: SiteSpec, now: datetime, round_: int) -> tuple[int, int]:
    """Command every battery inverter (half charge, half discharge) and EV charger."""
    accepted = refused = 0
    for index, spec in enumerate(site.components):
        if spec.kind is ComponentKind.BATTERY_INVERTER:
            bounds = model.active_bounds(spec.id, now)
            if not bounds:
                continue
            charge = (index + round_) % 2 == 0
            target = 0.4 * (bounds[-1].upper if charge else bounds[0].lower)
        elif spec.kind is ComponentKind.EV_CHARGER:
            bounds = model.active_bounds(spec.id, now)
            target = 0.5 * bounds[-1].upper if bounds else 0.0
        else:
            continue
        try:
            model.set_active_power(spec.id, target, now, lifetime_s=900)
            accepted += 1
        except SimError:
            refused += 1
    return accepted, refused


def bench_model(site: SiteSpec, seconds: float) -> ModelResult:
    """Step the model tick by tick for about `seconds` of wall time."""
    model = SiteModel(site, MODEL_START)
    tick = timedelta(seconds=1.0 / site.simulation.telemetry_rate_hz)
    time_step_s = site.simulation.time_step_s
    recommand_every = 600  # ticks: one minute of simulated time at 10 Hz
    ids = model.component_ids()
    now = MODEL_START
    commands, refused = _command_all(model, site, now, 0)
    steps = substeps = sample_calls = 0
    step_time = sample_time = 0.0
    wall_start = time.perf_counter()
    while time.perf_counter() - wall_start < seconds:
        if steps and steps % recommand_every == 0:
            accepted, rejected = _command_all(model, site, now, steps // recommand_every)
            commands += accepted
            refused += rejected
        previous = model.wall_time
        now += tick
        t0 = time.perf_counter()
        model.step(now)
        t1 = time.perf_counter()
        step_time += t1 - t0
        steps += 1
        wall_dt = (now - previous).total_seconds()
        substeps += min(MAX_SUBSTEPS, max(1, math.ceil(wall_dt / time_step_s)))
        if steps % 10 == 0:  # what one telemetry tick builds, once a second of sim time
            t0 = time.perf_counter()
            for cid in ids:
                model.sample(cid, now)
            sample_time += time.perf_counter() - t0
            sample_calls += len(ids)
    return ModelResult(
        components=len(ids),
        steps=steps,
        substeps=substeps,
        step_time_s=step_time,
        commands=commands,
        refused=refused,
        sample_calls=sample_calls,
        sample_time_s=sample_time,
    )


# ---------------------------------------------------------------- (b) telemetry


@dataclass(frozen=True)
class ProcCpu:
    """CPU seconds of a process from /proc: user, system, and its main thread's share."""

    user_s: float
    system_s: float
    main_thread_s: float

    @property
    def total_s(self) -> float:
        return self.user_s + self.system_s

    def __sub__(self, other: ProcCpu) -> ProcCpu:
        return ProcCpu(
            self.user_s - other.user_s,
            self.system_s - other.system_s,
            self.main_thread_s - other.main_thread_s,
        )


def _stat_times(path: Path) -> tuple[float, float]:
    stat = path.read_text(encoding="ascii")
    fields = stat[stat.rindex(")") + 2 :].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / ticks, int(fields[12]) / ticks  # utime, stime


def read_proc_cpu(pid: int) -> ProcCpu:
    """Return a process's CPU times (all threads) and its main thread's."""
    user, system = _stat_times(Path(f"/proc/{pid}/stat"))
    main_user, main_system = _stat_times(Path(f"/proc/{pid}/task/{pid}/stat"))
    return ProcCpu(user, system, main_user + main_system)


class ServerHandle:
    """The simulator under test: a child process, or in-process as a fallback."""

    def __init__(self, url: str, *, pid: int | None, mode: str) -> None:
        self.url = url
        self.pid = pid
        self.mode = mode

    def cpu(self) -> ProcCpu | None:
        """Return the server process's CPU times (None when in-process)."""
        return read_proc_cpu(self.pid) if self.pid is not None else None


def _cli_path() -> Path | None:
    candidate = Path(sys.executable).parent / "edge-controller"
    if candidate.exists():
        return candidate
    found = shutil.which("edge-controller")
    return Path(found) if found else None


@contextlib.asynccontextmanager
async def _subprocess_server(cli: Path, site_path: Path) -> AsyncIterator[ServerHandle]:
    with tempfile.TemporaryFile("w+", encoding="utf-8") as stderr_file:
        proc = await asyncio.create_subprocess_exec(
            str(cli),
            "--log-level",
            "warning",
            "sim",
            "--site",
            str(site_path),
            "--listen",
            LISTEN,
            stdout=asyncio.subprocess.PIPE,
            stderr=stderr_file,
        )
        try:
            assert proc.stdout is not None
            try:
                line = await asyncio.wait_for(proc.stdout.readline(), STARTUP_TIMEOUT_S)
            except TimeoutError:
                line = b""
            text = line.decode().strip()
            if not text.startswith("listening address="):
                raise RuntimeError(
                    f"simulator did not start (first line {text!r}): {_tail(stderr_file)}"
                )
            address = text.removeprefix("listening address=")
            yield ServerHandle(f"grpc://{address}?ssl=false", pid=proc.pid, mode="subprocess")
        finally:
            if proc.returncode is None:
                proc.terminate()
                try:
                    await asyncio.wait_for(proc.wait(), 10.0)
                except TimeoutError:
                    proc.kill()
                    await proc.wait()


def _tail(stream: IO[str]) -> str:
    stream.seek(0)
    return stream.read()[-2000:]


@contextlib.asynccontextmanager
async def _in_process_server(site: SiteSpec) -> AsyncIterator[ServerHandle]:
    from edge_controller.common import logging as logs
    from edge_controller.servers.sim.server import SimulatorServer

    logs.configure("warning")  # to stderr, as the CLI does: keep stdout for the figures
    async with SimulatorServer(site, LISTEN) as server:
        yield ServerHandle(server.url, pid=None, mode="in-process")


@dataclass
class StreamStats:
    count: int = 0
    latencies_s: list[float] = field(default_factory=list)


async def _count(
    receiver: Receiver[ComponentDataSamples], stats: StreamStats, first: asyncio.Event
) -> None:
    async for samples in receiver:
        stats.count += 1
        first.set()
        if samples.metric_samples and stats.count % 5 == 0:
            sampled_at = samples.metric_samples[0].sampled_at
            stats.latencies_s.append(time.time() - sampled_at.timestamp())


def _component_id(cid: int) -> ComponentId:
    # The 0.18 client wants this deprecated alias; keep its warning out of the output.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return ComponentId(cid)


@dataclass
class TelemetryResult:
    mode: str
    streams: int
    rate_hz: float
    window_s: float
    samples: int
    per_stream: list[int]
    client_cpu_s: float
    server_pid: int | None
    server_cpu: ProcCpu | None
    latencies_s: list[float]
    ready_after_s: float

    @property
    def samples_per_s(self) -> float:
        return self.samples / self.window_s

    @property
    def expected_per_s(self) -> float:
        return self.streams * self.rate_hz

    @property
    def client_cpu_pct(self) -> float:
        return 100.0 * self.client_cpu_s / self.window_s

    @property
    def server_cpu_pct(self) -> float:
        cpu = self.server_cpu.total_s if self.server_cpu is not None else self.client_cpu_s
        return 100.0 * cpu / self.window_s

    def pct(self, seconds: float) -> float:
        return 100.0 * seconds / self.window_s


async def bench_telemetry(
    site: SiteSpec, site_path: Path, duration_s: float, warmup_s: float, in_process: bool
) -> TelemetryResult:
    """Open one stream per component and count what arrives in the window."""
    cli = None if in_process else _cli_path()
    server_cm = _subprocess_server(cli, site_path) if cli is not None else _in_process_server(site)
    async with server_cm as server:
        client = MicrogridApiClient(server.url)
        async with client:
            stats = [StreamStats() for _ in site.components]
            firsts = [asyncio.Event() for _ in site.components]
            tasks = []
            opened = time.perf_counter()
            for spec, stat, first in zip(site.components, stats, firsts, strict=True):
                receiver = client.receive_component_data_samples_stream(
                    _component_id(spec.id),
                    SDK_METRICS[spec.kind],
                )
                tasks.append(asyncio.create_task(_count(receiver, stat, first)))
            try:
                await asyncio.wait_for(
                    asyncio.gather(*(f.wait() for f in firsts)), FIRST_SAMPLE_TIMEOUT_S
                )
                ready_after = time.perf_counter() - opened
                await asyncio.sleep(warmup_s)

                counts0 = [s.count for s in stats]
                for s in stats:
                    s.latencies_s.clear()
                server_cpu0 = server.cpu()
                cpu0 = time.process_time()
                wall0 = time.perf_counter()
                await asyncio.sleep(duration_s)
                wall1 = time.perf_counter()
                cpu1 = time.process_time()
                server_cpu1 = server.cpu()
                counts1 = [s.count for s in stats]
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
    per_stream = [b - a for a, b in zip(counts0, counts1, strict=True)]
    return TelemetryResult(
        mode=server.mode,
        streams=len(site.components),
        rate_hz=site.simulation.telemetry_rate_hz,
        window_s=wall1 - wall0,
        samples=sum(per_stream),
        per_stream=per_stream,
        client_cpu_s=cpu1 - cpu0,
        server_pid=server.pid,
        server_cpu=(
            server_cpu1 - server_cpu0
            if server_cpu0 is not None and server_cpu1 is not None
            else None
        ),
        latencies_s=[x for s in stats for x in s.latencies_s],
        ready_after_s=ready_after,
    )


# ---------------------------------------------------------------- report


def _load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"loadavg {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} CPUs"


def _percentile(values: Iterable[float], fraction: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return math.nan
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def main() -> int:
    """Run both benchmarks and print the figures."""
    parser = argparse.ArgumentParser(description="Simulator throughput on the large site.")
    parser.add_argument(
        "--duration", type=float, default=10.0, help="telemetry window, seconds (10)"
    )
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds before the window (2)")
    parser.add_argument(
        "--model-seconds", type=float, default=3.0, help="wall time for the model benchmark (3)"
    )
    parser.add_argument("--site", type=Path, default=LARGE_SITE, help="site file")
    parser.add_argument("--in-process", action="store_true", help="run the server in this process")
    args = parser.parse_args()
    if args.duration < 10:
        print(f"note: --duration {args.duration:g} s is below the 10 s the figures assume")

    site = load_site(args.site)
    kinds: dict[str, int] = {}
    for spec in site.components:
        kinds[spec.kind.value] = kinds.get(spec.kind.value, 0) + 1
    print(f"site: {args.site.name}, {len(site.components)} components ({kinds})")
    print(f"machine before: {_load()}")

    model = bench_model(site, args.model_seconds)
    print("\n(a) pure model (SiteModel.step, synthetic now, batteries under commands)")
    print(
        f"  {model.steps} ticks of {1 / site.simulation.telemetry_rate_hz:g} s = "
        f"{model.substeps} sub-steps x {model.components} components in "
        f"{model.step_time_s:.3f} s of step() time"
    )
    print(
        f"  commands accepted {model.commands}, refused {model.refused}; "
        f"{1e3 * model.step_time_s / model.steps:.3f} ms per tick"
    )
    print(f"  component-steps/s: {model.component_steps_per_s:,.0f}")
    print(
        f"  sample(): {model.sample_us:.1f} us per component "
        f"-> {model.sample_us * model.components / 1e3:.2f} ms per tick for the whole site"
    )

    telemetry = asyncio.run(
        bench_telemetry(site, args.site, args.duration, args.warmup, args.in_process)
    )
    ratio = telemetry.samples_per_s / telemetry.expected_per_s
    print(f"\n(b) telemetry: one stream per component, server {telemetry.mode}")
    print(
        f"  {telemetry.streams} streams open, every one delivering after "
        f"{telemetry.ready_after_s:.2f} s; window {telemetry.window_s:.2f} s after "
        f"{args.warmup:g} s warm-up"
    )
    print(
        f"  samples received: {telemetry.samples} -> {telemetry.samples_per_s:,.1f}/s; "
        f"expected {telemetry.streams} x {telemetry.rate_hz:g} Hz = "
        f"{telemetry.expected_per_s:,.1f}/s; achieved/expected = {ratio:.3f}"
    )
    per_stream_rate = [n / telemetry.window_s for n in telemetry.per_stream]
    print(
        f"  per stream: min {min(per_stream_rate):.2f} Hz, median "
        f"{statistics.median(per_stream_rate):.2f} Hz, max {max(per_stream_rate):.2f} Hz"
    )
    print(
        f"  latency sample_time->client: p50 "
        f"{1e3 * _percentile(telemetry.latencies_s, 0.5):.1f} ms, p99 "
        f"{1e3 * _percentile(telemetry.latencies_s, 0.99):.1f} ms"
    )
    cpu = telemetry.server_cpu
    if cpu is not None:
        print(
            f"  server CPU (pid {telemetry.server_pid}, /proc): "
            f"{telemetry.server_cpu_pct:.1f} % of one core = user {telemetry.pct(cpu.user_s):.1f}"
            f" + system {telemetry.pct(cpu.system_s):.1f}; main (asyncio) thread "
            f"{telemetry.pct(cpu.main_thread_s):.1f}, other (gRPC) threads "
            f"{telemetry.pct(cpu.total_s - cpu.main_thread_s):.1f}"
        )
        print(
            f"  server CPU per sample sent: "
            f"{1e6 * cpu.total_s / max(1, telemetry.samples):.0f} us; "
            f"client process (this one): {telemetry.client_cpu_pct:.1f} % of one core"
        )
    else:
        print(
            f"  process CPU (client AND server in one process, not separable): "
            f"{telemetry.server_cpu_pct:.1f} % of one core -- an upper bound for the server"
        )
    if cpu is None:
        verdict = "not judged (server CPU not separable in-process)"
    else:
        verdict = "meets" if telemetry.server_cpu_pct <= TARGET_CPU_PCT else "MISSES"
    print(f"  target <= {TARGET_CPU_PCT:g} % of one core: {verdict}")
    print(f"machine after: {_load()}")
    print(
        f"sim_steps_per_s={model.component_steps_per_s:.1f} "
        f"telemetry_samples_per_s={telemetry.samples_per_s:.1f} "
        f"cpu_pct_one_core={telemetry.server_cpu_pct:.1f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
