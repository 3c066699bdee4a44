"""The distribution invariant over sequences of faults, on the pure planner.

A small site of inverters is driven the way the PowerDistributingActor drives it:
every round plans with `planning.plan()` over units built from each inverter's state,
"sends" the commands (a silent inverter ignores them and fails, the others take
them), and plans again at once after a failure or an answered probe; a counted
inverter whose measured power moved (`planning.counted_moved`) is planned again too.
Between rounds, faults come and go: an inverter goes silent or recovers, its blocking
time ends, its last command expires (its power falls to 0 W), it is taken out of
service or back, the target changes, a keep-alive comes.

The invariant, after every step: when the target is feasible (what the responsive
inverters must carry lies within their bounds), the power the inverters *deliver*
equals the target within one resolution step — whether or not a retried inverter
answered — and every command lies within its inverter's bounds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from edge_controller.power.bounds import Range, allows
from edge_controller.power.distribution import SocBalancing
from edge_controller.power.planning import (
    Availability,
    BatteryState,
    Plan,
    Reach,
    Unit,
    counted_moved,
    plan,
    reach,
)
from tests.properties import examples

ALGORITHM = SocBalancing()
MAX_ROUNDS = 6
"""A failure blocks its inverter and an answered probe confirms it: a plan settles in
a few rounds, never more than this."""


@dataclass
class Inverter:
    """One inverter (with one battery) as the physics and the actor's books see it."""

    inverter_id: int
    rated_w: float
    resolution_w: float
    soc_pct: float
    delivered_w: float = 0.0
    silent: bool = False
    blocked: bool = False
    unconfirmed: bool = False
    out_of_service: bool = False

    @property
    def bounds(self) -> tuple[Range, ...]:
        return (Range(-self.rated_w, self.rated_w),)

    def unit(self) -> Unit:
        return Unit(
            inverter_id=self.inverter_id,
            batteries=(
                BatteryState(
                    self.inverter_id + 1, self.soc_pct, 10.0, 90.0, 100_000.0, self.bounds
                ),
            ),
            inverter_bounds=self.bounds,
            resolution_w=self.resolution_w,
            availability=Availability.BROKEN if self.blocked else Availability.WORKING,
            measured_power_w=self.delivered_w,
            unconfirmed=self.unconfirmed,
            out_of_service=self.out_of_service,
        )


inverter_specs = st.lists(
    st.tuples(
        st.sampled_from([20_000.0, 50_000.0, 100_000.0]),
        st.sampled_from([1.0, 50.0, 88.0, 100.0]),
        st.floats(20.0, 80.0),
    ),
    min_size=2,
    max_size=4,
)
targets = st.integers(-250, 250).map(lambda kw: kw * 1_000.0)


