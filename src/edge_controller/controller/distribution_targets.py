"""The PowerDistributingActor's running targets: one record per component set it holds.

A module of its own because two shell parts read the same record: the actor makes and
replaces a `Target` each time it plans, and `replan_triggers` reads what the last plan
saw (its commands, meter allowances, counted powers, bounds) to move `next_send` up
when the site moved under it. Neither imports the other for it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from edge_controller.framework.messages import PowerRequest
from edge_controller.power.bounds import Range
from edge_controller.power.distribute import Ask

__all__ = ["Target"]


@dataclass(slots=True)
class Target:
    """A running target: what was asked, when to plan it again, what it runs now."""

    request: PowerRequest
    """As it came (its results carry it)."""
    ask: Ask
    """The same in watts (`power.distribute.Standing`)."""
    next_send: datetime
    granted_w: float = 0.0
    """What the power limit let through last time (W)."""
    commands_w: dict[int, float] = dataclasses.field(default_factory=dict)
    """The last commands the components accepted (W): what they run now."""
    allowed: dict[int, Range] = dataclasses.field(default_factory=dict)
    """Per limited meter, what this target's inverters below it were allowed together
    when planned (`[0, 0]` without meter data)."""
    held: dict[int, int] = dataclasses.field(default_factory=dict)
    """The meters whose limit held the plan back, with the side (`meter_limits.held_sides`)."""
    counted_w: dict[int, float] = dataclasses.field(default_factory=dict)
    """The components the last plan counted at their measured power, with that power
    (W): re-planned at once when it moves (`planning.counted_moved`)."""
    refused_until: dict[int, datetime] = dataclasses.field(default_factory=dict)
    """Components that refused a command (out of range), counted at their measured
    power until the next keep-alive tries them again."""
    planned_bounds: Mapping[int, Range | None] = dataclasses.field(default_factory=dict)
    """An EV or PV target's components' bounds (hull) when planned: re-planned at once
    when they move (`replan_triggers`)."""

    def refused(self, now: datetime) -> frozenset[int]:
        """The components still counted after a refusal."""
        return frozenset(i for i, until in self.refused_until.items() if until > now)
