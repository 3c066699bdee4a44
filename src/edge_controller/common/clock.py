"""The one notion of time that the simulator and the controller share.

Everything that needs "now" takes a `Clock` instead of calling `datetime.now()`, so
tests can step time by hand and scenario runs can compress a day into seconds, with
the same code that runs on a site against the wall clock.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    """A source of timezone-aware UTC timestamps."""

    def now(self) -> datetime:
        """Return the current time (timezone-aware, UTC)."""
        ...


class WallClock:
    """The real time: what production and the Frequenz clients schedule with."""

    def now(self) -> datetime:
        """Return the wall-clock time."""
        return datetime.now(UTC)


class ManualClock:
    """A clock that only moves when told to: for tests that leap over minutes.

    Thread-safe, because tests advance it from their own thread while a server reads
    it from its event loop.
    """

    def __init__(self, start: datetime | None = None) -> None:
        """Start at `start` (default: the wall-clock time at creation)."""
        if start is not None and start.tzinfo is None:
            raise ValueError(f"ManualClock needs a timezone-aware start, got {start!r}")
        self._now = start if start is not None else datetime.now(UTC)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        """Return the time the clock was last set to."""
        with self._lock:
            return self._now

    def advance(self, delta: timedelta | float) -> datetime:
        """Move forward by `delta` (a timedelta or seconds) and return the new time."""
        step = delta if isinstance(delta, timedelta) else timedelta(seconds=delta)
        if step < timedelta(0):
            raise ValueError(f"a clock never moves backwards, got {step}")
        with self._lock:
            self._now += step
            return self._now


class ScaledClock:
    """A clock that runs `speed` times faster than the wall clock from `start`.

    For scenario runs that replay a simulated day in minutes in one process; never for
    anything whose timestamps a real Frequenz client reads.
    """

    def __init__(self, speed: float, start: datetime | None = None) -> None:
        """Run `speed` times as fast as real time, starting at `start`."""
        if not speed > 0:
            raise ValueError(f"speed must be > 0, got {speed}")
        self._speed = speed
        self._start = start if start is not None else datetime.now(UTC)
        self._origin = time.monotonic()

    def now(self) -> datetime:
        """Return the scaled time."""
        elapsed = (time.monotonic() - self._origin) * self._speed
        return self._start + timedelta(seconds=elapsed)
