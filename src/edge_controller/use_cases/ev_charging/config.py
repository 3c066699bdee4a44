"""An `ev_charging` use case's own keys and options.

```toml
[[use_cases]]
kind = "ev_charging"
chargers = [81, 82, 83]   # the EV chargers it drives (default: every one of the site)
min_power = "4140 W"      # the least a car charges with, where a dispatch names no
                          # min_w: 6 A x 230 V x 3 phases (default 0: the chargers'
                          # own bounds decide)
tick = 0.5                # s: how often it looks at the chargers again
```
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from edge_controller.common.key_specs import KeySpec, SectionSpec, seconds_key
from edge_controller.common.toml_reader import Reader, checked, integer
from edge_controller.common.toml_reader import power as read_power

KIND = "ev_charging"


@dataclass(frozen=True, slots=True)
class EvChargingOptions:
    """Settings of an `ev_charging` use case (W, s); see `decide.py`."""

    chargers: frozenset[int] = frozenset()
    """The EV chargers it drives; empty: every EV charger of the site."""
    min_power_w: float = 0.0
    """The least a car charges with when it charges at all, where a dispatch names no
    `min_w`; a charger's own minimum (the gap its bounds show) applies anyway."""
    tick: timedelta = timedelta(seconds=0.5)
    """How often it reads the chargers again: a car that arrives or leaves is seen
    within this (plus the telemetry's own period)."""


def _charger_ids(raw: object) -> frozenset[int] | None:
    if not isinstance(raw, list):
        return None
    ids = [integer(item) for item in raw]
    if any(i is None or i <= 0 for i in ids):
        return None
    return frozenset(i for i in ids if i is not None)


KEYS = SectionSpec(
    "use_cases",
    "The extra keys of an `ev_charging` use case (`use_cases/ev_charging/`).",
    live=True,
    array=True,
    heading=f'[[use_cases]] kind = "{KIND}"',
    keys=(
        KeySpec(
            "chargers",
            "a list of EV charger ids (empty: all)",
            "The EV chargers it drives; a dispatch's target names some or all of them.",
            default=frozenset(),
            default_text="all",
            convert=_charger_ids,
        ),
        KeySpec(
            "min_power",
            "a power >= 0 (W, or with a unit like '4140 W')",
            "The least a car charges with, where a dispatch names no min_w "
            "(6 A x 230 V x 3 phases = 4140 W).",
            unit="W",
            default=0.0,
            default_text="0: the chargers' own bounds decide",
            convert=checked(read_power, lambda w: w >= 0),
        ),
        seconds_key("tick", 0.05, 60, 0.5, "How often it reads the chargers again."),
    ),
)


def parse_options(reader: Reader, item: Mapping[str, Any], path: str) -> EvChargingOptions:
    """Read the entry's EV charging keys; every problem goes to `reader`."""
    chargers = KEYS.read(reader, item, "chargers", path)
    min_power = KEYS.read(reader, item, "min_power", path)
    tick = KEYS.read(reader, item, "tick", path)
    defaults = EvChargingOptions()
    return EvChargingOptions(
        chargers=defaults.chargers if chargers is None else chargers,
        min_power_w=defaults.min_power_w if min_power is None else min_power,
        tick=defaults.tick if tick is None else timedelta(seconds=tick),
    )
