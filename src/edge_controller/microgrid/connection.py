"""The controller's one connection to the site: graph, telemetry streams, set-power.

`MicrogridConnection` is the imperative shell around the pure `graph` and
`telemetry` modules::

    connection = MicrogridConnection("grpc://127.0.0.1:50051?ssl=false")
    await connection.start()            # lists the graph, pairs, opens the streams
    connection.pairs.as_dict()          # {10: (11,), 20: (21,), ...}
    connection.direct.pv_inverter_ids   # (50,): PV inverters and EV chargers, commanded directly
    connection.cache.battery(11, now)   # fresh telemetry, or None
    connection.cache.meter(connection.grid_meter_id, now)   # grid power, + import
    await connection.set_power(10, -1000.0, timeout_s=2.0)   # W, + charges, − discharges
    await connection.stop()

Characteristics:

- One telemetry stream per battery (SoC, DC power, capacity, state), per battery
  inverter, PV inverter and EV charger (AC active power with its bounds, state; an EV
  charger's cable state) and for the grid meter when there is exactly one
  (AC active power: + import, − export), each read by its own task into the
  `TelemetryCache`. A stream that fails is resumed by the client after
  `reconnect_interval_s` (plus up to `reconnect_jitter_s`); meanwhile readings age
  and the cache reports them stale. An outage is logged per component, not per
  attempt: `stream_retrying` at the first failed attempt, then at most once per
  `retry_log_interval` with the attempts so far (`attempts`, `suppressed`, `since`),
  and `stream_recovered` when data flows again. Each stream is one task reading the
  gRPC call on the client's stub, and each message is read straight from protobuf
  into a reading (`from_proto`): the client's conversion and its broadcast channels
  were most of the controller's CPU at 200 inverters (4 000 messages a second).
- Each sample's time goes to `telemetry_gaps`; the first one after `stream_recovered`
  counts as a gap however short the silence (a restarted server may have lost its
  commands: the distributor re-sends them at once).
  A stream the server ends cleanly (status OK) is never resumed by client 0.18: it is
  logged as `telemetry_stream_ended`, and its component's readings go stale.
- `set_power` gives up after `timeout_s` (the client's own deadline is a fixed 60 s)
  and lets the client's errors through: the caller decides what each one means.
"""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import Callable
from datetime import datetime, timedelta
from types import TracebackType

import structlog
from frequenz.api.microgrid.v1alpha18 import microgrid_pb2
from frequenz.client.base import conversion
from frequenz.client.base.retry import LinearBackoff
from frequenz.client.microgrid import ApiClientError, MicrogridApiClient
from frequenz.client.microgrid.metrics import Metric
from grpc.aio import AioRpcError

from edge_controller.common.clock import Clock, WallClock
from edge_controller.common.compat import (
    UnwrappedOperation,
    call_unwrapped,
    microgrid_client,
    open_telemetry_call,
    set_power_first_reply,
)
from edge_controller.common.logging import quiet_libraries
from edge_controller.common.stream_retries import RetryLog
from edge_controller.common.waiting import cancel_and_wait_all
from edge_controller.microgrid.direct import DirectComponents, direct_components
from edge_controller.microgrid.from_client import graph_inputs, rated_active_power
from edge_controller.microgrid.from_proto import (
    BATTERY_METRICS,
    EV_CHARGER_METRICS,
    INVERTER_METRICS,
    METER_METRICS,
    Telemetry,
    battery_reading,
    ev_charger_reading,
    inverter_reading,
    meter_reading,
    stream_request,
)
from edge_controller.microgrid.graph import (
    BatteryPairs,
    ComponentRole,
    find_grid_meter,
    inverters_below_meters,
    pair_batteries,
)
from edge_controller.microgrid.telemetry import (
    Reading,
    TelemetryCache,
)
from edge_controller.microgrid.telemetry_gaps import GapTracker

MIN_LIFETIME = timedelta(seconds=10)
"""The shortest command lifetime the Microgrid API accepts."""
MAX_LIFETIME = timedelta(seconds=900)
"""The longest command lifetime the Microgrid API accepts."""
RETRY_LOG_INTERVAL = timedelta(seconds=10)
"""While a telemetry stream keeps failing, one `stream_retrying` line per component
this often (the attempts in between are counted in the next line)."""
STREAM_BUFFER = 50
"""Messages buffered per telemetry stream (the client's default)."""


class NotStartedError(RuntimeError):
    """The connection was used before `start()` (or after `stop()`)."""


