"""Reading a dispatch's payload, with errors that name the dispatch and the field.

Payloads travel as a protobuf `Struct`, so integers arrive as floats; people also
write quantities as strings ("-40 kW"). Both are accepted. Only the pieces every use
case reads its own payload with live here (`PayloadError`, `parse_power`); a use
case's payload format lives in its folder (`use_cases/<kind>/payload.py`).
"""

from __future__ import annotations

import math

from frequenz.quantities import Power


class PayloadError(ValueError):
    """A payload that cannot be executed; says which dispatch and which field."""

    def __init__(self, dispatch_id: int, field: str, problem: str) -> None:
        """Describe the problem with `field` of dispatch `dispatch_id`."""
        super().__init__(f"dispatch {dispatch_id}: payload.{field}: {problem}")
        self.dispatch_id = dispatch_id
        self.field = field


def parse_power(dispatch_id: int, field: str, raw: object) -> float:
    """Return watts from a number (W) or a quantity string such as "-40 kW".

    Raises:
        PayloadError: missing, not a finite number, or an unreadable string.
    """
    if isinstance(raw, bool) or raw is None:
        raise PayloadError(dispatch_id, field, f"expected a power in W or '-40 kW', got {raw!r}")
    if isinstance(raw, int | float):
        value = float(raw)
    elif isinstance(raw, str):
        try:
            value = Power.from_string(raw.strip()).as_watts()
        except (ValueError, KeyError, IndexError):
            raise PayloadError(
                dispatch_id, field, f"expected a power like '-40 kW', got {raw!r}"
            ) from None
    else:
        raise PayloadError(dispatch_id, field, f"expected a power, got {type(raw).__name__}")
    if not math.isfinite(value):
        raise PayloadError(dispatch_id, field, f"expected a finite power, got {raw!r}")
    return value
