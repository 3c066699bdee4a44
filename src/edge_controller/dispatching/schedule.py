"""Where a dispatch stands at a given time, and when it next starts: pure.

`dispatch_schedule(dispatch, now)` answers what `edge-controller dispatch list` shows:

- `deleted` — the dispatch was deleted (known from a deletion event or a delete call;
  the service forgets deleted dispatches, so a list never shows this);
- `ended` — it will not run again: the service's end time (the end of the last
  occurrence) is past, or nothing is left of its schedule;
- `inactive` — switched off (`active=no`) and not ended: it would not run now;
- `running` — an occurrence runs at `now` (start ≤ now < start + duration; an
  indefinite one runs from its start on);
- `pending` — it starts later (`next_start`).

`next_start` is the start of the next occurrence after `now` (the first for a pending
one-off dispatch, the following one for a running recurring dispatch), None when
there is none.

The occurrence arithmetic has the semantics of `frequenz-client-dispatch`'s
`started_at` and `next_run_after`, which the controller's dispatcher runs on, so the
list says what the controller will do; but those walk a recurrence from its start
(2.7 s per call for a minutely dispatch a year old), so `runs_at` and
`next_start_after` read the occurrences off the calendar instead
(`edge_controller.common.occurrences`, checked against the library on random rules): "is it
running now" searches back one duration, whatever the dispatch's age. The controller's
own paths (`offline.running_at`, the hand-over from the cached schedule) use them too.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from frequenz.client.dispatch.recurrence import Frequency, RecurrenceRule, Weekday
from frequenz.client.dispatch.types import Dispatch

from edge_controller.common import occurrences

_ONE_MICROSECOND = timedelta(microseconds=1)


class DispatchState(StrEnum):
    """Where a dispatch stands; the value is what the command line prints."""

    PENDING = "pending"
    RUNNING = "running"
    ENDED = "ended"
    DELETED = "deleted"
    INACTIVE = "inactive"


@dataclass(frozen=True, slots=True)
class DispatchSchedule:
    """A dispatch's state at a time, and the start of its next occurrence (or None)."""

    state: DispatchState
    next_start: datetime | None


def _is_recurring(dispatch: Dispatch) -> bool:
    return dispatch.recurrence.frequency not in (None, Frequency.UNSPECIFIED)


def calendar_rule(rule: RecurrenceRule) -> occurrences.Rule:
    """The client library's rule in `occurrences`' terms (the same API numbers)."""
    end = rule.end_criteria
    return occurrences.Rule(
        freq=int(rule.frequency),
        interval=rule.interval,
        byminutes=tuple(rule.byminutes),
        byhours=tuple(rule.byhours),
        byweekdays=tuple(int(day) for day in rule.byweekdays),
        bymonthdays=tuple(rule.bymonthdays),
        bymonths=tuple(rule.bymonths),
        count=None if end is None else end.count,
        until=None if end is None else end.until,
    )


def runs_at(dispatch: Dispatch, now: datetime) -> bool:
    """Whether an occurrence of `dispatch` runs at `now`: the library's `started_at`.

    False for an inactive or deleted dispatch; an indefinite one runs from its start
    on. Only occurrences that started within one duration before `now` are searched.

    Raises:
        ValueError: for a recurring rule with interval 0, as the library does.
    """
    if not dispatch.active or getattr(dispatch, "deleted", False):
        return False
    return _occurrence_runs(dispatch, now)


def _occurrence_runs(dispatch: Dispatch, now: datetime) -> bool:
    if now < dispatch.start_time:
        return False
    if dispatch.duration is None:
        return True
    if not _is_recurring(dispatch):
        return now < dispatch.start_time + dispatch.duration
    latest = occurrences.last_at_or_before(
        calendar_rule(dispatch.recurrence), dispatch.start_time, now, now - dispatch.duration
    )
    return latest is not None and now < latest + dispatch.duration


def running_now(dispatch: Dispatch, now: datetime | None = None) -> bool:
    """Whether a use case runs `dispatch` now: not deleted, active, an occurrence on.

    The one answer the broadcaster and the use cases give (the library's `deleted`,
    `active` and `started`, without `started`'s walk from the first occurrence). A
    recurrence the library cannot follow (interval 0) does not run.
    """
    if getattr(dispatch, "deleted", False):
        return False
    try:
        return runs_at(dispatch, datetime.now(UTC) if now is None else now)
    except ValueError:
        return False


def next_start_after(dispatch: Dispatch, after: datetime) -> datetime | None:
    """The first start at or after `after`: the library's `next_run_after`.

    None when there is none within `occurrences.SEARCH_SPAN` of `after`.

    Raises:
        ValueError: for a recurring rule with interval 0, as the library does.
    """
    if not _is_recurring(dispatch) or dispatch.duration is None:
        return None if after > dispatch.start_time else dispatch.start_time
    if Weekday.UNSPECIFIED in dispatch.recurrence.byweekdays:
        return None
    rule = calendar_rule(dispatch.recurrence)
    return occurrences.first_at_or_after(
        rule, dispatch.start_time, after, occurrences.search_limit(rule, after)
    )


def dispatch_schedule(
    dispatch: Dispatch, now: datetime, *, deleted: bool = False
) -> DispatchSchedule:
    """Return where `dispatch` stands at `now` and when it next starts (see the module)."""
    if deleted:
        return DispatchSchedule(DispatchState.DELETED, None)
    if dispatch.end_time is not None and now >= dispatch.end_time:
        return DispatchSchedule(DispatchState.ENDED, None)
    # `runs_at` is False for an inactive dispatch: judge the schedule as if active.
    try:
        runs = _occurrence_runs(dispatch, now)
        next_start = next_start_after(dispatch, now + _ONE_MICROSECOND if runs else now)
    except ValueError:  # a rule the library cannot follow: judge by the first run
        end = None if dispatch.duration is None else dispatch.start_time + dispatch.duration
        runs = dispatch.start_time <= now and (end is None or now < end)
        next_start = dispatch.start_time if now < dispatch.start_time else None
    if not runs and next_start is None:
        return DispatchSchedule(DispatchState.ENDED, None)
    if not dispatch.active:
        return DispatchSchedule(DispatchState.INACTIVE, next_start)
    if runs:
        return DispatchSchedule(DispatchState.RUNNING, next_start)
    return DispatchSchedule(DispatchState.PENDING, next_start)


__all__ = [
    "DispatchSchedule",
    "DispatchState",
    "calendar_rule",
    "dispatch_schedule",
    "next_start_after",
    "runs_at",
]
