"""An OUT_OF_RANGE refusal does not block the battery (Frequenz SDK #1321).

The SDK marks every battery whose command failed as broken, an OUT_OF_RANGE refusal
included; but such a refusal says the *command* did not fit the bounds in force (they
narrowed between the telemetry and the command), not that the battery is faulty. This
controller reports it as a failure of that request and keeps the battery usable: the
next request is commanded on it.

The simulator refuses out of range with the real status: its bounds for inverter 10
are narrowed to ±50 kW while the inverter's telemetry is held back (the controller
still sees ±250 kW, as if the narrowing happened after the last sample), then a
−100 kW request is refused.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import structlog
from frequenz.channels import Receiver
from frequenz.quantities import Power

from edge_controller.common.clock import ManualClock
from edge_controller.framework.messages import PartialFailure, PowerRequest, Result, Success
from edge_controller.power.bounds import Range
from edge_controller.servers.sim.fault_spec import FaultKind
from edge_controller.servers.sim.model import Metric
from edge_controller.servers.sim.server import SimulatorServer
from tests.harness import RESOLUTIONS, Distributor, distributor_running
from tests.patience import until

INVERTER, BATTERY = 10, 11


async def ask(distributor: Distributor, results: Receiver[Result], kw: float) -> Result:
    request = PowerRequest("test", Power.from_kilowatts(kw), frozenset({BATTERY}))
    await distributor.requests.send(request)
    async with asyncio.timeout(10):
        return await results.receive()


@pytest.fixture
async def distributor(
    sim_server: SimulatorServer, clock: ManualClock
) -> AsyncIterator[Distributor]:
    async with distributor_running(sim_server, clock) as running:
        cache = running.connection.cache
        await until(
            lambda: bool(
                cache.battery(BATTERY, clock.now())
                and all(cache.inverter(i, clock.now()) for i in RESOLUTIONS)
            ),
            "first telemetry of the battery and every inverter",
            tick=sim_server.service.tick,
        )
        running.actor.start()
        yield running


async def test_an_out_of_range_refusal_does_not_block_the_battery(
    distributor: Distributor, sim_server: SimulatorServer, clock: ManualClock
) -> None:
    results = distributor.actor.new_result_receiver("test")
    sim_server.faults.inject(INVERTER, FaultKind.NO_TELEMETRY, now=clock.now())
    sim_server.model.add_bounds(
        INVERTER, Metric.AC_ACTIVE_POWER, [Range(-50_000, 50_000)], clock.now(), validity_s=60
    )
    with structlog.testing.capture_logs() as logs:
        refused = await ask(distributor, results, -100)
    assert isinstance(refused, PartialFailure), refused
    assert refused.failed_batteries == {BATTERY}
    assert sim_server.model.ac_power_w(INVERTER) == 0.0
    assert [e["inverter"] for e in logs if e["event"] == "command_out_of_range"] == [INVERTER]
    assert [e for e in logs if e["event"] == "battery_blocked"] == []
    assert BATTERY in distributor.actor.battery_status().working

    # The next request, within the bounds now in force, is commanded on it at once.
    commanded = await ask(distributor, results, -40)
    assert isinstance(commanded, Success), commanded
    assert commanded.succeeded_batteries == {BATTERY}
    assert sim_server.model.ac_power_w(INVERTER) == pytest.approx(-40_000, abs=88)
