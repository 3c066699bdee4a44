"""Case 12: start-up and resources — what the daemon does with odd files, early
signals, a full disk, idle connections, and how the units cap it (issue 16, items 5-6).

Each case starts the real parts where the fault lives: `edge-controller run` /
`check-config` as child processes (the way systemd runs them), the dispatch cache on
disk, the metrics server on a free loopback port, the dispatch service's interceptor
with a real client.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
from frequenz.api.dispatch.v1 import dispatch_pb2, dispatch_pb2_grpc
from frequenz.client.dispatch import DispatchApiClient
from frequenz.client.dispatch.types import TargetIds

from edge_controller.daemon.metrics import (
    IDLE_TIMEOUT_S,
    MAX_WORKERS,
    Health,
    Metrics,
    MetricsServer,
)
from edge_controller.servers.dispatch.server import DispatchServer
from edge_controller.servers.sim.server import SimulatorServer
from tests.daemon.test_daemon_process import Logs, Notifications, http_get
from tests.harness import COMMAND, KEY, MICROGRID, stream_connected
from tests.patience import PATIENCE_S, until
from tests.reliability.helpers import DaemonProcess, write_daemon_config

# ------------------------------------------------------------------ key_file


def _check_config(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*COMMAND, "check-config", str(config)], capture_output=True, text=True, timeout=60
    )


async def test_a_key_file_with_comments_is_read_as_the_service_reads_its_keys_file(
    servers: tuple[SimulatorServer, DispatchServer], tmp_path: Path
) -> None:
    sim, dispatch = servers
    config = write_daemon_config(tmp_path, sim.url, dispatch.url)
    (tmp_path / "key").write_text(f"# issued 2026-11 for site 1\n\n{KEY}\n# rotate by 2027\n")
    assert _check_config(config).returncode == 0
    daemon = DaemonProcess(config, tmp_path)
    try:
        await daemon.start()  # READY=1: the key reached the service and was accepted
        assert await daemon.signal(signal.SIGTERM) == 0
    finally:
        await daemon.close()


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("# only a comment\n", "holds no key (only blank lines or # comments)"),
        ("one\ntwo\n", "holds 2 keys"),
        ("ключ\n", "line 1: expected the API key as one word of printable ASCII"),
        ("a key with spaces\n", "line 1: expected the API key as one word of printable ASCII"),
    ],
)
def test_a_key_run_cannot_send_is_refused_by_check_config_and_run_alike(
    tmp_path: Path, text: str, problem: str
) -> None:
    # No servers: a key refused by the check never gets as far as connecting.
    config = write_daemon_config(tmp_path, "grpc://127.0.0.1:1?ssl=false", "grpc://127.0.0.1:2")
    (tmp_path / "key").write_text(text, encoding="utf-8")
    checked = _check_config(config)
    assert checked.returncode == 2
    assert f"dispatch.key_file: '{tmp_path / 'key'}' {problem}" in checked.stdout
    ran = subprocess.run(
        [*COMMAND, "run", "--config", str(config)], capture_output=True, text=True, timeout=60
    )
    assert ran.returncode == 2  # a bad config: systemd does not restart it
    assert "Traceback" not in ran.stderr
    assert problem in ran.stderr
    assert text.strip().splitlines()[-1] not in ran.stderr + checked.stdout  # never the key


# ------------------------------------------------------------------ the dispatch cache

_SAVED_AT = '"saved_at": "2026-11-30T12:00:00+00:00"'
CORRUPT_CACHES = {
    # A file some other program wrote, or nested by a hand edit: the JSON parser's
    # recursion limit.
    "deep_nesting": (
        "{" + f'"version": 1, {_SAVED_AT}, "dispatches": ' + "[" * 100_000 + "]" * 100_000 + "}"
    ).encode(),
    # A disk that lost a block: bytes that are not UTF-8.
    "bad_utf8": b'{"version": 1, "saved_at": "\xff\xfe", "dispatches": []}',
    # A damaged dispatch: a length-delimited field running past the message's end.
    "bad_protobuf_field": (
        "{" + f'"version": 1, {_SAVED_AT}, "dispatches": ["' + "CgX/////" + '"]}'
    ).encode(),
}


@pytest.mark.parametrize("content", CORRUPT_CACHES.values(), ids=CORRUPT_CACHES.keys())
async def test_a_corrupt_dispatch_cache_is_unusable_not_a_traceback(
    servers: tuple[SimulatorServer, DispatchServer], tmp_path: Path, content: bytes
) -> None:
    sim, _dispatch = servers
    config = write_daemon_config(tmp_path, sim.url, "grpc://127.0.0.1:1?ssl=false")
    config.write_text(
        config.read_text().replace(
            'key_file = "key"\n', 'key_file = "key"\nstartup_timeout = 1\ncache_file = "c.json"\n'
        )
    )
    (tmp_path / "c.json").write_bytes(content)
    process = await asyncio.create_subprocess_exec(
        *COMMAND, "run", "--config", str(config), stderr=asyncio.subprocess.PIPE
    )
    _out, err = await asyncio.wait_for(process.communicate(), PATIENCE_S)
    stderr = err.decode()
    # Started without the cache: with the dispatch service unreachable too, that is the
    # ordinary "cannot start yet" (exit 1, systemd retries), said in log lines.
    assert process.returncode == 1, stderr[-2000:]
    assert "Traceback" not in stderr
    records = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    unusable = [r for r in records if r["event"] == "dispatch_cache_unusable"]
    assert len(unusable) == 1, stderr[-2000:]
    assert unusable[0]["level"] == "warning"
    assert unusable[0]["path"] == str(tmp_path / "c.json")
    assert str(tmp_path / "c.json") in unusable[0]["problem"]
    assert "start_failed" in [r["event"] for r in records if r["level"] == "error"]


# ------------------------------------------------------------------ early SIGHUP


def _maps(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return ""


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="needs /proc")
async def test_a_sighup_while_the_daemon_is_still_starting_is_remembered_not_fatal(
    servers: tuple[SimulatorServer, DispatchServer], tmp_path: Path
) -> None:
    sim, dispatch = servers
    config = write_daemon_config(tmp_path, sim.url, dispatch.url)
    daemon = DaemonProcess(config, tmp_path)
    starting = asyncio.create_task(daemon.start())
    try:
        await until(lambda: daemon.process is not None, "the process is spawned")
        process = daemon.process
        assert process is not None
        # The moment the heavy imports are under way (numpy's core is mapped): long
        # before the daemon is ready, which is when `systemctl reload` may come.
        await until(
            lambda: "_multiarray_umath" in _maps(process.pid) or process.returncode is not None,
            "numpy is being imported",
            poll_s=0.002,
        )
        process.send_signal(signal.SIGHUP)
        await starting  # READY=1: it survived
        assert daemon.logs is not None
        early = await daemon.logs.wait_for("reload_requested")
        assert early["before_start"] is True
        # The reload it asked for happened, as for a SIGHUP at any later time.
        reading = await daemon.logs.wait_for("config_reading")
        assert reading["reason"] == "signal"
        assert await daemon.signal(signal.SIGTERM) == 0
    finally:
        starting.cancel()
        with contextlib.suppress(BaseException):
            await starting
        await daemon.close()


# ------------------------------------------------------------------ a disk that refuses


async def _metrics_address(daemon: DaemonProcess) -> str:
    assert daemon.logs is not None
    return str((await daemon.logs.wait_for("metrics_listening"))["address"])


async def _get(url: str) -> tuple[int, str]:
    return await asyncio.to_thread(http_get, url)


def _sample(metrics_text: str, name: str) -> float:
    for line in metrics_text.splitlines():
        if line.startswith(f"{name} "):
            return float(line.split()[1])
    raise AssertionError(f"no sample {name}")


async def test_a_cache_on_a_full_disk_is_logged_once_shown_in_healthz_and_counted(
    servers: tuple[SimulatorServer, DispatchServer], tmp_path: Path
) -> None:
    sim, dispatch = servers
    config = write_daemon_config(tmp_path, sim.url, dispatch.url)
    text = config.read_text().replace('listen = ""', 'listen = "127.0.0.1:0"')
    config.write_text(
        text.replace('key_file = "key"\n', 'key_file = "key"\ncache_file = "c.json"\n')
    )
    # Every write of the cache goes to its temporary file first: /dev/full answers
    # each write with ENOSPC, as a full disk does.
    (tmp_path / "c.json.tmp").symlink_to("/dev/full")
    daemon = DaemonProcess(config, tmp_path)
    try:
        await daemon.start()
        assert daemon.logs is not None
        base = f"http://{await _metrics_address(daemon)}"
        await stream_connected(dispatch)
        client = DispatchApiClient(server_url=dispatch.url, auth_key=KEY)
        start = datetime.now(UTC) + timedelta(hours=1)
        for minute in range(25):
            await client.create(
                microgrid_id=MICROGRID,
                type="BATTERY_POWER",
                start_time=start + timedelta(minutes=minute),
                duration=timedelta(minutes=1),
                target=TargetIds(21),
                payload={"power_w": -1000.0},
            )

        async def failures() -> float:
            _status, body = await _get(f"{base}/metrics")
            return _sample(body, "edge_controller_dispatch_cache_write_failures_total")

        failed = 0.0
        async with asyncio.timeout(PATIENCE_S):
            while (failed := await failures()) < 25:
                await asyncio.sleep(0.05)
        _status, body = await _get(f"{base}/metrics")
        assert _sample(body, "edge_controller_dispatch_cache_write_ok") == 0.0
        # One line for 25 (or more) failures.
        assert len(daemon.logs.events("dispatch_cache_not_saved")) == 1
        line = daemon.logs.events("dispatch_cache_not_saved")[0]
        assert line["path"] == str(tmp_path / "c.json")
        assert line["error"] == "No space left on device"
        # Still doing its job: 200, and the reason for whoever reads the body.
        status, health = await _get(f"{base}/healthz")
        assert status == 200
        assert health.splitlines() == [
            "ok",
            f"degraded: dispatch cache not saved: {tmp_path / 'c.json'}: No space left on device",
        ]

        # Room again: the next change is saved, and the summary counts what was not logged.
        (tmp_path / "c.json.tmp").unlink()
        await client.create(
            microgrid_id=MICROGRID,
            type="BATTERY_POWER",
            start_time=start + timedelta(minutes=30),
            duration=timedelta(minutes=1),
            target=TargetIds(21),
            payload={"power_w": -1000.0},
        )
        again = await daemon.logs.wait_for("dispatch_cache_saved_again")
        assert again["failures_not_logged"] == failed - 1
        assert await _get(f"{base}/healthz") == (200, "ok\n")
        _status, body = await _get(f"{base}/metrics")
        assert _sample(body, "edge_controller_dispatch_cache_write_ok") == 1.0
        assert (tmp_path / "c.json").exists()
        assert await daemon.signal(signal.SIGTERM) == 0
    finally:
        await daemon.close()


# ------------------------------------------------------------------ /metrics connections


def _idle_connections(address: str, count: int) -> list[socket.socket]:
    host, port = address.rsplit(":", 1)
    return [socket.create_connection((host, int(port)), timeout=5) for _ in range(count)]


def _new_threads(before: set[threading.Thread]) -> list[str]:
    """Threads started since `before`, but asyncio's own (`asyncio.to_thread` here)."""
    return [
        t.name for t in set(threading.enumerate()) - before if not t.name.startswith("asyncio_")
    ]


