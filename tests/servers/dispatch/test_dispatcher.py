"""What `frequenz-dispatch`'s `Dispatcher` relies on, against the real server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from frequenz.client.common.microgrid import MicrogridId
from frequenz.client.dispatch import DispatchApiClient
from frequenz.client.dispatch.recurrence import Frequency, RecurrenceRule
from frequenz.client.dispatch.types import TargetIds
from frequenz.dispatch import Created, Dispatcher, Updated

from edge_controller.common.clock import ManualClock
from edge_controller.servers.dispatch.server import DispatchServer
from tests.servers.dispatch.conftest import KEY, wait_for_subscriber

GRID = MicrogridId(1)


@pytest.fixture
async def admin(server: DispatchServer) -> AsyncIterator[DispatchApiClient]:
    """A second client, as an operator's tool beside the site's Dispatcher."""
    client = DispatchApiClient(server_url=server.url, auth_key=KEY)
    try:
        yield client
    finally:
        await client.disconnect()


async def test_a_dispatch_created_to_start_now_is_reported_running(
    server: DispatchServer, admin: DispatchApiClient
) -> None:
    async with Dispatcher(microgrid_id=GRID, server_url=server.url, auth_key=KEY) as dispatcher:
        running = await dispatcher.new_running_state_event_receiver("DISCHARGE")
        lifecycle = dispatcher.new_lifecycle_events_receiver("DISCHARGE")
        await wait_for_subscriber(server, 1)  # the Dispatcher's own stream
        created = await admin.create(GRID, "DISCHARGE", "NOW", timedelta(minutes=15), TargetIds(7))
        async with asyncio.timeout(10):
            event = await lifecycle.receive()
            started = await running.receive()
        assert isinstance(event, Created)
        assert event.dispatch.id == created.id
        assert started.id == created.id
        assert started.started

        await admin.update(microgrid_id=GRID, dispatch_id=created.id, new_fields={"active": False})
        async with asyncio.timeout(10):
            changed = await lifecycle.receive()
            stopped = await running.receive()
        assert isinstance(changed, Updated)
        assert stopped.id == created.id
        assert not stopped.started


async def test_the_first_fetch_picks_up_an_open_ended_recurrence_created_earlier(
    db_path: Path,
) -> None:
    # The server's clock says it is 2 h 15 min ago: "NOW" starts the dispatches then.
    clock = ManualClock(datetime.now(UTC) - timedelta(hours=2, minutes=15))
    async with DispatchServer(db_path, keys=frozenset({KEY}), clock=clock) as server:
        admin = DispatchApiClient(server_url=server.url, auth_key=KEY)
        try:
            hourly = await admin.create(
                GRID,
                "PEAK",
                "NOW",
                timedelta(minutes=30),
                TargetIds(7),
                recurrence=RecurrenceRule(frequency=Frequency.HOURLY, interval=1),
            )
            ended = await admin.create(GRID, "PEAK", "NOW", timedelta(minutes=10), TargetIds(7))
        finally:
            await admin.disconnect()
        assert hourly.end_time is None
        assert ended.end_time is not None
        assert ended.end_time < datetime.now(UTC) - timedelta(hours=2)

        dispatcher = Dispatcher(microgrid_id=GRID, server_url=server.url, auth_key=KEY)
        lifecycle = dispatcher.new_lifecycle_events_receiver("PEAK")
        async with dispatcher:  # returns after the first fetch
            async with asyncio.timeout(10):
                fetched = await lifecycle.receive()
            assert isinstance(fetched, Created)
            assert fetched.dispatch.id == hourly.id
            with pytest.raises(TimeoutError):  # the ended one-off is not fetched
                async with asyncio.timeout(0.3):
                    await lifecycle.receive()
            running = await dispatcher.new_running_state_event_receiver("PEAK")
            async with asyncio.timeout(10):
                current = await running.receive()
            # The third hourly occurrence began 15 minutes ago and runs 15 more.
            assert current.id == hourly.id
            assert current.started
