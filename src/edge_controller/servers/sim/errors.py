"""Errors the simulator's operations report, independent of gRPC.

The servicers map `SimError.kind` to a gRPC status code; the model and the service
never import `grpc`.
"""

from __future__ import annotations

from enum import Enum

from edge_controller.servers.common.serving import RefusalError


class ErrorKind(Enum):
    """What kind of failure a request met, mirroring the gRPC codes it maps to."""

    NOT_FOUND = "NOT_FOUND"
    INVALID_ARGUMENT = "INVALID_ARGUMENT"
    OUT_OF_RANGE = "OUT_OF_RANGE"
    FAILED_PRECONDITION = "FAILED_PRECONDITION"
    UNAVAILABLE = "UNAVAILABLE"
    INTERNAL = "INTERNAL"
    DEADLINE_EXCEEDED = "DEADLINE_EXCEEDED"
    RESOURCE_EXHAUSTED = "RESOURCE_EXHAUSTED"
    UNKNOWN = "UNKNOWN"
    ABORTED = "ABORTED"


class SimError(RefusalError):
    """A request the simulated site refuses, with the reason a client can act on."""
