"""EV chargers and PV inverters: the components the controller commands one by one.

A battery is commanded through its inverter, paired by the graph (`graph`). An EV
charger or a PV inverter is its own power: the controller sets it directly, so all it
needs to know of one is that it exists and what it is rated for::

    grid 1 ── meter 2 ─┬─ inverter 10 ── battery 11     (paired: graph.BatteryPairs)
                       ├─ pv inverter 50                 pv_inverters: 50, rated [-350 kW, 0]
                       └─ ev charger 80                  ev_chargers:  80, rated [0, 22 kW]

The rated bounds come from the component metadata (ListElectricalComponents' config
bounds of AC active power). A rated end the metadata does not carry is unknown
(`None`), never unlimited: what a PV inverter may produce right now is in its
telemetry's bounds, the rating is only what a curtailment is shared by.

Passive sign convention: + consumes (an EV charging), − produces (PV). Pure: plain ids,
roles and numbers in, so it is tested without a client; `from_client` reads the
ratings from the client's components.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from edge_controller.microgrid.graph import ComponentRole, GraphComponent

RatedEnds = tuple[float | None, float | None]
"""A rated range as the metadata gives it: `(lower, upper)` W, `None` for an end it
does not carry."""


@dataclass(frozen=True, slots=True)
class RatedComponent:
    """An EV charger or PV inverter and its rated AC active power (W, ends may be unknown)."""

    component_id: int
    rated_lower_w: float | None = None
    rated_upper_w: float | None = None

    @property
    def rated_magnitude_w(self) -> float | None:
        """How much it is rated to move on its side of 0 W (PV: its peak), if known.

        The larger of the two ends' magnitudes: a PV inverter's lower end, an EV
        charger's upper end; `None` when neither end is known.
        """
        ends = [abs(e) for e in (self.rated_lower_w, self.rated_upper_w) if e is not None]
        return max(ends) if ends else None


@dataclass(frozen=True, slots=True)
class DirectComponents:
    """The site's EV chargers and PV inverters, each sorted by id."""

    ev_chargers: tuple[RatedComponent, ...] = ()
    pv_inverters: tuple[RatedComponent, ...] = ()

    @property
    def ev_charger_ids(self) -> tuple[int, ...]:
        """The EV chargers, sorted."""
        return tuple(c.component_id for c in self.ev_chargers)

    @property
    def pv_inverter_ids(self) -> tuple[int, ...]:
        """The PV inverters, sorted."""
        return tuple(c.component_id for c in self.pv_inverters)

    def rated(self, component_id: int) -> RatedComponent:
        """Return the EV charger's or PV inverter's rating.

        Raises:
            KeyError: `component_id` is neither an EV charger nor a PV inverter here.
        """
        for component in (*self.ev_chargers, *self.pv_inverters):
            if component.component_id == component_id:
                return component
        raise KeyError(component_id)


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def direct_components(
    components: Iterable[GraphComponent], rated: Mapping[int, RatedEnds] | None = None
) -> DirectComponents:
    """Collect the EV chargers and PV inverters among `components`, with their ratings.

    `rated` maps a component id to its rated AC active power; a component not in it,
    or a NaN or infinite end, is unknown.
    """
    ratings = rated or {}
    ordered = sorted(components, key=lambda c: c.component_id)

    def of(role: ComponentRole) -> tuple[RatedComponent, ...]:
        found = []
        for component in ordered:
            if component.role is role:
                lower, upper = ratings.get(component.component_id, (None, None))
                found.append(RatedComponent(component.component_id, _finite(lower), _finite(upper)))
        return tuple(found)

    return DirectComponents(of(ComponentRole.EV_CHARGER), of(ComponentRole.PV_INVERTER))


__all__ = ["DirectComponents", "RatedComponent", "RatedEnds", "direct_components"]
