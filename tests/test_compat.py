"""The library workarounds of `common.compat`: each test fails when a library changes
under one, naming the workaround to revisit.

A failure here is not a bug in the controller: it says an upgrade (or a fix upstream)
made a workaround wrong or needless. Read the workaround's docstring, adapt or delete
it, then update its versions in `compat.WORKAROUNDS`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import importlib
import importlib.metadata
import inspect
import linecache
import warnings
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pytest
from frequenz.api.microgrid.v1alpha18 import microgrid_pb2
from frequenz.channels import Receiver
from frequenz.channels.timer import SkipMissedAndDrift
from frequenz.channels.timer import Timer as LibraryTimer
from frequenz.client.base.streaming import GrpcStreamBroadcaster, StreamRetrying
from frequenz.client.common.microgrid import MicrogridId
from frequenz.client.dispatch import DispatchApiClient
from frequenz.client.dispatch.recurrence import RecurrenceRule
from frequenz.client.dispatch.types import Dispatch as ClientDispatch
from frequenz.client.dispatch.types import DispatchId, TargetIds
from frequenz.client.microgrid import MicrogridApiClient
from frequenz.client.weather import Client as WeatherClient
from frequenz.client.weather import ForecastFeature, Location
from frequenz.dispatch import Dispatch, Dispatcher
from frequenz.sdk.actor import Actor
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_controller.common import compat
from edge_controller.common.clock import ManualClock
from edge_controller.common.compat import (
    RECONNECT_BACKOFF_OPTIONS,
    WORKAROUNDS,
    ActorWithOwnRestarts,
    Timer,
    Workaround,
    call_unwrapped,
    close_weather_client,
    marked_deleted,
    microgrid_client,
    open_telemetry_call,
    set_power_first_reply,
    stop_dispatcher,
)
from edge_controller.common.logging import DUPLICATE_CID_PREFIX
from edge_controller.common.waiting import cancel_and_wait_all
from edge_controller.controller.dispatch_broadcasting import connect_dispatcher
from edge_controller.microgrid.from_proto import BATTERY_METRICS, stream_request
from edge_controller.servers.dispatch.server import DispatchServer
from edge_controller.servers.weather.server import WeatherServer
from tests.harness import KEY
from tests.patience import CALL_TIMEOUT_S, PATIENCE_S
from tests.properties import examples


def revisit(name: str, why: str) -> str:
    """The failure message: which workaround to revisit, and what changed."""
    return f"{why}: revisit edge_controller.common.compat.{name}"


def resolve(dotted: str) -> object:
    """The object at a dotted path (module, then attributes)."""
    module, _, attribute = dotted.rpartition(".")
    return getattr(importlib.import_module(module), attribute)


# ------------------------------------------------------------------ the list


def test_every_workaround_in_compat_is_listed_with_the_versions_its_docstring_names() -> None:
    listed = {w.name: w for w in WORKAROUNDS}
    defined = [
        obj
        for name, obj in vars(compat).items()
        if not name.startswith("_")
        and (inspect.isfunction(obj) or inspect.isclass(obj))
        and obj.__module__ == compat.__name__
        and obj is not Workaround
    ]
    for obj in defined:
        name = f"{compat.__name__}.{obj.__qualname__}"
        assert name in listed, f"{name} is not in compat.WORKAROUNDS: list it with its versions"
        docstring = " ".join((obj.__doc__ or "").split())
        for library, version in listed[name].written_for:
            assert f"{library} {version}" in docstring, (
                f"{name}'s docstring does not name {library} {version}, the version listed"
            )


@pytest.mark.parametrize("workaround", WORKAROUNDS, ids=lambda w: w.name.rpartition(".")[2])
def test_each_listed_workaround_still_exists(workaround: Workaround) -> None:
    assert resolve(workaround.name) is not None


@pytest.mark.parametrize(
    ("workaround", "library", "version"),
    [(w, library, version) for w in WORKAROUNDS for library, version in w.written_for],
    ids=lambda value: value.name.rpartition(".")[2] if isinstance(value, Workaround) else value,
)
def test_the_installed_library_is_the_version_the_workaround_was_written_for(
    workaround: Workaround, library: str, version: str
) -> None:
    installed = importlib.metadata.version(library)
    assert installed == version, (
        f"{library} is {installed}, {workaround.name} was written for {version}: revisit it, "
        "then update its version in compat.WORKAROUNDS"
    )


# ------------------------------------------------------------------ frequenz-sdk


class Recording(ActorWithOwnRestarts):
    def __init__(self) -> None:
        super().__init__(name="recording")
        self.loop_ran = asyncio.Event()

    async def _run(self) -> None:
        await asyncio.Event().wait()

    async def _restart_loop(self) -> None:
        self.loop_ran.set()
        await self._run()


async def test_starting_an_sdk_actor_still_runs_the_loop_we_replace() -> None:
    actor = Recording()
    actor.start()
    try:
        async with asyncio.timeout(PATIENCE_S):
            await actor.loop_ran.wait()
    except TimeoutError:
        pytest.fail(
            revisit(
                "ActorWithOwnRestarts",
                "Actor.start() no longer runs Actor._run_loop: SupervisedActor's restart "
                "policy is not applied",
            )
        )
    finally:
        await actor.stop()


async def test_stopping_follows_the_sdks_private_cancel_flag() -> None:
    actor = Recording()
    assert "_is_cancelled" in vars(actor), revisit(
        "ActorWithOwnRestarts.stopping", "frequenz-sdk's Actor has no _is_cancelled any more"
    )
    actor.start()
    assert not actor.stopping
    actor.cancel()
    assert actor.stopping, revisit(
        "ActorWithOwnRestarts.stopping", "Actor.cancel() no longer sets _is_cancelled"
    )
    await actor.stop()


def test_the_sdk_actor_still_takes_no_restart_policy() -> None:
    parameters = list(inspect.signature(Actor.__init__).parameters)
    assert parameters == ["self", "name"], revisit(
        "ActorWithOwnRestarts",
        f"Actor.__init__ takes {parameters} now: can the SDK restart with a policy?",
    )
    delay = Actor.RESTART_DELAY
    assert delay == timedelta(seconds=2), revisit(
        "ActorWithOwnRestarts", f"the SDK's restart delay is {delay} now"
    )


# ------------------------------------------------------------- frequenz-channels


def suspended_at(task: asyncio.Task[Any]) -> tuple[object, str] | None:
    """The code and the source line where `task`'s innermost coroutine waits."""
    coro: Any = task.get_coro()
    frame = None
    while coro is not None and hasattr(coro, "cr_frame"):
        frame = coro.cr_frame or frame
        coro = coro.cr_await
    if frame is None:
        return None
    return frame.f_code, linecache.getline(frame.f_code.co_filename, frame.f_lineno).strip()


