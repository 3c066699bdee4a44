"""What each kind of component in a site file is, and how its own keys are read.

A `[[components]]` table has the keys every component has (`site.py` reads those:
id, kind, name, parent) and the keys of its kind: a battery's capacity, a PV
inverter's peak power. This module holds the second part, one parser per kind in
`DETAIL_PARSERS`, so a new kind is one spec, one parser and one table entry, and a
kind without a parser fails a test instead of a site file.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from edge_controller.common.toml_reader import (
    Reader,
    checked,
    energy,
    integer,
    join,
    number,
    pair,
    power,
)
from edge_controller.power.bounds import Range
from edge_controller.servers.sim.ev_sessions import EvArrivals, EvSession, read_ev_cars
from edge_controller.weather.power_curve import DEFAULT_WIND_CURVE, read_curve


class ComponentKind(StrEnum):
    """The kinds of component a site file can hold."""

    GRID = "grid"
    METER = "meter"
    BATTERY_INVERTER = "battery_inverter"
    BATTERY = "battery"
    PV_INVERTER = "pv_inverter"
    WIND_TURBINE = "wind_turbine"
    LOAD = "load"
    EV_CHARGER = "ev_charger"
    RELAY = "relay"
    PRECHARGER = "precharger"


@dataclass(frozen=True, slots=True)
class GridSpec:
    """The grid connection point."""

    rated_fuse_current_a: int


@dataclass(frozen=True, slots=True)
class MeterSpec:
    """A meter: it measures the sum of what flows to the components below it."""


@dataclass(frozen=True, slots=True)
class InverterSpec:
    """A battery inverter: commanded in AC watts, feeding one or more batteries."""

    active_bounds: Range
    exclusion: Range | None
    resolution_w: float
    efficiency: float


@dataclass(frozen=True, slots=True)
class BatterySpec:
    """A battery: energy within SoC bounds, power within (SoC-dependent) bounds."""

    capacity_wh: float
    initial_soc_pct: float
    soc_bounds_pct: Range
    power_bounds: Range
    exclusion: Range | None
    efficiency: float
    soc_taper_pct: float
    temperature_c: float
    nominal_voltage_v: float


@dataclass(frozen=True, slots=True)
class PvSpec:
    """A PV inverter with its array: produces from irradiance, can be curtailed."""

    peak_power_w: float
    resolution_w: float


@dataclass(frozen=True, slots=True)
class WindSpec:
    """A wind turbine: produces from wind speed along its power curve."""

    rated_power_w: float
    power_curve: tuple[tuple[float, float], ...]


@dataclass(frozen=True, slots=True)
class LoadSpec:
    """A consumer load with a 24-hour profile; the API shows it as a meter."""

    peak_power_w: float
    hourly_profile: tuple[float, ...]


@dataclass(frozen=True, slots=True)
class RelaySpec:
    """A relay on the AC side: closed, everything below it works; open, nothing does."""


@dataclass(frozen=True, slots=True)
class PrechargerSpec:
    """A precharge module between a battery inverter and its batteries.

    Started, it precharges the DC link for `precharge_s` and then closes the DC
    relays; stopped, it opens them.
    """

    precharge_s: float


@dataclass(frozen=True, slots=True)
class EvChargerSpec:
    """An EV charger: charges only, up to `max_power_w`, the cars plugged in permitting.

    Cars come from `sessions` (a schedule) or `arrivals` (random cars), see
    `sim.ev_sessions`; with neither a car is plugged in for good. `min_power_w` is the
    least it can charge with once it charges at all (6 A on each phase is the least
    the IEC 61851 pilot signal can ask for: 4.1 kW on three phases); 0 W stays allowed.
    """

    max_power_w: float
    resolution_w: float
    min_power_w: float = 0.0
    sessions: tuple[EvSession, ...] | None = None
    arrivals: EvArrivals | None = None

    @property
    def has_sessions(self) -> bool:
        """Whether cars come and go (else one is plugged in for good)."""
        return self.sessions is not None or self.arrivals is not None


ComponentDetails = (
    GridSpec
    | MeterSpec
    | InverterSpec
    | BatterySpec
    | PvSpec
    | WindSpec
    | LoadSpec
    | EvChargerSpec
    | RelaySpec
    | PrechargerSpec
)


def hourly_values(raw: object) -> tuple[float, ...] | None:
    """Read a number, or 24 numbers (one per hour of the day)."""
    single = number(raw)
    if single is not None:
        return (single,)
    if isinstance(raw, list) and len(raw) == 24:
        values = [number(item) for item in raw]
        if all(v is not None for v in values):
            return tuple(v for v in values if v is not None)
    return None


def _profile(raw: object) -> tuple[float, ...] | None:
    values = hourly_values(raw)
    if values is None or len(values) != 24 or not all(0.0 <= v <= 1.0 for v in values):
        return None
    return values


KIND_KEYS: dict[ComponentKind, set[str]] = {
    ComponentKind.GRID: {"rated_fuse_current"},
    ComponentKind.METER: set(),
    ComponentKind.BATTERY_INVERTER: {
        "active_power_bounds",
        "exclusion_bounds",
        "resolution",
        "efficiency",
    },
    ComponentKind.BATTERY: {
        "capacity",
        "initial_soc",
        "soc_bounds",
        "power_bounds",
        "exclusion_bounds",
        "efficiency",
        "soc_taper",
        "temperature",
        "nominal_voltage",
    },
    ComponentKind.PV_INVERTER: {"peak_power", "resolution"},
    ComponentKind.WIND_TURBINE: {"rated_power", "power_curve"},
    ComponentKind.LOAD: {"peak_power", "hourly_profile"},
    ComponentKind.EV_CHARGER: {"max_power", "resolution", "min_power", "sessions", "arrivals"},
    ComponentKind.RELAY: set(),
    ComponentKind.PRECHARGER: {"precharge_time"},
}
"""The keys of each kind, besides the keys every component has."""

_POSITIVE_POWER = checked(power, lambda v: v > 0)
_FRACTION = checked(number, lambda v: 0.0 < v <= 1.0)


def _optional_exclusion(reader: Reader, data: Mapping[str, Any], path: str) -> Range | None:
    exclusion = reader.value(
        data,
        "exclusion_bounds",
        path,
        pair(power, Range),
        "[lower, upper] power with lower <= 0 <= upper",
        default=None,
    )
    if exclusion is not None and not exclusion.lower <= 0.0 <= exclusion.upper:
        reader.fail(
            join(path, "exclusion_bounds"),
            "a band around 0 W",
            f"[{exclusion.lower}, {exclusion.upper}]",
        )
        return None
    return exclusion


def _grid(reader: Reader, data: Mapping[str, Any], path: str) -> GridSpec:
    fuse = reader.value(
        data, "rated_fuse_current", path, integer, "a current in A (integer)", default=0
    )
    return GridSpec(rated_fuse_current_a=fuse or 0)


def _meter(reader: Reader, data: Mapping[str, Any], path: str) -> MeterSpec:
    return MeterSpec()


def _battery_inverter(reader: Reader, data: Mapping[str, Any], path: str) -> InverterSpec | None:
    bounds = reader.value(
        data,
        "active_power_bounds",
        path,
        pair(power, Range),
        "[lower, upper] power with lower <= 0 <= upper",
    )
    if bounds is not None and not bounds.lower <= 0.0 <= bounds.upper:
        reader.fail(
            join(path, "active_power_bounds"),
            "lower <= 0 <= upper",
            f"[{bounds.lower}, {bounds.upper}]",
        )
    exclusion = _optional_exclusion(reader, data, path)
    resolution = reader.value(data, "resolution", path, _POSITIVE_POWER, "power > 0", default=1.0)
    efficiency = reader.value(
        data, "efficiency", path, _FRACTION, "a fraction in (0, 1]", default=0.97
    )
    if bounds is None or resolution is None or efficiency is None:
        return None
    return InverterSpec(bounds, exclusion, resolution, efficiency)


def _battery(reader: Reader, data: Mapping[str, Any], path: str) -> BatterySpec | None:
    capacity = reader.value(data, "capacity", path, checked(energy, lambda v: v > 0), "energy > 0")
    soc = reader.value(
        data,
        "initial_soc",
        path,
        checked(number, lambda v: 0 <= v <= 100),
        "a percentage 0-100",
    )
    soc_bounds = reader.value(
        data,
        "soc_bounds",
        path,
        pair(checked(number, lambda v: 0 <= v <= 100), Range),
        "[lower, upper] percentages 0-100",
        default=Range(10.0, 90.0),
    )
    power_bounds = reader.value(
        data,
        "power_bounds",
        path,
        pair(power, Range),
        "[lower, upper] power with lower <= 0 <= upper",
    )
    if power_bounds is not None and not power_bounds.lower <= 0.0 <= power_bounds.upper:
        reader.fail(
            join(path, "power_bounds"),
            "lower <= 0 <= upper",
            f"[{power_bounds.lower}, {power_bounds.upper}]",
        )
    exclusion = _optional_exclusion(reader, data, path)
    efficiency = reader.value(
        data, "efficiency", path, _FRACTION, "a fraction in (0, 1]", default=0.95
    )
    taper = reader.value(
        data,
        "soc_taper",
        path,
        checked(number, lambda v: 0 <= v <= 50),
        "percentage points 0-50",
        default=5.0,
    )
    temperature = reader.value(data, "temperature", path, number, "degrees Celsius", default=25.0)
    voltage = reader.value(
        data,
        "nominal_voltage",
        path,
        checked(number, lambda v: v > 0),
        "volts > 0",
        default=800.0,
    )
    if (
        capacity is None
        or soc is None
        or soc_bounds is None
        or power_bounds is None
        or efficiency is None
        or taper is None
        or temperature is None
        or voltage is None
    ):
        return None
    return BatterySpec(
        capacity_wh=capacity,
        initial_soc_pct=soc,
        soc_bounds_pct=soc_bounds,
        power_bounds=power_bounds,
        exclusion=exclusion,
        efficiency=efficiency,
        soc_taper_pct=taper,
        temperature_c=temperature,
        nominal_voltage_v=voltage,
    )


def _pv_inverter(reader: Reader, data: Mapping[str, Any], path: str) -> PvSpec | None:
    peak = reader.value(data, "peak_power", path, _POSITIVE_POWER, "power > 0")
    resolution = reader.value(data, "resolution", path, _POSITIVE_POWER, "power > 0", default=1.0)
    if peak is None or resolution is None:
        return None
    return PvSpec(peak, resolution)


def _wind_turbine(reader: Reader, data: Mapping[str, Any], path: str) -> WindSpec | None:
    rated = reader.value(data, "rated_power", path, _POSITIVE_POWER, "power > 0")
    curve = reader.value(
        data,
        "power_curve",
        path,
        read_curve,
        "[[speed m/s, fraction 0-1], ...] with increasing speeds",
        default=DEFAULT_WIND_CURVE,
    )
    if rated is None or curve is None:
        return None
    return WindSpec(rated, curve)


def _load(reader: Reader, data: Mapping[str, Any], path: str) -> LoadSpec | None:
    peak = reader.value(data, "peak_power", path, _POSITIVE_POWER, "power > 0")
    profile = reader.value(
        data,
        "hourly_profile",
        path,
        _profile,
        "24 hourly factors 0-1",
        default=(1.0,) * 24,
    )
    if peak is None or profile is None:
        return None
    return LoadSpec(peak, profile)


def _ev_charger(reader: Reader, data: Mapping[str, Any], path: str) -> EvChargerSpec | None:
    max_power = reader.value(data, "max_power", path, _POSITIVE_POWER, "power > 0")
    resolution = reader.value(data, "resolution", path, _POSITIVE_POWER, "power > 0", default=1.0)
    min_power = reader.value(
        data,
        "min_power",
        path,
        checked(power, lambda v: v >= 0),
        "power >= 0 (the least it charges with)",
        default=0.0,
    )
    if max_power is not None and min_power is not None and min_power > max_power:
        reader.fail(join(path, "min_power"), f"at most max_power ({max_power:g} W)", min_power)
        return None
    sessions, arrivals = read_ev_cars(reader, data, path)
    if (
        max_power is None
        or resolution is None
        or min_power is None
        or ("sessions" in data and sessions is None)
        or ("arrivals" in data and arrivals is None)
    ):
        return None
    return EvChargerSpec(max_power, resolution, min_power, sessions, arrivals)


def _relay(reader: Reader, data: Mapping[str, Any], path: str) -> RelaySpec:
    return RelaySpec()


def _precharger(reader: Reader, data: Mapping[str, Any], path: str) -> PrechargerSpec | None:
    precharge = reader.value(
        data,
        "precharge_time",
        path,
        checked(number, lambda v: 0 <= v <= 600),
        "seconds, 0-600",
        default=5.0,
    )
    return None if precharge is None else PrechargerSpec(precharge)


DetailParser = Callable[[Reader, Mapping[str, Any], str], ComponentDetails | None]
"""Reads one kind's own keys from a component table at `path`: the details, or `None`
with the problems noted in the reader."""

DETAIL_PARSERS: Mapping[ComponentKind, DetailParser] = {
    ComponentKind.GRID: _grid,
    ComponentKind.METER: _meter,
    ComponentKind.BATTERY_INVERTER: _battery_inverter,
    ComponentKind.BATTERY: _battery,
    ComponentKind.PV_INVERTER: _pv_inverter,
    ComponentKind.WIND_TURBINE: _wind_turbine,
    ComponentKind.LOAD: _load,
    ComponentKind.EV_CHARGER: _ev_charger,
    ComponentKind.RELAY: _relay,
    ComponentKind.PRECHARGER: _precharger,
}
"""The parser of each kind; `tests/servers/sim/test_site_details.py` checks that every
kind has one."""
