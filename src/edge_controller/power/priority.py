"""Priorities between use cases that want the same batteries: nested bounds.

Several use cases (a dispatch, peak shaving, a market schedule) may want the same
batteries at once. Each submits a `Proposal`: a priority, an optional desired power
and optional bounds. `resolve` turns them into one target, after the Frequenz SDK's
"Matryoshka" scheme — the higher-ranked dolls enclose the lower ones:

- **One rank.** Proposals rank by priority (higher first), then the newest first —
  a dispatch counts from its creation time, anything else from when it first
  proposed on that set — then the higher dispatch id, then the name that sorts later
  (`rank`). The newest is thus the tie-break of priority: among dispatches of one
  priority, the newest holds its power. `power.overlaps` ranks overlapping sets by
  the same `rank`.
- **Bounds nest, outermost first.** Starting from the batteries' own (system)
  bounds, each proposal in rank order is *allowed* what the ones before it left,
  and narrows that range with its own bounds for everyone after it. A proposal with
  `hold=True` narrows it to exactly its desired power: nobody below can change the
  target then.
- **Conflicts go to the outer doll.** When a proposal's bounds do not meet its
  allowed range at all, it is *overruled*: the range narrows to the allowed value
  nearest to its bounds (as close as it can get), and everyone below works within
  that point. Each proposal is thus served as well as all the ones before it permit
  — a lexicographic order, which is what makes the result unique.
- **The target comes from the innermost doll that wants a power.** It is the desired
  power of the *last* proposal in the order that states one, clamped into the final
  range (everyone's bounds, as far as honoured). Higher-priority use cases steer by
  their bounds; their desired power is used when nobody inside them asks for one.
  If no proposal states a power, the target is the final range's value nearest 0 W.
  The target is *credited* (`driven_by`) to the outermost honoured hold if there is
  one — inside it every power is clamped to the held one, so the target is the
  holder's — else to that innermost proposal: whoever is credited gets the
  distributor's result.

So a lower priority can never push the power outside what a higher one allows, and
the result depends only on the set of proposals, not on the order they arrive in.

Example (system bounds [-500, 500] kW)::

    peak_shaving  priority 10, bounds [-500, 40] kW   (a charge above 40 kW makes a peak)
    market        priority 5,  power -100 kW, bounds [-300, 300] kW
    dispatch_7    priority 1,  power +200 kW

    allowed:  peak_shaving [-500, 500], market [-500, 40], dispatch_7 [-300, 40]
    target:   dispatch_7's +200 kW clamped into [-300, 40] = +40 kW

Without dispatch_7 the target is the market's −100 kW. Had the market proposed
`power -100 kW, hold=True` (instead of its bounds), the target would be −100 kW
whatever the dispatch asks — credited to the market, which gets the result — and
the dispatch would be told its allowed range is [-100, -100] kW.

Powers are watts as floats, passive sign convention (+ charges, − discharges); bounds
are single ranges (`Range`), the envelope of what the batteries can do. Pure: no I/O,
no clock — creation and submission times are passed in.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from edge_controller.power.bounds import UNBOUNDED, Range


@dataclass(frozen=True, slots=True)
class Proposal:
    """What one use case (or one of its dispatches) wants from a set of batteries.

    `name` identifies it (unique within one `resolve`); `priority` is higher-wins;
    `submitted_at` is when it counts from — a dispatch's creation time, else when it
    was first submitted on its set — and `origin` the dispatch's id (None: no dispatch): both break
    ties between equal priorities, the newest ranking first (`rank`). `power_w` (W,
    + charges) is what it would like, `None` for "no preference"; `bounds` what it
    allows the proposals below it, `None` for no limit; `hold=True` makes its power
    its bounds.
    """

    name: str
    priority: int
    submitted_at: datetime
    power_w: float | None = None
    bounds: Range | None = None
    hold: bool = False
    origin: int | None = None

    def __post_init__(self) -> None:
        """Reject proposals that contradict themselves.

        Raises:
            ValueError: an empty name, a non-finite power, `hold` without a power or
                with bounds, or a power outside the proposal's own bounds.
        """
        if not self.name:
            raise ValueError("a proposal needs a name")
        if self.power_w is not None and not math.isfinite(self.power_w):
            raise ValueError(f"proposal {self.name!r}: power must be finite, got {self.power_w}")
        if self.hold and self.power_w is None:
            raise ValueError(f"proposal {self.name!r}: hold=True needs a power to hold")
        if self.hold and self.bounds is not None:
            raise ValueError(f"proposal {self.name!r}: hold=True makes the power the bounds")
        if (
            self.power_w is not None
            and self.bounds is not None
            and not self.bounds.contains(self.power_w)
        ):
            raise ValueError(
                f"proposal {self.name!r}: power {self.power_w} W is outside its own bounds "
                f"[{self.bounds.lower}, {self.bounds.upper}]"
            )

    @property
    def constraint(self) -> Range | None:
        """The range this proposal imposes on the ones below it (`None`: none)."""
        if self.hold:
            assert self.power_w is not None
            return Range(self.power_w, self.power_w)
        return self.bounds


@dataclass(frozen=True, slots=True)
class Resolution:
    """The outcome of `resolve`.

    `target_w` is the batteries' target (W), `None` only when there were no
    proposals; `driven_by` the proposal credited with it — the outermost honoured
    hold, else the innermost proposal stating a power (`None` if none states one).
    `allowed[name]` is the range that proposal may use — what the system and
    everyone before it left; a use case should plan within it.
    `overruled` names the proposals whose bounds could not be met at all; `order`
    lists the names outermost (deciding bounds first) to innermost.
    """

    target_w: float | None
    driven_by: str | None
    allowed: Mapping[str, Range]
    overruled: frozenset[str]
    order: tuple[str, ...]


Rank = tuple[int, datetime, int, str]
"""How a proposal ranks: compared as a tuple, the greater first (`rank`)."""


def rank(proposal: Proposal) -> Rank:
    """The proposal's rank: priority, then the newest, then the higher dispatch id, then the name.

    The greater ranks first: it is the outer doll of one set (`nesting_order`), and
    its set takes the batteries first when sets overlap (`power.overlaps`).
    """
    origin = -1 if proposal.origin is None else proposal.origin
    return proposal.priority, proposal.submitted_at, origin, proposal.name


def nesting_order(proposals: Iterable[Proposal]) -> list[Proposal]:
    """Return the proposals outermost first: by `rank`, the greater first.

    Raises:
        ValueError: two proposals share a name.
    """
    items = list(proposals)
    names = [p.name for p in items]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"each use case may have one proposal; repeated: {duplicates}")
    return sorted(items, key=rank, reverse=True)


def resolve(proposals: Iterable[Proposal], system_bounds: Range = UNBOUNDED) -> Resolution:
    """Decide the target of one set of batteries from every use case's proposal.

    The rule is the module docstring's; `system_bounds` is what the batteries can
    do (W), `UNBOUNDED` if unknown.

    Raises:
        ValueError: two proposals share a name.
    """
    ordered = nesting_order(proposals)
    if not ordered:
        return Resolution(None, None, {}, frozenset(), ())
    allowed = system_bounds
    allowed_by_name: dict[str, Range] = {}
    overruled: set[str] = set()
    holder: Proposal | None = None
    for proposal in ordered:
        allowed_by_name[proposal.name] = allowed
        own = proposal.constraint
        if own is None:
            continue
        low, high = max(allowed.lower, own.lower), min(allowed.upper, own.upper)
        if low <= high:
            allowed = Range(low, high)
            if proposal.hold and holder is None:
                holder = proposal
        else:
            overruled.add(proposal.name)
            nearest = allowed.upper if own.lower > allowed.upper else allowed.lower
            allowed = Range(nearest, nearest)
    innermost = next((p for p in reversed(ordered) if p.power_w is not None), None)
    wanted = 0.0 if innermost is None or innermost.power_w is None else innermost.power_w
    driver = holder or innermost
    return Resolution(
        target_w=allowed.nearest(wanted),
        driven_by=None if driver is None else driver.name,
        allowed=allowed_by_name,
        overruled=frozenset(overruled),
        order=tuple(p.name for p in ordered),
    )
