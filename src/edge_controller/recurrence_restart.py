"""Restarting a recurrence later without changing its occurrences: pure.

Walking a recurrence rule from its start costs time in proportion to how long ago it
started: a minutely rule started ten years ago takes `dateutil` seconds. A rule that
repeats in fixed periods (minutely, hourly, daily, weekly) and has no count yields
the same occurrences from any restart a whole number of steps (period × interval)
after its start: its by-defaults come from the start's time of day and weekday, which
whole periods keep. Restarted just before the time asked about, its evaluation is
bounded in time whatever its age. Months and years vary in length (no restart: they
are cheap to walk); a count counts from the start (no restart either).

The one place of that rule, for the service's end time
(`dispatch_service.rules.last_occurrence`) and for the state the command line lists
(`dispatching.schedule.rebased`).

Frequencies are the API's `RecurrenceRule.Frequency` numbers (1 minutely .. 6
yearly), which both `dispatch_service.model.Frequency` and `frequenz-client-dispatch`'s
`Frequency` use.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Final

FIXED_PERIODS: Final[Mapping[int, timedelta]] = {
    1: timedelta(minutes=1),  # MINUTELY
    2: timedelta(hours=1),  # HOURLY
    3: timedelta(days=1),  # DAILY
    4: timedelta(weeks=1),  # WEEKLY
}
"""The frequencies whose periods all have the same length, and that length."""


def restart_step(frequency: int, interval: int, count: int | None = None) -> timedelta | None:
    """Return the step a rule may be restarted by (period × interval); None if none.

    None for a frequency whose periods vary or that is unset, an interval below 1, or
    a rule with a `count` (it counts its occurrences from the start).
    """
    period = FIXED_PERIODS.get(frequency)
    if period is None or interval < 1 or count is not None:
        return None
    return period * interval


def restart_at_or_before(start: datetime, step: timedelta, moment: datetime) -> datetime:
    """Return the latest `start + k × step` (k ≥ 0, whole) at or before `moment`.

    `start` itself when `moment` is earlier than one step after it. A rule restarted
    there yields the same occurrences from the restart on (see the module).
    """
    steps = (moment - start) // step
    return start + step * max(0, steps)


__all__ = ["FIXED_PERIODS", "restart_at_or_before", "restart_step"]
