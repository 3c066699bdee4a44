"""The pieces every use case reads its payload with: a power, and errors that name the field."""

import math

import pytest

from edge_controller.dispatching.payload import PayloadError, parse_power


@pytest.mark.parametrize(
    ("raw", "watts"),
    [
        (-40000.0, -40_000.0),  # integers arrive as floats over Struct
        (5000, 5_000.0),
        ("-40 kW", -40_000.0),
        (" 1.5 MW ", 1_500_000.0),
    ],
)
def test_power_as_number_or_quantity_string(raw: object, watts: float) -> None:
    assert parse_power(7, "budget_w", raw) == watts


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (None, "dispatch 7: payload.budget_w: expected a power in W or '-40 kW', got None"),
        ("lots", "dispatch 7: payload.budget_w: expected a power like '-40 kW', got 'lots'"),
        (math.nan, "dispatch 7: payload.budget_w: expected a finite power"),
        (math.inf, "dispatch 7: payload.budget_w: expected a finite power"),
        (True, "dispatch 7: payload.budget_w: expected a power"),
        ([1], "dispatch 7: payload.budget_w: expected a power, got list"),
    ],
)
def test_bad_powers_name_the_dispatch_and_the_field(raw: object, message: str) -> None:
    with pytest.raises(PayloadError) as caught:
        parse_power(7, "budget_w", raw)
    assert str(caught.value).startswith(message)
    assert (caught.value.dispatch_id, caught.value.field) == (7, "budget_w")
