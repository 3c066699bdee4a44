"""The simulated site's physics and component state machines: pure and time-stepped.

`SiteModel` holds the state of every component and moves it forward when told the
time (`step(now)`); every operation takes `now` explicitly, so the model never reads
a clock and a test can leap hours in one call. It does no I/O and knows nothing of
gRPC: the servers translate requests into these calls and `SimError`s into status
codes.

Two times are at play, on purpose:

- *wall time* (`now`): when commands and added bounds expire, what timestamps say.
  The real Frequenz clients schedule with the wall clock, so the model never scales it.
- *physics time* (`sim_time`): advances `speed` times faster than wall time and drives
  energy integration and the load/production profiles, so a demo can show SoC moving.

Commands cost O(1) whatever the site's size: a set-power call (or added bounds, or a
state change) checks and records, and marks the model *unsettled*; the physics moves on
the server's tick (`step`), or settles at once, one pass for any number of commands,
when a sample is read before the next tick. So a burst of N commands costs O(N) and the
next telemetry sample still shows them. Each command remembers when it came, so the
tick's physics sub-steps before that instant keep the power commanded before: energy
is booked exactly to one sub-step (`time_step`), as when every command stepped the
whole site (a fast `--speed` demo noticed the difference).

Sign convention: passive. Positive power charges a battery or is consumed by a load;
negative power discharges or is produced (PV, wind). Powers are watts (floats).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import Enum

from edge_controller.power.bounds import (
    Range,
    allows,
    clamp,
    hull,
    inclusion_exclusion,
    intersect,
    merge,
)
from edge_controller.servers.sim.errors import ErrorKind, SimError
from edge_controller.servers.sim.ev_sessions import EvCar, EvPlug
from edge_controller.servers.sim.fault_spec import FaultKind
from edge_controller.servers.sim.faults import FaultBook
from edge_controller.servers.sim.metrics import Metric
from edge_controller.servers.sim.site import (
    CONTROLLABLE_KINDS,
    SWITCH_KINDS,
    ComponentSpec,
    SensorKind,
    SiteSpec,
)
from edge_controller.servers.sim.site_details import (
    BatterySpec,
    ComponentKind,
    EvChargerSpec,
    InverterSpec,
    LoadSpec,
    PrechargerSpec,
    PvSpec,
    WindSpec,
)
from edge_controller.weather.power_curve import wind_fraction

SENSOR_METRICS: dict[SensorKind, frozenset[Metric]] = {
    SensorKind.WEATHER_STATION: frozenset(
        {Metric.SENSOR_IRRADIANCE, Metric.SENSOR_WIND_SPEED, Metric.SENSOR_TEMPERATURE}
    ),
    SensorKind.THERMOMETER: frozenset({Metric.SENSOR_TEMPERATURE}),
    SensorKind.PYRANOMETER: frozenset({Metric.SENSOR_IRRADIANCE}),
    SensorKind.ANEMOMETER: frozenset({Metric.SENSOR_WIND_SPEED}),
}
"""What each kind of sensor reports."""
DEFAULT_COMMAND_LIFETIME_S = 60
"""How long a set-power command holds when the request names no lifetime."""
COMMAND_LIFETIME_RANGE_S = (10, 900)
"""Lifetimes the API accepts (inclusive), as the v1alpha18 client validates them."""
DEFAULT_BOUNDS_VALIDITY_S = 5
"""How long added bounds hold when the request names no validity."""
MAX_SUBSTEPS = 2_000
"""Cap on physics sub-steps per `step()`, so a leap of hours stays cheap."""
NOMINAL_AC_VOLTAGE_V = 230.0
NOMINAL_FREQUENCY_HZ = 50.0


class OperatingState(Enum):
    """The state machine of a controllable component (inverter, battery, charger)."""

    OFF = "off"
    """Stopped: relays open. `start` brings it back."""
    STANDBY = "standby"
    """Cold standby: power 0. `start` or a set-power command brings it back."""
    STARTING = "starting"
    """Waking from standby (`[simulation] standby_wake_time`): takes commands, delivers
    0 W and reports SWITCHING_ON until it is operational."""
    READY = "ready"
    """Operational: follows set-power commands."""
    ERROR = "error"
    """Faulted: power 0, refuses commands until the error is acknowledged."""


class StateCode(Enum):
    """What telemetry reports as the component's state."""

    OFF = "off"
    STANDBY = "standby"
    READY = "ready"
    CHARGING = "charging"
    DISCHARGING = "discharging"
    ERROR = "error"
    SWITCHING_ON = "switching_on"
    RELAY_OPEN = "relay_open"
    """A battery's main relay is open: it can carry no power (stopped, standby, error)."""
    RELAY_CLOSED = "relay_closed"
    """A battery's main relay is closed: it can carry power. Clients read it (the
    Frequenz SDK counts a battery as working only with RELAY_CLOSED besides READY,
    CHARGING or DISCHARGING). A relay component reports it too."""
    PRECHARGER_OPEN = "precharger_open"
    PRECHARGER_PRECHARGING = "precharger_precharging"
    PRECHARGER_CLOSED = "precharger_closed"
    EV_CHARGING_CABLE_UNPLUGGED = "ev_charging_cable_unplugged"
    """An EV charger with no car: it can give no power (bounds 0..0)."""
    EV_CHARGING_CABLE_LOCKED_AT_EV = "ev_charging_cable_locked_at_ev"
    """An EV charger with a car plugged in (and the cable locked at the car)."""


@dataclass(frozen=True, slots=True)
class MetricValue:
    """One metric's value with the bounds that apply to it (union of ranges)."""

    metric: Metric
    value: float
    bounds: tuple[Range, ...] = ()


@dataclass(frozen=True, slots=True)
class ComponentSample:
    """Everything a telemetry message says about one component at one instant."""

    component_id: int
    sampled_at: datetime
    metrics: tuple[MetricValue, ...]
    states: tuple[StateCode, ...] = ()
    errors: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class CommandRecord:
    """An accepted power command with the bounds in force when it was accepted."""

    at: datetime
    component_id: int
    reactive: bool
    requested_w: float
    applied_w: float
    bounds: tuple[Range, ...]
    valid_until: datetime


