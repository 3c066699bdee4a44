"""Which failed attempts of a telemetry stream are worth a log line: one per interval.

A stream whose server is gone is retried every half second; a line per attempt and
per component buried everything else (some 650 lines in a 20 s outage). `RetryLog`
keeps one stream's outage and says when to write::

    retries = RetryLog(interval=timedelta(seconds=10))
    retries.failed(t0)         # Retrying(attempts=1, suppressed=0, since=t0): write it
    retries.failed(t0 + 0.5s)  # None: counted, not written
    retries.failed(t0 + 10s)   # Retrying(attempts=21, suppressed=19, since=t0)
    retries.received()         # Recovered(attempts=21, since=t0): data flows again
    retries.received()         # None: nothing was failing

The one rate-limit rule for retry lines: `MicrogridConnection` keeps one per telemetry
stream (`stream_retrying`), `edge_controller.logging.StreamNoiseFilter` one per stream
it rate-limits the client library's own lines for.

Pure: the caller passes the time (its `Clock`), so tests need no waiting.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True, slots=True)
class Retrying:
    """A line to write about a failing stream."""

    attempts: int
    """Failed attempts since the stream first failed (`since`), this one included."""
    suppressed: int
    """Failed attempts between the previous line and this one, not written."""
    since: datetime
    """When the first failed attempt of this outage was reported."""


@dataclass(frozen=True, slots=True)
class Recovered:
    """A line to write when a failing stream delivers again."""

    attempts: int
    """Failed attempts in the outage that ended."""
    since: datetime
    """When the outage's first failed attempt was reported."""


class RetryLog:
    """One stream's outage: the first failure is written, then one per `interval`."""

    def __init__(self, interval: timedelta) -> None:
        """Write at most one line per `interval` while the stream keeps failing.

        Raises:
            ValueError: `interval` is negative.
        """
        if interval < timedelta(0):
            raise ValueError(f"interval must be >= 0, got {interval}")
        self.interval = interval
        self._since: datetime | None = None
        self._last_line: datetime | None = None
        self._attempts = 0
        self._suppressed = 0

    @property
    def failing(self) -> bool:
        """Tell whether the stream failed and has not delivered since."""
        return self._since is not None

    def failed(self, now: datetime) -> Retrying | None:
        """Count a failed attempt at `now`; return the line to write, if one is due."""
        self._attempts += 1
        if self._since is None or self._last_line is None:
            self._since = self._last_line = now
            self._suppressed = 0
            return Retrying(self._attempts, 0, now)
        if now - self._last_line < self.interval:
            self._suppressed += 1
            return None
        line = Retrying(self._attempts, self._suppressed, self._since)
        self._last_line = now
        self._suppressed = 0
        return line

    def received(self) -> Recovered | None:
        """Data arrived: end the outage; return the line to write if there was one."""
        if self._since is None:
            return None
        line = Recovered(self._attempts, self._since)
        self._since = self._last_line = None
        self._attempts = self._suppressed = 0
        return line
