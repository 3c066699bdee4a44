"""Which batteries sit behind which inverter: the pairing the controller commands by.

The controller sets power on *battery inverters*; the batteries behind an inverter
tell how much it may take or give (SoC, capacity, power bounds). This module reads
the component graph — components by role, connections pointing away from the grid —
and returns the pairs, or refuses a graph the controller cannot drive::

    grid 1 ── meter 2 ─┬─ inverter 10 ── battery 11        10 → (11,)
                       ├─ inverter 20 ─┬─ battery 21       20 → (21, 22)
                       │               └─ battery 22
                       └─ pv inverter 50                   (not a battery inverter)

Supported: several batteries behind one inverter (returned together). Refused, with
every problem named: a battery fed by several inverters (its power could not be
attributed), a battery inverter with no battery, a battery with no battery inverter.

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
    OTHER = "component"
    """Anything else: PV inverters, hybrid inverters, EV chargers, wind turbines, ..."""


@dataclass(frozen=True, slots=True)
class GraphComponent:
    """A component as the graph sees it: its id and its role."""

    component_id: int
    role: ComponentRole


Connection = tuple[int, int]
"""`(source, destination)`: an electrical link, pointing away from the grid."""


class ComponentGraphError(ValueError):
    """The component graph has a shape the controller cannot drive.

    `problems` holds one sentence per problem (sorted by the component concerned);
    `component_ids` the components they name. The message lists them all, one a line.
    """

    def __init__(self, problems: Sequence[str], component_ids: Iterable[int]) -> None:
        """Carry every problem found, so an operator fixes them in one go."""
        self.problems = tuple(problems)
        self.component_ids = frozenset(component_ids)
        super().__init__("\n".join(self.problems))


@dataclass(frozen=True, slots=True)
class InverterBatteries:
    """One battery inverter and the batteries behind it (sorted ids, at least one)."""

    inverter_id: int
    battery_ids: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class BatteryPairs:
    """Every battery inverter with its batteries, sorted by inverter id.

    Each battery appears under exactly one inverter (`pair_batteries` guarantees it).
    """

    pairs: tuple[InverterBatteries, ...]

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
        """Return `{inverter id: battery ids}`."""
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

    Raises:
        ComponentGraphError: naming every battery fed by several inverters, every
            battery inverter without a battery and every battery without a battery
            inverter.
    """
    roles = {c.component_id: c.role for c in components}
    links = [(s, d) for s, d in connections if s in roles and d in roles]
    parents = _upstream(links)
    batteries_of: dict[int, list[int]] = {
        cid: [] for cid, role in roles.items() if role is ComponentRole.BATTERY_INVERTER
    }
    problems: list[tuple[int, str]] = []

    for battery_id in sorted(cid for cid, role in roles.items() if role is ComponentRole.BATTERY):
        upstream = sorted(set(parents.get(battery_id, [])))
        inverters = [p for p in upstream if roles[p] is ComponentRole.BATTERY_INVERTER]
        if len(inverters) > 1:
            problems.append(
                (
                    battery_id,
                    f"battery {battery_id} is fed by inverters {_ids(inverters)}; "
                    "a battery on several inverters is not supported",
                )
            )
        elif not inverters:
            found = (
                ", ".join(f"{roles[p].value} {p}" for p in upstream)
                if upstream
                else "no upstream connection"
            )
            problems.append(
                (battery_id, f"battery {battery_id} is fed by no battery inverter (found: {found})")
            )
        # Even a rejected battery marks its inverters as having one, so each problem
        # is reported once, at the battery.
        for inverter_id in inverters:
            batteries_of[inverter_id].append(battery_id)

    for inverter_id, batteries in batteries_of.items():
        if not batteries:
            problems.append(
                (inverter_id, f"battery inverter {inverter_id} has no battery behind it")
            )

    if problems:
        problems.sort()
        raise ComponentGraphError([text for _, text in problems], [cid for cid, _ in problems])
    return BatteryPairs(
        tuple(
            InverterBatteries(inverter_id, tuple(sorted(batteries)))
            for inverter_id, batteries in sorted(batteries_of.items())
        )
    )


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
