"""DispatchBroadcastingActor: hands every dispatch change to the actors of its type.

It sits on `frequenz-dispatch`'s `Dispatcher` (cloud or local service — the same
code path) and forwards each running-state change (start, update of power, target,
duration or dry-run, stop, delete) of every configured dispatch type to all the
use-case actors registered for that type; two actors may receive the same dispatch.

`connect_dispatcher` bounds the library's start-up: with a wrong URL or TLS setting
the library waits forever while only logging, so the controller ends with an error
that names the URL instead.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import structlog
from frequenz.channels import Receiver, Sender, merge, select, selected_from
from frequenz.channels.timer import SkipMissedAndDrift, Timer
from frequenz.client.common.microgrid import MicrogridId
from frequenz.dispatch import Deleted, Dispatch, Dispatcher, DispatchEvent

from edge_controller.dispatching import cache
from edge_controller.supervision import SupervisedActor


class DispatchServiceUnreachableError(RuntimeError):
    """The dispatch service did not answer at start-up."""


async def connect_dispatcher(
    url: str, microgrid_id: int, auth_key: str, *, timeout_s: float = 15.0
) -> Dispatcher:
    """Start a `Dispatcher` and wait for its first fetch, at most `timeout_s`.

    Raises:
        DispatchServiceUnreachableError: naming the URL (and the `?ssl=false` hint for a
            plain local server).
    """
    dispatcher = Dispatcher(
        microgrid_id=MicrogridId(microgrid_id), server_url=url, auth_key=auth_key
    )
    try:
        async with asyncio.timeout(timeout_s):
            await dispatcher.__aenter__()
    except TimeoutError:
        await dispatcher.stop()
        hint = "" if "ssl=false" in url else " (a plain local server needs '?ssl=false')"
        raise DispatchServiceUnreachableError(
            f"dispatch service at {url} did not answer within {timeout_s:g} s{hint}"
        ) from None
    return dispatcher


class DispatchBroadcastingActor(SupervisedActor):
    """Forwards dispatch running-state changes to the actors of each dispatch type.

    It also guards against a gap in `frequenz-dispatch` 1.0: the library lists the
    dispatches *before* its stream connects, so one created in between is never
    seen. A few seconds after start, and then every `reconcile_interval`, the actor
    lists the dispatches itself; if the service knows one (or a newer version) that
    the stream never delivered, it logs `dispatch_stream_missed_events` and replaces
    the `Dispatcher` through `reconnect`, whose first fetch brings it in.
    """

    def __init__(
        self,
        dispatcher: Dispatcher,
        routes: Mapping[str, Sequence[Sender[Dispatch]]],
        *,
        microgrid_id: int,
        reconnect: Callable[[], Awaitable[Dispatcher]] | None = None,
        cache_path: Path | None = None,
        first_check: timedelta = timedelta(seconds=5),
        reconcile_interval: timedelta = timedelta(minutes=5),
        name: str = "dispatch_broadcasting",
    ) -> None:
        """Route each dispatch type in `routes` to its senders; keep `cache_path` current."""
        super().__init__(name=name)
        self._dispatcher = dispatcher
        self._routes = {kind: list(senders) for kind, senders in routes.items()}
        self._microgrid_id = microgrid_id
        self._reconnect = reconnect
        self._cache_path = cache_path
        self._first_check = first_check
        self._reconcile_interval = reconcile_interval
        self._known: dict[int, Dispatch] = {}
        self._log = structlog.get_logger(__name__).bind(actor=name)

    @property
    def dispatcher(self) -> Dispatcher:
        """The Dispatcher in use (it is replaced after missed events)."""
        return self._dispatcher

    async def _run(self) -> None:
        while True:
            missed = await self._follow()
            self._log.warning("dispatch_stream_missed_events", dispatch_ids=missed)
            if self._reconnect is None:
                continue
            await self._dispatcher.stop()
            self._dispatcher = await self._reconnect()

    async def _follow(self) -> list[int]:
        """Broadcast changes until a reconciliation finds missed dispatches."""
        # The Dispatcher announced what existed at start-up before anyone listened:
        # learn it from the service itself, so the cache and the reconciliation start
        # from everything the service knows.
        await self._seed_known()
        running: list[Receiver[Dispatch]] = [
            await self._dispatcher.new_running_state_event_receiver(kind) for kind in self._routes
        ]
        lifecycle = [self._dispatcher.new_lifecycle_events_receiver(kind) for kind in self._routes]
        self._log.info("dispatch_types_routed", types=sorted(self._routes))
        running_changes = merge(*running)
        lifecycle_events = merge(*lifecycle)
        check = Timer(
            self._reconcile_interval,
            SkipMissedAndDrift(),
            start_delay=self._first_check,
            tick_at_start=True,
        )
        try:
            async for selected in select(running_changes, lifecycle_events, check):
                if selected_from(selected, running_changes):
                    await self._broadcast(selected.message)
                elif selected_from(selected, lifecycle_events):
                    self._remember(selected.message)
                elif selected_from(selected, check):
                    missed = await self._missed()
                    if missed:
                        # An event may simply be on its way: look once more first.
                        await asyncio.sleep(1.0)
                        still = set(await self._missed())
                        missed = [i for i in missed if i in still]
                    if missed:
                        return missed
        finally:
            check.close()
        return []  # pragma: no cover - the receivers never end while running

    async def _seed_known(self) -> None:
        since = datetime.now(UTC) - timedelta(seconds=5)
        try:
            async for page in self._dispatcher.client.list(
                microgrid_id=MicrogridId(self._microgrid_id), end_from=since
            ):
                for dispatch in page:
                    if dispatch.type in self._routes:
                        self._known[int(dispatch.id)] = Dispatch(dispatch)
        except (grpc.aio.AioRpcError, TimeoutError) as error:
            self._log.warning("dispatch_list_failed", error=str(error))
            return
        self._save_cache()

    async def _missed(self) -> list[int]:
        """Ids the service has (or has newer) that the stream did not deliver."""
        since = datetime.now(UTC) - timedelta(seconds=5)
        missed: list[int] = []
        try:
            async for page in self._dispatcher.client.list(
                microgrid_id=MicrogridId(self._microgrid_id), end_from=since
            ):
                for dispatch in page:
                    if dispatch.type not in self._routes:
                        continue
                    known = self._known.get(int(dispatch.id))
                    if known is None or dispatch.update_time > known.update_time:
                        missed.append(int(dispatch.id))
        except (grpc.aio.AioRpcError, TimeoutError) as error:
            self._log.warning("dispatch_reconcile_failed", error=str(error))
            return []
        return missed

    def _remember(self, event: DispatchEvent) -> None:
        """Keep the cache on disk equal to the dispatches the service knows."""
        dispatch = event.dispatch
        if isinstance(event, Deleted):
            self._known.pop(int(dispatch.id), None)
        else:
            self._known[int(dispatch.id)] = dispatch
        self._save_cache()

    def _save_cache(self) -> None:
        if self._cache_path is None:
            return
        try:
            cache.save(self._cache_path, self._known.values())
        except OSError as error:
            self._log.error(
                "dispatch_cache_not_saved", path=str(self._cache_path), error=str(error)
            )

    async def _broadcast(self, dispatch: Dispatch) -> None:
        senders = self._routes.get(dispatch.type, [])
        self._log.info(
            "dispatch_changed",
            dispatch_id=int(dispatch.id),
            type=dispatch.type,
            started=dispatch.started,
            deleted=dispatch.deleted,
            dry_run=dispatch.dry_run,
            receivers=len(senders),
        )
        for sender in senders:
            await sender.send(dispatch)
