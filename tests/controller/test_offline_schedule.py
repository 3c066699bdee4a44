"""OfflineScheduleActor in process: the cached schedule drives the use cases on the clock.

The dispatch service is away; the actor runs the cached dispatches and sends each start
and stop to the use cases' channels, as the live broadcaster would. It reads a
`ManualClock` that stands still between the test's leaps; its own polling and the
test's waits run on the event loop's time.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta

import pytest
from frequenz.channels import BroadcastChannel, Receiver
from frequenz.client.dispatch.recurrence import RecurrenceRule
from frequenz.client.dispatch.types import Dispatch as ClientDispatch
from frequenz.client.dispatch.types import DispatchId, TargetIds
from frequenz.dispatch import Dispatch

from edge_controller.common.clock import ManualClock
from edge_controller.controller.offline_schedule import OfflineScheduleActor
from edge_controller.dispatching.cache import CachedSchedule
from edge_controller.dispatching.schedule import running_now
from tests.patience import PATIENCE_S, evaluated
from tests.table import START

STARTS = START + timedelta(minutes=1)
LASTS = timedelta(minutes=30)


def cached(dispatch_id: int, kind: str = "BATTERY_POWER", start: datetime = STARTS) -> Dispatch:
    return Dispatch(
        ClientDispatch(
            id=DispatchId(dispatch_id),
            type=kind,
            start_time=start,
            duration=LASTS,
            target=TargetIds(11),
            active=True,
            dry_run=False,
            payload={"power_w": -1000.0},
            recurrence=RecurrenceRule(),
            create_time=START - timedelta(days=1),
            update_time=START - timedelta(days=1),
        )
    )


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@dataclass
class Offline:
    clock: ManualClock
    use_case: Receiver[Dispatch]
    actor: OfflineScheduleActor

    async def sent(self) -> tuple[int, bool, datetime]:
        """The next dispatch the use case gets: id, whether it runs, when it came."""
        async with asyncio.timeout(PATIENCE_S):
            dispatch = await self.use_case.receive()
        now = self.clock.now()
        return int(dispatch.id), running_now(dispatch, now), now


async def offline(clock: ManualClock, *dispatches: Dispatch) -> AsyncIterator[Offline]:
    to_use_case, use_case = BroadcastChannel[Dispatch](name="battery_power")
    actor = OfflineScheduleActor(
        CachedSchedule(START - timedelta(hours=1), dispatches),
        {"BATTERY_POWER": [to_use_case]},
        interval=timedelta(milliseconds=10),
        clock=clock,
    )
    actor.start()
    try:
        yield Offline(clock, use_case, actor)
    finally:
        await actor.stop()  # it sleeps between evaluations: a stop is never swallowed


@pytest.fixture
async def tomorrow(clock: ManualClock) -> AsyncIterator[Offline]:
    """One cached battery dispatch starting a minute from now, and one of a type no
    use case here runs."""
    async for running in offline(clock, cached(1), cached(2, kind="PEAK_SHAVING", start=START)):
        yield running


async def test_a_cached_dispatch_starts_and_ends_on_the_clock(tomorrow: Offline) -> None:
    await evaluated(tomorrow.actor.counts)  # at 12:00: nothing to start yet
    tomorrow.clock.advance(timedelta(minutes=1))
    dispatch_id, running, at = await tomorrow.sent()
    assert (dispatch_id, running) == (1, True)
    assert at == STARTS  # not before its start (and the PEAK_SHAVING one went nowhere)
    tomorrow.clock.advance(LASTS - timedelta(seconds=1))
    await evaluated(tomorrow.actor.counts)  # the last second: still running, nothing sent
    tomorrow.clock.advance(timedelta(seconds=1))
    dispatch_id, running, at = await tomorrow.sent()
    assert (dispatch_id, running) == (1, False)
    assert at == STARTS + LASTS


async def test_handing_over_withdraws_only_what_the_live_service_no_longer_runs(
    clock: ManualClock,
) -> None:
    clock.advance(timedelta(minutes=2))  # both run
    async for run in offline(clock, cached(1), cached(3)):
        assert {(await run.sent())[0], (await run.sent())[0]} == {1, 3}
        await run.actor.hand_over(still_running=frozenset({3}))
        withdrawn = await run.use_case.receive()
        assert (int(withdrawn.id), withdrawn.deleted) == (1, True)
        assert not running_now(withdrawn)
        assert not run.actor.is_running
        with pytest.raises(TimeoutError):  # 3 is left to the live stream: no dip to 0 W
            async with asyncio.timeout(0.05):
                await run.use_case.receive()