@dataclass(slots=True)
class _Command:
    power_w: float
    valid_until: datetime
    since: datetime | None = None
    """When it came: a physics sub-step that ends before this still runs `before`."""
    before: float | None = None
    """The power commanded until then (None: no command)."""


def _commanded(command: _Command | None, t: datetime) -> float | None:
    """The commanded power in force at the end of a sub-step at `t` (None: none)."""
    if command is None:
        return None
    if command.since is not None and t < command.since:
        return command.before
    return command.power_w


@dataclass(slots=True)
class _AddedBounds:
    ranges: tuple[Range, ...]
    until: datetime
    token: str


@dataclass(slots=True)
class _State:
    """Mutable state of one component."""

    spec: ComponentSpec
    operating: OperatingState = OperatingState.READY
    ready_at: datetime | None = None
    """When a STARTING component becomes operational."""
    errors: tuple[str, ...] = ()
    active: _Command | None = None
    reactive: _Command | None = None
    added_active: list[_AddedBounds] = field(default_factory=list)
    added_reactive: list[_AddedBounds] = field(default_factory=list)
    ac_power_w: float = 0.0
    reactive_power_w: float = 0.0
    dc_power_w: float = 0.0
    energy_wh: float = 0.0


def floor_to_resolution(power_w: float, resolution_w: float) -> float:
    """Floor the magnitude of `power_w` to a multiple of `resolution_w` (toward 0 W).

    −1000 W at 88 W steps gives −968 W, as the Microgrid API documents.
    """
    if resolution_w <= 0:
        return power_w
    steps = math.floor(abs(power_w) / resolution_w + 1e-9)
    return math.copysign(steps * resolution_w, power_w) if steps else 0.0


def hourly_value(series: Sequence[float], sim_time: datetime) -> float:
    """Interpolate a constant (1 value) or a 24-hour series (hourly) at `sim_time`."""
    if len(series) == 1:
        return series[0]
    hour = sim_time.hour + sim_time.minute / 60 + sim_time.second / 3600
    index = int(hour) % 24
    fraction = hour - int(hour)
    return series[index] + (series[(index + 1) % 24] - series[index]) * fraction


def battery_power_bounds(spec: BatterySpec, soc_pct: float) -> Range:
    """Return a battery's power bounds at `soc_pct`, tapered near its SoC limits.

    Within `soc_taper_pct` of the upper SoC bound the charge limit falls linearly to 0;
    likewise the discharge limit near the lower bound. Outside the SoC bounds the
    battery only accepts power that brings it back.
    """
    lower_soc, upper_soc = spec.soc_bounds_pct.lower, spec.soc_bounds_pct.upper
    taper = spec.soc_taper_pct
    if taper > 0:
        charge_factor = min(max((upper_soc - soc_pct) / taper, 0.0), 1.0)
        discharge_factor = min(max((soc_pct - lower_soc) / taper, 0.0), 1.0)
    else:
        charge_factor = 1.0 if soc_pct < upper_soc else 0.0
        discharge_factor = 1.0 if soc_pct > lower_soc else 0.0
    return Range(
        spec.power_bounds.lower * discharge_factor, spec.power_bounds.upper * charge_factor
    )