async def test_300_idle_connections_to_metrics_hold_no_threads_and_healthz_answers() -> None:
    health = Health(lambda: True)
    health.graph_running = True
    health.beat()
    before = set(threading.enumerate())
    async with MetricsServer("127.0.0.1:0", Metrics(), health) as server:
        idle = await asyncio.to_thread(_idle_connections, server.address, 300)
        try:
            # The server's thread and at most its pool, whatever the connections.
            assert len(_new_threads(before)) <= 1 + MAX_WORKERS
            started = time.monotonic()
            assert await _get(f"http://{server.address}/healthz") == (200, "ok\n")
            # Answered while the 300 are open, not once they timed out.
            assert time.monotonic() - started < IDLE_TIMEOUT_S
            assert len(_new_threads(before)) <= 1 + MAX_WORKERS
        finally:
            for connection in idle:
                connection.close()


async def test_an_idle_connection_to_metrics_is_closed_after_the_timeout() -> None:
    async with MetricsServer(
        "127.0.0.1:0", Metrics(), Health(lambda: True), idle_timeout_s=0.3
    ) as server:
        (idle,) = await asyncio.to_thread(_idle_connections, server.address, 1)
        with idle:
            # recv returns b"" once the server closed it (5 s socket timeout otherwise).
            assert await asyncio.to_thread(idle.recv, 1) == b""
        # A request that stalls half-way is cut off the same way.
        (slow,) = await asyncio.to_thread(_idle_connections, server.address, 1)
        with slow:
            slow.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
            reply = await asyncio.to_thread(slow.recv, 65536)
            assert reply == b"" or b" 408 " in reply.split(b"\r\n")[0]


