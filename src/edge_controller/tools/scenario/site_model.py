"""The loop's two touches of the simulated site: what the controller sees, what it sends.

`observe` reads the simulator's `SiteModel` as telemetry would show it (per battery
inverter a `power.planning.Unit`: SoC, SoC bounds, capacity, the batteries' and the
inverter's power bounds, the measured power; no staleness, no faults), and
`apply_commands` sends each inverter's power and checks the power applied against the
bounds then in force. The model is the one mutable piece of a run; only the loop
(`run.run_scenario`) and these two functions touch it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from edge_controller.power.bounds import allows, inclusion_exclusion
from edge_controller.power.planning import Availability, BatteryState, Unit
from edge_controller.servers.sim.errors import SimError
from edge_controller.servers.sim.model import SiteModel, battery_power_bounds
from edge_controller.tools.scenario.layout import SiteLayout
from edge_controller.tools.scenario.records import CommandCheck


@dataclass(frozen=True, slots=True)
class Observation:
    """The site as the controller sees it at `at` (from the model's state, no telemetry)."""

    at: datetime
    units: Mapping[int, Unit]
    """Per battery inverter, as `plan()` takes them."""
    energy_wh: Mapping[int, float]
    """Per battery."""
    soc_pct: Mapping[int, float]


def observe(model: SiteModel, layout: SiteLayout, now: datetime) -> Observation:
    """Read the batteries and inverters from the model (what telemetry would show)."""
    units: dict[int, Unit] = {}
    energy: dict[int, float] = {}
    soc: dict[int, float] = {}
    for inverter_id in layout.inverter_ids:
        states = []
        for battery_id in layout.batteries_of[inverter_id]:
            spec = layout.battery_specs[battery_id]
            soc[battery_id] = model.soc_pct(battery_id)
            energy[battery_id] = model.energy_wh(battery_id)
            states.append(
                BatteryState(
                    battery_id,
                    soc[battery_id],
                    spec.soc_bounds_pct.lower,
                    spec.soc_bounds_pct.upper,
                    spec.capacity_wh,
                    inclusion_exclusion(
                        battery_power_bounds(spec, soc[battery_id]), spec.exclusion
                    ),
                )
            )
        units[inverter_id] = Unit(
            inverter_id=inverter_id,
            batteries=tuple(states),
            inverter_bounds=model.active_bounds(inverter_id, now),
            resolution_w=layout.inverter_specs[inverter_id].resolution_w,
            availability=Availability.WORKING,
            measured_power_w=model.ac_power_w(inverter_id),
        )
    return Observation(now, units, energy, soc)


def apply_commands(
    model: SiteModel, commands: Mapping[int, float], now: datetime, lifetime_s: int
) -> list[CommandCheck]:
    """Send each command to the model; check the applied power against its bounds."""
    checks = []
    for inverter_id, power_w in sorted(commands.items()):
        try:
            record = model.set_active_power(inverter_id, power_w, now, lifetime_s)
        except SimError as error:
            checks.append(CommandCheck(now, inverter_id, power_w, 0.0, True, str(error)))
            continue
        within = record.applied_w == 0.0 or allows(record.bounds, record.applied_w)
        checks.append(CommandCheck(now, inverter_id, power_w, record.applied_w, within))
    return checks


__all__ = ["Observation", "apply_commands", "observe"]