class FaultSequences(RuleBasedStateMachine):
    """Faults come and go while a target runs; see the module docstring."""

    def __init__(self) -> None:
        super().__init__()
        self.inverters: list[Inverter] = []
        self.target_w = 0.0
        self.last: Plan | None = None
        self.last_units: list[Unit] = []

    @initialize(specs=inverter_specs, target_w=targets)
    def site(self, specs: list[tuple[float, float, float]], target_w: float) -> None:
        self.inverters = [
            Inverter(10 * (n + 1), rated, resolution, soc)
            for n, (rated, resolution, soc) in enumerate(specs)
        ]
        self.target_w = target_w
        self.rounds()

    # ------------------------------------------------------------- the actor's loop

    def rounds(self) -> None:
        """Plan and send until the plan settles (a failure or an answered probe re-plans)."""
        for _ in range(MAX_ROUNDS):
            if not self.round():
                return
        raise AssertionError("the plan did not settle")

    def round(self) -> bool:
        """One plan and its sending; tell whether it must be planned again at once."""
        units = [i.unit() for i in self.inverters]
        decided = plan(self.target_w, units, ALGORITHM)
        if not isinstance(decided, Plan):
            self.last, self.last_units = None, units
            return False
        self.last, self.last_units = decided, units
        by_id = {i.inverter_id: i for i in self.inverters}
        bounds = {u.inverter_id: u.inverter_bounds or () for u in units}
        # A silent inverter the actor does not know yet (no command failed) can only
        # be found by commanding it: until its request timeout ends, the round may be
        # off by its part. Every other round must hold the invariant while it is sent.
        unknown_silent = any(
            i.silent and not (i.blocked or i.unconfirmed or i.out_of_service)
            for i in self.inverters
        )
        again = False
        for inverter_id, command_w in decided.commands.items():
            assert allows(bounds[inverter_id], command_w), (inverter_id, command_w)
            inverter = by_id[inverter_id]
            if inverter.silent:
                inverter.blocked, inverter.unconfirmed = True, False
                # A release is retried when the blocking time ends, not at once.
                again |= self.target_w != 0.0
                continue
            inverter.delivered_w = command_w
            again |= inverter.unconfirmed
            inverter.blocked = inverter.unconfirmed = False
        if not unknown_silent:
            self.check_delivery(decided, units)
        return again

    def counted_power_moved(self) -> None:
        """The actor's tick: a counted inverter whose power moved re-plans at once."""
        if self.last is None:
            return
        moved = counted_moved(
            self.last.counted_w,
            {i.inverter_id: i.delivered_w for i in self.inverters},
            {i.inverter_id: i.resolution_w for i in self.inverters},
        )
        if moved:
            self.rounds()

    # ------------------------------------------------------------- faults

    @rule(data=st.data())
    def goes_silent(self, data: st.DataObject) -> None:
        data.draw(st.sampled_from(self.inverters)).silent = True

    @rule(data=st.data())
    def recovers(self, data: st.DataObject) -> None:
        data.draw(st.sampled_from(self.inverters)).silent = False

    @rule(data=st.data())
    def blocking_time_ends(self, data: st.DataObject) -> None:
        inverter = data.draw(st.sampled_from(self.inverters))
        if inverter.blocked:
            inverter.blocked, inverter.unconfirmed = False, True

    @rule(data=st.data())
    def command_expires(self, data: st.DataObject) -> None:
        """A silent inverter's last command ends: it falls to 0 W on its own.

        Only one the actor already knows as not taking commands: the keep-alive comes
        well within a command's lifetime, so it finds a silent one before that ends.
        """
        inverter = data.draw(st.sampled_from(self.inverters))
        known = inverter.blocked or inverter.unconfirmed or inverter.out_of_service
        if inverter.silent and known:
            inverter.delivered_w = 0.0
            self.counted_power_moved()

    @rule(data=st.data())
    def out_of_service_toggles(self, data: st.DataObject) -> None:
        """Taken out (told 0 W once, which a silent one ignores) or brought back."""
        inverter = data.draw(st.sampled_from(self.inverters))
        inverter.out_of_service = not inverter.out_of_service
        if inverter.out_of_service and not inverter.silent:
            inverter.delivered_w = 0.0
        self.rounds()

    @rule(target_w=targets)
    def target_changes(self, target_w: float) -> None:
        self.target_w = target_w
        self.rounds()

    @rule()
    def keep_alive(self) -> None:
        self.rounds()

    # ------------------------------------------------------------- the invariant

    @invariant()
    def delivers_the_target_within_one_step_when_feasible(self) -> None:
        if self.last is not None:
            self.check_delivery(self.last, self.last_units)

    def check_delivery(self, decided: Plan, units: list[Unit]) -> None:
        """What the inverters deliver is the target within one step, when feasible."""
        if self.target_w == 0.0:
            return  # a release: no one compensates another
        responsive = [u for u in units if reach(u)[0] is Reach.COMMANDED]
        counted = math.fsum(decided.counted_w.values())
        wanted = self.target_w - counted
        reach_w = math.fsum(u.inverter_bounds[0].upper for u in responsive if u.inverter_bounds)
        if not responsive or abs(wanted) > 0.999 * reach_w:
            return  # infeasible: clamped, its excess reported
        delivered = math.fsum(i.delivered_w for i in self.inverters)
        step = max(i.resolution_w for i in self.inverters)
        assert abs(delivered - self.target_w) <= step + 1e-6, (
            f"delivered {delivered:g} W against {self.target_w:g} W; "
            f"commands {decided.commands}, counted {decided.counted_w}"
        )


FaultSequences.TestCase.settings = settings(
    max_examples=examples(1_000), stateful_step_count=25, deadline=None
)
test_fault_sequences = FaultSequences.TestCase
