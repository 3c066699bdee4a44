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
from typing import Any, Generic, TypedDict, TypeVar

from frequenz.channels import BroadcastChannel, Receiver, Sender
from frequenz.client.dispatch.recurrence import RecurrenceRule
from frequenz.client.dispatch.types import Dispatch as ClientDispatch
from frequenz.client.dispatch.types import DispatchId, TargetCategories, TargetIds
from frequenz.dispatch import Dispatch
from typing_extensions import Unpack

from edge_controller.framework.messages import PowerRequest, Result
from edge_controller.framework.use_case_actor import UseCaseActor
from tests.patience import PATIENCE_S, evaluated, until

ActorT = TypeVar("ActorT", bound=UseCaseActor[Any])


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
    """A started use case actor and the test's ends of its channels.

    What the actor sent is read once it has decided on everything the test gave it
    (`settled`), counted by its evaluations, never by waiting a while: a slow machine
    makes the test slower, not wrong. Send dispatches with `send` (an actor without a
    tick decides once per dispatch message, and `settled` counts them).
    """

    dispatches: Sender[Dispatch]
    requests: Receiver[PowerRequest]
    actor: ActorT
    sent: int = 0
    """Dispatch messages sent with `send`."""

    async def send(self, message: Dispatch) -> None:
        await self.dispatches.send(message)
        self.sent += 1

    async def next_request(self) -> PowerRequest:
        async with asyncio.timeout(PATIENCE_S):
            return await self.requests.receive()

    async def settled(self) -> None:
        """Wait until the actor has decided on every dispatch and reading given so far.

        One with a tick: three more evaluations (a dispatch already queued is read in
        the first). One without: an evaluation per dispatch sent.
        """
        if self.actor.tick is not None:
            await evaluated(self.actor.counts, 3, what=self.actor.name)
            return
        await until(
            lambda: self.actor.counts.get("evaluations", 0) >= self.sent,
            f"{self.actor.name} decided on all {self.sent} dispatches",
        )

    async def no_request(self) -> None:
        """Once settled, the actor has sent nothing."""
        await self.settled()
        assert not await self._pending(), f"unexpected {self.requests.consume()}"

    async def in_order(self) -> list[PowerRequest]:
        """Every request the actor sent until it settled, in the order sent."""
        await self.settled()
        found: list[PowerRequest] = []
        while await self._pending():
            found.append(self.requests.consume())
        return found

    async def _pending(self) -> bool:
        """Whether a request is waiting to be read now (looks, never waits)."""
        try:
            async with asyncio.timeout(0):
                return await self.requests.ready()
        except TimeoutError:
            return False


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