SWALLOWING_WINDOW = (LibraryTimer.ready.__code__, "await task")
"""Where frequenz-channels 1.12.0's `Timer.ready()` swallows a cancellation."""


async def cancel_in_the_window(ticks: LibraryTimer) -> tuple[asyncio.Task[None], bool]:
    """Cancel a task iterating `ticks` while a `Timer.ready()` is in its window.

    Steps the loop one iteration at a time until some task is suspended where the
    library's `ready()` swallows a cancellation, then cancels the iterating task.
    Returns that task and whether it stopped.
    """

    async def iterate() -> None:
        async for _ in ticks:
            pass

    iterating = asyncio.create_task(iterate())
    try:
        async with asyncio.timeout(PATIENCE_S):
            while not any(suspended_at(t) == SWALLOWING_WINDOW for t in asyncio.all_tasks()):
                await asyncio.sleep(0)
        iterating.cancel()
        with contextlib.suppress(asyncio.CancelledError, TimeoutError):
            async with asyncio.timeout(0.2):  # 200 ticks of 1 ms
                await asyncio.shield(iterating)
        return iterating, iterating.cancelled()
    finally:
        ticks.close()  # ends a task that swallowed its cancellation
        await asyncio.wait([iterating, *asyncio.all_tasks() - {asyncio.current_task()}], timeout=1)


