"""Running a known dispatch schedule without the dispatch service: which runs when.

Pure: given the dispatches and the set that was running, `changes_at(now)` says which
started and which stopped, with the dispatch library's semantics (`started_at`,
recurrence included) so the offline schedule matches what the service would have
sent, but not its walk from the first occurrence (seconds per call for a minutely
dispatch a year old, every tick): `schedule.runs_at` searches back one duration.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from frequenz.dispatch import Dispatch

from edge_controller.dispatching.schedule import runs_at


@dataclass(frozen=True, slots=True)
class Changes:
    """Dispatches whose running state changed since the last evaluation."""

    started: tuple[Dispatch, ...]
    stopped: tuple[Dispatch, ...]


def running_at(dispatches: Iterable[Dispatch], now: datetime) -> frozenset[int]:
    """Return the ids of the active dispatches running at `now`."""
    return frozenset(int(d.id) for d in dispatches if runs_at(d, now))


def changes_at(
    dispatches: Iterable[Dispatch], was_running: frozenset[int], now: datetime
) -> tuple[Changes, frozenset[int]]:
    """Return what started and stopped since `was_running`, and the new running set."""
    known = {int(d.id): d for d in dispatches}
    running = running_at(known.values(), now)
    return (
        Changes(
            started=tuple(known[i] for i in sorted(running - was_running)),
            stopped=tuple(known[i] for i in sorted(was_running - running) if i in known),
        ),
        running,
    )
