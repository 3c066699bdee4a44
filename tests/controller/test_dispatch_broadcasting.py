"""DispatchBroadcastingActor: what it does when the stream and the service disagree.

A fake `Dispatcher` stands in for `frequenz-dispatch`: `listed` is what the service
lists, `running` what the library believes runs (announced to every new running-state
receiver, as the library does). The real library and service run in
`tests/reliability/test_04_dispatch_service_faults.py`, and here for the warning about
dispatches no use case handles. The fake's `list` ignores `end_from`: each test says
what the service lists.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, MutableMapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

from frequenz.channels import Broadcast, Receiver
from frequenz.client.common.microgrid import MicrogridId
from frequenz.client.dispatch import DispatchApiClient
from frequenz.client.dispatch.recurrence import RecurrenceRule
from frequenz.client.dispatch.types import Dispatch as ClientDispatch
from frequenz.client.dispatch.types import DispatchEvent as ClientDispatchEvent
from frequenz.client.dispatch.types import DispatchId, TargetIds
from frequenz.client.dispatch.types import Event as ClientEvent
from frequenz.dispatch import Dispatch, Dispatcher, DispatchEvent
from structlog.testing import capture_logs

from edge_controller.config.schema import parse_config
from edge_controller.controller.dispatch_broadcasting import (
    DispatchBroadcastingActor,
    UnhandledTypes,
)
from edge_controller.controller.graph import Controller
from edge_controller.dispatching import cache
from edge_controller.servers.dispatch.server import DispatchServer
from edge_controller.servers.sim.server import SimulatorServer
from tests.harness import KEY, MICROGRID, stream_connected
from tests.patience import PATIENCE_S, until

KIND = "BATTERY_POWER"
FIRST_CHECK = timedelta(seconds=0.05)
INTERVAL = timedelta(seconds=0.1)
"""Reconcile at once and often (a difference is confirmed 1 s later)."""


def dispatch(
    dispatch_id: int,
    *,
    started_minutes_ago: float = 1,
    duration: timedelta | None = timedelta(minutes=30),
    active: bool = True,
    updated: datetime | None = None,
) -> ClientDispatch:
    """What the service lists (the library wraps it in its `Dispatch`)."""
    now = datetime.now(UTC)
    created = now - timedelta(hours=1)
    start = now - timedelta(minutes=started_minutes_ago)
    return ClientDispatch(
        id=DispatchId(dispatch_id),
        type=KIND,
        start_time=start,
        duration=duration,
        target=TargetIds(31),
        active=active,
        dry_run=False,
        payload={"power_w": -40_000.0},
        recurrence=RecurrenceRule(),
        create_time=created,
        update_time=updated or created,
        end_time=start + duration if duration is not None else None,
    )


class FakeDispatcher:
    """What the actor uses of a `Dispatcher`, and of its client's `list`."""

    def __init__(self, listed: list[ClientDispatch], running: list[Dispatch]) -> None:
        self.listed = listed
        self.running = running
        self.stopped = False
        self.list_fails = False
        self.lists = 0  # how often the actor listed the service
        """Set: `list` times out (the service unreachable)."""
        self._running = Broadcast[Dispatch](name="running")
        self._lifecycle = Broadcast[DispatchEvent](name="lifecycle")
        self._events = Broadcast[ClientDispatchEvent](name="events")

    @property
    def client(self) -> FakeDispatcher:
        return self

    async def list(
        self, microgrid_id: MicrogridId, end_from: datetime
    ) -> AsyncIterator[Iterator[ClientDispatch]]:
        self.lists += 1
        if self.list_fails:
            raise TimeoutError
        yield iter(list(self.listed))

    async def new_running_state_event_receiver(self, kind: str) -> Receiver[Dispatch]:
        receiver = self._running.new_receiver(limit=30)
        sender = self._running.new_sender()
        for running in self.running:
            await sender.send(running)
        return receiver

    def new_lifecycle_events_receiver(self, kind: str) -> Receiver[DispatchEvent]:
        return self._lifecycle.new_receiver()

    def stream(self, microgrid_id: MicrogridId) -> Receiver[ClientDispatchEvent]:
        return self._events.new_receiver()

    async def stop(self) -> None:
        self.stopped = True


async def _received(
    receiver: Receiver[Dispatch], timeout_s: float, *, count: int | None = None
) -> list[Dispatch]:
    """Everything `receiver` gets within `timeout_s`, or as soon as it got `count`."""
    messages: list[Dispatch] = []
    try:
        async with asyncio.timeout(timeout_s):
            async for message in receiver:
                messages.append(message)
                if len(messages) == count:
                    break
    except TimeoutError:
        pass
    return messages


async def _next(receiver: Receiver[Dispatch]) -> list[Dispatch]:
    """The next message, then whatever else comes within a few reconcile intervals.

    Waits as long as a slow machine needs for the first one; the short window after it
    is what catches a second, unwanted message (a dispatch started again).
    """
    first = await _received(receiver, PATIENCE_S, count=1)
    return first + await _received(receiver, 5 * INTERVAL.total_seconds())


