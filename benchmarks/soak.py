"""Soak: one simulated hour of dispatches and random faults; bound violations, restarts, RSS.

Everything real, in one process and event loop on 127.0.0.1 (as in `tests/reliability/`):
the simulator (the example site `config/sim-site.toml`), our Dispatch API service
(SQLite in a temporary directory) and the controller (`Controller`), with logs at info
as the daemon writes them, rendered and sent to /dev/null.

**What is accelerated.** `--speed` (default 60) scales the simulator's physics only:
SoCs move an hour's worth in `--duration` (default 60 s) of wall time, so batteries
reach their SoC limits and their bounds taper. Everything the APIs and the controller
time — command lifetimes, keep-alive, request timeouts, blocking backoff, telemetry
staleness, the dispatches' start times and durations — runs on the wall clock, as in
production (the Frequenz clients schedule with it). So "one simulated hour" is one
hour of battery physics under a dispatch schedule compressed into `--duration`
seconds: a base dispatch over all batteries for the whole run, and about one new
dispatch (on a random subset, overriding the base while it runs), update or deletion
every `duration / 40`; a new fault every 0.2-1.5 s, each lasting 0.3-4 s. The
controller uses short timings to match (request timeout 0.5 s, keep-alive 1 s,
blocking 0.5-4 s, stale after 2 s), so about four inverter commands go out a second.

Faults (seeded, `--seed`): delays, silent inverters, RPC errors, latched ERRORs
(acknowledged after their window by the "operator"), NaN data, silent and dropped
telemetry streams — on the four battery inverters and their batteries.

Printed: dispatches and faults, inverter commands sent (ok / failed) and accepted,
commands accepted outside their bounds (the simulator's command log checks every one),
commands refused by kind, results by kind, actor restarts, RSS (VmRSS of this process,
from /proc/self/status) after warm-up and at the end. RSS is taken after a full
garbage collection; the start is measured once the graph runs and a first dispatch is
on the inverters, so start-up allocations do not count as growth. The last line:

    soak violations=<int> restarts=<int> rss_growth_pct=<float>

Targets: violations 0, RSS growth < 5 %.

    .venv/bin/python benchmarks/soak.py [--duration 60] [--speed 60] [--seed 1]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import logging
import os
import random
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TextIO

from frequenz.client.common.microgrid import MicrogridId
from frequenz.client.dispatch import DispatchApiClient
from frequenz.client.dispatch.types import DispatchId, TargetIds

from edge_controller.common import logging as logs
from edge_controller.config.schema import parse_config
from edge_controller.controller.graph import Controller, ControllerHooks
from edge_controller.framework.messages import Result
from edge_controller.servers.dispatch.server import DispatchServer
from edge_controller.servers.sim.errors import SimError
from edge_controller.servers.sim.fault_spec import FaultKind
from edge_controller.servers.sim.model import CommandRecord
from edge_controller.servers.sim.server import SimulatorServer
from edge_controller.servers.sim.site import load_site

ROOT = Path(__file__).resolve().parent.parent
SITE = ROOT / "config" / "sim-site.toml"
KEY = "soak-key"
MICROGRID = MicrogridId(1)
BATTERIES = (11, 21, 31, 41)
INVERTERS = (10, 20, 30, 40)
TARGET_GROWTH_PCT = 5.0
FAULT_KINDS = (
    FaultKind.DELAY,
    FaultKind.UNRESPONSIVE,
    FaultKind.RPC_ERROR,
    FaultKind.ERROR,
    FaultKind.NAN_METRICS,
    FaultKind.NO_TELEMETRY,
    FaultKind.DROP_STREAM,
)


def rss_kib() -> int:
    """This process's resident set size (VmRSS), in KiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status")


def settled_rss_kib() -> int:
    gc.collect()
    return rss_kib()


@dataclass
class Tally:
    """What happened during the run."""

    commands_ok: int = 0
    commands_failed: int = 0
    results: Counter[str] = field(default_factory=Counter)
    restarts: Counter[str] = field(default_factory=Counter)
    refused: Counter[str] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)
    dispatch_changes: Counter[str] = field(default_factory=Counter)

    def hooks(self) -> ControllerHooks:
        def on_command(_seconds: float, ok: bool) -> None:
            if ok:
                self.commands_ok += 1
            else:
                self.commands_failed += 1

        def on_result(result: Result) -> None:
            self.results[type(result).__name__] += 1

        def on_restart(actor: str, _wait_s: float) -> None:
            self.restarts[actor] += 1

        return ControllerHooks(on_command=on_command, on_result=on_result, on_restart=on_restart)