async def test_the_channels_timer_still_swallows_a_cancellation_after_a_wake_up() -> None:
    _, stopped = await cancel_in_the_window(
        LibraryTimer(timedelta(milliseconds=1), SkipMissedAndDrift())
    )
    assert not stopped, revisit("Timer", "frequenz-channels' Timer.ready() lets it through now")


async def test_a_compat_timer_stops_its_caller_even_in_the_window() -> None:
    iterating, stopped = await cancel_in_the_window(
        Timer(timedelta(milliseconds=1), SkipMissedAndDrift())
    )
    assert stopped, revisit("Timer", "a cancellation in Timer.ready()'s window was swallowed")
    assert iterating.cancelled()


# ------------------------------------------------- frequenz-dispatch and its client


def client_dispatch(
    dispatch_id: int,
    *,
    duration_s: int | None,
    active: bool,
    dry_run: bool,
    power_w: float,
    started_minutes_ago: int,
) -> ClientDispatch:
    now = datetime.now(UTC)
    return ClientDispatch(
        id=DispatchId(dispatch_id),
        type="BATTERY_POWER",
        start_time=now - timedelta(minutes=started_minutes_ago),
        duration=None if duration_s is None else timedelta(seconds=duration_s),
        target=TargetIds(11, 21),
        active=active,
        dry_run=dry_run,
        payload={"power_w": power_w},
        recurrence=RecurrenceRule(),
        create_time=now - timedelta(hours=1),
        update_time=now,
    )


@settings(max_examples=examples(200))
@given(
    dispatch_id=st.integers(1, 2**31),
    duration_s=st.none() | st.integers(1, 86_400),
    active=st.booleans(),
    dry_run=st.booleans(),
    power_w=st.floats(-1e6, 1e6),
    started_minutes_ago=st.integers(-60, 60),
)
def test_a_dispatch_marked_deleted_is_the_same_dispatch_stopped_and_the_original_is_untouched(
    dispatch_id: int,
    duration_s: int | None,
    active: bool,
    dry_run: bool,
    power_w: float,
    started_minutes_ago: int,
) -> None:
    original = Dispatch(
        client_dispatch(
            dispatch_id,
            duration_s=duration_s,
            active=active,
            dry_run=dry_run,
            power_w=power_w,
            started_minutes_ago=started_minutes_ago,
        )
    )
    copy = marked_deleted(original)
    assert copy.deleted
    assert not copy.started  # what the use cases read: a deleted dispatch never runs
    assert not original.deleted
    for field in dataclasses.fields(ClientDispatch):
        assert getattr(copy, field.name) == getattr(original, field.name), field.name


def test_a_dispatch_still_cannot_be_copied_with_dataclasses_replace() -> None:
    dispatch = Dispatch(
        client_dispatch(
            7, duration_s=60, active=True, dry_run=False, power_w=0.0, started_minutes_ago=0
        )
    )
    try:
        dataclasses.replace(dispatch, deleted=True)
    except TypeError:
        return
    pytest.fail(
        revisit("marked_deleted", "dataclasses.replace works on frequenz-dispatch's Dispatch")
    )


def test_the_dispatch_adds_only_deleted_to_the_clients_fields() -> None:
    own = {f.name for f in dataclasses.fields(Dispatch)}
    client = {f.name for f in dataclasses.fields(ClientDispatch)}
    assert own - client == {"deleted"}, revisit(
        "marked_deleted", f"frequenz-dispatch's Dispatch has fields of its own {own - client}"
    )


async def test_the_dispatch_clients_stream_is_where_stop_dispatcher_looks() -> None:
    # Nothing listens on port 1: the stream retries, which is all this needs.
    client = DispatchApiClient(server_url="grpc://127.0.0.1:1?ssl=false", auth_key=KEY)
    try:
        client.stream(MicrogridId(1))
        streams = vars(client).get("_streams")
        assert isinstance(streams, dict), revisit(
            "stop_dispatcher", "DispatchApiClient has no _streams dict any more"
        )
        tasks = [getattr(stream, "_task", None) for stream in streams.values()]
        assert tasks, revisit("stop_dispatcher", "DispatchApiClient.stream() fills no _streams")
        assert all(isinstance(task, asyncio.Task) for task in tasks), revisit(
            "stop_dispatcher", "the client's stream broadcaster has no _task any more"
        )
    finally:
        await cancel_and_wait_all(
            task
            for stream in dict(vars(client).get("_streams") or {}).values()
            if isinstance(task := getattr(stream, "_task", None), asyncio.Task)
        )
        await client.disconnect()


