import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge_controller.power.bounds import (
    Range,
    allows,
    clamp,
    inclusion_exclusion,
    intersect,
    merge,
)

finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)


@st.composite
def ranges(draw: st.DrawFn) -> Range:
    a, b = draw(finite), draw(finite)
    return Range(min(a, b), max(a, b))


def test_merge_joins_overlapping_ranges_as_the_api_documents() -> None:
    merged = merge([Range(0, 10), Range(5, 15), Range(20, 30)])
    assert merged == (Range(0, 15), Range(20, 30))


def test_inclusion_minus_exclusion_leaves_two_ranges_and_zero_stays_allowed() -> None:
    allowed = inclusion_exclusion(Range(-10_000, 10_000), Range(-1_000, 1_000))
    assert allowed == (Range(-10_000, -1_000), Range(1_000, 10_000))
    assert allows(allowed, 0.0)
    assert not allows(allowed, 500.0)
    assert allows(allowed, -1_000.0)
    assert not allows(allowed, 10_001.0)


def test_nan_is_never_allowed_and_ranges_reject_nan() -> None:
    assert not allows((Range(-1, 1),), math.nan)
    with pytest.raises(ValueError, match="NaN"):
        Range(math.nan, 1.0)
    with pytest.raises(ValueError, match="lower must be <= upper"):
        Range(2.0, 1.0)


def test_clamp_moves_to_the_nearest_allowed_value() -> None:
    allowed = inclusion_exclusion(Range(-10_000, 10_000), Range(-1_000, 1_000))
    assert clamp(allowed, 20_000) == 10_000
    assert clamp(allowed, 900) == 1_000
    assert clamp(allowed, 100) == 0.0
    assert clamp((), 5_000) == 0.0


@given(st.lists(ranges(), max_size=6), finite)
def test_merge_allows_exactly_what_the_parts_allow(parts: list[Range], value: float) -> None:
    assert allows(merge(parts), value) == allows(parts, value)


@given(st.lists(ranges(), max_size=4), st.lists(ranges(), max_size=4), finite)
def test_intersection_allows_only_what_both_allow(
    left: list[Range], right: list[Range], value: float
) -> None:
    both = intersect(left, right)
    if value != 0.0:
        assert allows(both, value) == (allows(left, value) and allows(right, value))


@given(st.lists(ranges(), max_size=4), finite)
def test_clamp_always_returns_an_allowed_value(parts: list[Range], value: float) -> None:
    assert allows(parts, clamp(parts, value))
