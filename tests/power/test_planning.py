"""Planning a request: which units carry it, bounds, refusals — as a table of cases."""

from __future__ import annotations

import math

import pytest

from edge_controller.power.bounds import Range
from edge_controller.power.distribution import SocBalancing
from edge_controller.power.planning import (
    Availability,
    BatteryState,
    Plan,
    Refusal,
    Unit,
    plan,
    to_battery_unit,
)

ALGORITHM = SocBalancing()


def unit(
    inverter_id: int,
    soc: float = 50.0,
    power_w: float = 10_000.0,
    availability: Availability = Availability.WORKING,
    measured_w: float | None = None,
    battery_bounds: tuple[Range, ...] | None = None,
    inverter_bounds: tuple[Range, ...] | None = None,
) -> Unit:
    default = (Range(-power_w, power_w),)
    return Unit(
        inverter_id=inverter_id,
        batteries=(
            BatteryState(
                inverter_id + 1,
                soc,
                10.0,
                90.0,
                50_000.0,
                default if battery_bounds is None else battery_bounds,
            ),
        ),
        inverter_bounds=default if inverter_bounds is None else inverter_bounds,
        resolution_w=1.0,
        availability=availability,
        measured_power_w=measured_w,
    )


def planned(result: Plan | Refusal) -> Plan:
    assert isinstance(result, Plan), result
    return result


def test_zero_is_forwarded_to_every_unit_even_broken_ones() -> None:
    result = planned(plan(0.0, [unit(10), unit(20, availability=Availability.BROKEN)], ALGORITHM))
    assert result.commands == {10: 0.0, 20: 0.0}


def test_working_units_carry_the_target() -> None:
    result = planned(plan(-12_000.0, [unit(10, soc=70), unit(20, soc=40)], ALGORITHM))
    assert sum(result.commands.values()) == pytest.approx(-12_000)
    assert result.commands[10] < result.commands[20] <= 0


def test_uncertain_units_are_used_only_when_no_working_unit_is_left() -> None:
    units = [unit(10), unit(20, availability=Availability.UNCERTAIN)]
    # The uncertain unit is told 0 W: its last command must not run on uncounted.
    assert planned(plan(-5_000.0, units, ALGORITHM)).commands == {10: -5_000.0, 20: 0.0}
    only_uncertain = [unit(20, availability=Availability.UNCERTAIN)]
    assert planned(plan(-5_000.0, only_uncertain, ALGORITHM)).commands == {20: -5_000.0}


def test_a_broken_inverter_still_delivering_is_not_compensated_twice() -> None:
    units = [unit(10, availability=Availability.BROKEN, measured_w=-4_000.0), unit(20), unit(30)]
    result = planned(plan(-10_000.0, units, ALGORITHM))
    assert 10 not in result.commands
    assert sum(result.commands.values()) == pytest.approx(-6_000)
    assert result.counted_elsewhere_w == -4_000


def test_out_of_bounds_without_adjust_and_clamped_with_it() -> None:
    units = [unit(10), unit(20)]
    refused = plan(-30_000.0, units, ALGORITHM, adjust_power=False)
    assert isinstance(refused, Refusal)
    assert refused.bounds is not None
    assert refused.bounds.inclusion == Range(-20_000, 20_000)
    clamped = planned(plan(-30_000.0, units, ALGORITHM))
    assert sum(clamped.commands.values()) == pytest.approx(-20_000)
    assert clamped.excess_w == pytest.approx(-10_000)


def test_exclusion_band_is_refused_even_with_adjust_power() -> None:
    band = (Range(-10_000, -1_000), Range(1_000, 10_000))
    units = [unit(10, battery_bounds=band), unit(20, battery_bounds=band)]
    refused = plan(-500.0, units, ALGORITHM)
    assert isinstance(refused, Refusal)
    assert "exclusion band" in refused.reason


def test_nan_bounds_are_replaced_from_the_adjacent_component() -> None:
    from_inverter = unit(10, battery_bounds=None, inverter_bounds=(Range(-3_000, 3_000),))
    converted = to_battery_unit(
        Unit(
            10,
            (BatteryState(11, 50, 10, 90, 50_000, None),),
            (Range(-3_000, 3_000),),
            1.0,
            Availability.WORKING,
        )
    )
    assert not isinstance(converted, str)
    assert converted.allowed == (Range(-3_000, 3_000),)
    assert planned(plan(-5_000.0, [from_inverter], ALGORITHM)).commands[10] >= -10_000


def test_nan_soc_skips_the_battery_this_round() -> None:
    units = [unit(10, soc=math.nan, measured_w=-10_000.0), unit(20)]
    result = planned(plan(-5_000.0, units, ALGORITHM))
    assert result.commands == {10: 0.0, 20: -5_000.0}  # no uncounted old command
    assert "NaN" in result.skipped[10]


def test_no_usable_battery_is_refused_with_reasons() -> None:
    refused = plan(-5_000.0, [unit(10, soc=math.nan)], ALGORITHM)
    assert isinstance(refused, Refusal)
    assert "no battery can be used" in refused.reason
    assert "10: battery 11 reports NaN" in refused.reason


def test_include_broken_spreads_the_rest_over_broken_units_within_bounds() -> None:
    units = [
        unit(10),
        unit(20, availability=Availability.BROKEN),
        unit(30, availability=Availability.BROKEN),
    ]
    result = planned(plan(-20_000.0, units, ALGORITHM, include_broken=True))
    assert result.commands[10] == pytest.approx(-10_000)
    assert result.commands[20] == pytest.approx(-5_000)
    assert result.commands[30] == pytest.approx(-5_000)
    capped = planned(plan(-60_000.0, units, ALGORITHM, include_broken=True))
    assert min(capped.commands.values()) >= -10_000


def test_batteries_sharing_an_inverter_keep_their_exclusion_band() -> None:
    band = (Range(-10_000, -2_000), Range(2_000, 10_000))
    shared = Unit(
        10,
        (BatteryState(11, 50, 10, 90, 50_000, band), BatteryState(12, 50, 10, 90, 50_000, band)),
        None,
        1.0,
        Availability.WORKING,
    )
    converted = to_battery_unit(shared)
    assert not isinstance(converted, str)
    assert converted.allowed == (Range(-20_000, -2_000), Range(2_000, 20_000))
    refused = plan(-1_500.0, [shared], ALGORITHM)
    assert isinstance(refused, Refusal)


def test_unbounded_bounds_skip_the_unit_instead_of_crashing() -> None:
    unbounded = Unit(
        10,
        (BatteryState(11, 50, 10, 90, 50_000, None),),
        (Range(-math.inf, math.inf),),
        1.0,
        Availability.WORKING,
    )
    units = [unbounded, unit(20)]
    result = planned(plan(-5_000.0, units, ALGORITHM))
    assert result.commands == {10: 0.0, 20: -5_000.0}
    assert "unbounded" in result.skipped[10]
