"""A `pv_curtailment` use case's own keys and options (W, W/s, s).

```toml
[grid]
max_export = "100 kW"       # the export guard keeps the grid's export within this

[[use_cases]]
kind = "pv_curtailment"     # acts on PV_CURTAILMENT dispatches, and guards the export
inverters = [50]            # the PV inverters it limits (default: all of the site's)
batteries = [11, 21]        # asked to charge a surplus first (default: all)
export_limit = "90 kW"      # tighter than [grid] max_export, if wanted
lift_margin = "2 kW"        # lift only once this much room is left (hysteresis)
deadband = "500 W"          # a looser limit is sent only when it rises by more
lift_rate = "20 kW"         # per second a limit may rise (default: at once)
```

Without `[grid] max_export` and `export_limit` only dispatches limit the PV, and the
batteries are never asked to charge.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from edge_controller.common.key_specs import KeySpec, SectionSpec, seconds
from edge_controller.common.toml_reader import Reader, checked
from edge_controller.common.toml_reader import power as read_power

KIND = "pv_curtailment"


@dataclass(frozen=True, slots=True)
class PvCurtailmentOptions:
    """Settings of a `pv_curtailment` use case; see `decide.py` for what each does."""

    inverters: frozenset[int] = frozenset()
    """The PV inverters it limits; empty: every PV inverter of the site."""
    export_limit_w: float | None = None
    """None: `[grid] max_export` (and no export guard without it)."""
    lift_margin_w: float = 2000.0
    deadband_w: float = 500.0
    lift_rate_w_per_s: float | None = None
    tick: timedelta = timedelta(seconds=0.25)


def _ids(raw: object) -> frozenset[int] | None:
    if isinstance(raw, list) and all(
        isinstance(i, int) and not isinstance(i, bool) and i > 0 for i in raw
    ):
        return frozenset(raw)
    return None


def _tick(raw: object) -> timedelta | None:
    value = seconds(0.05, 10.0)(raw)
    return None if value is None else timedelta(seconds=value)


_NON_NEGATIVE_POWER = checked(read_power, lambda w: w >= 0)
_POSITIVE_POWER = checked(read_power, lambda w: w > 0)
_POWER_EXPECTED = "a power >= 0 (W, or with a unit like '2 kW')"

KEYS = SectionSpec(
    "use_cases",
    "The extra keys of a `pv_curtailment` use case (`use_cases/pv_curtailment/`).",
    live=True,
    array=True,
    heading=f'[[use_cases]] kind = "{KIND}"',
    keys=(
        KeySpec(
            "inverters",
            "a list of PV inverter ids (empty: all)",
            "The PV inverters it limits, together (shared by rated power).",
            default=frozenset(),
            default_text="all the site's PV inverters",
            convert=_ids,
        ),
        KeySpec(
            "export_limit",
            _POWER_EXPECTED,
            "Curtail what would export more than this (and the batteries cannot take).",
            unit="W",
            default=None,
            default_text="`[grid] max_export` (off without it)",
            convert=_NON_NEGATIVE_POWER,
        ),
        KeySpec(
            "lift_margin",
            _POWER_EXPECTED,
            "A limit is lifted only once this much room is left below the export limit.",
            unit="W",
            default=2000.0,
            convert=_NON_NEGATIVE_POWER,
        ),
        KeySpec(
            "deadband",
            _POWER_EXPECTED,
            "A looser limit is sent only when it rises by more than this (tighter: always).",
            unit="W",
            default=500.0,
            convert=_NON_NEGATIVE_POWER,
        ),
        KeySpec(
            "lift_rate",
            "a power > 0 per second (W, or '20 kW')",
            "How fast a limit may rise, per second.",
            unit="W/s",
            default=None,
            default_text="at once",
            convert=_POSITIVE_POWER,
        ),
        KeySpec(
            "tick",
            "seconds 0.05-10",
            "How often the grid meter and the PV are read and the limit decided.",
            unit="s",
            default=timedelta(seconds=0.25),
            convert=_tick,
        ),
    ),
)


def parse_options(reader: Reader, item: Mapping[str, Any], path: str) -> PvCurtailmentOptions:
    """Read the entry's PV-curtailment keys; every problem goes to `reader`."""
    inverters = KEYS.read(reader, item, "inverters", path)
    export_limit = KEYS.read(reader, item, "export_limit", path)
    lift_margin = KEYS.read(reader, item, "lift_margin", path)
    deadband = KEYS.read(reader, item, "deadband", path)
    lift_rate = KEYS.read(reader, item, "lift_rate", path)
    tick = KEYS.read(reader, item, "tick", path)
    defaults = PvCurtailmentOptions()
    return PvCurtailmentOptions(
        inverters=inverters or frozenset(),
        export_limit_w=export_limit,
        lift_margin_w=defaults.lift_margin_w if lift_margin is None else lift_margin,
        deadband_w=defaults.deadband_w if deadband is None else deadband,
        lift_rate_w_per_s=lift_rate,
        tick=tick or defaults.tick,
    )
