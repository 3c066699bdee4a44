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

Where the bounds come from is the shell's business (`site_bounds.py` asks the
Microgrid API for the rated bounds; `--site-rating` gives one symmetric limit for the
whole site); this module only compares.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class PowerRange:
    """What a component can do, W: `lower_w` ≤ 0 (discharge) .. `upper_w` ≥ 0 (charge)."""

    lower_w: float
    upper_w: float

    def __and__(self, other: PowerRange) -> PowerRange:
        """The range both allow."""
        return PowerRange(max(self.lower_w, other.lower_w), min(self.upper_w, other.upper_w))

    def __add__(self, other: PowerRange) -> PowerRange:
        """What two components can do together."""
        return PowerRange(self.lower_w + other.lower_w, self.upper_w + other.upper_w)

    def holds(self, power_w: float) -> bool:
        """Whether `power_w` lies within the range (ends included)."""
        return self.lower_w <= power_w <= self.upper_w


@dataclass(frozen=True, slots=True)
class InverterCapability:
    """One battery inverter and the batteries behind it, with their rated bounds.

    `inverter` None: the inverter reports no rated bounds (its batteries' count alone).
    A battery's bounds None: neither it nor its inverter reports any (it cannot be
    checked).
    """

    inverter_id: int
    inverter: PowerRange | None
    batteries: tuple[tuple[int, PowerRange | None], ...]


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


def power_text(power_w: float) -> str:
    """Return a power for people: "-5 GW", "+250 kW", "+1.5 MW", "0 W"."""
    if power_w == 0 or not math.isfinite(power_w):
        return f"{power_w:g} W"
    for factor, unit in ((1e9, "GW"), (1e6, "MW"), (1e3, "kW")):
        if abs(power_w) >= factor:
            return f"{power_w / factor:+.4g} {unit}"
    return f"{power_w:+.4g} W"


def range_text(bounds: PowerRange) -> str:
    """Return "-250 kW .. +250 kW"."""
    return f"{power_text(bounds.lower_w)} .. {power_text(bounds.upper_w)}"


def _ids_text(ids: Iterable[int]) -> str:
    return ", ".join(str(i) for i in ids)


def targeted_range(
    capability: SiteCapability, batteries: Collection[int] | None
) -> tuple[PowerRange | None, list[str]]:
    """Return what the target batteries can do together, and the per-battery figures.

    `batteries` None means every battery of the site. The range is None when the
    capability has neither per-battery bounds nor a rating. Each inverter caps the sum
    of its targeted batteries; the site rating caps the total.

    Raises:
        ValueError: a target battery the site does not have, or one whose bounds are
            unknown (its message names them).
    """
    total: PowerRange | None = None
    figures: list[str] = []
    if capability.inverters is not None:
        known = set(capability.battery_ids)
        wanted = known if batteries is None else set(batteries)
        missing = sorted(wanted - known)
        if missing:
            word = "battery" if len(missing) == 1 else "batteries"
            raise ValueError(
                f"{word} {_ids_text(missing)} not found at the site (its batteries: "
                f"{_ids_text(sorted(known)) or 'none'}; {capability.source})"
            )
        unknown: list[int] = []
        total = PowerRange(0.0, 0.0)
        for group in capability.inverters:
            chosen = [(b, r) for b, r in group.batteries if b in wanted]
            if not chosen:
                continue
            together = PowerRange(0.0, 0.0)
            for battery_id, bounds in chosen:
                if bounds is None and group.inverter is not None and len(group.batteries) == 1:
                    bounds = group.inverter
                elif bounds is not None and group.inverter is not None:
                    bounds = bounds & group.inverter
                if bounds is None:
                    unknown.append(battery_id)
                    continue
                figures.append(f"{battery_id}: {range_text(bounds)}")
                together = together + bounds
            if group.inverter is not None and len(chosen) > 1:
                capped = together & group.inverter
                if capped != together:
                    figures.append(f"inverter {group.inverter_id}: {range_text(group.inverter)}")
                together = capped
            total = total + together
        if unknown:
            raise ValueError(
                f"no rated power bounds known for battery {_ids_text(sorted(unknown))} "
                f"({capability.source})"
            )
    if capability.rating_w is not None:
        rating = PowerRange(-capability.rating_w, capability.rating_w)
        total = rating if total is None else total & rating
    return total, figures


def power_problem(
    power_w: float, capability: SiteCapability, batteries: Collection[int] | None
) -> str | None:
    """Return why `power_w` is beyond what the target batteries can do; None if it fits.

    `power_w` in W, + charges, − discharges; `batteries` None targets every battery.
    0 W always fits. With nothing known (no bounds, no rating) nothing is refused: the
    caller decides what an unchecked power means.
    """
    if power_w == 0:
        return None
    try:
        together, figures = targeted_range(capability, batteries)
    except ValueError as error:
        return str(error)
    if together is None or together.holds(power_w):
        return None
    if capability.inverters is None:
        return f"{power_text(power_w)} is beyond the site rating: {range_text(together)} " + (
            f"({capability.source})"
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
    return f"{power_text(power_w)} is beyond what {who} {can_do}: {range_text(together)} ({where})"


__all__ = [
    "InverterCapability",
    "PowerRange",
    "SiteCapability",
    "power_problem",
    "power_text",
    "range_text",
    "targeted_range",
]
