import math
import random
from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge_controller.power.bounds import UNBOUNDED, Range
from edge_controller.power.priority import Proposal, Resolution, nesting_order, resolve
from tests.conftest import NOON

KW = 1000.0
SYSTEM = Range(-500 * KW, 500 * KW)


def at(seconds: float) -> timedelta:
    return timedelta(seconds=seconds)


# ---------------------------------------------------------------- examples


def test_the_module_docstring_example() -> None:
    peak = Proposal("peak_shaving", 10, NOON, bounds=Range(-500 * KW, 40 * KW))
    market = Proposal("market", 5, NOON, power_w=-100 * KW, bounds=Range(-300 * KW, 300 * KW))
    dispatch = Proposal("dispatch_7", 1, NOON, power_w=200 * KW)
    result = resolve([dispatch, market, peak], SYSTEM)
    assert result.order == ("peak_shaving", "market", "dispatch_7")
    assert result.allowed == {
        "peak_shaving": SYSTEM,
        "market": Range(-500 * KW, 40 * KW),
        "dispatch_7": Range(-300 * KW, 40 * KW),
    }
    assert (result.target_w, result.driven_by) == (40 * KW, "dispatch_7")
    assert result.overruled == frozenset()

    without_dispatch = resolve([market, peak], SYSTEM)
    assert (without_dispatch.target_w, without_dispatch.driven_by) == (-100 * KW, "market")

    holding = Proposal("market", 5, NOON, power_w=-100 * KW, hold=True)
    held = resolve([dispatch, holding, peak], SYSTEM)
    assert held.target_w == -100 * KW
    assert held.allowed["dispatch_7"] == Range(-100 * KW, -100 * KW)


def test_a_single_proposal_gets_its_power_within_the_system_bounds() -> None:
    assert resolve([Proposal("a", 0, NOON, power_w=-100 * KW)], SYSTEM).target_w == -100 * KW
    assert resolve([Proposal("a", 0, NOON, power_w=-900 * KW)], SYSTEM).target_w == -500 * KW
    assert resolve([Proposal("a", 0, NOON, power_w=-900 * KW)]).target_w == -900 * KW


def test_no_proposals_no_target() -> None:
    assert resolve([], SYSTEM) == Resolution(None, None, {}, frozenset(), ())


def test_bounds_without_any_power_give_the_value_nearest_zero() -> None:
    limiter = Proposal("peak_shaving", 10, NOON, bounds=Range(-500 * KW, -60 * KW))
    result = resolve([limiter], SYSTEM)
    assert (result.target_w, result.driven_by) == (-60 * KW, None)
    assert resolve([Proposal("idle", 1, NOON, bounds=Range(-1, 1))], SYSTEM).target_w == 0.0


def test_a_higher_priority_power_is_used_only_when_nobody_below_asks() -> None:
    high = Proposal("high", 10, NOON, power_w=-50 * KW, bounds=Range(-500 * KW, 0.0))
    low = Proposal("low", 1, NOON, power_w=-200 * KW)
    assert resolve([high, low], SYSTEM).target_w == -200 * KW
    charging = Proposal("low", 1, NOON, power_w=100 * KW)
    assert resolve([high, charging], SYSTEM).target_w == 0.0
    assert resolve([high], SYSTEM).target_w == -50 * KW


def test_at_equal_priority_the_newest_ranks_first_then_the_higher_dispatch_then_the_name() -> None:
    older = Proposal("b", 3, NOON, power_w=-10 * KW, hold=True)
    newer = Proposal("c", 3, NOON + at(1), power_w=20 * KW, hold=True)
    result = resolve([older, newer], SYSTEM)
    assert (result.target_w, result.driven_by, result.overruled) == (20 * KW, "c", frozenset({"b"}))
    same_time = Proposal("a", 3, NOON + at(1), power_w=30 * KW, hold=True)
    assert [p.name for p in nesting_order([same_time, older, newer])] == ["c", "a", "b"]
    # dispatches created at the same moment: the higher id is the newer, whatever the name
    first = Proposal("use_case#9", 3, NOON, power_w=-10 * KW, hold=True, origin=9)
    second = Proposal("use_case#10", 3, NOON, power_w=5 * KW, hold=True, origin=10)
    assert resolve([first, second], SYSTEM).driven_by == "use_case#10"


def test_a_held_power_is_credited_to_its_holder_not_to_a_clamped_one_inside() -> None:
    # A dispatch holds 10 kW over a market proposal at -20 kW: the target is the
    # dispatch's, and so is the result.
    dispatch = Proposal("dispatch_7", 5, NOON, power_w=10 * KW, hold=True)
    market = Proposal("market", 1, NOON, power_w=-20 * KW, hold=True)
    result = resolve([market, dispatch], SYSTEM)
    assert (result.target_w, result.driven_by) == (10 * KW, "dispatch_7")
    # bounds cut a power without holding one: the cut power is still the inner one's
    guard = Proposal("peak", 10, NOON, bounds=Range(-500 * KW, 10 * KW))
    charge = Proposal("dispatch_7", 1, NOON, power_w=30 * KW, hold=True)
    assert (resolve([guard, charge], SYSTEM).target_w, resolve([guard, charge]).driven_by) == (
        10 * KW,
        "dispatch_7",
    )


