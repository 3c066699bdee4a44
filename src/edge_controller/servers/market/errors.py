"""Errors the local market reports, independent of gRPC.

The servicer maps `MarketError.kind` to the gRPC status code of the same name; the
model, the clearing, the order rules and the exchange never import `grpc`.
"""

from __future__ import annotations

from enum import Enum

from edge_controller.servers.common.serving import RefusalError


class ErrorKind(Enum):
    """What kind of failure a request met, named after the gRPC code it maps to."""

    INVALID_ARGUMENT = "INVALID_ARGUMENT"
    """The request itself is wrong (a field's value), whatever the market's state."""
    FAILED_PRECONDITION = "FAILED_PRECONDITION"
    """The request is well formed but the market's state refuses it (gate closed,
    order no longer active)."""
    NOT_FOUND = "NOT_FOUND"
    """An order or a gridpool this market does not hold."""
    UNAVAILABLE = "UNAVAILABLE"
    """The market is shutting down, or a stream fell too far behind."""
    UNIMPLEMENTED = "UNIMPLEMENTED"
    """A part of the Electricity Trading API this local market does not serve."""


class MarketError(RefusalError):
    """A request the market refuses, with a message naming the field and the value.

    Example: `MarketError(ErrorKind.INVALID_ARGUMENT, "order.quantity.mw: expected a
    multiple of 0.1 MW, got 0.25")`.
    """


def invalid(message: str) -> MarketError:
    """Return an INVALID_ARGUMENT error."""
    return MarketError(ErrorKind.INVALID_ARGUMENT, message)


def failed_precondition(message: str) -> MarketError:
    """Return a FAILED_PRECONDITION error."""
    return MarketError(ErrorKind.FAILED_PRECONDITION, message)


def not_found(message: str) -> MarketError:
    """Return a NOT_FOUND error."""
    return MarketError(ErrorKind.NOT_FOUND, message)


__all__ = ["ErrorKind", "MarketError", "failed_precondition", "invalid", "not_found"]
