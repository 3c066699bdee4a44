"""Case 2: one battery's telemetry turns NaN, then goes silent (stale).

Expected: the battery is skipped — its inverter is told 0 W, so no uncounted command
keeps running — and the three others carry the whole target; when its data is good
again it is used again. NaN on the *inverter* side (its power and bounds) is
different: the battery's own bounds stand in for the inverter's and it stays in use.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from edge_controller.servers.sim.fault_spec import FaultKind
from edge_controller.servers.sim.site import SiteSpec
from tests.reliability.helpers import (
    BATTERIES,
    PowerWatch,
    assert_no_violations,
    near,
    reliable_site,
    until,
)

TARGET_W = -400_000.0


async def test_a_battery_with_nan_or_stale_telemetry_is_skipped_and_the_rest_go_on(
    example_site: SiteSpec, tmp_path: Path
) -> None:
    async with reliable_site(example_site, tmp_path) as site:
        await site.create(TARGET_W, BATTERIES)
        await until(lambda: near(site.power(), TARGET_W, 1000), "the dispatch runs")
        assert site.sim.model.ac_power_w(20) < -100_000
        loop = asyncio.get_running_loop()

        async with PowerWatch(site.sim) as watch:
            for kind, limit_s in ((FaultKind.NAN_METRICS, 2.0), (FaultKind.NO_TELEMETRY, 3.5)):
                site.fault(21, kind)
                began = loop.time()
                # NaN: the next keep-alive (1 s). Stale: stale_after (1.5 s) + keep-alive.
                skipped_at = await until(
                    lambda: site.sim.model.ac_power_w(20) == 0.0, f"{kind}: 20 at 0 W", 5
                )
                assert skipped_at - began <= limit_s
                await until(
                    lambda: near(site.power(10, 30, 40), TARGET_W, 1000), f"{kind}: others carry", 3
                )
                await asyncio.sleep(1.2)  # a further round: still skipped, still carried
                assert site.sim.model.ac_power_w(20) == 0.0
                assert near(site.power(), TARGET_W, 1000)

                site.sim.faults.clear(21)
                await until(lambda: site.sim.model.ac_power_w(20) < -1000, f"{kind}: back", 3)
                await until(lambda: near(site.power(), TARGET_W, 1000), f"{kind}: balanced", 3)

            # NaN on the inverter side: its bounds come from its battery; still used.
            site.fault(20, FaultKind.NAN_METRICS)
            await asyncio.sleep(1.5)
            assert site.sim.model.ac_power_w(20) < -1000
            assert near(site.power(), TARGET_W, 1000)
            site.sim.faults.clear(20)

        assert watch.longest_over(TARGET_W, tolerance_w=100.0) <= 0.05
        assert_no_violations(site.sim)
        site.assert_alive()
