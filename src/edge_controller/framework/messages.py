"""The types that travel on channels between actors.

Powers are `frequenz.quantities.Power` here, at the edges between actors; inside the
pure modules they are watts as floats (the distributor converts a request once, into a
`power.distribute.Ask`). Passive sign convention: + charges, − discharges.
`TargetKind` lives with the pure decision that branches on it (`power.kinds`) and is
re-exported here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from frequenz.quantities import Power

from edge_controller.power.bounds import Range
from edge_controller.power.kinds import TargetKind


@dataclass(frozen=True, slots=True)
class PowerRequest:
    """Ask the PowerDistributingActor to hold `power` on a set of components.

    The target stays in force (re-sent before the API's command lifetime runs out)
    until a newer request for the same components replaces it; send 0 W to release
    them. `target` says what the ids are; the ids keep the field name `batteries`
    for the battery path, and `components` reads them whatever the kind.
    """

    namespace: str
    """Who asks: results go to this namespace's channel."""
    power: Power
    batteries: frozenset[int]
    request_timeout: timedelta = timedelta(seconds=5)
    """How long each inverter command may take before the battery counts as broken."""
    adjust_power: bool = True
    """Clamp a target outside the bounds to them (else answer OutOfBounds)."""
    include_broken_batteries: bool = False
    """Spread what the working batteries cannot take over the broken ones (clamped)."""
    priority: int = 0
    """Between use cases wanting the same batteries, higher wins (`power/priority.py`)."""
    hold: bool = True
    """The power is a hard target: lower priorities cannot change it (a dispatch)."""
    bounds: Range | None = None
    """With `hold=False`: the range (W) this use case allows lower priorities, e.g. peak
    shaving's "charge no more than would make a peak". 0 W with no bounds withdraws."""
    target: TargetKind = TargetKind.BATTERIES
    """What the ids in `batteries` are: batteries, EV chargers or PV inverters."""
    origin: int | None = None
    """The dispatch this request carries out (its id), None for a use case's own decision.
    The PowerManagingActor keeps one proposal per namespace and origin, so each running
    dispatch competes on its own, and the distributor's result names it."""
    created: datetime | None = None
    """When that dispatch was created: between equal priorities the newest wins (then the
    higher origin). None: the request counts from when the PowerManagingActor got it."""

    @property
    def components(self) -> frozenset[int]:
        """The ids this request commands, whatever `target` says they are."""
        return self.batteries

    @property
    def withdraws(self) -> bool:
        """Whether this request only gives the components back (0 W, no bounds).

        For PV inverters that lifts the production limit: each goes back to full
        production.
        """
        return self.power.as_watts() == 0.0 and self.bounds is None


@dataclass(frozen=True, slots=True)
class PowerBounds:
    """What a set of batteries can take: inclusion range minus an exclusion band."""

    inclusion_lower: Power
    exclusion_lower: Power
    exclusion_upper: Power
    inclusion_upper: Power


@dataclass(frozen=True, slots=True)
class Success:
    """Every command was accepted."""

    request: PowerRequest
    succeeded_power: Power
    succeeded_batteries: frozenset[int]
    excess_power: Power
    """Requested power that was not placed (clamped to bounds, or rounding rest)."""


@dataclass(frozen=True, slots=True)
class PartialFailure:
    """Some inverters failed (timeout or error); their batteries are now blocked."""

    request: PowerRequest
    succeeded_power: Power
    succeeded_batteries: frozenset[int]
    failed_power: Power
    failed_batteries: frozenset[int]
    excess_power: Power


@dataclass(frozen=True, slots=True)
class OutOfBounds:
    """The request cannot be met within the batteries' bounds (nothing was sent)."""

    request: PowerRequest
    bounds: PowerBounds


@dataclass(frozen=True, slots=True)
class Error:
    """The request is invalid or no battery can be used (nothing was sent)."""

    request: PowerRequest
    msg: str


@dataclass(frozen=True, slots=True)
class Ignored:
    """A newer request for the same batteries arrived before this one was processed."""

    request: PowerRequest
    reason: str = field(default="superseded by a newer request for the same batteries")


@dataclass(frozen=True, slots=True)
class Overruled:
    """The PowerManagingActor's word: higher-ranked proposals leave this request no room.

    Not the distributor's: it comes before any command, on the same results channel,
    when the request's proposal becomes overruled and again when the range left to it
    changes (or a newer request of the proposer is overruled too). The use case learns
    at once what its components will do — what the batteries would show only after
    they ramped, or never, when a grid guard holds them meanwhile — and can plan around
    it (PV curtailment curtails for a battery held by a higher-priority dispatch).
    """

    request: PowerRequest
    allowed: Range | None
    """The range (W) the higher-ranked proposals leave it on its components: they run
    at its point nearest the request's bounds (`power.priority.resolve`). `None`: the
    request's set waits for another, overlapping one (`proposal_withheld`): nothing of
    it runs, and its components do what that set commands."""


@dataclass(frozen=True, slots=True)
class InForce:
    """The PowerManagingActor's word: its `Overruled` on this request no longer stands.

    Sent once, when what overruled it ended (a dispatch stopped, a bound moved) and the
    request runs as asked again — or when the request was withdrawn or replaced on
    another set (it asks nothing there any more). Every `Overruled` is closed by one,
    on the same channel, after it.
    """

    request: PowerRequest


Result = Success | PartialFailure | OutOfBounds | Error | Ignored | Overruled | InForce

__all__ = [
    "Error",
    "Ignored",
    "InForce",
    "OutOfBounds",
    "Overruled",
    "PartialFailure",
    "PowerBounds",
    "PowerRequest",
    "Result",
    "Success",
    "TargetKind",
]
