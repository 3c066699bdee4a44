"""The PowerManagingActor in process: use cases' requests in, the distributor's out.

The manager's own word to the use cases (`Overruled`, `InForce`) comes out on
`reports`, a channel the test reads too.

No simulator: the use cases are the test sending `PowerRequest`s, the distributor is
a channel the test reads, the grid meter and the components are a `CachedSite` on a
`ManualClock`. The tick is short, so a meter going stale is noticed at once in real
time while its age is decided by the manual clock::

    async with managing(GridConfig(max_import_w=100_000.0)) as manager:
        manager.site.grid(60_000.0)
        await manager.ask(PowerRequest("dispatch_7", Power.from_watts(-20_000.0), BOTH))
        assert (await manager.told_request()).power.as_watts() == -20_000.0

A test that reads more of the site subclasses `Managed` (with no fields of its own)
and passes it as `steps`; its `ready` fills the site before the actor starts.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import TypeVar

from frequenz.channels import BroadcastChannel, Receiver, Sender

from edge_controller.common.clock import ManualClock
from edge_controller.controller.power_managing import PowerManagingActor
from edge_controller.framework.messages import PowerRequest, Result
from edge_controller.framework.use_case import GridConfig, SiteView
from tests.controller.cached_site import CachedSite
from tests.patience import PATIENCE_S
from tests.table import START


@dataclass
class Managed:
    """A PowerManagingActor, its site, and the test's ends of its three channels."""

    site: CachedSite
    use_cases: Sender[PowerRequest]
    distributor: Receiver[PowerRequest]
    actor: PowerManagingActor
    reports: Receiver[Result]

    def ready(self) -> None:
        """What the site reads when the actor starts: every battery and inverter ready."""
        self.site.everything_ready()

    async def ask(self, *requests: PowerRequest) -> None:
        """Send `requests` as the use cases would, in this order."""
        for each in requests:
            await self.use_cases.send(each)

    async def told_request(self) -> PowerRequest:
        """The next request the distributor gets."""
        async with asyncio.timeout(PATIENCE_S):
            return await self.distributor.receive()

    async def reported(self) -> Result:
        """The next word the manager sends a use case itself."""
        async with asyncio.timeout(PATIENCE_S):
            return await self.reports.receive()


ManagedT = TypeVar("ManagedT", bound=Managed)


@asynccontextmanager
async def managing(grid: GridConfig, steps: type[ManagedT]) -> AsyncIterator[ManagedT]:
    """A started PowerManagingActor on a fresh `CachedSite` under `grid`; stopped on the way out."""
    site = CachedSite(ManualClock(START))
    use_cases, requests = BroadcastChannel[PowerRequest](name="use_cases")
    to_distributor, distributor = BroadcastChannel[PowerRequest](name="distributor")
    to_reports, reports = BroadcastChannel[Result](name="reports")
    actor = PowerManagingActor(
        requests,
        to_distributor,
        SiteView(site.pairs, site.cache, site.grid_meter_id),
        grid=grid,
        clock=site.clock,
        tick=timedelta(milliseconds=20),
        reports=to_reports.send,
    )
    manager = steps(site, use_cases, distributor, actor, reports)
    manager.ready()
    actor.start()
    try:
        yield manager
    finally:
        await actor.stop()
