"""The controller's connection to the microgrid: pairing, telemetry, set-power.

- `graph` (pure): battery inverters paired with their batteries, the grid meter;
- `direct` (pure): the EV chargers and PV inverters, commanded one by one, rated;
- `telemetry` (pure): typed battery/inverter/EV charger readings and the freshness cache;
- `from_client`: client 0.18 objects → the plain types above;
- `connection` (shell): `MicrogridConnection`, the client, the streams, set-power.

The shell names (`MicrogridConnection`, `NotStartedError`) are loaded on first use,
so importing the pure modules never pulls in `grpc` or the client.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from edge_controller.microgrid.direct import DirectComponents, RatedComponent, direct_components
from edge_controller.microgrid.graph import (
    BatteryPairs,
    ComponentGraphError,
    ComponentRole,
    Connection,
    GraphComponent,
    InverterBatteries,
    LeftOut,
    find_grid_meter,
    pair_batteries,
)
from edge_controller.microgrid.telemetry import (
    BatteryReading,
    EvCable,
    EvChargerReading,
    InverterReading,
    Reading,
    TelemetryCache,
    ranges_from_bounds,
    soc_window,
)

if TYPE_CHECKING:
    from edge_controller.microgrid.connection import MicrogridConnection, NotStartedError

_SHELL_NAMES = frozenset({"MicrogridConnection", "NotStartedError"})


def __getattr__(name: str) -> object:
    """Import the shell (and with it the client and grpc) only when asked for."""
    if name in _SHELL_NAMES:
        from edge_controller.microgrid import connection

        return getattr(connection, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "BatteryPairs",
    "BatteryReading",
    "ComponentGraphError",
    "ComponentRole",
    "Connection",
    "DirectComponents",
    "EvCable",
    "EvChargerReading",
    "GraphComponent",
    "InverterBatteries",
    "InverterReading",
    "LeftOut",
    "MicrogridConnection",
    "NotStartedError",
    "RatedComponent",
    "Reading",
    "TelemetryCache",
    "direct_components",
    "find_grid_meter",
    "pair_batteries",
    "ranges_from_bounds",
    "soc_window",
]
