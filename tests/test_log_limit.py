"""LogLimiter: one line per key and interval, the repeats counted, memory bounded."""

from __future__ import annotations

from edge_controller.common.log_limit import LogLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_repeating_problem_is_logged_once_per_interval_with_the_count() -> None:
    clock = Clock()
    limiter = LogLimiter(60.0, monotonic=clock)
    assert limiter.admit("peer") == 0
    assert [limiter.admit("peer") for _ in range(41)] == [None] * 41
    assert limiter.admit("other") == 0  # keys are independent
    clock.now = 60.0
    assert limiter.admit("peer") == 41
    assert limiter.admit("peer") is None
    assert limiter.clear("peer") == 1  # the summary when it went away
    assert limiter.clear("peer") is None
    assert limiter.admit("peer") == 0  # a new streak starts with a line


def test_a_flood_from_new_addresses_keeps_only_max_keys() -> None:
    limiter = LogLimiter(60.0, max_keys=100, monotonic=Clock())
    for peer in range(10_000):
        assert limiter.admit(peer) == 0
    assert len(limiter) == 100
