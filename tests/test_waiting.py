"""`wait_event`: a wait with a time limit that never swallows the stop of its caller."""

from __future__ import annotations

import asyncio

import pytest

from edge_controller.waiting import wait_event


async def test_it_returns_true_when_the_event_is_set_and_false_after_the_time_limit() -> None:
    event = asyncio.Event()
    assert await wait_event(event, 0.01) is False
    asyncio.get_running_loop().call_soon(event.set)
    assert await wait_event(event, 5.0) is True


async def test_a_cancellation_that_arrives_as_the_event_is_set_stops_the_waiter() -> None:
    # The race that `asyncio.wait_for` loses on Python 3.11: the event is set and the
    # waiter cancelled in the same loop step. A lost cancellation here is an actor that
    # never stops.
    event = asyncio.Event()
    loops = 0

    async def loop_until_cancelled() -> None:
        nonlocal loops
        while True:
            await wait_event(event, 10.0)
            event.clear()
            loops += 1

    task = asyncio.create_task(loop_until_cancelled())
    await asyncio.sleep(0)
    event.set()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        async with asyncio.timeout(1.0):
            await task
    assert task.cancelled()
    assert loops == 0


async def test_a_negative_time_limit_returns_at_once() -> None:
    assert await wait_event(asyncio.Event(), -1.0) is False
