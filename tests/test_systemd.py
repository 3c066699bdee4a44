from __future__ import annotations

import asyncio
import itertools
import os
import socket
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import structlog

from edge_controller.common.systemd import Notifier, watchdog_pings

WATCHDOG_USEC = 200_000  # 0.2 s: pings every 0.1 s


class FakeSystemd:
    """The receiving end of NOTIFY_SOCKET, as PID 1 holds it."""

    def __init__(self, address: str, bind_address: str) -> None:
        self.address = address  # what NOTIFY_SOCKET holds
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(bind_address)
        self.sock.setblocking(False)

    def environ(self, **extra: str) -> dict[str, str]:
        return {"NOTIFY_SOCKET": self.address, **extra}

    def messages(self) -> list[str]:
        """Every datagram received so far, decoded."""
        received: list[str] = []
        while True:
            try:
                received.append(self.sock.recv(4096).decode())
            except BlockingIOError:
                return received

    async def collect(self, into: list[tuple[float, str]]) -> None:
        """Receive datagrams with their arrival time on the loop's clock, until cancelled."""
        loop = asyncio.get_running_loop()
        while True:
            data = await loop.sock_recv(self.sock, 4096)
            into.append((loop.time(), data.decode()))


@pytest.fixture
def fake_systemd(tmp_path: Path) -> Iterator[FakeSystemd]:
    path = str(tmp_path / "notify.sock")
    fake = FakeSystemd(path, path)
    yield fake
    fake.sock.close()


@pytest.fixture
def abstract_systemd() -> Iterator[FakeSystemd]:
    name = f"edge-controller-test-{uuid.uuid4().hex}"
    fake = FakeSystemd(f"@{name}", f"\0{name}")
    yield fake
    fake.sock.close()


def test_ready_status_stopping_arrive_as_exact_datagrams(fake_systemd: FakeSystemd) -> None:
    with Notifier.from_environment(fake_systemd.environ()) as notifier:
        assert notifier.enabled
        assert notifier.ready("running 1 use case")
        assert notifier.status("dispatch service unreachable, running from cache")
        assert notifier.ready()
        assert notifier.stopping("releasing batteries")
        assert notifier.stopping()
        assert notifier.notify(STATUS="x", ERRNO=5)
        assert notifier.send("FDSTORE=0", "STATUS=two\nlines")
    assert fake_systemd.messages() == [
        "READY=1\nSTATUS=running 1 use case",
        "STATUS=dispatch service unreachable, running from cache",
        "READY=1",
        "STOPPING=1\nSTATUS=releasing batteries",
        "STOPPING=1",
        "STATUS=x\nERRNO=5",
        "FDSTORE=0\nSTATUS=two lines",  # a newline in a value would start a new field
    ]


def test_abstract_namespace_socket(abstract_systemd: FakeSystemd) -> None:
    with Notifier.from_environment(abstract_systemd.environ()) as notifier:
        assert notifier.ready("up")
    assert abstract_systemd.messages() == ["READY=1\nSTATUS=up"]


def test_reloading_carries_the_monotonic_clock(fake_systemd: FakeSystemd) -> None:
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    with Notifier.from_environment(fake_systemd.environ()) as notifier:
        notifier.reloading("re-reading configuration")
    after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    [message] = fake_systemd.messages()
    reloading, monotonic, status = message.split("\n")
    assert reloading == "RELOADING=1"
    assert monotonic.startswith("MONOTONIC_USEC=")
    assert before <= int(monotonic.removeprefix("MONOTONIC_USEC=")) <= after
    assert status == "STATUS=re-reading configuration"


def test_watchdog_interval_from_the_environment(fake_systemd: FakeSystemd) -> None:
    own = {"WATCHDOG_USEC": str(WATCHDOG_USEC)}
    assert Notifier.from_environment(fake_systemd.environ(**own)).watchdog_interval == (
        timedelta(milliseconds=200)
    )
    mine = {**own, "WATCHDOG_PID": str(os.getpid())}
    assert Notifier.from_environment(fake_systemd.environ(**mine)).watchdog_interval == (
        timedelta(milliseconds=200)
    )
    assert Notifier.from_environment(fake_systemd.environ()).watchdog_interval is None
    assert Notifier.from_environment(own).watchdog_interval is None  # nowhere to ping
    for bad in ("0", "-5", "soon"):
        environ = fake_systemd.environ(WATCHDOG_USEC=bad)
        assert Notifier.from_environment(environ).watchdog_interval is None


async def test_watchdog_pings_every_half_interval(fake_systemd: FakeSystemd) -> None:
    environ = fake_systemd.environ(WATCHDOG_USEC=str(WATCHDOG_USEC), WATCHDOG_PID=str(os.getpid()))
    received: list[tuple[float, str]] = []
    collector = asyncio.create_task(fake_systemd.collect(received))
    with Notifier.from_environment(environ) as notifier:
        pinger = asyncio.create_task(watchdog_pings(notifier))
        await asyncio.sleep(0.55)
        pinger.cancel()
        await asyncio.sleep(0.02)
    collector.cancel()
    assert {message for _, message in received} == {"WATCHDOG=1"}
    assert 5 <= len(received) <= 7  # at 0, 0.1, ... 0.5 s
    gaps = [later - earlier for (earlier, _), (later, _) in itertools.pairwise(received)]
    assert max(gaps) < 0.2, gaps  # 0.2 s without a ping = restart
    assert sum(gaps) / len(gaps) == pytest.approx(0.1, abs=0.02)
    assert pinger.cancelled()


