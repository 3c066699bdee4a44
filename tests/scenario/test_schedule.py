"""The in-process dispatch scheduler, on the client `Dispatch` type's own arithmetic."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from frequenz.client.dispatch.recurrence import EndCriteria, Frequency, RecurrenceRule
from frequenz.client.dispatch.types import Dispatch, DispatchId, TargetIds

from edge_controller.tools.scenario.schedule import DispatchSchedule, ScheduleError, windows

T0 = datetime(2025, 6, 21, 12, tzinfo=UTC)
QUARTER = timedelta(minutes=15)


def dispatch(
    dispatch_id: int,
    start: datetime,
    duration: timedelta | None = QUARTER,
    *,
    recurrence: RecurrenceRule | None = None,
    active: bool = True,
) -> Dispatch:
    return Dispatch(
        id=DispatchId(dispatch_id),
        type="BATTERY_POWER",
        start_time=start,
        duration=duration,
        target=TargetIds(11),
        active=active,
        dry_run=False,
        payload={"power_w": -1000.0},
        recurrence=recurrence or RecurrenceRule(),
        create_time=T0 - timedelta(hours=1),
        update_time=T0 - timedelta(hours=1),
    )


def test_a_dispatch_runs_from_its_start_until_before_its_end() -> None:
    schedule = DispatchSchedule().add(dispatch(1, T0), T0 - timedelta(minutes=5))
    assert schedule.running(T0 - timedelta(seconds=1)) == ()
    assert [int(d.id) for d in schedule.running(T0)] == [1]
    assert [int(d.id) for d in schedule.running(T0 + QUARTER - timedelta(seconds=1))] == [1]
    assert schedule.running(T0 + QUARTER) == ()
    assert schedule.next_start(T0 - timedelta(minutes=1)) == T0
    assert schedule.next_start(T0 + timedelta(seconds=1)) is None


def test_finished_dispatches_are_pruned_the_others_kept() -> None:
    schedule = (
        DispatchSchedule()
        .add(dispatch(1, T0), T0)
        .add(dispatch(2, T0 + QUARTER), T0)
        .add(dispatch(3, T0 + 2 * QUARTER), T0)
    )
    assert schedule.prune(T0) is schedule
    later = schedule.prune(T0 + QUARTER)
    assert [int(d.id) for d in later.dispatches] == [2, 3]
    assert [int(d.id) for d in later.running(T0 + QUARTER)] == [2]


def test_a_start_in_the_past_or_a_known_id_is_refused() -> None:
    with pytest.raises(ScheduleError, match=r"dispatch 1: start_time .* is in the past"):
        DispatchSchedule().add(dispatch(1, T0), T0 + timedelta(seconds=1))
    schedule = DispatchSchedule().add(dispatch(1, T0), T0)
    with pytest.raises(ScheduleError, match="dispatch 1: id already scheduled"):
        schedule.add(dispatch(1, T0 + QUARTER), T0)


def test_an_inactive_dispatch_never_runs() -> None:
    schedule = DispatchSchedule().add(dispatch(1, T0, active=False), T0)
    assert schedule.running(T0) == ()
    assert windows(schedule.dispatches[0], T0, T0 + QUARTER) == []


def test_windows_are_clipped_to_the_interval() -> None:
    one = dispatch(1, T0)
    assert windows(one, T0 - QUARTER, T0 + 2 * QUARTER) == [(T0, T0 + QUARTER)]
    assert windows(one, T0 + timedelta(minutes=5), T0 + 2 * QUARTER) == [
        (T0 + timedelta(minutes=5), T0 + QUARTER)
    ]
    assert windows(one, T0 + QUARTER, T0 + 2 * QUARTER) == []
    endless = dispatch(2, T0, None)
    assert windows(endless, T0 - QUARTER, T0 + QUARTER) == [(T0, T0 + QUARTER)]


def test_windows_walk_recurrences_with_next_run_after() -> None:
    hourly = dispatch(
        1,
        T0,
        recurrence=RecurrenceRule(
            frequency=Frequency.HOURLY, interval=1, end_criteria=EndCriteria(count=3)
        ),
    )
    hour = timedelta(hours=1)
    assert windows(hourly, T0 + timedelta(minutes=10), T0 + 10 * hour) == [
        (T0 + timedelta(minutes=10), T0 + QUARTER),
        (T0 + hour, T0 + hour + QUARTER),
        (T0 + 2 * hour, T0 + 2 * hour + QUARTER),
    ]
    schedule = DispatchSchedule((hourly,))
    assert [int(d.id) for d in schedule.running(T0 + hour + timedelta(minutes=1))] == [1]
    assert schedule.running(T0 + hour + QUARTER) == ()
    assert schedule.prune(T0 + 3 * hour).dispatches == ()
