"""Fixtures for the dispatch service: a server on a free port, a client, sample data."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from frequenz.client.dispatch import DispatchApiClient

from edge_controller.servers.dispatch.model import (
    DispatchData,
    Recurrence,
    Target,
    TargetKind,
)
from edge_controller.servers.dispatch.server import DispatchServer

KEY = "lab-key-0123456789"
OTHER_KEY = "second-key"
NOON = datetime(2026, 6, 21, 12, 0, tzinfo=UTC)


def data(
    *,
    type: str = "DISCHARGE",
    start: datetime = NOON + timedelta(hours=1),
    duration_s: int | None = 900,
    target: Target | None = None,
    is_active: bool = True,
    is_dry_run: bool = False,
    payload: dict[str, Any] | None = None,
    recurrence: Recurrence | None = None,
) -> DispatchData:
    """A valid DispatchData with overridable fields."""
    return DispatchData(
        type=type,
        start_time=start,
        duration_s=duration_s,
        target=target if target is not None else Target(TargetKind.IDS, ids=(7, 8)),
        is_active=is_active,
        is_dry_run=is_dry_run,
        payload=payload if payload is not None else {"power_w": -40000.0},
        recurrence=recurrence if recurrence is not None else Recurrence(),
    )


async def wait_for_subscriber(server: DispatchServer, microgrid_id: int, count: int = 1) -> None:
    """Wait until `count` streams follow the microgrid (an event sent earlier is lost)."""
    async with asyncio.timeout(10):
        while server.service.subscriber_count(microgrid_id) < count:
            await asyncio.sleep(0.01)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "dispatches.sqlite"


@pytest.fixture
async def server(db_path: Path) -> AsyncIterator[DispatchServer]:
    async with DispatchServer(db_path, "127.0.0.1:0", keys=frozenset({KEY, OTHER_KEY})) as running:
        yield running


@pytest.fixture
async def client(server: DispatchServer) -> AsyncIterator[DispatchApiClient]:
    api = DispatchApiClient(server_url=server.url, auth_key=KEY, call_timeout=timedelta(seconds=10))
    try:
        yield api
    finally:
        await api.disconnect()
