"""Case 3: the Microgrid API server goes away and comes back on the same address.

The simulator is stopped (its streams end with UNAVAILABLE, its port closes) for a
second and a fresh one — which knows none of the old commands, like a restarted
site gateway — starts on the same address. Expected: commands fail meanwhile without
crashing anything, telemetry streams reconnect, and the running dispatch is back on
the inverters as soon as they do: a stream that recovers after retrying counts as a
telemetry gap however short the silence was, so the distributor re-sends the targets
at once (`telemetry_resumed`), not at the next keep-alive.

How long a reconnect takes is the benchmarks' business (gRPC's own back-off); what is
asserted here is the order of events: with the default 15 s keep-alive, the dispatch
is back well before a keep-alive could have brought it back.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from edge_controller.servers.sim.server import SimulatorServer
from edge_controller.servers.sim.site import SiteSpec
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

            reconnected_at = await until(fresh, "telemetry from the new server")
            try:
                resumed_at = await until(
                    lambda: near(site.power(), TARGET_W, 1000), "the dispatch resumes"
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
    assert 0 <= reconnect_s <= resume_s


KEEPALIVE_S = 15.0


async def test_with_the_default_keepalive_the_dispatch_resumes_at_the_reconnect(
    example_site: SiteSpec, tmp_path: Path
) -> None:
    settings = {"power_distribution": {"keepalive_interval": KEEPALIVE_S}}
    reconnect_s, resume_s = await _restart_and_measure(example_site, tmp_path, settings)
    # Re-sent on the reconnect: a third of the keep-alive leaves a slow machine room.
    assert resume_s - reconnect_s < KEEPALIVE_S / 3
