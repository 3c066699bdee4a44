"""Where a dispatch stands at a time, and its next start: a table of cases, time injected."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import NoReturn

import pytest
from frequenz.client.dispatch.recurrence import EndCriteria, Frequency, RecurrenceRule
from frequenz.client.dispatch.types import Dispatch, DispatchId, TargetIds
from frequenz.dispatch import Dispatch as LiveDispatch

from edge_controller.dispatching.offline import running_at
from edge_controller.dispatching.schedule import (
    DispatchSchedule,
    DispatchState,
    dispatch_schedule,
    running_now,
    runs_at,
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


def _no_walk(*_args: object, **_kwargs: object) -> NoReturn:
    raise AssertionError("the library's rrule walk was called")


def test_a_minutely_dispatch_a_year_old_is_judged_without_the_librarys_walk(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The library walks from the first occurrence: 2.7 s a call here, every tick."""
    rule = RecurrenceRule(frequency=Frequency.MINUTELY, interval=7, byhours=[12, 14])
    base = dispatch(NOON - timedelta(days=365, seconds=20), timedelta(minutes=2), recurrence=rule)
    case = LiveDispatch(base)
    # The library's answers, from the walk, before it is forbidden.
    moments = [NOON + timedelta(minutes=m, seconds=30) for m in (0, 3, 7, 8, 50, 61, 120, 200)]
    expected = [
        (case.started_at(now), case.next_run_after(now + timedelta(microseconds=1)))
        for now in moments
    ]
    monkeypatch.setattr(RecurrenceRule, "_as_rrule", _no_walk)
    for now, (runs, next_run) in zip(moments, expected, strict=True):
        assert runs_at(case, now) is runs
        assert running_now(case, now) is runs  # the use cases and the broadcaster ask this
        assert running_at([case], now) == (frozenset({1}) if runs else frozenset())
        schedule = dispatch_schedule(case, now)
        assert schedule.state is (RUNNING if runs else PENDING)
        if not runs:
            assert schedule.next_start == next_run
    running = [now for now, (runs, _) in zip(moments, expected, strict=True) if runs]
    assert running, "the cases include a running moment"
    assert runs_at(base, running[0])
    assert not runs_at(LiveDispatch(base, deleted=True), running[0])
    assert not runs_at(replace(base, active=False), running[0])
