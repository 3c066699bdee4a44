"""Structured logging, configured in one place.

One event per line: JSON under systemd (journald sets `JOURNAL_STREAM`) or when asked
for, a readable console format on a terminal. Logs go to stderr, so stdout stays free
for what programs read (e.g. a server's `listening address=...` line). Standard-library
loggers (grpc, the Frequenz clients) are routed through the same renderer.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping
from typing import Literal

import structlog

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
