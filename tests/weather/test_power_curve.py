from __future__ import annotations

import pytest

from edge_controller.servers.market.model import default_market, piecewise_curve
from edge_controller.servers.sim.site import parse_site
from edge_controller.servers.sim.site_details import WindSpec
from edge_controller.weather.power_curve import DEFAULT_WIND_CURVE, read_curve, wind_fraction

CUT_IN_AT_4 = ((4.0, 0.1), (10.0, 0.7), (20.0, 1.0))
"""A curve whose first point is above 0 m/s with power: the turbine cuts in at 4 m/s."""


@pytest.mark.parametrize(
    ("speed_m_s", "fraction"),
    [
        (0.0, 0.0),
        (3.9, 0.0),  # below the first point: not cut in yet
        (4.0, 0.1),
        (7.0, 0.4),  # halfway between 4 and 10 m/s
        (10.0, 0.7),
        (20.0, 1.0),  # the last point still produces
        (20.1, 0.0),  # cut out
        (float("inf"), 0.0),
        (float("-inf"), 0.0),
        (float("nan"), 0.0),
    ],
)
def test_a_turbine_makes_power_only_inside_its_curve(speed_m_s: float, fraction: float) -> None:
    assert wind_fraction(CUT_IN_AT_4, speed_m_s) == pytest.approx(fraction)


def test_market_and_simulator_turbines_follow_the_same_default_curve() -> None:
    site = parse_site(
        {
            "microgrid": {"id": 1, "name": "wind"},
            "components": [
                {"id": 1, "kind": "grid"},
                {"id": 2, "kind": "wind_turbine", "parent": 1, "rated_power": 10_000},
            ],
        }
    )
    turbine = site.by_id[2].details
    assert isinstance(turbine, WindSpec)
    assert turbine.power_curve == default_market().power_curve == DEFAULT_WIND_CURVE
    market_curve = piecewise_curve(default_market().power_curve)
    for speed_m_s in (0.0, 2.0, 4.0, 6.5, 12.5, 25.0, 26.0):
        assert market_curve(speed_m_s) == wind_fraction(turbine.power_curve, speed_m_s)


def test_a_curve_is_read_only_as_points_the_evaluation_can_take() -> None:
    assert read_curve([[0, 0], [3, 0.5], [12.5, 1]]) == ((0.0, 0.0), (3.0, 0.5), (12.5, 1.0))
    for bad in (
        [[0, 0]],  # one point
        [[0, 0], [0, 1]],  # speeds not rising
        [[5, 0], [3, 1]],
        [[-1, 0], [3, 1]],  # a negative speed
        [[0, 0], [3, 1.5]],  # a fraction beyond 1
        [[0, 0], [3]],
        "fast",
    ):
        assert read_curve(bad) is None, bad
