"""PV curtailment: how much the site's PV inverters may produce.

Two things can limit the PV, and the tighter wins:

- **A `PV_CURTAILMENT` dispatch**: "produce at most 50 kW" for its duration.
- **The export guard**: the grid connection may feed at most `export_limit_w` into the
  grid. What the batteries can still charge absorbs a surplus first; only the rest
  of it is curtailed::

      excess   = export now − export_limit          (< 0: room left below the limit)
      needed   = excess − battery_headroom          production that must go (≤ 0: none)
      fits     = max(0, production now − needed)    the most the PV may produce

  `battery_headroom` is what the batteries' bounds allow beyond their measured power
  (0 W for a full battery, one at its charge bound, or one out of service). Example:
  export limit 100 kW, PV 300 kW, load 120 kW, batteries full: export 180 kW, 80 kW
  too much, the PV may produce 220 kW. With 50 kW of battery headroom it may produce
  270 kW (the batteries take the other 50 kW).

The guard's limit is computed from the production *as measured*, so it is the same
whether the PV is curtailed already or not: once curtailed to `fits`, the export sits
at the limit and `fits` stays where it is (no flapping between "curtail" and "lift").
The rules for the guard's part, one step at a time:

1. **No data, no change.** A stale or NaN grid power, PV power or battery headroom
   holds the guard's last limit (or its absence): a decision is never made on garbage.
2. **Start** as soon as `needed > 0` and the PV produces: the limit becomes `fits`
   (a PV that produces nothing has nothing to give; a limit would not help). Also while a
   dispatch's limit holds the PV back (it produces within `lift_margin_w` of it):
   what the sun could give is unknown then, so the guard keeps `fits` ready
   beside the dispatch's limit, and the PV does not jump past the export limit
   when the dispatch ends.
3. **Lift** (no limit at all) only when it is no longer needed by a margin:
   `needed ≤ −lift_margin_w` *and* the PV produces more than `lift_margin_w` less
   than the limit in force (nothing holds it back, so lifting changes nothing now);
   or all the PV's rated production fits (`fits ≥ rated`). The margin is the
   hysteresis band between starting (`needed > 0`) and lifting.
4. **Tighten at once**: a `fits` below the limit in force replaces it, however small
   the step (the export limit is a contract).
5. **Loosen by steps**: a `fits` above the limit by more than `deadband_w` raises it,
   at most `lift_rate_w_per_s` per second (`None`: at once), so the PV does not jump
   back before the batteries or the load have followed.

The combined limit is never above the PV's rated production (a production limit
beyond it is not a power the inverters accept).

Powers are watts as floats, passive sign convention: + is consumed or imported, − is
produced or exported; the PV power is ≤ 0 while producing. Limits and headroom are
magnitudes (W ≥ 0). Pure: no I/O, no clock (the caller passes the elapsed time).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum


class CurtailmentReason(StrEnum):
    """Why the PV is limited (or not) after a decision."""

    NONE = "none"
    """No limit: the PV produces what it can."""
    EXPORT_LIMIT = "export_limit"
    """The export guard's limit is the tighter one."""
    DISPATCH = "dispatch"
    """A dispatch's limit is the tighter one (or the only one)."""
    NO_DATA = "no_data"
    """Telemetry is stale or NaN: the export guard's part is held as it was."""


@dataclass(frozen=True, slots=True)
class CurtailmentSettings:
    """The export guard's settings (W, magnitudes ≥ 0).

    `export_limit_w` is the grid connection's `max_export` (`None`: no export guard,
    only dispatches limit the PV); `lift_margin_w` the hysteresis band (see rule 5);
    `deadband_w` the smallest loosening worth a new limit; `lift_rate_w_per_s` how fast
    a limit may rise (`None`: at once).
    """

    export_limit_w: float | None = None
    lift_margin_w: float = 2000.0
    deadband_w: float = 500.0
    lift_rate_w_per_s: float | None = None

    def __post_init__(self) -> None:
        """Reject settings that cannot be a power or a rate.

        Raises:
            ValueError: a negative or non-finite value; a zero lift rate (a limit
                could never rise).
        """
        for name, value in (
            ("export_limit_w", self.export_limit_w),
            ("lift_margin_w", self.lift_margin_w),
            ("deadband_w", self.deadband_w),
            ("lift_rate_w_per_s", self.lift_rate_w_per_s),
        ):
            if value is not None and not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {value}")
        if self.lift_rate_w_per_s == 0:
            raise ValueError("lift_rate_w_per_s must be > 0 (or None: at once)")


