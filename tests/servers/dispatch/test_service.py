"""The service without gRPC: write-through, failed writes, streams, slow subscribers, shutdown."""

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
from tests.patience import until
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


async def _subscribed(service: DispatchService, count: int, microgrid_id: int = 1) -> None:
    await until(
        lambda: service.subscriber_count(microgrid_id) >= count,
        f"{count} streams of microgrid {microgrid_id}",
        poll_s=0,
    )


async def test_a_writer_has_its_answer_before_any_stream_is_fed(service: DispatchService) -> None:
    """Feeding 1 000 streams first made a create's answer wait 60 ms (issue 16)."""
    seen: list[str] = []

    async def reader(name: str) -> None:
        async for _ in service.subscribe(1):
            seen.append(name)
            return

    readers = [asyncio.ensure_future(reader(f"reader {i}")) for i in range(3)]
    await _subscribed(service, 3)
    await service.create(1, data())
    seen.append("creator")
    await asyncio.gather(*readers)
    assert seen == ["creator", "reader 0", "reader 1", "reader 2"]


async def test_every_stream_gets_every_change_in_the_same_order(service: DispatchService) -> None:
    """Concurrent writers; readers that read only after the writes; another microgrid."""
    streams = [service.subscribe(1) for _ in range(3)]
    other = service.subscribe(2)
    firsts = [asyncio.ensure_future(anext(s)) for s in [*streams, other]]
    await _subscribed(service, 3)
    await _subscribed(service, 1, microgrid_id=2)

    async def create_then_update() -> None:
        created = await service.create(1, data())
        await service.update(1, created.id, DispatchUpdate(paths=("duration",), duration_s=60))

    await asyncio.gather(*(create_then_update() for _ in range(4)))
    await service.delete(1, 2)
    await service.create(2, data())
    orders = []
    for first, stream in zip(firsts, streams, strict=False):
        events = [await first, *[await anext(stream) for _ in range(8)]]
        orders.append([(e.kind, e.dispatch.id) for e in events])
    assert orders[1] == orders[0]
    assert orders[2] == orders[0]
    changes = orders[0]
    assert [i for k, i in changes if k is EventKind.CREATED] == [1, 2, 3, 4]
    for dispatch_id in (1, 3, 4):
        assert [k for k, i in changes if i == dispatch_id] == [EventKind.CREATED, EventKind.UPDATED]
    assert [k for k, i in changes if i == 2] == [
        EventKind.CREATED,
        EventKind.UPDATED,
        EventKind.DELETED,
    ]
    assert changes[-1] == (EventKind.DELETED, 2)
    assert (await firsts[3]).dispatch.microgrid_id == 2  # and nothing of microgrid 1 before


async def test_after_close_calls_are_unavailable(service: DispatchService) -> None:
    created = await service.create(1, data(start=NOON + timedelta(hours=1)))
    await service.close()
    with pytest.raises(DispatchError, match="shutting down") as caught:
        await service.create(1, data())
    assert caught.value.kind is ErrorKind.UNAVAILABLE
    with pytest.raises(DispatchError, match="shutting down"):
        service.get(1, created.id)
