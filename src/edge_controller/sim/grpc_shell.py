"""What both servicers share: error mapping, timestamps, and stream plumbing."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from typing import NoReturn, TypeVar

import grpc
import structlog
from google.protobuf.timestamp_pb2 import Timestamp

from edge_controller.sim.errors import SimError

_T = TypeVar("_T")
_LOG = structlog.get_logger("edge_controller.sim")


def timestamp(moment: datetime) -> Timestamp:
    """Return `moment` as a protobuf Timestamp."""
    message = Timestamp()
    message.FromDatetime(moment)
    return message


def finite_or_none(value: float) -> float | None:
    """Return `value`, or None for ±inf (the API leaves an unbounded end unset)."""
    return value if math.isfinite(value) else None


async def abort(context: grpc.aio.ServicerContext[object, object], error: SimError) -> NoReturn:
    """End the call with the status code the error names and its message."""
    await context.abort(grpc.StatusCode[error.kind.value], error.message)
    raise AssertionError("context.abort returned")  # pragma: no cover


async def unary(
    context: grpc.aio.ServicerContext[object, object], call: Callable[[], Awaitable[_T]]
) -> _T:
    """Run a unary operation, turning `SimError` into its status code.

    Any other exception is a simulator bug: logged with its traceback and reported as
    INTERNAL, so a bad request can never take the server down.
    """
    try:
        return await call()
    except SimError as error:
        await abort(context, error)
    except Exception as error:
        _LOG.exception("rpc_failed")
        await context.abort(grpc.StatusCode.INTERNAL, f"simulator error: {error!r}")
        raise AssertionError("context.abort returned") from error  # pragma: no cover


async def streamed(
    context: grpc.aio.ServicerContext[object, object], items: AsyncIterator[_T]
) -> AsyncIterator[_T]:
    """Relay a stream, ending it with the status code of a `SimError`."""
    try:
        async for item in items:
            yield item
    except SimError as error:
        await abort(context, error)
