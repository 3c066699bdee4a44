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
from collections.abc import Iterable
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

    `cancel_and_wait_all` for one task.
    """
    await cancel_and_wait_all((task,))


async def cancel_and_wait_all(tasks: Iterable[asyncio.Future[Any]]) -> None:
    """Cancel every task (children of the caller) first, then wait until all have ended.

    All are cancelled before any is awaited, so a child that failed or a stop of the
    caller cannot leave the others running. A child's own `CancelledError` is the
    expected end and is not raised; the first other exception a child ended with is,
    once all have ended. A cancellation of the *caller* that arrives while it waits
    is raised at once (the children are already cancelled) — not swallowed as
    `suppress(CancelledError)` around an await would, which makes a stop that never
    ends. Cancellations the caller was already handling when it got here (a
    `finally` during its own stop) do not count: the cleanup goes on.
    """
    children = list(tasks)
    for child in children:
        child.cancel()
    if not children:
        return
    current = asyncio.current_task()
    before = current.cancelling() if current is not None else 0
    await asyncio.wait(children)
    if current is not None and current.cancelling() > before:
        # The children ended as the caller was cancelled: the stop is still the caller's.
        raise asyncio.CancelledError
    for child in children:
        if not child.cancelled() and (error := child.exception()) is not None:
            raise error


__all__ = ["cancel_and_wait", "cancel_and_wait_all", "wait_event"]
