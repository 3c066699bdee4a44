"""PV curtailment: how much the site's PV inverters may produce, and what the batteries take.

Two things can limit the PV, and the tighter wins:

- **A `PV_CURTAILMENT` dispatch**: "produce at most 50 kW" for its duration.
- **The export guard**: the grid connection may feed at most `export_limit_w` into the
  grid. The batteries take a surplus first — the use case asks them to charge it —
  and only what they cannot take is curtailed::

      surplus  = export without the batteries − export_limit    (what must go somewhere)
      ask      = the surplus, within [0, the batteries' charge bound]   (they charge it)
      needed   = export now − export_limit − credit             production that must go
      fits     = max(0, production now − needed)                the most the PV may produce

  Example: export limit 100 kW, PV 300 kW, load 120 kW: 180 kW would be exported,
  80 kW too much. Idle batteries that may charge 100 kW are asked for 80 kW and the
  PV is not curtailed; batteries that may charge 50 kW are asked for 50 kW and the
  PV may produce 270 kW; full batteries are asked for nothing and the PV may produce
  220 kW.

**Batteries first, for real.** The batteries' room (`credit`) is counted only as far
as they really follow. Right after an ask they are trusted to get there:
`credit = charge bound − measured power`, their whole headroom, so the PV is not
curtailed while they ramp up. Once there (within `deadband_w` of the ask) the credit
is the room above the ask only: a gap that stays below it (an inverter's resolution)
is not coming, so the next ask adds it. If they stay short of the ask (by more than
`deadband_w`) for longer than `battery_reaction_s` — a higher-priority dispatch holds
them, or a higher priority's bounds cap them, or they are slower than promised — the
credit drops to 0: only their *measured* power counts (it is in the grid power
already), and the curtailment covers the rest, a held discharge included. They are
trusted again once they reach the ask. The power manager may say so sooner: when a
higher priority overrules the ask (`BatteriesOverruled`, its word on the request)
they are not trusted from that step on, and the export is reckoned with them at the
power they are held at (`held_w`), not at what they measure — the controller's grid
guard may hold them elsewhere meanwhile (a held discharge turned into the charge the
export needs), and a curtailment reckoned from that would leave the guard holding
them there, the higher priority's dispatch undone. While they are not trusted and the PV is held
back, the ask is what they would take if the PV produced all it may (`probe`): were
they free again, they charge it from the export's room first, and the PV rises only
by the room that their measured power opens below the export limit — it never jumps
past the limit on a promise that a held dispatch already broke once.

The guard's limit is computed from the production *as measured*, so it is the same
whether the PV is curtailed already or not: once curtailed to `fits`, the export sits
at the limit and `fits` stays where it is (no flapping between "curtail" and "lift").
The rules for the guard's part, one step at a time:

1. **No data, no change.** A stale or NaN grid power, PV power, battery power or
   charge bound holds the guard's last limit and the batteries' ask (or their
   absence): a decision is never made on garbage.
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

The batteries' ask, one step at a time:

6. **What the PV will do.** The ask is the surplus at the production expected once
   the limit is in force: less when the limit tightens (the PV gives it up), more
   when a limit that holds the PV back rises (the batteries are asked for the rise
   in the same step, so the PV's rise lands in them, not in the grid).
7. **Make up a shortfall.** Batteries that stay a little short of the last ask
   (within `deadband_w`) are asked that much more — or discharge a little while
   nothing is asked, then they are asked to stop: either way the export comes back
   to the limit rather than staying above it by the gap.
8. **Rise at once, fall by the deadband.** A larger ask replaces the last at once; a
   smaller one only when it is more than `deadband_w` smaller, or 0 W once the
   surplus is gone by `lift_margin_w` (then the use case withdraws its request). An
   ask is never above the batteries' charge bound.

Powers are watts as floats, passive sign convention: + is consumed, charged or
imported, − is produced, discharged or exported; the PV power is ≤ 0 while producing.
Limits, asks and headroom are magnitudes (W ≥ 0). Pure: no I/O, no clock (the caller
passes the elapsed time).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from enum import StrEnum

from edge_controller.power.bounds import Range


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
    """The export guard's settings (W, magnitudes ≥ 0; s).

    `export_limit_w` is the grid connection's `max_export` (`None`: no export guard,
    only dispatches limit the PV); `lift_margin_w` the hysteresis band (rule 3);
    `deadband_w` the smallest loosening worth a new limit, the smallest fall of the
    batteries' ask worth a new request, and how far short of the ask the batteries
    may be and still count as following; `lift_rate_w_per_s` how fast a limit may
    rise (`None`: at once); `battery_reaction_s` how long the batteries may take to
    reach an ask before only their measured power counts (the use case's tick, the
    power pipeline and the battery's ramp, with room to spare).
    """

    export_limit_w: float | None = None
    lift_margin_w: float = 2000.0
    deadband_w: float = 500.0
    lift_rate_w_per_s: float | None = None
    battery_reaction_s: float = 2.0

    def __post_init__(self) -> None:
        """Reject settings that cannot be a power, a rate or a time.

        Raises:
            ValueError: a negative or non-finite value; a zero lift rate (a limit
                could never rise).
        """
        for name, value in (
            ("export_limit_w", self.export_limit_w),
            ("lift_margin_w", self.lift_margin_w),
            ("deadband_w", self.deadband_w),
            ("lift_rate_w_per_s", self.lift_rate_w_per_s),
            ("battery_reaction_s", self.battery_reaction_s),
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
    producing), NaN when unknown; `battery_w` the measured power of the batteries in
    service (+ charging), NaN when unknown; `battery_upper_w` their charge bound
    summed (≥ 0; 0 W when full or out of service), NaN when unknown; `pv_rated_w`
    the PV inverters' rated production summed (≥ 0), `inf` when unknown;
    `battery_lower_w` their discharge bound summed (≤ 0), `-inf` when not read — it
    bounds only the power a higher priority holds them at (`as_held`).
    """

    grid_w: float | None
    pv_w: float
    battery_w: float = 0.0
    battery_upper_w: float = 0.0
    pv_rated_w: float = math.inf
    battery_lower_w: float = -math.inf

    @property
    def battery_headroom_w(self) -> float:
        """How much more the batteries may charge than they do now (W ≥ 0; NaN: unknown)."""
        room = self.battery_upper_w - self.battery_w
        return room if math.isnan(room) else max(0.0, room)

    @property
    def known(self) -> bool:
        """Whether every figure the export guard reads is there (rule 1)."""
        return self.grid_w is not None and all(
            math.isfinite(v) for v in (self.grid_w, self.pv_w, self.battery_w, self.battery_upper_w)
        )


@dataclass(frozen=True, slots=True)
class Curtailment:
    """A decision: the PV's limit, the batteries' ask, and the state the next step needs.

    `allowed_w` is what all controlled PV inverters together may produce (W ≥ 0),
    `None` for no limit; `export_allowed_w` the export guard's part of it (carried to
    the next step). `needed_w` is the guard's `needed` (> 0: production that must go,
    ≤ 0: room left; NaN without data or without a guard), for logs and tests.
    `battery_ask_w` is the charge asked of the batteries (W ≥ 0; 0 W: no request);
    `battery_short_s` how long they have been short of the previous ask;
    `batteries_counted` whether their headroom is counted (False: they did not follow
    within the reaction time, only their measured power counts).
    """

    allowed_w: float | None
    export_allowed_w: float | None
    reason: CurtailmentReason
    needed_w: float = math.nan
    battery_ask_w: float = 0.0
    battery_short_s: float = 0.0
    batteries_counted: bool = True


@dataclass(frozen=True, slots=True)
class BatteriesOverruled:
    """The power manager's word: a higher priority leaves the batteries' ask no room.

    `held_w` is what they run at instead (W, + charging): the point of the range left
    to the ask nearest it. `None`: unknown — the use case's battery set waits for
    another, overlapping one, and they do what that one commands (their measured
    power is the best guess then).
    """

    held_w: float | None


def as_held(site: PvSite, overruled: BatteriesOverruled) -> PvSite:
    """The site as it will be once the batteries run at the power they are held at.

    Held within their bounds: what the manager holds them at comes from the proposals,
    not from what they can do (a battery at its SoC floor discharges nothing, whatever a
    dispatch asks). The grid power moves by the difference to what they measure now; a
    site whose figures are unknown, or an unknown held power, stays as it is.
    """
    held = overruled.held_w
    if held is None or not math.isfinite(held) or site.grid_w is None or not site.known:
        return site
    lower = site.battery_lower_w if not math.isnan(site.battery_lower_w) else -math.inf
    held = Range(min(lower, 0.0), max(site.battery_upper_w, 0.0)).nearest(held)
    return replace(site, grid_w=site.grid_w - site.battery_w + held, battery_w=held)


NOT_CURTAILED = Curtailment(None, None, CurtailmentReason.NONE)
"""The state before the first decision: nothing limited, nothing asked."""


def _produced(site: PvSite) -> float:
    return max(0.0, -site.pv_w)


def _held_back(settings: CurtailmentSettings, site: PvSite, last: Curtailment) -> bool:
    """Whether the limit in force (the guard's or a dispatch's) holds the PV back.

    What the PV could produce without it is unknown then.
    """
    return last.allowed_w is not None and last.allowed_w - _produced(site) <= settings.lift_margin_w


def batteries_follow(
    settings: CurtailmentSettings, site: PvSite, last: Curtailment, elapsed_s: float
) -> tuple[float, bool]:
    """Return how long the batteries were short of the last ask (s), and if they count.

    Counting means their headroom is credited. Short means more than `deadband_w`
    below the ask (or below their charge bound, if that fell below the ask: a bound is
    not a refusal) — discharging while nothing is asked is short of 0 W too: someone
    else drives them, and what they export must be curtailed if it breaks the limit.
    The time accumulates while they stay short and restarts when they reach the ask;
    beyond `battery_reaction_s` they no longer count. Reads a known `site` only.
    """
    target = min(last.battery_ask_w, max(0.0, site.battery_upper_w))
    short = site.battery_w < target - settings.deadband_w
    short_s = last.battery_short_s + max(0.0, elapsed_s) if short else 0.0
    return short_s, short_s <= settings.battery_reaction_s


def battery_credit(
    settings: CurtailmentSettings, site: PvSite, last: Curtailment, counted: bool
) -> tuple[float, float]:
    """Return the batteries' credit and how far short of the last ask they stay (W ≥ 0).

    The credit is what they are counted on to charge beyond their measured power. On
    their way to the ask (short, within the reaction time): their whole headroom.
    Arrived (within `deadband_w` of it): the room above the ask, not the gap below it —
    a gap that stays is not coming, and would keep the export above the limit by that
    much; it is the shortfall, which the next ask adds instead. Not counted: nothing.
    Reads a known `site` only.
    """
    upper = max(0.0, site.battery_upper_w)
    target = min(last.battery_ask_w, upper)
    if not counted:
        return 0.0, 0.0
    if site.battery_w < target - settings.deadband_w:
        return max(0.0, upper - site.battery_w), 0.0
    return max(0.0, upper - max(site.battery_w, target)), max(0.0, target - site.battery_w)


def export_guard(
    settings: CurtailmentSettings,
    site: PvSite,
    last: Curtailment,
    elapsed_s: float,
    credit_w: float,
) -> tuple[float | None, float]:
    """Return the guard's limit (W ≥ 0, `None`: none) and `needed` (W).

    `credit_w` is what the batteries are counted on to charge beyond their measured
    power (≥ 0); `last` the decision in force, `elapsed_s` the time since it (it
    paces the lift rate). Rules 2-5 of the module docstring; `site` must be known and
    the guard on.
    """
    limit = settings.export_limit_w
    assert limit is not None, "the caller checks"
    assert site.grid_w is not None, "the caller checks"
    last_w = last.export_allowed_w
    produced = _produced(site)
    needed = -(site.grid_w + limit) - credit_w
    fits = max(0.0, produced - needed)
    margin = settings.lift_margin_w
    # Held back by the limit in force (the guard's or a dispatch's): only the guard's
    # own limit stands between the PV and the export limit once that other limit goes.
    held_back = _held_back(settings, site, last)
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


def battery_ask(
    settings: CurtailmentSettings,
    site: PvSite,
    last: Curtailment,
    *,
    allowed_w: float | None,
    counted: bool,
    dispatch_limit_w: float | None,
    shortfall_w: float = 0.0,
) -> float:
    """Return the charge to ask of the batteries (W ≥ 0), rules 6 to 8.

    `allowed_w` is this step's combined limit; `counted` whether the batteries are
    trusted to follow; `shortfall_w` how far short of the last ask they stay (added,
    so that they take the whole surplus). Untrusted, the ask is the probe of the
    module docstring: what they would take if the PV produced all it may. Reads a
    known `site` only.
    """
    limit = settings.export_limit_w
    assert limit is not None, "the caller checks"
    assert site.grid_w is not None, "the caller checks"
    produced = _produced(site)
    surplus = -(site.grid_w - site.battery_w) - limit
    ceiling = min(site.pv_rated_w, math.inf if dispatch_limit_w is None else dispatch_limit_w)
    if _held_back(settings, site, last):
        after = ceiling if not counted or allowed_w is None else min(allowed_w, ceiling)
    elif counted and allowed_w is not None:
        after = min(produced, allowed_w)
    else:
        after = produced
    upper = max(0.0, site.battery_upper_w)
    wanted = min(max(0.0, surplus + after - produced + shortfall_w), upper)
    last_ask = last.battery_ask_w
    if (
        wanted >= last_ask
        or last_ask - wanted > settings.deadband_w
        or (wanted == 0.0 and surplus <= -settings.lift_margin_w)
    ):
        return wanted
    return min(last_ask, upper)


def decide(
    settings: CurtailmentSettings,
    site: PvSite,
    last: Curtailment = NOT_CURTAILED,
    *,
    dispatch_limit_w: float | None = None,
    elapsed_s: float = 0.0,
    overruled: BatteriesOverruled | None = None,
) -> Curtailment:
    """Return the PV's production limit now and the charge asked of the batteries.

    The limit is the tighter of the dispatch's and the guard's. `dispatch_limit_w` is
    a running dispatch's limit (W ≥ 0, `None`: no dispatch), `last` the previous
    decision, `elapsed_s` the seconds since it, `overruled` the power manager's word
    that a higher priority overrules the batteries' ask (`None`: it has said nothing).

    Raises:
        ValueError: a negative or NaN dispatch limit (the payload check refuses those).
    """
    if dispatch_limit_w is not None and not dispatch_limit_w >= 0:
        raise ValueError(f"dispatch_limit_w must be >= 0, got {dispatch_limit_w}")
    guarded = settings.export_limit_w is not None
    held = guarded and not site.known
    if not guarded or held:
        export_w = last.export_allowed_w if held else None
        limits = [w for w in (dispatch_limit_w, export_w) if w is not None]
        allowed = min(min(limits), site.pv_rated_w) if limits else None
        if held:
            return replace(last, allowed_w=allowed, reason=CurtailmentReason.NO_DATA)
        reason = CurtailmentReason.NONE if allowed is None else CurtailmentReason.DISPATCH
        return Curtailment(allowed, None, reason)
    if overruled is not None:
        site = as_held(site, overruled)
        short_s, counted = last.battery_short_s + max(0.0, elapsed_s), False
    else:
        short_s, counted = batteries_follow(settings, site, last, elapsed_s)
    credit, shortfall = battery_credit(settings, site, last, counted)
    export_w, needed = export_guard(settings, site, last, elapsed_s, credit)
    limits = [w for w in (dispatch_limit_w, export_w) if w is not None]
    allowed = min(min(limits), site.pv_rated_w) if limits else None
    ask = battery_ask(
        settings,
        site,
        last,
        allowed_w=allowed,
        counted=counted,
        dispatch_limit_w=dispatch_limit_w,
        shortfall_w=shortfall,
    )
    if allowed is None:
        reason = CurtailmentReason.NONE
    elif export_w is not None and (dispatch_limit_w is None or export_w < dispatch_limit_w):
        reason = CurtailmentReason.EXPORT_LIMIT
    else:
        reason = CurtailmentReason.DISPATCH
    return Curtailment(allowed, export_w, reason, needed, ask, short_s, counted)
