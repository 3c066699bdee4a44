"""What both servicers share: error mapping, timestamps, and stream plumbing.

Everything here is independent of the API version: it deals in the simulator's
types, in gRPC itself, and in protobuf messages only through what every version's
messages have in common (enum wrappers, optional `lower`/`upper` ends, `Empty`).
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Iterable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal, Protocol, TypeVar

import grpc
import structlog
from google.protobuf import empty_pb2
from google.protobuf.timestamp_pb2 import Timestamp

from edge_controller.power.bounds import Range
from edge_controller.servers.common import serving
from edge_controller.servers.sim.errors import ErrorKind, SimError
from edge_controller.servers.sim.service import SimService, StateAction

if TYPE_CHECKING:
    from google.protobuf.internal.enum_type_wrapper import _EnumTypeWrapper

_T = TypeVar("_T")
_K = TypeVar("_K")
_V = TypeVar("_V")
_M = TypeVar("_M")
_E = TypeVar("_E", bound=int)
_LOG = structlog.get_logger("edge_controller.servers.sim")

Context = grpc.aio.ServicerContext[object, object]
"""The servicer context, typed loosely: the servicers only use it to end calls."""

EPOCH = datetime(2024, 1, 1, tzinfo=UTC)
"""When the simulated components went into operation (their lifetime's start)."""


def timestamp(moment: datetime) -> Timestamp:
    """Return `moment` as a protobuf Timestamp."""
    message = Timestamp()
    message.FromDatetime(moment)
    return message


def finite_or_none(value: float) -> float | None:
    """Return `value`, or None for ±inf (the API leaves an unbounded end unset)."""
    return value if math.isfinite(value) else None


def unary(
    context: grpc.aio.ServicerContext[object, object], call: Callable[[], Awaitable[_T]]
) -> Awaitable[_T]:
    """`serving.unary` for the simulator: refusals → statuses, bugs → INTERNAL."""
    return serving.unary(context, call, service="simulator")


def streamed(
    context: grpc.aio.ServicerContext[object, object], items: AsyncIterator[_T]
) -> AsyncIterator[_T]:
    """`serving.streamed` for the simulator."""
    return serving.streamed(context, items, service="simulator")


def selected(allowed: Collection[_T], value: _T) -> bool:
    """Apply one list filter of a List* request: an empty list filters nothing.

    Both APIs combine their filter lists with AND and the items of one list with OR.
    """
    return not allowed or value in allowed


def lookup(table: Mapping[_K, _V], key: _K, what: str) -> _V:
    """Return `table[key]`, or refuse the request naming what was not understood.

    Raises:
        SimError: INVALID_ARGUMENT for a key the simulator does not support.
    """
    try:
        return table[key]
    except KeyError:
        raise SimError(ErrorKind.INVALID_ARGUMENT, f"unsupported {what} {key}") from None


def enum_value(enum: _EnumTypeWrapper[_E], name: str, fallback: _E) -> _E:
    """Return the member of a protobuf enum called `name`, or `fallback`.

    Error codes arrive as free-form names (from site files and fault injection), so
    a name the API does not know must degrade to its "unknown" member, not fail.
    """
    return enum.Value(name) if name in enum.keys() else fallback  # noqa: SIM118


def bounds_messages(ranges: Iterable[Range], make: Callable[..., _M]) -> list[_M]:
    """Build one API bounds message per range; an infinite end is left unset.

    `make` is the API version's `Bounds` message class: the fields are the same.
    """
    return [make(lower=finite_or_none(r.lower), upper=finite_or_none(r.upper)) for r in ranges]


class OptionalEnds(Protocol):
    """A bounds message of any API version: two optional float ends."""

    @property
    def lower(self) -> float:
        """The lower end (meaningful only when set)."""
        ...

    @property
    def upper(self) -> float:
        """The upper end (meaningful only when set)."""
        ...

    def HasField(self, field_name: Literal["lower", "upper"]) -> bool:  # noqa: N802
        """Tell whether an end is set (protobuf's presence test)."""
        ...


def requested_ranges(bounds: Iterable[OptionalEnds]) -> list[tuple[float | None, float | None]]:
    """Read bounds from a request: an unset end means unbounded on that side."""
    return [
        (
            b.lower if b.HasField("lower") else None,
            b.upper if b.HasField("upper") else None,
        )
        for b in bounds
    ]


async def change_state(
    service: SimService, context: Context, component_id: int, action: StateAction
) -> empty_pb2.Empty:
    """Run a start/standby/stop/acknowledge request, as every API version offers them."""

    async def call() -> empty_pb2.Empty:
        await service.change_state(component_id, action)
        return empty_pb2.Empty()

    return await unary(context, call)


__all__ = [
    "EPOCH",
    "Context",
    "OptionalEnds",
    "bounds_messages",
    "change_state",
    "enum_value",
    "finite_or_none",
    "lookup",
    "requested_ranges",
    "selected",
    "streamed",
    "timestamp",
    "unary",
]
