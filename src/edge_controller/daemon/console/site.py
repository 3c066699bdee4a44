"""The site as the console shows it: the Controller's public state, read, never changed.

`site_snapshot(controller)` is what `GET /api/site` answers and the stream pushes:

- `flow`: grid (the grid meter, + import), batteries (sum of the battery inverters' AC
  power, + charging) and `rest_w` = grid − batteries: the rest of the site (load minus
  PV), since the controller streams no PV or load telemetry of its own;
- `batteries`: SoC and its window, capacity, DC power, the inverter's AC power share,
  bounds, the target of the set it belongs to, its status (`working`, `uncertain`,
  `excluded`, `stale`, `fault`, `blocked`) and why in words;
- `inverters`, `meters` (grid and feeder meters with their limits), `controls` (mode,
  excluded batteries, power limit), `grid` limits, `use_cases` with the dispatches
  each runs now.

Read only from public attributes: `Controller.config`, `.connection` (pairs, cache,
grid meter), `.power_distributing.battery_status()` / `.targets`,
`.power_managing.forwarded`, `.use_cases` (each a use case's configuration and
status: `running_dispatches`). Units: W, %, Wh;
passive sign convention (+ charges / consumes / imports). Unknown values are null.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from edge_controller.microgrid.site_view import meter_power_w
from edge_controller.power.bounds import Range

if TYPE_CHECKING:
    from edge_controller.controller.graph import Controller


def _number(value: float | None) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return round(value, 3)


def _ranges(bounds: Iterable[Range] | None) -> list[list[float | None]] | None:
    if bounds is None:
        return None
    return [[_number(r.lower), _number(r.upper)] for r in bounds]


def site_snapshot(controller: Controller) -> dict[str, Any]:
    """The whole site now (see the module docstring)."""
    config = controller.config
    controls = {
        "mode": config.controls.mode,
        "excluded_batteries": sorted(config.controls.excluded_batteries),
        "power_limit_w": config.controls.power_limit_w,
    }
    grid_limits = {
        "max_import_w": config.grid.max_import_w,
        "max_export_w": config.grid.max_export_w,
    }
    distributing = controller.power_distributing
    now = controller.clock_now()
    base: dict[str, Any] = {
        "at": now.isoformat(),
        "running": bool(controller.running and distributing is not None),
        "controls": controls,
        "grid": grid_limits,
    }
    if not base["running"] or distributing is None:
        return {**base, "flow": {}, "batteries": [], "inverters": [], "meters": []}
    connection = controller.connection
    cache = connection.cache
    pairs = connection.pairs
    status = distributing.battery_status(now)
    targets = dict(distributing.targets)
    if controller.power_managing is not None:
        targets = dict(controller.power_managing.forwarded) or targets
    stale_after = config.grid.stale_after
    inverters = []
    battery_total = 0.0
    battery_known = False
    for inverter_id in pairs.inverter_ids:
        reading = cache.inverter(inverter_id, now)
        power = reading.power_w if reading is not None else None
        if power is not None and math.isfinite(power):
            battery_total += power
            battery_known = True
        inverters.append(
            {
                "id": inverter_id,
                "batteries": list(pairs.batteries_of(inverter_id)),
                "power_w": _number(power),
                "bounds_w": _ranges(reading.bounds) if reading is not None else None,
                "state": str(reading.state) if reading is not None else None,
                "errors": sorted(reading.errors) if reading is not None else [],
            }
        )
    batteries = [
        _battery(controller, battery_id, now, status.working, status.uncertain, targets)
        for battery_id in pairs.battery_ids
    ]
    grid_w = meter_power_w(cache, connection.grid_meter_id, now, stale_after)
    battery_w = battery_total if battery_known else None
    meters: list[dict[str, Any]] = []
    if connection.grid_meter_id is not None:
        meters.append(
            {
                "id": connection.grid_meter_id,
                "kind": "grid",
                "power_w": _number(grid_w),
                **grid_limits,
            }
        )
    below = connection.inverters_below
    for limit in config.grid.meters:
        meters.append(
            {
                "id": limit.meter_id,
                "kind": "feeder",
                "power_w": _number(meter_power_w(cache, limit.meter_id, now, stale_after)),
                "max_import_w": limit.max_import_w,
                "max_export_w": limit.max_export_w,
                "inverters_below": list(below.get(limit.meter_id, ())),
            }
        )
    use_cases = [
        {
            "name": use_case.name,
            "kind": use_case.kind,
            "dispatch_types": list(use_case.config.dispatch_types),
            "priority": use_case.config.priority,
            "running": {str(k): v for k, v in sorted(use_case.running_dispatches.items())},
        }
        for use_case in controller.use_cases
    ]
    return {
        **base,
        "flow": {
            "grid_w": _number(grid_w),
            "battery_w": _number(battery_w),
            "rest_w": _number(grid_w - battery_w)
            if grid_w is not None and battery_w is not None
            else None,
        },
        "batteries": batteries,
        "inverters": inverters,
        "meters": meters,
        "targets": [
            {"batteries": sorted(ids), "power_w": _number(watts)}
            for ids, watts in sorted(targets.items(), key=lambda item: sorted(item[0]))
        ],
        "use_cases": use_cases,
    }


def _battery(
    controller: Controller,
    battery_id: int,
    now: datetime,
    working: frozenset[int],
    uncertain: frozenset[int],
    targets: dict[frozenset[int], float],
) -> dict[str, Any]:
    connection = controller.connection
    cache = connection.cache
    pairs = connection.pairs
    inverter_id = pairs.inverter_of(battery_id)
    reading = cache.battery(battery_id, now)
    last = reading or cache.last_battery(battery_id)
    inverter = cache.inverter(inverter_id, now)
    share = len(pairs.batteries_of(inverter_id))
    ac_w = inverter.power_w / share if inverter is not None else None
    target_set = next((ids for ids in targets if battery_id in ids), None)
    status, why = _status(controller, battery_id, now, working, uncertain)
    return {
        "id": battery_id,
        "inverter": inverter_id,
        "soc_pct": _number(last.soc_pct) if last is not None else None,
        "soc_window_pct": [_number(last.soc_lower_pct), _number(last.soc_upper_pct)]
        if last is not None
        else None,
        "capacity_wh": _number(last.capacity_wh) if last is not None else None,
        "dc_power_w": _number(reading.power_w) if reading is not None else None,
        "power_w": _number(ac_w),
        "bounds_w": _ranges(reading.bounds) if reading is not None else None,
        "target_w": _number(targets[target_set]) if target_set is not None else None,
        "target_batteries": sorted(target_set) if target_set is not None else [],
        "state": str(reading.state) if reading is not None else None,
        "errors": sorted(reading.errors) if reading is not None else [],
        "status": status,
        "why": why,
    }


def _status(
    controller: Controller,
    battery_id: int,
    now: datetime,
    working: frozenset[int],
    uncertain: frozenset[int],
) -> tuple[str, str]:
    """One word and a sentence: may the controller use this battery now, and why."""
    cache = controller.connection.cache
    if battery_id in controller.config.controls.excluded_batteries:
        return "excluded", "excluded by the operator (controls.excluded_batteries)"
    reading = cache.battery(battery_id, now)
    if reading is None:
        age = cache.age(battery_id, now)
        since = f" for {age.total_seconds():.0f} s" if age is not None else " yet"
        return "stale", f"no fresh telemetry{since}"
    if not reading.state.is_working and reading.state.value != "unknown":
        errors = f" ({', '.join(sorted(reading.errors))})" if reading.errors else ""
        return "fault", f"the battery reports {reading.state.value}{errors}"
    if battery_id in working:
        return "working", "in use"
    if battery_id in uncertain:
        return "uncertain", "telemetry doubtful: used only when no working battery remains"
    return "blocked", "left out after a failed command, or out of service for recovery"
