"""Structured logging, configured in one place.

One event per line: JSON under systemd (journald sets `JOURNAL_STREAM`) or when asked
for, a readable console format on a terminal. Logs go to stderr, so stdout stays free
for what programs read (e.g. a server's `listening address=...` line). Standard-library
loggers (grpc, the Frequenz clients) are routed through the same renderer.

Two libraries are quieted here, by filters on their loggers (`quiet_libraries`,
installed when this module is imported, i.e. before the Frequenz packages are):

- frequenz-core's `Prefix 'CID' is already registered` is dropped: frequenz-client-common
  defines both the deprecated `components.ComponentId` (which client 0.18 still takes)
  and its successor `electrical_components.ElectricalComponentId` with the prefix `CID`,
  so every process that imports both warned once. Any other duplicate still shows.
- frequenz-client-base's per-stream lines (`starting to stream`, `stopping the stream`,
  one per stream and attempt) are lowered to debug. Its `connection ended, retrying`
  warnings are lowered too for the streams whose retries someone else reports (told to
  `STREAM_NOISE` while it streams; `MicrogridConnection` reads its telemetry streams
  itself and logs `stream_retrying`, rate-limited per component). For any other stream
  (the dispatch client's) the first one shows and then at most one per
  `RETRY_LOG_INTERVAL_S`, with the count of the ones left out (the same rule as
  `stream_retrying`: `common.stream_retries.RetryLog`).

A lowered line is still there at debug: `--log-level debug`, or
`levels = { "frequenz.client.base.streaming" = "debug" }`.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Final, Literal

import structlog

from edge_controller.common.event_ring import EVENTS
from edge_controller.common.stream_retries import RetryLog

LogFormat = Literal["auto", "json", "console"]


def choose_format(requested: LogFormat = "auto") -> Literal["json", "console"]:
    """Resolve `auto`: JSON under systemd or when stderr is not a terminal."""
    if requested != "auto":
        return requested
    if os.environ.get("JOURNAL_STREAM") or not sys.stderr.isatty():
        return "json"
    return "console"


_overridden: set[str] = set()


def apply_levels(level: str, levels: Mapping[str, str]) -> None:
    """Set the default level and per-logger levels; earlier overrides are undone.

    Called at start and on every configuration edit: levels change live, because
    structlog hands each event to the standard-library logger, which checks its
    level at call time.

    Raises:
        ValueError: for an unknown level name (the configuration validates first).
    """
    logging.getLogger().setLevel(_numeric(level))
    for name in _overridden - set(levels):
        logging.getLogger(name).setLevel(logging.NOTSET)
    for name, value in levels.items():
        logging.getLogger(name).setLevel(_numeric(value))
    _overridden.clear()
    _overridden.update(levels)


def _numeric(level: str) -> int:
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        raise ValueError(f"--log-level: expected one of debug, info, warning, error, got {level!r}")
    return numeric


RETRY_LOG_INTERVAL_S = 10.0
"""At most one retry line per stream this often (s), for the streams nobody else reports."""

DUPLICATE_CID_PREFIX = "Prefix 'CID' is already registered. ID prefixes must be unique."
"""frequenz-core's warning about frequenz-client-common's two `CID` id classes."""

_MAX_STREAMS = 1000
"""Streams whose retry lines are remembered; beyond, the memory starts afresh."""


class KnownDuplicatePrefixFilter(logging.Filter):
    """Drops the `Prefix 'CID' is already registered` warning, and only that one."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Keep every record but the known duplicate-prefix warning."""
        return record.getMessage() != DUPLICATE_CID_PREFIX


class StreamNoiseFilter(logging.Filter):
    """Lowers frequenz-client-base's per-stream lines to debug; rate-limits its retries.

    For `frequenz.client.base.streaming`, whose `GrpcStreamBroadcaster` logs every
    start, stop and failed attempt of every stream (9 streams, 2 attempts/s each in an
    outage: some 650 lines in 20 s). A lowered record is passed on as a DEBUG record only
    when that logger is enabled for debug. Not thread-safe beyond what `logging` gives;
    the clients log from the event loop.

    A stream's retry lines are lowered outright only while someone says it reports
    them (`reported_elsewhere` ... `no_longer_reported`): if that report stops (a
    client upgrade hides a stream's events), the client's own lines show again.
    """

    def __init__(
        self,
        *,
        retry_log_interval_s: float = RETRY_LOG_INTERVAL_S,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        """Let one retry line per stream through every `retry_log_interval_s`."""
        super().__init__()
        self._interval = timedelta(seconds=retry_log_interval_s)
        self._monotonic = monotonic
        self._retries: dict[str, RetryLog] = {}
        """Per stream name, its retry lines so far (never `received`: the client's
        lines do not tell when a stream delivers again)."""
        self._reported: set[str] = set()
        """The streams whose retries someone else reports."""

    def reported_elsewhere(self, stream_name: str) -> None:
        """Lower the retry lines of `stream_name`: the caller reports its retries.

        Call `no_longer_reported` when that stops (the stream's name holds its client's
        `id()`, which a later client may reuse).
        """
        self._reported.add(stream_name)

    def no_longer_reported(self, stream_name: str) -> None:
        """Rate-limit `stream_name`'s retry lines again instead of lowering them."""
        self._reported.discard(stream_name)

    def filter(self, record: logging.LogRecord) -> bool:
        """Decide whether (and at which level) `record` is written."""
        message = record.getMessage()
        stream, _, what = message.partition(": ")
        if what in ("starting to stream", "stopping the stream"):
            return _lowered(record)
        if not what.startswith("connection ended, retrying"):
            return True
        if stream in self._reported:
            return _lowered(record)
        if len(self._retries) > _MAX_STREAMS:  # stream names carry a client's id
            self._retries.clear()
        retries = self._retries.setdefault(stream, RetryLog(self._interval))
        # A datetime on the monotonic scale: RetryLog compares times, the wall clock may jump.
        line = retries.failed(datetime.fromtimestamp(self._monotonic(), UTC))
        if line is None:
            return _lowered(record)
        if line.suppressed:
            record.msg = f"{message} ({line.suppressed} retry lines left out since the last one)"
            record.args = None
        return True


def _lowered(record: logging.LogRecord) -> bool:
    record.levelno = logging.DEBUG
    record.levelname = "DEBUG"
    return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)


STREAM_NOISE: Final = StreamNoiseFilter()
"""The filter on frequenz-client-base's stream lines: tell it which streams' retries
you report (`reported_elsewhere`)."""

_LIBRARY_FILTERS: dict[str, logging.Filter] = {
    "frequenz.core.id": KnownDuplicatePrefixFilter(),
    "frequenz.client.base.streaming": STREAM_NOISE,
}


def quiet_libraries() -> None:
    """Install the library filters (see the module docstring); safe to call again."""
    for name, library_filter in _LIBRARY_FILTERS.items():
        logging.getLogger(name).addFilter(library_filter)


quiet_libraries()  # at import: the duplicate-prefix warning is logged while importing


def configure(level: str = "info", log_format: LogFormat = "auto") -> None:
    """Configure structlog and the standard library for this process.

    Raises:
        ValueError: for an unknown level name.
    """
    numeric = _numeric(level)
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        EVENTS.processor,  # warnings and errors for the web console's /api/events
    ]
    renderer: structlog.types.Processor
    if choose_format(log_format) == "json":
        renderer = structlog.processors.JSONRenderer()
        shared.append(structlog.processors.format_exc_info)
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(numeric)
    quiet_libraries()
