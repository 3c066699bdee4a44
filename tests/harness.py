"""Helpers for tests that run the whole chain: simulator, dispatch service, controller.

`site` (a fixture in `tests/conftest.py`) gives a running `Site`; the helpers wait on
physical state with short polls, never long sleeps. `distributor_running` runs one link
of that chain alone: the power distributing actor on a connection to the simulator.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from frequenz.channels import BroadcastChannel, BroadcastSender
from frequenz.client.common.microgrid import MicrogridId
from frequenz.client.dispatch import DispatchApiClient
from frequenz.client.dispatch.types import DispatchId, TargetIds

from edge_controller.common.clock import ManualClock
from edge_controller.config.schema import parse_config
from edge_controller.controller.graph import Controller
from edge_controller.controller.power_distributing import PowerDistributingActor
from edge_controller.framework.messages import PowerRequest
from edge_controller.microgrid.connection import MicrogridConnection
from edge_controller.servers.dispatch.server import DispatchServer
from edge_controller.servers.sim.server import SimulatorServer
from edge_controller.servers.sim.site import SiteSpec
from tests import patience
from tests.patience import PATIENCE_S

KEY = "e2e-key"
MICROGRID = MicrogridId(1)
COMMAND = [sys.executable, "-m", "edge_controller.tools.cli", "--log-format", "json"]
RESOLUTIONS = {10: 88.0, 20: 100.0, 30: 50.0, 40: 88.0}
"""The example site's inverters and the power step (W) of each."""


async def stream_connected(server: DispatchServer, timeout_s: float = PATIENCE_S) -> None:
    """Wait until the controller's dispatch stream is connected (events sent earlier
    would reach it only through the reconciliation)."""
    async with asyncio.timeout(timeout_s):
        while server.service.subscriber_count(1) < 1:
            await asyncio.sleep(0.02)


async def power_reaches(
    sim: SimulatorServer, inverter: int, watts: float, timeout_s: float = PATIENCE_S
) -> None:
    """Wait until the simulated inverter runs at `watts` (±100 W)."""
    async with asyncio.timeout(timeout_s):
        while sim.model.ac_power_w(inverter) != pytest.approx(watts, abs=100):
            await asyncio.sleep(0.05)


async def create_now(url: str, battery: int, watts: float) -> DispatchId:
    """Create a BATTERY_POWER dispatch on one battery that starts now, for 5 minutes."""
    client = DispatchApiClient(server_url=url, auth_key=KEY)
    created = await client.create(
        microgrid_id=MICROGRID,
        type="BATTERY_POWER",
        start_time="NOW",
        duration=timedelta(minutes=5),
        target=TargetIds(battery),
        payload={"power_w": watts},
    )
    return created.id


async def run_cli(*args: str, env: Mapping[str, str] | None = None) -> tuple[int, str, str]:
    """Run `edge-controller --log-format json ARGS` as operators run it, as a process
    (not blocking the event loop a server of the test runs on), in this environment
    without our `EDGE_CONTROLLER_*` variables, plus `env`: (exit code, stdout, stderr)."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("EDGE_CONTROLLER_")}
    environ.update(env or {})
    process = await asyncio.create_subprocess_exec(
        *COMMAND,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=environ,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


@dataclass
class Site:
    sim: SimulatorServer
    dispatch: DispatchServer
    client: DispatchApiClient
    controller: Controller

    def power(self, *inverters: int) -> float:
        return sum(self.sim.model.ac_power_w(i) for i in inverters)

    async def until(
        self, condition: Callable[[], bool], what: str, timeout_s: float = PATIENCE_S
    ) -> None:
        await patience.until(condition, what, timeout_s=timeout_s, poll_s=0.05)

    async def create(self, power: object, batteries: tuple[int, ...], **options: object) -> int:
        start = options.pop("start", datetime.now(UTC) + timedelta(seconds=1))
        dispatch = await self.client.create(
            microgrid_id=MICROGRID,
            type=str(options.pop("type", "BATTERY_POWER")),
            start_time=start,  # type: ignore[arg-type]
            duration=timedelta(minutes=10),
            target=TargetIds(*batteries),
            payload={"power_w": power},
            **options,  # type: ignore[arg-type]
        )
        return int(dispatch.id)


async def running_site(
    example_site: SiteSpec,
    tmp_path: Path,
    extra: Mapping[str, Any] | None = None,
    *,
    sim_options: Mapping[str, Any] | None = None,
) -> AsyncIterator[Site]:
    """Run the chain; `extra` adds or replaces config sections (e.g. `grid`, `use_cases`)."""
    tmp_path.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 - test set-up
    async with (
        SimulatorServer(example_site, **(sim_options or {})) as sim,
        DispatchServer(tmp_path / "dispatches.db", keys=frozenset({KEY})) as dispatch,
    ):
        config = parse_config(
            {
                "microgrid": {"url": sim.url},
                "dispatch": {"url": dispatch.url, "microgrid_id": 1, "startup_timeout": 10},
                "power_distribution": {"resolutions": {"10": 88, "20": 100, "30": 50, "40": 88}},
                "use_cases": [{"kind": "battery_power", "dispatch_types": ["BATTERY_POWER"]}],
                **(extra or {}),
            },
            environ={"EDGE_CONTROLLER_DISPATCH_KEY": KEY},
        )
        client = DispatchApiClient(server_url=dispatch.url, auth_key=KEY)
        async with Controller(config) as controller:
            # The library's stream must be connected, or an event sent now is lost.
            await stream_connected(dispatch, 10)
            yield Site(sim, dispatch, client, controller)


site_running = contextlib.asynccontextmanager(running_site)
"""`async with site_running(example_site, tmp_path, extra) as site:`."""


@dataclass
class Distributor:
    """A `PowerDistributingActor` on a `MicrogridConnection` to the simulator."""

    connection: MicrogridConnection
    requests: BroadcastSender[PowerRequest]
    actor: PowerDistributingActor


@contextlib.asynccontextmanager
async def distributor_running(
    sim_server: SimulatorServer, clock: ManualClock
) -> AsyncIterator[Distributor]:
    """Connect to `sim_server` and build the actor (`RESOLUTIONS`, 15 s keep-alive,
    50 ms tick); the caller starts it once the telemetry it needs arrived. On exit the
    actor stops, then the connection."""
    connection = MicrogridConnection(sim_server.url, clock=clock, reconnect_interval_s=0.1)
    await connection.start()
    sender, receiver = BroadcastChannel[PowerRequest](name="requests")
    actor = PowerDistributingActor(
        receiver,
        connection,
        clock=clock,
        resolutions_w=RESOLUTIONS,
        keepalive_interval=timedelta(seconds=15),
        tick=timedelta(seconds=0.05),
    )
    try:
        yield Distributor(connection, sender, actor)
    finally:
        await actor.stop()
        await connection.stop()
