"""Library workarounds, in one place: what each one works around, for which version.

Every reach into a library's private attributes, and every call that goes around a
library's public API because of a bug or a gap in it, lives here, so that an upgrade
has one list to walk instead of a hunt through the package. Each workaround's
docstring names the library and the version it was written for (from `uv.lock`), what
it works around and what to do when the library fixes it; `WORKAROUNDS` (at the end)
holds the same versions for `tests/test_compat.py`, which fails — naming the
workaround to revisit — when an installed version moves, when a private attribute
disappears or changes shape, or when the behaviour worked around is gone.

Some workarounds are the logic of a module elsewhere and stay beside it; they are in
`WORKAROUNDS` too, so the list is complete:

- `controller.dispatch_broadcasting.DispatchBroadcastingActor` reconciles with the
  service's list, because frequenz-dispatch 1.0.4 lists before its stream connects
  (a dispatch created in between is never seen) and silently gives up a re-list that
  fails after a reconnect.
- `common.logging.StreamNoiseFilter` recognises frequenz-client-base 0.11.3's stream
  log lines by their text; `common.logging.KnownDuplicatePrefixFilter` drops the
  duplicate `CID` prefix warning that frequenz-core 1.6.0 logs because
  frequenz-client-common 0.3.8 defines two id classes with that prefix.

Libraries that only some workarounds need are imported inside them, so a module that
uses one workaround does not load every library (the SDK is the exception: a class
here derives from its `Actor`).
"""

from __future__ import annotations

import abc
import asyncio
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Literal

from frequenz.channels import timer
from frequenz.sdk.actor import Actor
from typing_extensions import override

from edge_controller.common.waiting import cancel_and_wait_all

if TYPE_CHECKING:
    from frequenz.api.microgrid.v1alpha18 import microgrid_pb2
    from frequenz.client.base.retry import Strategy as RetryStrategy
    from frequenz.client.microgrid import MicrogridApiClient
    from frequenz.client.weather import Client as WeatherClient
    from frequenz.dispatch import Dispatch, Dispatcher
    from grpc.aio import UnaryStreamCall

    TelemetryCall = UnaryStreamCall[
        microgrid_pb2.ReceiveElectricalComponentTelemetryStreamRequest,
        microgrid_pb2.ReceiveElectricalComponentTelemetryStreamResponse,
    ]


# ------------------------------------------------------------------ frequenz-sdk


class ActorWithOwnRestarts(Actor):
    """An SDK `Actor` whose restart loop a subclass writes: `_restart_loop`.

    frequenz-sdk 1.0.0rc2214 restarts a crashed `_run` in `Actor._run_loop`, a private
    method, after a fixed 2 s and with a count that never resets (frequenz-sdk #632,
    #745), and offers no hook to change either. `Actor.start()` runs `_run_loop` as the
    actor's task; this class overrides it to run `_restart_loop` instead, and shows the
    SDK's private `_is_cancelled` (set by `cancel()`) as `stopping`.

    When the SDK takes a restart policy (backoff, reset, limit) or offers a public
    hook for the loop, give it `SupervisedActor`'s policy and delete this class.
    """

    @override
    async def _run_loop(self) -> None:
        await self._restart_loop()

    @abc.abstractmethod
    async def _restart_loop(self) -> None:
        """Run `_run` until it returns or the actor stops, restarting it after crashes."""

    @property
    def stopping(self) -> bool:
        """Whether the actor was told to stop: a crash now is part of the stop."""
        return self._is_cancelled


# ------------------------------------------------------------- frequenz-channels