class Faults:
    """Seeded faults that come and go (see the module docstring)."""

    def __init__(self, sim: SimulatorServer, rng: random.Random, tally: Tally) -> None:
        self._sim = sim
        self._rng = rng
        self._tally = tally
        self._latched: list[tuple[int, float]] = []

    async def run(self, until_s: float) -> None:
        loop = asyncio.get_running_loop()
        while loop.time() < until_s:
            self._inject(loop.time())
            self._acknowledge(loop.time())
            await asyncio.sleep(self._rng.uniform(0.2, 1.5))
        self._sim.faults.clear()
        self._acknowledge(0.0, everything=True)

    def _inject(self, now_s: float) -> None:
        rng = self._rng
        kind = rng.choice(FAULT_KINDS)
        on_inverter = kind in (FaultKind.DELAY, FaultKind.UNRESPONSIVE, FaultKind.RPC_ERROR)
        pool = INVERTERS if on_inverter or kind is FaultKind.ERROR else INVERTERS + BATTERIES
        component = rng.choice(pool)
        duration_s = rng.uniform(0.3, 4.0)
        params: dict[str, object] = {}
        if kind is FaultKind.DELAY:
            params["delay_s"] = rng.uniform(0.05, 1.5)
        elif kind is FaultKind.RPC_ERROR:
            params["status"] = rng.choice(["UNAVAILABLE", "INTERNAL", "RESOURCE_EXHAUSTED"])
        elif kind is FaultKind.ERROR:
            params["error_code"] = "OVERTEMPERATURE"
            self._latched.append((component, now_s + duration_s + 0.1))
        self._sim.faults.inject(
            component,
            kind,
            now=self._sim.service.clock.now(),
            duration=timedelta(seconds=duration_s),
            **params,
        )
        self._tally.faults[kind.value] += 1

    def _acknowledge(self, now_s: float, *, everything: bool = False) -> None:
        keep = []
        for component, after in self._latched:
            if not everything and now_s < after:
                keep.append((component, after))
                continue
            with contextlib.suppress(SimError):  # no longer in ERROR, or fault still on
                self._sim.model.acknowledge_error(component, self._sim.service.clock.now())
        self._latched = keep


async def schedule(
    client: DispatchApiClient, rng: random.Random, tally: Tally, until_s: float, step_s: float
) -> None:
    """Create, update and delete BATTERY_POWER dispatches until `until_s` (loop time)."""
    loop = asyncio.get_running_loop()
    running: list[int] = []
    while loop.time() < until_s:
        action = rng.random()
        try:
            if action < 0.5 or not running:
                batteries = rng.sample(BATTERIES, rng.randint(1, len(BATTERIES)))
                created = await client.create(
                    microgrid_id=MICROGRID,
                    type="BATTERY_POWER",
                    start_time="NOW",
                    duration=timedelta(seconds=rng.uniform(step_s * 2, step_s * 12)),
                    target=TargetIds(*batteries),
                    payload={"power_w": rng.uniform(-250_000, 250_000) * len(batteries)},
                )
                running.append(int(created.id))
                tally.dispatch_changes["created"] += 1
            elif action < 0.85:
                await client.update(
                    microgrid_id=MICROGRID,
                    dispatch_id=DispatchId(rng.choice(running)),
                    new_fields={"payload": {"power_w": rng.uniform(-1_100_000, 1_100_000)}},
                )
                tally.dispatch_changes["updated"] += 1
            else:
                victim = running.pop(rng.randrange(len(running)))
                await client.delete(microgrid_id=MICROGRID, dispatch_id=DispatchId(victim))
                tally.dispatch_changes["deleted"] += 1
        except Exception as error:  # an ended dispatch cannot be updated: count, go on
            tally.dispatch_changes[f"refused {type(error).__name__}"] += 1
        await asyncio.sleep(rng.uniform(0.5, 1.5) * step_s)


