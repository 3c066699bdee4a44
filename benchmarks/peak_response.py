"""Peak shaving reaction time: a load step → grid import back under the threshold.

Everything real, in one process on 127.0.0.1: the simulator on the example site
(`config/sim-site.toml`, physics at wall speed), our Dispatch API service, and the
controller (`Controller`) with a `peak_shaving` use case whose threshold sits
`--headroom` kW above the site's import at start. Each run adds a load step of
`--step` kW on the site's load (the simulator's `load_steps_w`), then polls the
simulator's main meter every 5 ms until the import is back at or under the threshold
plus `--tolerance` kW (one inverter resolution step and then some), and records the
time; the step is then removed and the batteries are let back to idle (recharge only
below threshold − margin) before the next run.

The anchor is the same measurement's floor: the time until the simulator's meter
first *shows* the step (its telemetry and physics tick), printed alongside, so the
controller's share is visible.

    .venv/bin/python benchmarks/peak_response.py [--runs 20] [--step 300] [--headroom 100]

`--feeder` measures a feeder-meter limit instead (`[[grid.meters]]`): the site with a
sub-feeder (`config/sim-site-feeder.toml`), its limit `--headroom` kW above the
feeder's import at start, and a standing +300 kW charge on all four batteries, so
those below the feeder sit at the limit; each step of `--step` kW (default 40) on the
feeder's load must be given way by them.

The last line is machine-readable:

    peak_response_p50_s=<float> peak_response_p99_s=<float>
    feeder_response_p50_s=<float> feeder_response_p99_s=<float>   (--feeder)
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from edge_controller.common import logging as logs
from edge_controller.config.schema import parse_config
from edge_controller.controller.graph import Controller
from edge_controller.dispatching.producer import DispatchProducer
from edge_controller.servers.dispatch.server import DispatchServer
from edge_controller.servers.sim.server import SimulatorServer
from edge_controller.servers.sim.site import load_site

ROOT = Path(__file__).resolve().parent.parent
METER = 2
FEEDER = 3
LOAD = 70
BATTERIES = (11, 21, 31, 41)
KEY = "bench"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return math.nan
    index = min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))
    return ordered[index]


async def wait_until(condition: Callable[[], bool], timeout_s: float) -> float:
    start = time.perf_counter()
    while not condition():
        if time.perf_counter() - start > timeout_s:
            return math.inf
        await asyncio.sleep(0.005)
    return time.perf_counter() - start


def use_cases(feeder: bool, threshold: float) -> dict[str, object]:
    """Peak shaving at `threshold`, or dispatches under a feeder limit of `threshold`."""
    if feeder:
        return {
            "use_cases": [{"kind": "battery_power"}],
            "grid": {"meters": [{"id": FEEDER, "max_import": threshold}]},
        }
    return {
        "use_cases": [{"kind": "peak_shaving", "threshold": threshold, "recharge_margin": 20_000}]
    }


async def main(
    runs: int, step_kw: float, headroom_kw: float, tolerance_kw: float, feeder: bool
) -> None:
    logs.configure("warning", "json")
    logging.getLogger().handlers[0].stream = open("/dev/null", "w")  # type: ignore[attr-defined]  # noqa: SIM115, ASYNC230
    site = load_site(ROOT / "config" / ("sim-site-feeder.toml" if feeder else "sim-site.toml"))
    meter = FEEDER if feeder else METER
    what = "feeder limit" if feeder else "threshold"
    with tempfile.TemporaryDirectory() as state:
        async with (
            SimulatorServer(site) as sim,
            DispatchServer(Path(state) / "d.db", keys=frozenset({KEY})) as dispatch,
        ):
            await asyncio.sleep(1.0)
            base = sim.model.ac_power_w(meter)
            threshold = base + headroom_kw * 1000
            config = parse_config(
                {
                    "microgrid": {"url": sim.url},
                    "dispatch": {"url": dispatch.url, "microgrid_id": 1},
                    "power_distribution": {
                        "resolutions": {"10": 88, "20": 100, "30": 50, "40": 88}
                    },
                    **use_cases(feeder, threshold),
                },
                environ={"EDGE_CONTROLLER_DISPATCH_KEY": KEY},
            )
            shows: list[float] = []
            responses: list[float] = []

            def grid() -> float:
                return sim.model.ac_power_w(meter)

            async with Controller(config):
                await asyncio.sleep(2.0)
                if feeder:
                    async with DispatchProducer(dispatch.url, 1, KEY) as producer:
                        await producer.create_battery_power(300_000, BATTERIES, "NOW", None)
                    await wait_until(lambda: grid() >= threshold - 10_000, 10)
                    await asyncio.sleep(2.0)
                for run in range(runs):
                    start = time.perf_counter()
                    sim.model.load_steps_w[LOAD] = step_kw * 1000
                    shown = await wait_until(lambda: grid() > threshold + 10_000, 10)
                    back = await wait_until(lambda: grid() <= threshold + tolerance_kw * 1000, 10)
                    responses.append(time.perf_counter() - start)
                    shows.append(shown)
                    print(
                        f"run {run + 1:2d}: step shows after {shown * 1000:6.1f} ms, "
                        f"import back under the {what} after {responses[-1]:6.3f} s"
                        + (f" (then {back:.3f} s more)" if back else ""),
                        flush=True,
                    )
                    sim.model.load_steps_w[LOAD] = 0.0
                    await asyncio.sleep(2.5)
    p50, p99 = percentile(responses, 0.5), percentile(responses, 0.99)
    floor = percentile(shows, 0.5)
    print(
        f"\n{runs} load steps of {step_kw:g} kW, {what} {headroom_kw:g} kW above the base "
        f"import: p50 {p50:.3f} s, p99 {p99:.3f} s (the meter shows the step after "
        f"{floor * 1000:.0f} ms at p50; ratio p50/floor {p50 / floor if floor else math.nan:.1f})"
    )
    name = "feeder_response" if feeder else "peak_response"
    print(f"{name}_p50_s={p50:.3f} {name}_p99_s={p99:.3f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--step", type=float, default=None, help="kW (300; 40 with --feeder)")
    parser.add_argument("--headroom", type=float, default=None, help="kW (100; 60 with --feeder)")
    parser.add_argument("--tolerance", type=float, default=5.0, help="kW")
    parser.add_argument("--feeder", action="store_true", help="a feeder-meter limit instead")
    args = parser.parse_args()
    step = args.step if args.step is not None else (40.0 if args.feeder else 300.0)
    headroom = args.headroom if args.headroom is not None else (60.0 if args.feeder else 100.0)
    asyncio.run(main(args.runs, step, headroom, args.tolerance, args.feeder))