class Timer(timer.Timer):
    """frequenz-channels' `Timer`, whose `ready()` never swallows its caller's stop.

    frequenz-channels 1.12.0's `Timer.ready()` cancels its helper tasks after each
    wake-up with `try: await task / except CancelledError: pass`: a cancellation of
    the caller that lands in that one loop iteration is swallowed. An actor that
    iterates its timer then ticks on and its `stop()` never returns; under `select`
    the stop waits for the timer's next tick (5 minutes for the dispatch
    reconciliation). Here the library's `ready()` runs in a task of its own, which the
    caller awaits through `asyncio.wait` (it never swallows a cancellation): a
    cancelled caller cancels that task and stops at once. A task that swallowed its
    cancellation ends at the timer's `close()` or its next tick, unread.

    Use it as the library's: same constructor, same ticks. When `Timer.ready()` lets
    a cancellation through, import the library's `Timer` again.
    """

    @override
    async def ready(self) -> bool:
        waiting = asyncio.ensure_future(super().ready())
        try:
            await asyncio.wait((waiting,))
        except asyncio.CancelledError:
            waiting.cancel()
            raise
        return waiting.result()


# ------------------------------------------------- frequenz-dispatch and its client


def marked_deleted(dispatch: Dispatch) -> Dispatch:
    """A copy of `dispatch` marked deleted, as frequenz-dispatch sends one on a deletion.

    frequenz-dispatch 1.0.4's `Dispatch` is a frozen dataclass whose `__init__` takes a
    client dispatch (frequenz-client-dispatch 1.1.1's `Dispatch`), not its fields, so
    `dataclasses.replace(dispatch, deleted=True)` raises `TypeError`; the library
    itself marks a deletion by mutating a frozen instance (`_set_deleted`), which would
    change the dispatch under whoever else holds it. The copy is built from the client
    dispatch's fields instead; the original is untouched.

    When `dataclasses.replace` works on it (or the library offers a copy), use that.
    """
    from frequenz.client.dispatch.types import Dispatch as ClientDispatch
    from frequenz.dispatch import Dispatch

    fields = {f.name: getattr(dispatch, f.name) for f in dataclasses.fields(ClientDispatch)}
    return Dispatch(ClientDispatch(**fields), deleted=True)


async def stop_dispatcher(dispatcher: Dispatcher) -> None:
    """Stop `dispatcher` and its client's dispatch stream, so nothing outlives it.

    `Dispatcher.stop()` (frequenz-dispatch 1.0.4) disconnects the client, which ends a
    stream whose call is open, but leaves running a stream that waits to retry (the
    service was away): its next retry fails with `ClientNotConnected`, and a shutdown
    printed "Task exception was never retrieved" with a traceback into the journal.
    The task is cancelled here, after the stop. The broadcaster's own `stop()` is not
    used: closing its channels under the library's stopped merge receiver prints
    "never retrieved" errors of its own. Both live in private attributes
    (`DispatchApiClient._streams` of frequenz-client-dispatch 1.1.1,
    `GrpcStreamBroadcaster._task` of frequenz-client-base 0.11.3); read defensively, so
    a later version that moves them gets the plain stop (and `tests/test_compat.py`
    fails).

    When `Dispatcher.stop()` ends its client's retrying stream too, call it alone.
    """
    tasks = [getattr(stream, "_task", None) for stream in _client_streams(dispatcher.client)]
    await dispatcher.stop()
    await cancel_and_wait_all(task for task in tasks if isinstance(task, asyncio.Task))


# ---------------------------------------------------------- frequenz-client-weather


async def close_weather_client(client: WeatherClient) -> None:
    """Stop the client's stream broadcasters, then disconnect.

    frequenz-client-weather 0.3.1 keeps them in `Client._streams` (frequenz-client-base
    0.11.3 `GrpcStreamBroadcaster`s) and has no public way to stop them;
    `disconnect()` ends a stream whose call is open, but one that waits to retry runs
    on and dies with `ClientNotConnected` in a background task.

    When disconnecting (or a public call) stops the client's streams, use that.
    """
    streams = getattr(client, "_streams", None)
    for broadcaster in _client_streams(client):
        stop = getattr(broadcaster, "stop", None)
        if stop is not None:
            await stop()
    if isinstance(streams, dict):
        streams.clear()
    await client.disconnect()


def _client_streams(client: object) -> list[object]:
    """The stream broadcasters a frequenz client keeps in its private `_streams` dict."""
    streams = getattr(client, "_streams", None)
    return list(streams.values()) if isinstance(streams, dict) else []


# -------------------------------------------------------- frequenz-client-microgrid


