"""The command log: refused commands beside accepted ones, in memory and in the file."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from pathlib import Path

import pytest
from frequenz.client.microgrid import MicrogridApiClient, OperationOutOfRange

from edge_controller.common.clock import ManualClock
from edge_controller.power.bounds import Range
from edge_controller.servers.sim.command_log import CANCELLED
from edge_controller.servers.sim.fault_spec import FaultKind
from edge_controller.servers.sim.server import SimulatorServer
from edge_controller.servers.sim.site import SiteSpec
from tests.conftest import component_id
from tests.patience import until

INVERTER_A = 10  # -250..250 kW, 88 W resolution; battery A's bounds are the same


async def test_a_refused_command_is_logged_with_its_status_reason_and_bounds(
    sim_server: SimulatorServer, client: MicrogridApiClient
) -> None:
    await client.set_component_power_active(component_id(INVERTER_A), -1000.0)
    with pytest.raises(OperationOutOfRange):
        await client.set_component_power_active(component_id(INVERTER_A), -400_000.0)
    log = sim_server.command_log
    assert (log.total, log.refused_total) == (1, 1)
    assert [r.applied_w for r in log.records()] == [-968.0]  # accepted ones only, as before
    refusal = log.refusals()[0]
    assert (refusal.component_id, refusal.requested_w, refusal.status) == (
        INVERTER_A,
        -400_000.0,
        "OUT_OF_RANGE",
    )
    assert "outside its bounds" in refusal.reason
    assert refusal.bounds == (Range(-250_000.0, 250_000.0),)
    assert log.violations() == []


async def test_a_request_a_silent_inverter_never_answered_is_logged_as_cancelled(
    sim_server: SimulatorServer, client: MicrogridApiClient, clock: ManualClock
) -> None:
    sim_server.faults.inject(INVERTER_A, FaultKind.UNRESPONSIVE, now=clock.now())
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.3):
            await client.set_component_power_active(component_id(INVERTER_A), -880.0)
    await until(lambda: bool(sim_server.command_log.refusals()), "the refusal was logged")
    refusal = sim_server.command_log.refusals()[0]
    assert (refusal.requested_w, refusal.status) == (-880.0, CANCELLED)
    assert sim_server.command_log.total == 0


async def test_the_file_holds_both_outcomes_and_accepted_lines_keep_their_keys(
    example_site: SiteSpec, clock: ManualClock, tmp_path: Path
) -> None:
    path = tmp_path / "commands.jsonl"
    async with SimulatorServer(example_site, clock=clock, command_log_path=path) as server:
        api = MicrogridApiClient(server.url)
        try:
            await api.set_component_power_active(component_id(INVERTER_A), -1000.0)
            with pytest.raises(OperationOutOfRange):
                await api.set_component_power_active(component_id(INVERTER_A), 17_600.0 * 100)
        finally:
            await api.__aexit__(None, None, None)
    accepted, refused = (json.loads(line) for line in path.read_text().splitlines())
    assert accepted == {
        "at": clock.now().isoformat(),
        "component_id": INVERTER_A,
        "reactive": False,
        "requested_w": -1000.0,
        "applied_w": -968.0,
        "bounds_w": [[-250_000.0, 250_000.0]],
        "valid_until": (clock.now() + timedelta(seconds=60)).isoformat(),
        "outcome": "accepted",
    }
    assert refused["outcome"] == "refused"
    assert refused["status"] == "OUT_OF_RANGE"
    assert refused["bounds_w"] == [[-250_000.0, 250_000.0]]
    assert refused["requested_w"] == 1_760_000.0
    assert "outside its bounds" in refused["reason"]
    assert "applied_w" not in refused