async def test_no_pings_while_the_heartbeat_is_not_ok(fake_systemd: FakeSystemd) -> None:
    environ = fake_systemd.environ(WATCHDOG_USEC=str(WATCHDOG_USEC))
    healthy = False
    received: list[tuple[float, str]] = []
    collector = asyncio.create_task(fake_systemd.collect(received))
    with (
        structlog.testing.capture_logs() as logs,
        Notifier.from_environment(environ) as notifier,
    ):
        pinger = asyncio.create_task(watchdog_pings(notifier, lambda: healthy))
        await asyncio.sleep(0.35)
        assert received == []
        healthy = True
        await asyncio.sleep(0.25)
        pinger.cancel()
        await asyncio.sleep(0.02)
    collector.cancel()
    assert 1 <= len(received) <= 4
    events = [entry["event"] for entry in logs]
    assert events == [
        "systemd_watchdog_started",
        "systemd_watchdog_ping_skipped",
        "systemd_watchdog_resumed",
    ]


async def test_a_raising_heartbeat_skips_the_ping_and_keeps_running(
    fake_systemd: FakeSystemd,
) -> None:
    environ = fake_systemd.environ(WATCHDOG_USEC=str(WATCHDOG_USEC))
    calls = 0
    answered_ok = asyncio.Event()

    def heartbeat_ok() -> bool:
        nonlocal calls
        calls += 1
        if calls <= 2:
            raise RuntimeError("graph state unreadable")
        answered_ok.set()
        return calls == 3  # exactly one ping, however slow the machine

    with Notifier.from_environment(environ) as notifier:
        pinger = asyncio.create_task(watchdog_pings(notifier, heartbeat_ok))
        await asyncio.wait_for(answered_ok.wait(), timeout=5)
        pinger.cancel()
    assert fake_systemd.messages() == ["WATCHDOG=1"]


async def test_watchdog_of_another_process_is_not_ours(fake_systemd: FakeSystemd) -> None:
    environ = fake_systemd.environ(WATCHDOG_USEC=str(WATCHDOG_USEC), WATCHDOG_PID="1")
    with Notifier.from_environment(environ) as notifier:
        assert notifier.watchdog_interval is None
        # Returns at once instead of pinging for a watchdog that is someone else's.
        await asyncio.wait_for(watchdog_pings(notifier, lambda: True), timeout=1)
        assert not notifier.watchdog()
        assert notifier.ready()
    assert fake_systemd.messages() == ["READY=1"]


async def test_without_notify_socket_everything_is_a_no_op(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def no_socket(*args: object, **kwargs: object) -> socket.socket:
        raise AssertionError("no socket may be opened outside systemd")

    monkeypatch.setattr(socket, "socket", no_socket)
    notifier = Notifier.from_environment({"WATCHDOG_USEC": str(WATCHDOG_USEC)})
    assert not notifier.enabled
    assert notifier.watchdog_interval is None
    assert not notifier.ready("up")
    assert not notifier.status("x")
    assert not notifier.reloading()
    assert not notifier.stopping()
    assert not notifier.watchdog()
    assert not notifier.notify(READY=1)
    await asyncio.wait_for(watchdog_pings(notifier), timeout=1)
    notifier.close()
    assert Notifier.from_environment({}).enabled is False
    assert Notifier(None).send("READY=1") is False


def test_a_vanished_socket_is_logged_once_and_never_raised(fake_systemd: FakeSystemd) -> None:
    with (
        structlog.testing.capture_logs() as logs,
        Notifier.from_environment(fake_systemd.environ()) as notifier,
    ):
        fake_systemd.sock.close()
        os.unlink(fake_systemd.address)
        assert not notifier.ready()
        assert not notifier.status("x")
        assert not notifier.stopping()
        assert [entry["event"] for entry in logs] == ["systemd_notify_failed"]
        assert logs[0]["notify_socket"] == fake_systemd.address
        # The socket comes back (PID 1 re-executed): delivered again, and said so.
        fake_systemd.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        fake_systemd.sock.bind(fake_systemd.address)
        fake_systemd.sock.setblocking(False)
        assert notifier.status("back")
        assert [entry["event"] for entry in logs][1:] == ["systemd_notify_recovered"]
    assert fake_systemd.messages() == ["STATUS=back"]


def test_unsupported_addresses() -> None:
    with structlog.testing.capture_logs() as logs:
        assert not Notifier.from_environment({"NOTIFY_SOCKET": "vsock:2:1234"}).enabled
    assert logs[0]["event"] == "systemd_notify_socket_unsupported"
    with pytest.raises(ValueError, match="absolute path or @name"):
        Notifier("relative.sock")
    with pytest.raises(ValueError, match="positive"):
        Notifier("/run/x.sock", watchdog_interval=timedelta(0))
