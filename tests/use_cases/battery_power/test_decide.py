"""What a BATTERY_POWER dispatch asks: its watts on whole inverter groups."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from frequenz.client.common.microgrid.electrical_components import ElectricalComponentCategory
from frequenz.client.dispatch.recurrence import RecurrenceRule
from frequenz.client.dispatch.types import Dispatch as ClientDispatch
from frequenz.client.dispatch.types import DispatchId, TargetCategories, TargetIds
from frequenz.dispatch import Dispatch
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_controller.dispatching.payload import PayloadError
from edge_controller.use_cases.battery_power.decide import TargetError, read_dispatch
from tests.properties import examples

SITE = frozenset({11, 12, 21, 31})
GROUPS = {11: frozenset({11, 12}), 12: frozenset({11, 12}), 21: frozenset({21})}
"""Batteries 11 and 12 share an inverter; 31 has no group entry (its own)."""


def dispatch(target: TargetIds | TargetCategories, payload: dict[str, object]) -> Dispatch:
    now = datetime.now(UTC)
    return Dispatch(
        ClientDispatch(
            id=DispatchId(7),
            type="BATTERY_POWER",
            start_time=now,
            duration=timedelta(hours=1),
            target=target,
            active=True,
            dry_run=False,
            payload=payload,
            recurrence=RecurrenceRule(),
            create_time=now,
            update_time=now,
        )
    )


def test_named_batteries_carry_the_power() -> None:
    read = read_dispatch(dispatch(TargetIds(21, 31), {"power_w": "-40 kW"}), SITE, GROUPS)
    assert (read.power_w, read.batteries, read.widened) == (-40_000.0, frozenset({21, 31}), False)


def test_a_battery_brings_the_others_on_its_inverter() -> None:
    read = read_dispatch(dispatch(TargetIds(11), {"power_w": 5000}), SITE, GROUPS)
    assert read.batteries == {11, 12}
    assert read.widened


def test_the_battery_category_means_every_battery_of_the_site() -> None:
    category = TargetCategories(ElectricalComponentCategory.BATTERY)
    assert read_dispatch(dispatch(category, {"power_w": 0}), SITE, GROUPS).batteries == SITE


@pytest.mark.parametrize(
    ("target", "message"),
    [
        (TargetIds(11, 99), r"dispatch 7: target: \[99\] are not batteries of this site"),
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
        read_dispatch(dispatch(target, {"power_w": 0}), SITE, GROUPS)


def test_a_bad_payload_names_the_field() -> None:
    with pytest.raises(PayloadError, match=r"dispatch 7: payload\.powr_w: unknown key"):
        read_dispatch(dispatch(TargetIds(11), {"powr_w": 0}), SITE, GROUPS)


@settings(max_examples=examples(500), deadline=None)
@given(named=st.sets(st.sampled_from(sorted(SITE)), min_size=1))
def test_the_batteries_are_the_named_ones_in_whole_groups(named: set[int]) -> None:
    read = read_dispatch(dispatch(TargetIds(*named), {"power_w": 1}), SITE, GROUPS)
    assert named <= read.batteries <= SITE
    for battery in read.batteries:
        assert GROUPS.get(battery, {battery}) <= read.batteries
    assert read.widened == (read.batteries != named)
