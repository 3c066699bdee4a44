"""A site with a relay and a precharge module, as the Microgrid API documents them.

The controller's pairing reads them through the real client (v1alpha18 categories
BREAKER and PRECHARGER) and still pairs the battery behind the precharger with its
inverter, instead of leaving it out as "fed by no battery inverter".
"""

from __future__ import annotations

from frequenz.client.base.retry import LinearBackoff
from frequenz.client.microgrid import MicrogridApiClient

from edge_controller.common.clock import ManualClock
from edge_controller.microgrid.from_client import graph_inputs
from edge_controller.microgrid.graph import pair_batteries
from edge_controller.servers.sim.server import SimulatorServer
from tests.conftest import NOON
from tests.servers.sim.sites import switched_site


async def test_the_controller_pairs_a_battery_behind_a_precharger() -> None:
    clock = ManualClock(NOON)
    async with SimulatorServer(switched_site(), "127.0.0.1:0", clock=clock) as server:
        client = MicrogridApiClient(server.url, retry_strategy=LinearBackoff(interval=0.1, limit=5))
        try:
            components = list(await client.list_components())
            connections = list(await client.list_connections())
        finally:
            await client.__aexit__(None, None, None)
    pairs = pair_batteries(*graph_inputs(components, connections, NOON))
    assert pairs.as_dict() == {10: (11,)}
    assert pairs.left_out == ()
