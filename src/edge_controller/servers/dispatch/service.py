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
- The streams of a microgrid read one shared log of its last
  `SUBSCRIBER_QUEUE_SIZE` events (`event_log.EventLog`): a write costs the same
  whatever the number of readers, every reader gets every event in commit order,
  and a slow reader holds up nobody. A subscriber that falls that far behind has
  its stream ended with UNAVAILABLE, so its client reconnects and lists again
  (`frequenz-dispatch` does), instead of the service buffering without limit.
- A write's caller is answered before the streams are woken (`_as_one_unit`), so
  a create with 1 000 readers is not answered after 1 000 stream writes.
- `close()` ends every stream with UNAVAILABLE, waits for the writes in progress
  within its budget (a stuck one is left to its daemon thread, which closes the
  store after it), and closes the store; later calls fail with UNAVAILABLE.
- A deletion is the last change to a dispatch: the DELETED event carries an
  update_time moved past the previous one, like any other change.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import replace
from typing import Any, Final, TypeVar

import structlog

from edge_controller.common.clock import Clock, WallClock
from edge_controller.servers.dispatch import rules
from edge_controller.servers.dispatch.errors import DispatchError, ErrorKind, not_found
from edge_controller.servers.dispatch.event_log import EventLog, StreamEndedError
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
"""Events kept for the streams: a subscriber further behind is cut off (UNAVAILABLE)."""


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
        self._event_logs: dict[int, EventLog[DispatchEvent]] = {}  # by microgrid, while read
        self._closed = False

    def __len__(self) -> int:
        """Return how many dispatches are stored (all microgrids)."""
        return len(self._dispatches)

    def writes_in_flight(self) -> int:
        """Return how many writes are started and not finished (tests wait on this)."""
        return len(self._writes)

    def subscriber_count(self, microgrid_id: int) -> int:
        """Return how many streams follow `microgrid_id` (tests wait on this)."""
        log = self._event_logs.get(microgrid_id)
        return 0 if log is None else log.readers

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
        """Add a committed change to its microgrid's stream log (if anyone reads it).

        Nobody is woken here: `_as_one_unit` wakes the readers once the write's
        caller has its answer.
        """
        log = self._event_logs.get(dispatch.microgrid_id)
        if log is not None:
            log.append(DispatchEvent(kind, dispatch))

    def _wake_readers(self) -> None:
        for log in self._event_logs.values():
            log.wake()

    def end_streams(self, reason: str) -> None:
        """End every open stream with UNAVAILABLE `reason`; later subscribers start anew.

        Used at shutdown; tests use it to drop streams as a network blip would.
        """
        logs = list(self._event_logs.values())
        self._event_logs.clear()
        for log in logs:
            log.end(reason)

    async def create(
        self, microgrid_id: int, data: DispatchData, *, start_immediately: bool = False
    ) -> Dispatch:
        """Validate and store a new dispatch; announce it as CREATED."""
        rules.check_microgrid(microgrid_id, self.microgrid_ids)
        return await self._as_one_unit(self._create(microgrid_id, data, start_immediately))

    async def _as_one_unit(self, write: Coroutine[Any, Any, _T]) -> _T:
        """Run a write (commit and publish) to its end even if the caller goes away.

        The streams are woken only after the caller has resumed with its answer:
        waking 1 000 readers queues 1 000 steps of this loop, each ending in a gRPC
        write, and woken at the commit they all ran before the caller's own response
        was sent (issue 16: a create took 60 ms with 1 000 readers). The wake is
        queued from the caller's step, so the caller runs on to its response first;
        a caller that gave up does not hold the event back: the write wakes them.
        """
        task = asyncio.ensure_future(write)
        self._writes.add(task)
        task.add_done_callback(_forget_write(self._writes))
        answer = asyncio.shield(task)
        task.add_done_callback(lambda _: self._wake_readers() if answer.cancelled() else None)
        try:
            return await answer
        finally:
            asyncio.get_running_loop().call_soon(self._wake_readers)

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
        log = self._event_logs.get(microgrid_id)
        if log is None:
            log = self._event_logs[microgrid_id] = EventLog(SUBSCRIBER_QUEUE_SIZE)
        position = log.position
        log.readers += 1
        _LOG.debug("stream_opened", microgrid_id=microgrid_id)
        try:
            while True:
                try:
                    event = log.read(position)
                except StreamEndedError as ended:
                    raise DispatchError(ErrorKind.UNAVAILABLE, ended.reason) from None
                if event is None:
                    await log.changed()
                    continue
                position += 1
                yield event
        finally:
            log.readers -= 1
            if not log.readers and self._event_logs.get(microgrid_id) is log:
                del self._event_logs[microgrid_id]
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
        self.end_streams("the dispatch service is shutting down")
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
