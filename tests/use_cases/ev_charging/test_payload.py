"""An EV_CHARGING dispatch's payload: power per charger or a budget, each bad field named."""

from __future__ import annotations

import math

import pytest

from edge_controller.dispatching.payload import PayloadError
from edge_controller.use_cases.ev_charging.payload import (
    EvChargingPayload,
    SessionLimits,
    parse_payload,
    payload_chargers,
)


@pytest.mark.parametrize(
    ("payload", "read"),
    [
        (
            {"chargers": {"81": 11000, "82": "7.4 kW"}},
            EvChargingPayload(chargers_w={81: 11000.0, 82: 7400.0}),
        ),
        ({"budget_w": "30 kW"}, EvChargingPayload(budget_w=30000.0)),
        ({"budget_w": 0}, EvChargingPayload(budget_w=0.0)),
        (
            {
                "budget_w": 30000.0,
                "min_w": 4140,
                "max_w": "11 kW",
                "sessions": {"82": {"max_w": 3700}},
            },
            EvChargingPayload(
                budget_w=30000.0,
                limits=SessionLimits(4140.0, 11000.0),
                sessions={82: SessionLimits(None, 3700.0)},
            ),
        ),
    ],
)
def test_power_per_charger_or_a_budget_with_limits_is_read(
    payload: dict[str, object], read: EvChargingPayload
) -> None:
    assert parse_payload(7, payload) == read


def test_a_car_has_its_own_limits_else_the_dispatchs() -> None:
    payload = parse_payload(
        7, {"budget_w": 30000, "min_w": 4140, "sessions": {"82": {"max_w": 3700}}}
    )
    assert payload.session_limits(81) == SessionLimits(4140.0, None)
    assert payload.session_limits(82) == SessionLimits(4140.0, 3700.0)


@pytest.mark.parametrize(
    ("payload", "field", "says"),
    [
        ({}, "budget_w", "got neither"),
        ({"budget_w": 1, "chargers": {"81": 1}}, "budget_w", "not both"),
        ({"budget": 30000}, "budget", "unknown key"),
        ({"budget_w": -5}, "budget_w", ">= 0"),
        ({"budget_w": "lots"}, "budget_w", "expected a power"),
        ({"budget_w": math.inf}, "budget_w", "finite"),
        ({"chargers": {}}, "chargers", "a table of charger id -> power"),
        ({"chargers": [81, 82]}, "chargers", "a table of charger id -> power"),
        ({"chargers": {"eighty-one": 11000}}, "chargers.eighty-one", "a charger id"),
        ({"chargers": {"81": -11000}}, "chargers.81", "a charger only charges"),
        ({"chargers": {"81": None}}, "chargers.81", "expected a power"),
        ({"budget_w": 1, "min_w": 5000, "max_w": 4000}, "min_w", r"at most max_w \(4000 W\)"),
        ({"budget_w": 1, "max_w": "-1 kW"}, "max_w", ">= 0"),
        ({"budget_w": 1, "sessions": [81]}, "sessions", "a table of charger id -> limits"),
        ({"budget_w": 1, "sessions": {"81": 4000}}, "sessions.81", "a table {min_w, max_w}"),
        ({"budget_w": 1, "sessions": {"81": {"min": 1}}}, "sessions.81.min", "unknown key"),
        ({"budget_w": 1, "sessions": {"81": {"min_w": "x"}}}, "sessions.81.min_w", "a power"),
        (
            {"budget_w": 1, "sessions": {"81": {"min_w": 9000, "max_w": 3000}}},
            "sessions.81.min_w",
            "at most max_w",
        ),
        (
            {"chargers": {"81": 1}, "sessions": {"82": {"max_w": 3000}}},
            "sessions.82",
            "a charger named in 'chargers'",
        ),
    ],
)
def test_each_bad_field_is_named(payload: dict[str, object], field: str, says: str) -> None:
    with pytest.raises(PayloadError, match=says) as raised:
        parse_payload(7, payload)
    assert raised.value.field == field
    assert str(raised.value).startswith(f"dispatch 7: payload.{field}: ")


def test_named_chargers_must_be_in_the_target_and_a_budget_covers_the_target() -> None:
    target = frozenset({81, 82, 83})
    assert payload_chargers(7, parse_payload(7, {"budget_w": 1}), target) == target
    named = parse_payload(7, {"chargers": {"81": 1, "83": 2}})
    assert payload_chargers(7, named, target) == {81, 83}
    with pytest.raises(PayloadError, match=r"target \[81, 82\]") as raised:
        payload_chargers(7, named, frozenset({81, 82}))
    assert raised.value.field == "chargers.83"