def test_conflicting_bounds_are_overruled_and_get_as_close_as_allowed() -> None:
    high = Proposal("high", 10, NOON, bounds=Range(0.0, 100 * KW))
    conflicting = Proposal("mid", 5, NOON, bounds=Range(200 * KW, 300 * KW))
    low = Proposal("low", 1, NOON, power_w=-50 * KW)
    result = resolve([high, conflicting, low], SYSTEM)
    assert result.overruled == {"mid"}
    assert result.allowed["low"] == Range(100 * KW, 100 * KW)
    assert result.target_w == 100 * KW


def test_a_lower_priority_limiter_still_narrows_the_target() -> None:
    wants = Proposal("dispatch", 5, NOON, power_w=300 * KW)
    guard = Proposal("tidy", 1, NOON, bounds=Range(-100 * KW, 100 * KW))
    assert resolve([wants, guard], SYSTEM).target_w == 100 * KW


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": ""}, "name"),
        ({"power_w": math.nan}, "finite"),
        ({"power_w": math.inf}, "finite"),
        ({"hold": True}, "hold"),
        ({"hold": True, "power_w": 1.0, "bounds": Range(0, 2)}, "hold"),
        ({"power_w": 5.0, "bounds": Range(0, 2)}, "outside"),
    ],
)
def test_self_contradicting_proposals_are_refused(kwargs: dict[str, object], message: str) -> None:
    fields: dict[str, object] = {"name": "x", "priority": 0, "submitted_at": NOON}
    fields.update(kwargs)
    with pytest.raises(ValueError, match=message):
        Proposal(**fields)  # type: ignore[arg-type]


def test_one_proposal_per_name() -> None:
    with pytest.raises(ValueError, match="repeated"):
        resolve([Proposal("a", 1, NOON), Proposal("a", 2, NOON)])


# ---------------------------------------------------------------- properties

watts = st.integers(-600, 600).map(lambda kw: kw * KW)


@st.composite
def ranges(draw: st.DrawFn) -> Range:
    a, b = draw(watts), draw(watts)
    return Range(min(a, b), max(a, b))


@st.composite
def proposal_lists(draw: st.DrawFn) -> list[Proposal]:
    names = draw(st.lists(st.sampled_from("abcdefgh"), min_size=1, max_size=6, unique=True))
    proposals = []
    for name in names:
        priority = draw(st.integers(0, 3))
        submitted = NOON + at(draw(st.integers(0, 2)))
        kind = draw(st.sampled_from(["power", "bounds", "both", "hold"]))
        bounds = draw(ranges()) if kind in ("bounds", "both") else None
        power = None
        if kind in ("power", "hold"):
            power = draw(watts)
        elif kind == "both":
            assert bounds is not None
            power = draw(st.integers(int(bounds.lower), int(bounds.upper)).map(float))
        origin = draw(st.none() | st.integers(0, 2))
        proposals.append(
            Proposal(name, priority, submitted, power, bounds, kind == "hold", origin=origin)
        )
    return proposals


system_st = st.one_of(st.just(UNBOUNDED), ranges())


@given(proposal_lists(), system_st)
def test_no_lower_priority_pushes_the_target_outside_a_higher_ones_range(
    proposals: list[Proposal], system: Range
) -> None:
    result = resolve(proposals, system)
    assert result.target_w is not None
    assert system.contains(result.target_w)
    for proposal in proposals:
        assert result.allowed[proposal.name].contains(result.target_w)
        own = proposal.constraint
        if own is not None and proposal.name not in result.overruled:
            assert own.contains(result.target_w)


@given(proposal_lists(), system_st, st.randoms(use_true_random=False))
def test_the_result_does_not_depend_on_the_input_order(
    proposals: list[Proposal], system: Range, rng: random.Random
) -> None:
    shuffled = list(proposals)
    rng.shuffle(shuffled)
    assert resolve(shuffled, system) == resolve(proposals, system)


@given(proposal_lists(), system_st)
def test_higher_priorities_do_not_see_lower_ones(proposals: list[Proposal], system: Range) -> None:
    full = resolve(proposals, system)
    lowest = min(p.priority for p in proposals)
    above = [p for p in proposals if p.priority > lowest]
    partial = resolve(above, system)
    for name, allowed in partial.allowed.items():
        assert full.allowed[name] == allowed
    assert partial.overruled <= full.overruled


@given(proposal_lists(), system_st)
def test_the_outermost_hold_or_else_the_innermost_power_drives(
    proposals: list[Proposal], system: Range
) -> None:
    result = resolve(proposals, system)
    by_name = {p.name: p for p in proposals}
    with_power = [name for name in result.order if by_name[name].power_w is not None]
    holders = [n for n in result.order if by_name[n].hold and n not in result.overruled]
    if holders:  # the outermost honoured hold is credited: the target is its power
        assert result.driven_by == holders[0]
        assert result.target_w == by_name[holders[0]].power_w
        return
    assert result.driven_by == (with_power[-1] if with_power else None)
    if result.driven_by is not None:
        driver = next(p for p in proposals if p.name == result.driven_by)
        assert driver.power_w is not None
        # unchanged whenever everything before and after it allows it
        if all(
            result.allowed[p.name].contains(driver.power_w)
            and (p.constraint is None or p.constraint.contains(driver.power_w))
            for p in proposals
        ):
            assert result.target_w == driver.power_w


@given(proposal_lists(), system_st)
def test_a_held_power_is_final_unless_overruled(proposals: list[Proposal], system: Range) -> None:
    result = resolve(proposals, system)
    for proposal in proposals:
        if proposal.hold and proposal.name not in result.overruled:
            assert result.target_w == proposal.power_w
