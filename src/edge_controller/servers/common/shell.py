"""What every server command shares: `async with`, and the serve-until-signal loop.

The simulator, the dispatch service, the weather and the market servers differ in
what they serve, not in how they run: `ManagedServer` gives each `async with` from
its `start`/`stop`, and `serve_until_signal` is the one loop behind every
`edge-controller <server>` command — start, print `listening address=HOST:PORT` as
the first stdout line (scripts and tests read it), run until SIGINT/SIGTERM, stop;
a server that cannot start says why in one line on stderr. Under a unit with
`WatchdogSec=`, the loop pings systemd's watchdog while it serves
(`systemd.watchdog_pings`, from the event loop: a loop that is stuck stops the pings,
and systemd restarts the server).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Protocol, Self

import grpc

from edge_controller.common.systemd import Notifier, watchdog_pings
from edge_controller.common.waiting import cancel_and_wait_all
from edge_controller.servers.common.serving import (
    BindError,
    ServerTls,
    bind,
    client_url,
    parse_listen,
)


class ManagedServer:
    """A gRPC server on `HOST:PORT` (TLS optional) with `start()`/`stop()`.

    Holds what every server of the project shares: the listen address (checked at
    construction), the TLS setting, the port actually bound, `address` and `url`, and
    `async with`. Subclasses build their `grpc.aio.Server` and bind it with `_bind`.
    """

    def __init__(self, listen: str, tls: ServerTls | None) -> None:
        """Check `listen`; nothing is bound before `start`.

        Raises:
            ListenAddressError: `listen` is not `HOST:PORT`.
        """
        self._host, self._port = parse_listen(listen)
        self.tls = tls
        self.port = 0

    @property
    def address(self) -> str:
        """`HOST:PORT` the server listens on (after `start`: the port really bound)."""
        return f"{self._host}:{self.port}"

    @property
    def url(self) -> str:
        """The URL a Frequenz client connects with (`?ssl=true` under TLS)."""
        return client_url(self.address, self.tls)

    def _bind(self, server: grpc.aio.Server) -> None:
        """Bind `server` to the listen address (plain or TLS); remember the port."""
        self.port = bind(server, self._host, self._port, self.tls)

    async def start(self) -> None:
        """Start serving."""
        raise NotImplementedError

    async def stop(self) -> None:
        """Stop serving."""
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        """Start the server."""
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Stop the server."""
        await self.stop()


class Serving(Protocol):
    """What `serve_until_signal` needs of a server."""

    @property
    def address(self) -> str:
        """`HOST:PORT` it is bound to."""
        ...

    async def start(self) -> None:
        """Start serving."""
        ...

    async def stop(self) -> None:
        """Stop serving."""
        ...


async def wait_for_signal() -> None:
    """Return on SIGINT or SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(Exception):
                loop.remove_signal_handler(signum)


def print_error(command: str, error: BaseException) -> None:
    """Print why `edge-controller <command>` cannot go on: a line per problem, on stderr.

    Each line starts with `edge-controller <command>: `, also the further problems of
    a file that has several (a site file, a market file), so each reads on its own.
    """
    for line in str(error).splitlines() or [repr(error)]:
        print(f"edge-controller {command}: {line}", file=sys.stderr)


def serve_until_signal(
    command: str,
    server: Serving,
    startup_errors: tuple[type[Exception], ...],
    more_lines: Callable[[], Iterable[str]] = tuple,
) -> int:
    """Run `edge-controller <command>`'s server; return the exit code.

    After `listening address=HOST:PORT`, the lines `more_lines()` gives are printed
    (the simulator's `started at=...`).

    0 after SIGINT/SIGTERM; 1 when the address cannot be bound now (`BindError`: a
    busy port); 2 for one of `startup_errors` (bad input: a file, a flag) or an
    address that can never be bound here (not on this host, a low port without
    privilege: `BindError.exit_code`). Either way one line on stderr says why, no
    traceback.
    """

    async def serve() -> int:
        try:
            await server.start()
        except BindError as error:
            print_error(command, error)
            return error.exit_code
        except startup_errors as error:
            print_error(command, error)
            return 2
        print(f"listening address={server.address}", flush=True)
        for line in more_lines():
            print(line, flush=True)
        with Notifier.from_environment() as notifier:
            pings = asyncio.create_task(watchdog_pings(notifier), name="watchdog")
            try:
                await wait_for_signal()
            finally:
                await cancel_and_wait_all([pings])
                await server.stop()
        return 0

    try:
        return asyncio.run(serve())
    except KeyboardInterrupt:
        return 130
