"""The measured production set on the simulated site, step by step."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from edge_controller.servers.sim.measured_weather import equivalent_weather, speed_for_fraction
from edge_controller.tools.scenario.setup import Setup
from edge_controller.weather.power_curve import DEFAULT_WIND_CURVE, wind_fraction
from tests.scenario.conftest import model_at

QUARTER = timedelta(minutes=15)


def test_equivalent_weather_makes_the_model_produce_the_given_power(setup: Setup) -> None:
    now = setup.scenario.spec.start
    model = model_at(setup, now)
    layout = setup.layout
    model.site = replace(
        model.site, weather=equivalent_weather(layout, -123_000.0, -42_000.0, 20.0)
    )
    model.step(now + timedelta(seconds=1))
    assert sum(model.ac_power_w(c) for c in layout.pv_ids) == pytest.approx(-123_000.0)
    assert sum(model.ac_power_w(c) for c in layout.wind_ids) == pytest.approx(-42_000.0)


@pytest.mark.parametrize("fraction", [0.0, 0.05, 0.12, 0.5, 0.9, 1.0])
def test_speed_for_fraction_inverts_the_curve(fraction: float) -> None:
    speed = speed_for_fraction(DEFAULT_WIND_CURVE, fraction)
    assert wind_fraction(DEFAULT_WIND_CURVE, speed) == pytest.approx(fraction)