async def _cached(path: Path, holds: Callable[[set[int]], bool], what: str) -> None:
    """Wait until the dispatch ids in the cache file satisfy `holds`."""
    await until(
        lambda: (
            (saved := cache.load(path)) is not None and holds({int(d.id) for d in saved.dispatches})
        ),
        what,
    )


def _actor(
    dispatcher: FakeDispatcher,
    channel: Broadcast[Dispatch],
    *,
    reconnect: Callable[[], Awaitable[Dispatcher]] | None = None,
    cache_path: Path | None = None,
) -> DispatchBroadcastingActor:
    """The actor on `dispatcher`, routing BATTERY_POWER to `channel`, reconciling often."""
    return DispatchBroadcastingActor(
        cast(Dispatcher, dispatcher),
        {KIND: [channel.new_sender()]},
        microgrid_id=1,
        reconnect=reconnect,
        cache_path=cache_path,
        first_check=FIRST_CHECK,
        reconcile_interval=INTERVAL,
    )


def _states(messages: list[Dispatch]) -> list[tuple[int, bool, bool]]:
    return [(int(m.id), m.started, m.deleted) for m in messages]


async def test_a_deletion_the_stream_missed_is_stopped_and_the_stale_dispatcher_ignored(
    tmp_path: Path,
) -> None:
    running = dispatch(7)
    fake = FakeDispatcher(listed=[running], running=[Dispatch(running)])
    channel = Broadcast[Dispatch](name="battery_power")
    use_case = channel.new_receiver()
    cache_file = tmp_path / "dispatches.json"
    actor = _actor(fake, channel, cache_path=cache_file)
    actor.start()
    try:
        assert _states(await _next(use_case)) == [(7, True, False)]
        fake.listed = []  # deleted; the stream never said so, the library still runs it
        # Stopped once (a copy marked deleted), and not started again although the
        # Dispatcher still announces it to every new receiver (no `reconnect` here).
        assert _states(await _next(use_case)) == [(7, False, True)]
        saved = cache.load(cache_file)
        assert saved is not None
        assert saved.dispatches == ()
        assert not fake.stopped
    finally:
        await actor.stop()


async def test_after_a_reconnect_what_no_longer_runs_is_stopped() -> None:
    before = dispatch(7)
    deactivated = dispatch(7, active=False, updated=datetime.now(UTC))
    old = FakeDispatcher(listed=[before], running=[Dispatch(before)])
    new = FakeDispatcher(listed=[deactivated], running=[])
    replacements = [new]

    async def reconnect() -> Dispatcher:
        return cast(Dispatcher, replacements.pop())

    channel = Broadcast[Dispatch](name="battery_power")
    use_case = channel.new_receiver()
    actor = _actor(old, channel, reconnect=reconnect)
    actor.start()
    try:
        assert _states(await _next(use_case)) == [(7, True, False)]
        old.listed = [deactivated]  # an update the stream missed: B is off
        messages = await _next(use_case)
        assert _states(messages) == [(7, False, False)]
        assert not messages[0].active
        assert old.stopped
        assert actor.dispatcher is cast(Dispatcher, new)
    finally:
        await actor.stop()


async def test_a_dispatch_that_ended_is_forgotten_without_a_reconnect(tmp_path: Path) -> None:
    ended = dispatch(7, started_minutes_ago=60, duration=timedelta(minutes=10))
    fake = FakeDispatcher(listed=[ended], running=[])

    async def reconnect() -> Dispatcher:
        raise AssertionError("no reconnect for a dispatch that simply ended")

    channel = Broadcast[Dispatch](name="battery_power")
    use_case = channel.new_receiver()
    cache_file = tmp_path / "dispatches.json"
    actor = _actor(fake, channel, reconnect=reconnect, cache_path=cache_file)
    actor.start()  # it learns the ended dispatch, which the service then lists no more
    try:
        await _cached(cache_file, lambda ids: ids == {7}, "the ended dispatch was learned")
        fake.listed = []
        await _cached(cache_file, lambda ids: not ids, "the ended dispatch was forgotten")
        assert await _received(use_case, 5 * INTERVAL.total_seconds()) == []
        assert not fake.stopped
    finally:
        await actor.stop()


# ---------------------------------------------------------------- unhandled types


def test_an_unhandled_type_is_reported_once_per_dispatch() -> None:
    unhandled = UnhandledTypes(["PEAK_SHAVING", KIND, KIND])
    assert unhandled.handled == (KIND, "PEAK_SHAVING")
    assert [
        unhandled.first_sighting(dispatch_id, kind)
        for dispatch_id, kind in [(1, "FOO"), (1, "FOO"), (2, KIND), (3, "FOO"), (1, "BAR")]
    ] == [True, False, False, True, False]


