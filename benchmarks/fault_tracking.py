"""Fault tracking: does the site deliver its target through a silent inverter and a restart?

Everything real, in one process on 127.0.0.1 (as `peak_response.py`): the simulator on
the example site (`config/sim-site.toml`, four battery inverters), our Dispatch API
service and the controller (`Controller`) with one `battery_power` use case and one
dispatch on all four batteries. Faults are switched at run time through the
simulator's **faults file** (`--faults-file`, polled every 20 ms here), as an
operator's test bench would from outside; what the site delivers is read from the
simulator itself: the four inverters' AC power every 10 ms (`SiteModel.ac_power_w`,
the values its telemetry carries) and its command log (accepted commands with their
`valid_until`, and the commands the silent inverter left unanswered).

The controller runs with its defaults (15 s keep-alive, 1 s first blocking time) except
a request timeout of `--request-timeout` s (2) and a command lifetime of `--lifetime` s
(65, a little over the default 60 s: the silent inverter's command must outlast the
three request levels below and expire within the run).

**(a) silent inverter, request below and above it** (`--rounds`, 2): right after
the inverter carrying the most of the base target (−400 kW; SoC balancing gives
inverter 20 −300 kW) accepted a command, it goes silent (`unresponsive`: it holds
that command, P, and answers nothing). The request then moves below its measured
power (0.6 × P: the others must *charge*), above it (P − 200 kW), and below again;
each level held `--hold` s (20). A level is held longer than the request timeout plus
the keep-alive (2 + 15 s) so that within every level the controller *retries* the
blocked battery — the keep-alive re-plan, its blocking time long over — outside the
excluded window while the silent inverter still holds P (issue 13, item 1: a retry that
plans it as a working battery over-delivers for a whole request timeout). The retries
(commands the silent inverter left unanswered, sent at their cancellation less the
request timeout) are listed per round with the power they asked of it; a level that
saw none outside its window is flagged. With 6 s levels (this benchmark's first
version) no retry fell outside the windows: it reported 0.00 % on the controller
before the fix (bb91443) too, which over-delivers at every keep-alive retry; with 20 s
levels it reports 66.6 % there (−300 kW against −180 kW), 0.00 % on the fixed one.
*Over-delivery*: the site's power beyond the target, in the target's direction, less
one resolution step (100 W), in % of the target — over every sample from the fault
until the end of (b), except the request timeout (+ 0.25 s for the dispatch to reach
the controller) after each change of the request (the inverter is still being found
silent there). The worst inside those windows is printed too (not a goal): it shows
the measure sees over-delivery when there is some.

**(b) its command expiring**: the held command ends at its `valid_until` (from the
command log) and the silent inverter falls to 0 W while the request is below P.
*Shortfall*: from that instant, how long until the site was last short of the target
by more than 5 % + one step (looked at over the next 8 s).

**(c) a Microgrid API restart at the worst phase** (`--restarts`, 4): with the fault
gone and the base target running, the simulator is stopped 0.05 s after a keep-alive
round (the first accepted command after a quiet spell), stays down 1 s, and a fresh
one — knowing none of the old commands, its inverters at 0 W — starts on the same
address. *Resume*: from the new server answering until the site is back within 5 % +
one step of the target; p99 over the restarts.

Goals (issue 13): over-delivery ≤ 5 % (+ one step) outside the excluded windows;
shortfall ≤ 1 s after the silent command expires; targets back ≤ 1.5 s after the API
answers again. Runs in about 4 minutes. The last line is machine-readable:

    overdelivery_max_pct=<float> shortfall_max_s=<float> reconnect_resume_p99_s=<float>

    .venv/bin/python benchmarks/fault_tracking.py [--rounds 2] [--restarts 4]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import math
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from edge_controller.common import logging as logs
from edge_controller.config.schema import parse_config
from edge_controller.controller.graph import Controller
from edge_controller.dispatching.producer import DispatchProducer
from edge_controller.servers.dispatch.server import DispatchServer
from edge_controller.servers.sim.command_log import CANCELLED
from edge_controller.servers.sim.fault_spec import FaultKind
from edge_controller.servers.sim.model import CommandRecord
from edge_controller.servers.sim.server import SimulatorServer
from edge_controller.servers.sim.site import SiteSpec, load_site

ROOT = Path(__file__).resolve().parent.parent
SITE = ROOT / "config" / "sim-site.toml"
KEY = "bench"
BATTERIES = (11, 21, 31, 41)
INVERTERS = (10, 20, 30, 40)
RESOLUTIONS = {"10": 88, "20": 100, "30": 50, "40": 88}
STEP_W = 100.0
"""One resolution step: the coarsest of the four inverters'."""
BASE_W = -400_000.0
TOLERANCE = 0.05
"""5 % of the target (plus one step): the goal's band."""
DISPATCH_SLACK_S = 0.25
"""Added to the excluded request timeout: the dispatch reaching the controller."""
SAMPLE_S = 0.01
FAULTS_POLL_S = 0.02
DOWN_S = 1.0
KEEPALIVE_S = 15.0
"""The controller's default keep-alive (not set here)."""
GOALS = {"overdelivery_max_pct": 5.0, "shortfall_max_s": 1.0, "reconnect_resume_p99_s": 1.5}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return math.nan
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def write_faults(path: Path, text: str) -> None:
    """Replace the faults file as an editor's save does."""
    temporary = path.with_suffix(".tmp")
    temporary.write_text(text)
    os.replace(temporary, path)


