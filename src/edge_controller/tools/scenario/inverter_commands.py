"""The dispatches running now, executed as the controller does: inverter commands.

The BatteryPowerActor's own pieces read each dispatch (`battery_power.decide`: the
payload, the target as whole inverter groups) and settle overlaps
(`dispatching.ownership.assign`: the newest drives); the distributor's pure planner
(`power.planning.plan` with the setup's algorithm, `SocBalancing` by default) spreads
each target over the batteries' present bounds. In the field a dispatch takes the
broadcaster, the actor, the manager and the distributor to get there; here it is one
function of the schedule and the observation.

Powers in W, passive sign convention: + charges, − discharges.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from edge_controller.dispatching.ownership import RunningDispatch, assign
from edge_controller.dispatching.payload import PayloadError
from edge_controller.power.planning import Refusal, plan
from edge_controller.tools.scenario.schedule import DispatchSchedule
from edge_controller.tools.scenario.setup import Setup
from edge_controller.tools.scenario.site_model import Observation
from edge_controller.use_cases.battery_power.decide import TargetError, read_dispatch

DISPATCH_TYPE = "BATTERY_POWER"
"""The type the loop executes and our trades become (the BatteryPowerActor's default)."""


@dataclass(frozen=True, slots=True)
class BatteryCommands:
    """What the running dispatches ask of the battery inverters at one step."""

    commands: Mapping[int, float]
    """Watts per battery inverter (every one: 0 W releases)."""
    target_w: float
    """The powers the driving dispatches ask, together."""
    excess_w: float
    """What the plans could not place (bounds, SoC), together."""
    running: tuple[int, ...]
    """The ids of the BATTERY_POWER dispatches running (dry runs and losers included)."""
    notes: tuple[str, ...] = ()
    """Refused dispatches and plans, each naming the dispatch."""


def battery_commands(
    setup: Setup, schedule: DispatchSchedule, observation: Observation
) -> BatteryCommands:
    """Turn the dispatches running now into inverter commands.

    The BatteryPowerActor's own pieces: only BATTERY_POWER dispatches, each read by
    `battery_power.decide.read_dispatch` (payload, target, whole inverter groups),
    overlaps decided by `assign` (the newest drives), dry runs command nothing; then
    `plan()` spreads each target with `SocBalancing`, as the distributor does. Every
    inverter nobody drives is told 0 W.
    """
    layout, now = setup.layout, observation.at
    notes: list[str] = []
    running: dict[int, RunningDispatch] = {}
    for dispatch in schedule.running(now):
        if dispatch.type != DISPATCH_TYPE:
            continue
        try:
            target = read_dispatch(dispatch, layout.site_batteries, layout.battery_groups)
        except (PayloadError, TargetError) as error:
            notes.append(str(error))
            continue
        running[int(dispatch.id)] = RunningDispatch(
            int(dispatch.id),
            dispatch.create_time,
            target.batteries,
            target.power_w,
            dispatch.dry_run,
        )
    commands = dict.fromkeys(layout.inverter_ids, 0.0)
    target_w = excess_w = 0.0
    for dispatch_id, batteries in assign(running.values()).owned.items():
        wanted = running[dispatch_id]
        if wanted.dry_run:
            continue
        inverters = sorted({layout.inverter_of[b] for b in batteries})
        decided = plan(wanted.power_w, [observation.units[i] for i in inverters], setup.algorithm)
        target_w += wanted.power_w
        if isinstance(decided, Refusal):
            notes.append(f"dispatch {dispatch_id}: {decided.reason}")
            excess_w += wanted.power_w
            continue
        commands.update(decided.commands)
        excess_w += decided.excess_w
    return BatteryCommands(
        commands=commands,
        target_w=target_w,
        excess_w=excess_w,
        running=tuple(sorted(running)),
        notes=tuple(notes),
    )


__all__ = ["DISPATCH_TYPE", "BatteryCommands", "battery_commands"]
