"""Restarting a recurrence a whole number of fixed periods later: the one rule."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Literal

import pytest
from dateutil import rrule
from frequenz.client.dispatch.recurrence import Frequency as ClientFrequency

from edge_controller.dispatch_service.model import Frequency
from edge_controller.recurrence_restart import (
    FIXED_PERIODS,
    restart_at_or_before,
    restart_step,
)

START = datetime(2020, 3, 1, 12, 0, 7, tzinfo=UTC)


def test_both_frequency_enums_are_the_api_numbers_the_table_uses() -> None:
    for name in ("MINUTELY", "HOURLY", "DAILY", "WEEKLY", "MONTHLY", "YEARLY"):
        assert int(Frequency[name]) == int(ClientFrequency[name])
    assert FIXED_PERIODS[Frequency.MINUTELY] == timedelta(minutes=1)
    assert FIXED_PERIODS[ClientFrequency.WEEKLY] == timedelta(weeks=1)


@pytest.mark.parametrize(
    ("frequency", "interval", "count", "step"),
    [
        (Frequency.MINUTELY, 7, None, timedelta(minutes=7)),
        (Frequency.HOURLY, 1, None, timedelta(hours=1)),
        (Frequency.DAILY, 2, None, timedelta(days=2)),
        (Frequency.WEEKLY, 3, None, timedelta(weeks=3)),
        (Frequency.MONTHLY, 1, None, None),  # months vary in length
        (Frequency.YEARLY, 1, None, None),
        (Frequency.UNSPECIFIED, 1, None, None),
        (Frequency.DAILY, 0, None, None),
        (Frequency.DAILY, 1, 5, None),  # a count counts from the start
    ],
)
def test_which_rules_may_be_restarted(
    frequency: int, interval: int, count: int | None, step: timedelta | None
) -> None:
    assert restart_step(frequency, interval, count) == step


def test_the_restart_is_a_whole_number_of_steps_at_or_before_the_moment() -> None:
    step = timedelta(minutes=7)
    assert restart_at_or_before(START, step, START + 3 * step) == START + 3 * step
    assert restart_at_or_before(START, step, START + 3 * step - timedelta(seconds=1)) == (
        START + 2 * step
    )
    assert restart_at_or_before(START, step, START + timedelta(seconds=1)) == START
    assert restart_at_or_before(START, step, START - timedelta(days=1)) == START
    # Ten years of minutes: one division, not a walk.
    far = START + timedelta(days=3650, seconds=30)
    restart = restart_at_or_before(START, timedelta(minutes=1), far)
    assert far - timedelta(minutes=1) < restart <= far


RRULE_FREQUENCY: dict[Frequency, Literal[0, 1, 2, 3, 4, 5, 6]] = {
    Frequency.MINUTELY: rrule.MINUTELY,
    Frequency.HOURLY: rrule.HOURLY,
    Frequency.DAILY: rrule.DAILY,
    Frequency.WEEKLY: rrule.WEEKLY,
}


@pytest.mark.parametrize("frequency", list(RRULE_FREQUENCY))
def test_a_restarted_rule_yields_the_same_occurrences_from_the_restart_on(
    frequency: Frequency,
) -> None:
    step = restart_step(frequency, 3)
    assert step is not None
    restart = restart_at_or_before(START, step, START + 50 * step + step / 2)
    assert restart == START + 50 * step
    freq = RRULE_FREQUENCY[frequency]
    original = rrule.rrule(freq, dtstart=START, interval=3, count=80, cache=False)
    restarted = rrule.rrule(freq, dtstart=restart, interval=3, count=20, cache=False)
    assert list(restarted) == [moment for moment in original if moment >= restart][:20]
