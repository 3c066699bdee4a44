import pytest

from edge_controller.microgrid.graph import (
    BatteryPairs,
    ComponentGraphError,
    ComponentRole,
    GraphComponent,
    InverterBatteries,
    find_grid_meter,
    inverters_below_meters,
    pair_batteries,
)

GRID, METER, INVERTER, BATTERY, OTHER = (
    ComponentRole.GRID,
    ComponentRole.METER,
    ComponentRole.BATTERY_INVERTER,
    ComponentRole.BATTERY,
    ComponentRole.OTHER,
)


def site(*roles: tuple[int, ComponentRole]) -> list[GraphComponent]:
    return [GraphComponent(cid, role) for cid, role in roles]


EXAMPLE = site(
    (1, GRID),
    (2, METER),
    (10, INVERTER),
    (11, BATTERY),
    (20, INVERTER),
    (21, BATTERY),
    (50, OTHER),
    (70, METER),
)
EXAMPLE_LINKS = [(1, 2), (2, 10), (10, 11), (2, 20), (20, 21), (2, 50), (2, 70)]


def graph_error(components: list[GraphComponent], links: list[tuple[int, int]]) -> str:
    with pytest.raises(ComponentGraphError) as caught:
        pair_batteries(components, links)
    return str(caught.value)


def test_each_battery_inverter_is_paired_with_its_battery() -> None:
    pairs = pair_batteries(EXAMPLE, EXAMPLE_LINKS)
    assert pairs.as_dict() == {10: (11,), 20: (21,)}
    assert pairs.left_out == ()
    assert pairs.inverter_ids == (10, 20)
    assert pairs.battery_ids == (11, 21)
    assert pairs.inverter_of(21) == 20
    assert pairs.batteries_of(10) == (11,)


def test_unknown_ids_raise_key_errors() -> None:
    pairs = pair_batteries(EXAMPLE, EXAMPLE_LINKS)
    with pytest.raises(KeyError):
        pairs.batteries_of(50)
    with pytest.raises(KeyError):
        pairs.inverter_of(10)


def test_several_batteries_on_one_inverter_are_returned_together_sorted() -> None:
    components = site((1, GRID), (10, INVERTER), (13, BATTERY), (11, BATTERY), (12, BATTERY))
    pairs = pair_batteries(components, [(1, 10), (10, 13), (10, 11), (10, 12)])
    assert pairs == BatteryPairs((InverterBatteries(10, (11, 12, 13)),))


def left_out(pairs: BatteryPairs) -> dict[int, str]:
    return {item.component_id: item.reason for item in pairs.left_out}


def test_a_battery_on_two_inverters_is_left_out_with_what_shares_its_inverters() -> None:
    #   inverter 10 ─┬─ battery 11 ─┬─ inverter 12 ── battery 13
    #                                  (11 hangs on 10 and 12)
    #   inverter 20 ── battery 21      (the rest of the site)
    components = site(
        (1, GRID),
        (10, INVERTER),
        (12, INVERTER),
        (11, BATTERY),
        (13, BATTERY),
        (20, INVERTER),
        (21, BATTERY),
    )
    links = [(1, 10), (1, 12), (10, 11), (12, 11), (12, 13), (1, 20), (20, 21)]
    pairs = pair_batteries(components, links)
    assert pairs.as_dict() == {20: (21,)}
    assert pairs.battery_ids == (21,)
    assert left_out(pairs) == {
        10: "battery inverter 10 feeds battery 11, on several inverters",
        11: "battery 11 is fed by inverters 10 and 12; a battery on several inverters is "
        "not supported",
        12: "battery inverter 12 feeds battery 11, on several inverters",
        13: "battery 13 is behind inverter 12, which also feeds battery 11 on several "
        "inverters: their power split cannot be attributed",
    }
    assert pairs.left_out_batteries == {11: left_out(pairs)[11], 13: left_out(pairs)[13]}
    assert [item.role for item in pairs.left_out] == [INVERTER, BATTERY, INVERTER, BATTERY]
    with pytest.raises(KeyError):
        pairs.inverter_of(13)


def test_a_battery_on_three_inverters_lists_them_all() -> None:
    components = site(
        (14, INVERTER), (10, INVERTER), (12, INVERTER), (11, BATTERY), (20, INVERTER), (21, BATTERY)
    )
    pairs = pair_batteries(components, [(10, 11), (12, 11), (14, 11), (20, 21)])
    assert pairs.left_out_batteries[11].startswith("battery 11 is fed by inverters 10, 12 and 14;")
    assert pairs.as_dict() == {20: (21,)}


