"""A use case's actor in process: its dispatches in, its power requests out.

Every use case actor test wires its actor the same way — a channel of dispatches in,
a channel of `PowerRequest`s out to where the PowerManagingActor would be, a channel
of results back (these tests answer none) — and then steps through it: send a
dispatch (or change what the site reads), assert the requests that come out::

    async with started(lambda d, r, res: BatteryPowerActor(d, r, res, pairs=PAIRS)) as steps:
        await steps.send(dispatch(1, "BATTERY_POWER", {"power_w": -40_000}, TargetIds(11)))
        assert (await steps.next_request()).power.as_watts() == -40_000

What differs is the actor and what it reads of the site; a test that needs more
(a telemetry cache to fill) subclasses `ActorSteps` with a keyword-only field.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Generic, TypedDict, TypeVar

import pytest
from frequenz.channels import BroadcastChannel, Receiver, Sender
from frequenz.client.dispatch.recurrence import RecurrenceRule
from frequenz.client.dispatch.types import Dispatch as ClientDispatch
from frequenz.client.dispatch.types import DispatchId, TargetCategories, TargetIds
from frequenz.dispatch import Dispatch
from typing_extensions import Unpack

from edge_controller.framework.messages import PowerRequest, Result
from edge_controller.framework.supervision import SupervisedActor
from tests.patience import PATIENCE_S

ActorT = TypeVar("ActorT", bound=SupervisedActor)

QUIET_S = 0.2
"""How long no request must come for a test to take it that none will."""

SETTLED_S = 0.3
"""How long no request must come for a burst of them (one decision's) to be over."""


class DispatchState(TypedDict, total=False):
    """How a test dispatch stands; each key as `dispatch` reads it, all optional."""

    running: bool
    """Running now (the default), or starting in an hour."""
    dry_run: bool
    created_minutes_ago: float
    """Its creation time (default 10 min ago): between overlapping dispatches the newest wins."""
    deleted: bool


def dispatch(
    dispatch_id: int,
    kind: str,
    payload: dict[str, object],
    target: TargetIds | TargetCategories,
    **state: Unpack[DispatchState],
) -> Dispatch:
    """A dispatch of `kind` as the DispatchBroadcastingActor hands it to a use case.

    `running_now` reads the wall clock, so the times are around `datetime.now()`: a
    running dispatch started a minute ago and lasts an hour; one not running starts
    in an hour.
    """
    now = datetime.now(UTC)
    running = state.get("running", True)
    return Dispatch(
        ClientDispatch(
            id=DispatchId(dispatch_id),
            type=kind,
            start_time=now - timedelta(minutes=1) if running else now + timedelta(hours=1),
            duration=timedelta(hours=1),
            target=target,
            active=True,
            dry_run=state.get("dry_run", False),
            payload=payload,
            recurrence=RecurrenceRule(),
            create_time=now - timedelta(minutes=state.get("created_minutes_ago", 10)),
            update_time=now,
        ),
        deleted=state.get("deleted", False),
    )


@dataclass
class ActorSteps(Generic[ActorT]):
    """A started use case actor and the test's ends of its channels."""

    dispatches: Sender[Dispatch]
    requests: Receiver[PowerRequest]
    actor: ActorT

    async def send(self, message: Dispatch) -> None:
        await self.dispatches.send(message)

    async def next_request(self) -> PowerRequest:
        async with asyncio.timeout(PATIENCE_S):
            return await self.requests.receive()

    async def no_request(self) -> None:
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(QUIET_S):
                await self.requests.receive()

    async def in_order(self) -> list[PowerRequest]:
        """Every request until none comes for a while, in the order sent."""
        found: list[PowerRequest] = []
        while True:
            try:
                async with asyncio.timeout(SETTLED_S):
                    found.append(await self.requests.receive())
            except TimeoutError:
                return found


MakeActor = Callable[[Receiver[Dispatch], Sender[PowerRequest], Receiver[Result]], ActorT]
"""Builds the actor on its ends of the channels: dispatches, requests, results."""


@asynccontextmanager
async def started(make: MakeActor[ActorT]) -> AsyncIterator[ActorSteps[ActorT]]:
    """The actor `make` builds, started on fresh channels; stopped on the way out."""
    dispatches, dispatches_in = BroadcastChannel[Dispatch](name="dispatches")
    requests_out, requests = BroadcastChannel[PowerRequest](name="requests")
    _results_sender, results = BroadcastChannel[Result](name="results")
    actor = make(dispatches_in, requests_out, results)
    actor.start()
    try:
        yield ActorSteps(dispatches, requests, actor)
    finally:
        await actor.stop()
