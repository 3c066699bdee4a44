"""Case 9: bounds under fire.

For seven seconds, seeded random faults come and go on the inverters and batteries
(delays, silence, RPC errors, latched ERRORs, NaN data, silent or dropped streams)
while one dispatch over all four batteries is moved between ±1.1 MW (more than the
site can take, so targets are clamped), with the physics 300 times faster so SoCs
reach their limits and the batteries' bounds taper while it runs. Every command the
simulator accepted is checked against the bounds in force at that moment
(`command_log.violations()`): none may be outside. The controller never crashes, and
after the storm it drives every battery again.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from pathlib import Path

from frequenz.client.dispatch.types import DispatchId

from edge_controller.servers.sim.errors import SimError
from edge_controller.servers.sim.model import CommandRecord
from edge_controller.servers.sim.site import SiteSpec
from tests.harness import MICROGRID
from tests.reliability.helpers import (
    BATTERIES,
    INVERTERS,
    FaultStorm,
    assert_no_violations,
    reliable_site,
    until,
)

SEED = 9
STORM_S = 7.0


async def test_no_accepted_command_leaves_its_bounds_while_faults_come_and_go(
    example_site: SiteSpec, tmp_path: Path
) -> None:
    rng = random.Random(SEED)
    refused: Counter[str] = Counter()
    async with reliable_site(example_site, tmp_path, speed=300) as site:
        service = site.sim.service
        set_power = service.set_power

        async def counting(
            component_id: int, power_w: float, lifetime_s: int | None, *, reactive: bool
        ) -> CommandRecord:
            try:
                return await set_power(component_id, power_w, lifetime_s, reactive=reactive)
            except SimError as error:
                refused[error.kind.value] += 1
                raise

        service.set_power = counting  # type: ignore[method-assign]
        dispatch_id = await site.create(-900_000.0, BATTERIES)
        storm = FaultStorm(site.sim, random.Random(SEED + 1))
        storm_task = asyncio.create_task(storm.run(STORM_S))
        while not storm_task.done():
            await asyncio.sleep(rng.uniform(0.3, 1.0))
            await site.client.update(
                microgrid_id=MICROGRID,
                dispatch_id=DispatchId(dispatch_id),
                new_fields={"payload": {"power_w": rng.uniform(-1_100_000, 1_100_000)}},
            )
        await storm_task
        kinds = Counter(kind.value for _, kind, _ in storm.injected)
        assert len(kinds) == 7, kinds
        assert len(storm.injected) >= 12

        # After the storm: every inverter is commanded again (nothing stuck broken).
        after = len(site.sim.command_log.records())
        await until(
            lambda: (
                {r.component_id for r in site.sim.command_log.records()[after:]} >= set(INVERTERS)
            ),
            "every inverter commanded again",
            site.controller.config.power_distribution.blocking_max.total_seconds() + 3,
        )
        assert site.sim.command_log.total == len(site.sim.command_log.records())
        assert site.sim.command_log.total > 30
        assert_no_violations(site.sim)
        site.assert_alive()
        print(  # the figures, for the suite's README (pytest -s)
            f"\nbounds under fire: {len(storm.injected)} faults {dict(kinds)}; "
            f"{site.sim.command_log.total} commands accepted, 0 outside bounds; "
            f"refused {dict(refused)}; results {site.counts()}"
        )
