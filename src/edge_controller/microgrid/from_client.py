"""From `frequenz-client-microgrid` 0.18 objects to this package's plain types.

The only module besides `connection` that knows the client: components and
connections become `GraphComponent`s and `(source, destination)` pairs. Telemetry
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
    GridConnectionPoint,
    Meter,
    Precharger,
)

from edge_controller.microgrid.graph import ComponentRole, Connection, GraphComponent


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
