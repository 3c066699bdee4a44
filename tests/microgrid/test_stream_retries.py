"""`RetryLog`: one line per stream per interval while it fails, a count of the rest."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from edge_controller.common.stream_retries import Recovered, Retrying, RetryLog

T0 = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_the_first_failure_is_written_then_one_line_per_interval() -> None:
    retries = RetryLog(timedelta(seconds=10))
    lines = [line for i in range(41) if (line := retries.failed(at(i * 0.5))) is not None]
    assert lines == [
        Retrying(attempts=1, suppressed=0, since=T0),
        Retrying(attempts=21, suppressed=19, since=T0),
        Retrying(attempts=41, suppressed=19, since=T0),
    ]
    assert retries.failing


def test_data_ends_the_outage_once_and_a_new_one_starts_afresh() -> None:
    retries = RetryLog(timedelta(seconds=10))
    assert retries.received() is None  # nothing was failing
    for i in range(5):
        retries.failed(at(i))
    retries.restarted()
    assert retries.received() == Recovered(attempts=5, since=T0)
    assert retries.received() is None
    assert not retries.failing
    assert retries.failed(at(60)) == Retrying(attempts=1, suppressed=0, since=at(60))


def test_a_20_s_outage_of_9_streams_writes_at_most_27_lines() -> None:
    streams = [RetryLog(timedelta(seconds=10)) for _ in range(9)]
    written = sum(
        1 for i in range(40) for retries in streams if retries.failed(at(i * 0.5)) is not None
    )
    for retries in streams:
        retries.restarted()
    written += sum(1 for retries in streams if retries.received() is not None)
    assert written <= 27  # was 2 lines per attempt: ~720


def test_a_negative_interval_is_refused() -> None:
    with pytest.raises(ValueError, match="interval"):
        RetryLog(timedelta(seconds=-1))


def test_data_delivered_late_from_before_the_failure_is_no_recovery() -> None:
    # Data and events come on two merged channels: a sample can follow the failure out.
    retries = RetryLog(timedelta(seconds=10))
    retries.restarted()  # the first start: nothing was failing
    retries.failed(at(0))
    assert retries.received() is None
    assert retries.failing
    retries.restarted()
    retries.failed(at(1))  # that attempt failed too: its start no longer counts
    assert retries.received() is None
    retries.restarted()
    assert retries.received() == Recovered(attempts=2, since=T0)
    assert not retries.failing
