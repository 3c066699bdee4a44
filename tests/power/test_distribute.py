"""The distributor's one decision (`power.distribute.decide`), without a server.

What the actor used to decide between its sends, one request at a time: validity of
the power, the operator's left-out batteries and power limit, feeder-meter shares,
refusals (report, retry, withdraw), take-overs, and EV/PV plans. Last, a property:
the plan within the meters is the plan the former two-pass code made, on random sites.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_controller.power.bounds import Range
from edge_controller.power.direct import DirectUnit
from edge_controller.power.distribute import (
    Ask,
    MeterReadings,
    Planned,
    Refused,
    Rejected,
    Rules,
    TakeOver,
    decide,
    each_alone,
    plan_within_meters,
    request_problem,
    shares_for,
    standing_w,
)
from edge_controller.power.distribution import (
    BatteryUnit,
    Distribution,
    DistributionAlgorithm,
    SocBalancing,
)
from edge_controller.power.kinds import TargetKind
from edge_controller.power.meter_limits import MeterLimit
from edge_controller.power.planning import (
    Availability,
    BatteryState,
    Plan,
    Refusal,
    Unit,
    plan,
)
from tests.properties import examples

B, EV, PV = TargetKind.BATTERIES, TargetKind.EV_CHARGERS, TargetKind.PV_INVERTERS
KW = 1_000.0
RULES = Rules(SocBalancing())


def unit(inverter_id: int, soc: float = 50.0, kw: float = 100.0, **flags: object) -> Unit:
    """An inverter `inverter_id` with battery `inverter_id + 1`, ±`kw`."""
    bounds = (Range(-kw * KW, kw * KW),)
    return Unit(
        inverter_id,
        (BatteryState(inverter_id + 1, soc, 10.0, 90.0, 200_000.0, bounds),),
        bounds,
        1.0,
        Availability.WORKING,
        **flags,  # type: ignore[arg-type]
    )


SITE = [unit(10, soc=80), unit(20, soc=60), unit(30, soc=40)]
ALL = frozenset({11, 21, 31})


@dataclass
class Running:
    """A running target as the decision sees it (`distribute.Standing`)."""

    ask: Ask
    commands_w: Mapping[int, float] = field(default_factory=dict)


def batteries(kw: float, ids: frozenset[int] = ALL, **options: object) -> Ask:
    return Ask(B, ids, kw * KW, **options)  # type: ignore[arg-type]


def planned(decision: object) -> Planned:
    assert isinstance(decision, Planned), decision
    return decision


def refused(decision: object) -> Refused:
    assert isinstance(decision, Refused), decision
    return decision


# ---------------------------------------------------------------- batteries


def test_a_power_that_is_not_finite_is_rejected_with_the_value() -> None:
    decision = decide(batteries(math.nan), {}, SITE, RULES)
    assert decision == Rejected("requested power must be finite, got nan W")


def test_a_discharge_is_planned_on_the_fullest_batteries_first() -> None:
    decision = planned(decide(batteries(-150), {}, SITE, RULES))
    assert decision.plan.commands == {10: -100 * KW, 20: -50 * KW, 30: 0.0}
    assert decision.target_w == -150 * KW
    assert not decision.limited
    assert decision.serves == {10: {11}, 20: {21}, 30: {31}}
    assert not decision.ends


def test_the_power_limit_leaves_a_target_what_the_other_targets_do_not_take() -> None:
    rules = replace(RULES, power_limit_w=200 * KW)
    running = {frozenset({41}): Running(Ask(B, frozenset({41}), 150 * KW))}
    decision = planned(decide(batteries(-150), running, SITE, rules))
    assert (decision.target_w, decision.limited) == (-50 * KW, True)
    assert math.fsum(decision.plan.commands.values()) == pytest.approx(-50 * KW)


def test_a_target_being_replaced_leaves_its_part_of_the_power_limit() -> None:
    rules = replace(RULES, power_limit_w=200 * KW)
    running = {frozenset({11, 21}): Running(batteries(-150, frozenset({11, 21})))}
    decision = planned(decide(batteries(-150, frozenset({11})), running, SITE[:1], rules))
    assert (decision.target_w, decision.limited) == (-150 * KW, False)


def test_below_a_feeder_a_replaced_target_counts_at_0_w_the_others_at_their_command() -> None:
    running = {
        frozenset({11, 21}): Running(batteries(-100, frozenset({11, 21})), {10: -50e3, 20: -50e3}),
        frozenset({31}): Running(batteries(20, frozenset({31})), {30: 20e3}),
        frozenset({81}): Running(Ask(EV, frozenset({81}), 11e3), {81: 11e3}),
    }
    assert standing_w(running, frozenset({11})) == {10: 0.0, 20: 0.0, 30: 20e3}
    assert standing_w(running, frozenset({31})) == {10: -50e3, 20: -50e3}


def test_ev_targets_do_not_count_against_the_battery_power_limit() -> None:
    rules = replace(RULES, power_limit_w=200 * KW)
    running = {frozenset({81}): Running(Ask(EV, frozenset({81}), 150 * KW))}
    assert planned(decide(batteries(-150), running, SITE, rules)).target_w == -150 * KW


def test_a_left_out_battery_is_counted_at_what_it_measures_and_not_commanded() -> None:
    units = [replace(SITE[0], measured_power_w=-30 * KW), *SITE[1:]]
    rules = replace(RULES, left_out=frozenset({11}))
    decision = planned(decide(batteries(-150), {}, units, rules))
    assert 10 not in decision.plan.commands
    assert decision.plan.counted_w == {10: -30 * KW}
    assert math.fsum(decision.plan.commands.values()) == pytest.approx(-120 * KW)


def test_a_probe_and_a_broken_unit_are_always_sent_and_a_probe_is_watched() -> None:
    units = [
        replace(SITE[0], unconfirmed=True, measured_power_w=-10 * KW),
        replace(SITE[1], availability=Availability.BROKEN),
        SITE[2],
    ]
    decision = planned(decide(batteries(-50), {}, units, RULES))
    assert decision.always == {10, 20}
    assert decision.probed == {10}


def test_a_release_ends_the_target_once_sent() -> None:
    decision = planned(decide(batteries(0, withdraw=True), {}, SITE, RULES))
    assert decision.plan.commands == {10: 0.0, 20: 0.0, 30: 0.0}
    assert decision.ends


def test_a_target_the_power_limit_cut_to_zero_does_not_end() -> None:
    rules = replace(RULES, power_limit_w=100 * KW)
    running = {frozenset({41}): Running(Ask(B, frozenset({41}), 100 * KW))}
    decision = planned(decide(batteries(-50), running, SITE, rules))
    assert (decision.target_w, decision.ends) == (0.0, False)


# ---------------------------------------------------------------- refusals


def test_a_new_request_outside_the_bounds_is_refused_with_them() -> None:
    decision = refused(decide(batteries(-500, adjust_power=False), {}, SITE, RULES))
    assert decision.refusal.bounds is not None
    assert decision.refusal.bounds.inclusion == Range(-300 * KW, 300 * KW)
    assert (decision.report, decision.retry, decision.withdraw) == (True, False, None)


def test_a_refused_retarget_of_a_running_set_withdraws_what_runs() -> None:
    running = {ALL: Running(batteries(-100))}
    decision = refused(decide(batteries(-500, adjust_power=False), running, SITE, RULES))
    assert decision.withdraw == "target_withdrawn_after_refusal"
    # on a keep-alive the bounds moved, not the request: nothing said, nothing withdrawn
    again = refused(
        decide(batteries(-500, adjust_power=False), running, SITE, RULES, keepalive=True)
    )
    assert (again.report, again.withdraw) == (False, None)


def test_with_no_usable_battery_the_target_stays_and_is_retried() -> None:
    broken = [replace(u, availability=Availability.BROKEN) for u in SITE]
    running = {frozenset({11, 21}): Running(batteries(-10, frozenset({11, 21})))}
    decision = refused(decide(batteries(-50), running, broken, RULES))
    assert decision.refusal.bounds is None
    assert (decision.report, decision.retry, decision.withdraw) == (True, True, None)
    assert decision.take_over == TakeOver((frozenset({11, 21}),), ())
    on_keepalive = refused(decide(batteries(-50), running, broken, RULES, keepalive=True))
    assert (on_keepalive.report, on_keepalive.take_over) == (False, TakeOver())


def test_a_feeder_limit_that_shrank_under_an_exact_target_withdraws_it_on_the_keepalive() -> None:
    rules = replace(
        RULES,
        meter_limits=(MeterLimit(3, max_import_w=10 * KW),),
        inverters_below={3: (10, 20, 30)},
    )
    meters = MeterReadings({3: 0.0}, {10: 0.0, 20: 0.0, 30: 0.0}, {})
    ask = batteries(150, adjust_power=False)
    running = {ALL: Running(ask, {10: 50 * KW, 20: 50 * KW, 30: 50 * KW})}
    decision = refused(decide(ask, running, SITE, rules, keepalive=True, meters=meters))
    assert (decision.report, decision.withdraw) == (True, "target_withdrawn_meter_limit")


# ---------------------------------------------------------------- take-overs


def test_a_new_set_replaces_the_targets_it_overlaps_and_releases_what_it_leaves() -> None:
    running = {
        frozenset({11, 21}): Running(batteries(-10, frozenset({11, 21}))),
        frozenset({31}): Running(batteries(-10, frozenset({31}))),
    }
    decision = planned(decide(batteries(-50, frozenset({11})), running, SITE[:1], RULES))
    assert decision.take_over == TakeOver((frozenset({11, 21}),), ((B, frozenset({21})),))
    observing = replace(RULES, observe=True)
    quiet = planned(decide(batteries(-50, frozenset({11})), running, SITE[:1], observing))
    assert quiet.take_over == TakeOver((frozenset({11, 21}),), ())


def test_a_keepalive_takes_nothing_over() -> None:
    running = {frozenset({11, 21}): Running(batteries(-10, frozenset({11, 21})))}
    decision = planned(
        decide(batteries(-50, frozenset({11})), running, SITE[:1], RULES, keepalive=True)
    )
    assert decision.take_over == TakeOver()


# ---------------------------------------------------------------- EV chargers, PV inverters


def charger(component_id: int, kw: float) -> DirectUnit:
    return DirectUnit(component_id, (Range(0.0, kw * KW),), 22 * KW, 10.0)


def pv(component_id: int, peak_kw: float, producing_kw: float) -> DirectUnit:
    return DirectUnit(
        component_id, (Range(-producing_kw * KW, 0.0),), peak_kw * KW, 10.0,
        measured_power_w=-producing_kw * KW,
    )  # fmt: skip


def test_ev_chargers_share_a_total_and_one_without_a_car_gets_0_w() -> None:
    units = [charger(81, 11), charger(82, 0)]
    decision = planned(decide(Ask(EV, frozenset({81, 82}), 15 * KW), {}, units, RULES))
    assert decision.plan.commands == {81: 11 * KW, 82: 0.0}
    assert decision.plan.excess_w == 4 * KW
    assert decision.serves == {81: {81}, 82: {82}}
    assert decision.bounds_seen == {81: Range(0.0, 11 * KW), 82: Range(0.0, 0.0)}
    assert not decision.ends
    stop = planned(decide(Ask(EV, frozenset({81, 82}), 0.0), {}, units, RULES))
    assert stop.ends  # 0 W is what a charger without a command takes


def test_a_pv_limit_is_shared_by_rating_and_a_withdraw_lifts_it_and_ends() -> None:
    units = [pv(50, 40, 24), pv(51, 20, 12)]
    limit = planned(decide(Ask(PV, frozenset({50, 51}), -12 * KW), {}, units, RULES))
    assert limit.plan.commands == {50: -8 * KW, 51: -4 * KW}
    lift = planned(decide(Ask(PV, frozenset({50, 51}), 0.0, withdraw=True), {}, units, RULES))
    assert lift.plan.commands == {50: -24 * KW, 51: -12 * KW}
    assert lift.ends


def test_a_battery_request_names_known_batteries_in_whole_inverter_groups() -> None:
    groups = {10: (11, 12), 20: (21,)}
    assert request_problem(B, frozenset({11, 12, 21}), groups) is None
    assert request_problem(B, frozenset({21}), groups) is None
    assert request_problem(B, frozenset(), groups) == "the request names no battery"
    assert request_problem(B, frozenset({21, 99}), groups) == (
        "unknown batteries [99]; available: [11, 12, 21]"
    )
    assert request_problem(B, frozenset({11, 21}), groups) == (
        "battery 11 shares inverter 10 with [12]; request them together"
    )


def test_direct_requests_name_known_components() -> None:
    assert request_problem(EV, frozenset(), each_alone({81})) == "the request names no EV chargers"
    assert request_problem(PV, {50, 59}, each_alone({50, 51})) == (
        "unknown PV inverters [59]; available: [50, 51]"
    )
    assert request_problem(PV, {50}, each_alone({50, 51})) is None


# ---------------------------------------------------------------- one plan, not two


class Counting:
    """SoC balancing that counts how often it distributes."""

    def __init__(self) -> None:
        self.calls = 0

    def distribute(self, target_w: float, units: Sequence[BatteryUnit]) -> Distribution:
        self.calls += 1
        return SocBalancing().distribute(target_w, units)


def meter_rules(algorithm: DistributionAlgorithm, max_import_kw: float) -> Rules:
    return Rules(
        algorithm,
        meter_limits=(MeterLimit(3, max_import_w=max_import_kw * KW),),
        inverters_below={3: (10, 20)},
    )


IDLE = MeterReadings({3: 20 * KW}, {10: 0.0, 20: 0.0}, {10: None, 20: None})
"""A feeder carrying 20 kW of load, its two batteries idle."""


def test_a_feeder_with_room_for_the_plan_costs_one_distribution() -> None:
    algorithm = Counting()
    decision = planned(
        decide(batteries(-200), {}, SITE, meter_rules(algorithm, 1_000), meters=IDLE)
    )
    assert algorithm.calls == 1
    assert decision.plan.commands == planned(decide(batteries(-200), {}, SITE, RULES)).plan.commands
    assert decision.held == {}


def test_a_feeder_at_its_limit_holds_its_batteries_to_their_share() -> None:
    algorithm = Counting()
    decision = planned(decide(batteries(200), {}, SITE, meter_rules(algorithm, 80), meters=IDLE))
    assert algorithm.calls == 2
    # 60 kW of the feeder's 80 kW are left: shared by what each would take unlimited
    below = decision.plan.commands[10] + decision.plan.commands[20]
    assert below == pytest.approx(60 * KW, abs=2)
    assert decision.held == {3: 1}
    assert decision.plan.excess_w == pytest.approx(200 * KW - 60 * KW - 100 * KW, abs=2)


def test_other_targets_below_the_feeder_keep_what_they_run() -> None:
    rules = meter_rules(SocBalancing(), 80)
    others = {frozenset({21}): Running(batteries(40, frozenset({21})), {20: 40 * KW})}
    decision = planned(
        decide(batteries(100, frozenset({11})), others, SITE[:1], rules, meters=IDLE)
    )
    assert decision.plan.commands == {10: 20 * KW}


def two_pass(
    target_w: float,
    units: Sequence[Unit],
    rules: Rules,
    meters: MeterReadings,
    standing: Mapping[int, float],
    ask: Ask,
) -> Plan | Refusal:
    """The former actor's `_within_meter_shares` and plan: always planned twice."""
    options = {"adjust_power": ask.adjust_power, "include_broken": ask.include_broken}
    first = plan(target_w, units, rules.algorithm, **options)
    wanted = (
        {i: p for i, p in first.commands.items() if i not in first.counted_w}
        if isinstance(first, Plan)
        else {}
    )
    decided = shares_for(rules, meters, wanted, standing)
    narrowed = [replace(u, site_share=decided.shares.get(u.inverter_id)) for u in units]
    return plan(target_w, narrowed, rules.algorithm, **options)


