"""Feeder-meter limits: how much battery power each inverter may take below a meter.

The grid guard (`grid_guard`) keeps the whole site within the grid connection's
limits. A site can also have a meter inside it with a limit of its own — a sub-feeder
whose cable or breaker carries at most so much, or a tenant's connection. Below that
meter the batteries must not push its power past the limit, whatever the set they
belong to is asked for; the batteries elsewhere are not bound by it.

The distributor enforces it, because only it knows which inverter gets how much. Each
round this module turns every limited meter into a *share* per inverter below it, a
`Range` the inverter's own bounds are intersected with; the distribution then works
inside the narrower bounds, and a request that needs more is clamped (its excess is
reported) — the batteries outside the meter are not made to carry the rest, that is
the use case's and the grid guard's business.

For a meter with import limit `I` and export limit `E` (W, magnitudes; `None` = none)::

    rest    = meter_power - Σ measured power of the inverters below it
    allowed = [-E - rest, +I - rest]       battery power the meter's limits allow
    allowed = [min(0, lower), max(0, upper)]   0 W is always allowed

`rest` is the rest of what flows through the meter (loads, PV, other feeders), assumed
to stay as it is — the same prediction as the grid guard.

The distributor plans one battery set at a time, so the inverters below a meter are
of two kinds: those this plan *controls*, and the others — another target's (at its
standing command, `fixed_w`), a broken one the plan does not command, an idle one (at
their measured power). One still ramping to a new command counts at the worse of its
measured power and its command for each limit. What the others take is theirs; the
controlled ones share what is left::

    allowed = [-E - rest - Σ others, +I - rest - Σ others]
    allowed = [min(0, lower), max(0, upper)]   0 W is always allowed

So two targets below one meter never hand out the same headroom twice: the one
planned first keeps what it runs, the next gets the rest. 0 W stays allowed: a meter
over its limit because of its loads (or the others) gets no forced discharge from this
stage (the batteries only stop making it worse); the grid guard at the connection
point is the one that fights a site-wide violation. Such a meter is reported
(`site_over`).

`allowed` is split between the controlled inverters below the meter, its upper end
over those that would charge and its lower end over those that would discharge, in
proportion to the power each would take without the limit (`preference_w`: the
distributor's plan before the limit) — so the headroom goes where the SoC balancing
wants it, not to a full battery that would leave its part unused. When no inverter
prefers a side, that side is split in proportion to the inverters' own bounds (equal
parts when a bound is unknown or all are 0 W). Together the shares can never leave
`allowed`. An inverter below several limited meters gets the intersection.

No fresh meter power, or no fresh power of an inverter below it: the meter cannot be
judged, and every inverter below it gets `[0, 0]` (`data_missing`) — the same safe
power the grid guard uses.

Watts as floats, passive sign convention (+ charges a battery / flows down through the
meter). Pure: no I/O, no clock; the caller decides what is fresh.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from edge_controller.power.bounds import Range

ZERO = Range(0.0, 0.0)


@dataclass(frozen=True, slots=True)
class MeterLimit:
    """A meter inside the site and its limits (W magnitudes, ≥ 0; `None` = no limit)."""

    meter_id: int
    max_import_w: float | None = None
    max_export_w: float | None = None

    def __post_init__(self) -> None:
        """Reject negative, NaN or infinite limits.

        Raises:
            ValueError: naming the meter, the field and the value.
        """
        for name, value in (
            ("max_import_w", self.max_import_w),
            ("max_export_w", self.max_export_w),
        ):
            if value is not None and not (math.isfinite(value) and value >= 0):
                raise ValueError(
                    f"meter {self.meter_id}: {name} must be a finite number >= 0 or None, "
                    f"got {value}"
                )


@dataclass(frozen=True, slots=True)
class MeterAllowance:
    """What one limited meter allows the controlled inverters below it this round.

    `allowed` is the power those `inverters` may take together, `None` when the data
    is missing; `rest_w` the meter's power without any battery below it (NaN when
    missing); `site_over` tells that the rest and the other inverters alone are beyond
    a limit.
    """

    meter_id: int
    allowed: Range | None
    rest_w: float
    site_over: bool
    inverters: tuple[int, ...] = ()

    @property
    def data_missing(self) -> bool:
        """No fresh meter or inverter power: the inverters below are held at 0 W."""
        return self.allowed is None


@dataclass(frozen=True, slots=True)
class MeterShares:
    """Each inverter's share (below at least one limited meter) and each meter's verdict."""

    shares: Mapping[int, Range]
    allowances: tuple[MeterAllowance, ...]


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def _split(total: float, weights: Sequence[float]) -> list[float]:
    """`total` in parts proportional to `weights` (equal parts if they carry no weight)."""
    if not weights:
        return []
    usable = all(math.isfinite(w) and w >= 0 for w in weights) and math.fsum(weights) > 0
    if not usable:
        return [total / len(weights)] * len(weights)
    whole = math.fsum(weights)
    return [total * (w / whole) for w in weights]  # fractions first: no denormal blow-up


def meter_shares(
    limits: Sequence[MeterLimit],
    inverters_below: Mapping[int, Sequence[int]],
    meter_power_w: Mapping[int, float | None],
    inverter_power_w: Mapping[int, float | None],
    inverter_bounds: Mapping[int, Range | None],
    preference_w: Mapping[int, float] | None = None,
    *,
    controlled: Collection[int] | None = None,
    fixed_w: Mapping[int, float] | None = None,
) -> MeterShares:
    """Return each inverter's share of its meters' limits (see the module docstring).

    Args:
        limits: the limited meters.
        inverters_below: for each limited meter, the battery inverters below it
            (anywhere below, not only directly); a meter without any gets no share.
        meter_power_w: each meter's fresh power (W, + down), `None`/NaN if stale.
        inverter_power_w: each inverter's fresh AC power (W, + charging), `None`/NaN
            if stale.
        inverter_bounds: each inverter's power envelope now (W), `None` if unknown;
            splits a side of `allowed` that no inverter prefers.
        preference_w: the power each inverter would take without the limit (W);
            missing = 0 W. `None`: split by the bounds only.
        controlled: the inverters this plan commands; `None` = every one below. A
            meter with none of them below is left out.
        fixed_w: the power the other inverters will run at (W), e.g. another target's
            standing command; one not listed counts at its measured power.
    """
    preferred = preference_w or {}
    fixed = fixed_w or {}
    shares: dict[int, Range] = {}
    allowances: list[MeterAllowance] = []
    for limit in limits:
        everything = sorted(set(inverters_below.get(limit.meter_id, ())))
        below = [i for i in everything if controlled is None or i in controlled]
        if not below:
            continue
        meter_w = meter_power_w.get(limit.meter_id)
        powers = {i: inverter_power_w.get(i) for i in everything}
        if not _finite(meter_w) or not all(_finite(p) for p in powers.values()):
            allowances.append(MeterAllowance(limit.meter_id, None, math.nan, False, tuple(below)))
            for inverter_id in below:
                shares[inverter_id] = ZERO
            continue
        assert meter_w is not None
        rest = meter_w - math.fsum(p for p in powers.values() if p is not None)
        # Another inverter moving to a new command is still ramping: it counts at the
        # worse of where it is and where it goes, for each limit.
        others = [
            (powers[i] or 0.0, fixed.get(i, powers[i] or 0.0))
            for i in everything
            if i not in set(below)
        ]
        upper_taken = rest + math.fsum(max(now, then) for now, then in others)
        lower_taken = rest + math.fsum(min(now, then) for now, then in others)
        upper = math.inf if limit.max_import_w is None else limit.max_import_w - upper_taken
        lower = -math.inf if limit.max_export_w is None else -limit.max_export_w - lower_taken
        site_over = upper < 0 or lower > 0
        allowed = Range(min(0.0, lower), max(0.0, upper))
        allowances.append(MeterAllowance(limit.meter_id, allowed, rest, site_over, tuple(below)))
        envelopes = [inverter_bounds.get(i) for i in below]
        wants = [preferred.get(i, 0.0) for i in below]
        charge = [max(0.0, w) for w in wants]
        discharge = [max(0.0, -w) for w in wants]
        if not math.fsum(charge) > 0:
            charge = [max(0.0, e.upper) if e is not None else math.nan for e in envelopes]
        if not math.fsum(discharge) > 0:
            discharge = [max(0.0, -e.lower) if e is not None else math.nan for e in envelopes]
        uppers = (
            [math.inf] * len(below) if math.isinf(allowed.upper) else _split(allowed.upper, charge)
        )
        lowers = (
            [-math.inf] * len(below)
            if math.isinf(allowed.lower)
            else _split(allowed.lower, discharge)
        )
        for inverter_id, low, high in zip(below, lowers, uppers, strict=True):
            share = Range(low, high)
            known = shares.get(inverter_id)
            shares[inverter_id] = (
                share
                if known is None
                else Range(max(known.lower, share.lower), min(known.upper, share.upper))
            )
    return MeterShares(shares, tuple(allowances))


def needs_replan(
    command_w: float, then: Range | None, now: Range | None, held: int, tolerance_w: float
) -> bool:
    """Tell whether an inverter's standing command must be planned again.

    `then` is the share the command was planned with, `now` the share this round
    (`None` = no limited meter above it); `held` is +1 when the share held the inverter
    back on the charge side, -1 on the discharge side, 0 when it did not (see
    `held_by_share`). Re-plan when the command lies outside the new share by more than
    `tolerance_w` (it must shrink: a load came up below the meter, its data went
    stale), or when the side that held it back widened by more than `tolerance_w` (it
    may grow back). Smaller moves are left alone, so a noisy feeder does not re-send
    commands every round.
    """
    if now is None:
        return then is not None  # the limit was lifted: plan without it
    if command_w > now.upper + tolerance_w or command_w < now.lower - tolerance_w:
        return True
    if then is None:
        return False
    if held > 0:
        return now.upper > then.upper + tolerance_w
    if held < 0:
        return now.lower < then.lower - tolerance_w
    return False


def held_sides(
    allowances: Sequence[MeterAllowance], wanted_w: Mapping[int, float], tolerance_w: float
) -> dict[int, int]:
    """The meters whose limit holds the plan back, each with the side: +1 charge, -1 discharge.

    Held back: what the controlled inverters below were `wanted_w` to take together
    without the limit lies beyond `allowed` by more than `tolerance_w` (logged as
    `meter_limited`); a meter without data holds back whatever was wanted.
    """
    held: dict[int, int] = {}
    for allowance in allowances:
        wanted = math.fsum(wanted_w.get(i, 0.0) for i in allowance.inverters)
        allowed = allowance.allowed if allowance.allowed is not None else ZERO
        if wanted > allowed.upper + tolerance_w:
            held[allowance.meter_id] = 1
        elif wanted < allowed.lower - tolerance_w:
            held[allowance.meter_id] = -1
    return held


__all__ = [
    "ZERO",
    "MeterAllowance",
    "MeterLimit",
    "MeterShares",
    "held_sides",
    "meter_shares",
    "needs_replan",
]
