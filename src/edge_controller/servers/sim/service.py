"""The simulator's operations, shared by both Microgrid API servicers.

`SimService` owns the model, steps it on a timer, fans telemetry out to subscribers
and applies faults to requests. The v1alpha18 and v1 servicers only translate
protobuf messages to these calls and `SimError`s to status codes, so both APIs show
one and the same site.

Telemetry is built once per tick per component, as one `ComponentSample` object that
every subscriber of that component receives; the servicers cache its protobuf form by
object identity, so N subscribers cost one conversion.

**Measured weather.** When the site file says `[weather] source = "measured"`, the
model's weather is replaced by the measured weather's equivalent
(`measured_weather.measured_weather` at the microgrid's location): once when the
service is built (at the model's start time), then before a tick's step whenever
the simulation time that step reaches is `weather_update_interval` (default
`MEASURED_WEATHER_UPDATE_INTERVAL`, 60 s) or more past the last refresh, for that
moment. The interval is *simulation* time, so `--speed` keeps the weather in step
with the simulated day; the weather holds between refreshes, and one tick refreshes
at most once (one production computation, about a millisecond), so with a tick
longer than the interval in simulation time (a high `--speed`, or a leap of a
manual clock) the refreshes come once per tick. With the file's weather nothing
here runs and `edge_controller.weather` (`pvlib`) is never imported.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import Enum
from functools import partial
from typing import TypeVar

import structlog

from edge_controller.common.clock import Clock, WallClock
from edge_controller.common.waiting import cancel_and_wait
from edge_controller.power.bounds import Range
from edge_controller.servers.sim.command_log import CANCELLED, CommandLog, CommandRefusal
from edge_controller.servers.sim.errors import ErrorKind, SimError
from edge_controller.servers.sim.fault_spec import FaultKind
from edge_controller.servers.sim.faults import FaultBook
from edge_controller.servers.sim.model import CommandRecord, ComponentSample, Metric, SiteModel
from edge_controller.servers.sim.site import SiteSpec, WeatherSource, WeatherSpec

_T = TypeVar("_T")
_LOG = structlog.get_logger("edge_controller.servers.sim")
SUBSCRIBER_QUEUE_SIZE = 32
"""Samples buffered per stream; a slow reader loses the oldest, never blocks the tick."""
UNRESPONSIVE_POLL_S = 0.05
MEASURED_WEATHER_UPDATE_INTERVAL = timedelta(seconds=60)
"""How much simulation time passes between refreshes of measured weather."""


class StateAction(Enum):
    """The state-machine requests both APIs offer."""

    START = "start"
    STANDBY = "standby"
    STOP = "stop"
    ACK = "ack"


@dataclass(frozen=True, slots=True)
class _EndOfStream:
    reason: str


class _Subscription:
    """One telemetry stream's mailbox."""

    def __init__(self, component_id: int) -> None:
        self.component_id = component_id
        self.queue: asyncio.Queue[ComponentSample | _EndOfStream] = asyncio.Queue(
            SUBSCRIBER_QUEUE_SIZE
        )

    def offer(self, item: ComponentSample | _EndOfStream) -> None:
        if self.queue.full():
            with contextlib.suppress(asyncio.QueueEmpty):
                self.queue.get_nowait()
        self.queue.put_nowait(item)


