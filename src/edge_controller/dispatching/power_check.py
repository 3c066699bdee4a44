"""Whether a dispatch's power fits what its target batteries can do together: pure.

Powers follow the passive sign convention, in W: + charges, − discharges. A dispatch's
power is spread over its batteries, so together they can do at most the sum of their
bounds, each inverter capping what the batteries behind it take or give::

    inverter 10 (±250 kW) ── battery 11 (±250 kW)      11: -250 kW .. +250 kW
    inverter 20 (±300 kW) ── battery 21 (±300 kW)      21: -300 kW .. +300 kW
                                                       together: -550 kW .. +550 kW

`power_problem(-5e9, capability, batteries=None)` then says, in one sentence, which
batteries can do what: "-5 GW is beyond what every battery (11, 21) can do together:
-550 kW .. +550 kW (11: -250 kW .. +250 kW, 21: -300 kW .. +300 kW; rated bounds from
the microgrid API at grpc://...)". 0 W is always allowed (it is what a released
battery does).

A rated end that neither a battery nor its lone inverter reports is unknown, never
unlimited: the power cannot be checked, and the problem names the battery and the end
("no rated charge bound (upper end) known for battery 11 or its inverter 10"). Such a
problem, like a power beyond the bounds, is `forcible` (an operator may know better);
a target battery the site does not have is not.

Where the bounds come from is the shell's business (`site_bounds.py` asks the
Microgrid API for the rated bounds; `--site-rating` gives one symmetric limit for the
whole site); this module only compares.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable
from dataclasses import dataclass

from edge_controller.power.bounds import Range


@dataclass(frozen=True, slots=True)
class RatedBounds:
    """What a component reports it can ever do, W: `lower_w` (discharge) .. `upper_w`.

    Not a `Range`, on purpose: an end the component does not report is None here and
    means *unknown*, while a `Range`'s infinite end means "no limit". This is physical
    equipment: an unknown end is never taken as unlimited (see `targeted_range`).
    `RatedBounds()` is a component that reports nothing.
    """

    lower_w: float | None = None
    upper_w: float | None = None

    def __post_init__(self) -> None:
        """Reject NaN and inverted bounds: they can only come from a bug or bad input."""
        ends = [end for end in (self.lower_w, self.upper_w) if end is not None]
        if any(math.isnan(end) for end in ends):
            raise ValueError(f"rated bounds cannot have NaN ends, got {self}")
        if len(ends) == 2 and ends[0] > ends[1]:
            raise ValueError(f"rated bounds: lower must be <= upper, got {self}")

    @classmethod
    def of(cls, bounds: Range) -> RatedBounds:
        """Both ends known."""
        return cls(bounds.lower, bounds.upper)

    def known(self) -> Range | None:
        """The range, when both ends are known; else None."""
        if self.lower_w is None or self.upper_w is None:
            return None
        return Range(self.lower_w, self.upper_w)

    def missing(self) -> tuple[str, ...]:
        """The ends not known: "lower", "upper", both or none."""
        return tuple(
            name for name, end in (("lower", self.lower_w), ("upper", self.upper_w)) if end is None
        )

    def __and__(self, other: RatedBounds) -> RatedBounds:
        """What is known of two components in series: each end the tighter known one.

        An end is unknown only when neither component reports it. (Bounds that leave
        nothing in common leave 0 W, which is always allowed.)
        """
        lower = max((end for end in (self.lower_w, other.lower_w) if end is not None), default=None)
        upper = min((end for end in (self.upper_w, other.upper_w) if end is not None), default=None)
        if lower is not None and upper is not None and lower > upper:
            return RatedBounds(0.0, 0.0)
        return RatedBounds(lower, upper)

    def cap(self, bounds: Range) -> Range:
        """`bounds` within this component's known ends (an unknown end does not cap)."""
        capped = RatedBounds.of(bounds) & self
        return Range(
            bounds.lower if capped.lower_w is None else capped.lower_w,
            bounds.upper if capped.upper_w is None else capped.upper_w,
        )