class SiteModel:
    """The state of a whole simulated site, moved forward by `step(now)`.

    Not thread-safe: one owner (the server's event loop) calls it.
    """

    def __init__(
        self,
        site: SiteSpec,
        start: datetime,
        *,
        speed: float = 1.0,
        faults: FaultBook | None = None,
    ) -> None:
        """Set every component to its initial state at wall time `start`.

        `speed` scales physics time only (see the module docstring).
        """
        if not speed > 0 or not math.isfinite(speed):
            raise ValueError(f"speed must be a finite number > 0, got {speed}")
        self.site = site
        self.speed = speed
        self.faults = faults if faults is not None else FaultBook(start)
        self._wall = start
        self.sim_time = site.simulation.start_time or start
        self._sim_start = self.sim_time
        self._states: dict[int, _State] = {c.id: _State(c) for c in site.components}
        for state in self._states.values():
            if isinstance(state.spec.details, BatterySpec):
                spec = state.spec.details
                state.energy_wh = spec.capacity_wh * spec.initial_soc_pct / 100
        self._children: dict[int, list[int]] = {c.id: [] for c in site.components}
        for parent, child in site.connections:
            self._children[parent].append(child)
        self._batteries: dict[int, list[int]] = {
            c.id: self._dc_children(c.id)
            for c in site.components
            if c.kind is ComponentKind.BATTERY_INVERTER
        }
        """Each battery inverter's batteries, through a precharger between them."""
        self._inverters_of: dict[int, list[int]] = {
            c.id: [i for i, below in self._batteries.items() if c.id in below]
            for c in site.components
            if c.kind is ComponentKind.BATTERY
        }
        self._switches_above: dict[int, tuple[int, ...]] = {
            c.id: self._switches_on_the_way_up(c.id) for c in site.components
        }
        """The relays and prechargers between each component and the grid."""
        self._order = self._bottom_up_order()
        self._plugs: dict[int, EvPlug] = {
            c.id: EvPlug(c.id, c.details.sessions, c.details.arrivals)
            for c in site.components
            if isinstance(c.details, EvChargerSpec) and c.details.has_sessions
        }
        """The cars at chargers with sessions (the others have one plugged in for good)."""
        for plug in self._plugs.values():
            plug.advance(0.0)
        self._unsettled = False
        """A command or state change the powers do not show yet (see the module doc)."""
        self._changed_at = start
        """The time of the latest command."""
        self._starting: set[int] = set()
        """Components waking from standby (few: checked each step)."""
        self.energy_delivered_wh: dict[int, float] = {cid: 0.0 for cid in self._states}
        self.load_steps_w: dict[int, float] = {}
        """Extra consumption per load id (W), on top of its profile: load steps for tests
        and benchmarks (set it, the next step shows it)."""

    # ---------------------------------------------------------------- reading

    @property
    def wall_time(self) -> datetime:
        """The wall time of the last step."""
        return self._wall

    def component_ids(self) -> list[int]:
        """Return every component id, in site-file order."""
        return list(self._states)

    def spec(self, component_id: int) -> ComponentSpec:
        """Return a component's spec.

        Raises:
            SimError: NOT_FOUND for an unknown id.
        """
        return self._state(component_id).spec

    def soc_pct(self, battery_id: int) -> float:
        """Return a battery's state of charge in percent."""
        state = self._state(battery_id)
        details = state.spec.details
        if not isinstance(details, BatterySpec):
            raise SimError(ErrorKind.INVALID_ARGUMENT, f"component {battery_id} is not a battery")
        return 100.0 * state.energy_wh / details.capacity_wh

    def energy_wh(self, battery_id: int) -> float:
        """Return the energy stored in a battery, in watt-hours."""
        return self._state(battery_id).energy_wh

    def ac_power_w(self, component_id: int) -> float:
        """Return a component's AC active power (sum below it for grid and meters)."""
        self._settle_if_needed(self._wall)
        return self._state(component_id).ac_power_w

    def dc_power_w(self, battery_id: int) -> float:
        """Return a battery's DC power (passive sign convention)."""
        self._settle_if_needed(self._wall)
        return self._state(battery_id).dc_power_w

    def ev_car(self, charger_id: int) -> EvCar | None:
        """Return the car plugged into an EV charger with sessions (`None`: none).

        Raises:
            SimError: NOT_FOUND for an unknown id, INVALID_ARGUMENT when it is not an
                EV charger with sessions (those have no car of their own to show).
        """
        self._settle_if_needed(self._wall)
        state = self._state(charger_id)
        plug = self._plugs.get(charger_id)
        if plug is None:
            raise SimError(
                ErrorKind.INVALID_ARGUMENT,
                f"component {charger_id} is a {state.spec.kind.value} without EV sessions",
            )
        return plug.car

    def ev_plugged(self, charger_id: int) -> bool:
        """Tell whether a car is plugged into an EV charger (always, without sessions)."""
        plug = self._plugs.get(charger_id)
        return plug is None or plug.car is not None

    def operating_state(self, component_id: int) -> OperatingState:
        """Return a component's operating state."""
        return self._state(component_id).operating

    def active_bounds(self, component_id: int, now: datetime) -> tuple[Range, ...]:
        """Return the active-power values a command may take now (union of ranges).

        The component's own bounds, intersected with its batteries' present bounds
        (for a battery inverter) and with the union of unexpired added bounds. 0 W is
        allowed in any case, even when this is empty.
        """
        state = self._state(component_id)
        own = self._own_active_bounds(state, now)
        added = [b for b in state.added_active if b.until > now]
        if added:
            own = intersect(own, merge(r for b in added for r in b.ranges))
        return own

    def reactive_bounds(self, component_id: int, now: datetime) -> tuple[Range, ...]:
        """Return the reactive-power values a command may take now (union of ranges)."""
        state = self._state(component_id)
        own = self._own_reactive_bounds(state)
        added = [b for b in state.added_reactive if b.until > now]
        if added:
            own = intersect(own, merge(r for b in added for r in b.ranges))
        return own

    # ---------------------------------------------------------------- stepping

    def step(self, now: datetime) -> None:
        """Advance the site to wall time `now` (a no-op if `now` is not later).

        The interval is cut into sub-steps of at most the site's time step (capped at
        `MAX_SUBSTEPS`), so commands expire, batteries stop at their SoC bounds and
        profiles move within one call however far `now` leaps.
        """
        self._apply_error_faults(now)
        if now <= self._wall:
            self._settle(now)
            return
        wall_dt = (now - self._wall).total_seconds()
        substeps = min(MAX_SUBSTEPS, max(1, math.ceil(wall_dt / self.site.simulation.time_step_s)))
        dt_wall = wall_dt / substeps
        for index in range(1, substeps + 1):
            t = self._wall + timedelta(seconds=dt_wall * index)
            self.sim_time += timedelta(seconds=dt_wall * self.speed)
            self._expire(t)
            self._finish_starting(t)
            self._physics(t, dt_wall * self.speed / 3600.0)
        self._wall = now
        self._unsettled = False

    def _finish_starting(self, now: datetime) -> None:
        """Components whose wake-up from standby is over become operational."""
        if not self._starting:
            return
        for cid in list(self._starting):
            state = self._states[cid]
            if state.operating is not OperatingState.STARTING:
                self._starting.discard(cid)
            elif state.ready_at is not None and state.ready_at <= now:
                state.operating = OperatingState.READY
                state.ready_at = None
                self._starting.discard(cid)

    def _settle(self, now: datetime) -> None:
        """Bring every power to what the commands and states ask, without time passing.

        A command or a state change shows in the very next telemetry sample, as on a
        real inverter, instead of waiting for the clock to move.
        """
        self._expire(now)
        self._finish_starting(now)
        self._physics(now, 0.0)
        self._unsettled = False

    def _settle_if_needed(self, now: datetime) -> None:
        """Settle once after any number of commands, when someone reads the powers.

        As of the latest command at the earliest: a reader sees what it commanded.
        """
        if self._unsettled:
            self._settle(max(now, self._wall, self._changed_at))

    def _apply_error_faults(self, now: datetime) -> None:
        for fault in self.faults.active(now, kind=FaultKind.ERROR):
            state = self._states.get(fault.component_id)
            if state is None or state.operating is OperatingState.ERROR:
                continue
            state.operating = OperatingState.ERROR
            state.errors = (fault.error_code,)
            state.active = None
            state.reactive = None
            self._unsettled = True

    def _expire(self, now: datetime) -> None:
        for state in self._states.values():
            if state.active is not None and state.active.valid_until <= now:
                state.active = None
            if state.reactive is not None and state.reactive.valid_until <= now:
                state.reactive = None
            if state.added_active:
                state.added_active = [b for b in state.added_active if b.until > now]
            if state.added_reactive:
                state.added_reactive = [b for b in state.added_reactive if b.until > now]

    def _physics(self, now: datetime, dt_h: float) -> None:
        weather = self.site.weather
        irradiance = hourly_value(weather.irradiance_w_m2, self.sim_time)
        wind = hourly_value(weather.wind_speed_m_s, self.sim_time)
        for battery_id in self._inverters_of:
            self._states[battery_id].dc_power_w = 0.0
        for cid in self._order:
            state = self._states[cid]
            details = state.spec.details
            if self._switches_above[cid] and self._cut_off(cid):
                state.ac_power_w = state.reactive_power_w = 0.0
                if not isinstance(details, BatterySpec):
                    state.dc_power_w = 0.0
                continue
            match details:
                case InverterSpec():
                    self._step_battery_inverter(state, details, now, dt_h)
                case PvSpec():
                    available = -details.peak_power_w * min(1.0, irradiance / 1000.0)
                    power = available
                    if state.operating is not OperatingState.READY:
                        power = 0.0
                    elif (limit := _commanded(state.active, now)) is not None:
                        power = max(available, limit)
                    state.ac_power_w = power
                case WindSpec():
                    state.ac_power_w = -details.rated_power_w * wind_fraction(
                        details.power_curve, wind
                    )
                case LoadSpec():
                    state.ac_power_w = details.peak_power_w * hourly_value(
                        details.hourly_profile, self.sim_time
                    ) + self.load_steps_w.get(cid, 0.0)
                case EvChargerSpec():
                    self._step_ev_charger(state, details, now, dt_h)
                case BatterySpec():
                    continue  # moved by its inverter(s)
                case _:
                    state.ac_power_w = sum(
                        self._states[child].ac_power_w
                        for child in self._children[cid]
                        if self._states[child].spec.kind is not ComponentKind.BATTERY
                    )
            reactive = _commanded(state.reactive, now)
            state.reactive_power_w = (
                reactive
                if reactive is not None and state.operating is OperatingState.READY
                else 0.0
            )
            self.energy_delivered_wh[cid] += state.ac_power_w * dt_h

    def _step_ev_charger(
        self, state: _State, spec: EvChargerSpec, now: datetime, dt_h: float
    ) -> None:
        """A charger gives its command to the car plugged in, as much as the car takes.

        A car that leaves takes the command with it: the next car gets 0 W until the
        charger is commanded again (a command is for a session).
        """
        ready = state.operating is OperatingState.READY
        plug = self._plugs.get(state.spec.id)
        if plug is None:
            command = _commanded(state.active, now) or 0.0
            state.ac_power_w = command if ready else 0.0
            return
        elapsed_s = (self.sim_time - self._sim_start).total_seconds()
        command = _commanded(state.active, now) or 0.0
        power_w = 0.0
        if ready and command > 0.0 and plug.car is not None:
            bounds = self.active_bounds(state.spec.id, now)
            power_w = floor_to_resolution(clamp(bounds, command), spec.resolution_w)
            if not allows(bounds, power_w):
                power_w = 0.0
        taken, full = plug.charge(power_w, dt_h, elapsed_s)
        state.ac_power_w = taken
        if plug.advance(elapsed_s) or full:
            state.active = None

    def _step_battery_inverter(
        self, state: _State, spec: InverterSpec, now: datetime, dt_h: float
    ) -> None:
        # Only batteries with their relay closed take power (as in the bounds).
        batteries = [
            self._states[b]
            for b in self._batteries[state.spec.id]
            if not self._cut_off(b)
            and self._states[b].operating in (OperatingState.READY, OperatingState.STARTING)
        ]
        command = _commanded(state.active, now) or 0.0
        bounds = self.active_bounds(state.spec.id, now)
        target = floor_to_resolution(clamp(bounds, command), spec.resolution_w)
        waking = any(b.operating is OperatingState.STARTING for b in batteries)
        if state.operating is not OperatingState.READY or waking or not allows(bounds, target):
            target = 0.0
        if target == 0.0 or not batteries:
            state.ac_power_w = state.dc_power_w = 0.0
            return
        # The battery can stop short within a sub-step (SoC bound): deliver only what
        # moves energy, so the AC side never shows power the battery did not take.
        dc_total = target * spec.efficiency if target > 0 else target / spec.efficiency
        capacity_total = sum(_battery(b).capacity_wh for b in batteries)
        moved_dc = 0.0
        for battery in batteries:
            details = _battery(battery)
            share = dc_total * details.capacity_wh / capacity_total
            share /= len(self._inverters_of[battery.spec.id])
            lower_wh = details.capacity_wh * details.soc_bounds_pct.lower / 100
            upper_wh = details.capacity_wh * details.soc_bounds_pct.upper / 100
            energy = battery.energy_wh + share * dt_h
            if share > 0:
                energy = min(energy, max(battery.energy_wh, upper_wh))
            else:
                energy = max(energy, min(battery.energy_wh, lower_wh))
            moved = (energy - battery.energy_wh) / dt_h if dt_h > 0 else share
            battery.energy_wh = energy
            battery.dc_power_w += moved
            moved_dc += moved
        ac = moved_dc / spec.efficiency if moved_dc > 0 else moved_dc * spec.efficiency
        state.ac_power_w = ac
        state.dc_power_w = moved_dc

    # ---------------------------------------------------------------- commands

    def set_active_power(
        self, component_id: int, power_w: float, now: datetime, lifetime_s: int | None = None
    ) -> CommandRecord:
        """Command a component's active power until `now + lifetime` (default 60 s).

        The magnitude is floored to the component's resolution. A component in
        standby is started by the command.

        Raises:
            SimError: NOT_FOUND (unknown id), INVALID_ARGUMENT (not controllable, NaN,
                lifetime outside 10–900 s), FAILED_PRECONDITION (off or in error, or a
                battery behind it is), OUT_OF_RANGE (outside the bounds in force, also
                when flooring lands in an exclusion band).
        """
        return self._command(component_id, power_w, now, lifetime_s, reactive=False)

    def set_reactive_power(
        self, component_id: int, power_var: float, now: datetime, lifetime_s: int | None = None
    ) -> CommandRecord:
        """Command a component's reactive power; same rules as `set_active_power`."""
        return self._command(component_id, power_var, now, lifetime_s, reactive=True)

    def _command(
        self,
        component_id: int,
        power_w: float,
        now: datetime,
        lifetime_s: int | None,
        *,
        reactive: bool,
    ) -> CommandRecord:
        state = self._state(component_id)
        kind = state.spec.kind
        what = "reactive power" if reactive else "active power"
        if kind not in CONTROLLABLE_KINDS:
            raise SimError(
                ErrorKind.INVALID_ARGUMENT,
                f"component {component_id} is a {kind.value}; {what} can only be set on "
                f"{', '.join(sorted(k.value for k in CONTROLLABLE_KINDS))}",
            )
        if not math.isfinite(power_w):
            raise SimError(
                ErrorKind.INVALID_ARGUMENT, f"{what} must be a finite number, got {power_w}"
            )
        lifetime = DEFAULT_COMMAND_LIFETIME_S if lifetime_s is None else lifetime_s
        low, high = COMMAND_LIFETIME_RANGE_S
        if not low <= lifetime <= high:
            raise SimError(
                ErrorKind.INVALID_ARGUMENT,
                f"request_lifetime must be {low}-{high} s, got {lifetime}",
            )
        # Brought up to `now` without moving the physics (that waits for the tick): a
        # fault that began, or a wake-up that ended, since the last tick counts.
        self._apply_error_faults(now)
        self._finish_starting(now)
        self._check_operational(state)
        self._wake_from_standby(state, now)
        bounds = (
            self.reactive_bounds(component_id, now)
            if reactive
            else self.active_bounds(component_id, now)
        )
        if not allows(bounds, power_w):
            raise SimError(
                ErrorKind.OUT_OF_RANGE,
                f"{what} {power_w:g} W for component {component_id} is outside its bounds "
                f"{_show_ranges(bounds)} (0 W is always allowed)",
            )
        applied = floor_to_resolution(power_w, _resolution(state.spec))
        if not allows(bounds, applied):
            raise SimError(
                ErrorKind.OUT_OF_RANGE,
                f"{what} {power_w:g} W for component {component_id} floors to {applied:g} W "
                f"at its {_resolution(state.spec):g} W resolution, outside its bounds "
                f"{_show_ranges(bounds)}",
            )
        valid_until = now + timedelta(seconds=lifetime)
        # The physics moves on the tick: until then the sub-steps before `now` keep the
        # power commanded before, so the energy booked stays exact to one sub-step.
        held = state.reactive if reactive else state.active
        before = _commanded(held, now) if held is not None and held.valid_until > now else None
        command = _Command(applied, valid_until, since=now, before=before)
        if reactive:
            state.reactive = command
        else:
            state.active = command
        self._changed_at = max(self._changed_at, now)
        self._unsettled = True
        return CommandRecord(now, component_id, reactive, power_w, applied, bounds, valid_until)

    def _wake_from_standby(self, state: _State, now: datetime) -> None:
        """A set-power command brings a component, and batteries behind it, out of standby.

        The API documents this transition; without it a standby battery would leave its
        inverter with 0 W bounds and every command refused as out of range.
        """
        for cid in [state.spec.id, *self._batteries.get(state.spec.id, ())]:
            component = self._states[cid]
            if component.operating is OperatingState.STANDBY:
                self._wake(component, now)

    def _wake(self, state: _State, now: datetime) -> None:
        """Leave standby: operational at once, or after the site's wake-up time."""
        wake_s = self.site.simulation.standby_wake_s
        state.active = None
        state.reactive = None
        self._unsettled = True
        if wake_s <= 0:
            state.operating = OperatingState.READY
            return
        state.operating = OperatingState.STARTING
        state.ready_at = now + timedelta(seconds=wake_s)
        self._starting.add(state.spec.id)

    def _check_operational(self, state: _State) -> None:
        cid = state.spec.id
        if state.operating is OperatingState.ERROR:
            raise SimError(
                ErrorKind.FAILED_PRECONDITION,
                f"component {cid} is in ERROR ({', '.join(state.errors)}); acknowledge the "
                "error and start it first",
            )
        if state.operating is OperatingState.OFF:
            raise SimError(
                ErrorKind.FAILED_PRECONDITION, f"component {cid} is stopped; start it first"
            )
        switch = self._open_switch(cid)
        if switch is not None:
            kind = self._states[switch].spec.kind.value
            raise SimError(
                ErrorKind.FAILED_PRECONDITION,
                f"{kind} {switch} above component {cid} is open; start it (close it) first",
            )
        for child in self._batteries.get(cid, ()):
            battery = self._states[child]
            if battery.operating in (OperatingState.ERROR, OperatingState.OFF):
                raise SimError(
                    ErrorKind.FAILED_PRECONDITION,
                    f"battery {child} behind component {cid} is {battery.operating.value.upper()}",
                )

    def add_bounds(
        self,
        component_id: int,
        metric: Metric,
        ranges: Sequence[Range],
        now: datetime,
        validity_s: int | None = None,
        token: str = "",
    ) -> datetime:
        """Narrow a component's power bounds until the returned expiry.

        Overlapping ranges are merged; the effective bounds are the component's own
        bounds intersected with the union of every unexpired addition.

        Raises:
            SimError: NOT_FOUND, or INVALID_ARGUMENT for a metric other than active
                or reactive power, a non-controllable component, or empty bounds.
        """
        state = self._state(component_id)
        battery = state.spec.kind is ComponentKind.BATTERY
        if state.spec.kind not in CONTROLLABLE_KINDS and not battery:
            raise SimError(
                ErrorKind.INVALID_ARGUMENT,
                f"component {component_id} is a {state.spec.kind.value}; bounds can only "
                "be added to batteries (DC power) and controllable components",
            )
        allowed = (
            (Metric.DC_POWER,) if battery else (Metric.AC_ACTIVE_POWER, Metric.AC_REACTIVE_POWER)
        )
        if metric not in allowed:
            raise SimError(
                ErrorKind.INVALID_ARGUMENT,
                f"bounds on component {component_id} ({state.spec.kind.value}) can only be "
                f"added for {' or '.join(m.value for m in allowed)}, got {metric.value}",
            )
        if not ranges:
            raise SimError(ErrorKind.INVALID_ARGUMENT, "at least one bounds range is required")
        validity = DEFAULT_BOUNDS_VALIDITY_S if validity_s is None else validity_s
        if not 1 <= validity <= 900:
            raise SimError(
                ErrorKind.INVALID_ARGUMENT, f"bounds validity must be 1-900 s, got {validity}"
            )
        until = now + timedelta(seconds=validity)
        added = _AddedBounds(merge(ranges), until, token)
        if metric in (Metric.AC_ACTIVE_POWER, Metric.DC_POWER):  # a battery's is DC
            state.added_active.append(added)
        else:
            state.added_reactive.append(added)
        self._unsettled = True
        return until

    def clear_bounds(self, component_id: int, metric: Metric, token: str = "") -> int:
        """Drop added bounds (those with `token`, or all when it is empty); return how many."""
        state = self._state(component_id)
        active = metric in (Metric.AC_ACTIVE_POWER, Metric.DC_POWER)
        target = state.added_active if active else state.added_reactive
        keep = [b for b in target if token and b.token != token]
        removed = len(target) - len(keep)
        target[:] = keep
        self._unsettled = True
        return removed

    # ---------------------------------------------------------------- state machine

    def start(self, component_id: int, now: datetime) -> None:
        """Make a component operational at 0 W (a no-op if it already is).

        A relay closes; a precharger precharges for its `precharge_time`, then closes.

        Raises:
            SimError: FAILED_PRECONDITION while in ERROR (acknowledge first).
        """
        state = self._controllable_state(component_id, "started")
        self.step(now)
        if state.operating is OperatingState.ERROR:
            raise SimError(
                ErrorKind.FAILED_PRECONDITION,
                f"component {component_id} is in ERROR ({', '.join(state.errors)}); "
                "acknowledge the error first",
            )
        if state.operating is OperatingState.STANDBY:
            self._wake(state, now)
        elif state.operating is OperatingState.OFF and isinstance(
            state.spec.details, PrechargerSpec
        ):
            state.operating = OperatingState.STARTING
            state.ready_at = now + timedelta(seconds=state.spec.details.precharge_s)
            self._starting.add(component_id)
            self._unsettled = True
        elif state.operating is OperatingState.OFF:
            state.operating = OperatingState.READY
            state.active = None
            state.reactive = None
            self._unsettled = True

    def standby(self, component_id: int, now: datetime) -> None:
        """Put a running component into standby at 0 W.

        Raises:
            SimError: FAILED_PRECONDITION when stopped (relays open) or in ERROR.
        """
        state = self._controllable_state(component_id, "put in standby")
        if state.spec.kind in SWITCH_KINDS:
            raise SimError(
                ErrorKind.INVALID_ARGUMENT,
                f"component {component_id} is a {state.spec.kind.value}: it opens (stop) "
                "or closes (start) and has no standby",
            )
        self.step(now)
        if state.operating in (OperatingState.OFF, OperatingState.ERROR):
            raise SimError(
                ErrorKind.FAILED_PRECONDITION,
                f"component {component_id} is {state.operating.value.upper()}; only a "
                "started component can go to standby",
            )
        state.operating = OperatingState.STANDBY
        state.active = None
        state.reactive = None
        self._unsettled = True

    def stop(self, component_id: int, now: datetime) -> None:
        """Stop a component (open its relays; a relay or precharger opens, under load too).

        Raises:
            SimError: FAILED_PRECONDITION for a battery whose power is not 0 W, or a
                component in ERROR (acknowledge first).
        """
        state = self._controllable_state(component_id, "stopped")
        self.step(now)
        if state.operating is OperatingState.ERROR:
            raise SimError(
                ErrorKind.FAILED_PRECONDITION,
                f"component {component_id} is in ERROR; acknowledge the error first",
            )
        if state.spec.kind is ComponentKind.BATTERY and state.dc_power_w != 0.0:
            raise SimError(
                ErrorKind.FAILED_PRECONDITION,
                f"battery {component_id} carries {state.dc_power_w:g} W; its power must "
                "be 0 W before it can be stopped",
            )
        state.operating = OperatingState.OFF
        state.active = None
        state.reactive = None
        self._unsettled = True

    def acknowledge_error(self, component_id: int, now: datetime) -> None:
        """Clear a component's error, leaving it in standby (a no-op without error).

        Raises:
            SimError: FAILED_PRECONDITION while the cause of the error persists.
        """
        state = self._controllable_state(component_id, "acknowledged")
        self.step(now)
        if state.operating is not OperatingState.ERROR:
            return
        if self.faults.first(now, component_id, FaultKind.ERROR) is not None:
            raise SimError(
                ErrorKind.FAILED_PRECONDITION,
                f"component {component_id}: the cause of {', '.join(state.errors)} persists",
            )
        state.operating = OperatingState.STANDBY
        state.errors = ()
        self._unsettled = True

    def _controllable_state(self, component_id: int, action: str) -> _State:
        state = self._state(component_id)
        if state.spec.kind not in CONTROLLABLE_KINDS | SWITCH_KINDS | {ComponentKind.BATTERY}:
            raise SimError(
                ErrorKind.INVALID_ARGUMENT,
                f"component {component_id} is a {state.spec.kind.value} and cannot be {action}",
            )
        return state

    # ---------------------------------------------------------------- telemetry

    def sample(self, component_id: int, now: datetime) -> ComponentSample:
        """Return what the component's telemetry shows at `now` (NaN faults applied)."""
        state = self._state(component_id)
        self._settle_if_needed(now)
        details = state.spec.details
        metrics: list[MetricValue] = []
        if isinstance(details, BatterySpec):
            soc = 100.0 * state.energy_wh / details.capacity_wh
            power_bounds = inclusion_exclusion(*self._battery_bounds(state, now))
            current = state.dc_power_w / details.nominal_voltage_v
            metrics += [
                MetricValue(Metric.BATTERY_SOC_PCT, soc, (details.soc_bounds_pct,)),
                MetricValue(Metric.DC_POWER, state.dc_power_w, power_bounds),
                MetricValue(Metric.BATTERY_CAPACITY, details.capacity_wh),
                MetricValue(Metric.BATTERY_TEMPERATURE, details.temperature_c),
                MetricValue(Metric.DC_VOLTAGE, details.nominal_voltage_v),
                MetricValue(Metric.DC_CURRENT, current),
            ]
        else:
            controllable = state.spec.kind in CONTROLLABLE_KINDS
            metrics += _ac_metrics(
                state.ac_power_w,
                state.reactive_power_w,
                self.active_bounds(component_id, now) if controllable else (),
                self.reactive_bounds(component_id, now) if controllable else (),
            )
            if isinstance(details, InverterSpec):
                metrics.append(MetricValue(Metric.DC_POWER, state.dc_power_w))
        nan_faults = self.faults.active(now, component_id, FaultKind.NAN_METRICS)
        if nan_faults:
            names = {name.lower() for fault in nan_faults for name in fault.metrics}
            metrics = [
                MetricValue(m.metric, math.nan, m.bounds)
                if not names or m.metric.value in names
                else m
                for m in metrics
            ]
        return ComponentSample(
            component_id=component_id,
            sampled_at=now,
            metrics=tuple(metrics),
            states=self._state_codes(state),
            errors=state.errors,
        )

    def sensor_sample(self, sensor_id: int, now: datetime) -> ComponentSample:
        """Return what a sensor reports at `now`: the weather it measures.

        Raises:
            SimError: NOT_FOUND for an unknown sensor.
        """
        sensor = next((s for s in self.site.sensors if s.id == sensor_id), None)
        if sensor is None:
            raise SimError(ErrorKind.NOT_FOUND, f"sensor {sensor_id} does not exist")
        weather = self.site.weather
        readings = {
            Metric.SENSOR_IRRADIANCE: weather.irradiance_w_m2,
            Metric.SENSOR_WIND_SPEED: weather.wind_speed_m_s,
            Metric.SENSOR_TEMPERATURE: weather.temperature_c,
        }
        return ComponentSample(
            component_id=sensor_id,
            sampled_at=now,
            metrics=tuple(
                MetricValue(metric, hourly_value(series, self.sim_time))
                for metric, series in readings.items()
                if metric in SENSOR_METRICS[sensor.kind]
            ),
        )

    def _state_codes(self, state: _State) -> tuple[StateCode, ...]:
        """The states telemetry reports, as a real component does.

        A battery reports its main relay besides its operating state: closed only
        while it is operational (READY, CHARGING, DISCHARGING), open otherwise.
        """
        if state.spec.kind in SWITCH_KINDS:
            return (self._switch_code(state),)
        if state.spec.kind not in CONTROLLABLE_KINDS | {ComponentKind.BATTERY}:
            return (StateCode.READY,)
        code = self._operating_code(state)
        if state.spec.kind is ComponentKind.EV_CHARGER:
            plugged = self.ev_plugged(state.spec.id)
            cable = (
                StateCode.EV_CHARGING_CABLE_LOCKED_AT_EV
                if plugged
                else StateCode.EV_CHARGING_CABLE_UNPLUGGED
            )
            return (code, cable)
        if state.spec.kind is not ComponentKind.BATTERY:
            return (code,)
        ready = state.operating is OperatingState.READY
        return (code, StateCode.RELAY_CLOSED if ready else StateCode.RELAY_OPEN)

    @staticmethod
    def _switch_code(state: _State) -> StateCode:
        closed = state.operating is OperatingState.READY
        if state.spec.kind is ComponentKind.RELAY:
            return StateCode.RELAY_CLOSED if closed else StateCode.RELAY_OPEN
        if state.operating is OperatingState.STARTING:
            return StateCode.PRECHARGER_PRECHARGING
        return StateCode.PRECHARGER_CLOSED if closed else StateCode.PRECHARGER_OPEN

    @staticmethod
    def _operating_code(state: _State) -> StateCode:
        match state.operating:
            case OperatingState.OFF:
                return StateCode.OFF
            case OperatingState.STANDBY:
                return StateCode.STANDBY
            case OperatingState.STARTING:
                return StateCode.SWITCHING_ON
            case OperatingState.ERROR:
                return StateCode.ERROR
            case OperatingState.READY:
                power = (
                    state.dc_power_w
                    if state.spec.kind is ComponentKind.BATTERY
                    else state.ac_power_w
                )
                if power > 0:
                    return StateCode.CHARGING
                if power < 0:
                    return StateCode.DISCHARGING
                return StateCode.READY

    # ---------------------------------------------------------------- internals

    def _state(self, component_id: int) -> _State:
        state = self._states.get(component_id)
        if state is None:
            raise SimError(ErrorKind.NOT_FOUND, f"component {component_id} does not exist")
        return state

    def _own_active_bounds(self, state: _State, now: datetime) -> tuple[Range, ...]:
        details = state.spec.details
        if self._switches_above[state.spec.id] and self._cut_off(state.spec.id):
            return ()
        match details:
            case InverterSpec():
                own = inclusion_exclusion(details.active_bounds, details.exclusion)
                battery_ranges = self._batteries_bounds(state, now)
                return intersect(own, battery_ranges)
            case PvSpec():
                return (Range(-details.peak_power_w, 0.0),)
            case EvChargerSpec():
                return self._ev_charger_bounds(state.spec.id, details)
            case _:
                return ()

    def _ev_charger_bounds(self, charger_id: int, spec: EvChargerSpec) -> tuple[Range, ...]:
        """0..0 without a car; else up to the lower of the charger's and the car's limit.

        With a `min_power` the charger runs at 0 W or from there up: the bounds show
        the gap (`[[0, 0], [min, upper]]`), and a car that cannot take the minimum
        leaves only 0 W.
        """
        plug = self._plugs.get(charger_id)
        upper = spec.max_power_w if plug is None else plug.limit_w(spec.max_power_w)
        if spec.min_power_w <= 0.0:
            return (Range(0.0, upper),)
        if upper < spec.min_power_w:
            return (Range(0.0, 0.0),)
        return (Range(0.0, 0.0), Range(spec.min_power_w, upper))

    def _batteries_bounds(self, inverter: _State, now: datetime) -> tuple[Range, ...]:
        lower = upper = 0.0
        exclusion_lower = exclusion_upper = 0.0
        for child in self._batteries[inverter.spec.id]:
            battery = self._states[child]
            if self._cut_off(child):
                continue  # its precharger is open: its DC side is disconnected
            if battery.operating not in (OperatingState.READY, OperatingState.STARTING):
                continue  # a starting battery will carry power: its commands are taken
            share = len(self._inverters_of[child])
            bounds, exclusion = self._battery_bounds(battery, now)
            lower += bounds.lower / share
            upper += bounds.upper / share
            if exclusion is not None:
                exclusion_lower = min(exclusion_lower, exclusion.lower)
                exclusion_upper = max(exclusion_upper, exclusion.upper)
        return inclusion_exclusion(Range(lower, upper), Range(exclusion_lower, exclusion_upper))

    def _battery_bounds(self, battery: _State, now: datetime) -> tuple[Range, Range | None]:
        """A battery's DC power bounds now: inclusion range and exclusion band.

        Its own (tapered near the SoC limits), narrowed by bounds added to it (the API
        documentation's example: inclusion ±100 kW with exclusion ±50 kW, added as the
        two ranges [-100 kW, -50 kW] and [50 kW, 100 kW]). An inverter sees each battery
        as one range and one band around 0 W; a gap elsewhere is not modelled.
        """
        details = _battery(battery)
        bounds = battery_power_bounds(details, 100.0 * battery.energy_wh / details.capacity_wh)
        added = [b for b in battery.added_active if b.until > now]
        if not added:
            return bounds, details.exclusion
        ranges = intersect(
            inclusion_exclusion(bounds, details.exclusion),
            merge(r for b in added for r in b.ranges),
        )
        if not ranges:
            return Range(0.0, 0.0), None
        below = [r.upper for r in ranges if r.upper < 0.0]
        above = [r.lower for r in ranges if r.lower > 0.0]
        if any(r.lower <= 0.0 <= r.upper for r in ranges):
            return hull(ranges), None
        return hull(ranges), Range(max(below, default=0.0), min(above, default=0.0))

    def _own_reactive_bounds(self, state: _State) -> tuple[Range, ...]:
        details = state.spec.details
        match details:
            case InverterSpec():
                limit = max(abs(details.active_bounds.lower), abs(details.active_bounds.upper))
            case PvSpec():
                limit = details.peak_power_w
            case EvChargerSpec():
                limit = 0.0
            case _:
                return ()
        return (Range(-limit, limit),)

    def _dc_children(self, inverter_id: int) -> list[int]:
        below: list[int] = []
        for child in self._children[inverter_id]:
            if self._states[child].spec.kind is ComponentKind.PRECHARGER:
                below += self._children[child]
            else:
                below.append(child)
        return below

    def _switches_on_the_way_up(self, component_id: int) -> tuple[int, ...]:
        found: list[int] = []
        seen: set[int] = set()
        queue = list(self._states[component_id].spec.parents)
        while queue:
            cid = queue.pop()
            if cid in seen:
                continue
            seen.add(cid)
            spec = self._states[cid].spec
            if spec.kind in SWITCH_KINDS:
                found.append(cid)
            queue += spec.parents
        return tuple(sorted(found))

    def _open_switch(self, component_id: int) -> int | None:
        """The first relay or precharger above `component_id` that is not closed."""
        for switch in self._switches_above[component_id]:
            if self._states[switch].operating is not OperatingState.READY:
                return switch
        return None

    def _cut_off(self, component_id: int) -> bool:
        """An open relay or precharger above it: it can carry no power."""
        return self._open_switch(component_id) is not None

    def _bottom_up_order(self) -> list[int]:
        order: list[int] = []
        seen: set[int] = set()

        def visit(cid: int) -> None:
            if cid in seen:
                return
            seen.add(cid)
            for child in self._children[cid]:
                visit(child)
            order.append(cid)

        for cid in self._states:
            visit(cid)
        return order


