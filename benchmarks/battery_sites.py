"""Sites of N battery inverters (one battery each) for the benchmarks that grow a site.

Deterministic: the same N gives the same site. Inverters sit under a main meter, with
varied capacities and states of charge so that a distribution has something to balance;
a load and a PV inverter give the grid meter something to show.
"""

from __future__ import annotations

from typing import Any

from edge_controller.servers.sim.site import SiteSpec, parse_site

INVERTER_BASE = 1000
BATTERY_BASE = 2000
INVERTER_RATING_W = 100_000.0
"""Each inverter's ±rating; a battery behind it takes ±120 kW."""


def battery_site_document(inverters: int, *, telemetry_rate_hz: float = 10.0) -> dict[str, Any]:
    """The site file's document (what `parse_site` reads) of `inverters` battery strings."""
    if inverters < 1:
        raise ValueError(f"inverters: expected >= 1, got {inverters}")
    components: list[dict[str, Any]] = [
        {"id": 1, "kind": "grid"},
        {"id": 2, "kind": "meter", "parent": 1},
        {"id": 3, "kind": "load", "parent": 2, "peak_power": 50_000.0 * inverters},
        {"id": 4, "kind": "pv_inverter", "parent": 2, "peak_power": 20_000.0 * inverters},
    ]
    for index in range(inverters):
        inverter = INVERTER_BASE + index
        components += [
            {
                "id": inverter,
                "kind": "battery_inverter",
                "parent": 2,
                "active_power_bounds": [-INVERTER_RATING_W, INVERTER_RATING_W],
                "resolution": 8.0 + 8.0 * (index % 4),
                "efficiency": 0.97,
            },
            {
                "id": BATTERY_BASE + index,
                "kind": "battery",
                "parent": inverter,
                "capacity": 200_000.0 + 50_000.0 * (index % 5),
                "initial_soc": 30.0 + 7.0 * (index % 7),
                "soc_bounds": [10, 90],
                "power_bounds": [-120_000.0, 120_000.0],
            },
        ]
    return {
        "microgrid": {"id": 1, "latitude": 52.52, "longitude": 13.405, "country_code": "DE"},
        "simulation": {"telemetry_rate_hz": telemetry_rate_hz, "time_step": 0.1},
        "weather": {"irradiance": 500, "wind_speed": 6, "temperature": 15},
        "components": components,
    }


def battery_site(inverters: int, *, telemetry_rate_hz: float = 10.0) -> SiteSpec:
    """The parsed site of `inverters` battery strings."""
    return parse_site(
        battery_site_document(inverters, telemetry_rate_hz=telemetry_rate_hz),
        f"<{inverters}-inverter site>",
    )
