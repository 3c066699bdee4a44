"""An actor that keeps crashing: restarted with backoff, then the daemon exits 1."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from edge_controller.config.files import load
from edge_controller.daemon.run import Daemon
from edge_controller.servers.dispatch.server import DispatchServer
from edge_controller.servers.sim.server import SimulatorServer
from edge_controller.servers.sim.site import SiteSpec
from edge_controller.use_cases.battery_power.actor import BatteryPowerActor
from tests.harness import KEY, create_now, power_reaches, stream_connected


async def test_a_use_case_that_keeps_crashing_is_restarted_then_the_daemon_exits_1(
    example_site: SiteSpec, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with (
        SimulatorServer(example_site) as sim,
        DispatchServer(tmp_path / "dispatches.db", keys=frozenset({KEY})) as dispatch,
    ):
        (tmp_path / "key").write_text(KEY)
        path = tmp_path / "controller.toml"
        path.write_text(
            f'[microgrid]\nurl = "{sim.url}"\nid = 1\n'
            f'[dispatch]\nurl = "{dispatch.url}"\nkey_file = "key"\n'
            '[metrics]\nlisten = ""\n'
            '[http]\nlisten = ""\n'
            "[supervision]\nrestart_initial = 0.01\nrestart_max = 0.02\nrestart_limit = 3\n"
            '[[use_cases]]\nkind = "battery_power"\nname = "main"\n'
        )
        daemon = Daemon(path, load(path), watch_interval_s=0.1)
        running = asyncio.create_task(daemon.run())
        await stream_connected(dispatch, 20)
        await create_now(dispatch.url, 21, -30_000.0)
        await power_reaches(sim, 20, -30_000, 10)

        # From now on every dispatch event crashes the use case.
        async def crash(self: BatteryPowerActor, *_: object) -> None:
            raise RuntimeError("bug in the use case")

        monkeypatch.setattr(BatteryPowerActor, "_on_dispatch", crash)
        monkeypatch.setattr(BatteryPowerActor, "_run", crash)
        await create_now(dispatch.url, 31, -10_000.0)  # the event that hits the bug
        code = await asyncio.wait_for(running, 20)
    assert code == 1
    assert sim.model.ac_power_w(20) == 0.0  # released on the way out
    assert daemon.controller.failed.done()
    assert "main kept crashing" in daemon.controller.failed.result()
    rendered = daemon.metrics.render(refresh=False).decode()
    assert 'edge_controller_actor_restarts_total{actor="main"} 3.0' in rendered
