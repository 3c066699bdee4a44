"""Which failed attempts of a telemetry stream are worth a log line: one per interval.

A stream whose server is gone is retried every half second; a line per attempt and
per component buried everything else (some 650 lines in a 20 s outage). `RetryLog`
keeps one stream's outage and says when to write::

    retries = RetryLog(interval=timedelta(seconds=10))
    retries.failed(t0)         # Retrying(attempts=1, suppressed=0, since=t0): write it
    retries.failed(t0 + 0.5s)  # None: counted, not written
    retries.failed(t0 + 10s)   # Retrying(attempts=21, suppressed=19, since=t0)
    retries.received()         # None: data sent before the failure, delivered late
    retries.restarted()        # the client opened the stream again
    retries.received()         # Recovered(attempts=21, since=t0): data flows again
    retries.received()         # None: nothing was failing

Only data after a restart ends an outage. The client delivers a stream's data and its
events (`StreamRetrying`, `StreamStarted`) on two channels that are read merged, so a
sample received just before the failure can come out after the failure's event; taken
as a recovery, it logged a false `stream_recovered`, then a second `stream_retrying`,
and made the distributor re-send its targets to a server that was gone. A restart is
announced only after the retry delay, long after such a sample.

The one rate-limit rule for retry lines: `MicrogridConnection` keeps one per telemetry
stream (`stream_retrying`), `edge_controller.common.logging.StreamNoiseFilter` one per stream
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
        self._restarted = False

    @property
    def failing(self) -> bool:
        """Tell whether the stream failed and has not delivered since."""
        return self._since is not None

    def failed(self, now: datetime) -> Retrying | None:
        """Count a failed attempt at `now`; return the line to write, if one is due."""
        self._attempts += 1
        self._restarted = False
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

    def restarted(self) -> None:
        """The client opened the stream again: data from here on is from that attempt."""
        if self._since is not None:
            self._restarted = True

    def received(self) -> Recovered | None:
        """Data arrived: end the outage if the stream restarted since it last failed.

        Returns the line to write when an outage ended; `None` when nothing was failing,
        or for data that arrived before the failure and was delivered after it.
        """
        if self._since is None or not self._restarted:
            return None
        line = Recovered(self._attempts, self._since)
        self._since = self._last_line = None
        self._attempts = self._suppressed = 0
        self._restarted = False
        return line