def silent_fault(inverter: int) -> str:
    return f'[[faults]]\ncomponent = {inverter}\nkind = "{FaultKind.UNRESPONSIVE.value}"\n'


@dataclass
class Bench:
    """The running parts and what was sampled (times are `time.monotonic()`)."""

    sim: SimulatorServer
    producer: DispatchProducer
    dispatch_id: int
    faults_path: Path
    samples: list[tuple[float, float]] = field(default_factory=list)
    """(time, sum of the four inverters' AC power in W)."""
    target_w: float = BASE_W

    def power(self) -> float:
        return math.fsum(self.sim.model.ac_power_w(i) for i in INVERTERS)

    async def sample_forever(self) -> None:
        while True:
            self.samples.append((time.monotonic(), self.power()))
            await asyncio.sleep(SAMPLE_S)

    async def request(self, power_w: float) -> float:
        """Change the dispatch's power; return when the change was made."""
        await self.producer.set_battery_power(self.dispatch_id, power_w)
        self.target_w = power_w
        return time.monotonic()

    def within(self, power_w: float) -> bool:
        return abs(power_w - self.target_w) <= TOLERANCE * abs(self.target_w) + STEP_W

    def records(self, inverter: int) -> list[CommandRecord]:
        return [r for r in self.sim.command_log.records() if r.component_id == inverter]


async def wait_until(condition: Callable[[], bool], timeout_s: float) -> float:
    """Poll every 5 ms; return when `condition` held (monotonic), inf on timeout."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return math.inf
        await asyncio.sleep(0.005)
    return time.monotonic()


def to_monotonic(at: datetime, bench: Bench) -> float:
    """A simulator wall-clock instant on this process's monotonic clock."""
    now_wall = bench.sim.service.clock.now()
    return time.monotonic() - (now_wall - at).total_seconds()


@dataclass
class Figures:
    overdelivery_pct: list[float] = field(default_factory=list)
    shortfall_s: list[float] = field(default_factory=list)
    resume_s: list[float] = field(default_factory=list)
    retried_levels: list[int] = field(default_factory=list)
    """Per silent round: the request levels with a retry of the blocked battery outside
    the excluded window while its command held."""


