"""A `BATTERY_POWER` dispatch's payload: the power to hold, in W or as a quantity.

`{"power_w": -40000}` or `{"power_w": "-40 kW"}` (a protobuf `Struct` carries every
number as a float; a string is read as a `frequenz.quantities.Power`). Only `power_w`:
any other key is refused, so a typo (`"powr_w"`) never runs as something else.

Pure: checks only, errors name the dispatch and the field (`PayloadError`). Powers in
W, passive sign convention: + charges, − discharges.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from edge_controller.dispatching.payload import PayloadError, parse_power


@dataclass(frozen=True, slots=True)
class BatteryPowerPayload:
    """What a BATTERY_POWER dispatch asks: hold `power_w` (+ charges, − discharges)."""

    power_w: float


def parse_battery_power(dispatch_id: int, payload: Mapping[str, object]) -> BatteryPowerPayload:
    """Validate a BATTERY_POWER payload: `{"power_w": -40000}` or `{"power_w": "-40 kW"}`.

    Raises:
        PayloadError: naming the dispatch and the field.
    """
    unknown = sorted(set(payload) - {"power_w"})
    if unknown:
        raise PayloadError(dispatch_id, unknown[0], "unknown key; expected only 'power_w'")
    if "power_w" not in payload:
        raise PayloadError(dispatch_id, "power_w", "missing; expected a power in W")
    return BatteryPowerPayload(parse_power(dispatch_id, "power_w", payload["power_w"]))


__all__ = ["BatteryPowerPayload", "parse_battery_power"]
