import pytest

from edge_controller.microgrid.graph import ComponentRole, GraphComponent, inverters_below_meters

GRID, METER, INVERTER, BATTERY, OTHER = (
    ComponentRole.GRID,
    ComponentRole.METER,
    ComponentRole.BATTERY_INVERTER,
    ComponentRole.BATTERY,
    ComponentRole.OTHER,
)

#   grid 1 ── meter 2 ─┬─ feeder meter 3 ─┬─ inverter 10 ── battery 11
#                      │                  ├─ inverter 20 ── battery 21
#                      │                  └─ pv inverter 50
#                      ├─ inverter 30 ── battery 31
#                      └─ load meter 4 ── load 70
SITE = [
    GraphComponent(cid, role)
    for cid, role in (
        (1, GRID),
        (2, METER),
        (3, METER),
        (4, METER),
        (10, INVERTER),
        (11, BATTERY),
        (20, INVERTER),
        (21, BATTERY),
        (30, INVERTER),
        (31, BATTERY),
        (50, OTHER),
        (70, OTHER),
    )
]
LINKS = [
    (1, 2),
    (2, 3),
    (3, 10),
    (10, 11),
    (3, 20),
    (20, 21),
    (3, 50),
    (2, 30),
    (30, 31),
    (2, 4),
    (4, 70),
]


def test_each_meter_lists_the_battery_inverters_anywhere_below_it() -> None:
    found = inverters_below_meters(SITE, LINKS)
    assert found == {2: (10, 20, 30), 3: (10, 20)}
    assert 4 not in found  # the load meter has no batteries below


def test_the_order_of_the_links_does_not_matter() -> None:
    assert inverters_below_meters(SITE, reversed(LINKS)) == {2: (10, 20, 30), 3: (10, 20)}


def test_a_meter_above_nothing_or_with_no_links_is_absent() -> None:
    assert inverters_below_meters(SITE, []) == {}
    only_meters = [GraphComponent(2, METER), GraphComponent(4, METER)]
    assert inverters_below_meters(only_meters, [(2, 4)]) == {}


def test_an_inverter_above_the_meter_is_not_below_it() -> None:
    # inverter 30 feeds meter 4: it is below meter 2 but not below meter 4
    found = inverters_below_meters(SITE, [*LINKS, (30, 4)])
    assert found[2] == (10, 20, 30)
    assert 4 not in found


@pytest.mark.timeout(10)
def test_a_cycle_is_walked_once() -> None:
    # a mis-recorded link back from the feeder to the main meter, and one inverter loop
    found = inverters_below_meters(SITE, [*LINKS, (3, 2), (20, 3), (11, 10)])
    assert found[2] == (10, 20, 30)
    # through the loop, the feeder now reaches everything below the main meter
    assert found[3] == (10, 20, 30)
    assert 4 not in found


@pytest.mark.timeout(10)
def test_a_meter_linked_to_itself_does_not_hang() -> None:
    found = inverters_below_meters(SITE, [*LINKS, (3, 3), (4, 4)])
    assert found == {2: (10, 20, 30), 3: (10, 20)}


def test_links_to_unknown_components_are_ignored() -> None:
    # 99 is not a component: nothing is reached through it, and it is never listed
    extra = [*LINKS, (4, 99), (99, 30), (3, 98), (97, 10)]
    assert inverters_below_meters(SITE, extra) == {2: (10, 20, 30), 3: (10, 20)}
    # a link to an unknown inverter id does not make it appear either
    assert inverters_below_meters(SITE, [*LINKS, (4, 60)]) == {2: (10, 20, 30), 3: (10, 20)}


def test_only_battery_inverters_are_listed() -> None:
    # the pv inverter 50 and batteries below the feeder are not what a share constrains
    found = inverters_below_meters(SITE, LINKS)
    assert all(cid in (10, 20, 30) for ids in found.values() for cid in ids)
    hybrid_only = [GraphComponent(3, METER), GraphComponent(50, OTHER), GraphComponent(11, BATTERY)]
    assert inverters_below_meters(hybrid_only, [(3, 50), (50, 11)]) == {}