# ------------------------------------------------------------------ refused keys


async def _dispatch_server(tmp_path: Path, *flags: str) -> tuple[asyncio.subprocess.Process, str]:
    process = await asyncio.create_subprocess_exec(
        *COMMAND,
        "dispatch-server",
        "--db",
        str(tmp_path / "d.sqlite"),
        *flags,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    first = (await asyncio.wait_for(process.stdout.readline(), PATIENCE_S)).decode()
    assert first.startswith("listening address="), first
    return process, first.removeprefix("listening address=").strip()


async def test_a_client_retrying_a_wrong_key_is_logged_once_then_counted(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.write_text(f"{KEY}\n")
    keys.chmod(0o600)
    process, address = await _dispatch_server(tmp_path, "--keys-file", str(keys))
    assert process.stderr is not None
    logs = Logs(process.stderr)
    request = dispatch_pb2.ListMicrogridDispatchesRequest(microgrid_id=1)
    try:
        # Two connections from the same address: a client that reconnects is the same.
        for _channel in range(2):
            async with grpc.aio.insecure_channel(address) as channel:
                stub = dispatch_pb2_grpc.MicrogridDispatchServiceStub(channel)
                for _ in range(300):
                    with pytest.raises(grpc.aio.AioRpcError) as caught:
                        await stub.ListMicrogridDispatches(
                            request, metadata=[("key", "not-the-key-7f3a")]
                        )
                    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    finally:
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), PATIENCE_S) == 0
    await until(lambda: bool(logs.events("dispatch_server_stopped")), "the last log line")
    refused = logs.events("request_unauthenticated")
    assert len(refused) == 1, len(refused)
    assert refused[0]["peer"] == "ipv4:127.0.0.1"
    assert refused[0]["key_sent"] is True
    assert "not-the-key-7f3a" not in "".join(logs.lines)


