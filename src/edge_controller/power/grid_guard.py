"""Grid-connection guard: keep the predicted grid power within the site's limits.

A site's grid connection has a fuse and a contract: at most `max_import_w` may be
drawn from the grid and at most `max_export_w` fed into it. The batteries are the
only thing the controller moves, so the guard sits between the use cases and the
power distributor and clamps the battery target so that the *predicted* grid power
stays inside `[-max_export_w, +max_import_w]`::

    predicted_grid = (grid_now - battery_measured_now) + battery_target
                      `-- the rest of the site, assumed to stay as it is

`grid_now` is the grid meter's fresh active power (+ import), `battery_measured_now`
the guarded batteries' own measured AC power (+ charging) — the part of `grid_now`
that the new target replaces. Example: PV exports 300 kW (`grid_now` = −300 kW,
batteries idle) and the export limit is 500 kW: a dispatch of −400 kW would export
700 kW, so the guard passes −200 kW (reason `EXPORT_LIMIT`).

Rules, in order:

1. **Missing data.** Grid power `None`, NaN or infinite (stale meter, no meter) or a
   NaN battery power: every target becomes `safe_power_w` (default 0 W, which the
   inverters always accept) — reason `GRID_DATA_MISSING`. A limit cannot be judged
   without knowing the grid, and 0 W is the one battery power that cannot make the
   grid worse than the site already makes it.
2. **Within the limits.** If the batteries' effective power (the target, clamped into
   their bounds, as the distributor will do) keeps the predicted grid power within the
   limits, the target passes unchanged — even if the grid is over a limit *now*
   (the new target is what fixes it).
3. **Over a limit the batteries cause.** The target moves to the nearest value that
   keeps the predicted grid power at the limit: never further than needed, so a
   charge turns into a discharge only when the rest of the site alone is over the
   import limit (and vice versa) — reason `IMPORT_LIMIT` or `EXPORT_LIMIT`.
4. **Over a limit the rest of the site causes, beyond the batteries' reach.** No
   battery power within the bounds is enough (a load peak bigger than the import
   limit plus the whole discharge power). The guard decides that the batteries help
   as much as they can: the target becomes the bound on the helping side (full
   discharge against an import violation, full charge against an export one), taking
   precedence over what the use case asked — reason `SITE_OVER_IMPORT_LIMIT` or
   `SITE_OVER_EXPORT_LIMIT`. The actor should log it loudly: the site is over its
   limit whatever the controller does.

Bounds are the envelope `Range(lower, upper)` of what the batteries can do now (the
sum over the set); unknown bounds are `UNBOUNDED`, and then case 4 never happens.
Inverter resolution (flooring magnitudes) and exclusion bands are the distributor's
business: the realised power can miss the prediction by up to one resolution step
per inverter, which is the guard's tolerance.

Several running targets (one per battery set, e.g. one per dispatch) are guarded
together by `guard_targets`: the total is guarded as above, then the change is
spread (see its docstring). The targets need not be batteries: an EV charger's power
or a PV inverter's limit is a target as well, and counted the same way (its target
replaces its measured power in the prediction). Their bounds say what each will
really do, and how far the guard may move them: a PV inverter produces
`max(available, limit)`, so the caller gives it bounds from its measured production
(never below its limit) up to 0 W — a looser limit is predicted to change nothing,
which the next second's measurement corrects if the sun had more, and the guard can
only tighten it; an EV charge gets `[0, target]`, so the guard only ever cuts it (the
PowerManagingActor's `_bounds`: a dispatch's budget is not the site's reserve). Without
grid data each set may have its own safe power (`safe_w`): an EV charge stops, a PV
limit stays as it was.

All powers are watts as floats, passive sign convention: + charges a battery or is
drawn from the grid (import), − discharges or is fed into the grid (export).
Pure: no I/O, no clock (the caller decides what "fresh" means).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Generic, TypeVar

from edge_controller.power.bounds import UNBOUNDED, Range

K = TypeVar("K")
"""What identifies one guarded target: a namespace, a battery-set, ..."""


class GuardReason(StrEnum):
    """Which rule decided the guard's output (see the module docstring)."""

    WITHIN_LIMITS = "within_limits"
    """The predicted grid power is within the limits: nothing changed."""
    IMPORT_LIMIT = "import_limit"
    """The target would import too much: reduced to reach the import limit."""
    EXPORT_LIMIT = "export_limit"
    """The target would export too much: raised to reach the export limit."""
    SITE_OVER_IMPORT_LIMIT = "site_over_import_limit"
    """The site imports too much even at full discharge: full discharge."""
    SITE_OVER_EXPORT_LIMIT = "site_over_export_limit"
    """The site exports too much even at full charge: full charge."""
    GRID_DATA_MISSING = "grid_data_missing"
    """No fresh grid power (or no battery power): every target is the safe power."""


