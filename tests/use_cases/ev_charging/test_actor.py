"""EvChargingActor in process: dispatches and charger telemetry in, one request per charger out."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from frequenz.channels import Receiver, Sender
from frequenz.client.common.microgrid.electrical_components import ElectricalComponentCategory
from frequenz.client.dispatch.types import TargetCategories, TargetIds
from frequenz.dispatch import Dispatch
from typing_extensions import Unpack

from edge_controller.common.clock import ManualClock
from edge_controller.framework.messages import PowerRequest, Result, TargetKind
from edge_controller.framework.use_case import GridConfig, SiteView
from edge_controller.microgrid.graph import BatteryPairs
from edge_controller.microgrid.telemetry import EvChargerReading, MeterReading, TelemetryCache
from edge_controller.power.bounds import Range
from edge_controller.use_cases.ev_charging.actor import EvChargingActor
from edge_controller.use_cases.ev_charging.decide import ChargerMode
from tests.use_cases.actor_steps import ActorSteps, DispatchState, started
from tests.use_cases.actor_steps import dispatch as use_case_dispatch

NOON = datetime(2026, 6, 21, 12, 0, tzinfo=UTC)
CHARGERS = frozenset({81, 82, 83})
GRID_METER = 2
EVERY_CHARGER = TargetCategories(ElectricalComponentCategory.EV_CHARGER)


def dispatch(
    dispatch_id: int,
    payload: dict[str, object],
    targets: TargetIds | TargetCategories = EVERY_CHARGER,
    **state: Unpack[DispatchState],
) -> Dispatch:
    return use_case_dispatch(dispatch_id, "EV_CHARGING", payload, targets, **state)


def reading(
    charger_id: int, car_kw: float | None, *, state: str = "READY", power_w: float = 0.0
) -> EvChargerReading:
    """A 22 kW charger with a car that takes `car_kw` at most (None: no car)."""
    cable = "EV_CHARGING_CABLE_UNPLUGGED" if car_kw is None else "EV_CHARGING_CABLE_LOCKED_AT_EV"
    upper = 0.0 if car_kw is None else min(car_kw, 22.0) * 1000
    return EvChargerReading(
        charger_id, NOON, power_w, (Range(0.0, upper),), frozenset({state, cable}), frozenset()
    )


@dataclass
class Steps(ActorSteps[EvChargingActor]):
    cache: TelemetryCache = field(kw_only=True)

    def cars(self, **cars: float | None) -> None:
        """Plug cars in (`c81=11`: a car of 11 kW at charger 81) or out (`c81=None`)."""
        for key, car_kw in cars.items():
            self.cache.update(reading(int(key[1:]), car_kw))

    async def requests_until_quiet(self) -> dict[int, PowerRequest]:
        """Every request until none comes for a while, the last per charger."""
        found: dict[int, PowerRequest] = {}
        for request in await self.in_order():
            (charger,) = request.components
            found[charger] = request
        return found

    async def powers(self) -> dict[int, float]:
        return {c: r.power.as_watts() for c, r in (await self.requests_until_quiet()).items()}


@contextlib.asynccontextmanager
async def running(grid: GridConfig | None = None) -> AsyncIterator[Steps]:
    """The actor on chargers 81-83 (no car yet), a 4.14 kW minimum, a 20 ms tick."""
    cache = TelemetryCache()
    for charger in CHARGERS:
        cache.update(reading(charger, None))
    site = SiteView(BatteryPairs(()), cache, GRID_METER, ev_chargers=tuple(sorted(CHARGERS)))

    def actor(
        dispatches: Receiver[Dispatch], requests: Sender[PowerRequest], results: Receiver[Result]
    ) -> EvChargingActor:
        return EvChargingActor(
            dispatches,
            requests,
            results,
            site,
            chargers=CHARGERS,
            grid=grid,
            min_power_w=4140.0,
            tick=timedelta(seconds=0.02),
            priority=3,
            clock=ManualClock(NOON),
        )

    async with started(actor) as wired:
        yield Steps(wired.dispatches, wired.requests, wired.actor, cache=cache)


@pytest.fixture
async def steps() -> AsyncIterator[Steps]:
    async with running() as running_steps:
        yield running_steps


async def test_a_budget_follows_the_cars_and_is_released_when_the_dispatch_ends(
    steps: Steps,
) -> None:
    steps.cars(c81=11, c82=7.4)
    await steps.dispatches.send(dispatch(1, {"budget_w": "20 kW"}))
    requests = await steps.requests_until_quiet()
    assert {c: r.power.as_watts() for c, r in requests.items()} == {81: 11_000, 82: 7_400}
    first = requests[81]
    assert first.target is TargetKind.EV_CHARGERS
    assert first.hold
    assert first.priority == 3
    assert steps.actor.running_dispatches == {1: 20_000}

    steps.cars(c83=22)  # a car arrives
    assert await steps.powers() == pytest.approx({81: 20_000 / 3, 82: 20_000 / 3, 83: 20_000 / 3})

    steps.cars(c81=None)  # a car leaves: its share goes to the others
    released = await steps.requests_until_quiet()
    assert released[81].power.as_watts() == 0.0
    assert released[81].withdraws
    assert {c: r.power.as_watts() for c, r in released.items() if c != 81} == pytest.approx(
        {82: 7_400, 83: 12_600}
    )
    assert steps.actor.modes[81] is ChargerMode.UNPLUGGED
    assert steps.actor.driving == {frozenset({82}): 7_400, frozenset({83}): 12_600}

    await steps.dispatches.send(dispatch(1, {"budget_w": "20 kW"}, running=False))
    assert await steps.powers() == {82: 0.0, 83: 0.0}
    assert steps.actor.driving == {}
    assert steps.actor.running_dispatches == {}


async def test_the_others_give_way_before_an_arriving_car_takes_its_share(steps: Steps) -> None:
    steps.cars(c82=7.4, c83=22)
    await steps.dispatches.send(dispatch(1, {"budget_w": "20 kW"}))
    assert await steps.powers() == pytest.approx({82: 7_400, 83: 12_600})
    steps.cars(c81=22)
    arrived = await steps.in_order()
    assert [next(iter(r.components)) for r in arrived] == [82, 83, 81]
    assert [r.power.as_watts() for r in arrived] == pytest.approx([20_000 / 3] * 3)


async def test_power_per_charger_keeps_to_the_car_and_the_minimum(steps: Steps) -> None:
    steps.cars(c81=22, c82=7.4, c83=22)
    await steps.dispatches.send(
        dispatch(1, {"chargers": {"81": 11_000, "82": "11 kW", "83": 3000}}, TargetIds(81, 82, 83))
    )
    assert await steps.powers() == {81: 11_000, 82: 7_400}  # 83: below the 4.14 kW minimum
    assert steps.actor.modes[83] is ChargerMode.BELOW_MIN


async def test_a_faulted_or_silent_charger_is_released(steps: Steps) -> None:
    steps.cars(c81=11, c82=11)
    await steps.dispatches.send(dispatch(1, {"budget_w": 30_000}))
    assert await steps.powers() == {81: 11_000, 82: 11_000}
    steps.cache.update(reading(81, 11, state="ERROR"))
    assert await steps.powers() == {81: 0.0}
    assert steps.actor.modes[81] is ChargerMode.UNAVAILABLE


async def test_the_newest_dispatch_drives_the_chargers_it_targets(steps: Steps) -> None:
    steps.cars(c81=22, c82=22, c83=22)
    await steps.dispatches.send(dispatch(1, {"budget_w": 30_000}, created_minutes_ago=20))
    assert await steps.powers() == {81: 10_000, 82: 10_000, 83: 10_000}
    await steps.dispatches.send(
        dispatch(2, {"chargers": {"83": 5_000}}, TargetIds(83), created_minutes_ago=5)
    )
    sent = [(r.components, r.origin, r.power.as_watts()) for r in await steps.in_order()]
    assert sent == [
        (frozenset({83}), 2, 5_000),  # decreases first: 83 to the newer dispatch,
        (frozenset({83}), 1, 0.0),  # then the older gives it back
        (frozenset({81}), 1, 15_000),
        (frozenset({82}), 1, 15_000),
    ]
    assert steps.actor.driving == {
        frozenset({81}): 15_000,
        frozenset({82}): 15_000,
        frozenset({83}): 5_000,
    }
    # the newer ends: the older shares its budget over all three again
    await steps.dispatches.send(
        dispatch(2, {"chargers": {"83": 5_000}}, TargetIds(83), running=False)
    )
    sent = [(r.components, r.origin, r.power.as_watts()) for r in await steps.in_order()]
    assert sent == [
        (frozenset({81}), 1, 10_000),
        (frozenset({82}), 1, 10_000),
        (frozenset({83}), 1, 10_000),
        (frozenset({83}), 2, 0.0),
    ]


async def test_bad_dispatches_are_rejected_and_dry_runs_command_nothing(steps: Steps) -> None:
    steps.cars(c81=22)
    await steps.dispatches.send(dispatch(1, {"budget_w": -5}))
    await steps.dispatches.send(dispatch(2, {"budget_w": 5000}, TargetIds(81, 99)))
    await steps.dispatches.send(
        dispatch(3, {"budget_w": 5000}, TargetCategories(ElectricalComponentCategory.BATTERY))
    )
    await steps.dispatches.send(dispatch(4, {"budget_w": 5000}, dry_run=True))
    assert await steps.requests_until_quiet() == {}
    assert steps.actor.counts["rejected"] == 3
    assert steps.actor.running_dispatches == {4: 5_000}


async def test_the_cars_share_only_the_room_the_import_limit_leaves() -> None:
    async with running(GridConfig(max_import_w=12_000.0)) as steps:
        steps.cars(c81=22, c82=22)
        steps.cache.update(MeterReading(GRID_METER, NOON, 6_000.0))  # the site without cars
        await steps.dispatches.send(dispatch(1, {"budget_w": "15 kW"}))
        # 6 kW of room: one car at 6 kW, not two at 3 kW below their 4.14 kW minimum
        assert await steps.powers() == {81: 6_000.0}
        assert steps.actor.modes[82] is ChargerMode.BELOW_MIN
        steps.cache.update(reading(81, 22, power_w=6_000.0))  # the car takes it: same room
        steps.cache.update(MeterReading(GRID_METER, NOON, 12_000.0))
        assert await steps.powers() == {}
        steps.cache.update(MeterReading(GRID_METER, NOON, 4_000.0))  # the building needs less
        assert await steps.powers() == {81: 7_000.0, 82: 7_000.0}


async def test_a_dispatch_updated_to_a_bad_payload_or_a_dry_run_releases_its_chargers(
    steps: Steps,
) -> None:
    steps.cars(c81=11, c82=11)
    await steps.dispatches.send(dispatch(1, {"budget_w": 11_000}, TargetIds(81)))
    await steps.dispatches.send(dispatch(2, {"budget_w": 11_000}, TargetIds(82)))
    assert await steps.powers() == {81: 11_000, 82: 11_000}
    await steps.dispatches.send(dispatch(1, {"budget_w": -5}, TargetIds(81)))
    assert await steps.powers() == {81: 0.0}  # its last good 11 kW is not kept; 82 charges on
    assert steps.actor.counts["rejected"] == 1
    await steps.dispatches.send(dispatch(2, {"budget_w": 11_000}, TargetIds(82), dry_run=True))
    assert await steps.powers() == {82: 0.0}
    assert steps.actor.driving == {}
