"""UseCaseActor: the loop the dispatched use cases share, with a use case of its own.

`Holding` keeps each running dispatch's `power_w` and records what every step saw; the
tests drive it through its channels as the DispatchBroadcastingActor and the
distributor would, and watch it crash-free (a crash would be restarted unseen).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta

import structlog
from frequenz.channels import BroadcastChannel, Receiver, Sender
from frequenz.client.dispatch.types import TargetIds
from frequenz.dispatch import Dispatch
from frequenz.quantities import Power
from typing_extensions import override

from edge_controller.framework.messages import (
    Error,
    InForce,
    Overruled,
    PowerRequest,
    Result,
    Success,
    TargetKind,
)
from edge_controller.framework.supervision import RestartPolicy
from edge_controller.framework.use_case_actor import UseCaseActor
from edge_controller.power.bounds import Range
from tests.patience import until
from tests.use_cases.actor_steps import dispatch


class Holding(UseCaseActor[float]):
    """Holds each running dispatch's `power_w`; a negative one is rejected."""

    def __init__(
        self,
        dispatches: Receiver[Dispatch],
        requests: Sender[PowerRequest],
        results: Receiver[Result],
        tick: timedelta | None,
    ) -> None:
        super().__init__(
            dispatches,
            requests,
            results,
            tick=tick,
            priority=0,
            request_timeout=timedelta(seconds=5),
            name="holding",
        )
        self.seen: list[dict[int, float]] = []
        """What `_running` held at each step."""

    @override
    def _read(self, dispatch: Dispatch, log: structlog.stdlib.BoundLogger) -> float:
        power_w = float(dispatch.payload["power_w"])
        if power_w < 0:
            raise ValueError(f"power_w {power_w} < 0")
        return power_w

    @override
    async def _step(self) -> None:
        self.seen.append(dict(self._running))


def holding(
    dispatch_id: int, power_w: float, *, running: bool = True, dry_run: bool = False
) -> Dispatch:
    return dispatch(
        dispatch_id,
        "HOLDING",
        {"power_w": power_w},
        TargetIds(11),
        running=running,
        dry_run=dry_run,
    )


@dataclass
class Wired:
    dispatches: Sender[Dispatch]
    results: Sender[Result]
    actor: Holding
    restarts: list[float]


@asynccontextmanager
async def wired(tick: timedelta | None) -> AsyncIterator[Wired]:
    dispatches, dispatches_in = BroadcastChannel[Dispatch](name="dispatches")
    requests, _requests_out = BroadcastChannel[PowerRequest](name="requests")
    results, results_in = BroadcastChannel[Result](name="results")
    actor = Holding(dispatches_in, requests, results_in, tick)
    restarts: list[float] = []
    actor.supervise(RestartPolicy(), on_restart=lambda _name, wait_s: restarts.append(wait_s))
    actor.start()
    try:
        yield Wired(dispatches, results, actor, restarts)
    finally:
        await actor.stop()


async def test_it_decides_again_on_every_tick_and_on_every_dispatch() -> None:
    async with wired(timedelta(milliseconds=20)) as use_case:
        await until(lambda: len(use_case.actor.seen) >= 3, "ticks with nothing running")
        await use_case.dispatches.send(holding(1, 5_000.0))
        await until(lambda: use_case.actor.seen[-1] == {1: 5_000.0}, "dispatch 1 running")
        await use_case.dispatches.send(holding(2, -1.0))  # rejected: 1 keeps running
        await until(lambda: use_case.actor.counts.get("rejected") == 1, "dispatch 2 rejected")
        await use_case.dispatches.send(holding(1, 5_000.0, running=False))
        await until(lambda: use_case.actor.seen[-1] == {}, "dispatch 1 stopped")
        ticks = len(use_case.actor.seen)
        await until(lambda: len(use_case.actor.seen) > ticks + 2, "it ticks on")
        assert use_case.actor.counts.keys() - {"evaluations"} == {"rejected", "stopped"}
        assert (use_case.actor.counts["rejected"], use_case.actor.counts["stopped"]) == (1, 1)
        assert use_case.restarts == []


