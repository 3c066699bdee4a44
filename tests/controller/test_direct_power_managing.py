"""PowerManagingActor with EV chargers and PV inverters beside the batteries.

In process, as `test_power_managing.py`: the use cases are this test sending
`PowerRequest`s, the distributor a channel the test reads, the site a filled telemetry
cache on a `ManualClock` — two batteries (11, 21), a PV inverter (50, 350 kW peak,
producing what the test says) and an EV charger (80, 0..22 kW).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from frequenz.quantities import Power
from typing_extensions import override

from edge_controller.framework.messages import PowerRequest, TargetKind
from edge_controller.framework.use_case import GridConfig
from edge_controller.microgrid.telemetry import EvChargerReading, InverterReading
from edge_controller.power.bounds import Range
from tests.controller.cached_site import BOTH
from tests.controller.managed import Managed, managing
from tests.patience import evaluated

KW = 1000.0
BATTERIES, EV, PV = TargetKind.BATTERIES, TargetKind.EV_CHARGERS, TargetKind.PV_INVERTERS
CHARGER = frozenset({80})
ROOF = frozenset({50})


def request(
    namespace: str,
    target: TargetKind,
    power_kw: float,
    ids: frozenset[int],
    *,
    priority: int = 0,
    bounds: Range | None = None,
) -> PowerRequest:
    return PowerRequest(
        namespace,
        Power.from_watts(power_kw * KW),
        ids,
        priority=priority,
        target=target,
        bounds=bounds,
    )


class Manager(Managed):
    @override
    def ready(self) -> None:
        """Besides the batteries: the PV produces 200 kW, the charger takes nothing."""
        super().ready()
        self.pv(-200)
        self.charger(0.0)

    def pv(self, produced_kw: float) -> None:
        """The PV inverter produces `produced_kw` now (a negative power)."""
        self.site.cache.update(
            InverterReading(
                50,
                self.site.clock.now(),
                produced_kw * KW,
                (Range(-350 * KW, 0.0),),
                frozenset({"READY"}),
                frozenset(),
            )
        )

    def charger(self, power_kw: float, upper_kw: float = 22.0) -> None:
        self.site.cache.update(
            EvChargerReading(
                80,
                self.site.clock.now(),
                power_kw * KW,
                (Range(0.0, upper_kw * KW),),
                frozenset({"READY", "EV_CHARGING_CABLE_LOCKED_AT_EV"}),
                frozenset(),
            )
        )


@pytest.fixture
async def manager() -> AsyncIterator[Manager]:
    async with managing(GridConfig(), Manager) as running:
        running.site.grid(0.0)
        yield running


@pytest.fixture
async def limited() -> AsyncIterator[Manager]:
    """At most 100 kW import and 100 kW export; safe power a 5 kW discharge."""
    grid = GridConfig(
        max_import_w=100 * KW,
        max_export_w=100 * KW,
        safe_power_w=-5 * KW,
        stale_after=timedelta(seconds=3),
    )
    async with managing(grid, Manager) as running:
        yield running


async def test_each_kind_is_settled_on_its_own_and_priorities_hold_within_one(
    manager: Manager,
) -> None:
    await manager.ask(request("dispatch_7", BATTERIES, -20, BOTH))
    assert (await manager.told_request()).target is BATTERIES
    await manager.ask(request("ev_charging", EV, 11, CHARGER))
    forwarded = await manager.told_request()
    assert (forwarded.target, forwarded.components, forwarded.power.as_watts()) == (
        EV,
        CHARGER,
        11 * KW,
    )
    # a higher-priority PV limit and a lower one on the same inverter: the higher holds
    await manager.ask(request("pv_low", PV, -300, ROOF, priority=1))
    assert (await manager.told_request()).power.as_watts() == -300 * KW
    await manager.ask(request("pv_high", PV, -100, ROOF, priority=9))
    held = await manager.told_request()
    assert (held.namespace, held.power.as_watts()) == ("pv_high", -100 * KW)  # the holder's
    assert manager.actor.forwarded == {BOTH: -20 * KW, CHARGER: 11 * KW, ROOF: -100 * KW}


async def test_a_released_pv_set_is_withdrawn_and_a_pv_limit_of_0_w_stays_a_limit(
    manager: Manager,
) -> None:
    await manager.ask(request("pv_curtailment", PV, 0, ROOF, bounds=Range(0.0, 0.0)))
    nothing = await manager.told_request()
    assert nothing.power.as_watts() == 0.0
    assert not nothing.withdraws  # produce nothing, held
    await manager.ask(request("pv_curtailment", PV, 0, ROOF))  # the use case withdraws
    lifted = await manager.told_request()
    assert (lifted.target, lifted.components) == (PV, ROOF)
    assert lifted.withdraws


async def test_the_grid_guard_cuts_an_ev_charge_at_the_import_limit(limited: Manager) -> None:
    limited.site.grid(90 * KW)  # 90 kW imported, the charger at 0 W
    await limited.ask(request("ev_charging", EV, 22, CHARGER))
    assert (await limited.told_request()).power.as_watts() == pytest.approx(10 * KW)
    # the charger takes its 10 kW (the grid with it): the prediction is the same
    limited.charger(10.0)
    limited.site.grid(100 * KW)
    await evaluated(limited.actor.counts, 5)
    assert limited.actor.forwarded[CHARGER] == pytest.approx(10 * KW)


async def test_the_grid_guard_tightens_a_pv_limit_and_leaves_a_loose_one(
    limited: Manager,
) -> None:
    # 200 kW of PV and a 50 kW load: 150 kW exported, 50 kW over the limit
    limited.site.grid(-150 * KW)
    await limited.ask(request("pv_curtailment", PV, -300, ROOF))
    tightened = await limited.told_request()
    assert tightened.power.as_watts() == pytest.approx(-150 * KW)
    assert limited.actor.counts["clamp_export_limit"] >= 1
    # the load rises to 150 kW: 300 kW of PV would still be within the limit
    limited.pv(-150)
    limited.site.grid(0.0)
    assert (await limited.told_request()).power.as_watts() == pytest.approx(-300 * KW)


async def test_without_grid_data_an_ev_charge_stops_and_a_pv_limit_stays(
    limited: Manager,
) -> None:
    limited.pv(-120)
    limited.site.grid(0.0)  # the PV covers a 120 kW load
    await limited.ask(
        request("ev_charging", EV, 11, CHARGER),
        request("pv_curtailment", PV, -120, ROOF),
        request("dispatch_7", BATTERIES, 20, BOTH),
    )
    forwarded: dict[TargetKind, float] = {}
    while len(forwarded) < 3:
        told = await limited.told_request()
        forwarded[told.target] = told.power.as_watts()
    assert forwarded == {EV: 11 * KW, PV: -120 * KW, BATTERIES: 20 * KW}
    limited.site.clock.advance(3.5)  # the grid meter's sample is stale now
    changed: dict[TargetKind, float] = {}
    while len(changed) < 2:
        told = await limited.told_request()
        changed[told.target] = told.power.as_watts()
    assert changed == {EV: 0.0, BATTERIES: -5 * KW}
    assert limited.actor.forwarded[ROOF] == -120 * KW


async def test_a_use_case_removed_by_a_live_edit_gives_its_chargers_and_pv_back(
    manager: Manager,
) -> None:
    await manager.ask(request("ev_charging", EV, 11, CHARGER))
    assert (await manager.told_request()).power.as_watts() == 11 * KW
    await manager.ask(request("pv_curtailment", PV, -100, ROOF, bounds=Range(-100 * KW, 0.0)))
    assert (await manager.told_request()).power.as_watts() == -100 * KW
    await manager.actor.withdraw("ev_charging")  # what the Controller does on removal
    released = await manager.told_request()
    assert (released.target, released.components, released.withdraws) == (EV, CHARGER, True)
    await manager.actor.withdraw("pv_curtailment")
    lifted = await manager.told_request()
    assert (lifted.target, lifted.components, lifted.withdraws) == (PV, ROOF, True)
    assert manager.actor.forwarded == {}


async def test_the_grid_guard_never_raises_an_ev_charge_above_what_was_asked(
    limited: Manager,
) -> None:
    # 120 kW exported against a 100 kW limit: more charging would help, but the car
    # asked for 11 kW and the customer pays for what it takes
    limited.site.grid(-120 * KW)
    await limited.ask(request("ev_charging", EV, 11, CHARGER))
    assert (await limited.told_request()).power.as_watts() == pytest.approx(11 * KW)


async def test_the_grid_guard_never_loosens_a_pv_limit(limited: Manager) -> None:
    # a 150 kW limit the inverter has not reached yet (it still makes 200 kW) and a
    # load importing 120 kW: more PV would help, but the limit is the dispatch's
    limited.site.grid(120 * KW)
    await limited.ask(request("pv_curtailment", PV, -150, ROOF, bounds=Range(-150 * KW, 0.0)))
    assert (await limited.told_request()).power.as_watts() == pytest.approx(-150 * KW)
