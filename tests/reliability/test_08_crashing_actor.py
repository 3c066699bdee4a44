"""Case 8: an actor that raises again and again — the process-level variant.

The in-process form (restart count in `/metrics`, exit code of `Daemon.run`) is
`tests/daemon/test_supervised_daemon.py`. Here the real entry point runs as a child
process with a use case that crashes on every dispatch event, the way systemd would
see it: `actor_crashed` logged with growing waits (backoff with ±20 % jitter),
`actor_gave_up` past `restart_limit`, the batteries released, `STOPPING=1`, exit 1 —
so `Restart=on-failure` starts a clean process.
"""

from __future__ import annotations

import asyncio
import os
import sys
import textwrap
from pathlib import Path

from edge_controller.servers.dispatch.server import DispatchServer
from edge_controller.servers.sim.server import SimulatorServer
from edge_controller.servers.sim.site import SiteSpec
from tests.daemon.test_daemon_process import Logs, Notifications
from tests.harness import KEY, create_now, power_reaches, stream_connected
from tests.reliability.helpers import write_daemon_config

CRASHING_ENTRY_POINT = textwrap.dedent(
    """
    import sys
    from edge_controller.use_cases.battery_power.actor import BatteryPowerActor
    from edge_controller.tools.cli import main

    original_on_dispatch = BatteryPowerActor._on_dispatch
    original_run = BatteryPowerActor._run
    broken = []

    async def on_dispatch(self, dispatch):
        if int(dispatch.id) >= 2:  # the second dispatch hits the "bug"...
            broken.append(True)
            raise RuntimeError("bug in the use case")
        await original_on_dispatch(self, dispatch)

    async def run(self):
        if broken:  # ...which breaks the actor for good (a corrupted state)
            raise RuntimeError("bug in the use case, again")
        await original_run(self)

    BatteryPowerActor._on_dispatch = on_dispatch
    BatteryPowerActor._run = run
    sys.exit(main(sys.argv[1:]))
    """
)


async def test_a_use_case_that_keeps_crashing_ends_the_process_with_exit_1(
    example_site: SiteSpec, tmp_path: Path
) -> None:
    async with (
        SimulatorServer(example_site) as sim,
        DispatchServer(tmp_path / "dispatches.db", keys=frozenset({KEY})) as dispatch,
    ):
        supervision = (
            "[supervision]\nrestart_initial = 0.05\nrestart_max = 0.4\nrestart_limit = 4\n"
        )
        config = write_daemon_config(tmp_path, sim.url, dispatch.url, extra=supervision)
        notify = Notifications(tmp_path / "notify.sock")
        environ = {**os.environ, "NOTIFY_SOCKET": str(tmp_path / "notify.sock")}
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            CRASHING_ENTRY_POINT,
            "--log-format",
            "json",
            "run",
            "--config",
            str(config),
            stderr=asyncio.subprocess.PIPE,
            env=environ,
        )
        assert process.stderr is not None
        logs = Logs(process.stderr)
        try:
            await notify.wait_for("READY=1")
            await stream_connected(dispatch, 20)
            await create_now(dispatch.url, 21, -30_000.0)
            await power_reaches(sim, 20, -30_000, 10)
            # From the second dispatch on, the use case crashes at every (re)start.
            await create_now(dispatch.url, 31, -10_000.0)
            code = await asyncio.wait_for(process.wait(), 20)
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
        await asyncio.sleep(0.1)  # the last log lines
    assert code == 1
    assert sim.model.ac_power_w(20) == 0.0  # released on the way out
    crashes = logs.events("actor_crashed")
    assert [c["crashes"] for c in crashes] == [1, 2, 3, 4]
    waits = [float(c["restart_in_s"]) for c in crashes]  # type: ignore[arg-type]
    for attempt, wait in enumerate(waits):  # 0.05 s doubling, capped at 0.4 s, ±20 %
        base = min(0.4, 0.05 * 2**attempt)
        assert 0.8 * base - 0.001 <= wait <= 1.2 * base + 0.001
    assert logs.events("actor_gave_up")
    stopping = logs.events("daemon_stopping")
    assert stopping
    assert "kept crashing" in str(stopping[0]["reason"])
    assert any(line.startswith("STOPPING=1") for line in notify.drain())
