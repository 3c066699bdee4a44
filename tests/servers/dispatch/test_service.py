"""The service without gRPC: write-through, failed writes, slow subscribers, shutdown."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from edge_controller.common.clock import ManualClock
from edge_controller.servers.dispatch import service as service_module
from edge_controller.servers.dispatch.errors import DispatchError, ErrorKind
from edge_controller.servers.dispatch.model import DispatchUpdate, EventKind
from edge_controller.servers.dispatch.service import DispatchService
from edge_controller.servers.dispatch.storage import DispatchStore
from tests.servers.dispatch.conftest import NOON, data


@pytest.fixture
async def service(db_path: Path) -> AsyncIterator[DispatchService]:
    running = DispatchService(DispatchStore(db_path), clock=ManualClock(NOON))
    yield running
    await running.close()


async def test_a_refused_update_changes_nothing(db_path: Path, service: DispatchService) -> None:
    created = await service.create(1, data())
    with pytest.raises(DispatchError, match="update_mask: unknown path 'colour'"):
        await service.update(1, created.id, DispatchUpdate(paths=("duration", "colour")))
    assert service.get(1, created.id) == created
    await service.close()
    assert DispatchStore(db_path).load() == [created]


async def test_a_failed_commit_changes_nothing(service: DispatchService) -> None:
    created = await service.create(1, data())
    service._store._db.execute(
        "CREATE TRIGGER refuse BEFORE DELETE ON dispatches BEGIN SELECT RAISE(ABORT, 'no'); END"
    )
    with pytest.raises(Exception, match="no"):
        await service.delete(1, created.id)
    assert service.get(1, created.id) == created


async def test_dispatches_of_other_microgrids_are_not_found(service: DispatchService) -> None:
    created = await service.create(1, data())
    with pytest.raises(
        DispatchError, match=f"^dispatch {created.id} not found in microgrid 2$"
    ) as caught:
        service.get(2, created.id)
    assert caught.value.kind is ErrorKind.NOT_FOUND


async def test_a_subscriber_too_far_behind_is_cut_off(
    service: DispatchService, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(service_module, "SUBSCRIBER_QUEUE_SIZE", 2)
    events = service.subscribe(1)
    first = asyncio.ensure_future(anext(events))
    await asyncio.sleep(0)  # subscribed, waiting
    created = await service.create(1, data())
    assert (await first).kind is EventKind.CREATED
    for _ in range(3):
        await service.update(1, created.id, DispatchUpdate(paths=("duration",), duration_s=60))
    with pytest.raises(DispatchError, match="stream fell 2 events behind") as caught:
        await anext(events)
    assert caught.value.kind is ErrorKind.UNAVAILABLE
    assert service.subscriber_count(1) == 0


async def test_after_close_calls_are_unavailable(service: DispatchService) -> None:
    created = await service.create(1, data(start=NOON + timedelta(hours=1)))
    await service.close()
    with pytest.raises(DispatchError, match="shutting down") as caught:
        await service.create(1, data())
    assert caught.value.kind is ErrorKind.UNAVAILABLE
    with pytest.raises(DispatchError, match="shutting down"):
        service.get(1, created.id)
