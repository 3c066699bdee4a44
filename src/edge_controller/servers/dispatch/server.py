"""The local Dispatch API server: `grpc.aio`, one SQLite file, API keys.

It follows the conventions every server of this project shares (`serving.py`):
`--listen 127.0.0.1:0` and a first stdout line `listening address=HOST:PORT`, no
port sharing, streams ending with UNAVAILABLE on shutdown, optional TLS
(`--tls-cert/--tls-key`; the API key is still required).
"""

from __future__ import annotations

import asyncio
import gc
from pathlib import Path
from typing import Final

import grpc
import structlog
from frequenz.api.dispatch.v1 import dispatch_pb2_grpc as pb_grpc

from edge_controller.common.clock import Clock
from edge_controller.servers.common.api_keys import KeyAuthInterceptor
from edge_controller.servers.common.serving import (
    SERVER_OPTIONS,
    BindError,
    ServerTls,
    StartupError,
)
from edge_controller.servers.common.serving import ListenAddressError as BaseListenAddressError
from edge_controller.servers.common.shell import ManagedServer
from edge_controller.servers.dispatch.service import DispatchService
from edge_controller.servers.dispatch.servicer import DispatchServicer
from edge_controller.servers.dispatch.storage import DispatchStore

_LOG = structlog.get_logger("edge_controller.servers.dispatch")
MAX_REQUEST_BYTES: Final = 512 * 1024
"""The largest request gRPC accepts (RESOURCE_EXHAUSTED beyond, before any decoding):
a create with the largest payload that can be valid (`convert.MAX_PAYLOAD_WIRE_BYTES`,
300 KiB) fits; a 3.3 MB one is refused by grpcio before it reaches Python."""


YOUNG_GENERATION_OBJECTS: Final = 20_000
"""The collector's first threshold in a process that is this server alone (CPython: 700)."""


def fit_collector_to_streams() -> None:
    """Keep the garbage collector's full passes away from a server feeding many streams.

    Each event keeps a few objects per stream reader alive while it is written (the
    gRPC send, the reader's next wait): about 4 500 with 1 000 readers (measured). With CPython's
    first threshold of 700 every event ran several young collections that caught them
    alive and promoted them, and about every 100 events the promoted ones forced a full
    collection of the whole process — 130 000 objects with 10 000 dispatches in memory,
    50-60 ms with the event loop stopped, in which a create waited (issue 16: the
    benchmark's create p99). With a first threshold above that transient they die
    young; what exists at start (modules, the stored dispatches) is frozen out of every
    full collection. A collection still runs as the process grows: nothing leaks.
    """
    gc.collect()  # freeze no garbage
    gc.freeze()
    _, middle, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_GENERATION_OBJECTS, middle, oldest)


class ListenAddressError(StartupError, BaseListenAddressError):
    """A `--listen` address that cannot be bound."""


class DispatchServer(ManagedServer):
    """A running Dispatch API server: `async with DispatchServer(db, keys=...) as server:`.

    `keys` None serves without authentication (lab use; a warning is logged); a set
    of keys makes every call need one of them as metadata `key`. `microgrid_ids`
    None serves any microgrid id; a set refuses the others with NOT_FOUND. `clock`
    (default: the wall clock) is the service's "now": create/update times and the
    "start time not in the past" rule. `tls` (default: plain text) serves with
    that certificate and key; clients then connect with `?ssl=true` (and
    `&ssl_root_certificates_path=CA.pem` for a private CA). `owns_process` (the
    `dispatch-server` command) lets it fit the process's garbage collector to serving
    many streams once its dispatches are loaded (`fit_collector_to_streams`); a server
    sharing a process with others (tests, the demo) leaves the collector alone.
    """

    def __init__(
        self,
        db_path: Path | str,
        listen: str = "127.0.0.1:0",
        *,
        keys: frozenset[str] | None,
        microgrid_ids: frozenset[int] | None = None,
        clock: Clock | None = None,
        tls: ServerTls | None = None,
        owns_process: bool = False,
    ) -> None:
        """Prepare (not yet start) a server for the database at `db_path` on `listen`.

        Raises:
            ListenAddressError: `listen` is not `HOST:PORT`.
            ValueError: `keys` is an empty set (it would refuse every call).
        """
        if keys is not None and not keys:
            raise ValueError(
                "keys: an empty set would refuse every call; pass None to serve without keys"
            )
        super().__init__(listen, tls)
        self.db_path = Path(db_path)
        self._keys = keys
        self._microgrid_ids = microgrid_ids
        self._clock = clock
        self._owns_process = owns_process
        self._service: DispatchService | None = None
        self._server: grpc.aio.Server | None = None

    @property
    def service(self) -> DispatchService:
        """The service behind the API (after `start`): tests read and wait on it."""
        if self._service is None:
            raise RuntimeError("DispatchServer.service: the server is not started")
        return self._service

    async def start(self) -> None:
        """Open the database, bind, and serve.

        Raises:
            StoreError: the database cannot be opened (see `DispatchStore`).
            BindError: the address cannot be bound (e.g. the port is taken).
        """

        def open_service() -> DispatchService:
            store = DispatchStore(self.db_path)
            try:
                return DispatchService(store, clock=self._clock, microgrid_ids=self._microgrid_ids)
            except BaseException:
                store.close()
                raise

        service = await asyncio.to_thread(open_service)
        if self._owns_process:
            fit_collector_to_streams()
        interceptors = [KeyAuthInterceptor(self._keys)] if self._keys is not None else []
        server = grpc.aio.server(
            options=[*SERVER_OPTIONS, ("grpc.max_receive_message_length", MAX_REQUEST_BYTES)],
            interceptors=interceptors,
        )
        pb_grpc.add_MicrogridDispatchServiceServicer_to_server(DispatchServicer(service), server)
        try:
            self._bind(server)
        except BindError:
            await service.close()
            raise
        await server.start()
        self._server = server
        self._service = service
        _LOG.info(
            "dispatch_server_started",
            address=self.address,
            db=str(self.db_path),
            dispatches=len(service),
            microgrid_ids=sorted(self._microgrid_ids) if self._microgrid_ids is not None else "any",
            auth="keys" if self._keys is not None else "off",
            key_count=len(self._keys) if self._keys is not None else 0,
            tls=self.tls is not None,
        )
        if self._keys is None:
            _LOG.warning(
                "auth_disabled", detail="every client is accepted without an API key (--no-auth)"
            )

    async def stop(self, grace_s: float = 1.0) -> None:
        """End streams with UNAVAILABLE, let calls in flight finish, close the database.

        A write in progress gets `grace_s` to commit or roll back; one stuck longer (a
        dying disk) is left to the store's daemon thread, so that a stop always ends
        within about twice `grace_s` (systemd's stop timeout is 10 s).
        """
        if self._service is not None:
            await self._service.close(timeout_s=grace_s)
        if self._server is not None:
            await asyncio.sleep(0)  # let streams deliver their UNAVAILABLE
            await self._server.stop(grace_s)
            self._server = None
            _LOG.info("dispatch_server_stopped", address=self.address)


__all__ = [
    "MAX_REQUEST_BYTES",
    "YOUNG_GENERATION_OBJECTS",
    "DispatchServer",
    "ListenAddressError",
    "fit_collector_to_streams",
]
