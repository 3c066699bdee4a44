"""Case 5: the daemon process is killed (SIGKILL) mid-dispatch and started again.

SIGKILL leaves no time to release anything: the inverter keeps the last command until
it expires. The new process must pick the running dispatch up from the service and
command it again (new records in the simulator's command log) without a dip to 0 W.
SIGTERM then releases the battery (0 W) and exits 0.
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
from frequenz.client.dispatch import DispatchApiClient
from frequenz.client.dispatch.types import DispatchId

from edge_controller.servers.dispatch.server import DispatchServer
from edge_controller.servers.sim.server import SimulatorServer
from tests.harness import KEY, MICROGRID, create_now, power_reaches, stream_connected
from tests.reliability.helpers import (
    DaemonProcess,
    PowerWatch,
    assert_no_violations,
    until,
    write_daemon_config,
)

TARGET_W = -60_000.0


async def _killed_mid_dispatch(
    sim: SimulatorServer, dispatch: DispatchServer, tmp_path: Path
) -> int:
    """Start a daemon, run a dispatch on battery 21, SIGKILL it; return the dispatch id."""
    config = write_daemon_config(tmp_path, sim.url, dispatch.url)
    first = await DaemonProcess(config, tmp_path, "first").start()
    try:
        await stream_connected(dispatch, 20)
        dispatch_id = await create_now(dispatch.url, 21, TARGET_W)
        await power_reaches(sim, 20, TARGET_W, 10)
        assert await first.signal(signal.SIGKILL) == -signal.SIGKILL
    finally:
        await first.close()
    return int(dispatch_id)


async def test_a_killed_daemon_resumes_the_running_dispatch_and_sigterm_releases(
    servers: tuple[SimulatorServer, DispatchServer], tmp_path: Path
) -> None:
    sim, dispatch = servers
    async with PowerWatch(sim) as watch:
        dispatch_id = await _killed_mid_dispatch(sim, dispatch, tmp_path)
        killed_at = len(sim.command_log.records())
        second = DaemonProcess(tmp_path / "controller.toml", tmp_path, "second")
        try:
            await second.start()
            assert second.logs is not None
            running = await second.logs.wait_for("dispatch_running", 10)
            assert running["dispatch_id"] == dispatch_id
            # Commanded again by the new process, at the dispatch's power.
            await until(
                lambda: any(
                    r.component_id == 20 and r.applied_w == TARGET_W
                    for r in sim.command_log.records()[killed_at:]
                ),
                "the new process commands the running dispatch",
                5,
            )
            assert sim.model.ac_power_w(20) == pytest.approx(TARGET_W, abs=100)
        finally:
            code = await second.signal(signal.SIGTERM) if second.process else None
            await second.close()
    assert code == 0
    assert sim.model.ac_power_w(20) == 0.0  # released on SIGTERM
    # No dip while the process was dead and restarting: the inverter held its command.
    powers_20 = [p[20] for t, p in watch.samples]
    started = next(i for i, w in enumerate(powers_20) if w == pytest.approx(TARGET_W, abs=100))
    released = max(i for i, w in enumerate(powers_20) if w == pytest.approx(TARGET_W, abs=100))
    assert all(w == pytest.approx(TARGET_W, abs=100) for w in powers_20[started : released + 1])
    assert second.logs is not None
    assert second.logs.events("daemon_stopping")[0]["reason"] == "SIGTERM"
    assert_no_violations(sim)


async def test_a_dispatch_deleted_while_the_daemon_was_dead_is_released_after_restart(
    servers: tuple[SimulatorServer, DispatchServer], tmp_path: Path
) -> None:
    sim, dispatch = servers
    dispatch_id = await _killed_mid_dispatch(sim, dispatch, tmp_path)
    client = DispatchApiClient(server_url=dispatch.url, auth_key=KEY)
    await client.delete(microgrid_id=MICROGRID, dispatch_id=DispatchId(dispatch_id))
    second = DaemonProcess(tmp_path / "controller.toml", tmp_path, "second")
    try:
        await second.start()
        await until(lambda: sim.model.ac_power_w(20) == 0.0, "the orphan command released", 3)
    finally:
        if second.process is not None:
            await second.signal(signal.SIGTERM)
        await second.close()
