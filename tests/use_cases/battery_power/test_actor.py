"""BatteryPowerActor as a table of steps: dispatches in, power requests out."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from frequenz.channels import BroadcastChannel, BroadcastSender, Receiver
from frequenz.client.common.microgrid.electrical_components import ElectricalComponentCategory
from frequenz.client.dispatch.recurrence import RecurrenceRule
from frequenz.client.dispatch.types import Dispatch as ClientDispatch
from frequenz.client.dispatch.types import DispatchId, TargetCategories, TargetIds
from frequenz.dispatch import Dispatch

from edge_controller.framework.messages import PowerRequest, Result
from edge_controller.use_cases.battery_power.actor import BatteryPowerActor

SITE = frozenset({11, 21, 31, 41})
A_AND_B = TargetIds(11, 21)


def dispatch(
    dispatch_id: int,
    power: object,
    targets: TargetIds | TargetCategories = A_AND_B,
    *,
    running: bool = True,
    dry_run: bool = False,
    created_minutes_ago: int = 10,
    deleted: bool = False,
) -> Dispatch:
    now = datetime.now(UTC)
    start = now - timedelta(minutes=1) if running else now + timedelta(hours=1)
    return Dispatch(
        ClientDispatch(
            id=DispatchId(dispatch_id),
            type="BATTERY_POWER",
            start_time=start,
            duration=timedelta(hours=1),
            target=targets,
            active=True,
            dry_run=dry_run,
            payload={"power_w": power},
            recurrence=RecurrenceRule(),
            create_time=now - timedelta(minutes=created_minutes_ago),
            update_time=now,
        ),
        deleted=deleted,
    )


@dataclass
class Steps:
    dispatches: BroadcastSender[Dispatch]
    requests: Receiver[PowerRequest]
    actor: BatteryPowerActor

    async def send(self, message: Dispatch) -> None:
        await self.dispatches.send(message)

    async def next_request(self) -> PowerRequest:
        async with asyncio.timeout(2):
            return await self.requests.receive()

    async def no_request(self) -> None:
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.2):
                await self.requests.receive()


@pytest.fixture
async def steps() -> AsyncIterator[Steps]:
    dispatches, dispatches_in = BroadcastChannel[Dispatch](name="dispatches")
    requests_out, requests = BroadcastChannel[PowerRequest](name="requests")
    _results_sender, results = BroadcastChannel[Result](name="results")
    actor = BatteryPowerActor(dispatches_in, requests_out, results, site_batteries=SITE)
    actor.start()
    try:
        yield Steps(dispatches, requests, actor)
    finally:
        await actor.stop()


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


async def test_dry_run_commands_nothing(steps: Steps) -> None:
    await steps.send(dispatch(1, -40_000.0, dry_run=True))
    await steps.no_request()


async def test_the_newest_dispatch_wins_shared_batteries_and_the_older_gets_them_back(
    steps: Steps,
) -> None:
    await steps.send(dispatch(1, -40_000.0, TargetIds(11, 21), created_minutes_ago=20))
    await steps.next_request()
    await steps.send(dispatch(2, 5_000.0, TargetIds(21, 31), created_minutes_ago=5))
    first, second = await steps.next_request(), await steps.next_request()
    by_set = {r.batteries: r.power.as_watts() for r in (first, second)}
    assert by_set == {frozenset({11}): -40_000.0, frozenset({21, 31}): 5_000.0}
    await steps.send(dispatch(2, 5_000.0, TargetIds(21, 31), deleted=True))
    third, fourth = await steps.next_request(), await steps.next_request()
    by_set = {r.batteries: r.power.as_watts() for r in (third, fourth)}
    assert by_set == {frozenset({11, 21}): -40_000.0, frozenset({31}): 0.0}


async def test_a_target_on_a_shared_inverter_drives_the_whole_inverter() -> None:
    dispatches, dispatches_in = BroadcastChannel[Dispatch](name="dispatches")
    requests_out, requests = BroadcastChannel[PowerRequest](name="requests")
    _results_sender, results = BroadcastChannel[Result](name="results")
    group = frozenset({11, 12})
    actor = BatteryPowerActor(
        dispatches_in,
        requests_out,
        results,
        site_batteries={11, 12, 21},
        battery_groups={11: group, 12: group, 21: frozenset({21})},
    )
    actor.start()
    try:
        await dispatches.send(dispatch(1, -10_000.0, TargetIds(11)))
        async with asyncio.timeout(2):
            request = await requests.receive()
        assert request.batteries == group
    finally:
        await actor.stop()