async def silent_round(bench: Bench, figures: Figures, *, hold_s: float, timeout_s: float) -> None:
    """(a) and (b): one silent-inverter round; appends its over-delivery and shortfall."""
    await wait_until(lambda: bench.within(bench.power()), 30)
    # The inverter carrying the most goes silent (the controller balances SoC, so the
    # four do not carry equal shares), right after it accepted a command for a new
    # target, so it holds that command for a whole lifetime. The target is 10 kW more
    # off the base each round: the controller sends an inverter only a value that
    # changed (a repeated one is held back), so every inverter must see a new one.
    offset_w = 10_000.0 * (len(figures.overdelivery_pct) + 1)
    before = {i: len(bench.records(i)) for i in INVERTERS}
    await bench.request(BASE_W - offset_w)
    # A battery blocked since the previous round is commanded again only after its
    # blocking time (it doubles with each failure) and a keep-alive: wait for it.
    fresh_at = await wait_until(
        lambda: all(len(bench.records(i)) > before[i] for i in INVERTERS), 120
    )
    if math.isinf(fresh_at):
        print("  WARNING: not every inverter took a command for the new target", flush=True)
    fresh = {i: bench.records(i)[-1] for i in INVERTERS}
    silent = max(fresh, key=lambda i: abs(fresh[i].applied_w))
    held = fresh[silent]
    unanswered_before = len(bench.sim.command_log.refusals())
    write_faults(bench.faults_path, silent_fault(silent))
    await wait_until(
        lambda: bool(bench.sim.faults.active(bench.sim.service.clock.now(), silent)), 5
    )
    fault_at = time.monotonic()
    silent_w = held.applied_w
    expires_at = to_monotonic(held.valid_until, bench)
    below = round(0.6 * silent_w, -3)
    above = round(silent_w - 200_000.0, -3)
    changes: list[tuple[float, float]] = []  # (when, target)
    for target in (below, above):
        changes.append((await bench.request(target), target))
        await asyncio.sleep(hold_s)
    changes.append((await bench.request(below), below))
    await asyncio.sleep(max(0.0, expires_at - time.monotonic()) + 8.0)
    end = time.monotonic()

    def target_at(t: float) -> float:
        in_force = BASE_W - offset_w
        for when, target in changes:
            if when <= t:
                in_force = target
        return in_force

    excluded = [(when, when + timeout_s + DISPATCH_SLACK_S) for when, _ in changes]

    def is_excluded(t: float) -> bool:
        return any(a <= t <= b for a, b in excluded)

    worst_pct, worst_at = 0.0, fault_at
    inside_pct, inside_at = 0.0, fault_at
    last_short = expires_at
    for t, power in bench.samples:
        if t < fault_at or t > end:
            continue
        target = target_at(t)
        excess = math.copysign(1.0, target) * (power - target) - STEP_W
        pct = 100.0 * excess / abs(target)
        if is_excluded(t):
            if pct > inside_pct:
                inside_pct, inside_at = pct, t
            continue
        if pct > worst_pct:
            worst_pct, worst_at = pct, t
        if t >= expires_at and -excess - 2 * STEP_W > TOLERANCE * abs(target):
            last_short = t
    shortfall = last_short - expires_at
    figures.overdelivery_pct.append(worst_pct)
    figures.shortfall_s.append(shortfall)
    # The commands the silent inverter left unanswered: the simulator logs each when
    # the controller gives up on it (its request timeout after it was sent).
    tries = [
        (to_monotonic(r.at, bench) - timeout_s, r.requested_w)
        for r in bench.sim.command_log.refusals()[unanswered_before:]
        if r.component_id == silent and r.status == CANCELLED
    ]
    bounds = [when for when, _ in changes] + [expires_at]
    level_retries = [
        [
            (sent, w)
            for sent, w in tries
            if bounds[k] + timeout_s + DISPATCH_SLACK_S < sent < min(bounds[k + 1], expires_at)
        ]
        for k in range(len(changes))
    ]
    print(
        f"silent round: inverter {silent} holds {silent_w / 1000:.1f} kW until "
        f"+{expires_at - fault_at:.1f} s; requests {below / 1000:g} / {above / 1000:g} / "
        f"{below / 1000:g} kW from +{changes[0][0] - fault_at:.1f} / "
        f"+{changes[1][0] - fault_at:.1f} / +{changes[2][0] - fault_at:.1f} s",
        flush=True,
    )
    print(
        "  commands to the silent inverter (sent at, asked): "
        + ", ".join(
            f"+{sent - fault_at:.1f} s {w / 1000:g} kW"
            f"{' [excluded]' if is_excluded(sent) else ''}"
            f"{' [after expiry]' if sent >= expires_at else ''}"
            for sent, w in tries
        ),
        flush=True,
    )
    figures.retried_levels.append(sum(1 for found in level_retries if found))
    missing = [k + 1 for k, found in enumerate(level_retries) if not found]
    if missing:
        print(
            f"  WARNING: no retry of the blocked battery outside the excluded window "
            f"while its command held in level(s) {missing}: the measure did not see one",
            flush=True,
        )

    def at(pct: float, when: float) -> str:
        return f" (at +{when - fault_at:.1f} s)" if pct > 0 else ""

    print(
        f"  over-delivery max {worst_pct:.1f} %{at(worst_pct, worst_at)} outside the "
        f"excluded windows, {inside_pct:.1f} %{at(inside_pct, inside_at)} inside them "
        f"(informational); short {shortfall:.2f} s after the expiry",
        flush=True,
    )
    write_faults(bench.faults_path, "")
    await bench.request(BASE_W)
    await wait_until(lambda: bench.within(bench.power()), 30)


