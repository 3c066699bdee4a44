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
from collections.abc import Mapping, Sequence
from pathlib import Path

import structlog
from frequenz.channels import Receiver, Sender, merge, select, selected_from
from frequenz.client.common.microgrid import MicrogridId
from frequenz.dispatch import Deleted, Dispatch, Dispatcher, DispatchEvent
from frequenz.sdk.actor import Actor

from edge_controller.dispatching import cache


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


class DispatchBroadcastingActor(Actor):
    """Forwards dispatch running-state changes to the actors of each dispatch type."""

    def __init__(
        self,
        dispatcher: Dispatcher,
        routes: Mapping[str, Sequence[Sender[Dispatch]]],
        *,
        cache_path: Path | None = None,
        name: str = "dispatch_broadcasting",
    ) -> None:
        """Route each dispatch type in `routes` to its senders; keep `cache_path` current."""
        super().__init__(name=name)
        self._dispatcher = dispatcher
        self._routes = {kind: list(senders) for kind, senders in routes.items()}
        self._cache_path = cache_path
        self._known: dict[int, Dispatch] = {}
        self._log = structlog.get_logger(__name__).bind(actor=name)

    async def _run(self) -> None:
        running: list[Receiver[Dispatch]] = [
            await self._dispatcher.new_running_state_event_receiver(kind) for kind in self._routes
        ]
        lifecycle = [self._dispatcher.new_lifecycle_events_receiver(kind) for kind in self._routes]
        self._log.info("dispatch_types_routed", types=sorted(self._routes))
        running_changes = merge(*running)
        lifecycle_events = merge(*lifecycle)
        async for selected in select(running_changes, lifecycle_events):
            if selected_from(selected, running_changes):
                await self._broadcast(selected.message)
            elif selected_from(selected, lifecycle_events):
                self._remember(selected.message)

    def _remember(self, event: DispatchEvent) -> None:
        """Keep the cache on disk equal to the dispatches the service knows."""
        dispatch = event.dispatch
        if isinstance(event, Deleted):
            self._known.pop(int(dispatch.id), None)
        else:
            self._known[int(dispatch.id)] = dispatch
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