def test_an_inverter_without_battery_is_left_out() -> None:
    components = [*EXAMPLE, GraphComponent(30, INVERTER)]
    pairs = pair_batteries(components, [*EXAMPLE_LINKS, (2, 30)])
    assert pairs.as_dict() == {10: (11,), 20: (21,)}
    assert left_out(pairs) == {30: "battery inverter 30 has no battery behind it"}
    assert pairs.left_out_batteries == {}


def test_a_battery_without_inverter_is_left_out_with_what_it_hangs_on() -> None:
    components = [*EXAMPLE, GraphComponent(31, BATTERY), GraphComponent(41, BATTERY)]
    links = [*EXAMPLE_LINKS, (2, 31), (50, 31)]
    pairs = pair_batteries(components, links)
    assert pairs.as_dict() == {10: (11,), 20: (21,)}
    assert pairs.left_out_batteries == {
        31: "battery 31 is fed by no battery inverter (found: meter 2, component 50)",
        41: "battery 41 is fed by no battery inverter (found: no upstream connection)",
    }


def test_two_batteries_on_several_inverters_are_both_named_at_a_shared_inverter() -> None:
    components = site(
        (10, INVERTER), (12, INVERTER), (11, BATTERY), (13, BATTERY), (20, INVERTER), (21, BATTERY)
    )
    pairs = pair_batteries(components, [(10, 11), (12, 11), (10, 13), (12, 13), (20, 21)])
    assert (
        left_out(pairs)[10] == "battery inverter 10 feeds batteries 11 and 13, on several inverters"
    )
    assert set(pairs.left_out_batteries) == {11, 13}


def test_no_usable_battery_is_refused_naming_every_problem_sorted_by_component() -> None:
    components = site((30, INVERTER), (10, INVERTER), (12, INVERTER), (11, BATTERY), (5, BATTERY))
    with pytest.raises(ComponentGraphError) as caught:
        pair_batteries(components, [(10, 11), (12, 11)])
    assert caught.value.problems == (
        "battery 5 is fed by no battery inverter (found: no upstream connection)",
        "battery inverter 10 feeds battery 11, on several inverters",
        "battery 11 is fed by inverters 10 and 12; a battery on several inverters is not supported",
        "battery inverter 12 feeds battery 11, on several inverters",
        "battery inverter 30 has no battery behind it",
    )
    assert str(caught.value) == "\n".join(
        ("no usable battery: every one is left out", *caught.value.problems)
    )
    assert caught.value.component_ids == {5, 10, 11, 12, 30}


def test_a_lone_inverter_without_battery_is_refused() -> None:
    message = graph_error(site((1, GRID), (30, INVERTER)), [(1, 30)])
    assert message.splitlines()[1:] == ["battery inverter 30 has no battery behind it"]


def test_links_to_components_not_listed_are_ignored() -> None:
    pairs = pair_batteries(EXAMPLE, [*EXAMPLE_LINKS, (10, 99), (98, 11)])
    assert pairs.as_dict() == {10: (11,), 20: (21,)}


def test_a_site_without_batteries_has_no_pairs() -> None:
    pairs = pair_batteries(site((1, GRID), (2, METER), (50, OTHER)), [(1, 2), (2, 50)])
    assert pairs.pairs == ()
    assert pairs.battery_ids == ()
    assert pairs.left_out == ()


def test_grid_meter_is_the_meter_directly_below_the_grid() -> None:
    assert find_grid_meter(EXAMPLE, EXAMPLE_LINKS) == 2


def test_no_grid_meter_when_none_or_several_meters_hang_on_the_grid() -> None:
    assert find_grid_meter(site((1, GRID), (10, INVERTER)), [(1, 10)]) is None
    two = site((1, GRID), (2, METER), (3, METER))
    assert find_grid_meter(two, [(1, 2), (1, 3)]) is None
    # a meter deeper down (the load, 70) does not count
    assert find_grid_meter(EXAMPLE, [(2, 70)]) is None


# ---------------------------------------------------------------- meters and what is below them

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


def test_a_precharger_between_inverter_and_battery_is_looked_through() -> None:
    components = site(
        (1, GRID),
        (2, METER),
        (5, OTHER),  # a relay on the AC side: nothing to pair
        (10, INVERTER),
        (12, ComponentRole.PRECHARGER),
        (11, BATTERY),
    )
    links = [(1, 2), (2, 5), (5, 10), (10, 12), (12, 11)]
    pairs = pair_batteries(components, links)
    assert pairs.as_dict() == {10: (11,)}
    assert pairs.left_out == ()
    assert inverters_below_meters(components, links) == {2: (10,)}
