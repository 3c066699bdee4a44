from datetime import datetime, timedelta

import pytest

from edge_controller.microgrid.recovery import (
    ComponentRecovery,
    RecoveryAction,
    RecoveryConfig,
    RecoveryPhase,
    RecoveryTracker,
)
from edge_controller.microgrid.telemetry import ComponentState
from tests.conftest import NOON

ERROR, STANDBY, READY = ComponentState.ERROR, ComponentState.STANDBY, ComponentState.READY
A = RecoveryAction


def seconds(value: float) -> timedelta:
    return timedelta(seconds=value)


class Walk:
    """A table of cycles: each step leaps the clock, feeds a state, checks the action."""

    def __init__(self, config: RecoveryConfig | None = None) -> None:
        self.machine = ComponentRecovery(10, config)
        self.now = NOON

    def step(self, state: ComponentState, expect: RecoveryAction, *, after: float = 0.0) -> "Walk":
        self.now += seconds(after)
        decision = self.machine.observe(state, self.now)
        assert decision.action is expect, (self.now - NOON, state, decision)
        assert decision.component_id == 10
        assert decision.in_distribution == (decision.phase is RecoveryPhase.IN_SERVICE)
        return self

    def fail(self, expect: RecoveryAction = A.NONE, *, after: float = 0.0) -> "Walk":
        self.now += seconds(after)
        assert self.machine.command_failed(self.now).action is expect
        return self

    def phase(self) -> RecoveryPhase:
        return self.machine.phase

    @property
    def next_check_in(self) -> float | None:
        due: datetime | None = self.machine.next_check_at
        return None if due is None else (due - self.now).total_seconds()


def test_error_is_acknowledged_started_and_put_back() -> None:
    walk = Walk()
    walk.step(READY, A.NONE).step(ERROR, A.TAKE_OUT)
    assert walk.phase() is RecoveryPhase.WAITING
    assert walk.next_check_in == 0  # the first attempt is due at once
    walk.step(ERROR, A.ACK_ERROR)
    assert walk.phase() is RecoveryPhase.ACKNOWLEDGING
    walk.step(ERROR, A.NONE)  # same telemetry again: waiting for the ack to show
    walk.step(STANDBY, A.START, after=0.5)
    walk.step(STANDBY, A.NONE, after=0.5)
    walk.step(READY, A.PUT_BACK, after=0.5)
    assert walk.machine.in_distribution
    assert walk.machine.next_check_at is None
    walk.step(ComponentState.DISCHARGING, A.NONE, after=0.5)


def test_standby_is_only_started() -> None:
    walk = Walk().step(STANDBY, A.TAKE_OUT).step(STANDBY, A.START)
    assert walk.phase() is RecoveryPhase.STARTING
    walk.step(ComponentState.SWITCHING_ON, A.NONE, after=1)
    walk.step(READY, A.PUT_BACK, after=1)


def test_a_device_that_goes_straight_to_ready_after_the_ack_is_put_back() -> None:
    Walk().step(ERROR, A.TAKE_OUT).step(ERROR, A.ACK_ERROR).step(READY, A.PUT_BACK, after=1)


def test_off_after_our_own_ack_is_started() -> None:
    walk = Walk().step(ERROR, A.TAKE_OUT).step(ERROR, A.ACK_ERROR)
    walk.step(ComponentState.OFF, A.START, after=1)


def test_repeated_failure_grows_the_backoff_and_then_gives_up() -> None:
    walk = Walk().step(ERROR, A.TAKE_OUT)
    waits = []
    for attempt in range(1, 6):
        walk.step(ERROR, A.ACK_ERROR)
        assert walk.machine.attempts == attempt
        expect_after = A.GIVE_UP if attempt == 5 else A.NONE
        walk.fail(expect_after, after=0.1)  # FAILED_PRECONDITION: the cause persists
        if attempt < 5:
            assert walk.phase() is RecoveryPhase.WAITING
            wait = walk.next_check_in
            assert wait is not None
            waits.append(wait)
            walk.step(ERROR, A.NONE, after=wait - 0.01)  # not yet
            walk.now += seconds(0.01)
    assert waits == [2, 4, 8, 16]
    assert walk.phase() is RecoveryPhase.GAVE_UP
    walk.step(ERROR, A.NONE, after=3600)  # stays out, never tries again
    assert not walk.machine.in_distribution
    assert walk.machine.next_check_at is None
    # someone fixed it: back in, and a later fault gets the full set of attempts again
    walk.step(READY, A.PUT_BACK).step(ERROR, A.TAKE_OUT).step(ERROR, A.ACK_ERROR)


def test_the_backoff_is_capped() -> None:
    config = RecoveryConfig(max_backoff=seconds(5), max_attempts=10)
    assert [config.backoff(n).total_seconds() for n in range(1, 6)] == [2, 4, 5, 5, 5]


def test_no_progress_within_the_response_timeout_is_a_failed_attempt() -> None:
    walk = Walk(RecoveryConfig(response_timeout=seconds(10)))
    walk.step(ERROR, A.TAKE_OUT).step(ERROR, A.ACK_ERROR)
    assert walk.next_check_in == 10
    walk.step(ERROR, A.NONE, after=9.9)
    walk.step(ERROR, A.NONE, after=0.1)  # timed out: back to waiting, 2 s
    assert walk.phase() is RecoveryPhase.WAITING
    assert walk.next_check_in == 2
    walk.step(ERROR, A.ACK_ERROR, after=2)
    walk.step(STANDBY, A.START, after=1)
    walk.step(STANDBY, A.NONE, after=10)  # start timed out too
    walk.step(STANDBY, A.START, after=4)  # attempt 3 starts straight away: no error to ack