def _short_error(error: BaseException | None) -> str | None:
    """One line for a stream's error: `UNAVAILABLE: failed to connect ...`."""
    if error is None:
        return None
    if isinstance(error, AioRpcError):
        return f"{error.code().name}: {error.details()}"
    return repr(error)


class MicrogridConnection:
    """The site as the controller sees it: battery pairs, fresh telemetry, set-power.

    Create it with the Microgrid API URL (`grpc://host:port?ssl=false`), `start()` it
    on the running event loop, `stop()` it at the end (or use `async with`).
    """

    def __init__(
        self,
        url: str,
        *,
        clock: Clock | None = None,
        stale_after: timedelta = timedelta(seconds=10),
        reconnect_interval_s: float = 0.5,
        reconnect_jitter_s: float = 0.1,
        retry_log_interval: timedelta = RETRY_LOG_INTERVAL,
    ) -> None:
        """Prepare (not yet open) a connection to `url`.

        `clock` decides which components and connections are operational at start-up,
        stamps a command's expiry when the server does not tell it and times the
        outage lines; `stale_after` is the cache's freshness limit; a failed telemetry
        stream is retried after `reconnect_interval_s` plus a random wait of up to
        `reconnect_jitter_s`, and logged at most once per `retry_log_interval` per
        component.
        """
        self.url = url
        self._clock: Clock = clock if clock is not None else WallClock()
        self._reconnect_interval_s = reconnect_interval_s
        self._reconnect_jitter_s = reconnect_jitter_s
        self._retry_log_interval = retry_log_interval
        self.retry_attempts: dict[int, int] = {}
        """Failed stream attempts per component since start (every one, logged or not)."""
        self.cache = TelemetryCache(stale_after)
        self.telemetry_gaps = GapTracker()
        """Each component's gaps in its sample times, judged as the samples arrive."""
        self._client: MicrogridApiClient | None = None
        self._pairs: BatteryPairs | None = None
        self._direct: DirectComponents | None = None
        self._grid_meter_id: int | None = None
        self._inverters_below: dict[int, tuple[int, ...]] = {}
        self._tasks: list[asyncio.Task[None]] = []

        self._log = structlog.get_logger(__name__).bind(url=url)

    # ------------------------------------------------------------- lifecycle

    @property
    def pairs(self) -> BatteryPairs:
        """Each usable battery inverter with its batteries, as found at start-up.

        `pairs.left_out` names the batteries and inverters left out, with the reason.

        Raises:
            NotStartedError: before `start()`.
        """
        if self._pairs is None:
            raise NotStartedError("the microgrid connection is not started")
        return self._pairs

    @property
    def direct(self) -> DirectComponents:
        """The EV chargers and PV inverters, with their rated power, as found at start-up.

        Each has a telemetry stream into the cache from `start()` (`cache.ev_charger`,
        `cache.inverter` for a PV inverter); they are commanded by id (`set_power`).

        Raises:
            NotStartedError: before `start()`.
        """
        if self._direct is None:
            raise NotStartedError("the microgrid connection is not started")
        return self._direct

    @property
    def grid_meter_id(self) -> int | None:
        """The meter directly below the grid connection point, if exactly one.

        Its telemetry is streamed into the cache (`cache.meter(id, now)`) from `start()`.
        """
        return self._grid_meter_id

    @property
    def inverters_below(self) -> dict[int, tuple[int, ...]]:
        """Each meter with battery inverters below it, and those inverters.

        Every such meter's telemetry is streamed into the cache from `start()`, so a
        feeder-meter limit (`[[grid.meters]]`) added by a live edit has data at once.
        """
        return dict(self._inverters_below)

    async def start(self) -> None:
        """Connect, read the component graph, pair batteries, open the streams.

        A battery the pairing leaves out (no battery inverter, several inverters, ...)
        is logged once (`battery_left_out`, with the reason; `inverter_left_out` for an
        inverter), gets no stream and is never commanded; the rest of the site runs.

        Raises:
            ComponentGraphError: no battery is usable (every one is left out); it names
                every reason; nothing stays open.
            ApiClientError: listing components or connections failed.
            RuntimeError: already started.
        """
        if self._client is not None:
            raise RuntimeError("the microgrid connection is already started")
        quiet_libraries()  # the client libraries' per-stream lines to debug
        client = microgrid_client(
            self.url,
            LinearBackoff(interval=self._reconnect_interval_s, jitter=self._reconnect_jitter_s),
        )
        try:
            components = list(await client.list_components())
            connections = list(await client.list_connections())
            nodes, links = graph_inputs(components, connections, self._clock.now())
            pairs = pair_batteries(nodes, links)
        except BaseException:
            await client.__aexit__(None, None, None)
            raise
        self._client = client
        self._pairs = pairs
        self._direct = direct_components(nodes, rated_active_power(components))
        self._grid_meter_id = find_grid_meter(nodes, links)
        # Only the inverters the controller drives: a left-out one's power is part of
        # what its meters measure besides them, like a PV inverter's.
        usable = set(pairs.inverter_ids)
        self._inverters_below = {
            meter_id: kept
            for meter_id, inverters in inverters_below_meters(nodes, links).items()
            if (kept := tuple(i for i in inverters if i in usable))
        }
        for item in pairs.left_out:
            if item.role is ComponentRole.BATTERY:
                self._log.warning("battery_left_out", battery=item.component_id, reason=item.reason)
            else:
                self._log.warning(
                    "inverter_left_out", inverter=item.component_id, reason=item.reason
                )
        for battery_id in pairs.battery_ids:
            self._subscribe(battery_id, BATTERY_METRICS, battery_reading)
        for inverter_id in pairs.inverter_ids:
            self._subscribe(inverter_id, INVERTER_METRICS, inverter_reading)
        for pv_inverter_id in self._direct.pv_inverter_ids:
            self._subscribe(pv_inverter_id, INVERTER_METRICS, inverter_reading)
        for charger_id in self._direct.ev_charger_ids:
            self._subscribe(charger_id, EV_CHARGER_METRICS, ev_charger_reading)
        meters = set(self._inverters_below)
        if self._grid_meter_id is not None:
            meters.add(self._grid_meter_id)
        for meter_id in sorted(meters):
            self._subscribe(meter_id, METER_METRICS, meter_reading)
        self._log.info(
            "microgrid_connected",
            pairs={str(k): list(v) for k, v in pairs.as_dict().items()},
            grid_meter=self._grid_meter_id,
            pv_inverters=list(self._direct.pv_inverter_ids),
            ev_chargers=list(self._direct.ev_charger_ids),
            meters_with_batteries=sorted(self._inverters_below),
            streams=len(self._tasks),
        )

    def _subscribe(
        self,
        component_id: int,
        metrics: tuple[Metric, ...],
        convert: Callable[[Telemetry], Reading | None],
    ) -> None:
        self._tasks.append(
            asyncio.create_task(
                self._stream(component_id, stream_request(component_id, metrics), convert),
                name=f"telemetry-{component_id}",
            )
        )

    async def _stream(
        self,
        component_id: int,
        request: microgrid_pb2.ReceiveElectricalComponentTelemetryStreamRequest,
        convert: Callable[[Telemetry], Reading | None],
    ) -> None:
        """Read one component's stream into the cache, re-opening it when it fails.

        One task per stream reads the gRPC call itself: no broadcast channel, merger or
        second task between the message and the cache (at 4 000 messages a second they
        cost a third of the controller's CPU). A failed attempt is logged at most once
        per `retry_log_interval` (`stream_retrying`); the stream is opened again after
        `reconnect_interval_s` plus up to `reconnect_jitter_s`, and the first data after
        that ends the outage (`stream_recovered`) and counts as a telemetry gap however
        short (a restarted server may have lost its commands). A stream the server
        ends cleanly is not re-opened (`telemetry_stream_ended`), as client 0.18 did.
        """
        client = self._client
        assert client is not None
        log = self._log.bind(component_id=component_id)
        retries = RetryLog(self._retry_log_interval)
        reconnected = False  # the stream failed and delivers again: its next sample tells
        while True:
            call = open_telemetry_call(client, request)
            retries.restarted()
            try:
                async for message in call:
                    recovered = retries.received()
                    if recovered is not None:
                        log.info(
                            "stream_recovered",
                            attempts=recovered.attempts,
                            since=recovered.since.isoformat(),
                        )
                        reconnected = True
                    try:
                        reading = convert(message.telemetry)
                    except Exception as error:  # a bad message must not end the stream
                        log.error("telemetry_conversion_failed", error=repr(error))
                        continue
                    if reading is not None:
                        self.cache.update(reading)
                        self.telemetry_gaps.sampled(
                            component_id, reading.sampled_at, reconnected=reconnected
                        )
                        reconnected = False
            except Exception as error:  # a stream must not end for good on any error
                delay = self._reconnect_interval_s + random.uniform(0, self._reconnect_jitter_s)
                if not isinstance(error, AioRpcError):
                    log.error("telemetry_stream_failed", error=repr(error))
                self.retry_attempts[component_id] = self.retry_attempts.get(component_id, 0) + 1
                line = retries.failed(self._clock.now())
                if line is not None:
                    log.warning(
                        "stream_retrying",
                        attempts=line.attempts,
                        suppressed=line.suppressed,
                        since=line.since.isoformat(),
                        retry_in_s=round(delay, 3),
                        error=_short_error(error),
                    )
                await asyncio.sleep(delay)
                continue
            finally:
                call.cancel()
            log.warning("telemetry_stream_ended")
            return

    async def stop(self) -> None:
        """Cancel the stream tasks and close the client; safe to call twice."""
        tasks, self._tasks = self._tasks, []
        client, self._client = self._client, None

        self._pairs = None
        self._direct = None
        try:
            await cancel_and_wait_all(tasks)
        finally:
            if client is not None:
                await client.__aexit__(None, None, None)
            self._log.info("microgrid_disconnected")

    async def __aenter__(self) -> MicrogridConnection:
        """Start the connection."""
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Stop the connection."""
        await self.stop()

    # ------------------------------------------------------------- control

    async def ack_error(self, component_id: int, *, timeout_s: float = 5.0) -> None:
        """Acknowledge a component's error (AckElectricalComponentError).

        Client 0.18 does not wrap this RPC: it is called through the generated stub.

        Raises:
            TimeoutError: no answer within `timeout_s`.
            ApiClientError: the server refused or failed.
            NotStartedError: before `start()`.
        """
        await self._state_call("AckElectricalComponentError", component_id, timeout_s)

    async def start_component(self, component_id: int, *, timeout_s: float = 5.0) -> None:
        """Start a component (StartElectricalComponent), e.g. out of standby.

        Raises:
            TimeoutError: no answer within `timeout_s`.
            ApiClientError: the server refused or failed.
            NotStartedError: before `start()`.
        """
        await self._state_call("StartElectricalComponent", component_id, timeout_s)

    async def _state_call(
        self, operation: UnwrappedOperation, component_id: int, timeout_s: float
    ) -> None:
        client = self._client
        if client is None:
            raise NotStartedError("the microgrid connection is not started")
        try:
            await call_unwrapped(client, operation, component_id, timeout_s)
        except AioRpcError as error:
            raise ApiClientError.from_grpc_error(
                server_url=self.url, operation=operation, grpc_error=error
            ) from error

    async def set_power(
        self,
        inverter_id: int,
        power_w: float,
        *,
        timeout_s: float,
        lifetime: timedelta = timedelta(seconds=60),
    ) -> datetime:
        """Command `inverter_id` to `power_w` W (+ charges, − discharges) for `lifetime`.

        Any controllable component: a battery inverter, an EV charger (+ charges the
        car), a PV inverter (− limits its production to that much). Returns the time
        until which the command holds: the server's answer, or now + `lifetime` by the
        clock if the server gives none. The component floors the magnitude to its
        resolution; read the result in telemetry.

        Raises:
            ValueError: `lifetime` outside 10–900 s, `timeout_s` not > 0, or a NaN power.
            TimeoutError: no answer within `timeout_s`.
            ApiClientError: the server refused or failed (e.g. `OperationOutOfRange`
                for a power outside the bounds, `EntityNotFound`, `ServiceUnavailable`).
            NotStartedError: before `start()`.
        """
        if not MIN_LIFETIME <= lifetime <= MAX_LIFETIME:
            raise ValueError(f"lifetime must be between 10 s and 900 s, got {lifetime}")
        if not timeout_s > 0:
            raise ValueError(f"timeout_s must be > 0, got {timeout_s}")
        client = self._client
        if client is None:
            raise NotStartedError("the microgrid connection is not started")
        if math.isnan(power_w):
            raise ValueError("power cannot be NaN")
        # Not `set_component_power_active`: it leaves every call open for 60 s (compat).
        request = microgrid_pb2.SetElectricalComponentPowerRequest(
            electrical_component_id=inverter_id,
            power_type=microgrid_pb2.POWER_TYPE_ACTIVE,
            power=power_w,
            request_lifetime=round(lifetime.total_seconds()),
        )
        try:
            reply = await set_power_first_reply(client, request, timeout_s)
        except AioRpcError as error:
            raise ApiClientError.from_grpc_error(
                server_url=self.url, operation="SetElectricalComponentPower", grpc_error=error
            ) from error
        if not isinstance(reply, microgrid_pb2.SetElectricalComponentPowerResponse) or not (
            reply.HasField("valid_until_time")
        ):
            valid_until = self._clock.now() + lifetime
        else:
            valid_until = conversion.to_datetime(reply.valid_until_time)
        self._log.debug("power_set", inverter=inverter_id, power_w=power_w, valid_until=valid_until)
        return valid_until
