"""BatteryPowerActor as a table of steps: dispatches in, power requests out.

Then with the PowerManagingActor behind it, in process: what the distributor is told
when dispatches overlap (the newest drives shared batteries, the older the rest).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta

import pytest
from frequenz.channels import BroadcastChannel, BroadcastSender, Receiver
from frequenz.client.common.microgrid.electrical_components import ElectricalComponentCategory
from frequenz.client.dispatch.types import TargetCategories, TargetIds
from frequenz.dispatch import Dispatch
from typing_extensions import Unpack

from edge_controller.controller.power_managing import PowerManagingActor
from edge_controller.framework.messages import PowerRequest, Result
from edge_controller.framework.use_case import SiteView
from edge_controller.microgrid.graph import BatteryPairs, InverterBatteries
from edge_controller.microgrid.telemetry import TelemetryCache
from edge_controller.use_cases.battery_power.actor import BatteryPowerActor
from tests.patience import PATIENCE_S, evaluated
from tests.use_cases.actor_steps import ActorSteps, DispatchState, started
from tests.use_cases.actor_steps import dispatch as use_case_dispatch

PAIRS = BatteryPairs(tuple(InverterBatteries(b - 1, (b,)) for b in (11, 21, 31, 41)))
SITE = frozenset(PAIRS.battery_ids)
A_AND_B = TargetIds(11, 21)


def dispatch(
    dispatch_id: int,
    power: object,
    targets: TargetIds | TargetCategories = A_AND_B,
    **state: Unpack[DispatchState],
) -> Dispatch:
    return use_case_dispatch(dispatch_id, "BATTERY_POWER", {"power_w": power}, targets, **state)


Steps = ActorSteps[BatteryPowerActor]


@pytest.fixture
async def steps() -> AsyncIterator[Steps]:
    async with started(lambda d, r, res: BatteryPowerActor(d, r, res, pairs=PAIRS)) as running:
        yield running


async def test_running_dispatch_requests_its_power_and_releases_at_the_end(steps: Steps) -> None:
    await steps.send(dispatch(1, -40_000.0))
    request = await steps.next_request()
    assert request.power.as_watts() == -40_000.0
    assert request.batteries == {11, 21}
    await steps.send(dispatch(1, "-20 kW"))  # an update changes the power
    assert (await steps.next_request()).power.as_watts() == -20_000.0
    await steps.send(dispatch(1, "-20 kW", running=False))  # it ended
    release = await steps.next_request()
    assert release.power.as_watts() == 0.0
    assert release.batteries == {11, 21}


async def test_battery_category_targets_every_battery(steps: Steps) -> None:
    await steps.send(dispatch(2, 10_000.0, TargetCategories(ElectricalComponentCategory.BATTERY)))
    assert (await steps.next_request()).batteries == SITE


async def test_bad_payload_is_rejected_and_the_others_keep_running(steps: Steps) -> None:
    await steps.send(dispatch(1, -40_000.0))
    await steps.next_request()
    await steps.send(dispatch(2, "lots", TargetIds(31)))
    await steps.no_request()
    assert steps.actor.counts["rejected"] == 1
    await steps.send(dispatch(3, -1_000.0, TargetIds(99)))  # not a battery of the site
    await steps.no_request()
    assert steps.actor.counts["rejected"] == 2


async def test_a_dispatch_updated_to_a_bad_payload_or_a_dry_run_withdraws(steps: Steps) -> None:
    await steps.send(dispatch(1, -40_000.0, TargetIds(11)))
    await steps.send(dispatch(2, -10_000.0, TargetIds(31)))
    assert [r.origin for r in await steps.in_order()] == [1, 2]
    await steps.send(dispatch(1, "lots", TargetIds(11)))  # its last good -40 kW is not kept
    [withdrawn] = await steps.in_order()
    assert (withdrawn.origin, withdrawn.withdraws) == (1, True)
    assert steps.actor.counts["rejected"] == 1
    await steps.send(dispatch(2, -10_000.0, TargetIds(31), dry_run=True))
    [withdrawn] = await steps.in_order()
    assert (withdrawn.origin, withdrawn.withdraws) == (2, True)
    assert steps.actor.driving == {}
    assert steps.actor.running_dispatches == {2: -10_000.0}  # a dry run, shown


async def test_dry_run_commands_nothing(steps: Steps) -> None:
    await steps.send(dispatch(1, -40_000.0, dry_run=True))
    await steps.no_request()


async def test_each_dispatch_asks_on_its_own_and_withdraws_when_it_ends(steps: Steps) -> None:
    await steps.send(dispatch(1, -40_000.0, TargetIds(11, 21), created_minutes_ago=20))
    first = await steps.next_request()
    await steps.send(dispatch(2, 5_000.0, TargetIds(21, 31), created_minutes_ago=5))
    second = await steps.next_request()
    assert [(r.origin, r.batteries, r.power.as_watts()) for r in (first, second)] == [
        (1, frozenset({11, 21}), -40_000.0),
        (2, frozenset({21, 31}), 5_000.0),  # the manager decides who drives battery 21
    ]
    assert second.created is not None
    assert first.created is not None
    assert second.created > first.created
    await steps.send(dispatch(2, 5_000.0, TargetIds(21, 31), deleted=True))
    release = await steps.next_request()
    assert (release.origin, release.batteries, release.withdraws) == (2, frozenset({21, 31}), True)
    await steps.no_request()  # dispatch 1 asks what it asked


async def test_a_retargeted_dispatch_gives_back_the_batteries_it_left(steps: Steps) -> None:
    await steps.send(dispatch(1, -10_000.0, TargetIds(11)))
    assert (await steps.next_request()).batteries == {11}
    await steps.send(dispatch(1, -10_000.0, TargetIds(31)))
    moved, left = await steps.next_request(), await steps.next_request()
    assert (moved.batteries, moved.withdraws) == (frozenset({31}), False)
    assert (left.batteries, left.withdraws, left.origin) == (frozenset({11}), True, 1)


async def test_a_target_on_a_shared_inverter_drives_the_whole_inverter() -> None:
    pairs = BatteryPairs((InverterBatteries(10, (11, 12)), InverterBatteries(20, (21,))))
    async with started(lambda d, r, res: BatteryPowerActor(d, r, res, pairs=pairs)) as steps:
        await steps.send(dispatch(1, -10_000.0, TargetIds(11)))
        assert (await steps.next_request()).batteries == {11, 12}


# ---------------------------------------------- with the PowerManagingActor behind it


@dataclass
class Pipeline:
    dispatches: BroadcastSender[Dispatch]
    distributor: Receiver[PowerRequest]
    use_case: BatteryPowerActor
    manager: PowerManagingActor

    async def send(self, message: Dispatch) -> None:
        await self.dispatches.send(message)

    async def told(self, count: int) -> dict[frozenset[int], tuple[int | None, float]]:
        """The next `count` requests the distributor gets: {batteries: (dispatch, W)}."""
        told = []
        async with asyncio.timeout(PATIENCE_S):
            for _ in range(count):
                told.append(await self.distributor.receive())
        return {r.batteries: (r.origin, r.power.as_watts()) for r in told}

    async def nothing_more_told(self, sent: int) -> None:
        """The dispatch just sent changed nothing the distributor is told.

        The use case has decided on it, the manager has settled what it asked and then
        looked again: still only the `sent` requests it forwarded before.
        """
        await evaluated(self.use_case.counts, 1, what="the use case")
        await evaluated(self.manager.counts, 3, what="the manager")
        assert self.manager.counts["forwarded"] == sent


@pytest.fixture
async def pipeline() -> AsyncIterator[Pipeline]:
    dispatches, dispatches_in = BroadcastChannel[Dispatch](name="dispatches")
    requests_out, requests_in = BroadcastChannel[PowerRequest](name="requests")
    _results_sender, results = BroadcastChannel[Result](name="results")
    to_distributor, distributor = BroadcastChannel[PowerRequest](name="distributor")
    site = SiteView(PAIRS, TelemetryCache(timedelta(seconds=10)), grid_meter_id=None)
    use_case = BatteryPowerActor(dispatches_in, requests_out, results, pairs=PAIRS)
    manager = PowerManagingActor(requests_in, to_distributor, site, tick=timedelta(milliseconds=20))
    manager.start()
    use_case.start()
    try:
        yield Pipeline(dispatches, distributor, use_case, manager)
    finally:
        await use_case.stop()
        await manager.stop()


async def test_the_newest_dispatch_wins_shared_batteries_and_the_older_gets_them_back(
    pipeline: Pipeline,
) -> None:
    await pipeline.send(dispatch(1, -40_000.0, TargetIds(11, 21), created_minutes_ago=20))
    assert await pipeline.told(1) == {frozenset({11, 21}): (1, -40_000.0)}
    await pipeline.send(dispatch(2, 5_000.0, TargetIds(21, 31), created_minutes_ago=5))
    assert await pipeline.told(2) == {
        frozenset({21, 31}): (2, 5_000.0),
        frozenset({11}): (1, -40_000.0),
    }
    await pipeline.send(dispatch(2, 5_000.0, TargetIds(21, 31), deleted=True))
    told = await pipeline.told(2)
    assert told == {frozenset({31}): (2, 0.0), frozenset({11, 21}): (1, -40_000.0)}


async def test_a_newer_dispatch_of_0_w_holds_shared_batteries_at_0_w(pipeline: Pipeline) -> None:
    await pipeline.send(dispatch(1, -40_000.0, TargetIds(11, 21), created_minutes_ago=20))
    assert await pipeline.told(1) == {frozenset({11, 21}): (1, -40_000.0)}
    await pipeline.send(dispatch(2, 0.0, TargetIds(11, 21), created_minutes_ago=5))
    assert await pipeline.told(1) == {frozenset({11, 21}): (2, 0.0)}


async def test_an_older_dispatch_sent_later_does_not_take_over(pipeline: Pipeline) -> None:
    await pipeline.send(dispatch(2, 5_000.0, TargetIds(11, 21), created_minutes_ago=5))
    assert await pipeline.told(1) == {frozenset({11, 21}): (2, 5_000.0)}
    # the controller restarted, or the older one was updated: it still does not drive
    await pipeline.send(dispatch(1, -40_000.0, TargetIds(11, 21), created_minutes_ago=20))
    await pipeline.nothing_more_told(sent=1)