async def until_retrying(events: Receiver[object]) -> None:
    """Wait until a stream broadcaster's call failed and it waits to retry."""
    async with asyncio.timeout(PATIENCE_S):
        async for event in events:
            if isinstance(event, StreamRetrying):
                return


def only_stream(client: object) -> GrpcStreamBroadcaster[Any, Any]:
    streams = list(dict(vars(client).get("_streams") or {}).values())
    assert len(streams) == 1, f"expected one stream, got {streams}"
    return cast("GrpcStreamBroadcaster[Any, Any]", streams[0])


@contextlib.asynccontextmanager
async def dispatcher_waiting_to_retry(
    tmp_path: Path,
) -> AsyncIterator[tuple[Dispatcher, GrpcStreamBroadcaster[Any, Any]]]:
    """A connected `Dispatcher` whose service went away: its stream waits to retry.

    (While its call is open, the channel's close cancels the stream's task: only a
    stream waiting to retry outlives the client.)
    """
    async with DispatchServer(tmp_path / "d.db", keys=frozenset({KEY})) as server:
        dispatcher = await connect_dispatcher(server.url, 1, KEY, timeout_s=PATIENCE_S)
        stream = only_stream(dispatcher.client)
        events = stream.new_receiver(include_events=True)
    await until_retrying(events)
    try:
        yield dispatcher, stream
    finally:
        await cancel_and_wait_all([stream._task])


async def test_stopping_a_dispatcher_still_leaves_a_retrying_stream_running(
    tmp_path: Path,
) -> None:
    async with dispatcher_waiting_to_retry(tmp_path) as (dispatcher, stream):
        await dispatcher.stop()
        still_running = stream.is_running
    assert still_running, revisit(
        "stop_dispatcher", "Dispatcher.stop() ends its client's retrying stream itself now"
    )


async def test_stop_dispatcher_ends_a_retrying_stream(tmp_path: Path) -> None:
    async with dispatcher_waiting_to_retry(tmp_path) as (dispatcher, stream):
        await stop_dispatcher(dispatcher)
        assert not stream.is_running, revisit(
            "stop_dispatcher", "the client's stream task is not where it looks any more"
        )


# ---------------------------------------------------------- frequenz-client-weather


async def test_disconnecting_the_weather_client_still_leaves_a_retrying_stream_running() -> None:
    clock = ManualClock(datetime(2026, 6, 21, 6, 30, tzinfo=UTC))
    async with WeatherServer("127.0.0.1:0", clock=clock) as server:
        client = WeatherClient(server.url)
        await client.stream_live_forecast(
            [Location(latitude=52.52, longitude=13.40, country_code="DE")],
            [ForecastFeature.TEMPERATURE_2_METRE],
        )
        streams = vars(client).get("_streams")
        assert isinstance(streams, dict), revisit(
            "close_weather_client", "the weather Client has no _streams dict any more"
        )
        stream = only_stream(client)
        events = stream.new_receiver(include_events=True)
    try:
        await until_retrying(events)
        await client.disconnect()
        still_running = stream.is_running
    finally:
        await close_weather_client(client)
    assert still_running, revisit(
        "close_weather_client", "disconnecting the weather client ends its retrying stream now"
    )
    assert not stream.is_running, revisit(
        "close_weather_client", "the client's stream broadcasters are not where it looks"
    )
    assert streams == {}


# -------------------------------------------------------- frequenz-client-microgrid