def test_a_relapse_into_error_while_starting_fails_the_attempt() -> None:
    walk = Walk().step(ERROR, A.TAKE_OUT).step(ERROR, A.ACK_ERROR).step(STANDBY, A.START)
    walk.step(ERROR, A.NONE, after=0.5)
    assert walk.phase() is RecoveryPhase.WAITING
    assert walk.next_check_in == 2


def test_a_flapping_component_keeps_its_count_until_stable() -> None:
    config = RecoveryConfig(max_attempts=3, stable_after=seconds(60))
    walk = Walk(config)
    walk.step(STANDBY, A.TAKE_OUT).step(STANDBY, A.START).step(READY, A.PUT_BACK)
    # faults again within a minute: the next attempt waits the backoff
    walk.step(STANDBY, A.TAKE_OUT, after=5)
    assert walk.next_check_in == 2
    walk.step(STANDBY, A.START, after=2).step(READY, A.PUT_BACK)
    walk.step(STANDBY, A.TAKE_OUT, after=5)
    walk.step(STANDBY, A.START, after=4).step(READY, A.PUT_BACK)
    walk.step(STANDBY, A.TAKE_OUT, after=5)
    walk.step(STANDBY, A.GIVE_UP, after=8)
    # a stable minute clears the count
    fresh = Walk(config)
    fresh.step(STANDBY, A.TAKE_OUT).step(STANDBY, A.START).step(READY, A.PUT_BACK)
    fresh.step(READY, A.NONE, after=60)
    fresh.step(STANDBY, A.TAKE_OUT, after=1)
    assert fresh.next_check_in == 0


def test_off_unavailable_and_switching_are_taken_out_without_commands() -> None:
    for state in (
        ComponentState.OFF,
        ComponentState.UNAVAILABLE,
        ComponentState.SWITCHING_OFF,
        ComponentState.SWITCHING_ON,
    ):
        walk = Walk().step(state, A.TAKE_OUT)
        assert walk.phase() is RecoveryPhase.HELD
        walk.step(state, A.NONE, after=600)
        walk.step(READY, A.PUT_BACK)
    # from held into error: the recovery starts without a second take-out
    Walk().step(ComponentState.OFF, A.TAKE_OUT).step(ERROR, A.ACK_ERROR)


def test_unknown_state_changes_nothing() -> None:
    walk = Walk().step(ComponentState.UNKNOWN, A.NONE)
    assert walk.machine.in_distribution
    walk.step(ERROR, A.TAKE_OUT).step(ComponentState.UNKNOWN, A.NONE)
    assert walk.phase() is RecoveryPhase.WAITING
    decision = walk.machine.observe(ComponentState.UNKNOWN, walk.now)
    assert decision.next_check_at is None  # nothing to act on until telemetry says more


def test_disabled_recovery_does_nothing() -> None:
    walk = Walk(RecoveryConfig(enabled=False))
    walk.step(ERROR, A.NONE).step(STANDBY, A.NONE, after=10)
    walk.fail(A.NONE)
    assert walk.machine.in_distribution


def test_a_late_failure_report_is_ignored() -> None:
    walk = Walk().step(ERROR, A.TAKE_OUT).step(ERROR, A.ACK_ERROR).step(READY, A.PUT_BACK)
    walk.fail(A.NONE)
    assert walk.phase() is RecoveryPhase.IN_SERVICE


def test_the_tracker_keeps_one_machine_per_component() -> None:
    tracker = RecoveryTracker()
    assert tracker.observe(10, ERROR, NOON).action is A.TAKE_OUT
    assert tracker.observe(20, READY, NOON).action is A.NONE
    assert tracker.observe(30, STANDBY, NOON).action is A.TAKE_OUT
    assert tracker.out_of_distribution() == {10, 30}
    assert tracker.out_of_distribution([20, 30, 99]) == {30}
    assert tracker.observe(10, ERROR, NOON).action is A.ACK_ERROR
    assert tracker.command_failed(10, NOON).action is A.NONE
    assert tracker.next_check_at() == NOON  # 30's first attempt is due
    assert tracker.observe(30, STANDBY, NOON).action is A.START
    assert tracker.next_check_at() == NOON + seconds(2)  # 10's backoff


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"initial_backoff": seconds(0)}, "initial_backoff"),
        ({"response_timeout": seconds(-1)}, "response_timeout"),
        ({"initial_backoff": seconds(10), "max_backoff": seconds(5)}, "max_backoff"),
        ({"max_attempts": 0}, "max_attempts"),
    ],
)
def test_bad_settings_are_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RecoveryConfig(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "states",
    [
        [ERROR, ERROR, STANDBY, READY],
        [STANDBY, ComponentState.SWITCHING_ON, READY],
        [ComponentState.OFF, ERROR, ComponentState.UNKNOWN, READY],
    ],
)
def test_the_actor_loop_settles_within_three_calls(states: list[ComponentState]) -> None:
    machine = ComponentRecovery(10)
    for state in states:
        calls = 1
        decision = machine.observe(state, NOON)
        while decision.action is not A.NONE:
            calls += 1
            decision = machine.observe(state, NOON)
        assert calls <= 3