kw = st.floats(-400, 400, allow_nan=False).map(lambda v: round(v, 1) * KW)
maybe_kw = st.one_of(st.none(), st.floats(0, 300, allow_nan=False).map(lambda v: v * KW))


@st.composite
def sites(draw: st.DrawFn) -> tuple[list[Unit], Rules, MeterReadings, dict[int, float], Ask]:
    count = draw(st.integers(1, 5))
    units = []
    for n in range(count):
        inverter_id = 10 * (n + 1)
        size = draw(st.floats(5, 150))
        band = draw(st.sampled_from([0.0, 0.0, 2.0]))
        bounds = (
            (Range(-size * KW, size * KW),)
            if band == 0.0
            else (Range(-size * KW, -band * KW), Range(band * KW, size * KW))
        )
        units.append(
            Unit(
                inverter_id,
                (BatteryState(inverter_id + 1, draw(st.floats(10, 90)), 10, 90, 100_000, bounds),),
                bounds,
                draw(st.sampled_from([1.0, 50.0, 88.0])),
                draw(st.sampled_from(list(Availability))),
                measured_power_w=draw(st.one_of(st.none(), kw.map(lambda v: v / 4))),
                unconfirmed=draw(st.booleans()),
                refused=draw(st.booleans()),
            )
        )
    ids = [u.inverter_id for u in units]
    below = {
        3: tuple(draw(st.lists(st.sampled_from([*ids, 99]), max_size=4, unique=True))),
        4: tuple(draw(st.lists(st.sampled_from([*ids, 98]), max_size=3, unique=True))),
    }
    limits = tuple(
        MeterLimit(m, draw(maybe_kw), draw(maybe_kw))
        for m in draw(st.sets(st.sampled_from([3, 4])))
    )
    rules = Rules(SocBalancing(), meter_limits=limits, inverters_below=below)
    every = sorted({i for ids in below.values() for i in ids})
    meters = MeterReadings(
        {m: draw(st.one_of(st.none(), kw)) for m in (3, 4)},
        {i: draw(st.one_of(st.none(), kw.map(lambda v: v / 4))) for i in every},
        {i: Range(-100 * KW, 100 * KW) for i in every},
    )
    standing = {98: draw(kw.map(lambda v: v / 4)), 99: draw(kw.map(lambda v: v / 4))}
    ask = Ask(
        B,
        frozenset(u.inverter_id + 1 for u in units),
        draw(kw),
        adjust_power=draw(st.booleans()),
        include_broken=draw(st.booleans()),
    )
    return units, rules, meters, standing, ask


@settings(max_examples=examples(2_000), deadline=None)
@given(sites())
def test_the_plan_within_the_meters_is_the_former_two_pass_plan(
    site: tuple[list[Unit], Rules, MeterReadings, dict[int, float], Ask],
) -> None:
    units, rules, meters, standing, ask = site
    decided, _, _ = plan_within_meters(ask.power_w, units, rules, meters, standing, ask=ask)
    assert decided == two_pass(ask.power_w, units, rules, meters, standing, ask)
