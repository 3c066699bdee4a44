"""Overlapping battery sets: who drives which batteries (`power.overlaps`)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from edge_controller.power.bounds import Range
from edge_controller.power.overlaps import settle_overlaps
from edge_controller.power.priority import Proposal

T0 = datetime(2026, 11, 23, 12, tzinfo=UTC)
SITE = frozenset({11, 21, 31, 41})
PAIR = frozenset({11, 21})
OTHER_PAIR = frozenset({31, 41})
KW = 1000.0


def guard(upper_w: float, *, power_w: float = 0.0, priority: int = 10) -> Proposal:
    """Peak shaving: a power (0 W when idle) and bounds 'charge no more than upper_w'."""
    return Proposal("peak", priority, T0, power_w, Range(-1e6, upper_w))


def dispatch(name: str, power_w: float, *, priority: int = 1, minutes: int = 0) -> Proposal:
    return Proposal(name, priority, T0 + timedelta(minutes=minutes), power_w, hold=True)


def drives(sets: dict[frozenset[int], list[Proposal]]) -> dict[frozenset[int], tuple[str, float]]:
    return {d.batteries: (d.driven_by, d.target_w) for d in settle_overlaps(sets).drives}


def test_disjoint_sets_each_drive_their_own_batteries() -> None:
    assert drives({PAIR: [dispatch("a", 50 * KW)], OTHER_PAIR: [dispatch("b", -20 * KW)]}) == {
        PAIR: ("a", 50 * KW),
        OTHER_PAIR: ("b", -20 * KW),
    }


def test_a_dispatch_on_part_of_a_guard_with_nothing_to_do_runs_within_its_bounds() -> None:
    settled = settle_overlaps({SITE: [guard(40 * KW)], PAIR: [dispatch("d", 200 * KW)]})
    assert {d.batteries: (d.driven_by, d.target_w) for d in settled.drives} == {
        PAIR: ("d", 40 * KW),  # cut to what makes no peak
        OTHER_PAIR: ("peak", 0.0),  # the guard's other batteries stay idle
    }
    assert settled.inside == {PAIR: SITE}
    assert settled.withheld == frozenset()
    # a discharge is not bounded by a charge limit
    assert drives({SITE: [guard(40 * KW)], PAIR: [dispatch("d", -300 * KW)]})[PAIR] == (
        "d",
        -300 * KW,
    )


def test_without_yielding_guards_the_inner_set_waits_and_the_guard_keeps_all() -> None:
    # what 0 W means for PV inverters and EV chargers: an action, so nobody yields
    settled = settle_overlaps(
        {SITE: [guard(40 * KW)], PAIR: [Proposal("d", 1, T0, 20 * KW, Range(0.0, 30 * KW))]},
        guards_yield=False,
    )
    assert {d.batteries: (d.driven_by, d.target_w) for d in settled.drives} == {SITE: ("peak", 0.0)}
    assert settled.withheld == {PAIR}
    assert settled.inside == {}


def test_a_recharging_guard_yields_too_and_its_other_batteries_stop_recharging() -> None:
    # Peak shaving recharging at +60 kW (a preference), charge bound 100 kW.
    recharging = guard(100 * KW, power_w=60 * KW)
    assert drives({SITE: [recharging], PAIR: [dispatch("d", 300 * KW)]}) == {
        PAIR: ("d", 100 * KW),
        OTHER_PAIR: ("peak", 0.0),  # else the total would be 160 kW: a new peak
    }


def test_a_guard_that_must_act_keeps_all_its_batteries_and_the_dispatch_waits() -> None:
    shaving = guard(-100 * KW, power_w=-100 * KW)  # a peak: discharge 100 kW
    settled = settle_overlaps({SITE: [shaving], PAIR: [dispatch("d", 200 * KW)]})
    assert {d.batteries: (d.driven_by, d.target_w) for d in settled.drives} == {
        SITE: ("peak", -100 * KW)
    }
    assert settled.withheld == {PAIR}


def test_a_higher_priority_hold_keeps_its_batteries_whatever_the_overlap() -> None:
    settled = settle_overlaps(
        {SITE: [dispatch("big", 100 * KW, priority=5)], PAIR: [dispatch("d", 50 * KW)]}
    )
    assert {d.batteries for d in settled.drives} == {SITE}
    assert settled.withheld == {PAIR}


def test_only_one_set_runs_inside_a_guard() -> None:
    # Two could each use the guard's whole 40 kW: the newer (ranked first) runs.
    settled = settle_overlaps(
        {
            SITE: [guard(40 * KW)],
            PAIR: [dispatch("older", 30 * KW)],
            OTHER_PAIR: [dispatch("newer", 30 * KW, minutes=1)],
        }
    )
    running = {d.batteries: d.driven_by for d in settled.drives}
    assert running == {OTHER_PAIR: "newer", PAIR: "peak"}
    assert settled.withheld == {PAIR}


def test_a_set_the_guard_leaves_nothing_to_do_waits() -> None:
    # The guard forbids any charge: the charge dispatch would be cut to 0 W.
    settled = settle_overlaps({SITE: [guard(0.0)], PAIR: [dispatch("d", 50 * KW)]})
    assert {d.batteries for d in settled.drives} == {SITE}
    assert settled.withheld == {PAIR}


def test_a_guard_overlapping_a_higher_set_without_containing_it_waits() -> None:
    outside = frozenset({41, 51})
    higher = Proposal("peak", 10, T0, 0.0, Range(-1e6, 40 * KW))
    settled = settle_overlaps({outside: [dispatch("d", 50 * KW, priority=20)], SITE: [higher]})
    assert {d.batteries: d.driven_by for d in settled.drives} == {outside: "d"}
    assert settled.withheld == {SITE}  # its bounds are about all four batteries


def test_a_held_set_overlapping_a_guard_without_being_inside_it_drives_the_rest() -> None:
    outside = frozenset({41, 51})
    settled = settle_overlaps({SITE: [guard(40 * KW)], outside: [dispatch("d", 50 * KW)]})
    assert drives({SITE: [guard(40 * KW)], outside: [dispatch("d", 50 * KW)]}) == {
        SITE: ("peak", 0.0),
        frozenset({51}): ("d", 50 * KW),  # 51 is no guard's
    }
    assert settled.reduced == {outside: frozenset({51})}
    assert settled.withheld == frozenset()


# ------------------------------------------------- dispatches of one priority: the newest


def test_the_newest_dispatch_drives_the_shared_batteries_and_the_older_keeps_the_rest() -> None:
    older = frozenset({11, 21, 31})
    newer = frozenset({21, 31, 41})
    sets = {older: [dispatch("x#1", -1 * KW)], newer: [dispatch("x#2", 2 * KW, minutes=5)]}
    settled = settle_overlaps(sets)
    assert drives(sets) == {newer: ("x#2", 2 * KW), frozenset({11}): ("x#1", -1 * KW)}
    assert settled.reduced == {older: frozenset({11})}
    # the newer ends: the older drives all of its batteries again
    assert drives({older: sets[older]}) == {older: ("x#1", -1 * KW)}


def test_a_fully_covered_older_dispatch_waits_until_the_newer_ends() -> None:
    older = dispatch("x#1", -1 * KW)
    sets = {frozenset({11}): [older], PAIR: [dispatch("x#2", 2 * KW, minutes=5)]}
    settled = settle_overlaps(sets)
    assert drives(sets) == {PAIR: ("x#2", 2 * KW)}
    assert settled.withheld == {frozenset({11})}


def test_on_the_same_batteries_the_newest_dispatch_holds_its_power() -> None:
    sets = {PAIR: [dispatch("x#1", -1 * KW), dispatch("x#2", 2 * KW, minutes=5)]}
    assert drives(sets) == {PAIR: ("x#2", 2 * KW)}


def test_dispatches_created_at_the_same_moment_go_to_the_higher_id() -> None:
    nine = Proposal("x#9", 1, T0, -1 * KW, hold=True, origin=9)
    ten = Proposal("x#10", 1, T0, 2 * KW, hold=True, origin=10)
    assert drives({PAIR: [nine, ten]}) == {PAIR: ("x#10", 2 * KW)}
    assert drives({SITE: [nine], PAIR: [ten]}) == {
        PAIR: ("x#10", 2 * KW),
        OTHER_PAIR: ("x#9", -1 * KW),
    }


@st.composite
def scenarios(draw: st.DrawFn) -> dict[frozenset[int], list[Proposal]]:
    batteries = [11, 21, 31, 41, 51]
    sets: dict[frozenset[int], list[Proposal]] = {}
    for index in range(draw(st.integers(1, 4))):
        members = frozenset(draw(st.sets(st.sampled_from(batteries), min_size=1)))
        priority = draw(st.integers(0, 3))
        when = T0 + timedelta(seconds=index)
        if draw(st.booleans()):
            upper = draw(st.floats(-1e5, 1e5, allow_nan=False))
            power = min(0.0, upper) if draw(st.booleans()) else upper
            proposal = Proposal(f"g{index}", priority, when, power, Range(-1e6, max(upper, power)))
        else:
            power = draw(st.floats(-1e5, 1e5, allow_nan=False).filter(bool))
            proposal = Proposal(f"d{index}", priority, when, power, hold=True)
        sets.setdefault(members, []).append(proposal)
    return sets


@given(scenarios())
def test_every_battery_is_driven_by_one_set_at_most(
    sets: dict[frozenset[int], list[Proposal]],
) -> None:
    settled = settle_overlaps(sets)
    seen: set[int] = set()
    for drive in settled.drives:
        assert not drive.batteries & seen
        seen |= drive.batteries
        assert drive.driven_by in {p.name for p in sets[drive.source]}
        assert drive.batteries <= drive.source


@given(scenarios())
def test_a_set_inside_a_guard_stays_within_every_bound_of_the_guard(
    sets: dict[frozenset[int], list[Proposal]],
) -> None:
    settled = settle_overlaps(sets)
    for batteries, guard_set in settled.inside.items():
        (inner,) = [d for d in settled.drives if d.batteries == batteries]
        for proposal in sets[guard_set]:
            assert proposal.bounds is not None
            assert proposal.bounds.contains(inner.target_w)
        rest = guard_set - batteries
        if rest:
            (idle,) = [d for d in settled.drives if d.batteries == rest]
            assert idle.target_w == 0.0


@given(scenarios(), st.randoms(use_true_random=False))
def test_the_settlement_does_not_depend_on_the_order_sets_arrive_in(
    sets: dict[frozenset[int], list[Proposal]], rng: random.Random
) -> None:
    items = list(sets.items())
    rng.shuffle(items)
    assert settle_overlaps(dict(items)) == settle_overlaps(sets)


def test_what_the_rest_of_the_guard_still_runs_is_taken_out_of_the_range() -> None:
    sets = {SITE: [guard(40 * KW)], PAIR: [dispatch("d", 200 * KW)]}

    def rest_at(watts: float) -> dict[frozenset[int], tuple[str, float]]:
        settled = settle_overlaps(sets, lambda batteries: watts)
        return {d.batteries: (d.driven_by, d.target_w) for d in settled.drives}

    # still recharging at +30 kW (ramping down, or an inverter that stopped answering)
    assert rest_at(30 * KW)[PAIR] == ("d", 10 * KW)
    # discharging does not widen the charge range: it is being told 0 W
    assert rest_at(-20 * KW)[PAIR] == ("d", 40 * KW)
    # at or above the whole range: the dispatch is held at 0 W, the rest is told 0 W
    assert rest_at(40 * KW) == {PAIR: ("d", 0.0), OTHER_PAIR: ("peak", 0.0)}


def test_a_rest_of_unknown_power_or_beyond_the_bounds_keeps_the_dispatch_waiting() -> None:
    sets = {SITE: [Proposal("peak", 10, T0, 0.0, Range(0.0, 40 * KW))], PAIR: [dispatch("d", 1)]}
    unknown = settle_overlaps(sets, lambda batteries: float("nan"))
    assert unknown.withheld == {PAIR}
    # no discharge allowed, and the rest alone charges 50 kW against 40 kW
    beyond = settle_overlaps(sets, lambda batteries: 50 * KW)
    assert beyond.withheld == {PAIR}


@given(scenarios(), st.floats(-2e5, 2e5, allow_nan=False))
def test_the_guard_holds_whether_the_rest_stays_where_it_is_or_reaches_0_w(
    sets: dict[frozenset[int], list[Proposal]], running_w: float
) -> None:
    settled = settle_overlaps(sets, lambda batteries: running_w)
    for batteries, guard_set in settled.inside.items():
        (inner,) = [d for d in settled.drives if d.batteries == batteries]
        for proposal in sets[guard_set]:
            assert proposal.bounds is not None
            for rest_w in (running_w, 0.0):
                total = inner.target_w + rest_w
                assert proposal.bounds.lower - 1e-6 <= total <= proposal.bounds.upper + 1e-6


@given(scenarios())
def test_no_battery_of_a_held_set_is_left_without_a_driver(
    sets: dict[frozenset[int], list[Proposal]],
) -> None:
    settled = settle_overlaps(sets)
    driven = frozenset().union(*(d.batteries for d in settled.drives))
    for batteries, proposals in sets.items():
        if all(p.hold for p in proposals):
            assert batteries <= driven


@st.composite
def dispatches(draw: st.DrawFn) -> list[tuple[int, int, frozenset[int]]]:
    """(id, minutes since T0 it was created, batteries) of one use case's dispatches."""
    count = draw(st.integers(1, 5))
    return [
        (
            dispatch_id,
            draw(st.integers(0, 3)),
            frozenset(draw(st.sets(st.sampled_from([11, 21, 31, 41, 51]), min_size=1))),
        )
        for dispatch_id in range(1, count + 1)
    ]