@dataclass(frozen=True, slots=True)
class GridLimits:
    """The grid connection's limits and what to do without grid data.

    `max_import_w`/`max_export_w` are magnitudes (W, ≥ 0); `None` means no limit on
    that side. `safe_power_w` is the battery target (per battery set) used while the
    grid power is unknown; 0 W is always accepted by the inverters.
    """

    max_import_w: float | None = None
    max_export_w: float | None = None
    safe_power_w: float = 0.0

    def __post_init__(self) -> None:
        """Reject negative, NaN or infinite limits and a non-finite safe power.

        Raises:
            ValueError: naming the field and the value.
        """
        for name, value in (
            ("max_import_w", self.max_import_w),
            ("max_export_w", self.max_export_w),
        ):
            if value is not None and not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number >= 0 or None, got {value}")
        if not math.isfinite(self.safe_power_w):
            raise ValueError(f"safe_power_w must be finite, got {self.safe_power_w}")

    @property
    def grid_range(self) -> Range:
        """The allowed grid power, `[-max_export_w, +max_import_w]` (±inf if unset)."""
        return Range(
            -math.inf if self.max_export_w is None else -self.max_export_w,
            math.inf if self.max_import_w is None else self.max_import_w,
        )


@dataclass(frozen=True, slots=True)
class GuardDecision:
    """The guarded total battery target and why it is what it is.

    `clamped` tells whether `target_w` differs from the proposed target (count and
    log it); `predicted_grid_w` is the grid power expected once the batteries reach
    `target_w` within their bounds (NaN when the grid power is unknown).
    """

    target_w: float
    clamped: bool
    reason: GuardReason
    predicted_grid_w: float


@dataclass(frozen=True, slots=True)
class GuardedTargets(Generic[K]):
    """The guarded targets of several battery sets, and why.

    `targets_w` has the same keys as the proposal; `changed` the keys whose target
    differs from the proposal; `clamped` is `bool(changed)`.
    """

    targets_w: Mapping[K, float]
    clamped: bool
    reason: GuardReason
    predicted_grid_w: float
    changed: frozenset[K] = field(default_factory=frozenset)


def predicted_grid_power(grid_power_w: float, battery_power_w: float, target_w: float) -> float:
    """Return the grid power expected when the batteries move from their power to `target_w`.

    All W, + import / + charging: the rest of the site (`grid - battery`) is assumed
    to stay as it is.
    """
    return grid_power_w - battery_power_w + target_w


def _data_missing(grid_power_w: float | None, battery_power_w: float) -> bool:
    return grid_power_w is None or not math.isfinite(grid_power_w) or math.isnan(battery_power_w)


def _check_target(whose: str, target_w: float) -> None:
    if not math.isfinite(target_w):
        raise ValueError(f"{whose} must be a finite number of watts, got {target_w}")


def guard_total(
    limits: GridLimits,
    grid_power_w: float | None,
    battery_power_w: float,
    target_w: float,
    battery_bounds: Range = UNBOUNDED,
) -> GuardDecision:
    """Clamp one total battery target so that the predicted grid power stays within limits.

    Args:
        limits: the grid connection's limits and safe power.
        grid_power_w: the grid meter's fresh active power (W, + import), or `None`
            when stale or missing.
        battery_power_w: the guarded batteries' measured AC power now (W, + charging);
            NaN counts as missing data.
        target_w: the proposed total battery target (W, + charging).
        battery_bounds: what the batteries can do now (W), `UNBOUNDED` if unknown.

    Returns:
        The decision; the rules are in the module docstring.

    Raises:
        ValueError: `target_w` is NaN or infinite (a bug upstream, not a reason to guess).
    """
    _check_target("the target", target_w)
    if _data_missing(grid_power_w, battery_power_w):
        return GuardDecision(
            limits.safe_power_w,
            limits.safe_power_w != target_w,
            GuardReason.GRID_DATA_MISSING,
            math.nan,
        )
    assert grid_power_w is not None
    target, reason = _guard(limits, grid_power_w - battery_power_w, target_w, battery_bounds)
    return GuardDecision(
        target,
        target != target_w,
        reason,
        grid_power_w - battery_power_w + battery_bounds.nearest(target),
    )


def _guard(
    limits: GridLimits, rest_w: float, target_w: float, bounds: Range
) -> tuple[float, GuardReason]:
    """Apply rules 2-4 to a total; `rest_w` is the grid power without the batteries."""
    grid = limits.grid_range
    allowed = Range(grid.lower - rest_w, grid.upper - rest_w)  # battery powers the grid allows
    effective = bounds.nearest(target_w)
    # judged on the grid, as the caller predicts it; min/max below keep rounding from
    # ever moving the target the wrong way
    predicted = rest_w + effective
    if grid.contains(predicted):
        return target_w, GuardReason.WITHIN_LIMITS
    if predicted > grid.upper:
        if allowed.upper >= bounds.lower:
            return min(allowed.upper, effective), GuardReason.IMPORT_LIMIT
        return bounds.lower, GuardReason.SITE_OVER_IMPORT_LIMIT
    if allowed.lower <= bounds.upper:
        return max(allowed.lower, effective), GuardReason.EXPORT_LIMIT
    return bounds.upper, GuardReason.SITE_OVER_EXPORT_LIMIT


