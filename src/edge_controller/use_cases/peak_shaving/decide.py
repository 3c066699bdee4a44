"""Peak shaving: the battery target that keeps grid import below a threshold.

The decision a `PeakShavingActor` makes on every grid-meter update. It works on the
site's import *without* the batteries — `base = grid_now - battery_measured_now` — so
that a battery that already discharges is not counted twice and a battery that
charges is never mistaken for load::

    base > threshold                       → discharge threshold − base   (SHAVING)
    base < −export_limit  (if configured)  → charge −export_limit − base  (EXPORT_SHAVING)
    base < threshold − margin              → charge up to
                                             threshold − margin − base    (RECHARGING)
    otherwise                              → 0 W                          (IDLE)

Example, threshold 400 kW, margin 50 kW: a load step to 520 kW gives −120 kW (grid
back at 400 kW); at 300 kW the batteries recharge with up to 50 kW (grid at 350 kW,
still 50 kW below the threshold); between 350 and 400 kW they rest.

- **Discharge just enough.** Shaving never discharges more than brings the import to
  the threshold; the rest of the energy stays for the next peak.
- **Recharge never makes a peak.** The recharge power is at most what lifts the
  import to `threshold − margin`, so the predicted import stays below the threshold
  by the margin; `max_recharge_w` can make it gentler. The margin is the hysteresis
  band that keeps the batteries from flipping between charge and discharge.
- **Export shaving (optional).** With `export_limit_w` set, a PV surplus that exports
  more than the limit is charged into the batteries (up to their bounds, not limited by
  `max_recharge_w`): the predicted export comes back to the limit.
- **Bounds and SoC.** Targets are clamped into the pool's bounds without ever
  changing sign (a charge never turns into a discharge because a bound excludes 0 W).
  At or below `soc_min_pct` the batteries do not discharge, at or above
  `soc_max_pct` they do not charge. An unknown (NaN) SoC skips that check: the
  batteries' own bounds, which taper near their SoC limits, still apply.
- **No data.** An unknown grid or battery power gives 0 W (`NO_DATA`); the grid
  guard's safe power applies downstream anyway.

`shortfall_w` tells how far the predicted grid stays beyond the threshold (or the
export limit) because the batteries cannot do more — for a log line or an alert.

A running `PEAK_SHAVING` dispatch overrides the configured threshold (and margin)
for its duration: `parse_peak_shaving` reads its payload.

Powers are watts as floats, passive sign convention: + charges a battery or is
imported from the grid, − discharges or is exported. Pure: no I/O, no clock.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from edge_controller.dispatching.payload import PayloadError, parse_power


class ShavingMode(StrEnum):
    """What the batteries are doing for peak shaving."""

    SHAVING = "shaving"
    """Discharging to keep the import at the threshold."""
    EXPORT_SHAVING = "export_shaving"
    """Charging a surplus that would export more than the export limit."""
    RECHARGING = "recharging"
    """Charging below the threshold, leaving the margin free."""
    IDLE = "idle"
    """Nothing to do: within the band, or no room to recharge (full, or at its bound).

    Shaving that the batteries cannot do (empty, at their bound) stays `SHAVING` or
    `EXPORT_SHAVING` at 0 W with a `shortfall_w`, so the actor can tell.
    """
    NO_DATA = "no_data"
    """Grid or battery power unknown: 0 W."""


@dataclass(frozen=True, slots=True)
class PeakShavingConfig:
    """The use case's settings (W; margins and limits are magnitudes ≥ 0).

    `threshold_w` is the import to stay at or below (from config, or a
    `PEAK_SHAVING` dispatch's payload); `recharge_margin_w` how far below it the
    recharge stops; `max_recharge_w` caps the recharge power (`None`: the bounds);
    `export_limit_w` turns on export shaving; `soc_min_pct`/`soc_max_pct` the SoC
    window the batteries are used in.
    """

    threshold_w: float
    recharge_margin_w: float = 0.0
    max_recharge_w: float | None = None
    export_limit_w: float | None = None
    soc_min_pct: float = 0.0
    soc_max_pct: float = 100.0

    def __post_init__(self) -> None:
        """Reject settings that cannot be met or contradict each other.

        Raises:
            ValueError: a non-finite threshold, a negative or non-finite margin or
                limit, a threshold below the export limit (−export_limit_w), or an
                empty SoC window.
        """
        if not math.isfinite(self.threshold_w):
            raise ValueError(f"threshold_w must be finite, got {self.threshold_w}")
        for name, value in (
            ("recharge_margin_w", self.recharge_margin_w),
            ("max_recharge_w", self.max_recharge_w),
            ("export_limit_w", self.export_limit_w),
        ):
            if value is not None and not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {value}")
        if self.export_limit_w is not None and self.threshold_w < -self.export_limit_w:
            raise ValueError(
                f"threshold_w ({self.threshold_w} W) is below the export limit "
                f"(-{self.export_limit_w} W): no grid power would satisfy both"
            )
        if not 0.0 <= self.soc_min_pct < self.soc_max_pct <= 100.0:
            raise ValueError(
                "need 0 <= soc_min_pct < soc_max_pct <= 100, got "
                f"{self.soc_min_pct} and {self.soc_max_pct}"
            )


@dataclass(frozen=True, slots=True)
class BatteryPool:
    """The batteries peak shaving drives, as measured now.

    `power_w` is their measured AC power (+ charging), `lower_w`/`upper_w` the
    envelope of their bounds (W), `soc_pct` their mean SoC (NaN if unknown).
    """

    power_w: float
    lower_w: float
    upper_w: float
    soc_pct: float = math.nan


@dataclass(frozen=True, slots=True)
class PeakShavingDecision:
    """The battery target and what it is expected to do to the grid.

    `predicted_grid_w` is the grid power once the batteries reach `target_w` (NaN
    without data); `shortfall_w` ≥ 0 how far it stays above the threshold (or below
    −export limit) because bounds or SoC stop the batteries short.
    """

    target_w: float
    mode: ShavingMode
    predicted_grid_w: float
    shortfall_w: float = 0.0


def _towards(value: float, lower: float, upper: float) -> float:
    """Clamp `value` into [lower, upper] without changing its sign (0 W if it would)."""
    if value > 0:
        return max(0.0, min(value, upper))
    if value < 0:
        return min(0.0, max(value, lower))
    return 0.0


def decide(
    config: PeakShavingConfig, grid_power_w: float | None, pool: BatteryPool
) -> PeakShavingDecision:
    """Return the battery target for the grid power now (W, + import); rules above.

    `grid_power_w` is the fresh grid-meter power, `None` when stale or missing.
    """
    if grid_power_w is None or not math.isfinite(grid_power_w) or not math.isfinite(pool.power_w):
        return PeakShavingDecision(0.0, ShavingMode.NO_DATA, math.nan)
    base = grid_power_w - pool.power_w
    soc = pool.soc_pct
    may_discharge = math.isnan(soc) or soc > config.soc_min_pct
    may_charge = math.isnan(soc) or soc < config.soc_max_pct
    lower = pool.lower_w if may_discharge else 0.0
    upper = pool.upper_w if may_charge else 0.0

    if base > config.threshold_w:
        target = _towards(config.threshold_w - base, lower, upper)
        shortfall = max(0.0, base + target - config.threshold_w)
        return PeakShavingDecision(target, ShavingMode.SHAVING, base + target, shortfall)

    recharge_room = config.threshold_w - config.recharge_margin_w - base
    recharge = 0.0
    if recharge_room > 0:
        cap = math.inf if config.max_recharge_w is None else config.max_recharge_w
        recharge = _towards(min(recharge_room, cap), lower, upper)
    if config.export_limit_w is not None and base < -config.export_limit_w:
        surplus = _towards(-config.export_limit_w - base, lower, upper)
        if surplus >= recharge:
            shortfall = max(0.0, -config.export_limit_w - (base + surplus))
            return PeakShavingDecision(
                surplus, ShavingMode.EXPORT_SHAVING, base + surplus, shortfall
            )
    if recharge > 0:
        return PeakShavingDecision(recharge, ShavingMode.RECHARGING, base + recharge)
    return PeakShavingDecision(0.0, ShavingMode.IDLE, base)


@dataclass(frozen=True, slots=True)
class PeakShavingPayload:
    """What a PEAK_SHAVING dispatch asks: keep grid import at or below `threshold_w`."""

    threshold_w: float
    recharge_margin_w: float | None = None


def parse_peak_shaving(dispatch_id: int, payload: Mapping[str, object]) -> PeakShavingPayload:
    """Validate a PEAK_SHAVING payload: `{"threshold_w": "600 kW", "recharge_margin_w": 50000}`.

    Raises:
        PayloadError: naming the dispatch and the field.
    """
    allowed = {"threshold_w", "recharge_margin_w"}
    unknown = sorted(set(payload) - allowed)
    if unknown:
        raise PayloadError(dispatch_id, unknown[0], f"unknown key; expected {sorted(allowed)}")
    if "threshold_w" not in payload:
        raise PayloadError(dispatch_id, "threshold_w", "missing; expected a power in W")
    threshold = parse_power(dispatch_id, "threshold_w", payload["threshold_w"])
    margin = None
    if "recharge_margin_w" in payload:
        margin = parse_power(dispatch_id, "recharge_margin_w", payload["recharge_margin_w"])
        if margin < 0:
            raise PayloadError(dispatch_id, "recharge_margin_w", f"expected >= 0, got {margin:g}")
    return PeakShavingPayload(threshold, margin)