def _battery(state: _State) -> BatterySpec:
    details = state.spec.details
    assert isinstance(details, BatterySpec)
    return details


def _resolution(spec: ComponentSpec) -> float:
    details = spec.details
    if isinstance(details, InverterSpec | PvSpec | EvChargerSpec):
        return details.resolution_w
    return 1.0


def _show_ranges(ranges: Sequence[Range]) -> str:
    if not ranges:
        return "[] (only 0 W)"
    return "[" + ", ".join(f"[{r.lower:g}, {r.upper:g}]" for r in ranges) + "]"


def _ac_metrics(
    power_w: float,
    reactive_var: float,
    active_bounds: tuple[Range, ...],
    reactive_bounds: tuple[Range, ...],
) -> list[MetricValue]:
    phase_power = power_w / 3
    phase_current = phase_power / NOMINAL_AC_VOLTAGE_V
    return [
        MetricValue(Metric.AC_ACTIVE_POWER, power_w, active_bounds),
        MetricValue(Metric.AC_ACTIVE_POWER_PHASE_1, phase_power),
        MetricValue(Metric.AC_ACTIVE_POWER_PHASE_2, phase_power),
        MetricValue(Metric.AC_ACTIVE_POWER_PHASE_3, phase_power),
        MetricValue(Metric.AC_REACTIVE_POWER, reactive_var, reactive_bounds),
        MetricValue(Metric.AC_CURRENT_PHASE_1, phase_current),
        MetricValue(Metric.AC_CURRENT_PHASE_2, phase_current),
        MetricValue(Metric.AC_CURRENT_PHASE_3, phase_current),
        MetricValue(Metric.AC_VOLTAGE_PHASE_1_N, NOMINAL_AC_VOLTAGE_V),
        MetricValue(Metric.AC_VOLTAGE_PHASE_2_N, NOMINAL_AC_VOLTAGE_V),
        MetricValue(Metric.AC_VOLTAGE_PHASE_3_N, NOMINAL_AC_VOLTAGE_V),
        MetricValue(Metric.AC_FREQUENCY, NOMINAL_FREQUENCY_HZ),
    ]


__all__ = [
    "COMMAND_LIFETIME_RANGE_S",
    "DEFAULT_BOUNDS_VALIDITY_S",
    "DEFAULT_COMMAND_LIFETIME_S",
    "CommandRecord",
    "ComponentSample",
    "Metric",
    "MetricValue",
    "OperatingState",
    "SiteModel",
    "StateCode",
    "battery_power_bounds",
    "floor_to_resolution",
    "hourly_value",
]