@dataclass(frozen=True, slots=True)
class InverterCapability:
    """One battery inverter and the batteries behind it, with their rated bounds.

    An inverter caps each battery behind it and the sum of them; where it reports no
    bound, its batteries' own count alone. A battery alone behind its inverter counts
    with what either of them reports (each end the tighter one); a battery sharing its
    inverter counts with its own bounds only (the inverter caps their sum). An end
    known from neither cannot be checked (`targeted_range` refuses it).
    """

    inverter_id: int
    inverter: RatedBounds
    batteries: tuple[tuple[int, RatedBounds], ...]


@dataclass(frozen=True, slots=True)
class SiteCapability:
    """What is known about the site's batteries, and where it came from.

    `inverters` None: only a site rating is known (no per-battery bounds).
    `rating_w` None: no site rating; else every dispatch stays within ±rating.
    `source` says where the figures came from, for the message ("rated bounds from the
    microgrid API at grpc://...", "--site-rating 500 kW").
    """

    source: str
    inverters: tuple[InverterCapability, ...] | None = None
    rating_w: float | None = None

    @property
    def battery_ids(self) -> tuple[int, ...]:
        """Every battery of the site that the bounds name, sorted (empty if unknown)."""
        return tuple(sorted(b for group in self.inverters or () for b, _bounds in group.batteries))


class BatteryNotFoundError(ValueError):
    """Target batteries the site does not have; `battery_ids` names them."""

    def __init__(self, message: str, battery_ids: tuple[int, ...]) -> None:
        """Carry the message and the missing ids."""
        super().__init__(message)
        self.battery_ids = battery_ids


class UnknownBoundsError(ValueError):
    """Target batteries with a rated bound known from nowhere; `battery_ids` names them."""

    def __init__(self, message: str, battery_ids: tuple[int, ...]) -> None:
        """Carry the message and the batteries that cannot be checked."""
        super().__init__(message)
        self.battery_ids = battery_ids


@dataclass(frozen=True, slots=True)
class PowerProblem:
    """Why a power is refused, in one sentence (`text`).

    `forcible`: the batteries exist, and the power is beyond what they can do or their
    bounds are not known, so an operator who knows better may send it anyway. False
    for a target battery the site does not have: no override makes that right.
    """

    text: str
    forcible: bool

    def __str__(self) -> str:
        """The sentence."""
        return self.text


def power_text(power_w: float) -> str:
    """Return a power for people: "-5 GW", "+250 kW", "+1.5 MW", "0 W"."""
    if power_w == 0 or not math.isfinite(power_w):
        return f"{power_w:g} W"
    for factor, unit in ((1e9, "GW"), (1e6, "MW"), (1e3, "kW")):
        if abs(power_w) >= factor:
            return f"{power_w / factor:+.4g} {unit}"
    return f"{power_w:+.4g} W"


def range_text(bounds: Range | RatedBounds) -> str:
    """Return "-250 kW .. +250 kW" ("unknown" for an end a component does not report)."""
    if isinstance(bounds, Range):
        return f"{power_text(bounds.lower)} .. {power_text(bounds.upper)}"
    ends = (
        "unknown" if end is None else power_text(end) for end in (bounds.lower_w, bounds.upper_w)
    )
    return " .. ".join(ends)


def _ids_text(ids: Iterable[int]) -> str:
    return ", ".join(str(i) for i in ids)


_END_WORDS = {"lower": "discharge bound (lower end)", "upper": "charge bound (upper end)"}


def _unknown_text(battery_id: int, bounds: RatedBounds, inverter_id: int | None) -> str:
    """Say which rated end of a battery (or of its lone inverter) nobody reports."""
    missing = bounds.missing()
    what = "power bounds" if len(missing) == 2 else _END_WORDS[missing[0]]
    where = f"battery {battery_id}"
    if inverter_id is not None:
        where += f" or its inverter {inverter_id}"
    return f"no rated {what} known for {where}"


def _sum(left: Range, right: Range) -> Range:
    """What two components can do together."""
    return Range(left.lower + right.lower, left.upper + right.upper)


