"""What one set-power command costs the simulator, as the site grows.

A controller commands every inverter at once (a new target, a keep-alive): a burst of
N commands. Each command should cost the same whatever the site's size, the physics
moving on the tick, so a burst costs O(N). For N battery inverters (benchmarks/
battery_sites.py) the pure model (`SiteModel`) takes a burst of N `set_active_power`
calls, each at a later instant as on a server, then the tick's `step`; repeated.

Figures per N: the median cost of one command (µs) and of the tick after the burst
(ms). The anchor is the same command on the 4-inverter site, measured in the same run:
`ratio_n200_vs_n4` near 1 says the cost does not grow with the site. Last line:

    sim_command_us_n200=<µs> ratio_n200_vs_n4=<x> tick_ms_n200=<ms>

Goal (issue 19): sim_command_us_n200 <= 1000.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.battery_sites import INVERTER_BASE, battery_site
from edge_controller.servers.sim.model import SiteModel

START = datetime(2026, 6, 21, 12, 0, tzinfo=UTC)
TICK = timedelta(milliseconds=100)
SIZES = (4, 50, 200)


def measure(inverters: int, rounds: int) -> tuple[float, float]:
    """Return (median µs per command, median ms of the tick after a burst)."""
    model = SiteModel(battery_site(inverters), START)
    now = START
    per_command_us: list[float] = []
    tick_ms: list[float] = []
    for round_ in range(rounds):
        target = -5_000.0 - 1_000.0 * (round_ % 10)  # a new value each round
        spent = 0.0
        for index in range(inverters):
            at = now + timedelta(microseconds=50 * index)
            began = time.perf_counter()
            model.set_active_power(INVERTER_BASE + index, target, at)
            spent += time.perf_counter() - began
        per_command_us.append(spent / inverters * 1e6)
        now += TICK
        began = time.perf_counter()
        model.step(now)
        tick_ms.append((time.perf_counter() - began) * 1e3)
    return statistics.median(per_command_us), statistics.median(tick_ms)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30, help="bursts per site size")
    args = parser.parse_args()
    results = {n: measure(n, args.rounds) for n in SIZES}
    print(f"{'inverters':>9} {'µs/command':>11} {'tick ms':>8}")
    for n, (command_us, tick) in results.items():
        print(f"{n:>9} {command_us:>11.1f} {tick:>8.2f}")
    command_n200, tick_n200 = results[200]
    ratio = command_n200 / results[4][0]
    print(
        f"sim_command_us_n200={command_n200:.1f} ratio_n200_vs_n4={ratio:.2f} "
        f"tick_ms_n200={tick_n200:.2f}"
    )


if __name__ == "__main__":
    main()
