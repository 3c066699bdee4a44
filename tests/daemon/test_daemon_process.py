"""`edge-controller run` as a process, the way systemd runs it.

Real simulator and dispatch service on loopback, a fake `NOTIFY_SOCKET` that records
what the daemon tells systemd, the metrics endpoint, live edits through a drop-in,
a rejected edit, SIGHUP and SIGTERM.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from edge_controller.servers.dispatch.server import DispatchServer
from edge_controller.servers.sim.server import SimulatorServer
from tests.harness import KEY, create_now, power_reaches, stream_connected


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Notifications:
    """A fake systemd notify socket: every datagram, split into lines."""

    def __init__(self, path: Path) -> None:
        self.socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.socket.bind(str(path))
        self.socket.setblocking(False)
        self.lines: list[str] = []

    def drain(self) -> list[str]:
        while True:
            try:
                self.lines.extend(self.socket.recv(4096).decode().splitlines())
            except BlockingIOError:
                return self.lines

    async def wait_for(self, line: str, timeout_s: float = 20.0) -> None:
        async with asyncio.timeout(timeout_s):
            while not any(found.startswith(line) for found in self.drain()):
                await asyncio.sleep(0.05)


class Logs:
    """The daemon's stderr, read as it comes (JSON lines)."""

    def __init__(self, stream: asyncio.StreamReader) -> None:
        self.lines: list[str] = []
        self._task = asyncio.create_task(self._read(stream))

    async def _read(self, stream: asyncio.StreamReader) -> None:
        while line := await stream.readline():
            self.lines.append(line.decode())

    def events(self, name: str) -> list[dict[str, object]]:
        found = []
        for line in self.lines:
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if record.get("event") == name:
                found.append(record)
        return found

    async def wait_for(self, name: str, timeout_s: float = 10.0) -> dict[str, object]:
        async with asyncio.timeout(timeout_s):
            while not self.events(name):
                await asyncio.sleep(0.05)
        return self.events(name)[-1]


def http_get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as reply:
            return reply.status, reply.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


async def test_the_daemon_notifies_systemd_serves_metrics_takes_edits_and_releases_on_sigterm(
    servers: tuple[SimulatorServer, DispatchServer], tmp_path: Path
) -> None:
    sim, dispatch = servers
    (tmp_path / "key").write_text(KEY)
    metrics_port = free_port()
    config = tmp_path / "controller.toml"
    config.write_text(
        f'[microgrid]\nurl = "{sim.url}"\nid = 1\n'
        f'[dispatch]\nurl = "{dispatch.url}"\nkey_file = "key"\n'
        f'[metrics]\nlisten = "127.0.0.1:{metrics_port}"\n'
        '[http]\nlisten = ""\n'
        '[[use_cases]]\nkind = "battery_power"\nname = "main"\n'
    )
    drop_ins = tmp_path / "controller.toml.d"
    drop_ins.mkdir()
    notify = Notifications(tmp_path / "notify.sock")
    environ = dict(os.environ)
    environ.update(
        NOTIFY_SOCKET=str(tmp_path / "notify.sock"), WATCHDOG_USEC="400000", JOURNAL_STREAM=""
    )
    environ.pop("WATCHDOG_PID", None)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "edge_controller.tools.cli",
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
    base = f"http://127.0.0.1:{metrics_port}"
    try:
        await notify.wait_for("READY=1")
        status = [line for line in notify.drain() if line.startswith("STATUS=")]
        assert any("4 batteries" in line and "mode control" in line for line in status), status
        await stream_connected(dispatch, 20)
        await create_now(dispatch.url, 21, -60_000.0)
        await power_reaches(sim, 20, -60_000, 10)

        code, body = await asyncio.to_thread(http_get, f"{base}/metrics")
        assert code == 200
        assert 'edge_controller_battery_soc_percent{battery="21"}' in body
        assert "edge_controller_dispatches_running 1.0" in body
        # Each use case through its status: the one dispatch it runs and its events.
        labels = 'kind="battery_power",use_case="main"'
        assert f"edge_controller_use_case_dispatches_running{{{labels}}} 1.0" in body
        assert f'edge_controller_use_case_events_total{{event="started",{labels}}} 1.0' in body
        assert 'kind="success"' in body
        code, body = await asyncio.to_thread(http_get, f"{base}/healthz")
        assert (code, body.strip()) == (200, "ok")

        # A live edit through a new drop-in: the power limit applies without a restart.
        (drop_ins / "50-limit.toml").write_text('[controls]\npower_limit = "20 kW"\n')
        await power_reaches(sim, 20, -20_000, 10)
        await notify.wait_for("RELOADING=1")
        await logs.wait_for("config_applied")
        _, body = await asyncio.to_thread(http_get, f"{base}/metrics")
        assert (
            'edge_controller_site_events_total{event="power_limited",source="power_distributing"}'
            in body
        )
        assert "edge_controller_grid_power_watts " in body

        # A bad edit is rejected with its file and key; the limit stays in force.
        (drop_ins / "60-typo.toml").write_text('[controls]\nmode = "obsrve"\n')
        rejected = await logs.wait_for("config_rejected")
        problems = rejected["problems"]
        assert isinstance(problems, list)
        assert any("60-typo.toml: controls.mode" in p for p in problems)
        assert sim.model.ac_power_w(20) == pytest.approx(-20_000, abs=100)

        # SIGHUP re-reads at once, e.g. after the typo is fixed and the limit removed.
        (drop_ins / "60-typo.toml").unlink()
        (drop_ins / "50-limit.toml").write_text("")
        process.send_signal(signal.SIGHUP)
        await power_reaches(sim, 20, -60_000, 10)
        assert logs.events("reload_requested")
        # The watchdog is fed from the event loop while the graph runs.
        assert notify.drain().count("WATCHDOG=1") >= 2
    finally:
        process.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(process.wait(), 10)
    assert code == 0
    assert sim.model.ac_power_w(20) == 0.0  # released on the way out
    await notify.wait_for("STOPPING=1", 1)
    stopped = logs.events("daemon_stopping")
    assert stopped
    assert stopped[0]["reason"] == "SIGTERM"
    assert not any(KEY in line for line in logs.lines)


async def test_a_bad_config_exits_2_with_every_problem(tmp_path: Path) -> None:
    config = tmp_path / "controller.toml"
    config.write_text('[microgrid]\nurl = "http://x"\n[controls]\nmode = "drive"\n')
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "edge_controller.tools.cli",
        "run",
        "--config",
        str(config),
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await process.communicate()
    assert process.returncode == 2
    text = err.decode()
    assert "controller.toml: microgrid.url: expected a grpc://HOST:PORT URL" in text
    assert "got 'http://x'" in text
    assert "controller.toml: controls.mode: expected 'control' or 'observe', got 'drive'" in text
