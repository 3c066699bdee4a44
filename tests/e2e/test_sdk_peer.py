"""The Frequenz SDK's own microgrid stack, unpatched, holds a target on the simulator.

The simulator is a peer for any Frequenz client, not only for ours: the SDK's battery
pool counts a battery as working only when it reports its relay closed, its states,
bounds and fresh telemetry, and it commands the inverters itself. The SDK runs in its
own process (its microgrid lives in process-wide singletons): `benchmarks/sdk_stack.py`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from edge_controller.servers.sim.server import SimulatorServer
from edge_controller.servers.sim.site import SiteSpec
from edge_controller.servers.sim.site_details import ComponentKind
from tests.patience import PATIENCE_S, until

ROOT = Path(__file__).resolve().parents[2]
TARGET_W = -40_000.0


class SdkStack:
    """The SDK stack's process, spoken to through its line protocol."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    async def send(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(f"{line}\n".encode())
        await self.process.stdin.drain()

    async def next_event(self, kind: str) -> dict[str, Any]:
        assert self.process.stdout is not None
        async with asyncio.timeout(PATIENCE_S):
            while line := await self.process.stdout.readline():
                event: dict[str, Any] = json.loads(line)
                if event["event"] == kind:
                    return event
        assert self.process.stderr is not None
        errors = (await self.process.stderr.read()).decode()[-3000:]
        raise AssertionError(f"the SDK stack ended before {kind!r}:\n{errors}")


@contextlib.asynccontextmanager
async def sdk_stack(url: str) -> AsyncIterator[SdkStack]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "benchmarks.sdk_stack",
        url,
        cwd=ROOT,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        yield SdkStack(process)
    finally:
        if process.returncode is None:
            process.kill()
        await process.wait()


def inverter_power_w(sim: SimulatorServer, site: SiteSpec) -> float:
    return sum(
        sim.model.ac_power_w(c.id)
        for c in site.components
        if c.kind is ComponentKind.BATTERY_INVERTER
    )


@pytest.mark.timeout(180)
async def test_the_sdk_battery_pool_sees_working_batteries_and_holds_a_target(
    example_site: SiteSpec,
) -> None:
    async with SimulatorServer(example_site) as sim, sdk_stack(sim.url) as sdk:
        ready = await sdk.next_event("ready")
        batteries = sorted(c.id for c in example_site.components if c.kind is ComponentKind.BATTERY)
        assert ready["batteries"] == batteries
        assert ready["lower_w"] < TARGET_W < ready["upper_w"]  # bounds, not 0/0

        await sdk.send(f"propose {TARGET_W}")
        await sdk.next_event("proposed")
        await until(
            lambda: inverter_power_w(sim, example_site) == pytest.approx(TARGET_W, rel=0.02),
            f"the SDK's {TARGET_W:g} W on the simulator's inverters",
        )
        commanded = {r.component_id for r in sim.command_log.records()}
        inverters = {
            c.id for c in example_site.components if c.kind is ComponentKind.BATTERY_INVERTER
        }
        assert commanded == inverters  # the pool spread it over every battery
        assert not sim.command_log.refusals()

        report = await sdk.next_event("report")
        assert report["target_w"] == pytest.approx(TARGET_W)

        await sdk.send(f"propose {-TARGET_W / 2}")  # a new target: charge
        await until(
            lambda: inverter_power_w(sim, example_site) == pytest.approx(-TARGET_W / 2, rel=0.02),
            f"the SDK's change to {-TARGET_W / 2:g} W",
        )
        assert not sim.command_log.refusals()
