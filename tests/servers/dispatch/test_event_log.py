"""The streams' shared event log: what a reader at a position reads, and when it wakes."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_controller.servers.dispatch.event_log import EventLog, FellBehindError, StreamEndedError
from tests.properties import examples


def test_an_event_is_read_only_once_it_is_woken() -> None:
    log: EventLog[str] = EventLog(size=4)
    start = log.position
    log.append("created")
    assert log.read(start) is None  # appended, its writer not answered yet
    log.wake()
    assert log.read(start) == "created"
    assert log.position == start + 1  # a reader starting now waits for the next


def test_a_reader_further_behind_than_the_log_is_told_so() -> None:
    log: EventLog[int] = EventLog(size=2)
    for event in range(3):
        log.append(event)
    log.wake()
    with pytest.raises(FellBehindError, match="stream fell 2 events behind"):
        log.read(0)
    assert [log.read(1), log.read(2)] == [1, 2]


async def test_a_cancelled_waiter_leaves_and_the_others_still_wake() -> None:
    log: EventLog[str] = EventLog(size=4)
    waiters = [asyncio.ensure_future(log.changed()) for _ in range(3)]
    await asyncio.sleep(0)
    waiters[1].cancel()
    await asyncio.sleep(0)
    log.append("created")
    log.wake()
    await asyncio.gather(waiters[0], waiters[2])
    assert waiters[1].cancelled()
    assert not log._waiters  # nothing kept for readers that left


async def test_end_wakes_every_reader_and_goes_before_unread_events() -> None:
    log: EventLog[str] = EventLog(size=4)
    waiter = asyncio.ensure_future(log.changed())
    await asyncio.sleep(0)
    log.append("created")
    log.wake()
    log.end("shutting down")
    await waiter
    with pytest.raises(StreamEndedError, match="shutting down"):
        log.read(0)


@settings(max_examples=examples(60), deadline=None)
@given(
    steps=st.lists(st.sampled_from(["append", "wake"]), max_size=40),
    size=st.integers(min_value=1, max_value=8),
    position=st.integers(min_value=0, max_value=40),
)
def test_a_reader_reads_the_event_at_its_position_or_learns_it_is_lost(
    steps: list[str], size: int, position: int
) -> None:
    """Every reader sees one sequence: event n at position n, nothing reordered."""
    log: EventLog[int] = EventLog(size=size)
    appended = visible = 0
    for step in steps:
        if step == "append":
            log.append(appended)
            appended += 1
        else:
            log.wake()
            visible = appended
    if position >= visible:
        assert log.read(position) is None
    elif position < appended - size:
        with pytest.raises(FellBehindError):
            log.read(position)
    else:
        assert log.read(position) == position
