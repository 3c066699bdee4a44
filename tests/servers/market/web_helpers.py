"""A market server with its REST API and dashboard on free loopback ports, on a manual
clock; users of every market role; HTTP clients logged in as each.

`market_running(tmp_path)` is the async form (API tests); `MarketThread` runs the same
on a loop in a thread of its own, for tests that block (Selenium). Time moves only
when a test says so: `advance(minutes)` leaps the clock and clears every period whose
gate has closed, so a day of periods takes milliseconds.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp

from edge_controller.common.clock import ManualClock
from edge_controller.servers.common.users import MARKET_ROLES, Users
from edge_controller.servers.market.clearing import PeriodRecord
from edge_controller.servers.market.server import HttpSettings, MarketServer
from tests.console.helpers import PASSWORD, Client
from tests.loop_thread import LoopThread

START = datetime(2026, 6, 21, 6, 0, tzinfo=UTC)
"""A summer morning (08:00 in Berlin): the default market needs its coal plant all day."""
OWNER = "prosumer"
"""The `prosumer` user owns the default market's `wind homes`; `neighbour` owns none."""


def write_users(path: Path) -> None:
    """One user per market role, named as the role, and a second prosumer `neighbour`."""
    users = Users(path, roles=MARKET_ROLES)
    for role in MARKET_ROLES:
        users.add(role, role, PASSWORD)
    users.add("neighbour", "prosumer", PASSWORD)
    users.save()


@dataclass
class MarketSite:
    server: MarketServer
    clock: ManualClock

    @property
    def url(self) -> str:
        assert self.server.http is not None
        return self.server.http.url

    def advance(self, minutes: float) -> list[PeriodRecord]:
        """Leap the clock and clear what is due (call on the server's loop)."""
        self.clock.advance(timedelta(minutes=minutes))
        return self.server.clear_due()

    @contextlib.asynccontextmanager
    async def client(self, role: str | None = None) -> AsyncIterator[Client]:
        """An HTTP client, logged in as the user `role` (None: not logged in)."""
        async with aiohttp.ClientSession(
            self.url, cookie_jar=aiohttp.CookieJar(unsafe=True)
        ) as session:
            client = Client(session)
            if role is not None:
                response = await client.login(role, PASSWORD)
                assert response.status == 200, f"{role} could not log in"
            yield client


@contextlib.asynccontextmanager
async def market_running(
    tmp_path: Path, *, start: datetime = START, owner: str | None = OWNER
) -> AsyncIterator[MarketSite]:
    """A market server (no API keys) with its HTTP face and a members database."""
    tmp_path.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 - test set-up
    users = tmp_path / "market-users.json"
    if not users.exists():
        write_users(users)
    clock = ManualClock(start)
    settings = HttpSettings("127.0.0.1:0", users, tmp_path / "members.sqlite3")
    async with MarketServer(
        None, "127.0.0.1:0", keys=None, clock=clock, auto_clear=False, http=settings
    ) as server:
        site = MarketSite(server, clock)
        if owner is not None:
            assert server.http is not None
            server.http.owners.setdefault("wind homes", owner)
        yield site


class MarketThread(LoopThread[MarketSite]):
    """`market_running` on an event loop in a thread (for blocking test code).

    ```python
    with MarketThread(tmp_path) as site:
        driver.get(site.url)
        thread.run(lambda: site.advance(15))     # runs on the server's loop
    ```
    """

    def __init__(self, tmp_path: Path, *, start: datetime = START) -> None:
        super().__init__(
            lambda: market_running(tmp_path, start=start),
            name="market",
            ready_s=60,
            call_s=30,
        )