async def soak(args: argparse.Namespace) -> tuple[Tally, SimulatorServer, int, int]:
    site = load_site(SITE)
    tally = Tally()
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory() as directory:
        async with (
            SimulatorServer(site, speed=args.speed) as sim,
            DispatchServer(Path(directory) / "dispatches.db", keys=frozenset({KEY})) as dispatch,
        ):
            set_power = sim.service.set_power

            async def counting(
                component_id: int, power_w: float, lifetime_s: int | None, *, reactive: bool
            ) -> CommandRecord:
                try:
                    return await set_power(component_id, power_w, lifetime_s, reactive=reactive)
                except SimError as error:
                    tally.refused[error.kind.value] += 1
                    raise

            sim.service.set_power = counting  # type: ignore[method-assign]
            config = parse_config(
                {
                    "microgrid": {"url": sim.url, "stale_after": 2},
                    "dispatch": {"url": dispatch.url, "microgrid_id": 1},
                    "power_distribution": {
                        "request_timeout": 0.5,
                        "keepalive_interval": 1,
                        "command_lifetime": 10,
                        "blocking_initial": 0.5,
                        "blocking_max": 4,
                        "resolutions": {"10": 88, "20": 100, "30": 50, "40": 88},
                    },
                    "use_cases": [{"kind": "battery_power", "name": "main"}],
                },
                environ={"EDGE_CONTROLLER_DISPATCH_KEY": KEY},
            )
            client = DispatchApiClient(server_url=dispatch.url, auth_key=KEY)
            async with Controller(config, hooks=tally.hooks()):
                loop = asyncio.get_running_loop()
                while dispatch.service.subscriber_count(1) < 1:  # noqa: ASYNC110 - polled state
                    await asyncio.sleep(0.05)
                # Warm-up: a first dispatch on the inverters before RSS is taken.
                warm = await client.create(
                    microgrid_id=MICROGRID,
                    type="BATTERY_POWER",
                    start_time="NOW",
                    duration=timedelta(seconds=3),
                    target=TargetIds(*BATTERIES),
                    payload={"power_w": -400_000.0},
                )
                delivered = sim.model.ac_power_w
                while abs(sum(delivered(i) for i in INVERTERS) + 400_000) > 1000:  # noqa: ASYNC110
                    await asyncio.sleep(0.05)
                await client.delete(microgrid_id=MICROGRID, dispatch_id=warm.id)
                await asyncio.sleep(1.0)
                rss_start = settled_rss_kib()
                until_s = loop.time() + args.duration
                print(
                    f"warm; rss {rss_start / 1024:.1f} MiB; soaking {args.duration:g} s "
                    f"(physics x{args.speed:g}: {args.duration * args.speed / 3600:.2f} "
                    "simulated hours)",
                    flush=True,
                )
                # A base dispatch over the whole hour; the random ones override subsets
                # of its batteries while they run (the newest dispatch wins).
                await client.create(
                    microgrid_id=MICROGRID,
                    type="BATTERY_POWER",
                    start_time="NOW",
                    duration=timedelta(seconds=args.duration + 5),
                    target=TargetIds(*BATTERIES),
                    payload={"power_w": -300_000.0},
                )
                tally.dispatch_changes["created"] += 1
                await asyncio.gather(
                    Faults(sim, rng, tally).run(until_s),
                    schedule(client, rng, tally, until_s, args.duration / 40),
                )
                await asyncio.sleep(1.0)  # the last commands land
                rss_end = settled_rss_kib()
            return tally, sim, rss_start, rss_end


def main() -> int:
    parser = argparse.ArgumentParser(description="One simulated hour with faults: figures.")
    parser.add_argument(
        "--duration", type=float, default=60.0, help="wall-clock seconds of soaking (60)"
    )
    parser.add_argument("--speed", type=float, default=60.0, help="physics speed-up (60)")
    parser.add_argument("--seed", type=int, default=1, help="random seed (1)")
    parser.add_argument("--show-logs", action="store_true", help="write the logs to stderr")
    args = parser.parse_args()
    if not (args.duration > 0 and args.speed > 0):
        parser.error("--duration and --speed must be > 0")
    logs.configure("info", "json")
    if not args.show_logs:
        sink: TextIO = open(os.devnull, "w", encoding="utf-8")  # noqa: SIM115
        for handler in logging.getLogger().handlers:
            if isinstance(handler, logging.StreamHandler):
                handler.setStream(sink)
    print(f"python {sys.version.split()[0]}; loadavg {os.getloadavg()[0]:.2f}; seed {args.seed}")
    began = time.monotonic()
    tally, sim, rss_start, rss_end = asyncio.run(soak(args))
    violations = len(sim.command_log.violations())
    growth_pct = 100.0 * (rss_end - rss_start) / rss_start
    restarts = sum(tally.restarts.values())
    print(f"wall time {time.monotonic() - began:.1f} s")
    print(f"dispatch changes: {dict(tally.dispatch_changes)}")
    print(f"faults injected: {sum(tally.faults.values())} {dict(tally.faults)}")
    print(
        f"inverter commands sent: {tally.commands_ok + tally.commands_failed} "
        f"(ok {tally.commands_ok}, failed or timed out {tally.commands_failed}); "
        f"accepted by the simulator: {sim.command_log.total}"
    )
    print(f"refused by the simulator: {dict(tally.refused)}")
    print(f"results: {dict(tally.results)}")
    print(f"accepted commands outside their bounds: {violations}")
    print(f"actor restarts: {restarts} {dict(tally.restarts)}")
    print(
        f"rss start {rss_start / 1024:.1f} MiB, end {rss_end / 1024:.1f} MiB "
        f"({growth_pct:+.2f} %; target < {TARGET_GROWTH_PCT:g} %)"
    )
    print(f"soak violations={violations} restarts={restarts} rss_growth_pct={growth_pct:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
