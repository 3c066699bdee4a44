from datetime import timedelta

from edge_controller.power.status import BlockingTracker
from tests.conftest import NOON


def test_blocking_doubles_on_repeated_failures_up_to_the_cap_and_resets() -> None:
    tracker = BlockingTracker(timedelta(seconds=1), timedelta(seconds=30))
    durations = []
    now = NOON
    for _ in range(7):
        until = tracker.failed(11, now)
        durations.append((until - now).total_seconds())
        now = until
    assert durations == [1, 2, 4, 8, 16, 30, 30]
    tracker.succeeded(11)
    assert tracker.failed(11, now) == now + timedelta(seconds=1)


def test_status_splits_working_uncertain_and_leaves_broken_out() -> None:
    tracker = BlockingTracker()
    tracker.failed(31, NOON)
    status = tracker.status([11, 21, 31], fresh_ids=[11, 31], now=NOON)
    assert status.working == {11}
    assert status.uncertain == {21}
    later = tracker.status([11, 21, 31], fresh_ids=[11, 31], now=NOON + timedelta(seconds=1))
    assert later.working == {11, 31}
