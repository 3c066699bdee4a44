"""The distributor's decision for one request, in one pure call: `decide()`.

The PowerDistributingActor converts each `PowerRequest` once into an `Ask` (watts as
floats), snapshots the components it names (`planning.Unit` per battery inverter,
`direct.DirectUnit` per EV charger or PV inverter) and, when feeder meters are
limited, their readings (`MeterReadings`); `decide()` tells it what to do::

    Ask, running targets, units, Rules ──decide()──▶ Rejected    nothing sent: Error
                                                     Refused     nothing sent: OutOfBounds
                                                                 or Error, retry, withdraw
                                                     Planned     the commands to send, what
                                                                 to report and remember

The actor then sends `Planned.plan.commands` through its pacer, records the target and
reports. Everything it used to decide in between is here, in this order:

1. a non-finite power is rejected;
2. batteries left out by the operator or by component recovery (`Rules.left_out`) are
   counted at what they still deliver (`planning.reach`), not planned;
3. the operator's power limit shrinks a battery target to what the other running
   battery targets leave of it (`controls.limit_target`);
4. the plan (`planning.plan` for batteries, `direct.plan_direct` for EV chargers and PV
   inverters), within each limited feeder meter's share per inverter
   (`meter_limits.meter_shares`, split by where the plan without the limit puts the
   power): planned once when no share narrows any inverter's bounds, a second time
   within the shares only when one does — the same result as always planning twice,
   since a plan reads a unit's share only through `planning.allowed_bounds`;
5. a refusal: reported on a new request (not on a keep-alive); with no usable
   component at all the target stays and is retried; a refusal of a new request for
   a set that runs withdraws what runs (a battery set is held at 0 W, EV chargers and
   PV inverters are given back), as does a feeder limit that shrank under a keep-alive
   of a target that must be met exactly;
6. a new request replaces every running target that shares components with it
   (`take_over`): what those held and the new one does not cover is to be given back
   (by the actor: at once, or — when another request of the same round holds a power
   on it — once the round is planned, if none took it). A replaced target counts
   neither against the power limit nor, at its old commands, below a feeder meter.

Watts as floats, passive sign convention (+ charges / consumes, − discharges /
produces). Pure: no I/O, no clock, no state — the running targets and the readings
come in, the decision goes out.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

from edge_controller.power.bounds import Range, hull
from edge_controller.power.controls import limit_target
from edge_controller.power.direct import DirectUnit, plan_direct
from edge_controller.power.distribution import DistributionAlgorithm
from edge_controller.power.kinds import TargetKind
from edge_controller.power.meter_limits import (
    ZERO,
    MeterLimit,
    MeterShares,
    held_sides,
    meter_shares,
    needs_replan,
)
from edge_controller.power.planning import (
    Availability,
    Plan,
    Refusal,
    Unit,
    allowed_bounds,
    plan,
)

METER_TOLERANCE_W = 200.0
"""How far (W, per inverter) a standing command may lie outside its feeder-meter share
before it is planned again at once, and how far a share must grow back to re-plan a
command it held back: small enough for a feeder's fuse, big enough that a noisy load
does not re-send commands every tick."""

NO_METERS = MeterShares({}, ())


@dataclass(frozen=True, slots=True)
class Ask:
    """A `PowerRequest` as the decision reads it: watts as floats, converted once."""

    kind: TargetKind
    ids: frozenset[int]
    """The batteries, EV chargers or PV inverters the request names."""
    power_w: float
    """+ charges / consumes; for PV inverters a negative power is a production limit."""
    adjust_power: bool = True
    """Clamp a target outside the bounds to them (else refuse it with the bounds)."""
    include_broken: bool = False
    """Spread what the working batteries cannot take over the broken ones (clamped)."""
    withdraw: bool = False
    """0 W without bounds: give the components back (a PV limit is lifted)."""


class Standing(Protocol):
    """A running target, as the decision for another request sees it."""

    @property
    def ask(self) -> Ask:
        """What it asks."""
        ...

    @property
    def commands_w(self) -> Mapping[int, float]:
        """The commands its components accepted last (W): what they run now."""
        ...


@dataclass(frozen=True, slots=True)
class Rules:
    """The settings every decision follows: operator controls, algorithm, meter limits."""

    algorithm: DistributionAlgorithm
    observe: bool = False
    """Plan and report, send nothing (the operator's observe mode)."""
    left_out: frozenset[int] = frozenset()
    """Batteries excluded by the operator or out of service (component recovery)."""
    power_limit_w: float | None = None
    """What all battery targets may take together, as a sum of magnitudes (W)."""
    meter_limits: tuple[MeterLimit, ...] = ()
    inverters_below: Mapping[int, tuple[int, ...]] = field(default_factory=dict)
    """Per limited meter, the battery inverters anywhere below it."""
    meter_tolerance_w: float = METER_TOLERANCE_W


@dataclass(frozen=True, slots=True)
class MeterReadings:
    """What the limited meters' shares are computed from (W), fresh or `None`.

    The actor reads them from telemetry: each limited meter's power, and the power
    (fresh) and bounds (hull of the latest) of every inverter below one.
    """

    meter_power_w: Mapping[int, float | None]
    inverter_power_w: Mapping[int, float | None]
    inverter_bounds: Mapping[int, Range | None]


@dataclass(frozen=True, slots=True)
class TakeOver:
    """The running targets a new request replaces, and what to give back of them."""

    replaces: tuple[frozenset[int], ...] = ()
    """The running targets (by their ids) that share components with the request."""
    releases: tuple[tuple[TargetKind, frozenset[int]], ...] = ()
    """Per replaced target, the components the request does not cover: nothing would
    keep their last command alive or change it again, unless another request takes
    them (empty in observe mode)."""


@dataclass(frozen=True, slots=True)
class Rejected:
    """The request is invalid: answered with an Error, nothing sent."""

    reason: str


@dataclass(frozen=True, slots=True)
class Refused:
    """The plan refused the request: nothing sent this round."""

    refusal: Refusal
    report: bool
    """Answer the request (OutOfBounds with the bounds, else Error): not on a keep-alive."""
    retry: bool
    """No component can be used now: the target stays, and is tried again soon."""
    withdraw: str | None = None
    """What runs for these ids must not go on (the log event saying why): battery
    inverters are held at 0 W, EV chargers and PV inverters given back."""
    take_over: TakeOver = TakeOver()


@dataclass(frozen=True, slots=True)
class Planned:
    """The commands to send, and what the actor reports and remembers of them."""

    plan: Plan
    target_w: float
    """The power planned: the request's, less what the power limit cut."""
    limited: bool
    """The operator's power limit cut the request (logged, counted)."""
    serves: Mapping[int, frozenset[int]]
    """Per commanded component, the request's ids it serves (a battery inverter's
    batteries; an EV charger or PV inverter itself): they succeed, fail, are blocked."""
    always: frozenset[int] = frozenset()
    """Components told their command whatever they were told last (a probe, a broken
    unit): their answer is the point."""
    probed: frozenset[int] = frozenset()
    """Inverters retried after their blocking time: an answer changes the plan."""
    ends: bool = False
    """Once sent without a failure the target ends: a battery release (0 W), a
    withdraw, EV chargers at 0 W (what a charger without a command takes)."""
    take_over: TakeOver = TakeOver()
    meters: MeterShares = NO_METERS
    """Each limited meter's allowance this round, and the shares it gave."""
    held: Mapping[int, int] = field(default_factory=dict)
    """The meters whose limit held the plan back, with the side (+1 charge, -1 discharge)."""
    bounds_seen: Mapping[int, Range | None] = field(default_factory=dict)
    """An EV or PV target's components' bounds (hull) when planned: a move re-plans."""

    @property
    def served(self) -> frozenset[int]:
        """Every id of the request the plan commands (reported in observe mode)."""
        return frozenset().union(*self.serves.values())


Decision = Rejected | Refused | Planned


_NOUNS = {
    TargetKind.BATTERIES: ("battery", "batteries"),
    TargetKind.EV_CHARGERS: ("EV chargers", "EV chargers"),
    TargetKind.PV_INVERTERS: ("PV inverters", "PV inverters"),
}
"""How a request's ids are named in its problem: (none of them, several of them)."""


def request_problem(
    kind: TargetKind, ids: Collection[int], groups: Mapping[int, Collection[int]]
) -> str | None:
    """Why `ids` cannot be one target of `kind`, None if they can.

    The one rule of what a request may name, for every kind: at least one component,
    every one a known component of that kind, and whole groups. `groups` maps each
    group of the site's components that move together to its members: a battery
    inverter to the batteries behind it (a request naming one of them must name all);
    an EV charger or a PV inverter to itself. The use cases check a dispatch's target
    by it before they ask, the distributor every request it gets.
    """
    none, several = _NOUNS[kind]
    if not ids:
        return f"the request names no {none}"
    group_of = {member: group for group, members in groups.items() for member in members}
    unknown = sorted(set(ids) - group_of.keys())
    if unknown:
        return f"unknown {several} {unknown}; available: {sorted(group_of)}"
    for component_id in sorted(ids):
        group = group_of[component_id]
        siblings = set(groups[group])
        if not siblings <= set(ids):
            return (
                f"battery {component_id} shares inverter {group} with "
                f"{sorted(siblings - {component_id})}; request them together"
            )
    return None


def each_alone(ids: Iterable[int]) -> dict[int, tuple[int]]:
    """`groups` for components set one by one (EV chargers, PV inverters): each its own."""
    return {i: (i,) for i in ids}


def take_over(ask: Ask, running: Mapping[frozenset[int], Standing], *, observe: bool) -> TakeOver:
    """The running targets `ask` replaces: every other one sharing components with it.

    What they held and `ask` does not cover is released: nothing would keep its last
    command alive or ever change it again, and it would run on, unattended, until it
    expires. In observe mode nothing was sent, so nothing is released.
    """
    replaces = tuple(ids for ids in running if ids != ask.ids and ids & ask.ids)
    releases = tuple(
        (running[ids].ask.kind, left) for ids in replaces if (left := ids - ask.ids) and not observe
    )
    return TakeOver(replaces, releases)


def decide(
    ask: Ask,
    running: Mapping[frozenset[int], Standing],
    units: Sequence[Unit] | Sequence[DirectUnit],
    rules: Rules,
    *,
    keepalive: bool = False,
    meters: MeterReadings | None = None,
) -> Decision:
    """What the distributor does with `ask` this round (see the module docstring).

    `running` are the targets in force, by their ids (`ask`'s own among them when it
    runs); `units` the snapshot of `ask`'s components (battery inverters for a battery
    ask, else the EV chargers or PV inverters); `keepalive` tells a re-plan of a
    running target from a new request; `meters` the limited meters' readings (none:
    every inverter below a limited meter gets no share, as with stale data).
    """
    if not math.isfinite(ask.power_w):
        return Rejected(f"requested power must be finite, got {ask.power_w} W")
    if ask.kind is TargetKind.BATTERIES:
        return _decide_batteries(
            ask,
            running,
            [u for u in units if isinstance(u, Unit)],
            rules,
            keepalive=keepalive,
            meters=meters,
        )
    return _decide_direct(
        ask, running, [u for u in units if isinstance(u, DirectUnit)], rules, keepalive=keepalive
    )


def _decide_batteries(
    ask: Ask,
    running: Mapping[frozenset[int], Standing],
    units: list[Unit],
    rules: Rules,
    *,
    keepalive: bool,
    meters: MeterReadings | None,
) -> Decision:
    if rules.left_out:
        # Left out of the plan, but counted at what they still deliver (a release that
        # failed, or one still ramping down).
        units = [
            replace(u, out_of_service=True) if u.battery_ids & rules.left_out else u for u in units
        ]
    # A running target sharing batteries with the ask is replaced by it (`take_over`):
    # only the others keep their part of the limit.
    target_w = limit_target(
        ask.power_w,
        (
            t.ask.power_w
            for ids, t in running.items()
            if not ids & ask.ids and t.ask.kind is TargetKind.BATTERIES
        ),
        rules.power_limit_w,
    )
    decided, shares, wanted = plan_within_meters(
        target_w, units, rules, meters, standing_w(running, ask.ids), ask=ask
    )
    if isinstance(decided, Refusal):
        retry = decided.bounds is None
        if keepalive and not retry and shares.allowances:
            # A feeder's limit shrank under a target that must be met exactly
            # (`adjust_power=False`): what runs must not go on. Told, and 0 W.
            return Refused(decided, True, False, "target_withdrawn_meter_limit")
        return _refused(ask, decided, running, rules, keepalive=keepalive)
    return Planned(
        decided,
        target_w,
        limited=target_w != ask.power_w,
        serves={u.inverter_id: u.battery_ids for u in units},
        always=frozenset(
            u.inverter_id for u in units if u.unconfirmed or u.availability is Availability.BROKEN
        ),
        probed=frozenset(u.inverter_id for u in units if u.unconfirmed),
        # A release (not a target the power limit cut to 0 W: that one stays and comes
        # back when the limit allows it).
        ends=ask.power_w == 0.0,
        take_over=TakeOver() if keepalive else take_over(ask, running, observe=rules.observe),
        meters=shares,
        held=held_sides(shares.allowances, wanted, rules.meter_tolerance_w),
    )


def _decide_direct(
    ask: Ask,
    running: Mapping[frozenset[int], Standing],
    units: list[DirectUnit],
    rules: Rules,
    *,
    keepalive: bool,
) -> Decision:
    decided = plan_direct(
        ask.kind, ask.power_w, units, withdraw=ask.withdraw, adjust_power=ask.adjust_power
    )
    if isinstance(decided, Refusal):
        return _refused(ask, decided, running, rules, keepalive=keepalive)
    return Planned(
        decided,
        ask.power_w,
        limited=False,
        serves={i: frozenset({i}) for i in decided.commands},
        always=frozenset(u.component_id for u in units if u.availability is Availability.BROKEN),
        ends=ask.withdraw or (ask.kind is TargetKind.EV_CHARGERS and ask.power_w == 0.0),
        take_over=TakeOver() if keepalive else take_over(ask, running, observe=rules.observe),
        bounds_seen={u.component_id: hull(u.bounds) if u.bounds else None for u in units},
    )


def _refused(
    ask: Ask,
    refusal: Refusal,
    running: Mapping[frozenset[int], Standing],
    rules: Rules,
    *,
    keepalive: bool,
) -> Refused:
    if refusal.bounds is None:
        # Nothing usable right now (NaN or no telemetry, all broken): the target stays
        # and is retried soon, so it resumes when the components do.
        return Refused(
            refusal,
            report=not keepalive,
            retry=True,
            take_over=TakeOver() if keepalive else take_over(ask, running, observe=rules.observe),
        )
    # The use case asked for something else than what runs: the old target must not
    # go on until it asks again.
    withdraw = not keepalive and ask.ids in running
    return Refused(
        refusal,
        report=not keepalive,
        retry=False,
        withdraw="target_withdrawn_after_refusal" if withdraw else None,
    )


def plan_within_meters(
    target_w: float,
    units: Sequence[Unit],
    rules: Rules,
    meters: MeterReadings | None,
    standing_w: Mapping[int, float],
    *,
    ask: Ask,
) -> tuple[Plan | Refusal, MeterShares, Mapping[int, float]]:
    """The battery plan within the limited meters' shares; the shares; the power wanted.

    The shares follow what the distribution would do without them (`wanted`: the plan
    without the limit, each inverter it counts at its measured power left out — a
    probe holds it there, like one not commanded), so a meter's headroom goes to the
    inverters the SoC balancing picks; the other inverters below a meter keep what
    they run (`standing_w`, another target's commands) or measure. The plan is made
    again within the shares only when a share narrows some unit's bounds: otherwise
    the second plan would be the first (`planning.allowed_bounds` is the only place a
    plan reads a share).
    """
    first = plan(
        target_w,
        units,
        rules.algorithm,
        adjust_power=ask.adjust_power,
        include_broken=ask.include_broken,
    )
    if not rules.meter_limits:
        return first, NO_METERS, {}
    wanted = (
        {i: p for i, p in first.commands.items() if i not in first.counted_w}
        if isinstance(first, Plan)
        else {}
    )
    shares = shares_for(rules, meters, wanted, standing_w)
    if not shares.shares:
        return first, shares, wanted
    narrowed = [replace(u, site_share=shares.shares.get(u.inverter_id)) for u in units]
    if all(allowed_bounds(n) == allowed_bounds(u) for n, u in zip(narrowed, units, strict=True)):
        return first, shares, wanted
    second = plan(
        target_w,
        narrowed,
        rules.algorithm,
        adjust_power=ask.adjust_power,
        include_broken=ask.include_broken,
    )
    return second, shares, wanted


def standing_w(
    running: Mapping[frozenset[int], Standing], besides: frozenset[int]
) -> dict[int, float]:
    """What the battery inverters of the running targets but `besides` will run (W).

    Below a limited meter they keep it: the target planned first keeps its headroom. A
    target sharing batteries with `besides` is being replaced by it: its inverters that
    `besides` does not command are given back, so they count at 0 W (and at the worse
    of that and what they measure while they ramp).
    """
    standing: dict[int, float] = {}
    for ids, target in running.items():
        if ids == besides or target.ask.kind is not TargetKind.BATTERIES:
            continue
        replaced = bool(ids & besides)
        for inverter_id, command in target.commands_w.items():
            standing[inverter_id] = 0.0 if replaced else command
    return standing


def shares_for(
    rules: Rules,
    meters: MeterReadings | None,
    wanted_w: Mapping[int, float],
    standing_w: Mapping[int, float],
) -> MeterShares:
    """The limited meters' shares for the inverters `wanted_w` commands this round.

    The other inverters below a meter count at `standing_w` (the standing command of
    the target that runs them), or else at their measured power (a broken one the plan
    does not command, an idle one). No readings: every meter's data is missing.
    """
    if not rules.meter_limits or not wanted_w:
        return NO_METERS
    readings = meters or MeterReadings({}, {}, {})
    below = {m.meter_id: rules.inverters_below.get(m.meter_id, ()) for m in rules.meter_limits}
    return meter_shares(
        rules.meter_limits,
        below,
        readings.meter_power_w,
        readings.inverter_power_w,
        readings.inverter_bounds,
        wanted_w,
        controlled=frozenset(wanted_w),
        fixed_w=standing_w,
    )


def meters_moved(
    commands_w: Mapping[int, float],
    allowed_then: Mapping[int, Range],
    held: Mapping[int, int],
    now: MeterShares,
    rules: Rules,
) -> list[int]:
    """The meters whose allowance moved enough that a standing target is planned again.

    `commands_w` is what the target's inverters run, `allowed_then` what each meter
    allowed them when planned (`[0, 0]` without data), `held` the meters that held the
    plan back and on which side, `now` this round's shares for those commands
    (`shares_for`). See `meter_limits.needs_replan`.
    """
    allowed_now = {a.meter_id: a.allowed if a.allowed is not None else ZERO for a in now.allowances}
    inverters = {a.meter_id: a.inverters for a in now.allowances}
    return [
        meter_id
        for meter_id in sorted(set(allowed_then) | set(allowed_now))
        if needs_replan(
            math.fsum(
                commands_w.get(i, 0.0)
                for i in inverters.get(meter_id, rules.inverters_below.get(meter_id, ()))
            ),
            allowed_then.get(meter_id),
            allowed_now.get(meter_id),
            held.get(meter_id, 0),
            rules.meter_tolerance_w,
        )
    ]


__all__ = [
    "METER_TOLERANCE_W",
    "Ask",
    "Decision",
    "MeterReadings",
    "Planned",
    "Refused",
    "Rejected",
    "Rules",
    "Standing",
    "TakeOver",
    "decide",
    "each_alone",
    "meters_moved",
    "plan_within_meters",
    "request_problem",
    "shares_for",
    "standing_w",
    "take_over",
]
