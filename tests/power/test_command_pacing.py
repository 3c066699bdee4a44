"""Commands that mean something: changes at once, keep-alives in time, no echoes."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from edge_controller.power.command_pacing import (
    MIN_RESEND_INTERVAL,
    CommandPacer,
    Why,
)
from tests.conftest import NOON
from tests.properties import examples

KEEPALIVE = timedelta(seconds=15)
RESOLUTION = 88.0


def test_a_new_inverter_and_a_changed_value_go_at_once() -> None:
    pacer = CommandPacer(KEEPALIVE)
    assert pacer.due(10, -1000.0, NOON, RESOLUTION) is Why.UNKNOWN
    pacer.sent(10, -1000.0, NOON)
    assert pacer.due(10, -1100.0, NOON + timedelta(seconds=0.1), RESOLUTION) is Why.CHANGED


def test_a_value_the_inverter_holds_is_held_back_until_its_keep_alive() -> None:
    pacer = CommandPacer(KEEPALIVE)
    pacer.sent(10, -1000.0, NOON)
    # Less than the resolution apart: the inverter would floor it to the same command.
    assert pacer.due(10, -1000.0 - RESOLUTION / 2, NOON + timedelta(seconds=5), RESOLUTION) is None
    assert pacer.due(10, -1000.0, NOON + KEEPALIVE * 0.74, RESOLUTION) is None
    assert pacer.due(10, -1000.0, NOON + KEEPALIVE * 0.75, RESOLUTION) is Why.KEEPALIVE
    assert pacer.next_due([10]) == NOON + KEEPALIVE


def test_a_failed_or_refused_command_leaves_the_inverter_unknown() -> None:
    pacer = CommandPacer(KEEPALIVE)
    pacer.sent(10, -1000.0, NOON)
    pacer.forget(10)
    assert pacer.due(10, -1000.0, NOON + timedelta(seconds=0.1), RESOLUTION) is Why.UNKNOWN
    assert pacer.next_due([10]) is None


def test_a_reopened_stream_resends_the_same_value_once_after_the_minimum_interval() -> None:
    pacer = CommandPacer(KEEPALIVE)
    pacer.sent(10, -1000.0, NOON)
    pacer.reopened(10)
    early = NOON + MIN_RESEND_INTERVAL / 2
    assert pacer.due(10, -1000.0, early, RESOLUTION) is None
    assert pacer.next_due([10]) == NOON + MIN_RESEND_INTERVAL
    assert pacer.due(10, -1000.0, NOON + MIN_RESEND_INTERVAL, RESOLUTION) is Why.REOPENED
    pacer.sent(10, -1000.0, NOON + MIN_RESEND_INTERVAL)
    later = NOON + MIN_RESEND_INTERVAL * 2
    assert pacer.due(10, -1000.0, later, RESOLUTION) is None  # once, not on every plan


def test_a_reopened_stream_of_an_inverter_never_commanded_changes_nothing() -> None:
    pacer = CommandPacer(KEEPALIVE)
    pacer.reopened(10)
    assert pacer.last(10) is None


plans = st.lists(
    st.tuples(
        st.floats(min_value=0.0, max_value=3.0),  # seconds until the next re-plan
        st.sampled_from([-1000.0, -1000.0, -1000.0, -1030.0, -5000.0]),  # mostly the same
        st.booleans(),  # the stream was re-opened before this plan
    ),
    min_size=1,
    max_size=80,
)


@settings(max_examples=examples(500), deadline=None)
@given(plans)
def test_no_echo_storm_and_no_command_outlives_its_keep_alive(
    steps: list[tuple[float, float, bool]],
) -> None:
    """Re-planned at any rate, an inverter gets one same-value command per interval at
    most, and (planned at least at `next_due`) never goes a keep-alive without one."""
    pacer = CommandPacer(KEEPALIVE)
    now = NOON
    for wait_s, power_w, reopened in steps:
        due_at = pacer.next_due([10])
        now += timedelta(seconds=wait_s)
        if due_at is not None and now > due_at:
            now = due_at  # the actor re-plans at the latest when a command is due
        if reopened:
            pacer.reopened(10)
        if pacer.due(10, power_w, now, RESOLUTION) is not None:
            previous = pacer.last(10)
            if previous is not None and abs(previous.power_w - power_w) < RESOLUTION:
                assert now - previous.at >= MIN_RESEND_INTERVAL  # an echo, rate-limited
            pacer.sent(10, power_w, now)
        last = pacer.last(10)
        assert last is not None
        assert now - last.at <= KEEPALIVE
