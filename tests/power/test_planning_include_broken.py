"""`include_broken_batteries`: where this controller departs from seed 004, on purpose.

The SDK splits what the working batteries cannot take equally over the broken ones,
unchecked, and over every battery of the request when none works, even one with no
data. This is physical equipment: a battery is never commanded outside bounds it
reported, nor at all when its bounds are unknown. So, pinned here:

- the rest is split equally over the broken units with known bounds, each share
  clamped to its bounds; what none can take is reported as excess;
- a broken unit with NaN data or unknown bounds is not commanded;
- `adjust_power=False` promises the exact power or a refusal: broken units (their
  last command failed) do not count towards that promise, so OutOfBounds carries the
  bounds of the units that take commands, [0, 0] W when every unit is broken.
"""

from __future__ import annotations

import dataclasses
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_controller.power.bounds import Range, allows
from edge_controller.power.distribution import SocBalancing
from edge_controller.power.planning import (
    Availability,
    Plan,
    Refusal,
    Unit,
    allowed_bounds,
    plan,
)
from tests.power.test_planning import unit
from tests.properties import examples

ALGORITHM = SocBalancing()
BROKEN = Availability.BROKEN


def planned(result: Plan | Refusal) -> Plan:
    assert isinstance(result, Plan), result
    return result


def unknown_bounds(inverter_id: int) -> Unit:
    """A broken unit whose battery and inverter report no power bounds at all."""
    known = unit(inverter_id, availability=BROKEN)
    battery = dataclasses.replace(known.batteries[0], bounds=None)
    return dataclasses.replace(known, batteries=(battery,), inverter_bounds=None)


def test_the_rest_is_split_equally_over_broken_units_each_clamped_to_its_bounds() -> None:
    units = [unit(10), unit(20, availability=BROKEN), unit(30, power_w=2_000, availability=BROKEN)]
    result = planned(plan(-30_000.0, units, ALGORITHM, include_broken=True))
    # working 10 takes its -10 kW; the -20 kW left: -10 kW each, 30 capped at its -2 kW
    assert result.commands == {10: -10_000.0, 20: -10_000.0, 30: -2_000.0}
    assert result.excess_w == pytest.approx(-8_000)


def test_a_broken_unit_with_nan_data_or_unknown_bounds_is_never_commanded() -> None:
    units = [
        unit(10),
        unit(20, soc=math.nan, availability=BROKEN),
        unit(30, availability=BROKEN),
        unknown_bounds(40),
    ]
    result = planned(plan(-15_000.0, units, ALGORITHM, include_broken=True))
    # only 30 has known bounds among the broken: it takes the whole -5 kW left
    assert result.commands == {10: -10_000.0, 30: -5_000.0}
    assert result.excess_w == pytest.approx(0.0)


def test_every_unit_broken_with_adjust_power_spreads_within_their_bounds() -> None:
    units = [unit(20, availability=BROKEN), unit(30, availability=BROKEN)]
    result = planned(plan(-30_000.0, units, ALGORITHM, include_broken=True))
    assert result.commands == {20: -10_000.0, 30: -10_000.0}
    assert result.excess_w == pytest.approx(-10_000)


def test_without_adjust_power_broken_units_do_not_count_towards_the_bounds() -> None:
    all_broken = [unit(20, availability=BROKEN), unit(30, availability=BROKEN)]
    refused = plan(-5_000.0, all_broken, ALGORITHM, adjust_power=False, include_broken=True)
    assert isinstance(refused, Refusal)
    assert refused.bounds is not None
    assert refused.bounds.inclusion == Range(0.0, 0.0)
    one_working = [unit(10), unit(20, availability=BROKEN)]
    refused = plan(-15_000.0, one_working, ALGORITHM, adjust_power=False, include_broken=True)
    assert isinstance(refused, Refusal)
    assert refused.bounds is not None
    assert refused.bounds.inclusion == Range(-10_000.0, 10_000.0)
    # within the working units' bounds the request is met by them alone
    met = planned(plan(-8_000.0, one_working, ALGORITHM, adjust_power=False, include_broken=True))
    assert met.commands == {10: -8_000.0}


@pytest.mark.parametrize(
    ("bound_w", "resolution_w", "expected_w"),
    [
        # 135 979 × 0.1 W is 13 597.900000000001 W, a hair beyond: one step less
        (13_597.9, 0.1, 135_978 * 0.1),
        # the quotient is 942 163.99…: still all 942 164 steps
        (9_421.64, 0.01, 942_164 * 0.01),
    ],
)
def test_a_broken_unit_at_its_bound_gets_the_last_whole_step_within_it(
    bound_w: float, resolution_w: float, expected_w: float
) -> None:
    broken = dataclasses.replace(
        unit(20, power_w=bound_w, availability=BROKEN), resolution_w=resolution_w
    )
    result = planned(plan(-50_000.0, [unit(10), broken], ALGORITHM, include_broken=True))
    assert result.commands[20] == -expected_w
    assert -bound_w <= result.commands[20]


@st.composite
def fractional_units(draw: st.DrawFn) -> list[Unit]:
    """Units as a site reports them: bounds to 0.1 W, fractional resolutions, any state."""
    units = []
    for index in range(draw(st.integers(min_value=1, max_value=4))):
        own = (
            Range(-draw(st.integers(10, 300_000_0)) / 10, draw(st.integers(10, 300_000_0)) / 10),
        )
        measured = draw(st.none() | st.integers(-300_000_0, 300_000_0).map(lambda w: w / 10))
        drawn = unit(
            10 * (index + 1),
            soc=draw(st.floats(11, 89)),
            measured_w=measured,
            battery_bounds=own,
            inverter_bounds=own,
        )
        units.append(
            dataclasses.replace(
                drawn,
                resolution_w=draw(st.sampled_from([0.1, 0.2, 0.01])),
                availability=draw(st.sampled_from(list(Availability))),
                unconfirmed=draw(st.booleans()),
            )
        )
    return units


@settings(max_examples=examples(200), deadline=None)
@given(fractional_units(), st.floats(min_value=-1.3e6, max_value=1.3e6), st.booleans())
def test_no_command_is_beyond_its_units_bounds_at_fractional_resolutions(
    units: list[Unit], target_w: float, include_broken: bool
) -> None:
    result = plan(target_w, units, ALGORITHM, include_broken=include_broken)
    if isinstance(result, Refusal):
        return
    by_id = {u.inverter_id: u for u in units}
    for inverter_id, command in result.commands.items():
        own = allowed_bounds(by_id[inverter_id])
        assert command == 0.0 or (own is not None and allows(own, command)), (inverter_id, command)
