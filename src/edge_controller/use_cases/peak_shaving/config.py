"""A `peak_shaving` use case's own keys and options (W, %).

```toml
[[use_cases]]
kind = "peak_shaving"
threshold = "600 kW"        # keep grid import at or below this (else: only while a
                            # PEAK_SHAVING dispatch runs, with its threshold_w)
recharge_margin = "50 kW"   # recharge only below threshold - this
max_recharge = "200 kW"
export_limit = "300 kW"     # also charge from a surplus that would export more
soc_min = 10                # %
soc_max = 90                # %
```
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from edge_controller.common.key_specs import KeySpec, SectionSpec
from edge_controller.common.toml_reader import Reader, checked, join, number
from edge_controller.common.toml_reader import power as read_power

KIND = "peak_shaving"


@dataclass(frozen=True, slots=True)
class PeakShavingOptions:
    """Settings of a `peak_shaving` use case (W, %); see `decide.py`."""

    threshold_w: float | None = None
    """Keep grid import at or below this; None: only while a PEAK_SHAVING dispatch runs."""
    recharge_margin_w: float = 0.0
    max_recharge_w: float | None = None
    export_limit_w: float | None = None
    soc_min_pct: float = 0.0
    soc_max_pct: float = 100.0


_NON_NEGATIVE_POWER = checked(read_power, lambda w: w >= 0)
_PEAK_POWER_EXPECTED = "a power >= 0 (W, or with a unit like '50 kW')"
_PERCENT = checked(number, lambda v: 0 <= v <= 100)

KEYS = SectionSpec(
    "use_cases",
    "The extra keys of a `peak_shaving` use case (`use_cases/peak_shaving/`).",
    live=True,
    array=True,
    heading=f'[[use_cases]] kind = "{KIND}"',
    keys=(
        KeySpec(
            "threshold",
            "a power (W, or '600 kW')",
            "Keep grid import at or below this by discharging.",
            unit="W",
            default=None,
            default_text="only while a PEAK_SHAVING dispatch runs (its `threshold_w`)",
            convert=read_power,
        ),
        KeySpec(
            "recharge_margin",
            _PEAK_POWER_EXPECTED,
            "Recharge only while import is below threshold − this (no new peak).",
            unit="W",
            default=0.0,
            convert=_NON_NEGATIVE_POWER,
        ),
        KeySpec(
            "max_recharge",
            _PEAK_POWER_EXPECTED,
            "Caps the recharge power.",
            unit="W",
            default=None,
            default_text="the batteries' bounds",
            convert=_NON_NEGATIVE_POWER,
        ),
        KeySpec(
            "export_limit",
            _PEAK_POWER_EXPECTED,
            "Also charge from a surplus that would export more than this.",
            unit="W",
            default=None,
            default_text="off",
            convert=_NON_NEGATIVE_POWER,
        ),
        KeySpec(
            "soc_min",
            "a SoC % 0-100",
            "At or below this SoC the batteries do not discharge.",
            unit="%",
            default=0.0,
            convert=_PERCENT,
        ),
        KeySpec(
            "soc_max",
            "a SoC % 0-100",
            "At or above this SoC they do not charge; more than soc_min.",
            unit="%",
            default=100.0,
            convert=_PERCENT,
        ),
    ),
)


def parse_options(reader: Reader, item: Mapping[str, Any], path: str) -> PeakShavingOptions:
    """Read the entry's peak-shaving keys; every problem goes to `reader`."""
    threshold = KEYS.read(reader, item, "threshold", path)
    margin = KEYS.read(reader, item, "recharge_margin", path)
    max_recharge = KEYS.read(reader, item, "max_recharge", path)
    export_limit = KEYS.read(reader, item, "export_limit", path)
    soc_min = KEYS.read(reader, item, "soc_min", path)
    soc_max = KEYS.read(reader, item, "soc_max", path)
    if soc_min is not None and soc_max is not None and soc_min >= soc_max:
        reader.fail(join(path, "soc_max"), f"more than soc_min ({soc_min:g})", soc_max)
    if threshold is not None and export_limit is not None and threshold < -export_limit:
        reader.fail(
            join(path, "threshold"), f"at least -export_limit ({-export_limit:g} W)", threshold
        )
    return PeakShavingOptions(
        threshold_w=threshold,
        recharge_margin_w=margin or 0.0,
        max_recharge_w=max_recharge,
        export_limit_w=export_limit,
        soc_min_pct=soc_min or 0.0,
        soc_max_pct=100.0 if soc_max is None else soc_max,
    )
