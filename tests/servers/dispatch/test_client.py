"""The server end to end, driven by the real `frequenz-client-dispatch` client."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
from frequenz.api.dispatch.v1 import dispatch_pb2 as pb
from frequenz.api.dispatch.v1 import dispatch_pb2_grpc as pb_grpc
from frequenz.client.common.microgrid import MicrogridId
from frequenz.client.common.streaming import Event
from frequenz.client.dispatch import DispatchApiClient
from frequenz.client.dispatch.recurrence import EndCriteria, Frequency, RecurrenceRule, Weekday
from frequenz.client.dispatch.types import (
    BatteryType,
    Dispatch,
    DispatchId,
    TargetCategories,
    TargetIds,
)
from google.protobuf.field_mask_pb2 import FieldMask

from edge_controller.common.clock import ManualClock
from edge_controller.servers.dispatch.server import DispatchServer
from tests.servers.dispatch.conftest import KEY, OTHER_KEY, wait_for_subscriber

GRID = MicrogridId(1)


def soon(minutes: float = 10) -> datetime:
    return (datetime.now(UTC) + timedelta(minutes=minutes)).replace(microsecond=0)


async def create(client: DispatchApiClient, type: str = "DISCHARGE", **fields: object) -> Dispatch:
    arguments: dict[str, object] = {
        "start_time": soon(),
        "duration": timedelta(minutes=15),
        "target": TargetIds(7, 8),
        "payload": {"power_w": -40000},
    }
    arguments.update(fields)
    return await client.create(GRID, type, **arguments)  # type: ignore[arg-type]


async def list_all(client: DispatchApiClient, **filters: object) -> list[list[int]]:
    return [
        [int(d.id) for d in page]
        async for page in client.list(GRID, **filters)  # type: ignore[arg-type]
    ]


async def drain(stream: AsyncIterable[object]) -> None:
    async with asyncio.timeout(10):
        async for _ in stream:
            pass


async def rpc_error(call: object) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call  # type: ignore[misc]
    return caught.value


# The client itself calls a helper its own dependency deprecates when it sends categories.
@pytest.mark.filterwarnings("ignore:.*ElectricalComponentCategory.to_proto\\(\\) is deprecated")
async def test_create_and_get_round_trip_every_field(client: DispatchApiClient) -> None:
    start = soon(30)
    rule = RecurrenceRule(
        frequency=Frequency.WEEKLY,
        interval=2,
        end_criteria=EndCriteria(count=3),
        byhours=[14],
        byminutes=[0, 30],
        byweekdays=[Weekday.MONDAY, Weekday.FRIDAY],
    )
    created = await create(
        client,
        "BALANCE",
        start_time=start,
        duration=timedelta(minutes=20),
        target=TargetCategories(BatteryType.LI_ION),
        active=False,
        dry_run=True,
        payload={"soc": {"min": 20, "max": 80}, "tags": ["a", "b"]},
        recurrence=rule,
    )
    assert created.type == "BALANCE"
    assert created.start_time == start
    assert created.recurrence == rule
    assert created.target == TargetCategories(BatteryType.LI_ION)
    assert created.payload == {"soc": {"min": 20.0, "max": 80.0}, "tags": ["a", "b"]}
    assert (created.active, created.dry_run) == (False, True)
    assert created.create_time == created.update_time
    assert created.end_time is not None
    assert created.end_time > start
    assert await client.get(microgrid_id=GRID, dispatch_id=created.id) == created


async def test_start_immediately_starts_now(client: DispatchApiClient) -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    created = await create(client, start_time="NOW")
    assert before <= created.start_time <= datetime.now(UTC)
    assert created.started


async def test_list_pages_and_filters(client: DispatchApiClient) -> None:
    made = [await create(client, f"TYPE-{i}", active=i % 2 == 0) for i in range(7)]
    newest_first = [int(d.id) for d in reversed(made)]
    assert await list_all(client, page_size=3) == [
        newest_first[:3],
        newest_first[3:6],
        newest_first[6:],
    ]
    assert await list_all(client) == [newest_first]
    assert await list_all(client, active=False) == [[int(made[i].id) for i in (5, 3, 1)]]
    assert await list_all(client, dispatch_ids=[made[0].id, made[4].id]) == [
        [int(made[4].id), int(made[0].id)]
    ]
    assert await list_all(client, filter_queries=["type-6", f"#{int(made[0].id)}"]) == [
        [int(made[6].id), int(made[0].id)]
    ]
    other = await create(client, "ELSEWHERE", target=TargetIds(99), start_time=soon(120))
    assert await list_all(client, target_components=[TargetIds(99, 100)]) == [[int(other.id)]]
    assert await list_all(client, start_from=soon(60)) == [[int(other.id)]]
    assert await list_all(client, end_to=soon(60), page_size=100) == [newest_first]


async def test_list_of_the_first_fetch_includes_open_ended_dispatches(
    client: DispatchApiClient,
) -> None:
    bounded = await create(client, "BOUNDED")
    forever = await create(client, "FOREVER", duration=None)
    daily = await create(
        client, "DAILY", recurrence=RecurrenceRule(frequency=Frequency.DAILY, interval=1)
    )
    assert forever.end_time is None
    assert daily.end_time is None
    later = soon(60)
    assert await list_all(client, end_from=later) == [[int(daily.id), int(forever.id)]]
    assert int(bounded.id) in (await list_all(client, end_from=soon(-1)))[0]


async def test_updates_honour_the_mask(client: DispatchApiClient) -> None:
    created = await create(client)
    changed = await client.update(
        microgrid_id=GRID,
        dispatch_id=created.id,
        new_fields={
            "duration": timedelta(minutes=45),
            "active": False,
            "payload": {"power_w": -10000},
            "recurrence.frequency": Frequency.HOURLY,
            "recurrence.interval": 3,
            "recurrence.end_criteria": EndCriteria(count=4),
        },
    )
    assert changed.duration == timedelta(minutes=45)
    assert changed.active is False
    assert changed.payload == {"power_w": -10000.0}
    assert changed.recurrence == RecurrenceRule(
        frequency=Frequency.HOURLY, interval=3, end_criteria=EndCriteria(count=4)
    )
    assert changed.end_time == created.start_time + timedelta(hours=9, minutes=45)
    assert (changed.type, changed.target, changed.start_time) == (
        created.type,
        created.target,
        created.start_time,
    )
    assert changed.update_time > created.update_time
    assert changed.create_time == created.create_time
    assert await client.get(microgrid_id=GRID, dispatch_id=created.id) == changed

    indefinite = await client.update(
        microgrid_id=GRID, dispatch_id=created.id, new_fields={"duration": None}
    )
    assert indefinite.duration is None
    assert indefinite.end_time is None
    assert indefinite.update_time > changed.update_time


async def test_unknown_mask_paths_are_refused_by_name(client: DispatchApiClient) -> None:
    created = await create(client)
    request = pb.UpdateMicrogridDispatchRequest(
        microgrid_id=1,
        dispatch_id=int(created.id),
        update_mask=FieldMask(paths=["duration", "colour"]),
    )
    error = await rpc_error(client.stub.UpdateMicrogridDispatch(request))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (error.details() or "").startswith("update_mask: unknown path 'colour'")
    assert await client.get(microgrid_id=GRID, dispatch_id=created.id) == created


async def test_delete(client: DispatchApiClient) -> None:
    created = await create(client)
    await client.delete(microgrid_id=GRID, dispatch_id=created.id)
    error = await rpc_error(client.get(microgrid_id=GRID, dispatch_id=created.id))
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert error.details() == f"dispatch {int(created.id)} not found in microgrid 1"
    again = await rpc_error(client.delete(microgrid_id=GRID, dispatch_id=created.id))
    assert again.code() == grpc.StatusCode.NOT_FOUND


async def test_stream_reports_create_update_delete_of_its_microgrid(
    server: DispatchServer, client: DispatchApiClient
) -> None:
    events = client.stream(GRID)
    await wait_for_subscriber(server, 1)
    created = await create(client)
    updated = await client.update(
        microgrid_id=GRID, dispatch_id=created.id, new_fields={"active": False}
    )
    await client.create(MicrogridId(2), "ELSEWHERE", soon(), None, TargetIds(1))
    await client.delete(microgrid_id=GRID, dispatch_id=created.id)
    async with asyncio.timeout(10):
        received = [await events.receive() for _ in range(3)]
    assert [e.event for e in received] == [Event.CREATED, Event.UPDATED, Event.DELETED]
    assert received[0].dispatch == created
    assert received[1].dispatch == updated
    assert received[2].dispatch.id == created.id
    assert received[2].dispatch.update_time > updated.update_time


async def test_streams_end_with_unavailable_on_shutdown(server: DispatchServer) -> None:
    async with grpc.aio.insecure_channel(server.address) as channel:
        stub = pb_grpc.MicrogridDispatchServiceStub(channel)
        call = stub.StreamMicrogridDispatches(
            pb.StreamMicrogridDispatchesRequest(microgrid_id=1), metadata=(("key", KEY),)
        )
        await wait_for_subscriber(server, 1)
        await server.stop()
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await drain(call)
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    assert caught.value.details() == "the dispatch service is shutting down"


async def test_a_stream_the_client_cancels_is_unsubscribed(server: DispatchServer) -> None:
    async with grpc.aio.insecure_channel(server.address) as channel:
        stub = pb_grpc.MicrogridDispatchServiceStub(channel)
        call = stub.StreamMicrogridDispatches(
            pb.StreamMicrogridDispatchesRequest(microgrid_id=1), metadata=(("key", KEY),)
        )
        await wait_for_subscriber(server, 1)
        call.cancel()
        async with asyncio.timeout(10):
            while server.service.subscriber_count(1):
                await asyncio.sleep(0.01)


async def test_every_call_needs_a_valid_key(
    server: DispatchServer, client: DispatchApiClient
) -> None:
    created = await create(client)
    wrong = DispatchApiClient(server_url=server.url, auth_key="not-a-key")
    second = DispatchApiClient(server_url=server.url, auth_key=OTHER_KEY)
    try:
        error = await rpc_error(wrong.get(microgrid_id=GRID, dispatch_id=created.id))
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED
        assert error.details() == "invalid API key"
        error = await rpc_error(list_all(wrong))
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED
        assert await second.get(microgrid_id=GRID, dispatch_id=created.id) == created
    finally:
        await wrong.disconnect()
        await second.disconnect()
    async with grpc.aio.insecure_channel(server.address) as channel:
        stub = pb_grpc.MicrogridDispatchServiceStub(channel)
        error = await rpc_error(
            stub.GetMicrogridDispatch(pb.GetMicrogridDispatchRequest(microgrid_id=1, dispatch_id=1))
        )
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED
        assert error.details() == "missing API key: send it as gRPC metadata 'key'"
        stream = stub.StreamMicrogridDispatches(pb.StreamMicrogridDispatchesRequest(microgrid_id=1))
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await drain(stream)
        assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"type": ""}, "type: expected a non-empty string, got ''"),
        (
            {"recurrence": RecurrenceRule(frequency=Frequency.DAILY, interval=0)},
            "recurrence.interval: expected 1-10000 with freq DAILY, got 0",
        ),
        (
            {"recurrence": RecurrenceRule(frequency=Frequency.HOURLY, interval=1, byminutes=[60])},
            "recurrence.byminutes[0]: expected 0-59, got 60",
        ),
        (
            {
                "recurrence": RecurrenceRule(
                    frequency=Frequency.MONTHLY, interval=1, bymonthdays=[32]
                )
            },
            "recurrence.bymonthdays[0]: expected ±1-31, got 32",
        ),
        (
            {"payload": {"blob": "x" * 60_000}},
            "payload: 60011 bytes as JSON, at most 51200 allowed (50 KiB)",
        ),
        (
            {"target": TargetIds()},
            "target.component_ids.ids: expected at least one component id, got none",
        ),
    ],
)
async def test_invalid_requests_name_the_field(
    client: DispatchApiClient, fields: dict[str, object], message: str
) -> None:
    type_ = str(fields.pop("type", "DISCHARGE"))
    error = await rpc_error(create(client, type_, **fields))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details() == message


async def test_an_update_to_a_past_start_is_refused(client: DispatchApiClient) -> None:
    created = await create(client)
    past = datetime.now(UTC) - timedelta(minutes=10)
    error = await rpc_error(
        client.update(microgrid_id=GRID, dispatch_id=created.id, new_fields={"start_time": past})
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "is in the past" in (error.details() or "")
    unknown = await rpc_error(
        client.update(microgrid_id=GRID, dispatch_id=DispatchId(999), new_fields={"active": True})
    )
    assert unknown.code() == grpc.StatusCode.NOT_FOUND


async def test_microgrids_not_served_are_not_found(db_path: Path) -> None:
    async with DispatchServer(
        db_path, keys=frozenset({KEY}), microgrid_ids=frozenset({1, 3})
    ) as server:
        client = DispatchApiClient(server_url=server.url, auth_key=KEY)
        try:
            await create(client)
            error = await rpc_error(client.create(MicrogridId(2), "X", soon(), None, TargetIds(1)))
            assert error.code() == grpc.StatusCode.NOT_FOUND
            assert error.details() == "microgrid 2 is not served here (serving: 1, 3)"
            stream = client.stub.StreamMicrogridDispatches(
                pb.StreamMicrogridDispatchesRequest(microgrid_id=2)
            )
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await drain(stream)
            assert caught.value.code() == grpc.StatusCode.NOT_FOUND
        finally:
            await client.disconnect()


async def test_dispatches_survive_a_restart_unchanged(db_path: Path) -> None:
    clock = ManualClock(datetime.now(UTC))
    async with DispatchServer(db_path, keys=frozenset({KEY}), clock=clock) as first:
        client = DispatchApiClient(server_url=first.url, auth_key=KEY)
        created = await create(
            client,
            payload={"nested": {"list": [1, 2.5, "x", None, True]}},
            recurrence=RecurrenceRule(
                frequency=Frequency.DAILY,
                interval=1,
                end_criteria=EndCriteria(until=soon(60 * 24 * 3)),
            ),
        )
        # Two updates within the same microsecond: the second still moves update_time.
        once = await client.update(
            microgrid_id=GRID, dispatch_id=created.id, new_fields={"active": False}
        )
        twice = await client.update(
            microgrid_id=GRID, dispatch_id=created.id, new_fields={"active": True}
        )
        await client.disconnect()
    assert once.update_time == created.update_time + timedelta(microseconds=1)
    assert twice.update_time == once.update_time + timedelta(microseconds=1)

    async with DispatchServer(db_path, keys=frozenset({KEY}), clock=clock) as second:
        client = DispatchApiClient(server_url=second.url, auth_key=KEY)
        try:
            assert await client.get(microgrid_id=GRID, dispatch_id=created.id) == twice
            assert await list_all(client) == [[int(created.id)]]
            third = await client.update(
                microgrid_id=GRID, dispatch_id=created.id, new_fields={"duration": None}
            )
            assert third.update_time == twice.update_time + timedelta(microseconds=1)
            newer = await create(client)
            assert int(newer.id) > int(created.id)
        finally:
            await client.disconnect()
