"""Typed telemetry readings and the cache the controller reads them from.

One reading is what one telemetry message says about one battery, one inverter (a
battery's or a PV inverter), one EV charger or one meter. Values are floats in the
API's units (W, Wh, %), passive sign convention (+ charges or consumes, − discharges
or produces; at the grid meter + is import from the grid). A value may be NaN: it
means "unknown" and the reading is kept, so the consumer decides (e.g. an actor
replaces a battery's unknown bounds with its inverter's). Bounds keep the API's union
form — a tuple of ranges whose union is allowed, an exclusion band showing as a gap —
or are `None` when unknown.

`TelemetryCache` keeps the latest reading per component and answers "what do we know
that is fresh enough?"::

    cache = TelemetryCache(stale_after=timedelta(seconds=10))
    cache.update(reading)                  # from the stream tasks
    cache.battery(11, now)                 # None if missing or older than 10 s
    cache.last_battery(11)                 # the latest, however old
    cache.meter(2, now)                    # the grid meter, fresh or None
    cache.battery(11, now).state           # ComponentState.READY, .ERROR, ...
    cache.ev_charger(80, now).cable        # EvCable.LOCKED_AT_EV: a car is connected

Pure: no client, no I/O; the conversion from the client's samples lives in
`edge_controller.microgrid.from_client`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from edge_controller.power.bounds import Range, merge

BoundEnds = tuple[float | None, float | None]
"""A bound as the API gives it: `(lower, upper)`, `None` for a missing end."""


class ComponentState(StrEnum):
    """What a battery or an inverter says it is doing, collapsed to one value.

    A state snapshot of the API carries a *set* of codes (`READY` with
    `DISCHARGING`, `ERROR` with `RELAY_OPEN`, ...); the controller needs one answer
    to "can I use it, and if not, why not?". `component_state` gives it, the worst
    code winning: a component that says `ERROR` and `READY` at once is in error.

    Only `READY`, `CHARGING` and `DISCHARGING` are working states (`is_working`).
    `UNKNOWN` means no state was reported (or only codes that say nothing about
    operation): it is not a reason to take a component out, staleness and failed
    commands are judged elsewhere.
    """

    READY = "ready"
    """Operational and idle (or no direction reported)."""
    CHARGING = "charging"
    """Operational, taking power."""
    DISCHARGING = "discharging"
    """Operational, giving power."""
    SWITCHING_ON = "switching_on"
    """On its way to a working state."""
    STANDBY = "standby"
    """Idle at 0 W until started (or, on some devices, until commanded)."""
    SWITCHING_OFF = "switching_off"
    """On its way to off."""
    UNAVAILABLE = "unavailable"
    """Temporarily cannot be operated (the device says so, e.g. during maintenance)."""
    OFF = "off"
    """Stopped: relays open."""
    ERROR = "error"
    """Faulted: refuses commands until the error is acknowledged."""
    UNKNOWN = "unknown"
    """No state reported."""

    @property
    def is_working(self) -> bool:
        """Tell whether the component follows power commands in this state."""
        return self in _WORKING


_WORKING = frozenset({ComponentState.READY, ComponentState.CHARGING, ComponentState.DISCHARGING})

_STATE_PRECEDENCE = (
    ("ERROR", ComponentState.ERROR),
    ("OFF", ComponentState.OFF),
    ("UNAVAILABLE", ComponentState.UNAVAILABLE),
    ("SWITCHING_OFF", ComponentState.SWITCHING_OFF),
    ("STANDBY", ComponentState.STANDBY),
    ("SWITCHING_ON", ComponentState.SWITCHING_ON),
    ("DISCHARGING", ComponentState.DISCHARGING),
    ("CHARGING", ComponentState.CHARGING),
    ("READY", ComponentState.READY),
)
"""State code names, worst first: the first one present decides."""


def component_state(codes: Iterable[str]) -> ComponentState:
    """Collapse the state code names of one snapshot into one `ComponentState`.

    The worst code present wins (ERROR, then OFF, UNAVAILABLE, SWITCHING_OFF,
    STANDBY, SWITCHING_ON, DISCHARGING, CHARGING, READY), so a fault is never hidden
    by a working code reported beside it. Codes that say nothing about operation
    (`RELAY_CLOSED`, `UNRECOGNIZED_999`, ...) are ignored; none left → `UNKNOWN`.
    """
    present = frozenset(codes)
    for name, state in _STATE_PRECEDENCE:
        if name in present:
            return state
    return ComponentState.UNKNOWN


@dataclass(frozen=True, slots=True)
class BatteryReading:
    """A battery's state at `sampled_at`; any float may be NaN (unknown).

    `bounds` is the DC power allowed (W, union of ranges), `None` when unknown;
    `soc_lower_pct`/`soc_upper_pct` the SoC window the battery may be used in.
    `states` and `errors` are names of the API's state and diagnostic codes
    (`"READY"`, `"CHARGING"`, `"OVERTEMPERATURE"`, ...); `state` is what they add up
    to (see `ComponentState`).
    """

    component_id: int
    sampled_at: datetime
    soc_pct: float
    soc_lower_pct: float
    soc_upper_pct: float
    capacity_wh: float
    power_w: float
    bounds: tuple[Range, ...] | None
    states: frozenset[str]
    errors: frozenset[str]

    @property
    def state(self) -> ComponentState:
        """The battery's state in one value (`UNKNOWN` when no state was reported).

        Derived from `states` rather than stored beside it, so the two cannot disagree.
        """
        return component_state(self.states)


@dataclass(frozen=True, slots=True)
class InverterReading:
    """An inverter's AC active power (W, may be NaN) and its bounds at `sampled_at`.

    `bounds` is the power it may be commanded to (union of ranges; 0 W is always
    allowed besides), `None` when unknown. `states`/`errors` as for batteries, `state`
    what they add up to.
    """

    component_id: int
    sampled_at: datetime
    power_w: float
    bounds: tuple[Range, ...] | None
    states: frozenset[str]
    errors: frozenset[str]

    @property
    def state(self) -> ComponentState:
        """The inverter's state in one value (`UNKNOWN` when no state was reported).

        Derived from `states` rather than stored beside it, so the two cannot disagree.
        """
        return component_state(self.states)


class EvCable(StrEnum):
    """Where an EV charger's cable is plugged, from its state codes.

    A car is connected only when the cable is at the EV (`car_connected`); a cable
    plugged or locked at the station only is a charger waiting for a car.
    """

    UNPLUGGED = "unplugged"
    PLUGGED_AT_STATION = "plugged_at_station"
    LOCKED_AT_STATION = "locked_at_station"
    PLUGGED_AT_EV = "plugged_at_ev"
    LOCKED_AT_EV = "locked_at_ev"
    UNKNOWN = "unknown"
    """No cable state reported: whether a car is there must be read from the bounds."""

    @property
    def car_connected(self) -> bool | None:
        """Whether a car is on the cable; `None` when the charger does not say."""
        if self is EvCable.UNKNOWN:
            return None
        return self in (EvCable.PLUGGED_AT_EV, EvCable.LOCKED_AT_EV)


_CABLE_PRECEDENCE = (
    ("EV_CHARGING_CABLE_LOCKED_AT_EV", EvCable.LOCKED_AT_EV),
    ("EV_CHARGING_CABLE_PLUGGED_AT_EV", EvCable.PLUGGED_AT_EV),
    ("EV_CHARGING_CABLE_LOCKED_AT_STATION", EvCable.LOCKED_AT_STATION),
    ("EV_CHARGING_CABLE_PLUGGED_AT_STATION", EvCable.PLUGGED_AT_STATION),
    ("EV_CHARGING_CABLE_UNPLUGGED", EvCable.UNPLUGGED),
)
"""Cable code names, most connected first: the first one present decides."""


def ev_cable(codes: Iterable[str]) -> EvCable:
    """The cable state of one snapshot's state code names (`UNKNOWN` if none is a cable code).

    Should a charger report two, the more connected one wins: a car that is there is
    never hidden by a stale "unplugged".
    """
    present = frozenset(codes)
    for name, cable in _CABLE_PRECEDENCE:
        if name in present:
            return cable
    return EvCable.UNKNOWN


@dataclass(frozen=True, slots=True)
class EvChargerReading:
    """An EV charger's AC active power (W, + charging, may be NaN) and bounds at `sampled_at`.

    `bounds` is what it may be commanded to now (union of ranges), `None` when
    unknown: a charger with no car reports 0..0. `states`/`errors` as for batteries;
    `state` and `cable` are what they add up to.
    """

    component_id: int
    sampled_at: datetime
    power_w: float
    bounds: tuple[Range, ...] | None
    states: frozenset[str]
    errors: frozenset[str]

    @property
    def state(self) -> ComponentState:
        """The charger's state in one value (`UNKNOWN` when no state was reported)."""
        return component_state(self.states)

    @property
    def cable(self) -> EvCable:
        """Where its cable is plugged (`UNKNOWN` when no cable state was reported)."""
        return ev_cable(self.states)


