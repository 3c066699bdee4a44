"""Small sites for the simulator's tests, shared with the tests of what reads them."""

from __future__ import annotations

from edge_controller.servers.sim.site import SiteSpec, parse_site


def switched_site() -> SiteSpec:
    """grid 1 - meter 2 - relay 5 - inverter 10 - precharger 12 - battery 11."""
    return parse_site(
        {
            "microgrid": {"id": 1},
            "simulation": {"time_step": 1.0},
            "components": [
                {"id": 1, "kind": "grid"},
                {"id": 2, "kind": "meter", "parent": 1},
                {"id": 5, "kind": "relay", "parent": 2},
                {
                    "id": 10,
                    "kind": "battery_inverter",
                    "parent": 5,
                    "active_power_bounds": [-100_000, 100_000],
                    "resolution": 88,
                    "efficiency": 0.9,
                },
                {"id": 12, "kind": "precharger", "parent": 10, "precharge_time": 10},
                {
                    "id": 11,
                    "kind": "battery",
                    "parent": 12,
                    "capacity": "100 kWh",
                    "initial_soc": 50,
                    "power_bounds": [-50_000, 50_000],
                },
            ],
        }
    )
