"""A daemon with its web console on a free loopback port, beside the simulator and the
dispatch service; users of every role; HTTP clients logged in as each.

`console_running(example_site, tmp_path)` is the async form (API tests);
`ConsoleThread` runs the same in a thread of its own, for tests that block (Selenium).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from edge_controller.common.systemd import Notifier
from edge_controller.config.files import load
from edge_controller.daemon.console.server import Console
from edge_controller.daemon.run import Daemon
from edge_controller.servers.common.users import ROLES, Users
from edge_controller.servers.dispatch.server import DispatchServer
from edge_controller.servers.sim.server import SimulatorServer
from edge_controller.servers.sim.site import SiteSpec
from tests import patience
from tests.harness import KEY, stream_connected
from tests.loop_thread import LoopThread

PASSWORD = "correct horse battery"
"""Every test user's password; user names are the roles (`guest`, ..., `admin`)."""


@dataclass
class ConsoleSite:
    sim: SimulatorServer
    dispatch: DispatchServer
    daemon: Daemon
    config_path: Path

    @property
    def console(self) -> Console:
        assert self.daemon.console is not None
        return self.daemon.console

    @property
    def url(self) -> str:
        return self.console.url

    def power(self, *inverters: int) -> float:
        return sum(self.sim.model.ac_power_w(i) for i in inverters)

    @contextlib.asynccontextmanager
    async def client(self, role: str | None = None) -> AsyncIterator[Client]:
        """An HTTP client, logged in as the user `role` (None: not logged in)."""
        async with aiohttp.ClientSession(
            self.url, cookie_jar=aiohttp.CookieJar(unsafe=True)
        ) as session:
            client = Client(session)
            if role is not None:
                await client.login(role, PASSWORD)
            yield client


@dataclass
class Client:
    session: aiohttp.ClientSession
    csrf: str = ""

    async def login(self, name: str, password: str) -> aiohttp.ClientResponse:
        async with self.session.post(
            "/api/login", json={"name": name, "password": password}
        ) as response:
            await response.read()
            if response.status == 200:
                self.csrf = (await response.json())["csrf"]
            return response

    async def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        headers = {"X-CSRF-Token": self.csrf} if self.csrf else {}
        async with self.session.request(method, path, json=body, headers=headers) as response:
            if response.content_type == "application/json":
                return response.status, await response.json()
            return response.status, await response.text()


def write_users(path: Path) -> None:
    users = Users(path)
    for role in ROLES:
        users.add(role, role, PASSWORD)
    users.save()


def write_config(tmp_path: Path, sim: SimulatorServer, dispatch: DispatchServer) -> Path:
    (tmp_path / "key").write_text(KEY)
    path = tmp_path / "controller.toml"
    path.write_text(
        f'[microgrid]\nurl = "{sim.url}"\nid = 1\n'
        f'[dispatch]\nurl = "{dispatch.url}"\nkey_file = "key"\n'
        "[power_distribution]\nresolutions = { 10 = 88, 20 = 100, 30 = 50, 40 = 88 }\n"
        '[metrics]\nlisten = ""\n'
        '[http]\nlisten = "127.0.0.1:0"\nusers_file = "users.json"\n'
        'history_file = "history.sqlite3"\nhistory_interval = 1\n'
        '[[use_cases]]\nkind = "battery_power"\nname = "main"\n'
    )
    write_users(tmp_path / "users.json")
    return path


@contextlib.asynccontextmanager
async def console_running(
    example_site: SiteSpec, tmp_path: Path, *, speed: float = 1.0, signals: bool = True
) -> AsyncIterator[ConsoleSite]:
    """The whole chain with the daemon (watching its config every 0.1 s) and its console.

    `signals=False` for a loop outside the main thread (which cannot take handlers).
    """
    tmp_path.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 - test set-up
    async with (
        SimulatorServer(example_site, speed=speed) as sim,
        DispatchServer(tmp_path / "dispatches.db", keys=frozenset({KEY})) as dispatch,
    ):
        path = write_config(tmp_path, sim, dispatch)
        daemon = Daemon(path, load(path), notifier=Notifier(None), watch_interval_s=0.1)
        if not signals:
            no_handlers: Any = lambda _loop: None  # noqa: E731
            daemon._install_signals = no_handlers  # type: ignore[method-assign]
            daemon._remove_signals = no_handlers  # type: ignore[method-assign]
        running = asyncio.create_task(daemon.run())
        try:
            await patience.until(
                lambda: daemon.console is not None or running.done(), "the console listens"
            )
            assert daemon.console is not None, "the daemon ended before its console started"
            await stream_connected(dispatch, 20)
            yield ConsoleSite(sim, dispatch, daemon, path)
        finally:
            daemon.request_stop("test over")
            await running


class ConsoleThread(LoopThread[ConsoleSite]):
    """`console_running` on an event loop in a thread (for blocking test code).

    ```python
    with ConsoleThread(example_site, tmp_path) as site:
        driver.get(site.url)
    ```
    `thread.call(coroutine)` runs a coroutine on that loop and returns its result.
    """

    def __init__(self, example_site: SiteSpec, tmp_path: Path, *, speed: float = 1.0) -> None:
        super().__init__(
            lambda: console_running(example_site, tmp_path, speed=speed, signals=False),
            name="console site",
            ready_s=120,
            call_s=60,
        )
