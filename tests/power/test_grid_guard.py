import math

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from edge_controller.power.bounds import UNBOUNDED, Range
from edge_controller.power.grid_guard import (
    GridLimits,
    GuardReason,
    guard_targets,
    guard_total,
    predicted_grid_power,
)

KW = 1000.0
TOL = 1e-6  # W; the guard's arithmetic is exact up to rounding

powers = st.floats(-2e6, 2e6, allow_nan=False)
limits_w = st.one_of(st.none(), st.floats(0, 1e6, allow_nan=False))
bounds_st = st.builds(
    Range, st.floats(-1e6, 0, allow_nan=False), st.floats(0, 1e6, allow_nan=False)
)


def within(value: float, limits: GridLimits, tol: float = TOL) -> bool:
    allowed = limits.grid_range
    return allowed.lower - tol <= value <= allowed.upper + tol


def clamp(value: float, bounds: Range) -> float:
    return min(max(value, bounds.lower), bounds.upper)


# ---------------------------------------------------------------- examples


def test_a_dispatch_that_would_break_the_export_limit_keeps_the_rest() -> None:
    limits = GridLimits(max_import_w=800 * KW, max_export_w=500 * KW)
    decision = guard_total(limits, -300 * KW, 0.0, -400 * KW)
    assert decision.target_w == -200 * KW
    assert decision.clamped
    assert decision.reason is GuardReason.EXPORT_LIMIT
    assert decision.predicted_grid_w == -500 * KW


def test_charging_into_a_load_peak_is_reduced_to_the_import_limit() -> None:
    limits = GridLimits(max_import_w=400 * KW)
    # 350 kW import of which the batteries already charge 100 kW: the rest is 250 kW
    decision = guard_total(limits, 350 * KW, 100 * KW, 300 * KW)
    assert (decision.target_w, decision.reason) == (150 * KW, GuardReason.IMPORT_LIMIT)
    assert decision.predicted_grid_w == 400 * KW


def test_within_the_limits_nothing_changes_even_if_the_grid_is_over_now() -> None:
    limits = GridLimits(max_import_w=400 * KW)
    # over now because the batteries charge; the new target fixes it
    decision = guard_total(limits, 450 * KW, 200 * KW, 100 * KW)
    assert (decision.target_w, decision.clamped) == (100 * KW, False)
    assert decision.reason is GuardReason.WITHIN_LIMITS
    assert decision.predicted_grid_w == 350 * KW


def test_a_charge_becomes_a_discharge_only_when_the_rest_of_the_site_is_over() -> None:
    limits = GridLimits(max_import_w=400 * KW)
    decision = guard_total(limits, 500 * KW, 0.0, 50 * KW)
    assert (decision.target_w, decision.reason) == (-100 * KW, GuardReason.IMPORT_LIMIT)


def test_a_site_over_its_limit_beyond_reach_gets_the_full_battery_power() -> None:
    limits = GridLimits(max_import_w=400 * KW, max_export_w=100 * KW)
    bounds = Range(-250 * KW, 250 * KW)
    over_import = guard_total(limits, 900 * KW, 0.0, 100 * KW, bounds)
    assert over_import.target_w == -250 * KW
    assert over_import.reason is GuardReason.SITE_OVER_IMPORT_LIMIT
    assert over_import.predicted_grid_w == 650 * KW
    over_export = guard_total(limits, -600 * KW, 0.0, -100 * KW, bounds)
    assert over_export.target_w == 250 * KW
    assert over_export.reason is GuardReason.SITE_OVER_EXPORT_LIMIT
    # already at the helping bound: not clamped, but the reason says the site is over
    at_bound = guard_total(limits, 900 * KW, 0.0, -250 * KW, bounds)
    assert (at_bound.clamped, at_bound.reason) == (False, GuardReason.SITE_OVER_IMPORT_LIMIT)


