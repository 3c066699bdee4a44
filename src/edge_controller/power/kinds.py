"""What the ids of a power request name, and so how the distributor commands them.

A pure core's vocabulary (the decision in `distribute.py` branches on it), re-exported
by `framework.messages` where `PowerRequest.target` carries it between actors.
"""

from __future__ import annotations

from enum import StrEnum


class TargetKind(StrEnum):
    """What kind of component a request's ids name, and so how it is commanded.

    Requests of different kinds never overlap: the PowerManagingActor settles
    priorities and overlaps among requests of one kind only, and the distributor
    plans each kind its own way.
    """

    BATTERIES = "batteries"
    """Ids are batteries: paired with their inverters and SoC-balanced."""
    EV_CHARGERS = "ev_chargers"
    """Ids are EV chargers, each commanded directly; + charges the car. A total is
    shared by what each charger can take now."""
    PV_INVERTERS = "pv_inverters"
    """Ids are PV inverters, commanded directly; a negative power is a production
    limit (the set may produce at most that much), shared by rated power; a withdraw
    lifts the limit."""


__all__ = ["TargetKind"]
