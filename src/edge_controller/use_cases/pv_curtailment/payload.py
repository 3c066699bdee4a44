"""A `PV_CURTAILMENT` dispatch's payload: the PV's production limit, in W or in %.

`{"max_production_w": 50000}` (or `"50 kW"`) limits all controlled PV inverters
together to 50 kW; `{"max_production_pct": 60}` to 60 % of their rated production,
which the actor turns into watts when it knows the rating. Exactly one of the two;
any other key is refused, so a typo never runs as "no limit".

Pure: checks only, errors name the dispatch and the field (`PayloadError`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from edge_controller.dispatching.payload import PayloadError, parse_power

_W = "max_production_w"
_PCT = "max_production_pct"


@dataclass(frozen=True, slots=True)
class ProductionLimit:
    """What a dispatch allows the PV: `watts` (W ≥ 0) or `percent` of rated (0-100)."""

    watts: float | None = None
    percent: float | None = None

    def as_watts(self, rated_w: float) -> float | None:
        """The limit in W, given the PV's rated production; `None` if it needs an unknown one.

        A percentage of an unknown (infinite or NaN) rating cannot be a limit: the
        actor then leaves the PV alone rather than guess.
        """
        if self.watts is not None:
            return self.watts
        if self.percent is None or not math.isfinite(rated_w):
            return None
        return self.percent / 100.0 * rated_w


def parse_pv_curtailment(dispatch_id: int, payload: Mapping[str, object]) -> ProductionLimit:
    """Validate a PV_CURTAILMENT payload.

    Raises:
        PayloadError: an unknown key, both or neither of the two limits, a power that
            is not a power or is negative, a percentage outside 0-100 — naming the
            dispatch and the field.
    """
    unknown = sorted(set(payload) - {_W, _PCT})
    if unknown:
        raise PayloadError(dispatch_id, unknown[0], f"unknown key; expected {_W!r} or {_PCT!r}")
    if _W in payload and _PCT in payload:
        raise PayloadError(dispatch_id, _PCT, f"give either {_W!r} or {_PCT!r}, not both")
    if _W in payload:
        watts = parse_power(dispatch_id, _W, payload[_W])
        if watts < 0:
            raise PayloadError(
                dispatch_id, _W, f"expected a production >= 0 W (a magnitude), got {watts:g}"
            )
        return ProductionLimit(watts=watts)
    if _PCT in payload:
        raw = payload[_PCT]
        if isinstance(raw, bool) or not isinstance(raw, int | float):
            raise PayloadError(dispatch_id, _PCT, f"expected a number 0-100, got {raw!r}")
        percent = float(raw)
        if not 0.0 <= percent <= 100.0:
            raise PayloadError(dispatch_id, _PCT, f"expected a number 0-100, got {raw!r}")
        return ProductionLimit(percent=percent)
    raise PayloadError(dispatch_id, _W, f"missing; expected {_W!r} (W) or {_PCT!r} (0-100)")
