"""Case 3: the Microgrid API server goes away and comes back on the same address.

The simulator is stopped (its streams end with UNAVAILABLE, its port closes) for a
second and a fresh one — which knows none of the old commands, like a restarted
site gateway — starts on the same address. Expected: commands fail meanwhile without
crashing anything, telemetry streams reconnect within 5 s, and the running dispatch
is back on the inverters within 5 s (the keep-alive re-sends it; 1 s here).

The default keep-alive (15 s) is what limits the resume in production: the
controller does not notice that the inverters lost their commands — see the xfail.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from edge_controller.sim.server import SimulatorServer
from edge_controller.sim.site import SiteSpec
from tests.reliability.helpers import (
    BATTERIES,
    assert_no_violations,
    near,
    reliable_site,
    until,
    utc_now,
)

TARGET_W = -400_000.0
DOWN_S = 1.0


async def _restart_and_measure(
    example_site: SiteSpec, tmp_path: Path, settings: dict[str, Any]
) -> tuple[float, float]:
    """Run a dispatch, restart the simulator; return (reconnect s, resume s)."""
    loop = asyncio.get_running_loop()
    restarted: SimulatorServer | None = None
    try:
        async with reliable_site(example_site, tmp_path, settings) as site:
            await site.create(TARGET_W, BATTERIES)
            await until(lambda: near(site.power(), TARGET_W, 1000), "the dispatch runs")
            address = site.sim.address
            await site.sim.stop()
            await asyncio.sleep(DOWN_S)  # commands and streams fail meanwhile
            site.assert_alive()
            restarted = SimulatorServer(example_site, address)
            await restarted.start()
            site.sim, back_at, back_wall = restarted, loop.time(), utc_now()
            cache = site.controller.connection.cache

            def fresh() -> bool:
                readings = [cache.last_battery(b) for b in BATTERIES]
                return all(r is not None and r.sampled_at >= back_wall for r in readings)

            reconnected_at = await until(fresh, "telemetry from the new server", 10)
            try:
                resumed_at = await until(
                    lambda: near(site.power(), TARGET_W, 1000), "the dispatch resumes", 5
                )
            finally:
                site.assert_alive()
                assert_no_violations(restarted)
            return reconnected_at - back_at, resumed_at - back_at
    finally:
        if restarted is not None:
            await restarted.stop()


async def test_the_controller_reconnects_and_resumes_after_a_microgrid_api_restart(
    example_site: SiteSpec, tmp_path: Path
) -> None:
    reconnect_s, resume_s = await _restart_and_measure(example_site, tmp_path, {})
    assert reconnect_s <= 5.0
    assert resume_s <= 5.0


async def test_with_the_default_keepalive_the_dispatch_resumes_within_5_s(
    example_site: SiteSpec, tmp_path: Path
) -> None:
    settings = {"power_distribution": {"keepalive_interval": 15}}
    _, resume_s = await _restart_and_measure(example_site, tmp_path, settings)
    assert resume_s <= 5.0