async def test_without_a_tick_it_decides_only_when_a_dispatch_changes() -> None:
    async with wired(None) as use_case:
        await use_case.dispatches.send(holding(1, 5_000.0))
        await until(lambda: use_case.actor.seen == [{1: 5_000.0}], "one step for dispatch 1")
        await use_case.dispatches.send(holding(3, 0.0, running=False))  # never ran: a step
        await until(lambda: len(use_case.actor.seen) == 2, "a step for the message")
        assert use_case.actor.seen[-1] == {1: 5_000.0}
        assert use_case.actor.counts == {"evaluations": 2}  # nothing stopped that ran


async def test_results_are_counted_by_kind() -> None:
    async with wired(None) as use_case:
        request = PowerRequest("holding", Power.from_watts(5_000.0), frozenset({11}), origin=1)
        await use_case.results.send(
            Success(request, request.power, request.batteries, Power.zero())
        )
        await use_case.results.send(Error(request, "no battery can be used"))
        await until(lambda: "result_Error" in use_case.actor.counts, "both results read")
        assert use_case.actor.counts == {"result_Success": 1, "result_Error": 1}
        assert use_case.actor.seen == []  # a result is no reason to decide again
        assert use_case.restarts == []


async def test_the_managers_word_on_an_overruled_request_is_kept_until_it_runs_again() -> None:
    """The manager's word is kept by what the request names, and acted on at once."""
    async with wired(None) as use_case:
        ids = frozenset({11})
        request = PowerRequest("holding", Power.from_watts(5_000.0), ids, origin=1)
        other = PowerRequest("holding", Power.from_watts(1_000.0), ids, origin=2)
        actor = use_case.actor
        await use_case.results.send(Overruled(request, Range(-2_000.0, -2_000.0)))
        await use_case.results.send(Overruled(other, None))
        await until(lambda: "result_Overruled" in actor.counts, "the words read")
        await until(lambda: actor.overruled(TargetKind.BATTERIES, ids, 2) is not None, "both")
        assert actor.overruled(TargetKind.BATTERIES, ids, 1) == Overruled(
            request, Range(-2_000.0, -2_000.0)
        )
        assert actor.overruled(TargetKind.BATTERIES, ids) is None  # no such request
        await use_case.results.send(InForce(request))
        await until(lambda: actor.overruled(TargetKind.BATTERIES, ids, 1) is None, "runs again")
        # each word is a reason to decide again (a Success or an Error is not)
        await until(lambda: len(actor.seen) == 3, "a step per word")
        # the dispatch behind the other request ends: what was said of it is gone too
        await use_case.dispatches.send(holding(2, 1_000.0))
        await use_case.dispatches.send(holding(2, 1_000.0, running=False))
        await until(lambda: actor.counts.get("stopped") == 1, "dispatch 2 stopped")
        assert actor.overruled(TargetKind.BATTERIES, ids, 2) is None
        assert use_case.restarts == []


async def test_a_bad_update_or_a_switch_to_a_dry_run_stops_a_running_dispatch() -> None:
    async with wired(None) as use_case:
        for each in (holding(1, 5_000.0), holding(2, 7_000.0), holding(3, 1_000.0)):
            await use_case.dispatches.send(each)
        await until(lambda: use_case.actor.seen[-1:] == [{1: 5_000.0, 2: 7_000.0, 3: 1_000.0}], "3")
        await use_case.dispatches.send(holding(1, -1.0))  # its last good 5 kW is not kept
        await until(lambda: use_case.actor.seen[-1] == {2: 7_000.0, 3: 1_000.0}, "1 stopped")
        await use_case.dispatches.send(holding(2, 7_000.0, dry_run=True))
        await until(lambda: use_case.actor.seen[-1] == {3: 1_000.0}, "2 a dry run")
        await use_case.dispatches.send(holding(4, 2_000.0, dry_run=True))  # never commands
        await until(lambda: len(use_case.actor.seen) == 6, "a step for dispatch 4")
        assert use_case.actor.seen[-1] == {3: 1_000.0}
        assert use_case.actor.counts == {"rejected": 1, "stopped": 2, "evaluations": 6}