RECONNECT_BACKOFF_OPTIONS: Final = (
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.min_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 1000),
)
"""gRPC channel options: try a lost server again after 0.2 s, at least every second."""


def microgrid_client(url: str, retry_strategy: RetryStrategy) -> MicrogridApiClient:
    """A connected `MicrogridApiClient` whose channel reconnects within a second.

    frequenz-client-microgrid 0.18.4 connects through frequenz-client-base 0.11.3, which
    builds the channel in `parse_grpc_uri` and offers no channel option but keep-alive
    and TLS, so gRPC's own reconnect backoff applies: 1 s
    after a lost connection, growing (jittered) from there. After a Microgrid API
    restart every telemetry stream then waits for the channel (1.1–1.3 s measured by
    `benchmarks/fault_tracking.py`) before the client's own retry can open it, and the
    targets come back up to 1.6 s after the server answers. Here the channel is built
    with `RECONNECT_BACKOFF_OPTIONS` added: the channel functions `parse_grpc_uri` calls
    are wrapped while the client connects (synchronously, in its constructor).

    When the client takes channel options (or a channel factory), pass them instead.
    """
    from frequenz.client.base import channel as base_channel
    from frequenz.client.microgrid import MicrogridApiClient

    originals = {name: getattr(base_channel, name) for name in _CHANNEL_FACTORIES}

    def with_backoff(make: Callable[..., object], options_at: int) -> Callable[..., object]:
        def made(*args: object, **kwargs: object) -> object:
            given = args[options_at] if len(args) > options_at else None
            options = [*(given if isinstance(given, (list, tuple)) else ())]
            front = args[:options_at]
            return make(
                *front, [*options, *RECONNECT_BACKOFF_OPTIONS], *args[options_at + 1 :], **kwargs
            )

        return made

    for name, options_at in _CHANNEL_FACTORIES.items():
        setattr(base_channel, name, with_backoff(originals[name], options_at))
    try:
        return MicrogridApiClient(url, retry_strategy=retry_strategy)
    finally:
        for name, original in originals.items():
            setattr(base_channel, name, original)


_CHANNEL_FACTORIES: Final = {"insecure_channel": 1, "secure_channel": 2}
"""The channel functions `parse_grpc_uri` calls, with the position of their options."""


def open_telemetry_call(
    client: MicrogridApiClient,
    request: microgrid_pb2.ReceiveElectricalComponentTelemetryStreamRequest,
) -> TelemetryCall:
    """One component's telemetry stream, as the raw gRPC call on the client's stub.

    frequenz-client-microgrid 0.18.4's `receive_component_data_samples_stream` converts
    every message into its own types and fans it out through a broadcaster and its
    channels: at 200 inverters (4 000 messages a second) that was most of the
    controller's CPU. The caller reads the call itself and converts each message with
    `microgrid.from_proto`, which keeps the client's semantics; the request and the
    messages are the client's API version's (v1alpha18 of frequenz-api-microgrid
    0.19.2).

    When the client streams cheaply enough (or the client moves to another API
    version), compare the CPU at 200 inverters (`benchmarks/`) before going back.
    """
    return client.stub.ReceiveElectricalComponentTelemetryStream(request)


async def set_power_first_reply(
    client: MicrogridApiClient,
    request: microgrid_pb2.SetElectricalComponentPowerRequest,
    timeout_s: float,
) -> object:
    """Send one SetElectricalComponentPower, read its first reply, and end the call.

    frequenz-client-microgrid 0.18.4's `set_component_power_active` reads only the
    first reply of this server-streaming call and never cancels it, so every command
    stays open (with its objects) for the client's fixed 60 s call timeout: thousands
    of live calls and long GC pauses on a busy site. Here the call ends as soon as its
    reply came, or after `timeout_s`.

    Returns the reply: a `SetElectricalComponentPowerResponse`, or `grpc.aio.EOF` when
    the server ended the stream without one.

    Raises:
        TimeoutError: no reply within `timeout_s`.
        grpc.aio.AioRpcError: the server refused or failed.

    When the client ends the call after its first reply, use `set_component_power_active`.
    """
    call = client.stub.SetElectricalComponentPower(request, timeout=timeout_s)
    try:
        async with asyncio.timeout(timeout_s):
            return await call.read()
    finally:
        call.cancel()


