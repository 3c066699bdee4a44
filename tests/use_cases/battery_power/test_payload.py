"""A BATTERY_POWER dispatch's payload: a power in W or as a quantity, each bad field named."""

from __future__ import annotations

import math

import pytest

from edge_controller.dispatching.payload import PayloadError
from edge_controller.use_cases.battery_power.payload import parse_battery_power


@pytest.mark.parametrize(
    ("payload", "watts"),
    [
        ({"power_w": -40000.0}, -40_000.0),  # integers arrive as floats over Struct
        ({"power_w": 5000}, 5_000.0),
        ({"power_w": "-40 kW"}, -40_000.0),
        ({"power_w": "1.5 MW"}, 1_500_000.0),
    ],
)
def test_power_as_number_or_quantity_string(payload: dict[str, object], watts: float) -> None:
    assert parse_battery_power(7, payload).power_w == watts


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({}, "dispatch 7: payload.power_w: missing"),
        (
            {"power_w": "lots"},
            "dispatch 7: payload.power_w: expected a power like '-40 kW', got 'lots'",
        ),
        ({"power_w": math.nan}, "dispatch 7: payload.power_w: expected a finite power"),
        ({"power_w": True}, "dispatch 7: payload.power_w: expected a power"),
        ({"power_w": [1]}, "dispatch 7: payload.power_w: expected a power, got list"),
        ({"powr_w": 1}, "dispatch 7: payload.powr_w: unknown key"),
        ({"power_w": 1, "ramp": 2}, "dispatch 7: payload.ramp: unknown key"),
    ],
)
def test_bad_payloads_name_the_dispatch_and_the_field(
    payload: dict[str, object], message: str
) -> None:
    with pytest.raises(PayloadError) as caught:
        parse_battery_power(7, payload)
    assert str(caught.value).startswith(message)
