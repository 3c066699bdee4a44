"""Conventions every gRPC server of this project shares.

- `--listen HOST:PORT`; port 0 picks a free port (the CLI then prints
  `listening address=HOST:PORT` as its first stdout line);
- gRPC's port sharing is off, so a stale server on the same port makes the new one
  fail instead of silently sharing the port;
- on shutdown, streams end with UNAVAILABLE, never a clean OK, because the Frequenz
  clients resume only streams that fail.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from enum import Enum
from typing import Any, Final, NoReturn, TypeVar

import grpc
import structlog

_T = TypeVar("_T")
_LOG = structlog.get_logger(__name__)
Context = grpc.aio.ServicerContext[Any, Any]

SERVER_OPTIONS: Final = [("grpc.so_reuseport", 0)]
"""Never share a port with a stale server."""


class ListenAddressError(ValueError):
    """A `--listen` value that is not a `HOST:PORT` we can bind."""


def parse_listen(listen: str) -> tuple[str, int]:
    """Split `HOST:PORT` (port 0 = any free port).

    Raises:
        ListenAddressError: with what was expected and what was given.
    """
    host, sep, port_text = listen.rpartition(":")
    if not sep or not host or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ListenAddressError(
            f"--listen: expected HOST:PORT with a port 0-65535 (e.g. 127.0.0.1:0), got {listen!r}"
        )
    return host, int(port_text)


class RefusalError(Exception):
    """A request a server refuses: `kind.value` names the gRPC status, `message` says why.

    Each server's domain error (the simulator's `SimError`, the dispatch service's
    `DispatchError`) derives from it, so one piece of code maps both to statuses.
    """

    def __init__(self, kind: Enum, message: str) -> None:
        """Create a refusal of `kind` carrying a human-readable `message`."""
        super().__init__(message)
        self.kind = kind
        self.message = message


async def abort(context: Context, error: RefusalError) -> NoReturn:
    """End the call with the status code the error names and its message."""
    await context.abort(grpc.StatusCode[error.kind.value], error.message)
    raise AssertionError("context.abort returned")  # pragma: no cover


async def unary(context: Context, call: Callable[[], Awaitable[_T]], *, service: str) -> _T:
    """Run a unary operation, turning a `RefusalError` into its status code.

    Any other exception is a bug of `service`: logged with its traceback and reported
    as INTERNAL, so a bad request can never take the server down.
    """
    try:
        return await call()
    except RefusalError as error:
        await abort(context, error)
    except Exception as error:
        _LOG.exception("rpc_failed")
        await context.abort(grpc.StatusCode.INTERNAL, f"{service} error: {error!r}")
        raise AssertionError("context.abort returned") from error  # pragma: no cover


async def streamed(
    context: Context, items: AsyncIterator[_T], *, service: str
) -> AsyncIterator[_T]:
    """Relay a stream, ending it with the status code of a `RefusalError`.

    Any other exception is a bug: logged and reported as INTERNAL, as for unary calls.
    """
    try:
        async for item in items:
            yield item
    except RefusalError as error:
        await abort(context, error)
    except Exception as error:
        _LOG.exception("stream_failed")
        await context.abort(grpc.StatusCode.INTERNAL, f"{service} error: {error!r}")
