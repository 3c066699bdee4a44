"""A fleet on one box: N sites, each with its own simulator and controller, one dispatch service.

Every part is a process of its own on 127.0.0.1 (free ports):

- ONE dispatch service, `edge-controller dispatch-server` (SQLite in a temporary
  directory, one API key), serving every microgrid;
- per site i (1..N): a simulator, `edge-controller sim --command-log FILE` (log level
  warning), on `benchmarks/battery_sites.py`'s site of `--inverters` (4) battery
  inverters with microgrid id i and telemetry at `--telemetry-hz` (2, the rate of the
  shipped example site `config/sim-site.toml`); and a controller, the daemon
  `edge-controller run --config FILE` (JSON log at info) for microgrid i, with one
  `battery_power` use case, its metrics endpoint (/healthz) on a free port.

Start-up is staggered: the simulators one after another (each until it listens), then
the controllers at most `--parallel` (2, the cores) at a time, each counted as started
when it logs `controller_started`; the start-up time of each (spawn → started) is
printed. After `--settle` s (5) every controller's /healthz is probed every
`--probe-interval` s (1) until the end.

**Fleet-wide dispatch** (`--rounds`, 3): one BATTERY_POWER dispatch per microgrid, for
all its batteries (−20 kW per inverter, then +19, −18 kW ...: alternating sign),
created at once (concurrently, one client per microgrid), all starting at the same
instant: the next whole second at least `--lead` s (3) after the creates began (the
service keeps whole seconds). Per site, *first setpoint*: the simulator's first
accepted non-zero command of the round's sign (its command log's `at`, wall clock)
after the common start; the figure is its time from the start. After each round the
fleet holds the target `--hold` s (10), the round's dispatches replacing the previous
round's (the newest owns the batteries; the old ones are deleted after the round).

**Healthy**: the share of sites whose /healthz answered 200 (within 1 s) on every
probe from the end of start-up to the end of the run; the share of probes answered
200 is printed as well, and the CPU (CPU-s per minute, summed over the fleet) and
memory (RSS, summed) of the controllers and of the simulators over the rounds.

    .venv/bin/python benchmarks/fleet.py [--sites 20] [--rounds 3]

Goal (issue 18): 20 sites on a 2-core machine, all healthy, first setpoint p99 ≤ 1 s.
The last line is machine-readable:

    fleet_sites=<n> fleet_first_setpoint_p99_ms=<ms> fleet_healthy_pct=<pct>
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import statistics
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.battery_sites import INVERTER_BASE, battery_site_document
from benchmarks.site_processes import (
    Child,
    CommandLogTail,
    LogTail,
    ProcessStats,
    http_status,
    percentile,
    start_controller,
    start_dispatch_server,
    start_simulator,
    stop_all,
    toml_text,
)
from edge_controller.dispatching.producer import DispatchProducer

KEY = "fleet-key"
PER_INVERTER_W = 20_000.0
GOAL_P99_MS = 1_000.0
ROUND_TIMEOUT_S = 10.0
POLL_S = 0.02


def round_power_w(index: int, inverters: int) -> float:
    """−20 kW, +19 kW, −18 kW, ... per inverter, times `inverters`."""
    per_inverter = PER_INVERTER_W - 1_000.0 * (index % 11)
    return (-per_inverter if index % 2 == 0 else per_inverter) * inverters


@dataclass
class Site:
    microgrid_id: int
    directory: Path
    sim: Child
    sim_url: str
    commands: CommandLogTail
    controller: Child | None = None
    log: LogTail | None = None
    health_address: str = ""
    startup_s: float = math.nan
    producer: DispatchProducer | None = None
    dispatch_ids: list[int] = field(default_factory=list)
    probes: Counter[str] = field(default_factory=Counter)
    """Probe outcomes: "200", "503", "none" (no answer within 1 s)."""
    first_setpoints_ms: list[float] = field(default_factory=list)


async def start_site(microgrid_id: int, root: Path, telemetry_hz: float, inverters: int) -> Site:
    directory = root / f"site-{microgrid_id:03d}"
    directory.mkdir()
    document = battery_site_document(inverters, telemetry_rate_hz=telemetry_hz)
    document["microgrid"]["id"] = microgrid_id
    site_path = directory / "site.toml"
    site_path.write_text(toml_text(document))
    command_log = directory / "commands.jsonl"
    sim, url = await start_simulator(
        f"sim-{microgrid_id}", site_path, command_log, directory / "sim.log"
    )
    return Site(microgrid_id, directory, sim, url, CommandLogTail(command_log))


async def start_site_controller(site: Site, dispatch_url: str, keys: Path, inverters: int) -> None:
    resolutions = {
        str(c["id"]): c["resolution"]
        for c in battery_site_document(inverters)["components"]
        if c["kind"] == "battery_inverter"
    }
    config = {
        "microgrid": {"url": site.sim_url, "id": site.microgrid_id},
        "dispatch": {"url": dispatch_url, "key_file": str(keys), "startup_timeout": 60},
        "power_distribution": {"resolutions": resolutions},
        "logging": {"level": "info", "levels": {"grpc": "warning"}},
        "metrics": {"listen": "127.0.0.1:0"},
        "http": {"listen": ""},  # no web console: every daemon would ask for 8080
        "use_cases": [
            {"kind": "battery_power", "name": "battery_power", "dispatch_types": ["BATTERY_POWER"]}
        ],
    }
    config_path = site.directory / "edge-controller.toml"
    config_path.write_text(toml_text(config))
    log_path = site.directory / "controller.log"
    spawned = time.monotonic()
    site.controller = await start_controller(
        f"controller-{site.microgrid_id}", config_path, log_path
    )
    site.log = LogTail(log_path)
    listening = await site.log.wait_for("metrics_listening", site.controller, 120.0)
    site.health_address = str(listening["address"])
    await site.log.wait_for("controller_started", site.controller, 120.0)
    site.startup_s = time.monotonic() - spawned


async def probe_forever(sites: list[Site], interval_s: float) -> None:
    """Probe every controller's /healthz each `interval_s`, concurrently."""

    async def probe(site: Site) -> None:
        status = await http_status(site.health_address, "/healthz", timeout_s=1.0)
        site.probes[str(status) if status is not None else "none"] += 1

    while True:
        began = time.monotonic()
        await asyncio.gather(*(probe(site) for site in sites))
        await asyncio.sleep(max(0.0, interval_s - (time.monotonic() - began)))


