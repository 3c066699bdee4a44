"""Peak shaving on the whole site and a dispatch on part of it, end to end.

The common set-up: peak shaving watches every battery (priority 10), dispatches
target a few (priority 1). While there is no peak to shave, the dispatch runs within
peak shaving's bounds (a charge is cut so that it makes no peak); a peak takes every
battery for the shaving, and the dispatch comes back when it is over.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from edge_controller.sim.site import SiteSpec
from tests.harness import Site, site_running

METER = 2
LOAD = 70
PAIR = (10, 20)
TOLERANCE_W = 5_000.0


def grid(site: Site) -> float:
    return site.sim.model.ac_power_w(METER)


async def test_a_dispatch_on_part_of_the_site_runs_within_peak_shaving_and_yields_to_a_peak(
    example_site: SiteSpec, tmp_path: Path
) -> None:
    async with site_running(example_site, tmp_path / "probe") as site:
        base = grid(site)
    threshold = base + 100_000
    extra = {
        "use_cases": [
            {"kind": "battery_power", "priority": 1},
            {"kind": "peak_shaving", "name": "peak", "threshold": threshold, "priority": 10},
        ]
    }
    async with site_running(example_site, tmp_path / "run", extra) as site:
        await site.until(lambda: abs(grid(site) - base) < 20_000, "settled", 10)
        # A 300 kW charge on two batteries would make a 200 kW peak: cut to ~100 kW.
        await site.create(300_000.0, (11, 21), start="NOW")
        await site.until(lambda: site.power(*PAIR) > 50_000, "the dispatch runs", 10)
        await asyncio.sleep(1.5)
        assert grid(site) <= threshold + TOLERANCE_W
        assert site.power(*PAIR) == pytest.approx(threshold - base, abs=25_000)
        assert site.power(30, 40) == pytest.approx(0, abs=1_000)

        # A load step makes a peak: peak shaving takes every battery.
        site.sim.model.load_steps_w[LOAD] = 300_000
        await site.until(
            lambda: site.power(*PAIR, 30, 40) < -100_000, "the batteries shave the peak", 10
        )
        await site.until(lambda: grid(site) <= threshold + TOLERANCE_W, "shaved", 10)
        assert site.controller.power_managing is not None
        assert site.controller.power_managing.counts.get("withheld", 0) >= 1

        # The peak is over: the dispatch runs again within the bounds.
        site.sim.model.load_steps_w[LOAD] = 0.0
        await site.until(lambda: site.power(*PAIR) > 50_000, "the dispatch is back", 15)
        await asyncio.sleep(1.0)
        assert grid(site) <= threshold + TOLERANCE_W
        assert site.sim.command_log.violations() == []
