"""DispatchBroadcastingActor: hands every dispatch change to the actors of its type.

It sits on `frequenz-dispatch`'s `Dispatcher` (cloud or local service — the same
code path) and forwards each running-state change (start, update of power, target,
duration or dry-run, stop, delete) of every configured dispatch type to all the
use-case actors registered for that type; two actors may receive the same dispatch.

`connect_dispatcher` bounds the library's start-up: with a wrong URL or TLS setting
the library waits forever while only logging, so the controller ends with an error
that names the URL instead; a key the service refuses is reported at once, as such.

The actor also reconciles with the service's own list, so a change the stream never
delivered (a creation, an update, or a deletion) is still acted on.

A dispatch whose type no configured use case handles would otherwise be ignored in
silence: the actor logs `dispatch_unhandled` (warning, once per dispatch id, with its
type and the handled types) when it first sees one — in the service's list at start
and at each reconciliation, or on the client's stream of every type (the
`Dispatcher` only hands out receivers per type). The ids it warned about are
forgotten once the dispatch is deleted or ended (no longer in the service's list), so
that memory stays as small as the service's list.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import structlog
from frequenz.channels import Receiver, Sender, merge, select, selected_from
from frequenz.channels.timer import SkipMissedAndDrift
from frequenz.client.common.microgrid import MicrogridId
from frequenz.client.dispatch import DispatchApiClient
from frequenz.client.dispatch.types import Dispatch as ClientDispatch
from frequenz.client.dispatch.types import DispatchEvent as ClientDispatchEvent
from frequenz.client.dispatch.types import Event as ClientEvent
from frequenz.dispatch import Deleted, Dispatch, Dispatcher, DispatchEvent

from edge_controller.common.compat import Timer, marked_deleted, stop_dispatcher
from edge_controller.common.log_limit import LogLimiter
from edge_controller.dispatching import cache
from edge_controller.dispatching.schedule import next_start_after, running_now, runs_at
from edge_controller.framework.supervision import SupervisedActor

_CONFIRM_AFTER = timedelta(seconds=1)
CACHE_LOG_INTERVAL_S = 300.0
"""While the cache cannot be written, one log line per this many seconds at most."""
"""How long after a reconciliation that found a difference it is confirmed."""


class DispatchServiceUnreachableError(RuntimeError):
    """The dispatch service did not answer at start-up."""


class DispatchAuthError(DispatchServiceUnreachableError):
    """The dispatch service answered, but refused the API key.

    Raised at once, not after the start-up timeout: waiting cannot help. It derives
    from `DispatchServiceUnreachableError` because the controller is in the same place
    either way: without the live service.
    """


_KEY_REFUSED = frozenset({grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED})


async def _check_key(client: DispatchApiClient, url: str, microgrid_id: int) -> None:
    """Make one cheap authenticated call, so a refused key is named as such.

    The `Dispatcher` only logs a failed fetch and waits for the next one, so a wrong
    key would otherwise look like a service that never answers. Any other failure
    (unreachable, TLS) is left to the start-up wait and its hint.

    Raises:
        DispatchAuthError: the service answered UNAUTHENTICATED or PERMISSION_DENIED.
    """
    try:
        async for _page in client.list(microgrid_id=MicrogridId(microgrid_id), page_size=1):
            break
    except grpc.aio.AioRpcError as error:
        code = error.code()
        if code in _KEY_REFUSED:
            raise DispatchAuthError(
                f"dispatch service at {url} refused the API key ({code.name}): "
                "check dispatch.key_file"
            ) from None


async def connect_dispatcher(
    url: str, microgrid_id: int, auth_key: str, *, timeout_s: float = 15.0
) -> Dispatcher:
    """Start a `Dispatcher` and wait for its first fetch, at most `timeout_s`.

    One list call first checks the key, so a refused key fails at once.

    Raises:
        DispatchAuthError: the service refused the key (UNAUTHENTICATED or
            PERMISSION_DENIED), naming the URL and `dispatch.key_file`.
        DispatchServiceUnreachableError: naming the URL (and the `?ssl=false` hint for a
            plain local server).
    """
    dispatcher = Dispatcher(
        microgrid_id=MicrogridId(microgrid_id), server_url=url, auth_key=auth_key
    )
    started = False
    try:
        async with asyncio.timeout(timeout_s):
            await _check_key(dispatcher.client, url, microgrid_id)
            started = True
            await dispatcher.__aenter__()
    except BaseException as error:
        # Before `__aenter__` only the client's channel is open (`stop` would wait for
        # a service that never started).
        if started:
            await stop_dispatcher(dispatcher)
        else:
            await dispatcher.client.disconnect()
        if not isinstance(error, TimeoutError):
            raise
        hint = "" if "ssl=false" in url else " (a plain local server needs '?ssl=false')"
        raise DispatchServiceUnreachableError(
            f"dispatch service at {url} did not answer within {timeout_s:g} s{hint}"
        ) from None
    return dispatcher


def _runs(dispatch: Dispatch) -> bool:
    """Whether a use case runs `dispatch` now (`dispatching.schedule.running_now`)."""
    return running_now(dispatch)


def _still_to_run(dispatch: Dispatch) -> bool:
    """Whether `dispatch` runs now or will run again (by its own schedule)."""
    now = datetime.now(UTC)
    try:
        return dispatch.active and (
            runs_at(dispatch, now) or next_start_after(dispatch, now) is not None
        )
    except ValueError:  # a recurrence the library cannot follow: assume it would run
        return True


@dataclass(frozen=True, slots=True)
class Drift:
    """How the dispatches the stream brought differ from what the service lists."""

    missed: frozenset[int] = frozenset()
    """Ids the service has (or has a newer version of) that the stream did not bring."""
    deleted: frozenset[int] = frozenset()
    """Ids running or still to run here that the service no longer has."""

    def __bool__(self) -> bool:
        """True when anything differs."""
        return bool(self.missed or self.deleted)

    def __and__(self, other: Drift) -> Drift:
        """What both reconciliations found (an event may have been on its way)."""
        return Drift(self.missed & other.missed, self.deleted & other.deleted)


class UnhandledTypes:
    """Which dispatches no use case handles, each reported once: pure.

    >>> unhandled = UnhandledTypes({"BATTERY_POWER"})
    >>> unhandled.first_sighting(7, "FOO"), unhandled.first_sighting(7, "FOO")
    (True, False)
    >>> unhandled.first_sighting(8, "BATTERY_POWER")
    False

    Its memory is bounded by what the service still has: a reported id is forgotten
    when the dispatch is deleted (`forget`) or when the service's list no longer has
    it — ended, or deleted while the stream missed it (`keep_only`).

    >>> unhandled.keep_only([]), len(unhandled)
    (None, 0)
    """

    def __init__(self, handled: Iterable[str]) -> None:
        """Remember the types that some use case handles."""
        self.handled: tuple[str, ...] = tuple(sorted(set(handled)))
        self._reported: set[int] = set()

    def __len__(self) -> int:
        """How many reported dispatch ids are remembered."""
        return len(self._reported)

    def first_sighting(self, dispatch_id: int, dispatch_type: str) -> bool:
        """Whether `dispatch_id` has an unhandled type and was not reported yet."""
        if dispatch_type in self.handled or dispatch_id in self._reported:
            return False
        self._reported.add(dispatch_id)
        return True

    def forget(self, dispatch_id: int) -> None:
        """Forget a deleted dispatch: it will never be seen again."""
        self._reported.discard(dispatch_id)

    def keep_only(self, listed: Iterable[int]) -> None:
        """Forget every reported id but those the service still lists.

        `listed`: the ids of a complete list of the dispatches that have not ended (or
        ended moments ago); one not in it has ended or was deleted. (A dispatch that
        ended and is later updated to run again is reported again.)
        """
        self._reported.intersection_update(listed)


class DispatchBroadcastingActor(SupervisedActor):
    """Forwards dispatch running-state changes to the actors of each dispatch type.

    It also guards against gaps in `frequenz-dispatch` 1.0: the library lists the
    dispatches *before* its stream connects, so one created in between is never
    seen, and a re-list after a stream reconnect that fails is given up silently, so
    a deletion made meanwhile is never seen either. A few seconds after start, and then
    every `reconcile_interval`, the actor lists the dispatches itself, and a second
    later once more to confirm (an event may simply be on its way):

    - if the service has one (or a newer version) the stream never delivered, or no
      longer has one that runs or is still to run here, it logs
      `dispatch_stream_missed_events`;
    - for each such deletion it tells the use cases to stop (a copy marked
      `deleted`) and ignores what the current `Dispatcher` still says about it;
    - then it replaces the `Dispatcher` through `reconnect`, whose first fetch brings
      the service's state in; whatever ran here and does not run in that state is
      stopped.
    """

    def __init__(
        self,
        dispatcher: Dispatcher,
        routes: Mapping[str, Sequence[Sender[Dispatch]]],
        *,
        microgrid_id: int,
        reconnect: Callable[[], Awaitable[Dispatcher]] | None = None,
        cache_path: Path | None = None,
        on_cache_saved: Callable[[str | None], None] | None = None,
        first_check: timedelta = timedelta(seconds=5),
        reconcile_interval: timedelta = timedelta(minutes=5),
        name: str = "dispatch_broadcasting",
    ) -> None:
        """Route each dispatch type in `routes` to its senders; keep `cache_path` current.

        `on_cache_saved` hears of every write of the cache: None when it was saved,
        else why not (for `/healthz` and the metrics; the log says it once per
        `CACHE_LOG_INTERVAL_S`).
        """
        super().__init__(name=name)
        self._dispatcher = dispatcher
        self._routes = {kind: list(senders) for kind, senders in routes.items()}
        self._microgrid_id = microgrid_id
        self._reconnect = reconnect
        self._cache_path = cache_path
        self._on_cache_saved = on_cache_saved
        self._cache_log = LogLimiter(CACHE_LOG_INTERVAL_S)
        self._first_check = first_check
        self._reconcile_interval = reconcile_interval
        self._known: dict[int, Dispatch] = {}
        """The dispatches the service knows, as far as we heard (saved as the cache)."""
        self._unhandled = UnhandledTypes(self._routes)
        self._running: dict[int, Dispatch] = {}
        """The dispatches last broadcast as running, by id."""
        self._gone: dict[int, datetime] = {}
        """Deletions the stream missed: id to create time. The current `Dispatcher`
        still believes in them; what it says about them is ignored."""
        self._log = structlog.get_logger(__name__).bind(actor=name)

    @property
    def dispatcher(self) -> Dispatcher:
        """The Dispatcher in use (it is replaced after missed events)."""
        return self._dispatcher

    async def _run(self) -> None:
        while True:
            drift = await self._follow()
            self._log.warning(
                "dispatch_stream_missed_events",
                dispatch_ids=sorted(drift.missed),
                deleted_ids=sorted(drift.deleted),
            )
            if self._reconnect is None:
                continue
            # Connect first: if that fails, the old Dispatcher is still there to follow
            # after the restart.
            replacement = await self._reconnect()
            await stop_dispatcher(self._dispatcher)
            self._dispatcher = replacement
            self._gone.clear()

    async def _follow(self) -> Drift:
        """Broadcast changes until a reconciliation finds missed events."""
        # The Dispatcher announced what existed at start-up before anyone listened:
        # learn it from the service itself, so the cache and the reconciliation start
        # from everything the service knows.
        listed = await self._seed_known()
        if listed is not None:
            await self._stop_what_no_longer_runs(listed)
        running: list[Receiver[Dispatch]] = [
            await self._dispatcher.new_running_state_event_receiver(kind) for kind in self._routes
        ]
        lifecycle = [self._dispatcher.new_lifecycle_events_receiver(kind) for kind in self._routes]
        self._log.info("dispatch_types_routed", types=sorted(self._routes))
        running_changes = merge(*running)
        lifecycle_events = merge(*lifecycle)
        # Every type: the client shares one stream among its receivers.
        every_type = self._dispatcher.client.stream(MicrogridId(self._microgrid_id))
        check = Timer(
            self._reconcile_interval,
            SkipMissedAndDrift(),
            start_delay=self._first_check,
            tick_at_start=True,
        )
        suspected: Drift | None = None
        try:
            async for selected in select(running_changes, lifecycle_events, every_type, check):
                if selected_from(selected, every_type):
                    if not selected.was_stopped:
                        self._note_unhandled(selected.message)
                elif selected_from(selected, running_changes):
                    if not self._is_gone(selected.message):
                        await self._broadcast(selected.message)
                elif selected_from(selected, lifecycle_events):
                    if not self._is_gone(selected.message.dispatch):
                        self._remember(selected.message)
                elif selected_from(selected, check):
                    drift = await self._drift()
                    if suspected is None:
                        if drift:
                            # An event may simply be on its way: look once more in a
                            # second, following the stream meanwhile.
                            suspected = drift
                            check.reset(interval=_CONFIRM_AFTER)
                        continue
                    drift &= suspected
                    suspected = None
                    check.reset(interval=self._reconcile_interval)
                    if drift:
                        await self._release(drift.deleted)
                        return drift
        finally:
            check.close()
            running_changes.close()
            lifecycle_events.close()
            every_type.close()
        return Drift()  # pragma: no cover - the receivers never end while running

    async def _list(self) -> dict[int, ClientDispatch]:
        """The routed dispatches the service lists (those ending 5 s ago or later).

        Raises:
            grpc.aio.AioRpcError, TimeoutError: the list call failed.
        """
        since = datetime.now(UTC) - timedelta(seconds=5)
        listed: dict[int, ClientDispatch] = {}
        unhandled: list[int] = []
        async for page in self._dispatcher.client.list(
            microgrid_id=MicrogridId(self._microgrid_id), end_from=since
        ):
            for dispatch in page:
                if dispatch.type in self._routes:
                    listed[int(dispatch.id)] = dispatch
                else:
                    self._report_unhandled(dispatch)
                    unhandled.append(int(dispatch.id))
        # The whole list came: what it lacks has ended or was deleted.
        self._unhandled.keep_only(unhandled)
        return listed

    def _note_unhandled(self, event: ClientDispatchEvent) -> None:
        """Report a created or updated dispatch of a type that no use case handles.

        A deleted one is forgotten (the list forgets those that end).
        """
        if event.event in (ClientEvent.CREATED, ClientEvent.UPDATED):
            self._report_unhandled(event.dispatch)
        elif event.event == ClientEvent.DELETED:
            self._unhandled.forget(int(event.dispatch.id))

    def _report_unhandled(self, dispatch: ClientDispatch) -> None:
        if self._unhandled.first_sighting(int(dispatch.id), dispatch.type):
            self._log.warning(
                "dispatch_unhandled",
                dispatch_id=int(dispatch.id),
                type=dispatch.type,
                handled_types=list(self._unhandled.handled),
            )

    async def _seed_known(self) -> dict[int, ClientDispatch] | None:
        """Learn what the service lists; None when the list call failed."""
        try:
            listed = await self._list()
        except (grpc.aio.AioRpcError, TimeoutError) as error:
            self._log.warning("dispatch_list_failed", error=str(error))
            return None
        for dispatch_id, dispatch in listed.items():
            self._known[dispatch_id] = Dispatch(dispatch)
        self._save_cache()
        return listed

    async def _stop_what_no_longer_runs(self, listed: Mapping[int, ClientDispatch]) -> None:
        """Stop what was broadcast as running and does not run in the service's list.

        After the `Dispatcher` is replaced, the new one announces only what runs in its
        own first fetch: what the old one had started and the service no longer runs
        (deleted, deactivated, ended meanwhile) would otherwise run on forever.
        """
        for dispatch_id, running in list(self._running.items()):
            if dispatch_id in listed:
                now = Dispatch(listed[dispatch_id])
                if _runs(now):
                    continue
                stop = now
            else:
                stop = marked_deleted(running) if _runs(running) else running
            self._log.warning(
                "dispatch_no_longer_runs",
                dispatch_id=dispatch_id,
                deleted=stop.deleted,
            )
            await self._broadcast(stop)

    async def _drift(self) -> Drift:
        """Compare the service's list with what the stream brought; empty on failure."""
        try:
            listed = await self._list()
        except (grpc.aio.AioRpcError, TimeoutError) as error:
            self._log.warning("dispatch_reconcile_failed", error=str(error))
            return Drift()
        missed = frozenset(
            dispatch_id
            for dispatch_id, dispatch in listed.items()
            if (known := self._known.get(dispatch_id)) is None
            or dispatch.update_time > known.update_time
        )
        deleted: set[int] = set()
        ended: set[int] = set()
        for dispatch_id in (self._known.keys() | self._running.keys()) - listed.keys():
            if dispatch_id in self._running or _still_to_run(self._known[dispatch_id]):
                deleted.add(dispatch_id)
            else:
                ended.add(dispatch_id)
        if ended:
            # Ended more than a few seconds ago: the service no longer lists them.
            for dispatch_id in ended:
                del self._known[dispatch_id]
            self._save_cache()
        return Drift(missed, frozenset(deleted))

    async def _release(self, deleted: Iterable[int]) -> None:
        """Stop the deletions the stream missed; ignore the Dispatcher's word on them."""
        for dispatch_id in sorted(deleted):
            known = self._running.get(dispatch_id) or self._known[dispatch_id]
            self._gone[dispatch_id] = known.create_time
            self._known.pop(dispatch_id, None)
            self._log.warning("dispatch_deletion_missed", dispatch_id=dispatch_id)
            if dispatch_id in self._running:
                await self._broadcast(marked_deleted(known))
        self._save_cache()

    def _is_gone(self, dispatch: Dispatch) -> bool:
        """Whether `dispatch` is a deletion the stream missed (ids may be reused)."""
        return self._gone.get(int(dispatch.id)) == dispatch.create_time

    def _remember(self, event: DispatchEvent) -> None:
        """Keep the cache on disk equal to the dispatches the service knows."""
        dispatch = event.dispatch
        if isinstance(event, Deleted):
            self._known.pop(int(dispatch.id), None)
        else:
            self._known[int(dispatch.id)] = dispatch
        self._save_cache()

    def _save_cache(self) -> None:
        """Write the cache; on a disk that refuses, say so once, not on every change.

        A read-only or full disk fails every write, and writes come with every
        dispatch change: the first failure is logged, the next ones only counted (one
        line per `CACHE_LOG_INTERVAL_S` with the count), and the first success after
        them says how many there were. `on_cache_saved` hears of each one.
        """
        path = self._cache_path
        if path is None:
            return
        try:
            cache.save(path, self._known.values())
        except OSError as error:
            problem = f"{path}: {error.strerror or error}"
            if self._on_cache_saved is not None:
                self._on_cache_saved(problem)
            not_logged = self._cache_log.admit(path)
            if not_logged is not None:
                self._log.error(
                    "dispatch_cache_not_saved",
                    path=str(path),
                    error=error.strerror or str(error),
                    failures_not_logged=not_logged,
                    next_report_after_s=CACHE_LOG_INTERVAL_S,
                )
            return
        if self._on_cache_saved is not None:
            self._on_cache_saved(None)
        not_logged = self._cache_log.clear(path)
        if not_logged is not None:
            self._log.info(
                "dispatch_cache_saved_again", path=str(path), failures_not_logged=not_logged
            )

    async def _broadcast(self, dispatch: Dispatch) -> None:
        senders = self._routes.get(dispatch.type, [])
        if _runs(dispatch):
            self._running[int(dispatch.id)] = dispatch
        else:
            self._running.pop(int(dispatch.id), None)
        self._log.info(
            "dispatch_changed",
            dispatch_id=int(dispatch.id),
            type=dispatch.type,
            started=_runs(dispatch),
            deleted=dispatch.deleted,
            dry_run=dispatch.dry_run,
            receivers=len(senders),
        )
        for sender in senders:
            await sender.send(dispatch)
