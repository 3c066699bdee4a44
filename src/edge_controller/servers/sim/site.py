"""The simulator's site file: a TOML description of a microgrid, parsed into specs.

A site file names the microgrid, the simulation's rates, the weather, every
component with its physical parameters and its parent(s) (connections point away
from the grid), optional sensors, and fault windows. Parsing collects *every*
problem and raises one `SiteFileError` whose lines each name the file, the key path,
what was expected and what was found, e.g.::

    sim-site.toml: components[3].capacity: expected energy > 0, got -5

Quantities are numbers in base units (W, Wh) or strings with a unit ("250 kW",
"800 kWh"), parsed by `frequenz.quantities`.
"""

from __future__ import annotations

import itertools
import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path
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
    string,
    timestamp,
)
from edge_controller.power.bounds import Range
from edge_controller.servers.sim.ev_sessions import EvArrivals, EvSession, read_ev_cars
from edge_controller.servers.sim.metrics import METRIC_NAMES


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


class FaultKind(StrEnum):
    """The faults the simulator can inject, each during a time window."""

    DELAY = "delay"
    """Control RPCs to the component answer only after `delay` seconds."""
    UNRESPONSIVE = "unresponsive"
    """Control RPCs to the component never answer (the client's deadline ends them)."""
    RPC_ERROR = "rpc_error"
    """Control RPCs to the component fail with the gRPC status `status`."""
    ERROR = "error"
    """The component enters the ERROR state with `error_code`; it stays there until
    acknowledged after the window ends."""
    NAN_METRICS = "nan_metrics"
    """The listed metrics (all if none) are reported as NaN."""
    DROP_STREAM = "drop_stream"
    """Telemetry streams end with UNAVAILABLE and new ones are refused."""
    NO_TELEMETRY = "no_telemetry"
    """Telemetry streams stay open but carry nothing."""


CONTROLLABLE_KINDS = frozenset(
    {ComponentKind.BATTERY_INVERTER, ComponentKind.PV_INVERTER, ComponentKind.EV_CHARGER}
)
SWITCH_KINDS = frozenset({ComponentKind.RELAY, ComponentKind.PRECHARGER})
"""Components that open and close a circuit (StartComponent closes, StopComponent
opens): nothing below an open one carries power."""
LEAF_KINDS = frozenset(
    {
        ComponentKind.BATTERY,
        ComponentKind.PV_INVERTER,
        ComponentKind.WIND_TURBINE,
        ComponentKind.LOAD,
        ComponentKind.EV_CHARGER,
    }
)
RPC_ERROR_STATUSES = frozenset(
    {"UNAVAILABLE", "INTERNAL", "DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED", "UNKNOWN", "ABORTED"}
)
DEFAULT_WIND_CURVE: tuple[tuple[float, float], ...] = (
    (0.0, 0.0),
    (3.0, 0.0),
    (5.0, 0.12),
    (7.0, 0.35),
    (9.0, 0.65),
    (11.0, 0.9),
    (12.5, 1.0),
    (25.0, 1.0),
)
"""Fraction of rated power by wind speed (m/s), shaped like a small turbine's curve;
above the last point the turbine cuts out."""


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


@dataclass(frozen=True, slots=True)
class ComponentSpec:
    """One component of the site, with its parents (connections come from them)."""

    id: int
    kind: ComponentKind
    name: str
    parents: tuple[int, ...]
    details: ComponentDetails
    manufacturer: str = "edge-controller"
    model_name: str = "simulated"


class SensorKind(StrEnum):
    """What a sensor measures of the simulation's weather (`[[sensors]] kind`)."""

    WEATHER_STATION = "weather_station"
    """Irradiance, wind speed and temperature (the API's GENERAL category)."""
    THERMOMETER = "thermometer"
    """Temperature."""
    PYRANOMETER = "pyranometer"
    """Irradiance."""
    ANEMOMETER = "anemometer"
    """Wind speed."""


@dataclass(frozen=True, slots=True)
class SensorSpec:
    """A sensor reporting (part of) the simulation's weather."""

    id: int
    name: str
    kind: SensorKind = SensorKind.WEATHER_STATION