UnwrappedOperation = Literal["AckElectricalComponentError", "StartElectricalComponent"]
"""The Microgrid API calls frequenz-client-microgrid 0.18.4 offers no method for."""


async def call_unwrapped(
    client: MicrogridApiClient,
    operation: UnwrappedOperation,
    component_id: int,
    timeout_s: float,
) -> None:
    """Call `operation` for `component_id` through the client's generated stub.

    frequenz-client-microgrid 0.18.4 does not wrap AckElectricalComponentError or
    StartElectricalComponent, although the API version it speaks (v1alpha18) has them.

    Raises:
        TimeoutError: no answer within `timeout_s`.
        grpc.aio.AioRpcError: the server refused or failed.

    When the client wraps them, call its methods (they raise `ApiClientError`).
    """
    from frequenz.api.microgrid.v1alpha18 import microgrid_pb2

    async with asyncio.timeout(timeout_s):
        if operation == "AckElectricalComponentError":
            await client.stub.AckElectricalComponentError(
                microgrid_pb2.AckElectricalComponentErrorRequest(
                    electrical_component_id=component_id
                ),
                timeout=timeout_s,
            )
        else:
            await client.stub.StartElectricalComponent(
                microgrid_pb2.StartElectricalComponentRequest(electrical_component_id=component_id),
                timeout=timeout_s,
            )


# ------------------------------------------------------------------ the list


@dataclass(frozen=True, slots=True)
class Workaround:
    """One workaround: where it is and the library versions it was written for."""

    name: str
    """The dotted path of the function, class or module that holds it."""
    written_for: tuple[tuple[str, str], ...]
    """(distribution, version) pairs, as `uv.lock` names them."""


_HERE = __name__
_SDK = ("frequenz-sdk", "1.0.0rc2214")
_CHANNELS = ("frequenz-channels", "1.12.0")
_DISPATCH = ("frequenz-dispatch", "1.0.4")
_DISPATCH_CLIENT = ("frequenz-client-dispatch", "1.1.1")
_CLIENT_BASE = ("frequenz-client-base", "0.11.3")
_WEATHER_CLIENT = ("frequenz-client-weather", "0.3.1")
_MICROGRID_CLIENT = ("frequenz-client-microgrid", "0.18.4")
_MICROGRID_API = ("frequenz-api-microgrid", "0.19.2")

WORKAROUNDS: Final[tuple[Workaround, ...]] = (
    Workaround(f"{_HERE}.ActorWithOwnRestarts", (_SDK,)),
    Workaround(f"{_HERE}.Timer", (_CHANNELS,)),
    Workaround(f"{_HERE}.marked_deleted", (_DISPATCH, _DISPATCH_CLIENT)),
    Workaround(f"{_HERE}.stop_dispatcher", (_DISPATCH, _DISPATCH_CLIENT, _CLIENT_BASE)),
    Workaround(f"{_HERE}.close_weather_client", (_WEATHER_CLIENT, _CLIENT_BASE)),
    Workaround(f"{_HERE}.microgrid_client", (_CLIENT_BASE, _MICROGRID_CLIENT)),
    Workaround(f"{_HERE}.open_telemetry_call", (_MICROGRID_CLIENT, _MICROGRID_API)),
    Workaround(f"{_HERE}.set_power_first_reply", (_MICROGRID_CLIENT,)),
    Workaround(f"{_HERE}.call_unwrapped", (_MICROGRID_CLIENT,)),
    Workaround(
        "edge_controller.controller.dispatch_broadcasting.DispatchBroadcastingActor",
        (_DISPATCH,),
    ),
    Workaround("edge_controller.common.logging.StreamNoiseFilter", (_CLIENT_BASE,)),
    Workaround(
        "edge_controller.common.logging.KnownDuplicatePrefixFilter",
        (("frequenz-core", "1.6.0"), ("frequenz-client-common", "0.3.8")),
    ),
)
"""Every workaround, here or elsewhere, with the versions it was written for."""