async def fleet_round(index: int, sites: list[Site], args: argparse.Namespace) -> float:
    """Create one dispatch per microgrid at once; collect first setpoints; return start."""
    power_w = round_power_w(index, args.inverters)
    sign = math.copysign(1.0, power_w)
    for site in sites:
        site.commands.read()  # what came before this round
    began = datetime.now(UTC)
    start = (began + timedelta(seconds=args.lead)).replace(microsecond=0) + timedelta(seconds=1)

    async def create(site: Site) -> None:
        assert site.producer is not None
        dispatch_id = await site.producer.create_battery_power(power_w, None, start, None)
        site.dispatch_ids.append(dispatch_id)

    await asyncio.gather(*(create(site) for site in sites))
    created_s = (datetime.now(UTC) - began).total_seconds()
    origin = start.timestamp()
    pending = {site.microgrid_id: site for site in sites}
    first: dict[int, float] = {}
    while pending and time.time() < origin + ROUND_TIMEOUT_S:
        for microgrid_id, site in list(pending.items()):
            for command in site.commands.read():
                if (
                    command.at >= origin
                    and command.component_id >= INVERTER_BASE
                    and command.requested_w != 0.0
                    and math.copysign(1.0, command.requested_w) == sign
                ):
                    first[microgrid_id] = (command.at - origin) * 1e3
                    del pending[microgrid_id]
                    break
        await asyncio.sleep(POLL_S)
    for site in sites:
        site.first_setpoints_ms.append(first.get(site.microgrid_id, math.inf))
    values = sorted(first.values())
    print(
        f"  round {index}: {power_w / 1e3:+.0f} kW per site; {len(sites)} dispatches created "
        f"in {created_s * 1e3:.0f} ms, start {start:%H:%M:%S} ({(origin - began.timestamp()):.2f} "
        f"s after the creates began); first setpoint p50 {percentile(values, 0.5):.0f} ms, "
        f"max {max(values, default=math.nan):.0f} ms; "
        f"{len(pending)} sites without one within {ROUND_TIMEOUT_S:g} s"
        + (f": {sorted(pending)}" if pending else ""),
        flush=True,
    )
    return origin


