"""Telemetry gaps: judged on sample times, acted on only for inverters with a target."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_controller.microgrid.telemetry_gaps import (
    GapTracker,
    Resumption,
    gap_before,
    resumed_on_targets,
    silent_with,
)

T0 = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
GAP = timedelta(seconds=2)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_gap_before_a_sample() -> None:
    assert gap_before(None, at(0), GAP) is None  # the first sample ever
    assert gap_before(at(0), at(0.5), GAP) is None
    assert gap_before(at(0), at(2), GAP) is None  # exactly the limit: not a gap
    assert gap_before(at(0), at(2.5), GAP) == timedelta(seconds=2.5)
    assert gap_before(at(3), at(1), GAP) is None  # late


def test_the_tracker_counts_each_components_gaps() -> None:
    gaps = GapTracker(GAP)
    assert [gaps.sampled(10, at(t)) for t in (0, 0.5, 1.0)] == [None, None, None]
    assert gaps.sampled(10, at(9)) == Resumption(10, 1, timedelta(seconds=8))
    assert gaps.sampled(10, at(5)) is None  # late: no gap, the latest stays
    assert gaps.sampled(10, at(9.5)) is None
    assert gaps.sampled(10, at(13)) == Resumption(10, 2, timedelta(seconds=3.5))
    assert gaps.latest(10) == Resumption(10, 2, timedelta(seconds=3.5))
    assert gaps.latest(20) is None
    assert gaps.latest_all() == {10: Resumption(10, 2, timedelta(seconds=3.5))}


def test_the_first_sample_after_a_reconnection_ends_a_gap_however_short() -> None:
    """A restarted Microgrid API may have lost the commands within a 0.5 s silence."""
    gaps = GapTracker(GAP)
    assert gaps.sampled(10, at(0), reconnected=True) is None  # the first sample ever
    assert gaps.sampled(10, at(0.5)) is None
    assert gaps.sampled(10, at(1.0), reconnected=True) == Resumption(
        10, 1, timedelta(seconds=0.5), reconnected=True, reconnects=1
    )
    assert gaps.sampled(10, at(1.0)) is None  # repeated: nothing new
    assert gaps.sampled(10, at(1.5)) is None


def test_a_hole_in_an_open_stream_is_a_gap_but_not_a_reconnection() -> None:
    """A busy server's late samples: reported, but nothing tells the commands were lost."""
    gaps = GapTracker(GAP)
    gaps.sampled(10, at(0))
    resumption = gaps.sampled(10, at(5))
    assert resumption is not None
    assert not resumption.reconnected


def test_a_rest_between_dispatches_is_no_gap() -> None:
    """The demo's case: telemetry every 0.5 s throughout, a target before and after."""
    gaps = GapTracker(GAP)
    handled: dict[int, int] = {}
    acted: list[Resumption] = []
    for step in range(60):  # 30 s: dispatch, 10 s rest, dispatch
        for inverter in (10, 20, 30, 40):
            gaps.sampled(inverter, at(step * 0.5))
        targeted = set() if 20 <= step < 40 else {10, 20, 30, 40}
        handled, act_on = resumed_on_targets(handled, gaps.latest_all(), targeted)
        acted += act_on
    assert acted == []


def test_a_gap_on_a_targeted_inverter_is_acted_on_once() -> None:
    gaps = GapTracker(GAP)
    for t in (0, 0.5, 4.0):
        gaps.sampled(10, at(t))
    handled, act_on = resumed_on_targets({}, gaps.latest_all(), {10})
    assert act_on == [Resumption(10, 1, timedelta(seconds=3.5))]
    handled, act_on = resumed_on_targets(handled, gaps.latest_all(), {10})
    assert act_on == []  # told once
    gaps.sampled(10, at(8.0))
    _, act_on = resumed_on_targets(handled, gaps.latest_all(), {10})
    assert act_on == [Resumption(10, 2, timedelta(seconds=4))]


def test_a_gap_while_resting_is_not_acted_on_when_the_next_target_comes() -> None:
    gaps = GapTracker(GAP)
    gaps.sampled(10, at(0))
    gaps.sampled(10, at(5))  # the gap ends while inverter 10 has no target
    handled, act_on = resumed_on_targets({}, gaps.latest_all(), set())
    assert act_on == []
    _, act_on = resumed_on_targets(handled, gaps.latest_all(), {10})
    assert act_on == []
    assert handled == {10: 1}


def test_only_the_targeted_inverters_gaps_are_returned() -> None:
    gaps = GapTracker(GAP)
    for inverter in (10, 20):
        gaps.sampled(inverter, at(0))
        gaps.sampled(inverter, at(3))
    handled, act_on = resumed_on_targets({}, gaps.latest_all(), {20})
    assert [r.component_id for r in act_on] == [20]
    assert handled == {10: 1, 20: 1}


def test_min_gap_must_be_positive() -> None:
    with pytest.raises(ValueError, match="min_gap"):
        GapTracker(timedelta(0))


def test_a_reconnect_is_kept_when_a_late_gap_follows_it_or_its_first_sample_is_old() -> None:
    gaps = GapTracker(GAP)
    gaps.sampled(10, at(0))
    gaps.sampled(10, at(1), reconnected=True)  # the stream was re-opened
    late = gaps.sampled(10, at(5))  # then a hole in the open stream, before anyone looked
    assert late is not None
    assert not late.reconnected
    assert late.reconnects == 1  # the reconnect still counts
    gaps.sampled(10, at(5.5))
    assert gaps.sampled(10, at(5.5), reconnected=True) is None  # re-opened, repeats a sample
    after = gaps.sampled(10, at(6))
    assert after is not None
    assert after.reconnected
    assert after.reconnects == 2


def test_the_streams_still_silent_when_one_comes_back_share_its_outage() -> None:
    """The API restart of `benchmarks/fault_tracking.py`: 10 and 20 are back at +1.0 s,
    40 and 30 last sampled before the server went down (−1.2 s), 50 never stopped."""
    last = {30: at(-1.2), 40: at(-1.2), 50: at(0.8)}
    assert silent_with(at(1.0), last, GAP) == [30, 40]
    assert silent_with(at(1.0), {40: at(-1.0)}, GAP) == []  # exactly a gap: not one
    assert silent_with(at(1.0), {}, GAP) == []


@settings(max_examples=50, deadline=None)
@given(
    returned_s=st.floats(-10, 10),
    later_s=st.floats(0, 10),
    last_s=st.dictionaries(st.integers(1, 50), st.floats(-20, 20), max_size=8),
)
def test_a_stream_that_sampled_within_a_gap_is_never_resent_and_a_later_return_drops_none(
    returned_s: float, later_s: float, last_s: dict[int, float]
) -> None:
    """One stream failing alone speaks for no other (its neighbours sampled within a
    gap of its return); whoever is silent at one return is still silent at a later one."""
    last = {i: at(t) for i, t in last_s.items()}
    silent = silent_with(at(returned_s), last, GAP)
    assert silent == sorted(silent)
    assert not [i for i in silent if at(returned_s) - last[i] <= GAP]
    assert set(silent) <= set(silent_with(at(returned_s + later_s), last, GAP))
