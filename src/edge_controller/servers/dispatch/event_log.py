"""The recent change events of one microgrid, one copy shared by every stream reading it.

```
append ─► [ e41  e42  e43  …  e1040 ]   the last `size` events, oldest dropped
                 ▲              ▲
             reader A        reader B    each reader is only a position
```

Why a shared log rather than a queue per reader: with 1 000 readers, a queue per
reader made every event cost 1 000 puts and 1 000 queued copies of the reference
before anything else could run, and a reader that fell behind was found only by
offering it more. Here an append costs the same whatever the number of readers,
nothing is held per reader, and every reader reads the same events in the same order.

Characteristics:

- Appending does not wake anyone: `wake()` makes what was appended visible and wakes
  the waiting readers, so the writer decides when the readers' turn comes (the
  service answers the caller first).
- Bounded: the last `size` events are kept. A reader whose next event has been
  dropped gets `FellBehindError` and must start again (reconnect and list).
- `end(reason)` ends every reader at once, events still unread or not: the end goes
  first, nothing after it matters.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Generic, TypeVar

_E = TypeVar("_E")


class StreamEndedError(Exception):
    """The log was ended (shutdown, a dropped stream): its readers must stop."""

    def __init__(self, reason: str) -> None:
        """Say why the stream ends."""
        super().__init__(reason)
        self.reason = reason


class FellBehindError(StreamEndedError):
    """A reader's next event was dropped before it read it."""


class EventLog(Generic[_E]):
    """The last `size` events, read by position by any number of readers."""

    def __init__(self, size: int) -> None:
        """Keep up to `size` events for readers that are behind."""
        self._size = size
        self._events: deque[_E] = deque(maxlen=size)
        self._appended = 0  # position of the next event to append
        self._visible = 0  # positions below this one may be read
        self._waiters: dict[asyncio.Future[None], None] = {}  # a set in waiting order
        self._end_reason: str | None = None
        self.readers = 0

    @property
    def position(self) -> int:
        """Where a reader starting now begins: the next event made visible."""
        return self._visible

    def append(self, event: _E) -> None:
        """Add `event` after the others; readers see it from the next `wake()` on."""
        self._events.append(event)
        self._appended += 1

    def wake(self) -> None:
        """Make every appended event visible and wake the readers waiting for one.

        Cheap when nothing was appended since the last call (nobody is woken).
        """
        if self._visible == self._appended:
            return
        self._visible = self._appended
        self._wake_waiters()

    def end(self, reason: str) -> None:
        """End every reader of this log with `StreamEndedError(reason)`, now."""
        if self._end_reason is None:
            self._end_reason = reason
            self._wake_waiters()

    def read(self, position: int) -> _E | None:
        """Return the event at `position`, or None if it is not visible yet.

        Raises:
            StreamEndedError: the log was ended.
            FellBehindError: the event at `position` was dropped (more than `size` behind).
        """
        if self._end_reason is not None:
            raise StreamEndedError(self._end_reason)
        if position >= self._visible:
            return None
        oldest = self._appended - len(self._events)
        if position < oldest:
            raise FellBehindError(
                f"stream fell {self._size} events behind; reconnect and list again"
            )
        return self._events[position - oldest]

    async def changed(self) -> None:
        """Wait for the next `wake()` that shows something new, or for `end()`.

        A cancelled waiter cancels only its own future and leaves: the others still
        wake, and readers that come and go while nothing happens leave nothing behind.
        """
        if self._end_reason is not None:
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters[waiter] = None
        try:
            await waiter
        finally:
            self._waiters.pop(waiter, None)

    def _wake_waiters(self) -> None:
        waiters, self._waiters = self._waiters, {}
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)


__all__ = ["EventLog", "FellBehindError", "StreamEndedError"]
