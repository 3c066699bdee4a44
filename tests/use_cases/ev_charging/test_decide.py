"""EV charging's decision: power per charger or a shared budget, as tables of steps."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_controller.power.bounds import Range, allows
from edge_controller.use_cases.ev_charging.decide import (
    ChargerMode,
    ChargerNow,
    RunningEv,
    charger_now,
    decide,
    decide_all,
    grid_room_w,
)
from edge_controller.use_cases.ev_charging.payload import (
    EvChargingPayload,
    SessionLimits,
    parse_payload,
)
from tests.properties import examples
from tests.table import START, Step, run_table

KW = 1000.0
CHARGER_MAX_KW = 22.0
CHARGER_MIN_KW = 4.14
"""6 A × 230 V × 3 phases: the chargers report 0 W or 4.14 kW and up."""


def charger(charger_id: int, car_kw: float | None) -> ChargerNow:
    """A 22 kW charger as the simulator shows it, with a car of `car_kw` (None: no car)."""
    if car_kw is None:
        return ChargerNow(charger_id, plugged=False, bounds=(Range(0.0, 0.0),))
    upper = min(CHARGER_MAX_KW, car_kw) * KW
    if upper < CHARGER_MIN_KW * KW:
        return ChargerNow(charger_id, plugged=True, bounds=(Range(0.0, 0.0),))
    return ChargerNow(
        charger_id, plugged=True, bounds=(Range(0.0, 0.0), Range(CHARGER_MIN_KW * KW, upper))
    )


@dataclass(frozen=True)
class CarPark:
    """Three chargers; each `cNN` is the limit (kW) of the car plugged in there, or None."""

    c81: float | None = None
    c82: float | None = None
    c83: float | None = None
    budget_kw: float = 20.0
    room_kw: float | None = None
    """What the grid leaves the cars (None: no import limit)."""


def sharing(**payload: object) -> Callable[[CarPark, datetime], dict[str, object]]:
    def share(park: CarPark, now: datetime) -> dict[str, object]:
        chargers = [charger(81, park.c81), charger(82, park.c82), charger(83, park.c83)]
        asked = parse_payload(1, {"budget_w": park.budget_kw * KW, **payload})
        room_w = None if park.room_kw is None else park.room_kw * KW
        decision = decide(asked, chargers, room_w=room_w)
        return {
            **{f"p{cid}": power / KW for cid, power in decision.power_w.items()},
            **{f"m{cid}": plan.mode for cid, plan in decision.plans.items()},
            "unused": decision.unused_w / KW,
            "grid_limited": decision.grid_limited,
        }

    return share


def test_a_budget_is_shared_as_cars_come_and_go() -> None:
    run_table(
        sharing(),
        CarPark(),
        [
            Step(
                "no car: nothing to do",
                expect={"p81": 0, "m81": ChargerMode.UNPLUGGED, "unused": 20},
            ),
            Step(
                "an 11 kW and a 7.4 kW car: each takes what it can",
                inputs={"c81": 11, "c82": 7.4},
                expect={"p81": 11, "p82": 7.4, "unused": 1.6},
            ),
            Step(
                "a 22 kW car arrives: equal shares",
                advance=600,
                inputs={"c83": 22},
                expect={"p81": 20 / 3, "p82": 20 / 3, "p83": 20 / 3, "unused": 0},
            ),
            Step(
                "the 11 kW car unplugs: its share goes to the other two",
                advance=3600,
                inputs={"c81": None},
                expect={"p81": 0, "m81": ChargerMode.UNPLUGGED, "p82": 7.4, "p83": 12.6},
            ),
            Step(
                "8 kW fits one minimum only: the lowest charger id charges",
                inputs={"budget_kw": 8},
                expect={"p82": 7.4, "p83": 0, "m83": ChargerMode.BELOW_MIN, "unused": 0.6},
            ),
            Step(
                "a budget below any minimum charges nobody",
                inputs={"budget_kw": 4},
                expect={"p82": 0, "m82": ChargerMode.BELOW_MIN, "p83": 0, "unused": 4},
            ),
            Step(
                "a 0 W budget: every car idle",
                inputs={"budget_kw": 0},
                expect={"p82": 0, "m82": ChargerMode.IDLE, "p83": 0},
            ),
        ],
    )


def test_minimums_go_first_so_that_as_many_cars_as_possible_charge() -> None:
    run_table(
        sharing(sessions={"83": {"min_w": 9000}}),
        CarPark(c81=22, c82=22, c83=22, budget_kw=12),
        [
            Step(
                "the 9 kW minimum would leave one car: the two 4.14 kW ones share",
                expect={"p81": 6, "p82": 6, "p83": 0, "m83": ChargerMode.BELOW_MIN},
            ),
            Step(
                "enough for all three minimums: the 9 kW car gets its minimum",
                inputs={"budget_kw": 18},
                expect={"p81": 4.5, "p82": 4.5, "p83": 9},
            ),
            Step(
                "more: the level rises above 9 kW, all equal",
                inputs={"budget_kw": 33},
                expect={"p81": 11, "p82": 11, "p83": 11},
            ),
        ],
    )


def test_the_grid_room_is_shared_as_a_budget_would_be() -> None:
    run_table(
        sharing(),
        CarPark(c81=22, c82=22, budget_kw=15),
        [
            Step("room enough", inputs={"room_kw": 30}, expect={"p81": 7.5, "p82": 7.5}),
            Step(
                "12 kW of room",
                inputs={"room_kw": 12},
                expect={"p81": 6, "p82": 6, "grid_limited": True},
            ),
            Step(
                "6 kW: one car at 6 kW rather than two below their minimum",
                inputs={"room_kw": 6},
                expect={"p81": 6, "p82": 0, "m82": ChargerMode.BELOW_MIN, "grid_limited": True},
            ),
            Step(
                "no room at all",
                inputs={"room_kw": 0},
                expect={"p81": 0, "m81": ChargerMode.BELOW_MIN, "p82": 0},
            ),
        ],
    )


def test_power_per_charger_becomes_each_cars_most_when_the_room_is_short() -> None:
    payload = parse_payload(1, {"chargers": {"81": "11 kW", "82": "5 kW"}})
    cars = [charger(81, 22), charger(82, 22)]
    assert decide(payload, cars, room_w=30_000).power_w == {81: 11_000, 82: 5_000}
    assert decide(payload, cars, room_w=12_000).power_w == {81: 7_000, 82: 5_000}
    assert decide(payload, cars, room_w=6_000).power_w == {81: 6_000, 82: 0}


@pytest.mark.parametrize(
    ("max_import_w", "grid_w", "chargers_w", "room_w"),
    [
        (None, 10_000.0, 0.0, None),  # no limit
        (15_000.0, None, 0.0, None),  # no fresh grid meter: the guard decides
        (15_000.0, math.nan, 0.0, None),
        (15_000.0, 6_000.0, 0.0, 9_000.0),
        (15_000.0, 15_000.0, 9_000.0, 9_000.0),  # the cars' own power is theirs again
        (15_000.0, 6_049.9, 0.0, 8_900.0),  # whole 100 W
        (15_000.0, 20_000.0, 0.0, 0.0),  # over the limit already: nothing
    ],
)
def test_the_grid_room_is_the_limit_less_the_site_without_the_cars(
    max_import_w: float | None, grid_w: float | None, chargers_w: float, room_w: float | None
) -> None:
    assert grid_room_w(max_import_w, grid_w, chargers_w) == room_w


def test_the_newest_dispatch_wins_a_shared_charger_and_takes_the_room_first() -> None:
    cars = {c: charger(c, 22) for c in (81, 82, 83)}
    older = RunningEv(1, START, parse_payload(1, {"budget_w": 30_000}), frozenset({81, 82, 83}))
    newer = RunningEv(
        2,
        START + timedelta(minutes=1),
        parse_payload(2, {"chargers": {"83": 9_000}}),
        frozenset({83}),
    )
    dry = RunningEv(
        3, START + timedelta(minutes=2), parse_payload(3, {"budget_w": 1}), frozenset({82}), True
    )
    decisions = decide_all([older, newer], cars, room_w=25_000)
    assert decisions[2].power_w == {83: 9_000}
    assert decisions[1].power_w == {81: 8_000, 82: 8_000}  # 30 kW asked, 16 kW of room left
    # a dry run commands nothing, so it takes no charger and no room
    with_dry_run = decide_all([older, newer, dry], cars, room_w=25_000)
    assert with_dry_run[1].power_w == {81: 8_000, 82: 8_000}
    assert with_dry_run[3].power_w == {82: 0.0}  # 1 W: below the charger's 4.14 kW


def test_the_dispatch_can_cap_every_car_and_one_car_apart() -> None:
    run_table(
        sharing(max_w=5000, sessions={"82": {"max_w": 8000}}),
        CarPark(c81=22, c82=22, c83=22, budget_kw=30),
        [
            Step("caps hold", expect={"p81": 5, "p82": 8, "p83": 5, "unused": 12}),
            Step(
                "a car whose own limit is below the minimum cannot charge",
                inputs={"c83": 3.7},
                expect={"p83": 0, "m83": ChargerMode.BELOW_MIN},
            ),
        ],
    )


def test_power_per_charger_never_exceeds_the_bounds_nor_runs_below_the_minimum() -> None:
    payload = parse_payload(1, {"chargers": {"81": "11 kW", "82": "11 kW", "83": 3000}})
    decision = decide(payload, [charger(81, 22), charger(82, 7.4), charger(83, 22)])
    assert decision.power_w == {81: 11_000, 82: 7_400, 83: 0}
    assert decision.plans[83].mode is ChargerMode.BELOW_MIN
    unplugged = decide(payload, [charger(81, None)])
    assert unplugged.plans[81].mode is ChargerMode.UNPLUGGED
    assert unplugged.total_w == 0.0
    idle = decide(parse_payload(1, {"chargers": {"81": 0}}), [charger(81, 22)])
    assert idle.plans[81].mode is ChargerMode.IDLE


def test_a_use_case_minimum_applies_where_the_dispatch_names_none() -> None:
    open_charger = ChargerNow(81, plugged=True, bounds=(Range(0.0, 11_000.0),))
    payload = parse_payload(1, {"chargers": {"81": 3000}})
    assert decide(payload, [open_charger], min_power_w=4140).power_w == {81: 0.0}
    assert decide(payload, [open_charger]).power_w == {81: 3000.0}
    own = parse_payload(1, {"chargers": {"81": 3000}, "min_w": 1400})
    assert decide(own, [open_charger], min_power_w=4140).power_w == {81: 3000.0}


def test_faulted_unknown_or_bidirectional_chargers_get_nothing_below_0_w() -> None:
    payload = EvChargingPayload(budget_w=30_000.0)
    faulted = ChargerNow(81, plugged=True, bounds=(Range(0, 11_000),), working=False)
    unknown = ChargerNow(82, plugged=True, bounds=None)
    v2g = ChargerNow(83, plugged=True, bounds=(Range(-11_000, 11_000),))
    decision = decide(payload, [faulted, unknown, v2g])
    assert decision.plans[81].mode is ChargerMode.UNAVAILABLE
    assert decision.plans[82].mode is ChargerMode.UNAVAILABLE
    assert decision.power_w == {81: 0.0, 82: 0.0, 83: 11_000.0}


@pytest.mark.parametrize(
    ("car_connected", "bounds", "plugged"),
    [
        (True, (Range(0, 0),), True),
        (False, (Range(0, 11_000),), False),
        (None, (Range(0, 11_000),), True),  # no cable state: the bounds tell
        (None, (Range(0, 0),), False),
        (None, None, False),
    ],
)
def test_the_cable_state_says_whether_a_car_is_plugged_in_else_the_bounds(
    car_connected: bool | None, bounds: tuple[Range, ...] | None, plugged: bool
) -> None:
    assert charger_now(81, car_connected, bounds).plugged is plugged


# ---------------------------------------------------------------- properties

ranges = st.builds(
    lambda gap, upper: (Range(0.0, 0.0), Range(min(gap, upper), upper)),
    st.floats(0, 8_000),
    st.floats(0, 30_000),
)
chargers = st.lists(
    st.builds(
        ChargerNow,
        charger_id=st.integers(1, 40),
        plugged=st.booleans(),
        bounds=st.one_of(st.none(), ranges),
        working=st.booleans(),
    ),
    max_size=8,
    unique_by=lambda c: c.charger_id,
)
limits = st.one_of(st.none(), st.floats(0, 25_000))


@settings(max_examples=examples(500), deadline=None)
@given(
    chargers=chargers,
    budget_w=st.floats(0, 120_000),
    min_w=limits,
    max_w=limits,
    use_case_min_w=st.floats(0, 6_000),
    room_w=st.one_of(st.none(), st.floats(0, 120_000)),
)
def test_a_budget_is_never_exceeded_nor_a_bound_and_left_over_only_when_cars_are_full(
    chargers: list[ChargerNow],
    budget_w: float,
    min_w: float | None,
    max_w: float | None,
    use_case_min_w: float,
    room_w: float | None,
) -> None:
    if min_w is not None and max_w is not None and min_w > max_w:
        min_w, max_w = max_w, min_w
    payload = EvChargingPayload(budget_w=budget_w, limits=SessionLimits(min_w, max_w))
    decision = decide(payload, chargers, min_power_w=use_case_min_w, room_w=room_w)
    assert decision.total_w <= budget_w + 1e-6
    assert room_w is None or decision.total_w <= room_w + 1e-6
    least = use_case_min_w if min_w is None else min_w
    for charger_now_ in chargers:
        plan = decision.plans[charger_now_.charger_id]
        if plan.power_w == 0.0:
            continue
        assert charger_now_.plugged
        assert charger_now_.working
        assert charger_now_.bounds is not None
        assert allows(charger_now_.bounds, plan.power_w)
        assert plan.power_w >= least - 1e-9
        assert max_w is None or plan.power_w <= max_w + 1e-9
    charging = [
        (c, decision.plans[c.charger_id].power_w)
        for c in chargers
        if decision.plans[c.charger_id].mode is ChargerMode.CHARGING
    ]
    cap = math.inf if max_w is None else max_w
    tops = {c.charger_id: min(max(r.upper for r in c.bounds or ()), cap) for c, _ in charging}
    if decision.unused_w > 1e-6:  # left over: every charging car is at its most
        for charger_now_, power_w in charging:
            assert power_w == pytest.approx(tops[charger_now_.charger_id])
    lows = {
        c.charger_id: max([least, *(r.lower for r in c.bounds or () if r.upper > 0)])
        for c, _ in charging
    }
    between = [p for c, p in charging if lows[c.charger_id] + 1e-6 < p < tops[c.charger_id] - 1e-6]
    assert max(between, default=0.0) - min(between, default=0.0) < 1e-6  # one level