@dataclass(frozen=True, slots=True)
class MeterReading:
    """A meter's AC active power (W, may be NaN) at `sampled_at`.

    Passive sign convention: what flows down from the meter's parent counts +. At the
    grid meter (the one right below the grid connection point) + is import from the
    grid and − is export, which is what the site limits and peak shaving judge.
    """

    component_id: int
    sampled_at: datetime
    power_w: float


Reading = BatteryReading | InverterReading | EvChargerReading | MeterReading


def ranges_from_bounds(bounds: Iterable[BoundEnds]) -> tuple[Range, ...] | None:
    """Turn the API's list of bounds into the union form, or `None` when unknown.

    A missing end is ±inf. Unknown (`None`) when the list is empty, when an end is NaN,
    or when a bound is inverted — a device that reports such bounds cannot be trusted
    for any of them. Overlapping ranges are merged (the union is the same).
    """
    ranges: list[Range] = []
    for lower, upper in bounds:
        low = -math.inf if lower is None else lower
        high = math.inf if upper is None else upper
        if math.isnan(low) or math.isnan(high) or low > high:
            return None
        ranges.append(Range(low, high))
    return merge(ranges) if ranges else None


def soc_window(bounds: Iterable[BoundEnds]) -> tuple[float, float]:
    """Return `(lower, upper)` SoC % from the first bound of a SoC sample.

    A missing end is the natural limit (0 % or 100 %); no bound at all, or a NaN end,
    gives NaN (unknown).
    """
    first = next(iter(bounds), None)
    if first is None:
        return math.nan, math.nan
    lower, upper = first
    return (
        0.0 if lower is None else lower,
        100.0 if upper is None else upper,
    )


