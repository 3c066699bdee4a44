"""Planning a request for EV chargers and PV inverters: shares, bounds, steps, withdraws."""

from __future__ import annotations

import math

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from edge_controller.power.bounds import Range, allows
from edge_controller.power.direct import DirectUnit, plan_direct, snap
from edge_controller.power.kinds import TargetKind
from edge_controller.power.planning import Availability, Plan, Refusal
from tests.properties import examples

EV, PV = TargetKind.EV_CHARGERS, TargetKind.PV_INVERTERS


def charger(
    cid: int, upper_w: float = 22_000.0, lower_w: float = 0.0, **changes: object
) -> DirectUnit:
    fields: dict[str, object] = {
        "component_id": cid,
        "bounds": (Range(lower_w, upper_w),),
        "rated_w": 22_000.0,
        "resolution_w": 1.0,
    }
    fields.update(changes)
    return DirectUnit(**fields)  # type: ignore[arg-type]


def pv(cid: int, peak_w: float, **changes: object) -> DirectUnit:
    fields: dict[str, object] = {
        "component_id": cid,
        "bounds": (Range(-peak_w, 0.0),),
        "rated_w": peak_w,
        "resolution_w": 10.0,
    }
    fields.update(changes)
    return DirectUnit(**fields)  # type: ignore[arg-type]


def planned(result: Plan | Refusal) -> Plan:
    assert isinstance(result, Plan), result
    return result


# ---------------------------------------------------------------- EV chargers


def test_a_charger_gets_the_power_asked_in_whole_steps() -> None:
    decided = planned(plan_direct(EV, 11_000.0, [charger(80, resolution_w=690.0)]))
    assert decided.commands == {80: 10_350.0}  # 15 steps: never more than asked
    assert decided.excess_w == pytest.approx(650.0)


def test_a_charger_without_a_car_gets_0_w_and_its_share_goes_to_the_others() -> None:
    decided = planned(plan_direct(EV, 15_000.0, [charger(80), charger(81, upper_w=0.0)]))
    assert decided.commands == {80: 15_000.0, 81: 0.0}
    alone = planned(plan_direct(EV, 11_000.0, [charger(81, upper_w=0.0)]))
    assert alone.commands == {81: 0.0}
    assert alone.excess_w == 11_000.0


def test_chargers_share_by_what_each_can_take_now() -> None:
    decided = planned(plan_direct(EV, 20_000.0, [charger(80), charger(81, upper_w=11_000.0)]))
    assert decided.commands[80] == pytest.approx(20_000 * 22 / 33, abs=1)
    assert decided.commands[81] == pytest.approx(20_000 * 11 / 33, abs=1)


def test_more_than_the_chargers_take_is_clamped_or_refused() -> None:
    clamped = planned(plan_direct(EV, 50_000.0, [charger(80), charger(81, upper_w=11_000.0)]))
    assert clamped.commands == {80: 22_000.0, 81: 11_000.0}
    assert clamped.excess_w == 17_000.0
    refused = plan_direct(EV, 50_000.0, [charger(80)], adjust_power=False)
    assert isinstance(refused, Refusal)
    assert refused.bounds is not None
    assert refused.bounds.inclusion == Range(0.0, 22_000.0)
    # a charger cannot give power back
    assert planned(plan_direct(EV, -5_000.0, [charger(80)])).commands == {80: 0.0}


def test_a_minimum_charging_power_gets_the_rest_in_one_piece() -> None:
    minimum = (Range(4_140.0, 22_000.0),)
    two = [charger(80, bounds=minimum), charger(81, bounds=minimum)]
    decided = planned(plan_direct(EV, 6_000.0, two))
    # 3 kW each would be below the minimum: one charges 6 kW, the other rests
    assert sorted(decided.commands.values()) == [0.0, 6_000.0]
    below = plan_direct(EV, 2_000.0, two)
    assert isinstance(below, Refusal)
    assert "gap around 0 W" in below.reason


def test_a_withdraw_tells_every_charger_0_w() -> None:
    decided = planned(plan_direct(EV, 0.0, [charger(80), charger(81)], withdraw=True))
    assert decided.commands == {80: 0.0, 81: 0.0}


def test_a_broken_charger_is_counted_at_its_power_and_not_commanded() -> None:
    broken = charger(81, availability=Availability.BROKEN, measured_power_w=7_000.0)
    decided = planned(plan_direct(EV, 15_000.0, [charger(80), broken]))
    assert decided.commands == {80: 8_000.0}
    assert decided.counted_w == {81: 7_000.0}
    assert "broken" in decided.skipped[81]
    refused = charger(81, refused=True)
    assert planned(plan_direct(EV, 15_000.0, [charger(80), refused])).counted_w == {81: 0.0}
    assert isinstance(plan_direct(EV, 5_000.0, [broken]), Refusal)


