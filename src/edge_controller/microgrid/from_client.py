"""From `frequenz-client-microgrid` 0.18 objects to this package's plain types.

The only module besides `connection` that knows the client: components and
connections become `GraphComponent`s and `(source, destination)` pairs, and the EV
chargers' and PV inverters' rated AC power becomes `RatedEnds` (`direct`). Telemetry
does not go through the client's objects (too slow at a large site's message rate):
see `from_proto`. No I/O happens here, so the conversions are tested with hand-built
client objects.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from frequenz.client.microgrid.component import (
    Battery,
    BatteryInverter,
    Component,
    ComponentConnection,
    EvCharger,
    GridConnectionPoint,
    Meter,
    Precharger,
    SolarInverter,
)
from frequenz.client.microgrid.metrics import Metric

from edge_controller.microgrid.direct import RatedEnds
from edge_controller.microgrid.graph import ComponentRole, Connection, GraphComponent


def graph_component(component: Component) -> GraphComponent:
    """Return the component's id and its role in the battery pairing.

    Only `BatteryInverter`s count as battery inverters, only `SolarInverter`s as PV
    inverters; every kind of `EvCharger` (AC, DC, hybrid, unspecified) is an EV
    charger; hybrid inverters and others are `OTHER`.
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
        case SolarInverter():
            role = ComponentRole.PV_INVERTER
        case EvCharger():
            role = ComponentRole.EV_CHARGER
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


def rated_active_power(components: Iterable[Component]) -> dict[int, RatedEnds]:
    """Each component's rated AC active power as the metadata gives it (W).

    Only components that carry one are listed; an end the metadata leaves unset is
    `None` (unknown).
    """
    rated: dict[int, RatedEnds] = {}
    for component in components:
        bounds = component.rated_bounds.get(Metric.AC_POWER_ACTIVE)
        if bounds is not None:
            rated[int(component.id)] = (bounds.lower, bounds.upper)
    return rated
