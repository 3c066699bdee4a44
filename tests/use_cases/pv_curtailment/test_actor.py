"""PvCurtailmentActor in process: telemetry and dispatches in, PV requests out.

No simulator: the grid meter, the PV inverter and the battery are a filled telemetry
cache stamped by a `ManualClock`, the power pipeline is a channel the test reads. The
actor ticks every 20 ms of real time; staleness is the manual clock's.

The site: grid meter 1; PV inverter 50 rated 350 kW; battery inverter 10 with
battery 11 (±100 kW). The grid may export 100 kW.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta

import pytest
from frequenz.channels import Receiver, Sender
from frequenz.client.common.microgrid.electrical_components import ElectricalComponentCategory
from frequenz.client.dispatch.types import TargetCategories, TargetIds
from frequenz.dispatch import Dispatch
from typing_extensions import Unpack

from edge_controller.common.clock import ManualClock
from edge_controller.framework.messages import PowerRequest, Result, TargetKind
from edge_controller.framework.use_case import GridConfig, SiteView
from edge_controller.microgrid.graph import BatteryPairs, InverterBatteries
from edge_controller.microgrid.telemetry import (
    BatteryReading,
    InverterReading,
    MeterReading,
    TelemetryCache,
)
from edge_controller.power.bounds import Range
from edge_controller.use_cases.pv_curtailment.actor import PvCurtailmentActor
from edge_controller.use_cases.pv_curtailment.config import PvCurtailmentOptions
from tests.table import START
from tests.use_cases.actor_steps import ActorSteps, DispatchState, started
from tests.use_cases.actor_steps import dispatch as use_case_dispatch

KW = 1000.0
GRID_METER, PV, INVERTER, BATTERY = 1, 50, 10, 11
PAIRS = BatteryPairs((InverterBatteries(INVERTER, (BATTERY,)),))
GRID = GridConfig(max_export_w=100 * KW)
PV_ONLY = TargetIds(PV)


def dispatch(
    dispatch_id: int,
    payload: dict[str, object],
    target: TargetIds | TargetCategories = PV_ONLY,
    **state: Unpack[DispatchState],
) -> Dispatch:
    return use_case_dispatch(dispatch_id, "PV_CURTAILMENT", payload, target, **state)


@dataclass
class Site:
    """The readings, in kW: the meter reads load + battery − PV."""

    clock: ManualClock
    cache: TelemetryCache
    load_kw: float = 120.0
    pv_kw: float = 300.0
    battery_kw: float = 0.0
    battery_upper_kw: float = 0.0
    battery_state: str = "READY"

    def publish(self, **changes: object) -> None:
        """Apply `changes` and stamp every reading now."""
        for name, value in changes.items():
            setattr(self, name, value)
        now = self.clock.now()
        grid_w = (self.load_kw + self.battery_kw - self.pv_kw) * KW
        self.cache.update(MeterReading(GRID_METER, now, grid_w))
        self.cache.update(
            InverterReading(
                PV,
                now,
                -self.pv_kw * KW,
                (Range(-350 * KW, 0.0),),
                frozenset({"READY"}),
                frozenset(),
            )
        )
        bounds = (Range(-100 * KW, self.battery_upper_kw * KW),)
        self.cache.update(
            InverterReading(
                INVERTER, now, self.battery_kw * KW, bounds, frozenset({"READY"}), frozenset()
            )
        )
        self.cache.update(
            BatteryReading(
                BATTERY,
                now,
                90.0,
                0.0,
                100.0,
                200_000.0,
                self.battery_kw * KW,
                bounds,
                frozenset({self.battery_state}),
                frozenset(),
            )
        )


@dataclass
class Steps(ActorSteps[PvCurtailmentActor]):
    site: Site = field(kw_only=True)

    async def next_of(self, target: TargetKind) -> PowerRequest:
        """The next request for `target`; a request for another kind first fails."""
        request = await self.next_request()
        assert request.target is target, request
        return request


@pytest.fixture
async def steps() -> AsyncIterator[Steps]:
    clock = ManualClock(START)
    cache = TelemetryCache(timedelta(seconds=10))
    view = SiteView(PAIRS, cache, GRID_METER, pv_inverters=(PV,))

    def actor(
        dispatches: Receiver[Dispatch], requests: Sender[PowerRequest], results: Receiver[Result]
    ) -> PvCurtailmentActor:
        return PvCurtailmentActor(
            dispatches,
            requests,
            results,
            view,
            options=PvCurtailmentOptions(tick=timedelta(seconds=0.02)),
            inverters=frozenset({PV}),
            batteries=frozenset({BATTERY}),
            grid=GRID,
            priority=3,
            clock=clock,
            name="pv_guard",
        )

    async with started(actor) as wired:
        yield Steps(wired.dispatches, wired.requests, wired.actor, site=Site(clock, cache))


def ask_kw(request: PowerRequest) -> float:
    """The charge a battery request asks (kW): at least that much, lower priorities more."""
    assert request.target is TargetKind.BATTERIES
    assert request.components == {BATTERY}
    assert (request.hold, request.priority, request.namespace) == (False, 3, "pv_guard")
    assert not request.withdraws
    ask_w = request.power.as_watts()
    assert request.bounds == Range(ask_w, math.inf)
    return ask_w / KW


def limit_kw(request: PowerRequest) -> float:
    """The production a request allows (kW), checking it is a PV limit and not a withdraw."""
    assert request.target is TargetKind.PV_INVERTERS
    assert request.components == {PV}
    assert not request.withdraws
    allowed_w = -request.power.as_watts()
    assert request.bounds == Range(-allowed_w, 0.0)
    return allowed_w / KW


async def test_a_full_battery_curtails_the_pv_to_the_export_limit_and_the_load_lifts_it(
    steps: Steps,
) -> None:
    steps.site.publish()  # 300 kW of sun, 120 kW load, battery full: 180 kW exported
    request = await steps.next_request()
    assert limit_kw(request) == pytest.approx(220)
    assert (request.namespace, request.priority, request.hold) == ("pv_guard", 3, False)
    assert steps.actor.driving == {frozenset({PV}): pytest.approx(-220 * KW)}

    steps.site.publish(pv_kw=220.0)  # the PV follows: exactly at the export limit
    await steps.no_request()

    steps.site.publish(load_kw=300.0)  # the load comes: all 350 kW of rating fit
    lift = await steps.next_request()
    assert lift.withdraws
    assert lift.target is TargetKind.PV_INVERTERS
    assert lift.components == {PV}
    assert steps.actor.driving == {}


async def test_idle_batteries_with_room_are_asked_to_charge_the_surplus_not_the_pv_curtailed(
    steps: Steps,
) -> None:
    steps.site.publish(battery_upper_kw=100.0)  # 80 kW too much, 100 kW of room
    assert ask_kw(await steps.next_request()) == pytest.approx(80)
    assert steps.actor.driving == {frozenset({BATTERY}): pytest.approx(80 * KW)}
    steps.site.publish(battery_kw=80.0)  # they charge it: the export at the limit
    await steps.no_request()
    assert steps.actor.allowed_w is None

    steps.site.publish(load_kw=250.0)  # the surplus is gone: the ask is withdrawn
    withdraw = await steps.next_of(TargetKind.BATTERIES)
    assert withdraw.withdraws
    assert withdraw.components == {BATTERY}
    assert steps.actor.driving == {}


async def test_batteries_held_elsewhere_count_for_what_they_do_after_the_reaction_time(
    steps: Steps,
) -> None:
    steps.site.publish(battery_upper_kw=100.0)
    assert ask_kw(await steps.next_request()) == pytest.approx(80)
    # A higher-priority dispatch holds them at -50 kW: 230 kW exported.
    steps.site.publish(battery_kw=-50.0)
    await steps.no_request()  # trusted to follow for now
    steps.site.clock.advance(1)
    steps.site.publish()
    steps.site.clock.advance(1.5)  # 2.5 s short of the ask: beyond the 2 s reaction time
    steps.site.publish()
    assert limit_kw(await steps.next_of(TargetKind.PV_INVERTERS)) == pytest.approx(170)
    assert not steps.actor.batteries_counted
    assert steps.actor.battery_ask_w == pytest.approx(80 * KW)  # still asked: they may free up


async def test_a_battery_in_error_has_no_headroom_to_count_on(steps: Steps) -> None:
    steps.site.publish(battery_upper_kw=100.0, battery_state="ERROR")
    assert limit_kw(await steps.next_request()) == pytest.approx(220)


async def test_a_stale_grid_meter_holds_and_never_curtails(steps: Steps) -> None:
    steps.site.publish(load_kw=300.0)
    await steps.no_request()
    steps.site.clock.advance(4)  # beyond [grid] stale_after (3 s): the readings are old
    await steps.no_request()
    steps.site.publish(load_kw=120.0)  # fresh again, battery full: the surplus must go
    assert limit_kw(await steps.next_request()) == pytest.approx(220)
    steps.site.clock.advance(4)
    steps.site.cache.update(MeterReading(GRID_METER, steps.site.clock.now(), -900 * KW))
    await steps.no_request()  # the PV's reading is stale: the 220 kW limit holds


async def test_a_dispatch_limits_the_pv_by_share_of_its_rating_until_it_ends(
    steps: Steps,
) -> None:
    steps.site.publish(load_kw=300.0)  # no export problem
    await steps.no_request()
    await steps.dispatches.send(dispatch(7, {"max_production_pct": 60}))
    assert limit_kw(await steps.next_request()) == pytest.approx(210)
    assert steps.actor.running_dispatches == {7: pytest.approx(210 * KW)}
    await steps.dispatches.send(dispatch(8, {"max_production_w": "150 kW"}))
    assert limit_kw(await steps.next_request()) == pytest.approx(150)  # the tighter
    await steps.dispatches.send(dispatch(8, {}, running=False))
    assert limit_kw(await steps.next_request()) == pytest.approx(210)
    await steps.dispatches.send(dispatch(7, {}, running=False))
    assert (await steps.next_request()).withdraws
    assert steps.actor.running_dispatches == {}


async def test_bad_dispatches_are_rejected_and_dry_runs_limit_nothing(steps: Steps) -> None:
    steps.site.publish(load_kw=300.0)
    await steps.dispatches.send(dispatch(1, {"max_production_pct": 140}))
    await steps.dispatches.send(dispatch(2, {"max_production_w": 1000}, TargetIds(50, 60)))
    await steps.dispatches.send(dispatch(3, {"max_production_kw": 10}))
    await steps.dispatches.send(dispatch(4, {"max_production_w": 1000}, dry_run=True))
    await steps.no_request()
    assert steps.actor.counts["rejected"] == 3
    assert steps.actor.running_dispatches == {}
    category = TargetCategories(ElectricalComponentCategory.INVERTER)
    await steps.dispatches.send(dispatch(5, {"max_production_w": 0}, category))
    assert limit_kw(await steps.next_request()) == 0.0  # a 0 W limit is not a withdraw


async def test_the_dispatch_and_the_export_guard_combine_the_tighter_wins(steps: Steps) -> None:
    steps.site.publish()
    assert limit_kw(await steps.next_request()) == pytest.approx(220)
    steps.site.publish(pv_kw=220.0)
    await steps.dispatches.send(dispatch(7, {"max_production_w": 250_000}))
    await steps.no_request()  # the export guard's 220 kW is the tighter
    await steps.dispatches.send(dispatch(7, {"max_production_w": "200 kW"}))
    assert limit_kw(await steps.next_request()) == pytest.approx(200)


async def test_a_running_dispatch_switched_to_a_dry_run_stops_limiting(steps: Steps) -> None:
    steps.site.publish(load_kw=300.0)  # no export problem: only the dispatch limits
    await steps.dispatches.send(dispatch(7, {"max_production_w": "150 kW"}))
    assert limit_kw(await steps.next_request()) == pytest.approx(150)
    await steps.dispatches.send(dispatch(7, {"max_production_w": "150 kW"}, dry_run=True))
    assert (await steps.next_request()).withdraws  # a dry run limits nothing
    assert steps.actor.running_dispatches == {}


async def test_a_running_dispatch_updated_to_a_bad_payload_stops_limiting(steps: Steps) -> None:
    steps.site.publish(load_kw=300.0)  # no export problem: only the dispatches limit
    await steps.dispatches.send(dispatch(7, {"max_production_w": "150 kW"}))
    assert limit_kw(await steps.next_request()) == pytest.approx(150)
    await steps.dispatches.send(dispatch(8, {"max_production_w": "200 kW"}))
    await steps.dispatches.send(dispatch(7, {"max_production_pct": 140}))
    # its last good 150 kW is not kept; dispatch 8's 200 kW limits on
    assert limit_kw(await steps.next_request()) == pytest.approx(200)
    assert steps.actor.counts["rejected"] == 1
    assert steps.actor.running_dispatches == {8: pytest.approx(200 * KW)}
