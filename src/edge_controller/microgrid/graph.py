"""Which batteries sit behind which inverter: the pairing the controller commands by.

The controller sets power on *battery inverters*; the batteries behind an inverter
tell how much it may take or give (SoC, capacity, power bounds). This module reads
the component graph — components by role, connections pointing away from the grid —
and returns the pairs, or refuses a graph the controller cannot drive::

    grid 1 ── meter 2 ─┬─ inverter 10 ── battery 11        10 → (11,)
                       ├─ inverter 20 ─┬─ battery 21       20 → (21, 22)
                       │               └─ battery 22
                       └─ pv inverter 50                   (not a battery inverter)

Supported: several batteries behind one inverter (returned together), and a precharge
module between an inverter and its batteries (looked through). Left out, each
with the reason (`BatteryPairs.left_out`), so the rest of the site still runs (as the
SDK's PowerDistributingActor does): a battery with no battery inverter, a battery inverter
with no battery, and a battery fed by several inverters together with everything those
inverters feed (the batteries sharing a DC side with it: how the power splits between
them cannot be attributed, so none of them is commanded). Only a graph where batteries
or battery inverters exist and none is usable is refused (`ComponentGraphError`,
naming every reason); a site with no batteries at all has no pairs.

Pure: the input is plain ids and roles (`GraphComponent`, `(source, destination)`
pairs), so it is testable without a client; `edge_controller.microgrid.from_client`
builds them from the Microgrid API client's lists.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import Enum


class ComponentRole(Enum):
    """What the pairing needs to know about a component; the value reads in messages."""

    GRID = "grid connection point"
    METER = "meter"
    BATTERY_INVERTER = "battery inverter"
    BATTERY = "battery"
    PRECHARGER = "precharger"
    """Between a battery inverter and its batteries (the DC link's precharge module):
    the pairing looks through it."""
    PV_INVERTER = "pv inverter"
    """Commanded directly, not paired: a negative power limits its production
    (`microgrid.direct`)."""
    EV_CHARGER = "ev charger"
    """Commanded directly, not paired: + charges the car plugged in."""
    OTHER = "component"
    """Anything else: hybrid inverters, wind turbines, ..."""


@dataclass(frozen=True, slots=True)
class GraphComponent:
    """A component as the graph sees it: its id and its role."""

    component_id: int
    role: ComponentRole


Connection = tuple[int, int]
"""`(source, destination)`: an electrical link, pointing away from the grid."""


class ComponentGraphError(ValueError):
    """The component graph leaves the controller no battery it can drive.

    `problems` holds one sentence per component left out (sorted by the component
    concerned); `component_ids` the components they name. The message says that no
    battery is usable, then lists every problem, one a line.
    """

    def __init__(self, problems: Sequence[str], component_ids: Iterable[int]) -> None:
        """Carry every problem found, so an operator fixes them in one go."""
        self.problems = tuple(problems)
        self.component_ids = frozenset(component_ids)
        super().__init__("\n".join(("no usable battery: every one is left out", *self.problems)))


@dataclass(frozen=True, slots=True)
class LeftOut:
    """A battery or battery inverter the pairing leaves out: it is never commanded.

    `reason` is one sentence naming the component and what is wrong around it.
    """

    component_id: int
    role: ComponentRole
    reason: str


@dataclass(frozen=True, slots=True)
class InverterBatteries:
    """One battery inverter and the batteries behind it (sorted ids, at least one)."""

    inverter_id: int
    battery_ids: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class BatteryPairs:
    """Every usable battery inverter with its batteries, sorted by inverter id.

    Each battery appears under exactly one inverter (`pair_batteries` guarantees it).
    `left_out` holds the batteries and battery inverters the graph has but the
    controller does not drive, sorted by id: they are in none of the pairs, so a
    request or dispatch naming one is refused as naming an unknown battery.
    """

    pairs: tuple[InverterBatteries, ...]
    left_out: tuple[LeftOut, ...] = ()

    @property
    def left_out_batteries(self) -> dict[int, str]:
        """`{battery id: reason}` for every battery left out."""
        return {
            item.component_id: item.reason
            for item in self.left_out
            if item.role is ComponentRole.BATTERY
        }

    @property
    def inverter_ids(self) -> tuple[int, ...]:
        """The battery inverters, sorted."""
        return tuple(pair.inverter_id for pair in self.pairs)

    @property
    def battery_ids(self) -> tuple[int, ...]:
        """All batteries, sorted."""
        return tuple(sorted(b for pair in self.pairs for b in pair.battery_ids))

    def batteries_of(self, inverter_id: int) -> tuple[int, ...]:
        """Return the batteries behind `inverter_id`.

        Raises:
            KeyError: `inverter_id` is not a battery inverter of this graph.
        """
        for pair in self.pairs:
            if pair.inverter_id == inverter_id:
                return pair.battery_ids
        raise KeyError(inverter_id)

    def inverter_of(self, battery_id: int) -> int:
        """Return the inverter feeding `battery_id`.

        Raises:
            KeyError: `battery_id` is not a battery of this graph.
        """
        for pair in self.pairs:
            if battery_id in pair.battery_ids:
                return pair.inverter_id
        raise KeyError(battery_id)

    def as_dict(self) -> dict[int, tuple[int, ...]]:
        """Return `{inverter id: battery ids}`: the groups that move together.

        What a battery request may name is checked against them by the one rule for
        every kind, `power.distribute.request_problem`.
        """
        return {pair.inverter_id: pair.battery_ids for pair in self.pairs}


def _ids(values: Sequence[int]) -> str:
    """`10`, `10 and 12`, `10, 12 and 14`."""
    texts = [str(v) for v in sorted(values)]
    return texts[0] if len(texts) == 1 else ", ".join(texts[:-1]) + " and " + texts[-1]


def _upstream(connections: Iterable[Connection]) -> dict[int, list[int]]:
    parents: dict[int, list[int]] = {}
    for source, destination in connections:
        parents.setdefault(destination, []).append(source)
    return parents


def pair_batteries(
    components: Iterable[GraphComponent], connections: Iterable[Connection]
) -> BatteryPairs:
    """Pair every battery inverter with the batteries connected below it.

    Connections whose ends are not among `components` are ignored (a filtered list may
    mention them); so are links from a battery inverter to anything but a battery.
    A battery with no battery inverter, a battery inverter with no battery, and a
    battery fed by several inverters are left out (`BatteryPairs.left_out`), and so is
    everything below an inverter that feeds such a battery: those batteries share a DC
    side, how their power splits cannot be attributed.

    Raises:
        ComponentGraphError: batteries or battery inverters exist but every one is
            left out; it names every reason.
    """
    roles = {c.component_id: c.role for c in components}
    links = [(s, d) for s, d in connections if s in roles and d in roles]
    parents = _upstream(links)
    batteries_of: dict[int, list[int]] = {
        cid: [] for cid, role in roles.items() if role is ComponentRole.BATTERY_INVERTER
    }
    left_out: dict[int, LeftOut] = {}

    def leave_out(component_id: int, reason: str) -> None:
        left_out.setdefault(component_id, LeftOut(component_id, roles[component_id], reason))

    shared: dict[int, list[int]] = {}
    """Each inverter feeding a battery on several inverters, with those batteries."""
    for battery_id in sorted(cid for cid, role in roles.items() if role is ComponentRole.BATTERY):
        upstream = sorted(
            {
                above
                for parent in parents.get(battery_id, [])
                for above in (
                    parents.get(parent, [])
                    if roles[parent] is ComponentRole.PRECHARGER
                    else [parent]
                )
            }
        )
        inverters = [p for p in upstream if roles[p] is ComponentRole.BATTERY_INVERTER]
        if len(inverters) > 1:
            leave_out(
                battery_id,
                f"battery {battery_id} is fed by inverters {_ids(inverters)}; "
                "a battery on several inverters is not supported",
            )
            for inverter_id in inverters:
                shared.setdefault(inverter_id, []).append(battery_id)
        elif not inverters:
            found = (
                ", ".join(f"{roles[p].value} {p}" for p in upstream)
                if upstream
                else "no upstream connection"
            )
            leave_out(
                battery_id, f"battery {battery_id} is fed by no battery inverter (found: {found})"
            )
        for inverter_id in inverters:
            batteries_of[inverter_id].append(battery_id)

    for inverter_id, batteries in batteries_of.items():
        if not batteries:
            leave_out(inverter_id, f"battery inverter {inverter_id} has no battery behind it")
        elif inverter_id in shared:
            on_several = shared[inverter_id]
            noun = "battery" if len(on_several) == 1 else "batteries"
            several = f"{noun} {_ids(on_several)}"
            leave_out(
                inverter_id,
                f"battery inverter {inverter_id} feeds {several}, on several inverters",
            )
            for battery_id in batteries:
                leave_out(
                    battery_id,
                    f"battery {battery_id} is behind inverter {inverter_id}, which also feeds "
                    f"{several} on several inverters: their power split cannot be attributed",
                )

    usable = tuple(
        InverterBatteries(inverter_id, tuple(sorted(batteries)))
        for inverter_id, batteries in sorted(batteries_of.items())
        if inverter_id not in left_out and batteries
    )
    ordered = tuple(left_out[cid] for cid in sorted(left_out))
    if left_out and not usable:
        raise ComponentGraphError([i.reason for i in ordered], [i.component_id for i in ordered])
    return BatteryPairs(usable, ordered)


def find_grid_meter(
    components: Iterable[GraphComponent], connections: Iterable[Connection]
) -> int | None:
    """Return the meter directly below the grid connection point, if there is one.

    `None` when no meter hangs directly below the grid, and also when several do:
    then no single meter measures the whole grid connection.
    """
    roles = {c.component_id: c.role for c in components}
    meters = {
        destination
        for source, destination in connections
        if roles.get(source) is ComponentRole.GRID and roles.get(destination) is ComponentRole.METER
    }
    return next(iter(meters)) if len(meters) == 1 else None


def inverters_below_meters(
    components: Iterable[GraphComponent], connections: Iterable[Connection]
) -> dict[int, tuple[int, ...]]:
    """Return, for every meter with battery inverters anywhere below it, those inverters.

    What a feeder meter's limit (`power.meter_limits`) constrains. Connections whose
    ends are not among `components` are ignored; a cycle is walked once.
    """
    roles = {c.component_id: c.role for c in components}
    children: dict[int, list[int]] = {}
    for source, destination in connections:
        if source in roles and destination in roles:
            children.setdefault(source, []).append(destination)
    found: dict[int, tuple[int, ...]] = {}
    for meter_id in sorted(cid for cid, role in roles.items() if role is ComponentRole.METER):
        seen: set[int] = set()
        stack = list(children.get(meter_id, ()))
        while stack:
            current = stack.pop()
            if current in seen:
                continue
            seen.add(current)
            stack.extend(children.get(current, ()))
        inverters = sorted(c for c in seen if roles[c] is ComponentRole.BATTERY_INVERTER)
        if inverters:
            found[meter_id] = tuple(inverters)
    return found