async def restart(bench: Bench, site: SiteSpec, figures: Figures) -> None:
    """(c): stop the simulator just after a keep-alive round, restart it 1 s later."""
    await wait_until(lambda: bench.within(bench.power()), 30)
    await asyncio.sleep(1.0)
    before = bench.sim.command_log.total
    keepalive_at = await wait_until(lambda: bench.sim.command_log.total > before, 30)
    await asyncio.sleep(0.05)
    address = bench.sim.address
    stopped_after = time.monotonic() - keepalive_at
    await bench.sim.stop()
    await asyncio.sleep(DOWN_S)
    restarted = SimulatorServer(
        site, address, faults_file=bench.faults_path, faults_poll_s=FAULTS_POLL_S
    )
    await restarted.start()
    bench.sim = restarted
    back_at = time.monotonic()
    resumed_at = await wait_until(lambda: bench.within(bench.power()), 30)
    figures.resume_s.append(resumed_at - back_at)
    print(
        f"restart {stopped_after:.2f} s after a keep-alive round, down {DOWN_S:g} s: "
        f"targets back {resumed_at - back_at:.2f} s after the API answered again",
        flush=True,
    )


async def main(args: argparse.Namespace) -> None:
    logs.configure("warning", "json")
    logging.getLogger().handlers[0].stream = open(os.devnull, "w")  # type: ignore[attr-defined]  # noqa: SIM115, ASYNC230
    if args.hold <= args.request_timeout + KEEPALIVE_S + DISPATCH_SLACK_S:
        print(
            f"WARNING: --hold {args.hold:g} s is not longer than the request timeout plus "
            f"the keep-alive: a level may end before the blocked battery is retried"
        )
    site = load_site(SITE)
    figures = Figures()
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as state:
        faults_path = Path(state) / "faults.toml"
        sim = SimulatorServer(site, faults_file=faults_path, faults_poll_s=FAULTS_POLL_S)
        await sim.start()
        try:
            async with DispatchServer(Path(state) / "d.db", keys=frozenset({KEY})) as dispatch:
                config = parse_config(
                    {
                        "microgrid": {"url": sim.url},
                        "dispatch": {"url": dispatch.url, "microgrid_id": 1},
                        "power_distribution": {
                            "resolutions": RESOLUTIONS,
                            "request_timeout": args.request_timeout,
                            "command_lifetime": args.lifetime,
                        },
                        "use_cases": [{"kind": "battery_power"}],
                    },
                    environ={"EDGE_CONTROLLER_DISPATCH_KEY": KEY},
                )
                async with (
                    Controller(config),
                    DispatchProducer(dispatch.url, 1, KEY) as producer,
                ):
                    dispatch_id = await producer.create_battery_power(
                        BASE_W, BATTERIES, "NOW", None
                    )
                    bench = Bench(sim, producer, dispatch_id, faults_path)
                    sampler = asyncio.create_task(bench.sample_forever())
                    try:
                        if await wait_until(lambda: bench.within(bench.power()), 30) == math.inf:
                            raise SystemExit("the base dispatch never ran")
                        for _ in range(args.rounds):
                            await silent_round(
                                bench, figures, hold_s=args.hold, timeout_s=args.request_timeout
                            )
                        for _ in range(args.restarts):
                            await restart(bench, site, figures)
                    finally:
                        sampler.cancel()
                        with contextlib.suppress(asyncio.CancelledError):
                            await sampler
                        sim = bench.sim
        finally:
            await sim.stop()
    over = max(figures.overdelivery_pct, default=math.nan)
    short = max(figures.shortfall_s, default=math.nan)
    resume = percentile(figures.resume_s, 0.99)
    measured = {
        "overdelivery_max_pct": over,
        "shortfall_max_s": short,
        "reconnect_resume_p99_s": resume,
    }
    print(
        f"\n{args.rounds} silent rounds, {args.restarts} restarts in "
        f"{time.monotonic() - started:.0f} s; request timeout {args.request_timeout:g} s, "
        f"command lifetime {args.lifetime:g} s, keep-alive {KEEPALIVE_S:g} s; levels with a "
        f"retry of the blocked battery outside the excluded window: "
        + " + ".join(f"{n}/3" for n in figures.retried_levels)
    )
    print(
        "goals: "
        + ", ".join(
            f"{name} <= {goal:g} (ratio {measured[name] / goal:.2f}, "
            f"{'met' if measured[name] <= goal else 'MISSED'})"
            for name, goal in GOALS.items()
        )
    )
    print(
        f"overdelivery_max_pct={over:.2f} shortfall_max_s={short:.2f} "
        f"reconnect_resume_p99_s={resume:.2f}"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2, help="silent-inverter rounds (2)")
    parser.add_argument("--restarts", type=int, default=4, help="API restarts (4)")
    parser.add_argument("--hold", type=float, default=20.0, help="s each request level holds (20)")
    parser.add_argument("--request-timeout", type=float, default=2.0, help="s (2)")
    parser.add_argument("--lifetime", type=float, default=65.0, help="command lifetime, s (65)")
    asyncio.run(main(parser.parse_args()))