def targeted_range(
    capability: SiteCapability, batteries: Collection[int] | None
) -> tuple[Range | None, list[str]]:
    """Return what the target batteries can do together, and the per-battery figures.

    `batteries` None means every battery of the site. The range is None when the
    capability has neither per-battery bounds nor a rating. Each inverter caps the sum
    of its targeted batteries; the site rating caps the total. A rated end known from
    neither a battery nor (for a lone battery) its inverter is unknown, never taken as
    unlimited: it makes the range unknown.

    Raises:
        BatteryNotFoundError: a target battery the site does not have.
        UnknownBoundsError: a target battery with an end of its bounds unknown (the
            message names the battery and the end).
    """
    total: Range | None = None
    figures: list[str] = []
    if capability.inverters is not None:
        known = set(capability.battery_ids)
        wanted = known if batteries is None else set(batteries)
        missing = sorted(wanted - known)
        if missing:
            word = "battery" if len(missing) == 1 else "batteries"
            raise BatteryNotFoundError(
                f"{word} {_ids_text(missing)} not found at the site (its batteries: "
                f"{_ids_text(sorted(known)) or 'none'}; {capability.source})",
                tuple(missing),
            )
        unknown: list[tuple[int, str]] = []
        total = Range(0.0, 0.0)
        for group in capability.inverters:
            chosen = [(b, r) for b, r in group.batteries if b in wanted]
            if not chosen:
                continue
            lone = len(group.batteries) == 1
            together = Range(0.0, 0.0)
            for battery_id, rated in chosen:
                # Alone behind its inverter, the battery counts with what either tells;
                # sharing it, with its own bounds (the inverter caps the sum below).
                bounds = rated & group.inverter if lone else rated
                both_ends = bounds.known()
                if both_ends is None:
                    inverter_id = group.inverter_id if lone else None
                    unknown.append((battery_id, _unknown_text(battery_id, bounds, inverter_id)))
                    continue
                if not lone:
                    both_ends = group.inverter.cap(both_ends)
                figures.append(f"{battery_id}: {range_text(both_ends)}")
                together = _sum(together, both_ends)
            if len(chosen) > 1:
                capped = group.inverter.cap(together)
                if capped != together:
                    figures.append(f"inverter {group.inverter_id}: {range_text(group.inverter)}")
                together = capped
            total = _sum(total, together)
        if unknown:
            unknown.sort()
            raise UnknownBoundsError(
                "; ".join(text for _id, text in unknown) + f" ({capability.source})",
                tuple(battery_id for battery_id, _text in unknown),
            )
    if capability.rating_w is not None:
        rating = Range(-capability.rating_w, capability.rating_w)
        total = rating if total is None else RatedBounds.of(rating).cap(total)
    return total, figures


def power_problem(
    power_w: float, capability: SiteCapability, batteries: Collection[int] | None
) -> PowerProblem | None:
    """Return why `power_w` is beyond what the target batteries can do; None if it fits.

    `power_w` in W, + charges, − discharges; `batteries` None targets every battery.
    0 W always fits. With nothing known (no bounds, no rating) nothing is refused: the
    caller decides what an unchecked power means. Bounds not known, or a power beyond
    them, are `forcible` problems; a battery the site does not have is not.
    """
    if power_w == 0:
        return None
    try:
        together, figures = targeted_range(capability, batteries)
    except BatteryNotFoundError as error:
        return PowerProblem(str(error), forcible=False)
    except UnknownBoundsError as error:
        return PowerProblem(str(error), forcible=True)
    if together is None or together.contains(power_w):
        return None
    if capability.inverters is None:
        return PowerProblem(
            f"{power_text(power_w)} is beyond the site rating: {range_text(together)} "
            f"({capability.source})",
            forcible=True,
        )
    can_do = "can do together"
    if batteries is None:
        who = f"every battery ({_ids_text(capability.battery_ids)})"
    elif len(batteries) == 1:
        who = f"battery {next(iter(batteries))}"
        can_do = "can do"
    else:
        who = f"batteries {_ids_text(sorted(batteries))}"
    where = "; ".join(part for part in (", ".join(figures), capability.source) if part)
    return PowerProblem(
        f"{power_text(power_w)} is beyond what {who} {can_do}: {range_text(together)} ({where})",
        forcible=True,
    )


__all__ = [
    "BatteryNotFoundError",
    "InverterCapability",
    "PowerProblem",
    "RatedBounds",
    "SiteCapability",
    "UnknownBoundsError",
    "power_problem",
    "power_text",
    "range_text",
    "targeted_range",
]
