"""One thread that owns the store: every store call runs there, one at a time.

```
event loop ── submit(call) ──► queue ──► "dispatch-store" thread ── call() ──► future
```

Why one thread of our own rather than `asyncio.to_thread`:

- SQLite's connection is not safe to share: with `to_thread` a cancelled caller
  released the service's lock while its thread was still inside a transaction, and
  the next write on the same connection failed "cannot start a transaction within a
  transaction". Here calls are serialised by the queue, whatever their callers do.
- The thread is a daemon: a call stuck in the file system (an fsync on a dying disk)
  cannot keep the process alive after SIGTERM. `asyncio.run` waits for its default
  executor's threads at exit; it does not wait for this one.

Characteristics: unbounded queue (the service holds its write lock around each write,
so at most one write and the final close wait here); a call's exception is set on its
future; `submit` after `stop` raises `RuntimeError`.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

_T = TypeVar("_T")
_STOP = object()


class StoreThread:
    """Run callables one at a time in a dedicated daemon thread."""

    def __init__(self, name: str = "dispatch-store") -> None:
        """Start the thread."""
        self._calls: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, call: Callable[[], _T]) -> asyncio.Future[_T]:
        """Queue `call`; the returned future (of the running loop) gets its result.

        Cancelling the future does not stop the call: it runs to its end (commit or
        rollback) all the same.

        Raises:
            RuntimeError: after `stop`.
        """
        if self._stopped:
            raise RuntimeError("StoreThread.submit: the store thread is stopped")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[_T] = loop.create_future()
        self._calls.put((call, loop, future))
        return future

    def stop(self) -> None:
        """Let the calls already queued run, then end the thread (does not wait)."""
        self._stopped = True
        self._calls.put(_STOP)

    def _run(self) -> None:
        while (item := self._calls.get()) is not _STOP:
            call, loop, future = item
            try:
                result = call()
            except BaseException as error:  # handed to the caller, whatever it is
                _settle(loop, future, error=error)
            else:
                _settle(loop, future, result=result)


def _settle(
    loop: asyncio.AbstractEventLoop,
    future: asyncio.Future[Any],
    *,
    result: object = None,
    error: BaseException | None = None,
) -> None:
    def settle() -> None:
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)

    with contextlib.suppress(RuntimeError):  # a closed loop: nobody is waiting any more
        loop.call_soon_threadsafe(settle)


__all__ = ["StoreThread"]