def guard_targets(
    limits: GridLimits,
    grid_power_w: float | None,
    battery_power_w: float,
    targets_w: Mapping[K, float],
    bounds: Mapping[K, Range] | None = None,
    safe_w: Mapping[K, float] | None = None,
) -> GuardedTargets[K]:
    """Guard several battery sets' targets together; spread any change over them.

    The sets' effective targets (each clamped into its bounds) are summed and guarded
    as one total by the rules of the module docstring, with the pool's bounds being
    the sum of the sets' bounds. Within the limits every target passes unchanged.
    Otherwise the change is spread so that no set is moved further than needed:

    1. first the sets that push *towards* the violated limit are brought back towards
       0 W (or the bound nearest 0 W), proportionally to their magnitude — a 300 kW
       and a 100 kW charge that must lose 200 kW together become 150 kW and 50 kW;
    2. only if that is not enough (all of them at 0 W), every set moves on in the
       helping direction, proportionally to its room up to its bound — or, if some
       sets' bounds are unknown, those sets share the rest equally.

    So a set changes sign only when the whole total must, and every changed target
    lies within its set's bounds. Without grid data every set gets its `safe_w`, or
    `limits.safe_power_w` when it has none.

    Args:
        limits: the grid connection's limits and safe power.
        grid_power_w: the grid meter's fresh active power (W, + import), or `None`.
        battery_power_w: the measured AC power now of all components in `targets_w`
            (W, + charging or consuming); NaN counts as missing data.
        targets_w: each set's proposed target (W, + charging).
        bounds: each set's bounds now (W); a set not listed is unbounded.
        safe_w: a set's own target while the grid power is unknown (W); a set not
            listed gets `limits.safe_power_w`.

    Raises:
        ValueError: a target is NaN or infinite.
    """
    for key, target in targets_w.items():
        _check_target(f"the target of {key!r}", target)
    if _data_missing(grid_power_w, battery_power_w):
        own = safe_w or {}
        safe = {key: own.get(key, limits.safe_power_w) for key in targets_w}
        changed = frozenset(k for k, t in targets_w.items() if t != safe[k])
        return GuardedTargets(safe, bool(changed), GuardReason.GRID_DATA_MISSING, math.nan, changed)
    assert grid_power_w is not None
    known = bounds or {}
    set_bounds = {key: known.get(key, UNBOUNDED) for key in targets_w}
    effective = {key: set_bounds[key].nearest(t) for key, t in targets_w.items()}
    pool = Range(
        math.fsum(b.lower for b in set_bounds.values()),
        math.fsum(b.upper for b in set_bounds.values()),
    )
    rest = grid_power_w - battery_power_w
    total = math.fsum(effective.values())
    guarded_total, reason = _guard(limits, rest, total, pool)
    if reason is GuardReason.WITHIN_LIMITS:
        return GuardedTargets(dict(targets_w), False, reason, rest + total)
    spread = _spread(effective, set_bounds, guarded_total - total)
    changed = frozenset(k for k, t in targets_w.items() if spread[k] != t)
    realised = math.fsum(set_bounds[k].nearest(t) for k, t in spread.items())
    return GuardedTargets(spread, bool(changed), reason, rest + realised, changed)


def _spread(
    effective: Mapping[K, float], bounds: Mapping[K, Range], delta: float
) -> dict[K, float]:
    """Move the sum of `effective` by `delta`: back towards 0 W first, then on to the bounds."""
    result = dict(effective)
    if delta == 0 or not result:
        return result
    sign = 1.0 if delta > 0 else -1.0
    need = abs(delta)
    # 1. sets pushing the wrong way, back towards the value of their bounds nearest 0 W
    back = {k: max(0.0, sign * (bounds[k].nearest(0.0) - v)) for k, v in result.items()}
    room = math.fsum(back.values())
    if room > 0:
        moved = min(need, room)
        for key, share in back.items():
            result[key] += sign * moved * share / room
        need -= moved
    if need <= 0:
        return result
    # 2. everyone on, towards its bound in the helping direction
    ahead = {
        k: max(0.0, sign * ((bounds[k].upper if sign > 0 else bounds[k].lower) - v))
        for k, v in result.items()
    }
    unbounded = [k for k, r in ahead.items() if math.isinf(r)]
    if unbounded:
        for key in unbounded:
            result[key] += sign * need / len(unbounded)
        return result
    room = math.fsum(ahead.values())
    if room > 0:
        moved = min(need, room)
        for key, share in ahead.items():
            result[key] = bounds[key].nearest(result[key] + sign * moved * share / room)
    return result
