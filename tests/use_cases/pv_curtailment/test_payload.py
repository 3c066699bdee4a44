"""A PV_CURTAILMENT dispatch's payload: a limit in W or in % of rated, each bad field named."""

from __future__ import annotations

import math

import pytest

from edge_controller.dispatching.payload import PayloadError
from edge_controller.use_cases.pv_curtailment.payload import (
    ProductionLimit,
    parse_pv_curtailment,
)


@pytest.mark.parametrize(
    ("payload", "limit"),
    [
        ({"max_production_w": 50000}, ProductionLimit(watts=50000.0)),
        ({"max_production_w": 50000.0}, ProductionLimit(watts=50000.0)),
        ({"max_production_w": "50 kW"}, ProductionLimit(watts=50000.0)),
        ({"max_production_w": 0}, ProductionLimit(watts=0.0)),
        ({"max_production_pct": 60}, ProductionLimit(percent=60.0)),
        ({"max_production_pct": 0.0}, ProductionLimit(percent=0.0)),
        ({"max_production_pct": 100}, ProductionLimit(percent=100.0)),
    ],
)
def test_a_limit_in_watts_or_in_percent_is_read(
    payload: dict[str, object], limit: ProductionLimit
) -> None:
    assert parse_pv_curtailment(7, payload) == limit


@pytest.mark.parametrize(
    ("payload", "field", "says"),
    [
        ({}, "max_production_w", "missing"),
        ({"max_production": 5}, "max_production", "unknown key"),
        ({"max_production_w": 1, "max_production_pct": 5}, "max_production_pct", "not both"),
        ({"max_production_w": -50000}, "max_production_w", ">= 0 W"),
        ({"max_production_w": "-50 kW"}, "max_production_w", ">= 0 W"),
        ({"max_production_w": "fifty"}, "max_production_w", "expected a power"),
        ({"max_production_w": True}, "max_production_w", "expected a power"),
        ({"max_production_w": math.inf}, "max_production_w", "finite"),
        ({"max_production_pct": 101}, "max_production_pct", "0-100"),
        ({"max_production_pct": -1}, "max_production_pct", "0-100"),
        ({"max_production_pct": math.nan}, "max_production_pct", "0-100"),
        ({"max_production_pct": "60 %"}, "max_production_pct", "0-100"),
        ({"max_production_pct": False}, "max_production_pct", "0-100"),
    ],
)
def test_each_bad_field_is_named(payload: dict[str, object], field: str, says: str) -> None:
    with pytest.raises(PayloadError, match=says) as raised:
        parse_pv_curtailment(7, payload)
    assert raised.value.field == field
    assert raised.value.dispatch_id == 7
    assert str(raised.value).startswith(f"dispatch 7: payload.{field}: ")


def test_a_percentage_becomes_watts_of_the_rating_and_needs_a_known_one() -> None:
    assert ProductionLimit(percent=60).as_watts(350_000.0) == pytest.approx(210_000.0)
    assert ProductionLimit(percent=60).as_watts(math.inf) is None
    assert ProductionLimit(percent=60).as_watts(math.nan) is None
    assert ProductionLimit(watts=50_000).as_watts(math.inf) == 50_000.0