def test_unknown_bounds_fall_back_to_the_rating_or_0_w() -> None:
    rated = planned(plan_direct(EV, 30_000.0, [charger(80, bounds=None)]))
    assert rated.commands == {80: 22_000.0}
    unknown = planned(
        plan_direct(EV, 10_000.0, [charger(80), charger(81, bounds=None, rated_w=None)])
    )
    assert unknown.commands == {80: 10_000.0, 81: 0.0}
    assert "no bounds" in unknown.skipped[81]


# ---------------------------------------------------------------- PV inverters


def test_a_pv_limit_is_shared_in_proportion_to_rated_power() -> None:
    decided = planned(plan_direct(PV, -200_000.0, [pv(50, 300_000.0), pv(51, 100_000.0)]))
    assert decided.commands == {50: -150_000.0, 51: -50_000.0}
    assert decided.excess_w == 0.0


def test_a_pv_limit_rounds_towards_less_production() -> None:
    decided = planned(plan_direct(PV, -100_005.0, [pv(50, 350_000.0)]))
    assert decided.commands == {50: -100_000.0}
    assert decided.excess_w == pytest.approx(-5.0)


def test_a_limit_beyond_the_peak_is_full_production_and_0_w_is_none() -> None:
    full = planned(plan_direct(PV, -500_000.0, [pv(50, 350_000.0)]))
    assert full.commands == {50: -350_000.0}
    assert full.excess_w == -150_000.0
    nothing = planned(plan_direct(PV, 0.0, [pv(50, 350_000.0)]))
    assert nothing.commands == {50: 0.0}
    # PV cannot consume: a positive power is clamped to producing nothing
    assert planned(plan_direct(PV, 5_000.0, [pv(50, 350_000.0)])).commands == {50: 0.0}


def test_a_withdraw_lifts_each_pv_inverter_to_its_full_production() -> None:
    units = [pv(50, 350_000.0), pv(51, 100_005.0), pv(52, 80_000.0, bounds=None, rated_w=None)]
    decided = planned(plan_direct(PV, 0.0, units, withdraw=True))
    assert decided.commands == {50: -350_000.0, 51: -100_000.0}
    assert "no bounds" in decided.skipped[52]


def test_a_broken_pv_inverter_counts_against_the_limit() -> None:
    broken = pv(51, 100_000.0, availability=Availability.BROKEN, measured_power_w=-80_000.0)
    decided = planned(plan_direct(PV, -200_000.0, [pv(50, 300_000.0), broken]))
    assert decided.commands == {50: -120_000.0}
    over = planned(plan_direct(PV, -50_000.0, [pv(50, 300_000.0), broken]))
    assert over.commands == {50: 0.0}  # the broken one alone is over the limit


def test_an_uncertain_pv_inverter_is_still_limited() -> None:
    stale = pv(51, 100_000.0, availability=Availability.UNCERTAIN)
    decided = planned(plan_direct(PV, -200_000.0, [pv(50, 300_000.0), stale]))
    assert decided.commands == {50: -150_000.0, 51: -50_000.0}


def test_a_non_finite_target_is_refused() -> None:
    assert isinstance(plan_direct(PV, math.nan, [pv(50, 1_000.0)]), Refusal)


@pytest.mark.parametrize(
    ("power_w", "bounds", "resolution_w", "expected"),
    [
        (1_234.0, (Range(0, 22_000),), 100.0, 1_200.0),
        (-1_234.0, (Range(-5_000, 0),), 100.0, -1_200.0),
        (30_000.0, (Range(0, 22_050),), 100.0, 22_000.0),
        (4_000.0, (Range(4_140, 22_000),), 690.0, 0.0),  # no whole step inside
        (5_000.0, (Range(4_140, 22_000),), 690.0, 4_830.0),
        (5_000.0, (Range(-3_000, -1_000), Range(1_000, 3_000)), 1.0, 3_000.0),
        (-500.0, (Range(-3_000, -1_000), Range(1_000, 3_000)), 1.0, 0.0),
        (1_000.0, (), 1.0, 0.0),
    ],
)
def test_snap_finds_the_largest_whole_step_inside_the_bounds(
    power_w: float, bounds: tuple[Range, ...], resolution_w: float, expected: float
) -> None:
    assert snap(power_w, bounds, resolution_w) == pytest.approx(expected)


