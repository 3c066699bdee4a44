"""EV chargers and PV inverters as the PowerDistributingActor reads them from telemetry.

The shell part of the distributor's direct targets: what the site has (`DirectAccess`,
the connection's `direct`), each component's snapshot for the decision
(`direct_units` → `power.direct.DirectUnit`), its bounds now (a move re-plans its
target), and the commands that give every one of them back (`release_commands`: EV
chargers to 0 W, PV inverters to full production) — what a withdraw sends, and what
the controller sends on its stop. What to command is decided in `power.distribute`
and `power.direct`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Collection, Mapping
from datetime import datetime
from typing import Protocol, cast

from edge_controller.microgrid.direct import DirectComponents
from edge_controller.microgrid.telemetry import EvChargerReading, InverterReading, TelemetryCache
from edge_controller.power.bounds import Range, hull
from edge_controller.power.direct import DirectUnit, plan_direct
from edge_controller.power.kinds import TargetKind
from edge_controller.power.planning import Availability, Plan
from edge_controller.power.status import BlockingTracker


class DirectAccess(Protocol):
    """What the distributor needs besides the battery pairing to take EV and PV requests.

    A protocol of its own, so an access without EV chargers or PV inverters (a test's, a
    benchmark's) needs nothing new: requests naming them are answered with an Error.
    `MicrogridConnection` has it (a `direct` property on the access's class).
    """

    @property
    def direct(self) -> DirectComponents:
        """The site's EV chargers and PV inverters with their rated power."""
        ...


def direct_access(microgrid: object) -> DirectAccess | None:
    """`microgrid` as a `DirectAccess`, or None when its class has no `direct` property.

    Looked up on the class, once: a check on the instance would read the property (a
    connection not started raises), and the answer is needed on every tick.
    """
    if isinstance(getattr(type(microgrid), "direct", None), property):
        return cast(DirectAccess, microgrid)
    return None


def known_ids(components: DirectComponents, kind: TargetKind) -> tuple[int, ...]:
    """The site's components of `kind` (none for batteries: they are not direct)."""
    if kind is TargetKind.EV_CHARGERS:
        return components.ev_charger_ids
    if kind is TargetKind.PV_INVERTERS:
        return components.pv_inverter_ids
    return ()


def direct_units(
    cache: TelemetryCache,
    components: DirectComponents,
    kind: TargetKind,
    ids: Collection[int],
    now: datetime,
    *,
    blocking: BlockingTracker,
    resolutions_w: Mapping[int, float],
    refused: Collection[int] = frozenset(),
) -> list[DirectUnit]:
    """Snapshot EV chargers or PV inverters from telemetry, with their rating.

    Blocked after a failed command → broken; fresh telemetry → working; else uncertain.
    Bounds are the latest known however old (a charger's car is still there), power
    only when fresh.
    """
    units = []
    for component_id in sorted(ids):
        fresh: InverterReading | EvChargerReading | None
        last: InverterReading | EvChargerReading | None
        if kind is TargetKind.EV_CHARGERS:
            fresh, last = cache.ev_charger(component_id, now), cache.last_ev_charger(component_id)
        else:
            fresh, last = cache.inverter(component_id, now), cache.last_inverter(component_id)
        if blocking.is_blocked(component_id, now):
            availability = Availability.BROKEN
        elif fresh is not None:
            availability = Availability.WORKING
        else:
            availability = Availability.UNCERTAIN
        try:
            rated = components.rated(component_id).rated_magnitude_w
        except KeyError:
            rated = None
        measured = fresh.power_w if fresh is not None else None
        units.append(
            DirectUnit(
                component_id,
                last.bounds if last is not None else None,
                rated,
                resolutions_w.get(component_id, 1.0),
                availability,
                measured if measured is not None and math.isfinite(measured) else None,
                component_id in refused,
            )
        )
    return units


def release_commands(
    cache: TelemetryCache,
    components: DirectComponents,
    now: datetime,
    *,
    resolutions_w: Mapping[int, float],
) -> dict[int, float]:
    """What gives every EV charger and PV inverter back, blocked or not.

    Every EV charger 0 W; every PV inverter its full production (the lower end of its
    bounds, else its rating; none when neither is known), in whole steps — what a
    withdraw sends.
    """
    commands: dict[int, float] = {}
    for kind in (TargetKind.EV_CHARGERS, TargetKind.PV_INVERTERS):
        units = [
            dataclasses.replace(u, availability=Availability.WORKING, refused=False)
            for u in direct_units(
                cache,
                components,
                kind,
                known_ids(components, kind),
                now,
                blocking=BlockingTracker(),
                resolutions_w=resolutions_w,
            )
        ]
        given_back = plan_direct(kind, 0.0, units, withdraw=True)
        if isinstance(given_back, Plan):
            commands.update(given_back.commands)
    return commands


def bounds_now(cache: TelemetryCache, ids: Collection[int]) -> dict[int, Range | None]:
    """Each EV charger's or PV inverter's bounds now (hull of the latest), None if unknown."""
    bounds: dict[int, Range | None] = {}
    for component_id in ids:
        reading = cache.last_inverter(component_id) or cache.last_ev_charger(component_id)
        bounds[component_id] = (
            hull(reading.bounds) if reading is not None and reading.bounds else None
        )
    return bounds


__all__ = [
    "DirectAccess",
    "bounds_now",
    "direct_access",
    "direct_units",
    "known_ids",
    "release_commands",
]