class SimService:
    """The simulated site behind the API: model, ticking, telemetry, faults."""

    def __init__(
        self,
        site: SiteSpec,
        *,
        clock: Clock | None = None,
        speed: float = 1.0,
        command_log: CommandLog | None = None,
        weather_update_interval: timedelta = MEASURED_WEATHER_UPDATE_INTERVAL,
    ) -> None:
        """Build the model at the clock's current time; faults start counting from it.

        With measured weather the model gets its first measured weather here, so the
        weather data (about a second to load) is read before the server serves.

        Raises:
            ValueError: a `weather_update_interval` that is not > 0 (or a bad `speed`).
            DatasetError: measured weather, and the bundled weather files cannot be read.
        """
        if weather_update_interval <= timedelta(0):
            raise ValueError(
                f"weather_update_interval: expected > 0, got {weather_update_interval}"
            )
        self.clock: Clock = clock if clock is not None else WallClock()
        self.started_at = self.clock.now()
        self.site = site
        self.faults = FaultBook(self.started_at, site.faults)
        self.model = SiteModel(site, self.started_at, speed=speed, faults=self.faults)
        self.weather_update_interval = weather_update_interval
        self.weather_refreshes = 0
        self._weather_at: Callable[[datetime], WeatherSpec] | None = None
        self._weather_due = self.model.sim_time
        if site.weather.source is WeatherSource.MEASURED:
            # Imported here: with the file's weather the simulator loads none of it.
            from edge_controller.servers.sim.measured_weather import measured_weather, site_location

            self._weather_at = partial(measured_weather, site, site_location(site))
            self._refresh_weather(self._weather_at, self.model.sim_time)
        self.command_log = command_log or CommandLog(site.simulation.command_log_size)
        self.tick_interval_s = 1.0 / site.simulation.telemetry_rate_hz
        self._subscriptions: dict[int, set[_Subscription]] = {}
        self._closed = False
        self._ticker: asyncio.Task[None] | None = None
        self.ticks = 0
        self.samples_built = 0

    # ------------------------------------------------------------- lifecycle

    def start(self) -> None:
        """Start stepping the model and publishing telemetry on the running loop."""
        if self._ticker is None:
            self._ticker = asyncio.get_running_loop().create_task(self._tick_forever())

    async def close(self) -> None:
        """End every stream with UNAVAILABLE and stop ticking."""
        self._closed = True
        for subscriptions in self._subscriptions.values():
            for subscription in subscriptions:
                subscription.offer(_EndOfStream("the simulator is shutting down"))
        if self._ticker is not None:
            await cancel_and_wait(self._ticker)
            self._ticker = None
        self.command_log.close()

    async def _tick_forever(self) -> None:
        loop = asyncio.get_running_loop()
        next_tick = loop.time()
        while True:
            self.tick()
            next_tick += self.tick_interval_s
            delay = next_tick - loop.time()
            if delay < 0:  # overloaded: skip missed ticks rather than burst
                next_tick = loop.time()
                delay = 0
            await asyncio.sleep(delay)

    def tick(self) -> None:
        """Step the model to now and send one sample to every subscriber."""
        now = self.clock.now()
        if self._weather_at is not None:
            self._refresh_weather_if_due(self._weather_at, now)
        self.model.step(now)
        self.ticks += 1
        for component_id, subscriptions in self._subscriptions.items():
            if not subscriptions:
                continue
            if self.faults.first(now, component_id, FaultKind.DROP_STREAM) is not None:
                for subscription in subscriptions:
                    subscription.offer(_EndOfStream(f"stream of {component_id} dropped (fault)"))
                continue
            if self.faults.first(now, component_id, FaultKind.NO_TELEMETRY) is not None:
                continue
            if component_id in self.model.site.by_id:
                sample = self.model.sample(component_id, now)
            else:
                sample = self.model.sensor_sample(component_id, now)
            self.samples_built += 1
            for subscription in subscriptions:
                subscription.offer(sample)

    def _refresh_weather_if_due(
        self, weather_at: Callable[[datetime], WeatherSpec], now: datetime
    ) -> None:
        """Refresh the weather if the step to wall time `now` reaches its due time."""
        ahead = max(now - self.model.wall_time, timedelta(0)) * self.model.speed
        reached = self.model.sim_time + ahead
        if reached >= self._weather_due:
            self._refresh_weather(weather_at, reached)

    def _refresh_weather(
        self, weather_at: Callable[[datetime], WeatherSpec], moment: datetime
    ) -> None:
        """Give the model the weather of simulation time `moment`."""
        weather = weather_at(moment)
        self.model.site = replace(self.model.site, weather=weather)
        self._weather_due = moment + self.weather_update_interval
        self.weather_refreshes += 1
        _LOG.debug(
            "weather_refreshed",
            sim_time=moment.isoformat(),
            irradiance_w_m2=weather.irradiance_w_m2[0],
            wind_speed_m_s=weather.wind_speed_m_s[0],
            temperature_c=weather.temperature_c[0],
        )

    # ------------------------------------------------------------- telemetry

    async def stream(
        self, component_id: int, *, sensor: bool = False
    ) -> AsyncIterator[ComponentSample]:
        """Yield the component's (or sensor's) samples until the stream ends.

        Raises:
            SimError: NOT_FOUND for an unknown id; UNAVAILABLE when the stream is
                dropped (fault) or the simulator shuts down — never a clean end, as
                the Frequenz clients only resume streams that fail.
        """
        if sensor:
            self.model.sensor_sample(component_id, self.clock.now())
        else:
            self.model.spec(component_id)
        if self._closed:
            raise SimError(ErrorKind.UNAVAILABLE, "the simulator is shutting down")
        if self.faults.first(self.clock.now(), component_id, FaultKind.DROP_STREAM):
            raise SimError(
                ErrorKind.UNAVAILABLE, f"telemetry of component {component_id} is unavailable"
            )
        subscription = _Subscription(component_id)
        self._subscriptions.setdefault(component_id, set()).add(subscription)
        _LOG.debug("stream_opened", component_id=component_id)
        try:
            while True:
                item = await subscription.queue.get()
                if isinstance(item, _EndOfStream):
                    raise SimError(ErrorKind.UNAVAILABLE, item.reason)
                yield item
        finally:
            self._subscriptions[component_id].discard(subscription)
            _LOG.debug("stream_closed", component_id=component_id)

    def subscriber_count(self) -> int:
        """Return how many telemetry streams are open."""
        return sum(len(s) for s in self._subscriptions.values())

    # ------------------------------------------------------------- control

    async def control(self, component_id: int, operation: Callable[[datetime], _T]) -> _T:
        """Run a control operation on a component, as its faults allow.

        Unknown components fail first (NOT_FOUND); then an `unresponsive` fault holds
        the request until it ends, `delay` waits, and `rpc_error` fails it.
        """
        self.model.spec(component_id)
        await self._apply_rpc_faults(component_id)
        return operation(self.clock.now())

    async def _apply_rpc_faults(self, component_id: int) -> None:
        # Polled, not an Event: the fault ends when the (possibly manual) clock passes
        # its window, which nothing signals.
        while self.faults.first(  # noqa: ASYNC110
            self.clock.now(), component_id, FaultKind.UNRESPONSIVE
        ):
            await asyncio.sleep(UNRESPONSIVE_POLL_S)
        for fault in self.faults.active(self.clock.now(), component_id, FaultKind.DELAY):
            await asyncio.sleep(fault.delay_s)
        failure = self.faults.first(self.clock.now(), component_id, FaultKind.RPC_ERROR)
        if failure is not None:
            raise SimError(
                ErrorKind(failure.status),
                f"component {component_id} failed the request (injected {failure.status})",
            )

    async def set_power(
        self, component_id: int, power_w: float, lifetime_s: int | None, *, reactive: bool
    ) -> CommandRecord:
        """Command active (or reactive) power; log and record it when accepted."""

        def command(now: datetime) -> CommandRecord:
            if reactive:
                return self.model.set_reactive_power(component_id, power_w, now, lifetime_s)
            return self.model.set_active_power(component_id, power_w, now, lifetime_s)

        try:
            record = await self.control(component_id, command)
        except SimError as error:
            self._refused(component_id, power_w, reactive, error.kind.value, error.message)
            raise
        except asyncio.CancelledError:
            # The client gave up (its deadline) on a request a fault held unanswered.
            self._refused(
                component_id,
                power_w,
                reactive,
                CANCELLED,
                "the client cancelled the request before it was answered",
            )
            raise
        self.command_log.record(record)
        _LOG.info(
            "command_accepted",
            component_id=component_id,
            requested_w=power_w,
            applied_w=record.applied_w,
            reactive=reactive,
            valid_until=record.valid_until.isoformat(),
        )
        return record

    def _refused(
        self, component_id: int, power_w: float, reactive: bool, status: str, reason: str
    ) -> None:
        """Log a refused command, with the bounds in force, and tell it."""
        now = self.clock.now()
        bounds: tuple[Range, ...] = ()
        if component_id in self.site.by_id:
            bounds = (
                self.model.reactive_bounds(component_id, now)
                if reactive
                else self.model.active_bounds(component_id, now)
            )
        self.command_log.refuse(
            CommandRefusal(now, component_id, reactive, power_w, status, reason, bounds)
        )
        _LOG.info(
            "command_refused",
            component_id=component_id,
            power_w=power_w,
            reactive=reactive,
            code=status,
            reason=reason,
        )

    async def add_bounds(
        self,
        component_id: int,
        metric: Metric,
        ranges: list[tuple[float | None, float | None]],
        validity_s: int | None,
        token: str = "",
    ) -> datetime:
        """Add bounds; a missing end means unbounded on that side."""
        try:
            parsed = [
                Range(
                    float("-inf") if lower is None else lower,
                    float("inf") if upper is None else upper,
                )
                for lower, upper in ranges
            ]
        except ValueError as error:
            raise SimError(ErrorKind.INVALID_ARGUMENT, f"invalid bounds: {error}") from error
        return await self.control(
            component_id,
            lambda now: self.model.add_bounds(component_id, metric, parsed, now, validity_s, token),
        )

    async def change_state(self, component_id: int, action: StateAction) -> None:
        """Start, put in standby, stop, or acknowledge the error of a component."""
        operation = {
            StateAction.START: self.model.start,
            StateAction.STANDBY: self.model.standby,
            StateAction.STOP: self.model.stop,
            StateAction.ACK: self.model.acknowledge_error,
        }[action]
        await self.control(component_id, lambda now: operation(component_id, now))
        _LOG.info("state_changed", component_id=component_id, action=action.value)