class TelemetryCache:
    """The latest reading of each battery, inverter, EV charger and meter, with a freshness rule.

    A reading is fresh while its age (`now - sampled_at`) is at most `stale_after`;
    strictly older, the `battery`/`inverter`/`ev_charger`/`meter` queries return `None`,
    as if it were
    missing. A reading older than the one already held is ignored (streams can
    deliver late). Nothing here raises on NaN values: they are stored as given.
    """

    def __init__(self, stale_after: timedelta = timedelta(seconds=10)) -> None:
        """Consider readings stale once older than `stale_after`.

        Raises:
            ValueError: `stale_after` is negative.
        """
        if stale_after < timedelta(0):
            raise ValueError(f"stale_after must be >= 0, got {stale_after}")
        self.stale_after = stale_after
        self._batteries: dict[int, BatteryReading] = {}
        self._inverters: dict[int, InverterReading] = {}
        self._ev_chargers: dict[int, EvChargerReading] = {}
        self._meters: dict[int, MeterReading] = {}

    def update(self, reading: Reading) -> None:
        """Store `reading` unless a newer one of the same component is already held."""
        if isinstance(reading, BatteryReading):
            battery = self._batteries.get(reading.component_id)
            if battery is None or battery.sampled_at <= reading.sampled_at:
                self._batteries[reading.component_id] = reading
        elif isinstance(reading, InverterReading):
            inverter = self._inverters.get(reading.component_id)
            if inverter is None or inverter.sampled_at <= reading.sampled_at:
                self._inverters[reading.component_id] = reading
        elif isinstance(reading, EvChargerReading):
            charger = self._ev_chargers.get(reading.component_id)
            if charger is None or charger.sampled_at <= reading.sampled_at:
                self._ev_chargers[reading.component_id] = reading
        else:
            meter = self._meters.get(reading.component_id)
            if meter is None or meter.sampled_at <= reading.sampled_at:
                self._meters[reading.component_id] = reading

    def _fresh(self, reading: Reading | None, now: datetime) -> bool:
        return reading is not None and now - reading.sampled_at <= self.stale_after

    def battery(self, component_id: int, now: datetime) -> BatteryReading | None:
        """Return the battery's reading if it is fresh at `now`, else `None`."""
        reading = self._batteries.get(component_id)
        return reading if self._fresh(reading, now) else None

    def inverter(self, component_id: int, now: datetime) -> InverterReading | None:
        """Return the inverter's reading if it is fresh at `now`, else `None`."""
        reading = self._inverters.get(component_id)
        return reading if self._fresh(reading, now) else None

    def ev_charger(self, component_id: int, now: datetime) -> EvChargerReading | None:
        """Return the EV charger's reading if it is fresh at `now`, else `None`."""
        reading = self._ev_chargers.get(component_id)
        return reading if self._fresh(reading, now) else None

    def meter(self, component_id: int, now: datetime) -> MeterReading | None:
        """Return the meter's reading if it is fresh at `now`, else `None`.

        A site limit must not be judged on an old grid power: `None` here is what
        sends the batteries to their safe power.
        """
        reading = self._meters.get(component_id)
        return reading if self._fresh(reading, now) else None

    def last_battery(self, component_id: int) -> BatteryReading | None:
        """Return the battery's latest reading, however old (`None` if never seen)."""
        return self._batteries.get(component_id)

    def last_inverter(self, component_id: int) -> InverterReading | None:
        """Return the inverter's latest reading, however old (`None` if never seen)."""
        return self._inverters.get(component_id)

    def last_ev_charger(self, component_id: int) -> EvChargerReading | None:
        """Return the EV charger's latest reading, however old (`None` if never seen)."""
        return self._ev_chargers.get(component_id)

    def last_meter(self, component_id: int) -> MeterReading | None:
        """Return the meter's latest reading, however old (`None` if never seen)."""
        return self._meters.get(component_id)

    def age(self, component_id: int, now: datetime) -> timedelta | None:
        """Return how old the component's latest reading is at `now` (`None` if none).

        Negative when the reading is stamped after `now` (clocks disagree).
        """
        reading: Reading | None = self._batteries.get(component_id)
        if reading is None:
            reading = self._inverters.get(component_id)
        if reading is None:
            reading = self._ev_chargers.get(component_id)
        if reading is None:
            reading = self._meters.get(component_id)
        return None if reading is None else now - reading.sampled_at
