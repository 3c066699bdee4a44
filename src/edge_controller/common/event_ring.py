"""The recent warnings and errors of this process, for the web console (`/api/events`).

A structlog processor (`EVENTS.processor`, installed by `logging.configure` for
structlog's and the standard library's lines alike) copies every event at warning or
above into a bounded ring (`RING_SIZE`, the oldest dropped), and passes the event on
unchanged. Values are copied as short text, so the ring holds no references into the
program and cannot grow with a large field. Stdlib only and light to import.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import MutableMapping
from typing import Any, Final

RING_SIZE: Final = 200
_KEPT_LEVELS: Final = frozenset({"warning", "error", "critical", "exception"})
_VALUE_CHARS: Final = 300
_SKIPPED: Final = frozenset({"_record", "_from_structlog", "exc_info", "stack_info"})


class EventRing:
    """A bounded, thread-safe ring of recent warning/error events."""

    def __init__(self, size: int = RING_SIZE) -> None:
        """Keep at most `size` events."""
        self._events: deque[dict[str, str]] = deque(maxlen=size)
        self._lock = threading.Lock()
        self._count = 0

    def processor(
        self, _logger: object, method: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        """A structlog processor: remember the event if it is a warning or worse."""
        level = str(event_dict.get("level", method)).lower()
        if level in _KEPT_LEVELS:
            kept = {str(k): _text(v) for k, v in event_dict.items() if k not in _SKIPPED}
            kept["level"] = "error" if level == "exception" else level
            with self._lock:
                self._count += 1
                kept["seq"] = str(self._count)
                self._events.append(kept)
        return event_dict

    def recent(self, limit: int = RING_SIZE) -> list[dict[str, str]]:
        """The newest `limit` events, newest first."""
        with self._lock:
            return list(reversed(self._events))[:limit]


def _text(value: object) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= _VALUE_CHARS else text[: _VALUE_CHARS - 1] + "…"


EVENTS: Final = EventRing()
"""The process's ring, fed by `logging.configure`'s pipeline."""