@pytest.mark.parametrize("grid", [None, math.nan, math.inf])
def test_missing_grid_data_gives_the_safe_power(grid: float | None) -> None:
    decision = guard_total(GridLimits(max_import_w=1.0), grid, 0.0, -50 * KW)
    assert (decision.target_w, decision.clamped) == (0.0, True)
    assert decision.reason is GuardReason.GRID_DATA_MISSING
    assert math.isnan(decision.predicted_grid_w)
    nan_battery = guard_total(GridLimits(safe_power_w=-5 * KW), 0.0, math.nan, -5 * KW)
    assert (nan_battery.target_w, nan_battery.clamped) == (-5 * KW, False)
    assert nan_battery.reason is GuardReason.GRID_DATA_MISSING
    several = guard_targets(GridLimits(), grid, 0.0, {"a": 10.0, "b": 0.0})
    assert several.targets_w == {"a": 0.0, "b": 0.0}
    assert several.changed == {"a"}
    assert several.reason is GuardReason.GRID_DATA_MISSING


def test_without_grid_data_a_set_may_keep_a_safe_power_of_its_own() -> None:
    # a battery set goes to the safe power, an EV charge stops, a PV limit stays
    targets = {"batteries": -40 * KW, "ev": 11 * KW, "pv": -60 * KW}
    guarded = guard_targets(
        GridLimits(max_export_w=50 * KW, safe_power_w=-1 * KW),
        None,
        0.0,
        targets,
        safe_w={"ev": 0.0, "pv": -60 * KW},
    )
    assert guarded.targets_w == {"batteries": -1 * KW, "ev": 0.0, "pv": -60 * KW}
    assert guarded.changed == {"batteries", "ev"}


def test_a_pv_limit_within_its_production_counts_as_the_limit() -> None:
    # PV produces 200 kW (measured, part of the grid's -150 kW) and may be limited to
    # 120 kW: its bounds [measured, 0] make the guard predict the curtailment
    limits = GridLimits(max_export_w=100 * KW)
    pv_bounds = Range(-200 * KW, 0.0)
    tighter = guard_targets(limits, -150 * KW, -200 * KW, {"pv": -120 * KW}, {"pv": pv_bounds})
    assert not tighter.clamped
    assert tighter.predicted_grid_w == pytest.approx(-70 * KW)
    # a looser limit than what it makes now is predicted to change nothing: within limits
    looser = guard_targets(limits, -50 * KW, -200 * KW, {"pv": -350 * KW}, {"pv": pv_bounds})
    assert (looser.clamped, looser.targets_w) == (False, {"pv": -350 * KW})
    # too much export: the PV limit is what the guard tightens
    over = guard_targets(limits, -150 * KW, -200 * KW, {"pv": -200 * KW}, {"pv": pv_bounds})
    assert over.reason is GuardReason.EXPORT_LIMIT
    assert over.targets_w["pv"] == pytest.approx(-150 * KW)


