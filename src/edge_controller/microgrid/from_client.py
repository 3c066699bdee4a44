"""From `frequenz-client-microgrid` 0.18 objects to this package's plain types.

The only module besides `connection` that knows the client: components and
connections become `GraphComponent`s and `(source, destination)` pairs; a telemetry
message (`ComponentDataSamples`) becomes a `BatteryReading`, an `InverterReading` or
a `MeterReading`.
No I/O happens here, so the conversions are tested with hand-built client objects.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from datetime import datetime
from enum import Enum

from frequenz.client.microgrid.component import (
    Battery,
    BatteryInverter,
    Component,
    ComponentConnection,
    ComponentDataSamples,
    ComponentErrorCode,
    ComponentStateCode,
    GridConnectionPoint,
    Meter,
    Precharger,
)
from frequenz.client.microgrid.metrics import Bounds, Metric, MetricSample

from edge_controller.microgrid.graph import ComponentRole, Connection, GraphComponent
from edge_controller.microgrid.telemetry import (
    BatteryReading,
    BoundEnds,
    InverterReading,
    MeterReading,
    ranges_from_bounds,
    soc_window,
)

BATTERY_METRICS = (Metric.BATTERY_SOC_PCT, Metric.DC_POWER, Metric.BATTERY_CAPACITY)
"""What the controller streams from a battery."""
INVERTER_METRICS = (Metric.AC_POWER_ACTIVE,)
"""What the controller streams from a battery inverter."""
METER_METRICS = (Metric.AC_POWER_ACTIVE,)
"""What the controller streams from the grid meter."""


def graph_component(component: Component) -> GraphComponent:
    """Return the component's id and its role in the battery pairing.

    Only `BatteryInverter`s count as battery inverters; hybrid inverters and others
    are `OTHER`.
    """
    match component:
        case GridConnectionPoint():
            role = ComponentRole.GRID
        case Meter():
            role = ComponentRole.METER
        case BatteryInverter():
            role = ComponentRole.BATTERY_INVERTER
        case Battery():
            role = ComponentRole.BATTERY
        case Precharger():
            role = ComponentRole.PRECHARGER
        case _:
            role = ComponentRole.OTHER
    return GraphComponent(int(component.id), role)


def graph_inputs(
    components: Iterable[Component],
    connections: Iterable[ComponentConnection],
    now: datetime,
) -> tuple[list[GraphComponent], list[Connection]]:
    """Return the components and connections operational at `now`, as plain values."""
    return (
        [graph_component(c) for c in components if c.is_operational_at(now)],
        [(int(c.source), int(c.destination)) for c in connections if c.is_operational_at(now)],
    )


def _code_name(code: Enum | int) -> str:
    return code.name if isinstance(code, Enum) else f"UNRECOGNIZED_{code}"


def _states(
    samples: ComponentDataSamples,
) -> tuple[frozenset[str], frozenset[str]]:
    """Return the state and error names of the latest state snapshot (empty if none)."""
    if not samples.states:
        return frozenset(), frozenset()
    latest = max(samples.states, key=lambda s: s.sampled_at)
    states: Iterable[ComponentStateCode | int] = latest.states
    errors: Iterable[ComponentErrorCode | int] = latest.errors
    return frozenset(map(_code_name, states)), frozenset(map(_code_name, errors))


def _by_metric(
    samples: ComponentDataSamples, wanted: Sequence[Metric]
) -> dict[Metric, MetricSample]:
    """Return the latest sample of each wanted metric (the first on a tie)."""
    found: dict[Metric, MetricSample] = {}
    for sample in samples.metric_samples:
        metric = sample.metric
        if not isinstance(metric, Metric) or metric not in wanted:
            continue
        held = found.get(metric)
        if held is None or held.sampled_at < sample.sampled_at:
            found[metric] = sample
    return found


def _value(sample: MetricSample | None) -> float:
    if sample is None:
        return math.nan
    value = sample.as_single_value()
    return math.nan if value is None else float(value)


def _ends(bounds: Iterable[Bounds]) -> list[BoundEnds]:
    return [(b.lower, b.upper) for b in bounds]


def battery_reading(samples: ComponentDataSamples) -> BatteryReading | None:
    """Read a battery's telemetry message; `None` if it holds none of its metrics.

    SoC bounds come with the SoC sample (its first range), power bounds with the DC
    power sample; a missing metric reads as NaN and missing bounds as unknown.
    `sampled_at` is the newest of the metric samples.
    """
    found = _by_metric(samples, BATTERY_METRICS)
    if not found:
        return None
    soc = found.get(Metric.BATTERY_SOC_PCT)
    power = found.get(Metric.DC_POWER)
    soc_lower, soc_upper = soc_window(_ends(soc.bounds)) if soc else (math.nan, math.nan)
    states, errors = _states(samples)
    return BatteryReading(
        component_id=int(samples.component_id),
        sampled_at=max(s.sampled_at for s in found.values()),
        soc_pct=_value(soc),
        soc_lower_pct=soc_lower,
        soc_upper_pct=soc_upper,
        capacity_wh=_value(found.get(Metric.BATTERY_CAPACITY)),
        power_w=_value(power),
        bounds=ranges_from_bounds(_ends(power.bounds)) if power else None,
        states=states,
        errors=errors,
    )


def inverter_reading(samples: ComponentDataSamples) -> InverterReading | None:
    """Read an inverter's telemetry message; `None` if it holds no AC active power."""
    power = _by_metric(samples, INVERTER_METRICS).get(Metric.AC_POWER_ACTIVE)
    if power is None:
        return None
    states, errors = _states(samples)
    return InverterReading(
        component_id=int(samples.component_id),
        sampled_at=power.sampled_at,
        power_w=_value(power),
        bounds=ranges_from_bounds(_ends(power.bounds)),
        states=states,
        errors=errors,
    )


def meter_reading(samples: ComponentDataSamples) -> MeterReading | None:
    """Read a meter's telemetry message; `None` if it holds no AC active power.

    The value is kept as the API gives it (passive sign convention: + flows down
    from the grid, i.e. import at the grid meter); a missing value reads as NaN.
    """
    power = _by_metric(samples, METER_METRICS).get(Metric.AC_POWER_ACTIVE)
    if power is None:
        return None
    return MeterReading(
        component_id=int(samples.component_id),
        sampled_at=power.sampled_at,
        power_w=_value(power),
    )