@dataclass(frozen=True, slots=True)
class PvSite:
    """The site as measured now: what the decision reads (W).

    `grid_w` is the fresh grid-meter power (+ import, − export), `None` when stale or
    missing; `pv_w` the controlled PV inverters' AC power summed (≤ 0 while
    producing), NaN when unknown; `battery_headroom_w` how much more the batteries
    can charge (≥ 0), NaN when unknown; `pv_rated_w` the PV inverters' rated
    production summed (≥ 0), `inf` when unknown.
    """

    grid_w: float | None
    pv_w: float
    battery_headroom_w: float = 0.0
    pv_rated_w: float = math.inf


@dataclass(frozen=True, slots=True)
class Curtailment:
    """A decision: the PV's production limit, and the state the next step starts from.

    `allowed_w` is what all controlled PV inverters together may produce (W ≥ 0),
    `None` for no limit; `export_allowed_w` the export guard's part of it (carried to
    the next step). `needed_w` is the guard's `needed` (> 0: production that must go,
    ≤ 0: room left; NaN without data or without a guard), for logs and tests.
    """

    allowed_w: float | None
    export_allowed_w: float | None
    reason: CurtailmentReason
    needed_w: float = math.nan


NOT_CURTAILED = Curtailment(None, None, CurtailmentReason.NONE)
"""The state before the first decision: nothing limited."""


def export_guard(
    settings: CurtailmentSettings, site: PvSite, last: Curtailment, elapsed_s: float
) -> tuple[float | None, float]:
    """Return the guard's limit (W ≥ 0, `None`: none) and `needed` (W; NaN: no data).

    `last` is the decision in force, `elapsed_s` the time since it (it paces the lift
    rate). Rules 1-5 of the module docstring.
    """
    limit = settings.export_limit_w
    last_w = last.export_allowed_w
    if limit is None:
        return None, math.nan
    grid_w, pv_w, headroom_w = site.grid_w, site.pv_w, site.battery_headroom_w
    if grid_w is None or not all(math.isfinite(v) for v in (grid_w, pv_w, headroom_w)):
        return last_w, math.nan
    produced = max(0.0, -pv_w)
    needed = -(grid_w + limit) - max(0.0, headroom_w)
    fits = max(0.0, produced - needed)
    margin = settings.lift_margin_w
    # Held back by the limit in force (the guard's or a dispatch's): what the PV could
    # produce without it is unknown, so only the guard's own limit stands between the
    # PV and the export limit once that other limit goes.
    held_back = last.allowed_w is not None and last.allowed_w - produced <= margin
    if last_w is None:
        if fits < produced or (held_back and fits < site.pv_rated_w):
            return fits, needed
        return None, needed
    if (needed <= -margin and not held_back) or fits >= site.pv_rated_w:
        return None, needed
    if fits < last_w:
        return fits, needed
    if fits - last_w > settings.deadband_w:
        step = fits - last_w
        if settings.lift_rate_w_per_s is not None:
            step = min(step, settings.lift_rate_w_per_s * max(0.0, elapsed_s))
        return last_w + step, needed
    return last_w, needed


def decide(
    settings: CurtailmentSettings,
    site: PvSite,
    last: Curtailment = NOT_CURTAILED,
    *,
    dispatch_limit_w: float | None = None,
    elapsed_s: float = 0.0,
) -> Curtailment:
    """Return the PV's production limit now: the dispatch's and the guard's, the tighter.

    `dispatch_limit_w` is a running dispatch's limit (W ≥ 0, `None`: no dispatch),
    `last` the previous decision, `elapsed_s` the seconds since it.

    Raises:
        ValueError: a negative or NaN dispatch limit (the payload check refuses those).
    """
    if dispatch_limit_w is not None and not dispatch_limit_w >= 0:
        raise ValueError(f"dispatch_limit_w must be >= 0, got {dispatch_limit_w}")
    export_w, needed = export_guard(settings, site, last, elapsed_s)
    held = settings.export_limit_w is not None and math.isnan(needed)
    limits = [w for w in (dispatch_limit_w, export_w) if w is not None]
    if not limits:
        reason = CurtailmentReason.NO_DATA if held else CurtailmentReason.NONE
        return Curtailment(None, None, reason, needed)
    allowed = min(min(limits), site.pv_rated_w)
    if held:
        reason = CurtailmentReason.NO_DATA
    elif export_w is not None and (dispatch_limit_w is None or export_w < dispatch_limit_w):
        reason = CurtailmentReason.EXPORT_LIMIT
    else:
        reason = CurtailmentReason.DISPATCH
    return Curtailment(allowed, export_w, reason, needed)
