"""Where a dispatch stands at a time, and its next start: a table of cases, time injected."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from frequenz.client.dispatch.recurrence import EndCriteria, Frequency, RecurrenceRule
from frequenz.client.dispatch.types import Dispatch, DispatchId, TargetIds

from edge_controller.dispatching.schedule import (
    DispatchSchedule,
    DispatchState,
    dispatch_schedule,
    rebased,
)

NOON = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


def dispatch(
    start: datetime,
    duration: timedelta | None = timedelta(minutes=15),
    *,
    active: bool = True,
    recurrence: RecurrenceRule | None = None,
    end_time: datetime | None = None,
) -> Dispatch:
    """A stored dispatch; `end_time` as the service would compute it for a one-off."""
    rule = recurrence or RecurrenceRule()
    if end_time is None and duration is not None and rule.frequency == Frequency.UNSPECIFIED:
        end_time = start + duration
    return Dispatch(
        id=DispatchId(1),
        type="BATTERY_POWER",
        start_time=start,
        duration=duration,
        target=TargetIds(31),
        active=active,
        dry_run=False,
        payload={"power_w": -50_000.0},
        recurrence=rule,
        create_time=start - timedelta(days=1),
        update_time=start - timedelta(days=1),
        end_time=end_time,
    )


HOURLY = RecurrenceRule(frequency=Frequency.HOURLY, interval=1)
DAILY_THREE = RecurrenceRule(
    frequency=Frequency.DAILY, interval=1, end_criteria=EndCriteria(count=3)
)
DAILY_THREE_STORED = dispatch(
    NOON, recurrence=DAILY_THREE, end_time=NOON + timedelta(days=2, minutes=15)
)
"""Daily from noon, three times, with the end time the service stored."""

PENDING, RUNNING, ENDED = DispatchState.PENDING, DispatchState.RUNNING, DispatchState.ENDED
INACTIVE, DELETED = DispatchState.INACTIVE, DispatchState.DELETED


@pytest.mark.parametrize(
    ("case", "now", "expected"),
    [
        # one-off, 15 minutes from noon
        (dispatch(NOON), NOON - MINUTE, DispatchSchedule(PENDING, NOON)),
        (dispatch(NOON), NOON, DispatchSchedule(RUNNING, None)),
        (dispatch(NOON), NOON + 14 * MINUTE, DispatchSchedule(RUNNING, None)),
        (dispatch(NOON), NOON + 15 * MINUTE, DispatchSchedule(ENDED, None)),
        (dispatch(NOON), NOON + timedelta(days=400), DispatchSchedule(ENDED, None)),
        # indefinite: runs from its start until deleted
        (dispatch(NOON, None), NOON - MINUTE, DispatchSchedule(PENDING, NOON)),
        (dispatch(NOON, None), NOON + timedelta(days=30), DispatchSchedule(RUNNING, None)),
        # switched off: never "running"; ended stays ended
        (dispatch(NOON, active=False), NOON - MINUTE, DispatchSchedule(INACTIVE, NOON)),
        (dispatch(NOON, active=False), NOON + MINUTE, DispatchSchedule(INACTIVE, None)),
        (dispatch(NOON, active=False), NOON + 20 * MINUTE, DispatchSchedule(ENDED, None)),
        # hourly, 15 minutes each, never ending
        (
            dispatch(NOON, recurrence=HOURLY),
            NOON + 5 * MINUTE,
            DispatchSchedule(RUNNING, NOON + timedelta(hours=1)),
        ),
        (
            dispatch(NOON, recurrence=HOURLY),
            NOON + 20 * MINUTE,
            DispatchSchedule(PENDING, NOON + timedelta(hours=1)),
        ),
        (
            dispatch(NOON, recurrence=HOURLY),
            NOON + timedelta(hours=1),
            DispatchSchedule(RUNNING, NOON + timedelta(hours=2)),
        ),
        # daily, three times: ends with the service's end time
        (
            DAILY_THREE_STORED,
            NOON + timedelta(days=1, hours=1),
            DispatchSchedule(PENDING, NOON + timedelta(days=2)),
        ),
        (
            DAILY_THREE_STORED,
            NOON + timedelta(days=2, minutes=16),
            DispatchSchedule(ENDED, None),
        ),
        # ... and without one, by its count
        (
            dispatch(NOON, recurrence=DAILY_THREE, end_time=None),
            NOON + timedelta(days=5),
            DispatchSchedule(ENDED, None),
        ),
    ],
)
def test_state_and_next_start(case: Dispatch, now: datetime, expected: DispatchSchedule) -> None:
    assert dispatch_schedule(case, now) == expected


def test_a_deleted_dispatch_is_deleted_whatever_its_schedule() -> None:
    assert dispatch_schedule(dispatch(NOON), NOON, deleted=True) == DispatchSchedule(DELETED, None)


def test_a_dispatch_that_ended_long_ago_is_no_longer_active_in_the_list() -> None:
    """The new user's case: `active=yes` for a dispatch that ended a year ago."""
    ended = dispatch(NOON - timedelta(days=365))
    assert ended.active
    assert dispatch_schedule(ended, NOON).state is ENDED


def test_a_minutely_rule_started_years_ago_is_evaluated_near_now_and_fast() -> None:
    """Walking ten years of minutes from the start takes the library ~20 s."""
    rule = RecurrenceRule(frequency=Frequency.MINUTELY, interval=1)
    case = dispatch(NOON - timedelta(days=3650), timedelta(seconds=30), recurrence=rule)
    follow = rebased(case, NOON)
    assert NOON - 5 * MINUTE < follow.start_time <= NOON - MINUTE - timedelta(seconds=30)
    began = time.perf_counter()
    assert dispatch_schedule(case, NOON + timedelta(seconds=10)) == DispatchSchedule(
        RUNNING, NOON + MINUTE
    )
    assert dispatch_schedule(case, NOON + timedelta(seconds=40)) == DispatchSchedule(
        PENDING, NOON + MINUTE
    )
    assert time.perf_counter() - began < 1.0


@pytest.mark.parametrize("minutes", [0, 3, 7, 8, 50, 61, 200])
def test_a_restarted_rule_agrees_with_walking_from_the_start(minutes: int) -> None:
    rule = RecurrenceRule(frequency=Frequency.MINUTELY, interval=7, byhours=[12, 14])
    case = dispatch(NOON - timedelta(days=2), timedelta(minutes=2), recurrence=rule)
    now = NOON + timedelta(minutes=minutes, seconds=30)
    assert rebased(case, now).start_time > case.start_time
    runs = case.started_at(now)
    expected = DispatchSchedule(
        RUNNING if runs else PENDING,
        case.next_run_after(now + timedelta(microseconds=1) if runs else now),
    )
    assert dispatch_schedule(case, now) == expected


def test_count_rules_are_not_restarted() -> None:
    case = dispatch(NOON, recurrence=DAILY_THREE, end_time=None)
    assert rebased(case, NOON + timedelta(days=30)) is case
