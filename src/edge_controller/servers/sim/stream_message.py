"""One telemetry stream's response message, updated in place from sample to sample.

Building a protobuf message from Python costs far more than setting a few floats on
one that exists: at 10 Hz and 220 streams, building was the largest share of the
simulator's own CPU. A stream's messages keep the same shape from tick to tick (the
same metrics, the same number of bounds, the same states), so each stream builds its
message once and then only writes the new times, values and bounds' ends into it;
a new shape (a state change, bounds split by an exclusion band) builds it again.

Each stream owns its message, and a stream's generator resumes only after gRPC has
serialised what it yielded, so an update never changes bytes that are still to be
sent. Nothing is shared or kept beyond the stream: the memory goes with it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, Literal, Protocol, TypeVar

from google.protobuf.timestamp_pb2 import Timestamp

from edge_controller.servers.sim.metrics import Metric
from edge_controller.servers.sim.model import ComponentSample, MetricValue, StateCode

_M = TypeVar("_M")


class _Ends(Protocol):
    """A bounds message of any API version: two optional float ends."""

    lower: float
    upper: float

    def ClearField(self, field_name: Literal["lower", "upper"]) -> None:  # noqa: N802
        """Unset an end (an unbounded side)."""
        ...


class _Value(Protocol):
    """A `SimpleMetricValue` of any API version."""

    value: float


@dataclass(frozen=True, slots=True)
class MessageParts:
    """The parts of a built message that change from sample to sample, in order.

    `values[i]` and `bounds[i]` belong to the i-th metric the stream keeps;
    `times` are every timestamp that carries the sample's time.
    """

    times: Sequence[Timestamp]
    values: Sequence[_Value]
    bounds: Sequence[Sequence[_Ends]]


_Shape = tuple[tuple[tuple[Metric, int], ...], tuple[StateCode, ...], tuple[str, ...]]


class StreamMessage(Generic[_M]):
    """A stream's message: built for a new shape, updated in place otherwise."""

    def __init__(
        self,
        build: Callable[[ComponentSample], _M],
        parts: Callable[[_M], MessageParts],
        keep: Callable[[Metric], bool],
    ) -> None:
        """Update messages that `build` makes and `parts` takes apart.

        `keep` says which metrics the stream's filter keeps, as `build` does.
        """
        self._build = build
        self._parts = parts
        self._keep = keep
        self._shape: _Shape | None = None
        self._message: _M | None = None
        self._changing: MessageParts | None = None
        self.builds = 0
        """How many times the message was built whole (the rest were updates)."""

    def update(self, sample: ComponentSample) -> _M:
        """Return the message for `sample` (the same object, updated, when it can)."""
        kept = [value for value in sample.metrics if self._keep(value.metric)]
        shape: _Shape = (
            tuple((value.metric, len(value.bounds)) for value in kept),
            sample.states,
            sample.errors,
        )
        if self._message is None or shape != self._shape or self._changing is None:
            self._message = self._build(sample)
            self._changing = self._parts(self._message)
            self._shape = shape
            self.builds += 1
            return self._message
        _write(self._changing, sample, kept)
        return self._message


def _write(parts: MessageParts, sample: ComponentSample, kept: list[MetricValue]) -> None:
    stamp = Timestamp()
    stamp.FromDatetime(sample.sampled_at)
    seconds, nanos = stamp.seconds, stamp.nanos
    for time in parts.times:
        time.seconds = seconds
        time.nanos = nanos
    for value, message, ends in zip(kept, parts.values, parts.bounds, strict=True):
        message.value = value.value
        for bounds, message_bounds in zip(value.bounds, ends, strict=True):
            _set_end(message_bounds, "lower", bounds.lower)
            _set_end(message_bounds, "upper", bounds.upper)


def _set_end(bounds: _Ends, end: Literal["lower", "upper"], value: float) -> None:
    """Write one end; an infinite end is left unset, as the API documents."""
    if math.isfinite(value):
        setattr(bounds, end, value)
    else:
        bounds.ClearField(end)
