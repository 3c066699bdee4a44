"""What a BATTERY_POWER dispatch asks: its watts on whole inverter groups, one request each."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from frequenz.client.common.microgrid.electrical_components import ElectricalComponentCategory
from frequenz.client.dispatch.types import TargetCategories, TargetIds
from frequenz.dispatch import Dispatch
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_controller.dispatching.payload import PayloadError
from edge_controller.microgrid.graph import BatteryPairs, InverterBatteries
from edge_controller.power.distribute import request_problem
from edge_controller.power.kinds import TargetKind
from edge_controller.use_cases.battery_power.decide import (
    BatteryPowerTarget,
    RunningBatteryDispatch,
    TargetError,
    dispatch_requests,
    read_dispatch,
)
from tests.properties import examples
from tests.use_cases.actor_steps import dispatch as use_case_dispatch

PAIRS = BatteryPairs(
    (InverterBatteries(10, (11, 12)), InverterBatteries(20, (21,)), InverterBatteries(30, (31,)))
)
"""Batteries 11 and 12 share inverter 10; 21 and 31 have one each."""
SITE = frozenset(PAIRS.battery_ids)


def dispatch(target: TargetIds | TargetCategories, payload: dict[str, object]) -> Dispatch:
    return use_case_dispatch(7, "BATTERY_POWER", payload, target)


def test_named_batteries_carry_the_power() -> None:
    read = read_dispatch(dispatch(TargetIds(21, 31), {"power_w": "-40 kW"}), PAIRS)
    assert (read.power_w, read.batteries, read.widened) == (-40_000.0, frozenset({21, 31}), False)


def test_a_battery_brings_the_others_on_its_inverter() -> None:
    read = read_dispatch(dispatch(TargetIds(11), {"power_w": 5000}), PAIRS)
    assert read.batteries == {11, 12}
    assert read.widened


def test_the_battery_category_means_every_battery_of_the_site() -> None:
    category = TargetCategories(ElectricalComponentCategory.BATTERY)
    assert read_dispatch(dispatch(category, {"power_w": 0}), PAIRS).batteries == SITE


@pytest.mark.parametrize(
    ("target", "message"),
    [
        (
            TargetIds(11, 99),
            r"dispatch 7: target: unknown batteries \[99\]; available: \[11, 12, 21, 31\]",
        ),
        (
            TargetCategories(ElectricalComponentCategory.INVERTER),
            r"dispatch 7: target: expected the battery category, got \['INVERTER'\]",
        ),
    ],
)
def test_a_target_without_usable_batteries_is_refused_naming_it(
    target: TargetIds | TargetCategories, message: str
) -> None:
    with pytest.raises(TargetError, match=message):
        read_dispatch(dispatch(target, {"power_w": 0}), PAIRS)


def test_a_bad_payload_names_the_field() -> None:
    with pytest.raises(PayloadError, match=r"dispatch 7: payload\.powr_w: unknown key"):
        read_dispatch(dispatch(TargetIds(11), {"powr_w": 0}), PAIRS)


@settings(max_examples=examples(500), deadline=None)
@given(named=st.sets(st.sampled_from(sorted(SITE)), min_size=1))
def test_the_batteries_are_the_named_ones_in_whole_groups(named: set[int]) -> None:
    read = read_dispatch(dispatch(TargetIds(*named), {"power_w": 1}), PAIRS)
    assert named <= read.batteries <= SITE
    for battery in read.batteries:
        assert set(PAIRS.batteries_of(PAIRS.inverter_of(battery))) <= read.batteries
    # what the distributor accepts
    assert request_problem(TargetKind.BATTERIES, read.batteries, PAIRS.as_dict()) is None
    assert read.widened == (read.batteries != named)


def test_a_battery_left_out_of_the_pairing_is_refused_as_the_distributor_would() -> None:
    with pytest.raises(TargetError, match=r"dispatch 7: target: unknown batteries \[41\]"):
        read_dispatch(dispatch(TargetIds(41), {"power_w": 0}), PAIRS)


def running(
    dispatch_id: int, power_w: float, batteries: set[int], *, dry_run: bool = False
) -> RunningBatteryDispatch:
    created = datetime(2026, 11, 23, 12, dispatch_id, tzinfo=UTC)
    target = BatteryPowerTarget(power_w, frozenset(batteries), widened=False)
    return RunningBatteryDispatch(dispatch_id, created, target, dry_run)


def test_each_running_dispatch_asks_on_its_own_and_a_dry_run_asks_nothing() -> None:
    # two dispatches on the same battery both ask: the manager decides who drives
    requests = dispatch_requests(
        [
            running(2, 5000.0, {21}),
            running(1, -40_000.0, {11, 12, 21}),
            running(3, 1.0, {31}, dry_run=True),
        ],
        namespace="bp",
        priority=4,
    )
    assert sorted(requests) == [1, 2]
    first = requests[1]
    assert (first.namespace, first.power.as_watts(), first.batteries) == (
        "bp",
        -40_000.0,
        frozenset({11, 12, 21}),
    )
    assert (first.origin, first.created, first.priority, first.hold) == (
        1,
        datetime(2026, 11, 23, 12, 1, tzinfo=UTC),
        4,
        True,
    )
    assert not first.withdraws


def test_a_dispatch_of_0_w_holds_its_batteries_at_0_w_rather_than_giving_them_back() -> None:
    (request,) = dispatch_requests([running(1, 0.0, {21})], namespace="bp").values()
    assert request.power.as_watts() == 0.0
    assert not request.withdraws  # an older dispatch on battery 21 must not take over
