from hypothesis import given
from hypothesis import strategies as st

from edge_controller.power.controls import limit_target

watts = st.floats(-2e6, 2e6, allow_nan=False)


def test_no_limit_leaves_the_target_alone() -> None:
    assert limit_target(-400_000.0, [300_000.0], None) == -400_000.0


def test_the_target_gets_what_the_others_left() -> None:
    assert limit_target(-400_000.0, [300_000.0], 500_000.0) == -200_000.0
    assert limit_target(100_000.0, [-450_000.0, -100_000.0], 500_000.0) == 0.0


@given(watts, st.lists(watts, max_size=5), st.floats(0, 3e6, allow_nan=False))
def test_the_sum_of_magnitudes_never_exceeds_the_limit_and_the_sign_is_kept(
    target: float, others: list[float], limit: float
) -> None:
    allowed = limit_target(target, others, limit)
    assert abs(allowed) <= abs(target)
    assert allowed == 0.0 or (allowed > 0) == (target > 0)
    room = max(0.0, limit - sum(abs(o) for o in others))
    assert abs(allowed) <= room + 1e-9
    if abs(target) <= room:
        assert allowed == target