async def test_the_microgrid_clients_channel_is_built_with_the_reconnect_backoff(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from frequenz.client.base import channel as base_channel
    from frequenz.client.base.retry import LinearBackoff

    built: list[object] = []
    plain = base_channel.insecure_channel  # type: ignore[attr-defined]

    def recording(target: str, options: Any = None, **kwargs: Any) -> object:
        built.append(options)
        return plain(target, options, **kwargs)

    monkeypatch.setattr(base_channel, "insecure_channel", recording)
    client = microgrid_client("grpc://127.0.0.1:1?ssl=false", LinearBackoff(interval=0.5))
    try:
        assert len(built) == 1, revisit(
            "microgrid_client", "parse_grpc_uri no longer builds its channel through the module"
        )
        assert set(RECONNECT_BACKOFF_OPTIONS) <= set(cast("list[Any]", built[0]))
        # the client's own options (keep-alive) are kept beside them
        assert any(name.startswith("grpc.keepalive") for name, _ in cast("list[Any]", built[0]))
    finally:
        await client.disconnect()
    assert base_channel.insecure_channel is recording  # type: ignore[attr-defined]


def test_the_microgrid_client_still_offers_no_ack_or_start() -> None:
    source = inspect.getsource(MicrogridApiClient)
    for operation in ("AckElectricalComponentError", "StartElectricalComponent"):
        assert operation not in source, revisit(
            "call_unwrapped", f"MicrogridApiClient calls {operation} itself now: use its method"
        )


def test_the_microgrid_clients_set_power_still_leaves_its_call_open() -> None:
    source = inspect.getsource(MicrogridApiClient.set_component_power_active)
    changed = revisit(
        "set_power_first_reply",
        "set_component_power_active reads its call differently now: does it end it?",
    )
    assert "anext(" in source, changed
    assert ".cancel(" not in source, changed


async def test_the_stub_calls_reach_the_simulator(client: MicrogridApiClient) -> None:
    reply = await set_power_first_reply(
        client,
        microgrid_pb2.SetElectricalComponentPowerRequest(
            electrical_component_id=10,
            power_type=microgrid_pb2.POWER_TYPE_ACTIVE,
            power=0.0,
            request_lifetime=60,
        ),
        CALL_TIMEOUT_S,
    )
    assert isinstance(reply, microgrid_pb2.SetElectricalComponentPowerResponse)
    assert reply.HasField("valid_until_time"), revisit(
        "set_power_first_reply", "the first reply carries no valid_until_time"
    )
    await call_unwrapped(client, "StartElectricalComponent", 10, CALL_TIMEOUT_S)
    call = open_telemetry_call(client, stream_request(11, BATTERY_METRICS))
    try:
        async with asyncio.timeout(PATIENCE_S):
            message = await call.read()
    finally:
        call.cancel()
    assert isinstance(message, microgrid_pb2.ReceiveElectricalComponentTelemetryStreamResponse)
    assert message.telemetry.electrical_component_id == 11


# ------------------------------------------------- workarounds kept beside their logic


def test_client_base_still_logs_the_stream_lines_the_noise_filter_recognises() -> None:
    import frequenz.client.base.streaming

    source = inspect.getsource(frequenz.client.base.streaming)
    for line in (
        '"%s: starting to stream"',
        '"%s: stopping the stream"',
        '"%s: connection ended, retrying',
    ):
        assert line in source, (
            f"frequenz-client-base no longer logs {line}: "
            "revisit edge_controller.common.logging.StreamNoiseFilter"
        )


def test_both_component_id_classes_still_register_the_cid_prefix() -> None:
    import frequenz.core.id
    from frequenz.client.common.microgrid.electrical_components import ElectricalComponentId

    source = inspect.getsource(frequenz.core.id)
    assert "Prefix '%s' is already registered. ID prefixes must be unique." in source
    assert DUPLICATE_CID_PREFIX.startswith("Prefix 'CID' is already registered")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from frequenz.client.common.microgrid.components import ComponentId

        old = ComponentId(1)
    assert (old.str_prefix, ElectricalComponentId(1).str_prefix) == ("CID", "CID"), (
        "the two component id classes no longer share the CID prefix: "
        "revisit edge_controller.common.logging.KnownDuplicatePrefixFilter"
    )
