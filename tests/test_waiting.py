"""`wait_event`: a wait with a time limit that never swallows the stop of its caller."""

from __future__ import annotations

import asyncio

import pytest

from edge_controller.common.waiting import cancel_and_wait, cancel_and_wait_all, wait_event


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


async def test_cancel_and_wait_ends_the_child_and_returns() -> None:
    child = asyncio.create_task(asyncio.sleep(10))
    await asyncio.sleep(0)
    await cancel_and_wait(child)
    assert child.cancelled()


async def test_cancel_and_wait_raises_what_the_child_failed_with() -> None:
    async def fails_on_cancel() -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            raise RuntimeError("cleanup broke") from None

    child = asyncio.create_task(fails_on_cancel())
    await asyncio.sleep(0)
    with pytest.raises(RuntimeError, match="cleanup broke"):
        await cancel_and_wait(child)


async def test_a_stop_of_the_caller_while_the_child_winds_down_is_not_swallowed() -> None:
    # The child takes a while to end; the caller's own stop arrives meanwhile.
    child_may_end = asyncio.Event()

    async def slow_to_end() -> None:
        try:
            await asyncio.sleep(10)
        finally:
            await child_may_end.wait()

    async def stopper(child: asyncio.Task[None]) -> str:
        await cancel_and_wait(child)
        return "went on as if nothing happened"

    child = asyncio.create_task(slow_to_end())
    await asyncio.sleep(0)
    caller = asyncio.create_task(stopper(child))
    await asyncio.sleep(0.01)
    caller.cancel()
    await asyncio.sleep(0)
    child_may_end.set()
    with pytest.raises(asyncio.CancelledError):
        await caller


async def test_cleanup_in_a_cancelled_callers_finally_goes_on() -> None:
    # A stop that calls it from `finally` while its own cancellation propagates.
    cleaned: list[str] = []

    async def actor() -> None:
        child = asyncio.create_task(asyncio.sleep(10))
        try:
            await asyncio.sleep(10)
        finally:
            await cancel_and_wait(child)
            cleaned.append("after the child")

    task = asyncio.create_task(actor())
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert cleaned == ["after the child"]


async def test_cancel_and_wait_all_ends_every_child_even_when_one_has_failed() -> None:
    async def fails() -> None:
        raise RuntimeError("stream broke")

    failed = asyncio.create_task(fails())
    others = [asyncio.create_task(asyncio.sleep(10)) for _ in range(3)]
    await asyncio.sleep(0)
    assert failed.done()
    with pytest.raises(RuntimeError, match="stream broke"):
        await cancel_and_wait_all([failed, *others])
    assert all(task.cancelled() for task in others)


async def test_cancel_and_wait_all_cancels_every_child_before_a_stop_of_the_caller() -> None:
    slow_may_end = asyncio.Event()

    async def slow_to_end() -> None:
        try:
            await asyncio.sleep(10)
        finally:
            await slow_may_end.wait()

    slow = asyncio.create_task(slow_to_end())
    quick = asyncio.create_task(asyncio.sleep(10))
    await asyncio.sleep(0)
    caller = asyncio.create_task(cancel_and_wait_all([slow, quick]))
    await asyncio.sleep(0.01)
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    assert quick.cancelled()  # not left running behind the slow one
    slow_may_end.set()
    await asyncio.wait([slow])
    assert slow.cancelled()
