"""A running simulator driven through its faults file, seen by the real client 0.18.

The server runs on the wall clock (a faults file's windows count from the real start)
and polls the file every 20 ms; each test waits for what it asserts, never for a
fixed time.
"""

from __future__ import annotations

import asyncio
import math
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
import structlog.testing
from frequenz.client.base.retry import LinearBackoff
from frequenz.client.microgrid import InternalError, MicrogridApiClient
from frequenz.client.microgrid.metrics import Metric

from edge_controller.servers.sim.fault_spec import FaultKind, FaultSpec
from edge_controller.servers.sim.faults_file import FaultsFileError
from edge_controller.servers.sim.server import SimulatorServer
from edge_controller.servers.sim.site import SiteSpec
from tests.conftest import component_id
from tests.patience import PATIENCE_S

INVERTER_A, BATTERY_A = 10, 11
RPC_ERROR_ON_A = '[[faults]]\ncomponent = 10\nkind = "rpc_error"\nstatus = "INTERNAL"\n'
NAN_SOC_OF_A = '[[faults]]\ncomponent = 11\nkind = "nan_metrics"\nmetrics = ["battery_soc_pct"]\n'


def write(path: Path, text: str) -> None:
    """Replace the file as an editor's save does (a new inode: always seen as a change)."""
    temporary = path.with_suffix(".tmp")
    temporary.write_text(text)
    os.replace(temporary, path)


def remove(path: Path) -> None:
    path.unlink()


async def eventually(check: Callable[[], Awaitable[bool]], what: str) -> None:
    async with asyncio.timeout(PATIENCE_S):
        while not await check():
            await asyncio.sleep(0.02)


@pytest.fixture
def faults_path(tmp_path: Path) -> Path:
    return tmp_path / "faults.toml"


@pytest.fixture
async def watched(example_site: SiteSpec, faults_path: Path) -> AsyncIterator[SimulatorServer]:
    async with SimulatorServer(example_site, faults_file=faults_path, faults_poll_s=0.02) as sim:
        yield sim


@pytest.fixture
async def api(watched: SimulatorServer) -> AsyncIterator[MicrogridApiClient]:
    client = MicrogridApiClient(watched.url, retry_strategy=LinearBackoff(interval=0.1, limit=50))
    try:
        yield client
    finally:
        await client.__aexit__(None, None, None)


async def test_a_fault_written_to_the_file_refuses_commands_until_the_file_drops_it(
    watched: SimulatorServer, api: MicrogridApiClient, faults_path: Path
) -> None:
    async def refused() -> bool:
        try:
            await api.set_component_power_active(component_id(INVERTER_A), -1000.0)
        except InternalError:
            return True
        return False

    assert not await refused()  # no file: no faults
    write(faults_path, RPC_ERROR_ON_A)
    await eventually(refused, "the injected INTERNAL")
    assert watched.command_log.refusals()[-1].status == "INTERNAL"

    with structlog.testing.capture_logs() as logs:
        write(faults_path, '[[faults]]\ncomponent = 10\nkind = "silent"\n')  # rejected
        async with asyncio.timeout(PATIENCE_S):
            while watched.faults_watcher is None or watched.faults_watcher.rejected == 0:
                await asyncio.sleep(0.02)
    [rejected] = [entry for entry in logs if entry["event"] == "faults_file_rejected"]
    assert rejected["problems"] == [
        "faults.toml: faults[0].kind: expected one of ['delay', 'unresponsive', 'rpc_error', "
        "'error', 'nan_metrics', 'drop_stream', 'no_telemetry'], got 'silent'"
    ]
    assert rejected["kept"] == "the last good set (1 faults)"
    assert await refused()  # the last good set stays in force

    remove(faults_path)  # no file: no faults from it
    await eventually(lambda: _not(refused), "the fault cleared")


async def _not(check: Callable[[], Awaitable[bool]]) -> bool:
    return not await check()


async def test_a_fault_written_to_the_file_shows_in_telemetry(
    api: MicrogridApiClient, faults_path: Path
) -> None:
    receiver = api.receive_component_data_samples_stream(
        component_id(BATTERY_A), [Metric.BATTERY_SOC_PCT]
    )

    async def soc() -> float:
        async with asyncio.timeout(PATIENCE_S):
            samples = await receiver.receive()
        value = next(s.value for s in samples.metric_samples if s.metric == Metric.BATTERY_SOC_PCT)
        assert isinstance(value, float)
        return value

    assert math.isfinite(await soc())
    write(faults_path, NAN_SOC_OF_A)

    async def nan() -> bool:
        return math.isnan(await soc())

    await eventually(nan, "a NaN SoC")


async def test_the_files_faults_leave_the_site_files_and_injected_ones_alone(
    watched: SimulatorServer, faults_path: Path
) -> None:
    now = watched.service.clock.now()
    watched.faults.inject(20, FaultKind.DELAY, now=now, delay_s=1.0)
    write(faults_path, RPC_ERROR_ON_A)
    async with asyncio.timeout(PATIENCE_S):
        while not watched.faults.active(now, INVERTER_A):
            await asyncio.sleep(0.02)
    write(faults_path, "")
    async with asyncio.timeout(PATIENCE_S):
        while watched.faults.active(watched.service.clock.now(), INVERTER_A):
            await asyncio.sleep(0.02)
    assert watched.faults.active(watched.service.clock.now()) == [
        FaultSpec(20, FaultKind.DELAY, delay_s=1.0)
    ]


def test_a_bad_file_at_start_is_refused_naming_file_and_key(
    example_site: SiteSpec, faults_path: Path
) -> None:
    faults_path.write_text('[[faults]]\ncomponent = 10\nkind = "unresponsive"\nuntill = 3\n')
    with pytest.raises(FaultsFileError, match=r"^faults\.toml: faults\[0\]\.untill: unknown key"):
        SimulatorServer(example_site, faults_file=faults_path)


async def test_the_start_line_gives_the_instant_fault_windows_count_from(
    watched: SimulatorServer,
) -> None:
    at = watched.faults.origin.isoformat()
    assert watched.start_line() == f"started at={at} speed=1"
