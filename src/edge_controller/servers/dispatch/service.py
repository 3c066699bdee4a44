"""The dispatch service's operations, independent of gRPC.

`DispatchService` keeps every dispatch in memory (loaded from the store at start),
writes through to the store, and fans change events out to stream subscribers:

```
create/update/delete ─► rules (pure) ─► store (SQLite, one transaction) ─► memory ─► events
get/list ───────────────────────────────────────────────────────────────► memory ─► query (pure)
```

Characteristics:

- Writes are serialised by one lock and run in the store's own thread
  (`writer.StoreThread`: rule evaluation and the SQLite commit with its fsync never
  block the event loop). Memory changes only after the commit, so a failed write
  changes nothing; events leave in commit order.
- A write is one unit whatever happens to its caller: it runs as a task of its own
  that the caller awaits through `asyncio.shield`. A caller that gives up (a client
  deadline, a cancelled call) leaves the write to finish: if it commits, it is
  served, listed and streamed like any other (the client was not told, so it may
  look, by listing); if it fails, nothing changed. There is no third case — a
  dispatch in the file that the service does not serve.
- Each subscriber has a bounded queue (`SUBSCRIBER_QUEUE_SIZE`). A subscriber that
  falls that far behind has its stream ended with UNAVAILABLE, so its client
  reconnects and lists again (`frequenz-dispatch` does), instead of the service
  buffering without limit.
- `close()` ends every stream with UNAVAILABLE, waits for the writes in progress
  within its budget (a stuck one is left to its daemon thread, which closes the
  store after it), and closes the store; later calls fail with UNAVAILABLE.
- A deletion is the last change to a dispatch: the DELETED event carries an
  update_time moved past the previous one, like any other change.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, replace
from typing import Any, Final, TypeVar

import structlog

from edge_controller.common.clock import Clock, WallClock
from edge_controller.servers.dispatch import rules
from edge_controller.servers.dispatch.errors import DispatchError, ErrorKind, not_found
from edge_controller.servers.dispatch.model import (
    Dispatch,
    DispatchData,
    DispatchEvent,
    DispatchUpdate,
    EventKind,
)
from edge_controller.servers.dispatch.query import (
    DispatchFilter,
    Page,
    PageRequest,
    Sort,
    check_filter,
    page_token,
    resolve_page,
)
from edge_controller.servers.dispatch.storage import DispatchStore
from edge_controller.servers.dispatch.writer import StoreThread

_T = TypeVar("_T")

_LOG = structlog.get_logger("edge_controller.servers.dispatch")
SUBSCRIBER_QUEUE_SIZE: Final = 1000
"""Events buffered per stream before a slow subscriber is cut off (UNAVAILABLE)."""


@dataclass(frozen=True, slots=True)
class _EndOfStream:
    reason: str


class _Subscription:
    """One stream's mailbox."""

    def __init__(self, microgrid_id: int) -> None:
        self.microgrid_id = microgrid_id
        self.queue: asyncio.Queue[DispatchEvent | _EndOfStream] = asyncio.Queue(
            SUBSCRIBER_QUEUE_SIZE + 1
        )
        self.ended = False

    def offer(self, item: DispatchEvent | _EndOfStream) -> None:
        if self.ended:
            return
        if isinstance(item, _EndOfStream):
            self.ended = True
            while not self.queue.empty():  # the end goes first: nothing after it matters
                self.queue.get_nowait()
            self.queue.put_nowait(item)
        elif self.queue.qsize() >= SUBSCRIBER_QUEUE_SIZE:
            self.offer(
                _EndOfStream(
                    f"stream fell {SUBSCRIBER_QUEUE_SIZE} events behind; reconnect and list again"
                )
            )
        else:
            self.queue.put_nowait(item)