def test_a_reported_dispatch_is_forgotten_once_deleted_or_no_longer_listed() -> None:
    """The memory of warned ids is bounded by what the service still has."""
    unhandled = UnhandledTypes([KIND])
    assert [unhandled.first_sighting(i, "FOO") for i in (1, 2, 3)] == [True] * 3
    unhandled.forget(1)  # deleted
    unhandled.keep_only([3, 4])  # 2 ended (the list no longer has it)
    assert len(unhandled) == 1
    assert not unhandled.first_sighting(3, "FOO")  # still warned once only
    assert unhandled.first_sighting(4, "FOO")


async def test_the_actor_forgets_unhandled_dispatches_that_ended_or_were_deleted() -> None:
    foo = dataclasses.replace(dispatch(8), type="FOO")
    fake = FakeDispatcher(listed=[foo], running=[])
    channel = Broadcast[Dispatch](name="battery_power")
    actor = _actor(fake, channel)
    remembered = actor._unhandled  # the memory under test
    with capture_logs() as logs:
        actor.start()
        try:
            await until(lambda: len(remembered) == 1, "the FOO dispatch was reported")
            listed = fake.lists
            await until(lambda: fake.lists >= listed + 3, "reconciliations listed it again")
            assert len(remembered) == 1  # still listed: still remembered, not warned again
            fake.listed = []  # it ended
            await until(lambda: len(remembered) == 0, "the ended dispatch was forgotten")
            # On the stream only (the list fails from here on): created, then deleted.
            fake.list_fails = True
            events = fake._events.new_sender()  # the fake's stream
            bar = dataclasses.replace(dispatch(9), type="BAR")
            await events.send(ClientDispatchEvent(event=ClientEvent.CREATED, dispatch=bar))
            await until(lambda: len(remembered) == 1, "the BAR dispatch was reported")
            await events.send(ClientDispatchEvent(event=ClientEvent.DELETED, dispatch=bar))
            await until(lambda: len(remembered) == 0, "the deleted dispatch was forgotten")
        finally:
            await actor.stop()
    warned = [e["dispatch_id"] for e in logs if e["event"] == "dispatch_unhandled"]
    assert warned == [8, 9]  # once each, whatever the reconciliations


async def test_a_dispatch_no_use_case_handles_is_logged_once_with_the_handled_types(
    servers: tuple[SimulatorServer, DispatchServer],
) -> None:
    """Real service, real library: one FOO before the controller starts (in the list),
    a BAR after (on the stream), updated, then a BATTERY_POWER and another FOO."""
    sim, dispatch_server = servers
    client = DispatchApiClient(server_url=dispatch_server.url, auth_key=KEY)
    later = datetime.now(UTC) + timedelta(minutes=5)

    async def create(kind: str) -> int:
        made = await client.create(
            microgrid_id=MICROGRID,
            type=kind,
            start_time=later,
            duration=timedelta(minutes=10),
            target=TargetIds(31),
            payload={"power_w": -5_000.0},
        )
        return int(made.id)

    config = parse_config(
        {
            "microgrid": {"url": sim.url},
            "dispatch": {"url": dispatch_server.url, "microgrid_id": 1, "startup_timeout": 10},
            "use_cases": [{"kind": "battery_power", "dispatch_types": [KIND]}],
        },
        environ={"EDGE_CONTROLLER_DISPATCH_KEY": KEY},
    )

    def unhandled(logs: list[MutableMapping[str, Any]]) -> list[tuple[object, object, object]]:
        return [
            (entry["dispatch_id"], entry["type"], entry["handled_types"])
            for entry in logs
            if entry["event"] == "dispatch_unhandled"
        ]

    async def logged(logs: list[MutableMapping[str, Any]], dispatch_id: int) -> None:
        async with asyncio.timeout(15):
            while dispatch_id not in [found[0] for found in unhandled(logs)]:
                await asyncio.sleep(0.02)

    try:
        before = await create("FOO")
        with capture_logs() as logs:
            async with Controller(config):
                await logged(logs, before)
                await stream_connected(dispatch_server, 10)
                after = await create("BAR")
                await logged(logs, after)
                await client.update(
                    microgrid_id=MICROGRID,
                    dispatch_id=DispatchId(after),
                    new_fields={"payload": {"power_w": -6_000.0}},
                )
                await create(KIND)
                # Events arrive in order: once the last one is logged, the update and
                # the handled dispatch have been seen.
                last = await create("FOO")
                await logged(logs, last)
        entries = [e for e in logs if e["event"] == "dispatch_unhandled"]
        assert all(e["log_level"] == "warning" for e in entries)
        assert unhandled(logs) == [
            (before, "FOO", [KIND]),
            (after, "BAR", [KIND]),
            (last, "FOO", [KIND]),
        ]
    finally:
        await client.disconnect()
