"""OfflineScheduleActor: runs the cached dispatch schedule while the service is away.

Started only when the controller comes up and the dispatch service does not answer
but a dispatch cache exists. Once a second it evaluates the cached dispatches at the
controller's `Clock` (`dispatching.offline.changes_at`, the library's own occurrence
arithmetic; a test leaps over a dispatch's start on a `ManualClock`) and sends
every start and stop to the use-case actors, exactly as the DispatchBroadcastingActor
would. When the service is back, `hand_over()` stops it and withdraws what it started,
so the live stream takes over from a clean state.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from datetime import timedelta

import structlog
from frequenz.channels import Sender
from frequenz.dispatch import Dispatch

from edge_controller.common.clock import Clock, WallClock
from edge_controller.common.compat import marked_deleted
from edge_controller.dispatching.cache import CachedSchedule
from edge_controller.dispatching.offline import changes_at
from edge_controller.framework.supervision import SupervisedActor


def withdrawn(dispatch: Dispatch) -> Dispatch:
    """A copy of `dispatch` marked deleted: use cases stop acting on it."""
    return marked_deleted(dispatch)


class OfflineScheduleActor(SupervisedActor):
    """Feeds the use cases from the cached schedule; see the module docstring."""

    def __init__(
        self,
        schedule: CachedSchedule,
        routes: Mapping[str, Sequence[Sender[Dispatch]]],
        *,
        interval: timedelta = timedelta(seconds=1),
        clock: Clock | None = None,
        name: str = "offline_schedule",
    ) -> None:
        """Run `schedule` through `routes` (dispatch type → use-case senders)."""
        super().__init__(name=name)
        self._clock: Clock = clock or WallClock()
        self._dispatches = [d for d in schedule.dispatches if d.type in routes]
        self._routes = routes
        self._interval_s = interval.total_seconds()
        self._running: frozenset[int] = frozenset()
        self.counts: dict[str, int] = {}
        """`evaluations`: looks at the schedule (a test waits on them)."""
        self._log = structlog.get_logger(__name__).bind(actor=name)

    async def _run(self) -> None:
        while True:
            changes, self._running = changes_at(self._dispatches, self._running, self._clock.now())
            for dispatch in (*changes.stopped, *changes.started):
                self._log.info(
                    "cached_dispatch_changed",
                    dispatch_id=int(dispatch.id),
                    type=dispatch.type,
                    running=int(dispatch.id) in self._running,
                )
                await self._send(dispatch)
            self.counts["evaluations"] = self.counts.get("evaluations", 0) + 1
            await asyncio.sleep(self._interval_s)

    async def _send(self, dispatch: Dispatch) -> None:
        for sender in self._routes.get(dispatch.type, ()):
            await sender.send(dispatch)

    async def hand_over(self, still_running: frozenset[int] = frozenset()) -> None:
        """Stop, and withdraw what this actor started that the live service no longer runs.

        Dispatches in `still_running` are left alone: the live stream reports them
        again, and the use cases, seeing the same dispatch, change nothing — so the
        batteries never dip to 0 W during the hand-over.
        """
        await self.stop()
        withdraw = self._running - still_running
        for dispatch in self._dispatches:
            if int(dispatch.id) in withdraw:
                await self._send(withdrawn(dispatch))
        self._log.info(
            "cached_schedule_handed_over",
            withdrawn=sorted(withdraw),
            kept=sorted(self._running & still_running),
        )
        self._running = frozenset()