class DispatchService:
    """Create, read, update, delete and stream the dispatches of the served microgrids.

    `microgrid_ids` None serves any microgrid; otherwise other ids are NOT_FOUND.
    Every method raises `DispatchError` for a request it refuses.
    """

    def __init__(
        self,
        store: DispatchStore,
        *,
        clock: Clock | None = None,
        microgrid_ids: frozenset[int] | None = None,
    ) -> None:
        """Serve the dispatches held by `store` (read now)."""
        self._store = store
        self._clock = clock or WallClock()
        self.microgrid_ids = microgrid_ids
        self._dispatches: dict[int, Dispatch] = {d.id: d for d in store.load()}
        self._write_lock = asyncio.Lock()
        self._store_thread = StoreThread()
        self._writes: set[asyncio.Task[Any]] = set()
        self._subscriptions: set[_Subscription] = set()
        self._closed = False

    def __len__(self) -> int:
        """Return how many dispatches are stored (all microgrids)."""
        return len(self._dispatches)

    def writes_in_flight(self) -> int:
        """Return how many writes are started and not finished (tests wait on this)."""
        return len(self._writes)

    def subscriber_count(self, microgrid_id: int) -> int:
        """Return how many streams follow `microgrid_id` (tests wait on this)."""
        return sum(1 for s in self._subscriptions if s.microgrid_id == microgrid_id and not s.ended)

    def _check_open(self) -> None:
        if self._closed:
            raise DispatchError(ErrorKind.UNAVAILABLE, "the dispatch service is shutting down")

    def _lookup(self, microgrid_id: int, dispatch_id: int) -> Dispatch:
        rules.check_microgrid(microgrid_id, self.microgrid_ids)
        dispatch = self._dispatches.get(dispatch_id)
        if dispatch is None or dispatch.microgrid_id != microgrid_id:
            raise not_found(f"dispatch {dispatch_id} not found in microgrid {microgrid_id}")
        return dispatch

    def _publish(self, kind: EventKind, dispatch: Dispatch) -> None:
        """Announce a change to the streams, right after the writer has its answer.

        With 1 000 streams, feeding them all takes tens of milliseconds of this loop;
        done inline, the write's own answer waited behind it. `call_soon` keeps the
        events in the order of the writes (one writer at a time).
        """
        asyncio.get_running_loop().call_soon(self._fan_out, DispatchEvent(kind, dispatch))

    def _fan_out(self, event: DispatchEvent) -> None:
        for subscription in list(self._subscriptions):
            if subscription.microgrid_id == event.dispatch.microgrid_id:
                subscription.offer(event)

    async def create(
        self, microgrid_id: int, data: DispatchData, *, start_immediately: bool = False
    ) -> Dispatch:
        """Validate and store a new dispatch; announce it as CREATED."""
        rules.check_microgrid(microgrid_id, self.microgrid_ids)
        return await self._as_one_unit(self._create(microgrid_id, data, start_immediately))

    async def _as_one_unit(self, write: Coroutine[Any, Any, _T]) -> _T:
        """Run a write (commit and publish) to its end even if the caller goes away."""
        task = asyncio.ensure_future(write)
        self._writes.add(task)
        task.add_done_callback(_forget_write(self._writes))
        return await asyncio.shield(task)

    async def _create(
        self, microgrid_id: int, data: DispatchData, start_immediately: bool
    ) -> Dispatch:
        async with self._write_lock:
            self._check_open()
            now = self._clock.now()

            def write() -> Dispatch:
                prepared = rules.prepare_new(data, start_immediately=start_immediately, now=now)
                end = rules.end_time(prepared)
                return self._store.insert(microgrid_id, prepared, create_time=now, end_time=end)

            created = await self._store_thread.submit(write)
            self._dispatches[created.id] = created
            self._publish(EventKind.CREATED, created)
        _LOG.info(
            "dispatch_created",
            microgrid_id=microgrid_id,
            dispatch_id=created.id,
            type=created.data.type,
            start_time=rules.iso(created.data.start_time),
            duration_s=created.data.duration_s,
            recurring=created.data.recurrence.is_recurring,
        )
        return created

    def get(self, microgrid_id: int, dispatch_id: int) -> Dispatch:
        """Return one dispatch of a microgrid."""
        self._check_open()
        return self._lookup(microgrid_id, dispatch_id)

    async def list(
        self, microgrid_id: int, query: DispatchFilter, sort: Sort, page: PageRequest
    ) -> Page:
        """Return one page of a microgrid's dispatches (see `query` for the semantics).

        Filtered, sorted and cut by SQLite over its indexes in the store's thread
        (keyset pagination: a page costs its size, not the number of dispatches); the
        dispatches themselves come from memory, so a page shows each one as it is now.
        """
        self._check_open()
        rules.check_microgrid(microgrid_id, self.microgrid_ids)
        check_filter(query)
        size, sort, after = resolve_page(sort, page)
        keys, total = await self._store_thread.submit(
            lambda: self._store.list_page(microgrid_id, query, sort, size, after)
        )
        shown = keys[:size]
        items = tuple(d for _, i in shown if (d := self._dispatches.get(i)) is not None)
        next_token = page_token(size, sort, shown[-1]) if len(keys) > size else None
        return Page(items=items, total=total, next_token=next_token)

    async def update(self, microgrid_id: int, dispatch_id: int, update: DispatchUpdate) -> Dispatch:
        """Apply exactly the update mask's paths; announce the result as UPDATED."""
        return await self._as_one_unit(self._update(microgrid_id, dispatch_id, update))

    async def _update(
        self, microgrid_id: int, dispatch_id: int, update: DispatchUpdate
    ) -> Dispatch:
        async with self._write_lock:
            self._check_open()
            current = self._lookup(microgrid_id, dispatch_id)
            now = self._clock.now()

            def write() -> Dispatch:
                data = rules.apply_update(current.data, update, now)
                changed = replace(
                    current,
                    data=data,
                    end_time=rules.end_time(data),
                    update_time=rules.next_update_time(current.update_time, now),
                )
                self._store.replace(changed)
                return changed

            updated = await self._store_thread.submit(write)
            self._dispatches[dispatch_id] = updated
            self._publish(EventKind.UPDATED, updated)
        _LOG.info(
            "dispatch_updated",
            microgrid_id=microgrid_id,
            dispatch_id=dispatch_id,
            paths=list(update.paths),
        )
        return updated

    async def delete(self, microgrid_id: int, dispatch_id: int) -> Dispatch:
        """Remove a dispatch; announce it (with a newer update_time) as DELETED."""
        return await self._as_one_unit(self._delete(microgrid_id, dispatch_id))

    async def _delete(self, microgrid_id: int, dispatch_id: int) -> Dispatch:
        async with self._write_lock:
            self._check_open()
            current = self._lookup(microgrid_id, dispatch_id)
            await self._store_thread.submit(lambda: self._store.delete(dispatch_id))
            del self._dispatches[dispatch_id]
            deleted = replace(
                current, update_time=rules.next_update_time(current.update_time, self._clock.now())
            )
            self._publish(EventKind.DELETED, deleted)
        _LOG.info("dispatch_deleted", microgrid_id=microgrid_id, dispatch_id=dispatch_id)
        return deleted

    async def subscribe(self, microgrid_id: int) -> AsyncIterator[DispatchEvent]:
        """Yield every change to the microgrid's dispatches from now on.

        Raises:
            DispatchError: NOT_FOUND for a microgrid not served; UNAVAILABLE when the
                service shuts down or the subscriber falls too far behind.
        """
        self._check_open()
        rules.check_microgrid(microgrid_id, self.microgrid_ids)
        subscription = _Subscription(microgrid_id)
        self._subscriptions.add(subscription)
        _LOG.debug("stream_opened", microgrid_id=microgrid_id)
        try:
            while True:
                item = await subscription.queue.get()
                if isinstance(item, _EndOfStream):
                    raise DispatchError(ErrorKind.UNAVAILABLE, item.reason)
                yield item
        finally:
            subscription.ended = True
            self._subscriptions.discard(subscription)
            _LOG.debug("stream_closed", microgrid_id=microgrid_id)

    async def close(self, timeout_s: float = 5.0) -> None:
        """End every stream with UNAVAILABLE, finish the writes in progress, close the store.

        Waits at most `timeout_s` for writes in progress (systemd allows a stop 10 s):
        a write still running then is left to the store thread, which closes the store
        after it; whatever it commits is there at the next start. Closing twice is
        closing once.
        """
        if self._closed:
            return
        self._closed = True
        for subscription in list(self._subscriptions):
            subscription.offer(_EndOfStream("the dispatch service is shutting down"))
        pending = set(self._writes)
        if pending:
            _, unfinished = await asyncio.wait(pending, timeout=timeout_s)
            if unfinished:
                _LOG.warning(
                    "dispatch_write_unfinished", writes=len(unfinished), waited_s=timeout_s
                )
                self._store_thread.submit(self._store.close)
                self._store_thread.stop()
                return
        closing = self._store_thread.submit(self._store.close)
        self._store_thread.stop()
        await closing


def _forget_write(writes: set[asyncio.Task[Any]]) -> Callable[[asyncio.Task[Any]], None]:
    """Drop a finished write; read its outcome, so that nobody waiting is no error."""

    def forget(task: asyncio.Task[Any]) -> None:
        writes.discard(task)
        if not task.cancelled():
            task.exception()

    return forget


__all__ = ["SUBSCRIBER_QUEUE_SIZE", "DispatchService"]
