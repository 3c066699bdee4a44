"""Waiting for an event with a time limit, without losing a stop on the way.

Every actor and server here stops by being cancelled. `asyncio.wait_for` on Python
3.11 drops a cancellation that arrives in the same loop step as the thing it waits for
completes (it returns the result instead; CPython gh-86296, fixed in 3.12 by building
`wait_for` on `asyncio.timeout`). A loop that waits with it then runs on after its
stop, and whoever awaits the stop waits for ever — seen as a CI hang in the trading
client, which wraps each call in `wait_for`. `asyncio.timeout` counts cancellations
and cannot drop one, so the project waits with it only; `.ci/run` checks that
`asyncio.wait_for` does not come back into `src/`.
"""

from __future__ import annotations

import asyncio
from typing import Any


async def wait_event(event: asyncio.Event, timeout_s: float) -> bool:
    """Wait until `event` is set or `timeout_s` passed; True when it was set.

    A cancellation always propagates, even when it comes as the event is set.
    """
    try:
        async with asyncio.timeout(max(0.0, timeout_s)):
            await event.wait()
    except TimeoutError:
        pass
    return event.is_set()


async def cancel_and_wait(task: asyncio.Future[Any]) -> None:
    """Cancel `task` (a child of the caller) and wait until it has ended.

    The child's own `CancelledError` is the expected end and is not raised; any other
    exception it ended with is. A cancellation of the *caller* that arrives while it
    waits is raised, not mistaken for the child's: `contextlib.suppress(CancelledError)`
    around the await would swallow both, and a stop that calls this from a cancelled
    actor would then never end. Cancellations the caller was already handling when it
    got here (a `finally` during its own stop) do not count: the cleanup goes on.
    """
    current = asyncio.current_task()
    before = current.cancelling() if current is not None else 0
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        if current is not None and current.cancelling() > before:
            raise
        return
    if current is not None and current.cancelling() > before:
        # The child ended on its own while the caller was cancelled: still the caller's.
        raise asyncio.CancelledError


__all__ = ["cancel_and_wait", "wait_event"]
