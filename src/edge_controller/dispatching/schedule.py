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

The occurrence arithmetic is `frequenz-client-dispatch`'s own (`started_at`,
`next_run_after`), which the controller's dispatcher runs on, so the list says what the
controller will do. It walks a recurrence from its start, so a minutely rule started
years ago would take seconds: a rule that may be restarted (`recurrence_restart`:
fixed periods, no count) is restarted just before `now`, as `dispatch_service.rules`
does for its end time; count rules are bounded by their count (at most 4096 in the
API).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from frequenz.client.dispatch.recurrence import Frequency
from frequenz.client.dispatch.types import Dispatch

from edge_controller.recurrence_restart import restart_at_or_before, restart_step

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


def rebased(dispatch: Dispatch, now: datetime) -> Dispatch:
    """Return `dispatch` with its recurrence restarted just before `now`, if that is exact.

    Only for rules `recurrence_restart.restart_step` allows (fixed periods, no count).
    The restart lies at least one step and one duration before `now`, so the
    occurrence running at `now` is still found.
    """
    rule = dispatch.recurrence
    count = None if rule.end_criteria is None else rule.end_criteria.count
    step = restart_step(rule.frequency, rule.interval, count)
    if step is None:
        return dispatch
    margin = step + (dispatch.duration or timedelta(0))
    restart = restart_at_or_before(dispatch.start_time, step, now - margin)
    if restart == dispatch.start_time:
        return dispatch
    return dataclasses.replace(dispatch, start_time=restart)


def dispatch_schedule(
    dispatch: Dispatch, now: datetime, *, deleted: bool = False
) -> DispatchSchedule:
    """Return where `dispatch` stands at `now` and when it next starts (see the module)."""
    if deleted:
        return DispatchSchedule(DispatchState.DELETED, None)
    if dispatch.end_time is not None and now >= dispatch.end_time:
        return DispatchSchedule(DispatchState.ENDED, None)
    # `started_at` is False for an inactive dispatch: judge the schedule as if active.
    follow = rebased(dataclasses.replace(dispatch, active=True), now)
    try:
        runs = follow.started_at(now)
        next_start = follow.next_run_after(now + _ONE_MICROSECOND if runs else now)
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


__all__ = ["DispatchSchedule", "DispatchState", "dispatch_schedule", "rebased"]
