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


__all__ = ["wait_event"]