@given(dispatches())
def test_each_battery_goes_to_the_newest_dispatch_that_wants_it(
    running: list[tuple[int, int, frozenset[int]]],
) -> None:
    sets: dict[frozenset[int], list[Proposal]] = {}
    for dispatch_id, minutes, batteries in running:
        when = T0 + timedelta(minutes=minutes)
        sets.setdefault(batteries, []).append(
            Proposal(f"x#{dispatch_id}", 1, when, 1.0, hold=True, origin=dispatch_id)
        )
    driver_of = {
        battery: drive.driven_by
        for drive in settle_overlaps(sets).drives
        for battery in drive.batteries
    }
    for battery in frozenset().union(*(b for _, _, b in running)):
        newest = max((m, i) for i, m, b in running if battery in b)[1]
        assert driver_of[battery] == f"x#{newest}"


def test_who_is_overruled_is_named_with_the_range_left_to_it_or_none_when_its_set_waits() -> None:
    # on the pair: a held discharge above a charge ask ("at least 80 kW"): the ask is
    # overruled, left the held -50 kW; the guard on the site cannot run on part of it
    ask = Proposal("pv", 0, T0, 80 * KW, Range(80 * KW, 1e6))
    settled = settle_overlaps(
        {
            PAIR: [dispatch("d", -50 * KW, priority=10), ask],
            SITE: [guard(40 * KW, power_w=10 * KW, priority=0)],
        }
    )
    assert settled.overruled == {
        PAIR: {"pv": Range(-50 * KW, -50 * KW)},
        SITE: {"peak": None},
    }
    # the other way round, the ask ranking higher: the dispatch is the one overruled
    assert settle_overlaps({PAIR: [dispatch("d", -50 * KW, priority=-1), ask]}).overruled == {
        PAIR: {"d": Range(80 * KW, 1e6)}
    }
    # nothing overruled: nothing named
    assert settle_overlaps({PAIR: [ask], OTHER_PAIR: [dispatch("d", 1.0)]}).overruled == {}


def test_a_set_running_inside_a_guard_is_named_when_the_guard_caps_it() -> None:
    ask = Proposal("pv", 0, T0, 80 * KW, Range(80 * KW, 1e6))
    settled = settle_overlaps({SITE: [guard(10 * KW)], PAIR: [ask]})
    assert settled.inside == {PAIR: SITE}
    assert {d.batteries: d.target_w for d in settled.drives}[PAIR] == 10 * KW
    assert settled.overruled == {PAIR: {"pv": Range(-1e6, 10 * KW)}}
