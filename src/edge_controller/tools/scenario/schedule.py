"""An in-process dispatch scheduler on the client `Dispatch` type's own time arithmetic.

In the field, dispatches travel through the Dispatch API and `frequenz-dispatch` tells
the BatteryPowerActor when each one starts and stops, on the wall clock. A simulated
day runs faster than that, so the scenario keeps its dispatches here and asks, at the
scenario's time:

- `running(now)`: those `dispatching.schedule.running_now` runs — the answer the
  controller's broadcaster and use cases give (not deleted, active, at or after a
  start, before that run's end — the end is exclusive);
- `windows(...)`: the run windows within an interval, walked with
  `Dispatch.next_run_after` (recurrences included), for the energy still committed;
- `prune(now)`: drops a dispatch that is not running and has no next run.

```
add(d, now) ──► pending ──started_at──► running ──end──► finished ──prune──► gone
     └─ start before now: refused, as the Dispatch API refuses past starts
```

Immutable: every change returns a new `DispatchSchedule`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from frequenz.client.dispatch.types import Dispatch

from edge_controller.dispatching.schedule import running_now

MAX_WINDOWS = 10_000
"""Cap on run windows walked per dispatch and call (a minutely rule over days)."""
_TICK = timedelta(microseconds=1)


class ScheduleError(ValueError):
    """A dispatch the scheduler refuses; carries the dispatch."""

    def __init__(self, dispatch: Dispatch, problem: str) -> None:
        """Describe why `dispatch` is refused."""
        super().__init__(f"dispatch {int(dispatch.id)}: {problem}")
        self.dispatch = dispatch


@dataclass(frozen=True, slots=True)
class DispatchSchedule:
    """The dispatches known to the scenario, in the order they were added."""

    dispatches: tuple[Dispatch, ...] = ()

    def add(self, dispatch: Dispatch, now: datetime) -> DispatchSchedule:
        """Return the schedule with `dispatch` added.

        Raises:
            ScheduleError: its start is before `now` (the Dispatch API refuses past
                starts), or its id is already scheduled.
        """
        if dispatch.start_time < now:
            raise ScheduleError(
                dispatch,
                f"start_time {dispatch.start_time.isoformat()} is in the past "
                f"(now {now.isoformat()})",
            )
        if any(int(d.id) == int(dispatch.id) for d in self.dispatches):
            raise ScheduleError(dispatch, "id already scheduled")
        return DispatchSchedule((*self.dispatches, dispatch))

    def running(self, now: datetime) -> tuple[Dispatch, ...]:
        """Return the dispatches running at `now`, as the controller's use cases see them."""
        return tuple(d for d in self.dispatches if running_now(d, now))

    def next_start(self, now: datetime) -> datetime | None:
        """Return the earliest run start at or after `now`, or None."""
        starts = [s for d in self.dispatches if (s := d.next_run_after(now)) is not None]
        return min(starts, default=None)

    def prune(self, now: datetime) -> DispatchSchedule:
        """Return the schedule without dispatches that are finished at `now`."""
        keep = tuple(
            d for d in self.dispatches if running_now(d, now) or d.next_run_after(now) is not None
        )
        return self if len(keep) == len(self.dispatches) else DispatchSchedule(keep)


def windows(
    dispatch: Dispatch, since: datetime, until: datetime
) -> list[tuple[datetime, datetime]]:
    """Return the dispatch's run windows within `[since, until)`, clipped to it.

    An inactive dispatch has none; one without a duration runs from its start on.
    """
    if not dispatch.active or until <= since:
        return []
    if dispatch.duration is None:
        begin = max(dispatch.start_time, since)
        return [(begin, until)] if begin < until else []
    found: list[tuple[datetime, datetime]] = []
    after = since - dispatch.duration  # a run that started earlier may still be on
    for _ in range(MAX_WINDOWS):
        start = dispatch.next_run_after(after)
        if start is None or start >= until:
            break
        end = start + dispatch.duration
        if end > since:
            found.append((max(start, since), min(end, until)))
        after = start + _TICK
    return found


__all__ = ["MAX_WINDOWS", "DispatchSchedule", "ScheduleError", "windows"]