# ------------------------------------------------------------------ the units

UNITS = sorted(Path(__file__).parents[2].joinpath("deploy", "systemd").glob("*.service"))


def _settings(unit: Path) -> dict[str, dict[str, str]]:
    """Section -> key -> value (the last one; continuation lines joined)."""
    sections: dict[str, dict[str, str]] = {}
    section = ""
    lines = unit.read_text().replace("\\\n", " ").splitlines()
    for line in lines:
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
        elif "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            sections.setdefault(section, {})[key] = value
    return sections


@pytest.mark.parametrize("unit", UNITS, ids=[u.name for u in UNITS])
def test_every_unit_caps_memory_tasks_restarts_and_is_watched(unit: Path) -> None:
    settings = _settings(unit)
    service = settings["Service"]
    assert {"StartLimitIntervalSec", "StartLimitBurst"} <= settings["Unit"].keys()
    assert {"MemoryMax", "TasksMax", "OOMPolicy", "WatchdogSec"} <= service.keys()
    assert service["OOMPolicy"] == "stop"
    assert service["Restart"] == "on-failure"
    # WATCHDOG=1 from a Type=exec service counts only with NotifyAccess set.
    assert service.get("NotifyAccess") == "main"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_every_unit_passes_systemd_analyze_verify_and_security() -> None:
    # .ci/check-units: verify prints nothing (an unknown or misspelt key is a warning
    # there), exposure at most 2.0.
    script = Path(__file__).parents[2] / ".ci" / "check-units"
    checked = subprocess.run([str(script)], capture_output=True, text=True, timeout=120)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert sorted(line.split()[1].rstrip(":") for line in checked.stdout.splitlines()) == [
        u.name for u in UNITS
    ]


