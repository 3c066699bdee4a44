"""The dispatches running now, executed as the controller does: inverter commands.

The controller's own pure pieces, in the order a dispatch meets them: the
BatteryPowerActor's (`battery_power.decide`: `read_dispatch` — the payload, the
target as whole inverter groups — and `dispatch_requests` — one request per running
dispatch, none for a dry run), the PowerManagingActor's (`settle`: priorities and
overlaps, the newest dispatch driving shared batteries, the older the rest), then
the distributor's planner (`power.planning.plan` with the setup's algorithm,
`SocBalancing` by default) spreading each target over the batteries' present
bounds. In the field a dispatch takes the broadcaster, the actor, the manager and
the distributor to get there; here it is one function of the schedule and the
observation (no grid guard: the scenario's site model has its own limits).

Powers in W, passive sign convention: + charges, − discharges.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from edge_controller.controller.power_managing import Submitted, settle
from edge_controller.dispatching.payload import PayloadError
from edge_controller.power.planning import Refusal, plan
from edge_controller.tools.scenario.schedule import DispatchSchedule
from edge_controller.tools.scenario.setup import Setup
from edge_controller.tools.scenario.site_model import Observation
from edge_controller.use_cases.battery_power.decide import (
    RunningBatteryDispatch,
    TargetError,
    dispatch_requests,
    read_dispatch,
)

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
    """The ids of the BATTERY_POWER dispatches running (dry runs and outranked ones included)."""
    notes: tuple[str, ...] = ()
    """Refused dispatches and plans, each naming the dispatch."""


def battery_commands(
    setup: Setup, schedule: DispatchSchedule, observation: Observation
) -> BatteryCommands:
    """Turn the dispatches running now into inverter commands.

    Only BATTERY_POWER dispatches, each read and asked for as the BatteryPowerActor
    does, settled as the PowerManagingActor does; then `plan()` spreads each target
    with `SocBalancing`, as the distributor does. Every inverter nobody drives is told
    0 W.
    """
    layout, now = setup.layout, observation.at
    pairs = layout.pairs
    notes: list[str] = []
    running: list[RunningBatteryDispatch] = []
    for dispatch in schedule.running(now):
        if dispatch.type != DISPATCH_TYPE:
            continue
        try:
            target = read_dispatch(dispatch, pairs)
        except (PayloadError, TargetError) as error:
            notes.append(str(error))
            continue
        running.append(
            RunningBatteryDispatch(int(dispatch.id), dispatch.create_time, target, dispatch.dry_run)
        )
    requests = dispatch_requests(running, namespace=DISPATCH_TYPE)
    settled = settle(Submitted(request, now) for request in requests.values())
    commands = dict.fromkeys(layout.inverter_ids, 0.0)
    target_w = excess_w = 0.0
    for (_, batteries), (request, power_w) in sorted(
        settled.drives.items(), key=lambda item: sorted(item[0][1])
    ):
        inverters = sorted({layout.inverter_of[b] for b in batteries})
        decided = plan(power_w, [observation.units[i] for i in inverters], setup.algorithm)
        target_w += power_w
        if isinstance(decided, Refusal):
            notes.append(f"dispatch {request.origin}: {decided.reason}")
            excess_w += power_w
            continue
        commands.update(decided.commands)
        excess_w += decided.excess_w
    return BatteryCommands(
        commands=commands,
        target_w=target_w,
        excess_w=excess_w,
        running=tuple(sorted(d.dispatch_id for d in running)),
        notes=tuple(notes),
    )


__all__ = ["DISPATCH_TYPE", "BatteryCommands", "battery_commands"]
