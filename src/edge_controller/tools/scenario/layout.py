"""The site as the day loop reads it once: which components, their specs, the load.

`SiteLayout.of` reads a simulator site file's components (`servers.sim.site`) into
the ids and specs the loop needs: the grid connection, each battery behind its one
inverter (batteries on one inverter move together), the PV and wind ratings the
production models scale, the loads whose profiles give the consumption (`load_w`).
A site the loop cannot run (no grid, no battery, a battery behind several inverters)
is a `ScenarioError`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from edge_controller.microgrid.graph import BatteryPairs, InverterBatteries
from edge_controller.servers.sim.model import hourly_value
from edge_controller.servers.sim.site import SiteSpec
from edge_controller.servers.sim.site_details import (
    BatterySpec,
    ComponentKind,
    InverterSpec,
    LoadSpec,
    PvSpec,
    WindSpec,
)
from edge_controller.tools.scenario.errors import ScenarioError

_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class SiteLayout:
    """What the loop needs to know about the site's components, read once."""

    grid_id: int
    battery_ids: tuple[int, ...]
    inverter_ids: tuple[int, ...]
    """Battery inverters."""
    batteries_of: Mapping[int, tuple[int, ...]]
    inverter_of: Mapping[int, int]
    battery_specs: Mapping[int, BatterySpec]
    inverter_specs: Mapping[int, InverterSpec]
    pv_ids: tuple[int, ...]
    wind_ids: tuple[int, ...]
    load_ids: tuple[int, ...]
    pv_peak_w: float
    wind_rated_w: float
    wind_curve: tuple[tuple[float, float], ...]
    loads: tuple[LoadSpec, ...]

    @classmethod
    def of(cls, site: SiteSpec) -> SiteLayout:
        """Read the layout of `site`.

        Raises:
            ScenarioError: no grid, no battery, or a battery behind several inverters.
        """
        by_kind: dict[ComponentKind, list[int]] = {kind: [] for kind in ComponentKind}
        for component in site.components:
            by_kind[component.kind].append(component.id)
        if not by_kind[ComponentKind.GRID]:
            raise ScenarioError(f"{site.source}: the site has no grid connection")
        batteries = tuple(by_kind[ComponentKind.BATTERY])
        if not batteries:
            raise ScenarioError(f"{site.source}: the site has no battery to trade with")
        inverter_of: dict[int, int] = {}
        for battery_id in batteries:
            parents = site.by_id[battery_id].parents
            if len(parents) != 1:
                raise ScenarioError(
                    f"{site.source}: battery {battery_id} hangs behind inverters "
                    f"{list(parents)}; scenarios need one inverter per battery"
                )
            inverter_of[battery_id] = parents[0]
        inverters = tuple(sorted(set(inverter_of.values())))
        batteries_of = {
            inverter: tuple(b for b in batteries if inverter_of[b] == inverter)
            for inverter in inverters
        }
        details = {c.id: c.details for c in site.components}
        pv = [d for d in details.values() if isinstance(d, PvSpec)]
        wind = [d for d in details.values() if isinstance(d, WindSpec)]
        return cls(
            grid_id=by_kind[ComponentKind.GRID][0],
            battery_ids=batteries,
            inverter_ids=inverters,
            batteries_of=batteries_of,
            inverter_of=inverter_of,
            battery_specs={b: _details(details[b], BatterySpec) for b in batteries},
            inverter_specs={i: _details(details[i], InverterSpec) for i in inverters},
            pv_ids=tuple(by_kind[ComponentKind.PV_INVERTER]),
            wind_ids=tuple(by_kind[ComponentKind.WIND_TURBINE]),
            load_ids=tuple(by_kind[ComponentKind.LOAD]),
            pv_peak_w=math.fsum(d.peak_power_w for d in pv),
            wind_rated_w=math.fsum(d.rated_power_w for d in wind),
            wind_curve=wind[0].power_curve if wind else ((0.0, 0.0), (1.0, 0.0)),
            loads=tuple(d for d in details.values() if isinstance(d, LoadSpec)),
        )

    @property
    def pairs(self) -> BatteryPairs:
        """Each battery inverter with its batteries, as the controller pairs them."""
        return BatteryPairs(
            tuple(
                InverterBatteries(i, tuple(sorted(self.batteries_of[i]))) for i in self.inverter_ids
            )
        )

    @property
    def capacity_wh(self) -> float:
        """All batteries' capacity."""
        return math.fsum(s.capacity_wh for s in self.battery_specs.values())


def _details(details: object, kind: type[_T]) -> _T:
    if not isinstance(details, kind):  # pragma: no cover - the site parser guarantees it
        raise ScenarioError(f"expected {kind.__name__}, got {type(details).__name__}")
    return details


def load_w(layout: SiteLayout, moment: datetime) -> float:
    """The site's consumption at `moment` (read in `moment`'s own UTC offset), W ≥ 0."""
    return math.fsum(s.peak_power_w * hourly_value(s.hourly_profile, moment) for s in layout.loads)


__all__ = ["SiteLayout", "load_w"]
