"""Errors the dispatch service reports, independent of gRPC.

The servicer maps `DispatchError.kind` to a gRPC status code of the same name; the
rules, the queries, the storage and the service never import `grpc`.
"""

from __future__ import annotations

from enum import Enum

from edge_controller.servers.common.serving import RefusalError


class ErrorKind(Enum):
    """What kind of failure a request met, named after the gRPC code it maps to."""

    INVALID_ARGUMENT = "INVALID_ARGUMENT"
    NOT_FOUND = "NOT_FOUND"
    UNAVAILABLE = "UNAVAILABLE"
    INTERNAL = "INTERNAL"


class DispatchError(RefusalError):
    """A request the service refuses, with a message that names the field and the value.

    Example: `DispatchError(ErrorKind.INVALID_ARGUMENT, "recurrence.byminutes[1]:
    expected 0-59, got 60")`.
    """


def invalid(message: str) -> DispatchError:
    """Return an INVALID_ARGUMENT error (a shorthand for the rules)."""
    return DispatchError(ErrorKind.INVALID_ARGUMENT, message)


def not_found(message: str) -> DispatchError:
    """Return a NOT_FOUND error."""
    return DispatchError(ErrorKind.NOT_FOUND, message)


__all__ = ["DispatchError", "ErrorKind", "invalid", "not_found"]
