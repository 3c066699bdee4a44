"""The simulator's site file: a TOML description of a microgrid, parsed into specs.

A site file names the microgrid, the simulation's rates, the weather, every
component with its physical parameters and its parent(s) (connections point away
from the grid), optional sensors, and fault windows. Parsing collects *every*
problem and raises one `SiteFileError` whose lines each name the file, the key path,
what was expected and what was found, e.g.::

    sim-site.toml: components[3].capacity: expected energy > 0, got -5

Quantities are numbers in base units (W, Wh) or strings with a unit ("250 kW",
"800 kWh"), parsed by `frequenz.quantities`.

This module is the face of the site file: it reads the file's tables and checks the
topology; each kind's own keys are read in `site_details.py` and fault tables in
`fault_spec.py`. A name is imported from the module that defines it (`ComponentKind`
and the kinds' specs from `site_details`, `FaultKind` and `FaultSpec` from
`fault_spec`), so each type has one import path.
"""

from __future__ import annotations

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
    integer,
    join,
    number,
    positive_integer,
    string,
    timestamp,
)
from edge_controller.servers.sim.fault_spec import FaultSpec, read_fault
from edge_controller.servers.sim.site_details import (
    DETAIL_PARSERS,
    KIND_KEYS,
    ComponentDetails,
    ComponentKind,
    hourly_values,
)

__all__ = [
    "CONTROLLABLE_KINDS",
    "LEAF_KINDS",
    "SWITCH_KINDS",
    "ComponentSpec",
    "MicrogridSpec",
    "SensorKind",
    "SensorSpec",
    "SimulationSpec",
    "SiteFileError",
    "SiteSpec",
    "WeatherSource",
    "WeatherSpec",
    "load_site",
    "parse_site",
]


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


def _parents(raw: object) -> tuple[int, ...] | None:
    if isinstance(raw, int) and not isinstance(raw, bool):
        return (raw,)
    if isinstance(raw, list) and raw and all(integer(item) is not None for item in raw):
        return tuple(raw)
    return None


_COMMON_KEYS = {"id", "kind", "name", "parent", "manufacturer", "model_name"}


def _component(reader: Reader, data: object, path: str) -> ComponentSpec | None:
    if not isinstance(data, dict):
        reader.fail(path, "a table", data)
        return None
    component_id = reader.value(data, "id", path, positive_integer, "an integer id > 0")
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
    reader.unknown_keys(data, _COMMON_KEYS | KIND_KEYS[kind], path)
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
    details = DETAIL_PARSERS[kind](reader, data, path)
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


def _kind(raw: object) -> str | None:
    return raw if isinstance(raw, str) and raw in {k.value for k in ComponentKind} else None


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
            sensor_id = reader.value(raw, "id", path, positive_integer, "an integer id > 0")
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
    microgrid_id = reader.value(data, "id", path, positive_integer, "an integer id > 0")
    enterprise = reader.value(
        data, "enterprise_id", path, positive_integer, "an integer id > 0", default=1
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
    irradiance = reader.value(data, "irradiance", path, hourly_values, expected, default=(0.0,))
    wind = reader.value(data, "wind_speed", path, hourly_values, expected, default=(0.0,))
    temperature = reader.value(data, "temperature", path, hourly_values, expected, default=(15.0,))
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