@dataclass(frozen=True, slots=True)
class FaultSpec:
    """A fault on one component during `[start_s, until_s)` after the server starts."""

    component_id: int
    kind: FaultKind
    start_s: float = 0.0
    until_s: float = math.inf
    delay_s: float = 0.0
    status: str = "UNAVAILABLE"
    error_code: str = "UNKNOWN"
    metrics: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class MicrogridSpec:
    """The microgrid's metadata, as GetMicrogrid shows it."""

    id: int
    enterprise_id: int
    name: str
    latitude: float
    longitude: float
    country_code: str
    delivery_area: str


@dataclass(frozen=True, slots=True)
class SimulationSpec:
    """How the simulation runs."""

    telemetry_rate_hz: float = 2.0
    time_step_s: float = 0.1
    start_time: datetime | None = None
    command_log_size: int = 100_000
    standby_wake_s: float = 0.0
    """How long a component takes from standby back to operational (the API
    documentation: "a few minutes"); 0 s wakes it at once."""


class WeatherSource(StrEnum):
    """Where the simulator's weather comes from (`[weather] source`)."""

    FILE = "file"
    """The site file's values: a constant or 24 hourly values per quantity."""
    MEASURED = "measured"
    """The measured weather at the microgrid's location (the NREL TMY3 data of
    `edge_controller.weather.data`), turned into production by the shared models
    (`edge_controller.weather.production`); see `sim.measured_weather`."""


@dataclass(frozen=True, slots=True)
class WeatherSpec:
    """Weather driving production: a constant or 24 hourly values per quantity.

    With `source` MEASURED the simulator replaces the values with the measured
    weather's equivalent as simulation time goes on (`SimService`); the file's
    values are then not used.
    """

    irradiance_w_m2: tuple[float, ...] = (0.0,)
    wind_speed_m_s: tuple[float, ...] = (0.0,)
    temperature_c: tuple[float, ...] = (15.0,)
    source: WeatherSource = WeatherSource.FILE


@dataclass(frozen=True, slots=True)
class SiteSpec:
    """A whole site file, validated."""

    source: str
    microgrid: MicrogridSpec
    simulation: SimulationSpec
    weather: WeatherSpec
    components: tuple[ComponentSpec, ...]
    sensors: tuple[SensorSpec, ...] = ()
    faults: tuple[FaultSpec, ...] = ()
    by_id: Mapping[int, ComponentSpec] = field(default_factory=dict, compare=False)

    @property
    def connections(self) -> tuple[tuple[int, int], ...]:
        """Every (source, destination) pair, pointing away from the grid."""
        return tuple(
            (parent, component.id) for component in self.components for parent in component.parents
        )


class SiteFileError(ValueError):
    """A site file that cannot be used, with one line per problem found."""

    def __init__(self, source: str, problems: list[str]) -> None:
        """Keep every problem; the message lists them, file name first on each line."""
        self.source = source
        self.problems = problems
        super().__init__("\n".join(f"{source}: {problem}" for problem in problems))


def _series(raw: object) -> tuple[float, ...] | None:
    single = number(raw)
    if single is not None:
        return (single,)
    if isinstance(raw, list) and len(raw) == 24:
        values = [number(item) for item in raw]
        if all(v is not None for v in values):
            return tuple(v for v in values if v is not None)
    return None


def _profile(raw: object) -> tuple[float, ...] | None:
    values = _series(raw)
    if values is None or len(values) != 24 or not all(0.0 <= v <= 1.0 for v in values):
        return None
    return values


def _curve(raw: object) -> tuple[tuple[float, float], ...] | None:
    """Read `[[speed m/s, fraction 0-1], ...]` with strictly increasing speeds."""
    if not isinstance(raw, list) or len(raw) < 2:
        return None
    points: list[tuple[float, float]] = []
    for item in raw:
        if not (isinstance(item, list) and len(item) == 2):
            return None
        speed, fraction = number(item[0]), number(item[1])
        if speed is None or fraction is None or speed < 0 or not 0.0 <= fraction <= 1.0:
            return None
        points.append((speed, fraction))
    speeds = [speed for speed, _ in points]
    if any(b <= a for a, b in itertools.pairwise(speeds)):
        return None
    return tuple(points)