@pytest.mark.parametrize("command", ["sim", "dispatch-server"])
async def test_the_simulator_and_the_dispatch_service_ping_the_watchdog(
    tmp_path: Path, command: str
) -> None:
    notify = Notifications(tmp_path / "notify.sock")
    flags = (
        ["--site", str(Path(__file__).parents[2] / "config" / "sim-site.toml")]
        if command == "sim"
        else ["--db", str(tmp_path / "d.sqlite"), "--no-auth"]
    )
    environ = {**os.environ, "NOTIFY_SOCKET": str(tmp_path / "notify.sock")}
    environ.update(WATCHDOG_USEC="200000")  # 0.2 s: a ping every 0.1 s
    environ.pop("WATCHDOG_PID", None)
    process = await asyncio.create_subprocess_exec(
        *COMMAND, command, *flags, "--listen", "127.0.0.1:0", env=environ
    )
    try:
        await until(lambda: notify.drain().count("WATCHDOG=1") >= 3, "three watchdog pings")
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), PATIENCE_S) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        notify.socket.close()


# ------------------------------------------------------------------ file modes


async def test_the_dispatch_database_is_created_0600_whatever_the_umask(tmp_path: Path) -> None:
    # The default umask (0022 here) and no systemd: what a lab machine has.
    process, address = await _dispatch_server(tmp_path, "--no-auth", "--listen", "127.0.0.1:0")
    try:
        async with grpc.aio.insecure_channel(address) as channel:
            stub = dispatch_pb2_grpc.MicrogridDispatchServiceStub(channel)
            await stub.ListMicrogridDispatches(
                dispatch_pb2.ListMicrogridDispatchesRequest(microgrid_id=1)
            )
    finally:
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), PATIENCE_S) == 0
    modes = _modes(tmp_path, "d.sqlite*")
    assert "d.sqlite" in modes
    assert modes == dict.fromkeys(modes, "0600")


def _modes(directory: Path, pattern: str) -> dict[str, str]:
    return {f.name: f"{stat.S_IMODE(f.stat().st_mode):04o}" for f in directory.glob(pattern)}


@pytest.mark.parametrize("command", ["dispatch-server", "market-server"])
async def test_a_keys_file_others_may_read_is_named_in_a_warning(
    tmp_path: Path, command: str
) -> None:
    keys = tmp_path / "keys"
    keys.write_text(f"{KEY}\n")
    keys.chmod(0o644)
    flags = ["--keys-file", str(keys), "--listen", "127.0.0.1:0"]
    if command == "dispatch-server":
        process, _address = await _dispatch_server(tmp_path, *flags)
    else:
        process = await asyncio.create_subprocess_exec(
            *COMMAND,
            command,
            *flags,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        assert process.stdout is not None
        await asyncio.wait_for(process.stdout.readline(), PATIENCE_S)
    assert process.stderr is not None
    logs = Logs(process.stderr)
    try:
        warning = await logs.wait_for("keys_file_readable_by_others")
    finally:
        process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.wait(), PATIENCE_S)
    assert warning["level"] == "warning"
    assert warning["file"] == str(keys)
    assert warning["mode"] == "0644"
    assert warning["fix"] == f"chmod 600 {keys}"


def test_a_keys_file_others_may_write_is_refused_naming_it_and_its_mode(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.write_text(f"{KEY}\n")
    keys.chmod(0o666)
    refused = subprocess.run(
        [*COMMAND, "dispatch-server", "--db", str(tmp_path / "d.sqlite"), "--keys-file", str(keys)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines() == [
        f"edge-controller dispatch-server: --keys-file {keys}: mode 0666 lets others write "
        f"it, so anyone could add a key; expected 0600 (chmod 600 {keys})"
    ]