@pytest.mark.parametrize("bound_w", [13_597.9, 0.7, 22_000.3])
def test_a_fractional_resolution_never_puts_a_command_a_hair_beyond_its_bound(
    bound_w: float,
) -> None:
    # 13 597.9 / 0.1 rounds up to a whole 135 979 steps, 13 597.900000000001 W: refused
    charge = snap(30_000.0, (Range(0.0, bound_w),), 0.1)
    produce = snap(-30_000.0, (Range(-bound_w, 0.0),), 0.1)
    assert 0.0 < charge <= bound_w
    assert -bound_w <= produce < 0.0


# ---------------------------------------------------------------- properties

resolutions = st.sampled_from([1.0, 10.0, 100.0, 690.0])
peaks = st.floats(min_value=1_000.0, max_value=500_000.0)


@st.composite
def pv_sets(draw: st.DrawFn) -> list[DirectUnit]:
    count = draw(st.integers(min_value=1, max_value=5))
    return [pv(50 + i, draw(peaks), resolution_w=draw(resolutions)) for i in range(count)]


@st.composite
def charger_sets(draw: st.DrawFn) -> list[DirectUnit]:
    count = draw(st.integers(min_value=1, max_value=5))
    units = []
    for i in range(count):
        upper = draw(st.sampled_from([0.0, 3_700.0, 11_000.0, 22_000.0]))
        minimum = draw(st.sampled_from([0.0, 1_380.0, 4_140.0]))
        bounds = (Range(min(minimum, upper), upper),)
        units.append(charger(80 + i, bounds=bounds, resolution_w=draw(resolutions)))
    return units


def _steps(value: float, resolution_w: float) -> float:
    return abs(value) / resolution_w - round(abs(value) / resolution_w)


@settings(max_examples=examples(1_000), deadline=None)
@given(pv_sets(), st.floats(min_value=-2_000_000.0, max_value=0.0))
@example([pv(50, 1000.9999999999418, resolution_w=1.0)], -1001.0)  # a step a hair beyond
def test_a_pv_limit_is_never_exceeded_nor_outside_bounds_and_shared_by_rating(
    units: list[DirectUnit], limit_w: float
) -> None:
    decided = planned(plan_direct(PV, limit_w, units))
    by_id = {u.component_id: u for u in units}
    for cid, command in decided.commands.items():
        unit = by_id[cid]
        assert unit.bounds is not None
        assert allows(unit.bounds, command)
        assert _steps(command, unit.resolution_w) == pytest.approx(0.0, abs=1e-6)
    total = math.fsum(decided.commands.values())
    assert total >= limit_w - 1e-6  # never more production than the limit
    assert total <= 0.0
    rated = math.fsum(u.rated_w or 0.0 for u in units)
    rests = math.fsum(u.resolution_w for u in units)
    if -limit_w <= rated:
        # within the peaks: each its rated share, up to the rounding rests
        for cid, command in decided.commands.items():
            share = limit_w * (by_id[cid].rated_w or 0.0) / rated
            assert command == pytest.approx(share, abs=rests + 1e-6)
    else:
        assert decided.commands == {
            u.component_id: snap(-(u.rated_w or 0.0), u.bounds or (), u.resolution_w) for u in units
        }


@settings(max_examples=examples(1_000), deadline=None)
@given(charger_sets(), st.floats(min_value=0.0, max_value=150_000.0))
def test_chargers_never_take_more_than_asked_nor_outside_bounds(
    units: list[DirectUnit], target_w: float
) -> None:
    decided = plan_direct(EV, target_w, units)
    if isinstance(decided, Refusal):
        # only a target between 0 W and the smallest minimum of the chargers
        assert decided.bounds is not None
        assert 0.0 < target_w < decided.bounds.exclusion.upper
        return
    by_id = {u.component_id: u for u in units}
    for cid, command in decided.commands.items():
        unit = by_id[cid]
        assert unit.bounds is not None
        assert allows(unit.bounds, command)
        assert _steps(command, unit.resolution_w) == pytest.approx(0.0, abs=1e-6)
    total = math.fsum(decided.commands.values())
    assert 0.0 <= total <= target_w + 1e-6
    assert decided.excess_w == pytest.approx(target_w - total)


@settings(max_examples=examples(500), deadline=None)
@given(pv_sets())
def test_a_pv_withdraw_commands_each_to_its_full_production(units: list[DirectUnit]) -> None:
    decided = planned(plan_direct(PV, 0.0, units, withdraw=True))
    for unit in units:
        peak = unit.rated_w or 0.0
        assert decided.commands[unit.component_id] == pytest.approx(
            -math.floor(peak / unit.resolution_w) * unit.resolution_w
        )


def test_snap_keeps_a_whole_step_the_quotient_rounds_below() -> None:
    # 9 421.64 W at 0.01 W: the quotient is 942 163.99…, but 942 164 steps fit exactly
    assert snap(9_421.64, (Range(0.0, 9_421.64),), 0.01) == 942_164 * 0.01