def _parents(raw: object) -> tuple[int, ...] | None:
    if isinstance(raw, int) and not isinstance(raw, bool):
        return (raw,)
    if isinstance(raw, list) and raw and all(integer(item) is not None for item in raw):
        return tuple(raw)
    return None


_COMMON_KEYS = {"id", "kind", "name", "parent", "manufacturer", "model_name"}
_KIND_KEYS: dict[ComponentKind, set[str]] = {
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


def _details(
    reader: Reader, kind: ComponentKind, data: Mapping[str, Any], path: str
) -> ComponentDetails | None:
    match kind:
        case ComponentKind.GRID:
            fuse = reader.value(
                data, "rated_fuse_current", path, integer, "a current in A (integer)", default=0
            )
            return GridSpec(rated_fuse_current_a=fuse or 0)
        case ComponentKind.METER:
            return MeterSpec()
        case ComponentKind.RELAY:
            return RelaySpec()
        case ComponentKind.PRECHARGER:
            precharge = reader.value(
                data,
                "precharge_time",
                path,
                checked(number, lambda v: 0 <= v <= 600),
                "seconds, 0-600",
                default=5.0,
            )
            return None if precharge is None else PrechargerSpec(precharge)
        case ComponentKind.BATTERY_INVERTER:
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
            resolution = reader.value(
                data, "resolution", path, _POSITIVE_POWER, "power > 0", default=1.0
            )
            efficiency = reader.value(
                data, "efficiency", path, _FRACTION, "a fraction in (0, 1]", default=0.97
            )
            if bounds is None or resolution is None or efficiency is None:
                return None
            return InverterSpec(bounds, exclusion, resolution, efficiency)
        case ComponentKind.BATTERY:
            capacity = reader.value(
                data, "capacity", path, checked(energy, lambda v: v > 0), "energy > 0"
            )
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
            temperature = reader.value(
                data, "temperature", path, number, "degrees Celsius", default=25.0
            )
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
        case ComponentKind.PV_INVERTER:
            peak = reader.value(data, "peak_power", path, _POSITIVE_POWER, "power > 0")
            resolution = reader.value(
                data, "resolution", path, _POSITIVE_POWER, "power > 0", default=1.0
            )
            if peak is None or resolution is None:
                return None
            return PvSpec(peak, resolution)
        case ComponentKind.WIND_TURBINE:
            rated = reader.value(data, "rated_power", path, _POSITIVE_POWER, "power > 0")
            curve = reader.value(
                data,
                "power_curve",
                path,
                _curve,
                "[[speed m/s, fraction 0-1], ...] with increasing speeds",
                default=DEFAULT_WIND_CURVE,
            )
            if rated is None or curve is None:
                return None
            return WindSpec(rated, curve)
        case ComponentKind.LOAD:
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
        case ComponentKind.EV_CHARGER:
            max_power = reader.value(data, "max_power", path, _POSITIVE_POWER, "power > 0")
            resolution = reader.value(
                data, "resolution", path, _POSITIVE_POWER, "power > 0", default=1.0
            )
            min_power = reader.value(
                data,
                "min_power",
                path,
                checked(power, lambda v: v >= 0),
                "power >= 0 (the least it charges with)",
                default=0.0,
            )
            if max_power is not None and min_power is not None and min_power > max_power:
                reader.fail(
                    join(path, "min_power"), f"at most max_power ({max_power:g} W)", min_power
                )
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


def _component(reader: Reader, data: object, path: str) -> ComponentSpec | None:
    if not isinstance(data, dict):
        reader.fail(path, "a table", data)
        return None
    component_id = reader.value(data, "id", path, _checked_int_positive, "an integer id > 0")
    kind_name = reader.value(
        data,
        "kind",
        path,
        _kind,
        f"one of {[k.value for k in ComponentKind]}",
    )
    if kind_name is None:
        return None
    kind = ComponentKind(kind_name)
    reader.unknown_keys(data, _COMMON_KEYS | _KIND_KEYS[kind], path)
    name = reader.value(data, "name", path, string, "a non-empty string", default=None)
    parents = reader.value(
        data, "parent", path, _parents, "a component id or a list of ids", default=()
    )
    manufacturer = reader.value(
        data, "manufacturer", path, string, "a non-empty string", default="edge-controller"
    )
    model_name = reader.value(
        data, "model_name", path, string, "a non-empty string", default="simulated"
    )
    details = _details(reader, kind, data, path)
    if component_id is None or details is None or parents is None:
        return None
    return ComponentSpec(
        id=component_id,
        kind=kind,
        name=name or f"{kind.value.replace('_', ' ')} {component_id}",
        parents=parents,
        details=details,
        manufacturer=manufacturer or "edge-controller",
        model_name=model_name or "simulated",
    )


def _checked_int_positive(raw: object) -> int | None:
    value = integer(raw)
    return value if value is not None and value > 0 else None


def _kind(raw: object) -> str | None:
    return raw if isinstance(raw, str) and raw in {k.value for k in ComponentKind} else None


def _fault_kind(raw: object) -> str | None:
    return raw if isinstance(raw, str) and raw in {k.value for k in FaultKind} else None


FAULT_KEYS = frozenset(
    {"component", "kind", "from", "until", "delay", "status", "error_code", "metrics"}
)
"""The keys of a fault table, in a site file's `[[faults]]` and in a faults file."""


def read_fault(reader: Reader, data: object, path: str) -> FaultSpec | None:
    """Read one fault table at `path`; `None` (with problems noted) when it is bad.

    `from` and `until` are seconds after the simulator's start; the component is not
    checked against a site here (the caller knows which site).
    """
    if not isinstance(data, dict):
        reader.fail(path, "a table", data)
        return None
    reader.unknown_keys(data, set(FAULT_KEYS), path)
    component = reader.value(data, "component", path, _checked_int_positive, "a component id")
    kind_name = reader.value(
        data, "kind", path, _fault_kind, f"one of {[k.value for k in FaultKind]}"
    )
    start = reader.value(
        data, "from", path, checked(number, lambda v: v >= 0), "seconds >= 0", default=0.0
    )
    until = reader.value(
        data, "until", path, checked(number, lambda v: v >= 0), "seconds >= 0", default=math.inf
    )
    delay = reader.value(
        data, "delay", path, checked(number, lambda v: v >= 0), "seconds >= 0", default=0.0
    )
    status = reader.value(
        data,
        "status",
        path,
        lambda raw: raw if isinstance(raw, str) and raw in RPC_ERROR_STATUSES else None,
        f"one of {sorted(RPC_ERROR_STATUSES)}",
        default="UNAVAILABLE",
    )
    error_code = reader.value(
        data, "error_code", path, string, "an error code name", default="UNKNOWN"
    )
    metrics = reader.value(
        data,
        "metrics",
        path,
        lambda raw: (
            tuple(raw)
            if isinstance(raw, list)
            and all(isinstance(m, str) and m.lower() in METRIC_NAMES for m in raw)
            else None
        ),
        f"a list of metric names, each one of {sorted(METRIC_NAMES)}",
        default=(),
    )
    if start is not None and until is not None and until <= start:
        reader.fail(join(path, "until"), f"a time after from ({start} s)", until)
        return None
    if (
        component is None
        or kind_name is None
        or start is None
        or until is None
        or delay is None
        or status is None
        or error_code is None
        or metrics is None
    ):
        return None
    return FaultSpec(
        component_id=component,
        kind=FaultKind(kind_name),
        start_s=start,
        until_s=until,
        delay_s=delay,
        status=status,
        error_code=error_code.upper(),
        metrics=metrics,
    )


def parse_site(document: Mapping[str, Any], source: str = "<site>") -> SiteSpec:
    """Validate a parsed TOML document into a `SiteSpec`.

    Raises:
        SiteFileError: listing every problem, each with its key path.
    """
    reader = Reader()
    reader.unknown_keys(
        document, {"microgrid", "simulation", "weather", "components", "sensors", "faults"}, ""
    )
    microgrid = _microgrid(reader, reader.table(document, "microgrid", ""))
    simulation = _simulation(reader, reader.table(document, "simulation", ""))
    weather = _weather(reader, reader.table(document, "weather", ""))

    raw_components = document.get("components")
    components: list[ComponentSpec] = []
    if not isinstance(raw_components, list) or not raw_components:
        reader.fail("components", "a non-empty array of tables ([[components]])", raw_components)
    else:
        for index, raw in enumerate(raw_components):
            component = _component(reader, raw, f"components[{index}]")
            if component is not None:
                components.append(component)

    sensors: list[SensorSpec] = []
    raw_sensors = document.get("sensors", [])
    if not isinstance(raw_sensors, list):
        reader.fail("sensors", "an array of tables ([[sensors]])", raw_sensors)
    else:
        for index, raw in enumerate(raw_sensors):
            path = f"sensors[{index}]"
            if not isinstance(raw, dict):
                reader.fail(path, "a table", raw)
                continue
            reader.unknown_keys(raw, {"id", "name", "kind"}, path)
            kind = reader.value(
                raw,
                "kind",
                path,
                lambda r: next((k for k in SensorKind if k.value == r), None),
                "one of " + ", ".join(repr(k.value) for k in SensorKind),
                default=SensorKind.WEATHER_STATION,
            )
            sensor_id = reader.value(raw, "id", path, _checked_int_positive, "an integer id > 0")
            name = reader.value(raw, "name", path, string, "a non-empty string", default=None)
            if sensor_id is not None and kind is not None:
                label = kind.value.replace("_", " ")
                sensors.append(SensorSpec(sensor_id, name or f"{label} {sensor_id}", kind))

    faults: list[FaultSpec] = []
    raw_faults = document.get("faults", [])
    if not isinstance(raw_faults, list):
        reader.fail("faults", "an array of tables ([[faults]])", raw_faults)
    else:
        for index, raw in enumerate(raw_faults):
            fault = read_fault(reader, raw, f"faults[{index}]")
            if fault is not None:
                faults.append(fault)

    by_id = _check_topology(reader, components, sensors, faults, raw_components)
    if reader.problems or microgrid is None:
        raise SiteFileError(source, reader.problems or ["microgrid: invalid"])
    return SiteSpec(
        source=source,
        microgrid=microgrid,
        simulation=simulation,
        weather=weather,
        components=tuple(components),
        sensors=tuple(sensors),
        faults=tuple(faults),
        by_id=by_id,
    )


def load_site(path: Path) -> SiteSpec:
    """Read and validate a site file.

    Raises:
        SiteFileError: the file is missing, not TOML, or not a valid site.
    """
    source = path.name
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise SiteFileError(str(path), [f"cannot read the file: {error.strerror}"]) from error
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise SiteFileError(source, [f"not valid TOML: {error}"]) from error
    return parse_site(document, source)


def _microgrid(reader: Reader, data: Mapping[str, Any]) -> MicrogridSpec | None:
    path = "microgrid"
    reader.unknown_keys(
        data,
        {"id", "enterprise_id", "name", "latitude", "longitude", "country_code", "delivery_area"},
        path,
    )
    microgrid_id = reader.value(data, "id", path, _checked_int_positive, "an integer id > 0")
    enterprise = reader.value(
        data, "enterprise_id", path, _checked_int_positive, "an integer id > 0", default=1
    )
    name = reader.value(data, "name", path, string, "a non-empty string", default="Simulated site")
    latitude = reader.value(
        data,
        "latitude",
        path,
        checked(number, lambda v: -90 <= v <= 90),
        "degrees -90..90",
        default=52.52,
    )
    longitude = reader.value(
        data,
        "longitude",
        path,
        checked(number, lambda v: -180 <= v <= 180),
        "degrees -180..180",
        default=13.405,
    )
    country = reader.value(
        data,
        "country_code",
        path,
        lambda r: r if isinstance(r, str) and len(r) == 2 and r.isalpha() else None,
        "a two-letter ISO country code",
        default="DE",
    )
    area = reader.value(
        data,
        "delivery_area",
        path,
        lambda r: r if isinstance(r, str) and len(r) == 16 else None,
        "a 16-character EIC code",
        default="10YDE-EON------1",
    )
    if (
        microgrid_id is None
        or enterprise is None
        or name is None
        or latitude is None
        or longitude is None
        or country is None
        or area is None
    ):
        return None
    return MicrogridSpec(microgrid_id, enterprise, name, latitude, longitude, country.upper(), area)


def _simulation(reader: Reader, data: Mapping[str, Any]) -> SimulationSpec:
    path = "simulation"
    reader.unknown_keys(
        data,
        {"telemetry_rate_hz", "time_step", "start_time", "command_log_size", "standby_wake_time"},
        path,
    )
    defaults = SimulationSpec()
    rate = reader.value(
        data,
        "telemetry_rate_hz",
        path,
        checked(number, lambda v: 0.01 <= v <= 100),
        "a rate in Hz, 0.01-100",
        default=defaults.telemetry_rate_hz,
    )
    step = reader.value(
        data,
        "time_step",
        path,
        checked(number, lambda v: 0.001 <= v <= 60),
        "seconds, 0.001-60",
        default=defaults.time_step_s,
    )
    start = reader.value(
        data,
        "start_time",
        path,
        timestamp,
        "an RFC 3339 timestamp with a UTC offset",
        default=None,
    )
    log_size = reader.value(
        data,
        "command_log_size",
        path,
        lambda r: r if isinstance(r, int) and not isinstance(r, bool) and r > 0 else None,
        "an integer > 0",
        default=defaults.command_log_size,
    )
    wake = reader.value(
        data,
        "standby_wake_time",
        path,
        checked(number, lambda v: 0 <= v <= 3600),
        "seconds, 0-3600",
        default=defaults.standby_wake_s,
    )
    return SimulationSpec(
        telemetry_rate_hz=rate or defaults.telemetry_rate_hz,
        time_step_s=step or defaults.time_step_s,
        start_time=start,
        command_log_size=log_size or defaults.command_log_size,
        standby_wake_s=wake if wake is not None else defaults.standby_wake_s,
    )


def _weather_source(raw: object) -> WeatherSource | None:
    if isinstance(raw, str) and raw in {source.value for source in WeatherSource}:
        return WeatherSource(raw)
    return None


def _weather(reader: Reader, data: Mapping[str, Any]) -> WeatherSpec:
    path = "weather"
    reader.unknown_keys(data, {"source", "irradiance", "wind_speed", "temperature"}, path)
    source = reader.value(
        data,
        "source",
        path,
        _weather_source,
        " or ".join(repr(s.value) for s in WeatherSource),
        default=WeatherSource.FILE,
    )
    expected = "a number or 24 hourly numbers"
    irradiance = reader.value(data, "irradiance", path, _series, expected, default=(0.0,))
    wind = reader.value(data, "wind_speed", path, _series, expected, default=(0.0,))
    temperature = reader.value(data, "temperature", path, _series, expected, default=(15.0,))
    for key, values in (("irradiance", irradiance), ("wind_speed", wind)):
        if values is not None and any(v < 0 for v in values):
            reader.fail(join(path, key), "values >= 0", list(values))
    return WeatherSpec(
        irradiance_w_m2=irradiance or (0.0,),
        wind_speed_m_s=wind or (0.0,),
        temperature_c=temperature or (15.0,),
        source=source or WeatherSource.FILE,
    )


def _check_topology(
    reader: Reader,
    components: list[ComponentSpec],
    sensors: list[SensorSpec],
    faults: list[FaultSpec],
    raw_components: object,
) -> dict[int, ComponentSpec]:
    by_id: dict[int, ComponentSpec] = {}
    index_of: dict[int, int] = {}
    raw_list = raw_components if isinstance(raw_components, list) else []
    for component in components:
        index = next(
            (
                i
                for i, raw in enumerate(raw_list)
                if isinstance(raw, dict) and raw.get("id") == component.id
            ),
            0,
        )
        if component.id in by_id:
            reader.problems.append(
                f"components[{index}].id: expected a unique id, got {component.id} again"
            )
            continue
        by_id[component.id] = component
        index_of[component.id] = index
    for sensor in sensors:
        if sensor.id in by_id:
            reader.problems.append(
                f"sensors: expected ids distinct from component ids, got {sensor.id} again"
            )

    grids = [c for c in components if c.kind is ComponentKind.GRID]
    if len(grids) != 1 and components:
        reader.problems.append(
            f"components: expected exactly one component of kind 'grid', got {len(grids)}"
        )
    children: dict[int, list[ComponentSpec]] = {cid: [] for cid in by_id}
    for component in by_id.values():
        path = f"components[{index_of[component.id]}].parent"
        if component.kind is ComponentKind.GRID:
            if component.parents:
                reader.problems.append(
                    f"{path}: expected none for the grid, got {list(component.parents)}"
                )
            continue
        if not component.parents:
            reader.problems.append(f"{path}: missing; expected the id of the component upstream")
            continue
        for parent in component.parents:
            parent_spec = by_id.get(parent)
            if parent_spec is None:
                reader.problems.append(f"{path}: expected an existing component id, got {parent}")
                continue
            if parent_spec.kind in LEAF_KINDS:
                reader.problems.append(
                    f"{path}: expected a grid, meter or inverter upstream, got {parent} "
                    f"({parent_spec.kind.value})"
                )
            children[parent].append(component)
            dc_side = (ComponentKind.BATTERY_INVERTER, ComponentKind.PRECHARGER)
            if component.kind is ComponentKind.BATTERY and parent_spec.kind not in dc_side:
                reader.problems.append(
                    f"{path}: expected a battery_inverter (or a precharger below one) for a "
                    f"battery, got {parent} ({parent_spec.kind.value})"
                )
            if (
                component.kind is ComponentKind.PRECHARGER
                and parent_spec.kind is not ComponentKind.BATTERY_INVERTER
            ):
                reader.problems.append(
                    f"{path}: expected a battery_inverter for a precharger, got {parent} "
                    f"({parent_spec.kind.value})"
                )
            if parent_spec.kind in dc_side and component.kind not in (
                ComponentKind.BATTERY,
                ComponentKind.PRECHARGER
                if parent_spec.kind is not ComponentKind.PRECHARGER
                else ComponentKind.BATTERY,
            ):
                reader.problems.append(
                    f"{path}: expected only batteries (or a precharger) below "
                    f"{parent_spec.kind.value} {parent}, got {component.kind.value}"
                )
    for component in by_id.values():
        if len(component.parents) > 1 and component.kind is not ComponentKind.BATTERY:
            reader.problems.append(
                f"components[{index_of[component.id]}].parent: expected one parent (only a "
                f"battery may hang on several inverters), got {list(component.parents)}"
            )
        dc_side = (ComponentKind.BATTERY_INVERTER, ComponentKind.PRECHARGER)
        if component.kind in dc_side and not children[component.id]:
            reader.problems.append(
                f"components[{index_of[component.id]}]: expected at least one battery below "
                f"{component.kind.value} {component.id}, got none"
            )
    _check_cycles(reader, by_id)
    for index, fault in enumerate(faults):
        if fault.component_id not in by_id:
            reader.problems.append(
                f"faults[{index}].component: expected an existing component id, got "
                f"{fault.component_id}"
            )
    return by_id


def _check_cycles(reader: Reader, by_id: Mapping[int, ComponentSpec]) -> None:
    state: dict[int, int] = {}

    def visit(cid: int, trail: list[int]) -> bool:
        if state.get(cid) == 2:
            return False
        if state.get(cid) == 1:
            reader.problems.append(
                "components: expected no cycles in parent links, got "
                + " -> ".join(map(str, [*trail, cid]))
            )
            return True
        state[cid] = 1
        for parent in by_id[cid].parents:
            if parent in by_id and visit(parent, [*trail, cid]):
                return True
        state[cid] = 2
        return False

    for cid in by_id:
        if visit(cid, []):
            return
