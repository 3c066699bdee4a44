"""API keys of the gRPC servers: the keys file, and the one place a request's key is checked.

Shared by the dispatch service and the market server (`--keys-file`, `--no-auth`).

`frequenz-client-dispatch` (through `frequenz-client-base`'s authentication
interceptor) sends its `auth_key` as the gRPC metadata entry `key` on every call,
unary and streaming. `KeyAuthInterceptor` refuses a call whose `key` is missing or
not one of the configured keys with UNAUTHENTICATED, before any servicer code runs.
The optional HMAC signature (`sign_secret`: metadata `ts`, `nonce`, `sig`) is not
checked.

Keys are compared in constant time and never logged: a refusal logs the method,
whether a key was sent at all, and the peer's address. Once per peer address (the
port left out: a client that reconnects is the same client) and minute: further
refusals are counted and the next line says how many were not logged
(`refusals_not_logged`), so a client that retries a wrong key thousands of times
writes one line a minute, not thousands.
"""

from __future__ import annotations

import hmac
import os
import stat
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, TypeAlias

import grpc
import structlog

from edge_controller.common.log_limit import LogLimiter
from edge_controller.servers.common.serving import StartupError

_LOG = structlog.get_logger(__name__)
METADATA_KEY = "key"
"""The metadata entry the Frequenz clients put the API key in."""
REFUSAL_LOG_INTERVAL_S = 60.0
"""Refused requests from one peer address are logged at most once per this."""


class KeyFileError(StartupError):
    """A keys file that cannot be read or holds no usable key; the message names it."""


def parse_keys(text: str, source: str) -> frozenset[str]:
    """Read keys: one per line; blank lines and lines starting with `#` are ignored.

    Raises:
        KeyFileError: for a line that is not one word of printable ASCII (gRPC
            metadata cannot carry anything else), or when no key is left. The message
            gives the line number, never the line.
    """
    keys = set()
    for number, line in enumerate(text.splitlines(), start=1):
        key = line.strip()
        if not key or key.startswith("#"):
            continue
        if not (key.isascii() and key.isprintable() and " " not in key and "\t" not in key):
            raise KeyFileError(
                f"{source}: line {number}: expected one key of printable ASCII without spaces "
                "(comments go on their own line, starting with #)"
            )
        keys.add(key)
    if not keys:
        raise KeyFileError(
            f"{source}: no keys (one key per line; blank lines and # comments are ignored)"
        )
    return frozenset(keys)


def load_keys(path: Path) -> frozenset[str]:
    """Read the keys file at `path` (see `parse_keys`), checking who else may use it.

    Its keys are bearer secrets: whoever reads one may create dispatches, so may
    command the site's batteries. As sshd's `StrictModes` does for the files that
    say who may log in, a file that others may *write* is refused: anyone could add
    a key of their own. One that others may *read* is accepted with a warning naming
    the file, its mode and the fix (OpenSSH refuses a private key in that state; the
    shipped unit always passes a 0400 credential copy, so this matters outside
    systemd, where lab scripts write keys with the default umask).

    Raises:
        KeyFileError: the file cannot be read, others may write it, or it holds no
            usable key.
    """
    source = f"--keys-file {path}"
    try:
        with path.open("rb") as file:
            mode = os.fstat(file.fileno()).st_mode
            text = file.read().decode("utf-8")
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
        raise KeyFileError(f"{source}: cannot read: {reason}") from None
    permissions = stat.S_IMODE(mode)
    if permissions & (stat.S_IWGRP | stat.S_IWOTH):
        raise KeyFileError(
            f"{source}: mode {permissions:04o} lets others write it, so anyone could add "
            f"a key; expected 0600 (chmod 600 {path})"
        )
    if permissions & (stat.S_IRGRP | stat.S_IROTH):
        _LOG.warning(
            "keys_file_readable_by_others",
            file=str(path),
            mode=f"{permissions:04o}",
            fix=f"chmod 600 {path}",
        )
    return parse_keys(text, source)


def key_is_valid(given: str | None, keys: frozenset[str]) -> bool:
    """Tell whether `given` is one of `keys`, comparing every key in constant time."""
    if given is None:
        return False
    candidate = given.encode()
    valid = False
    for key in keys:
        valid |= hmac.compare_digest(candidate, key.encode())
    return valid


def _metadata_key(metadata: Sequence[tuple[str, str | bytes]] | None) -> str | None:
    for name, value in metadata or ():
        if name == METADATA_KEY:
            return value if isinstance(value, str) else value.decode(errors="replace")
    return None


_Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"


def _peer_address(peer: str) -> str:
    """`ipv4:10.0.0.7:53211` -> `ipv4:10.0.0.7` (`ipv6:[::1]:5` -> `ipv6:[::1]`)."""
    if peer.startswith(("ipv4:", "ipv6:")):
        return peer.rsplit(":", 1)[0]
    return peer


def _refusal(handler: _Handler, message: str, on_refused: Callable[[str], None]) -> _Handler:
    """Build a handler of the same kind as `handler` that ends the call UNAUTHENTICATED.

    `on_refused` is told the peer (only the handler's context knows it).
    """

    async def refuse(request: object, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        on_refused(context.peer())
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, message)

    if handler.unary_unary:
        make: Callable[..., _Handler] = grpc.unary_unary_rpc_method_handler
    elif handler.unary_stream:
        make = grpc.unary_stream_rpc_method_handler
    elif handler.stream_unary:
        make = grpc.stream_unary_rpc_method_handler
    else:
        make = grpc.stream_stream_rpc_method_handler
    return make(
        refuse,
        request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )


class KeyAuthInterceptor(grpc.aio.ServerInterceptor):
    """Let a call through only with a valid API key in the `key` metadata entry."""

    def __init__(self, keys: frozenset[str]) -> None:
        """Accept exactly `keys` (at least one)."""
        if not keys:
            raise ValueError("KeyAuthInterceptor needs at least one key")
        self._keys = keys
        self._refusals = LogLimiter(REFUSAL_LOG_INTERVAL_S)

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[_Handler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> _Handler | None:
        """Return the method's handler, or one that refuses the call."""
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        given = _metadata_key(handler_call_details.invocation_metadata)
        if key_is_valid(given, self._keys):
            return handler
        method = handler_call_details.method
        key_sent = given is not None

        def log(peer: str) -> None:
            address = _peer_address(peer)
            not_logged = self._refusals.admit(address)
            if not_logged is not None:
                _LOG.warning(
                    "request_unauthenticated",
                    method=method,
                    key_sent=key_sent,
                    peer=address,
                    refusals_not_logged=not_logged,
                )

        message = (
            "missing API key: send it as gRPC metadata 'key'"
            if given is None
            else "invalid API key"
        )
        return _refusal(handler, message, log)


__all__ = [
    "METADATA_KEY",
    "KeyAuthInterceptor",
    "KeyFileError",
    "key_is_valid",
    "load_keys",
    "parse_keys",
]