def test_no_limits_mean_no_clamp() -> None:
    decision = guard_total(GridLimits(), 1e9, 0.0, 1e9)
    assert (decision.target_w, decision.clamped) == (1e9, False)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"max_import_w": -1.0}, "max_import_w"),
        ({"max_export_w": math.nan}, "max_export_w"),
        ({"max_export_w": math.inf}, "max_export_w"),
        ({"safe_power_w": math.nan}, "safe_power_w"),
    ],
)
def test_bad_limits_are_refused(kwargs: dict[str, float], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        GridLimits(**kwargs)


def test_a_nan_or_infinite_target_is_refused() -> None:
    with pytest.raises(ValueError, match="finite"):
        guard_total(GridLimits(), 0.0, 0.0, math.nan)
    with pytest.raises(ValueError, match="finite"):
        guard_total(GridLimits(), 0.0, 0.0, -math.inf)
    with pytest.raises(ValueError, match="'b'"):
        guard_targets(GridLimits(), 0.0, 0.0, {"a": 0.0, "b": math.nan})


def test_predicted_grid_power_replaces_the_measured_battery_power() -> None:
    assert predicted_grid_power(100.0, 30.0, -50.0) == 20.0


# ---------------------------------------------------------------- several sets


def test_the_clamp_is_spread_over_the_sets_pushing_towards_the_limit() -> None:
    limits = GridLimits(max_import_w=400 * KW)
    result = guard_targets(limits, 200 * KW, 0.0, {"a": 300 * KW, "b": 100 * KW, "c": -50 * KW})
    # rest 200 kW: the batteries may charge 200 kW net; 350 kW asked → charges lose 150 kW
    assert result.reason is GuardReason.IMPORT_LIMIT
    assert result.targets_w["a"] == pytest.approx(187.5 * KW)
    assert result.targets_w["b"] == pytest.approx(62.5 * KW)
    assert result.targets_w["c"] == -50 * KW
    assert result.changed == {"a", "b"}
    assert result.predicted_grid_w == pytest.approx(400 * KW)


def test_past_zero_every_set_helps_by_its_room() -> None:
    limits = GridLimits(max_import_w=400 * KW)
    bounds = {"a": Range(-100 * KW, 100 * KW), "b": Range(-300 * KW, 300 * KW)}
    result = guard_targets(limits, 600 * KW, 0.0, {"a": 50 * KW, "b": 0.0}, bounds)
    # 200 kW of discharge needed: a back to 0, then 200 kW split by room 100:300
    assert result.targets_w["a"] == pytest.approx(-50 * KW)
    assert result.targets_w["b"] == pytest.approx(-150 * KW)
    assert result.predicted_grid_w == pytest.approx(400 * KW)


def test_sets_without_bounds_share_the_rest_equally() -> None:
    limits = GridLimits(max_export_w=0.0)
    result = guard_targets(
        limits, -100 * KW, 0.0, {"a": 0.0, "b": 0.0, "c": 0.0}, {"c": Range(-1, 1)}
    )
    assert result.targets_w == {"a": 50 * KW, "b": 50 * KW, "c": 0.0}


def test_no_sets_nothing_to_do() -> None:
    no_targets: dict[str, float] = {}
    result = guard_targets(GridLimits(max_import_w=0.0), 100.0, 0.0, no_targets)
    assert (dict(result.targets_w), result.clamped) == ({}, False)


# ---------------------------------------------------------------- properties


@given(limits_w, limits_w, powers, powers, powers, bounds_st)
def test_the_predicted_grid_power_is_within_the_limits_whenever_the_bounds_allow(
    max_import: float | None,
    max_export: float | None,
    grid: float,
    battery: float,
    target: float,
    bounds: Range,
) -> None:
    limits = GridLimits(max_import, max_export)
    decision = guard_total(limits, grid, battery, target, bounds)
    rest = grid - battery
    realised = rest + clamp(decision.target_w, bounds)
    assert decision.predicted_grid_w == pytest.approx(realised)
    reachable = limits.grid_range
    feasible = max(reachable.lower - rest, bounds.lower) <= min(
        reachable.upper - rest, bounds.upper
    )
    if feasible:
        assert within(realised, limits, tol=1e-6 * max(1.0, abs(rest)))
        assert decision.reason not in (
            GuardReason.SITE_OVER_IMPORT_LIMIT,
            GuardReason.SITE_OVER_EXPORT_LIMIT,
        )
    else:
        # the site breaks a limit whatever: the batteries help with all they have
        assert decision.target_w in (bounds.lower, bounds.upper)
        helping = bounds.lower if rest + bounds.lower > reachable.upper else bounds.upper
        assert decision.target_w == helping


@given(limits_w, limits_w, powers, powers, powers, bounds_st)
def test_no_clamp_within_the_limits(
    max_import: float | None,
    max_export: float | None,
    grid: float,
    battery: float,
    target: float,
    bounds: Range,
) -> None:
    limits = GridLimits(max_import, max_export)
    assume(within(grid - battery + clamp(target, bounds), limits, tol=0.0))
    decision = guard_total(limits, grid, battery, target, bounds)
    assert (decision.target_w, decision.clamped) == (target, False)
    assert decision.reason is GuardReason.WITHIN_LIMITS


@given(limits_w, limits_w, powers, powers, powers, bounds_st)
def test_the_clamp_moves_no_further_than_needed(
    max_import: float | None,
    max_export: float | None,
    grid: float,
    battery: float,
    target: float,
    bounds: Range,
) -> None:
    limits = GridLimits(max_import, max_export)
    decision = guard_total(limits, grid, battery, target, bounds)
    rest = grid - battery
    effective = clamp(target, bounds)
    realised = clamp(decision.target_w, bounds)
    scale = 1e-9 * max(1.0, abs(grid), abs(battery), abs(target))
    # the realised power lies between what was asked and the allowed side
    if decision.reason is GuardReason.IMPORT_LIMIT:
        assert realised <= effective
        assert rest + realised == pytest.approx(limits.grid_range.upper, abs=scale)
    if decision.reason is GuardReason.EXPORT_LIMIT:
        assert realised >= effective
        assert rest + realised == pytest.approx(limits.grid_range.lower, abs=scale)
    # the sign changes only when 0 W itself breaks the limit
    if decision.target_w * effective < 0:
        assert not within(rest, limits, tol=0.0)


targets_st = st.dictionaries(
    st.sampled_from("abcdef"), st.floats(-5e5, 5e5, allow_nan=False), min_size=1
)


@given(limits_w, limits_w, powers, targets_st, st.data())
def test_several_sets_sum_to_the_guarded_total_within_their_bounds(
    max_import: float | None,
    max_export: float | None,
    grid: float,
    targets: dict[str, float],
    data: st.DataObject,
) -> None:
    limits = GridLimits(max_import, max_export)
    bounds = {k: data.draw(st.one_of(st.just(UNBOUNDED), bounds_st)) for k in targets}
    battery = data.draw(powers)
    result = guard_targets(limits, grid, battery, targets, bounds)
    effective = {k: clamp(t, bounds[k]) for k, t in targets.items()}
    pool = Range(sum(b.lower for b in bounds.values()), sum(b.upper for b in bounds.values()))
    total = guard_total(limits, grid, battery, sum(effective.values()), pool)
    assert result.reason is total.reason
    assert set(result.targets_w) == set(targets)
    if not result.clamped:
        assert result.targets_w == targets
        return
    assert result.changed == {k for k in targets if result.targets_w[k] != targets[k]}
    scale = 1e-6 * max(1.0, abs(grid), abs(battery), *map(abs, targets.values()))
    assert sum(result.targets_w.values()) == pytest.approx(total.target_w, abs=scale)
    for key, target in result.targets_w.items():
        assert bounds[key].lower - scale <= target <= bounds[key].upper + scale
    # a set changes sign only if every set pushing the wrong way is already at 0 W
    flipped = [k for k, t in result.targets_w.items() if t * effective[k] < 0]
    if flipped:
        direction = result.targets_w[flipped[0]]
        assert all(
            v * direction >= 0 or v == 0 for v in result.targets_w.values() if abs(v) > scale
        )


@given(limits_w, limits_w, powers, targets_st)
def test_the_result_does_not_depend_on_the_order_of_the_sets(
    max_import: float | None, max_export: float | None, grid: float, targets: dict[str, float]
) -> None:
    limits = GridLimits(max_import, max_export)
    forward = guard_targets(limits, grid, 0.0, targets)
    backward = guard_targets(limits, grid, 0.0, dict(reversed(list(targets.items()))))
    assert backward.targets_w == forward.targets_w  # sums are exactly rounded (fsum)