def _stats(children: list[Child]) -> list[ProcessStats]:
    return [s for s in (child.stats() for child in children) if s is not None]


def print_usage(
    window_s: float,
    controllers: tuple[list[ProcessStats], list[ProcessStats]],
    simulators: tuple[list[ProcessStats], list[ProcessStats]],
) -> None:
    """Print the CPU (over the window) and memory of the controllers and simulators."""
    parts = []
    for label, (before, after) in (("controllers", controllers), ("simulators", simulators)):
        if len(before) != len(after) or not after:
            parts.append(f"{label}: a process exited, no figures")
            continue
        cpu_s = sum(a.cpu_s - b.cpu_s for a, b in zip(after, before, strict=True))
        parts.append(
            f"{label} {cpu_s / window_s * 60:.1f} CPU-s/min together "
            f"({cpu_s / window_s / len(after) * 100:.1f} % of a core each), RSS "
            f"{sum(s.rss_mb for s in after):.0f} MB together "
            f"({statistics.median(s.rss_mb for s in after):.0f} MB each)"
        )
    print(f"over the rounds ({window_s:.0f} s): " + "; ".join(parts))


async def run(args: argparse.Namespace) -> tuple[int, float, float]:
    sites: list[Site] = []
    children: list[Child] = []
    dispatch: Child | None = None
    prober: asyncio.Task[None] | None = None
    with tempfile.TemporaryDirectory(prefix="fleet-") as tmp:
        root = Path(tmp)
        keys = root / "dispatch.keys"
        keys.write_text(KEY + "\n")
        try:
            began = time.monotonic()
            dispatch, dispatch_url = await start_dispatch_server(
                "dispatch-server", root / "dispatches.db", keys, root / "dispatch-server.log"
            )
            for microgrid_id in range(1, args.sites + 1):
                site = await start_site(microgrid_id, root, args.telemetry_hz, args.inverters)
                sites.append(site)
                children.append(site.sim)
            sims_s = time.monotonic() - began
            print(f"{args.sites} simulators and the dispatch service up in {sims_s:.1f} s")
            gate = asyncio.Semaphore(args.parallel)

            async def start_one(site: Site) -> None:
                async with gate:
                    await start_site_controller(site, dispatch_url, keys, args.inverters)

            controllers_began = time.monotonic()
            results = await asyncio.gather(
                *(start_one(site) for site in sites), return_exceptions=True
            )
            children += [site.controller for site in sites if site.controller is not None]
            failed = [
                (site.microgrid_id, r)
                for site, r in zip(sites, results, strict=True)
                if isinstance(r, BaseException)
            ]
            for microgrid_id, error in failed:
                print(f"  site {microgrid_id}: controller did not start: {error}")
            started = [s.startup_s for s in sites if not math.isnan(s.startup_s)]
            print(
                f"{len(started)} controllers started in "
                f"{time.monotonic() - controllers_began:.1f} s (at most {args.parallel} at a "
                f"time); each spawn -> controller_started: p50 "
                f"{percentile(started, 0.5):.1f} s, max {max(started, default=math.nan):.1f} s",
                flush=True,
            )
            running = [s for s in sites if s.controller is not None and s.health_address]
            for site in running:
                site.producer = DispatchProducer(dispatch_url, site.microgrid_id, KEY)
            await asyncio.sleep(args.settle)
            prober = asyncio.create_task(probe_forever(sites, args.probe_interval))
            before_ctl = _stats([s.controller for s in running if s.controller is not None])
            before_sim = _stats([s.sim for s in sites])
            window_began = time.monotonic()
            for index in range(args.rounds):
                await fleet_round(index, running, args)
                await asyncio.sleep(args.hold)
                for site in running:
                    assert site.producer is not None
                    for dispatch_id in site.dispatch_ids[:-1]:
                        await site.producer.delete(dispatch_id)
                    del site.dispatch_ids[:-1]
            window_s = time.monotonic() - window_began
            after_ctl = _stats([s.controller for s in running if s.controller is not None])
            after_sim = _stats([s.sim for s in sites])
            prober.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await prober
            prober = None
            print_usage(window_s, (before_ctl, after_ctl), (before_sim, after_sim))
            counts: Counter[str] = Counter()
            for site in running:
                assert site.log is not None
                counts.update(
                    f"{e.get('level', '?')} {e.get('event')}"
                    for e in site.log.read()
                    if e.get("level") in ("warning", "error", "critical")
                )
            if counts:
                top = ", ".join(f"{name} x{n}" for name, n in counts.most_common(6))
                print(f"controller warnings/errors since start-up (all sites): {top}")
        finally:
            if prober is not None:
                prober.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await prober
            for site in sites:
                if site.producer is not None:
                    with contextlib.suppress(Exception):
                        await site.producer.close()
            # Controllers first (they release their batteries through their simulator).
            await stop_all([s.controller for s in sites if s.controller is not None])
            await stop_all([s.sim for s in sites])
            if dispatch is not None:
                await dispatch.stop()
    latencies = [x for site in sites for x in site.first_setpoints_ms]
    missing = [
        site.microgrid_id
        for site in sites
        if site.controller is None or not site.health_address or not site.first_setpoints_ms
    ]
    healthy = [
        site
        for site in sites
        if site.microgrid_id not in missing
        and site.probes
        and set(site.probes) == {"200"}
        and all(math.isfinite(x) for x in site.first_setpoints_ms)
    ]
    probes = Counter[str]()
    for site in sites:
        probes.update(site.probes)
    total = sum(probes.values())
    print(
        f"\n/healthz: {probes['200']} of {total} probes answered 200 "
        f"({probes['200'] / total * 100 if total else math.nan:.1f} %); outcomes {dict(probes)}"
    )
    unhealthy = [s.microgrid_id for s in sites if s not in healthy]
    if unhealthy:
        print(f"sites not healthy throughout: {unhealthy}")
    p50, p99 = percentile(latencies, 0.5), percentile(latencies, 0.99)
    print(
        f"first setpoint after the common start, {len(latencies)} (site, round) pairs: "
        f"p50 {p50:.0f} ms, p99 {p99:.0f} ms, max {max(latencies, default=math.nan):.0f} ms "
        f"(goal p99 <= {GOAL_P99_MS:g} ms: {'meets' if p99 <= GOAL_P99_MS else 'MISSES'})"
    )
    return args.sites, p99, len(healthy) / args.sites * 100


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sites", type=int, default=20)
    parser.add_argument("--inverters", type=int, default=4, help="battery inverters per site")
    parser.add_argument("--telemetry-hz", type=float, default=2.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--lead", type=float, default=3.0, help="s from the creates to start")
    parser.add_argument("--hold", type=float, default=10.0, help="s each round's target held")
    parser.add_argument("--settle", type=float, default=5.0, help="s after start-up")
    parser.add_argument("--parallel", type=int, default=2, help="controllers starting at once")
    parser.add_argument("--probe-interval", type=float, default=1.0)
    args = parser.parse_args()
    if args.sites < 1 or args.rounds < 1 or args.parallel < 1:
        parser.error("--sites, --rounds and --parallel must be >= 1")
    print(
        f"{args.sites} sites x {args.inverters} battery inverters (telemetry "
        f"{args.telemetry_hz:g} Hz), one simulator and one controller each, one dispatch "
        f"service; {args.rounds} fleet-wide dispatches, lead >= {args.lead:g} s"
    )
    print(
        f"python {sys.version.split()[0]}; {os.cpu_count()} CPUs; loadavg {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    sites, p99, healthy_pct = asyncio.run(run(args))
    print(
        f"fleet_sites={sites} fleet_first_setpoint_p99_ms={p99:.1f} "
        f"fleet_healthy_pct={healthy_pct:.1f}",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
