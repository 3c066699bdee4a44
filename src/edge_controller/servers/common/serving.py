"""Conventions every gRPC server of this project shares.

- `--listen HOST:PORT`; port 0 picks a free port (the CLI then prints
  `listening address=HOST:PORT` as its first stdout line);
- gRPC's port sharing is off, so a stale server on the same port makes the new one
  fail instead of silently sharing the port — with the OS's reason (`BindError`:
  "address already in use"), one line, exit 1; an address that can never be bound
  here (not on this host, a low port without privilege) is bad input, exit 2
  (`bind_exit_code`);
- on shutdown, streams end with UNAVAILABLE, never a clean OK, because the Frequenz
  clients resume only streams that fail;
- TLS is optional: `--tls-cert FILE --tls-key FILE` (a `ServerTls`) serves the same
  port with `grpc.ssl_server_credentials` instead of plain text, and `url` then says
  `?ssl=true` (a client adds `&ssl_root_certificates_path=CA.pem` for a private CA).
"""

from __future__ import annotations

import argparse
import errno
import ipaddress
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, Final, NoReturn, TypeVar

import grpc
import structlog

_T = TypeVar("_T")
_LOG = structlog.get_logger(__name__)
Context = grpc.aio.ServicerContext[Any, Any]

SERVER_OPTIONS: Final = [("grpc.so_reuseport", 0)]
"""Never share a port with a stale server."""


class StartupError(Exception):
    """The server cannot start: a bad flag, key file, database or listen address.

    The command line prints the message and exits with status 2; the message names the
    flag or file, what was expected and what was found.
    """


class ListenAddressError(ValueError):
    """A `--listen` value that is not a `HOST:PORT` we can bind."""


def parse_listen(listen: str) -> tuple[str, int]:
    """Split `HOST:PORT` (port 0 = any free port).

    Raises:
        ListenAddressError: with what was expected and what was given.
    """
    host, sep, port_text = listen.rpartition(":")
    # isdigit() alone admits '²' or '١', which int() refuses or reads as another port.
    digits = port_text.isascii() and port_text.isdigit() and len(port_text) <= 5
    if not sep or not host or not digits or not 0 <= int(port_text) <= 65535:
        raise ListenAddressError(
            f"--listen: expected HOST:PORT with a port 0-65535 (e.g. 127.0.0.1:0), got {listen!r}"
        )
    return host, int(port_text)


class BindError(ListenAddressError, OSError):
    """A well-formed `HOST:PORT` that cannot be bound now: in use, not local, not allowed.

    Carries what the OS said (`errno`, `strerror`) and the `address`; `str()` is one
    line, e.g. `--listen: cannot bind 127.0.0.1:50051: address already in use`, where
    `--listen` is `source`, the flag or config key that named the address.

    Its base is a malformed address, bad input (exit 2). A `BindError` is that too when
    the OS says the address can never be bound by this process (not on this host, a low
    port without privilege), but a failure of the moment (exit 1) when the same command
    may work later (the port is in use); `exit_code` tells which. It is also an
    `OSError`, since that is what it is.
    """

    def __init__(self, address: str, code: int | None, reason: str, *, source: str) -> None:
        """Describe why `address` (named by `source`) cannot be bound."""
        OSError.__init__(self, code, reason)
        self.address = address
        self.reason = reason
        self.source = source

    def __str__(self) -> str:
        """One line: the flag or key, the address, the reason."""
        return f"{self.source}: cannot bind {self.address}: {self.reason}"

    @property
    def exit_code(self) -> int:
        """The command's exit code for this refusal: 2 bad input, 1 runtime failure."""
        return bind_exit_code(self.errno)

    @classmethod
    def from_os_error(cls, address: str, error: OSError, *, source: str) -> BindError:
        """Turn the OS's refusal into a `BindError` with a lower-case reason."""
        reason = (error.strerror or str(error) or "refused").rstrip(".")
        reason = reason[:1].lower() + reason[1:]
        if error.errno == errno.EADDRINUSE:
            reason += " (another process listens there)"
        return cls(address, error.errno, reason, source=source)


_NEVER_BINDABLE: Final = frozenset(
    {
        errno.EACCES,  # a port below 1024 without the privilege
        errno.EPERM,  # the same, or a security module's refusal
        errno.EADDRNOTAVAIL,  # an address that is not on this host
        errno.EAFNOSUPPORT,  # an address family this host lacks (e.g. `[::1]`, no IPv6)
    }
)


def bind_exit_code(error_number: int | None) -> int:
    """The exit code of a command whose address cannot be bound, from the OS's errno.

    2 (bad input) for a refusal that a retry cannot cure: permission (`EACCES`,
    `EPERM`), an address not on this host (`EADDRNOTAVAIL`), a family the host lacks
    (`EAFNOSUPPORT`) — systemd's `RestartPreventExitStatus=2` then stops restarting a
    unit that can never start. 1 (runtime failure, retried) for everything else: the
    port in use (`EADDRINUSE`), an unknown reason (`None`: gRPC's own refusal, a
    resolver failure).
    """
    return 2 if error_number in _NEVER_BINDABLE else 1


def host_has_family(family: socket.AddressFamily) -> bool:
    """Whether this host can open a TCP socket of `family` (IPv6 may be disabled)."""
    try:
        socket.socket(family, socket.SOCK_STREAM).close()
    except OSError:
        return False
    return True


def _wildcard_family(host: str) -> socket.AddressFamily | None:
    """`AF_INET6` for `::`, `AF_INET` for `0.0.0.0`, None for any other host."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    if not address.is_unspecified:
        return None
    return socket.AF_INET6 if address.version == 6 else socket.AF_INET


def check_bindable(
    host: str,
    port: int,
    *,
    source: str = "--listen",
    has_family: Callable[[socket.AddressFamily], bool] = host_has_family,
) -> None:
    """Bind `host:port` with a plain socket and let go, to learn why it cannot be bound.

    gRPC says only "Failed to bind to address" (and writes its own error line to
    stderr); the OS says why: the port is in use, the address is not on this host,
    a low port is not allowed. A socket bound with `SO_REUSEADDR`, as gRPC binds,
    refuses what gRPC would. A host that resolves to several addresses
    (`localhost`) is bindable when one of them is, as for gRPC. Port 0 checks the
    host only. A port taken between this check and gRPC's bind still fails, only
    without the reason.

    A wildcard host (`[::]`, `0.0.0.0`) of a family this host lacks (`has_family`
    says no; IPv6 disabled, say) is not checked: gRPC binds the other family's
    wildcard instead (it tries `::`, then `0.0.0.0`), so that address works for it.

    Raises:
        BindError: no address of `host` can be bound to `port` (or `host` does not
            resolve); the message names `source`, the address and the reason.
    """
    address = f"{host}:{port}"
    bare_host = host.removeprefix("[").removesuffix("]")
    wildcard = _wildcard_family(bare_host)
    if wildcard is not None and not has_family(wildcard):
        return  # gRPC falls back to the other wildcard: let it decide
    try:
        candidates = socket.getaddrinfo(
            bare_host,
            port,
            type=socket.SOCK_STREAM,
            flags=socket.AI_PASSIVE,
        )
    except socket.gaierror as error:  # its errno is a resolver code, not an OS one
        raise BindError(address, None, f"unknown host: {error.strerror}", source=source) from None
    refusals: list[OSError] = []
    for family, kind, protocol, _, socket_address in candidates:
        try:
            with socket.socket(family, kind, protocol) as probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                probe.bind(socket_address)
        except OSError as error:  # also a family this host does not support
            refusals.append(error)
            continue
        return
    if refusals:
        raise BindError.from_os_error(address, refusals[0], source=source)


class TlsFileError(ValueError):
    """A `--tls-cert`/`--tls-key` file that cannot be used; the message names the flag."""


@dataclass(frozen=True, slots=True)
class ServerTls:
    """A server's TLS identity: its PEM certificate chain and private key.

    ```python
    tls = ServerTls.from_files(Path("server.pem"), Path("server.key"))
    SimulatorServer(site, "127.0.0.1:0", tls=tls)   # clients: ?ssl=true&ssl_root_...
    ```

    Server-side TLS only (no client certificates): the dispatch service still wants
    its API key, and the simulator still has no authentication at all.
    """

    certificate_chain: bytes = field(repr=False)
    private_key: bytes = field(repr=False)

    @classmethod
    def from_files(cls, certificate: Path, key: Path) -> ServerTls:
        """Read a PEM certificate chain and its PEM private key.

        Raises:
            TlsFileError: a file cannot be read, is not PEM, does not parse, or the key
                is not the certificate's; the message names the flag (`--tls-cert` or
                `--tls-key`) and the file, never the key itself.
        """
        tls = cls(
            _read_pem("--tls-cert", certificate, "certificate"),
            _read_pem("--tls-key", key, "private key"),
        )
        _check_pair(certificate, key, tls.certificate_chain)
        return tls

    @classmethod
    def from_flags(cls, certificate: Path | None, key: Path | None) -> ServerTls | None:
        """The TLS identity the `--tls-cert`/`--tls-key` flags give, or None for plain text.

        Raises:
            TlsFileError: only one of the two flags, or a file that cannot be used.
        """
        if certificate is None and key is None:
            return None
        if certificate is None or key is None:
            given, missing = (
                ("--tls-cert", "--tls-key") if key is None else ("--tls-key", "--tls-cert")
            )
            raise TlsFileError(f"{given} needs {missing} as well (a certificate and its key)")
        return cls.from_files(certificate, key)

    def credentials(self) -> grpc.ServerCredentials:
        """The gRPC server credentials (no client certificates asked)."""
        return grpc.ssl_server_credentials([(self.private_key, self.certificate_chain)])


def add_tls_arguments(parser: argparse.ArgumentParser) -> None:
    """Add `--tls-cert FILE --tls-key FILE` (both or neither) to a server's flags.

    Read back with `ServerTls.from_flags(args.tls_cert, args.tls_key)`.
    """
    parser.add_argument(
        "--tls-cert",
        type=Path,
        default=None,
        metavar="FILE",
        help="serve TLS with this PEM certificate chain (with --tls-key); default: plain text",
    )
    parser.add_argument(
        "--tls-key", type=Path, default=None, metavar="FILE", help="the certificate's PEM key"
    )


def _read_pem(flag: str, path: Path, what: str) -> bytes:
    """Read a PEM file; `what` is "certificate" or "private key" (its PEM label's end)."""
    try:
        pem = path.read_bytes()
    except OSError as error:
        raise TlsFileError(f"{flag}: cannot read {str(path)!r}: {error.strerror}") from None
    if b"-----BEGIN " not in pem or f"{what.upper()}-----".encode() not in pem:
        raise TlsFileError(f"{flag}: {str(path)!r} holds no PEM {what}")
    return pem


def _check_pair(certificate: Path, key: Path, certificate_pem: bytes) -> None:
    """Parse the certificate and its key with OpenSSL now, as gRPC would at bind.

    gRPC refuses an unusable pair only when the port is added, with three lines of
    its own on stderr and no reason in the exception.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_verify_locations(cadata=certificate_pem.decode("ascii", "replace"))
    except ssl.SSLError:
        raise TlsFileError(
            f"--tls-cert: {str(certificate)!r} holds no certificate that parses"
        ) from None
    try:
        # A key that wants a password gets none (gRPC cannot take one), never a prompt.
        context.load_cert_chain(certificate, key, password=lambda: b"")
    except ssl.SSLError as error:
        if error.reason == "KEY_VALUES_MISMATCH":
            raise TlsFileError(
                f"--tls-key: {str(key)!r} is not the private key of {str(certificate)!r}"
            ) from None
        raise TlsFileError(
            f"--tls-key: {str(key)!r} holds no private key that parses "
            "(expected an unencrypted PEM key)"
        ) from None
    except OSError as error:  # replaced since it was read
        raise TlsFileError(f"--tls-key: cannot read {str(key)!r}: {error.strerror}") from None


def bind(server: grpc.aio.Server, host: str, port: int, tls: ServerTls | None) -> int:
    """Add the listening port, with TLS when given; return the bound port.

    The address is tried with a plain socket first (`check_bindable`), so a busy port
    fails with the OS's reason and without gRPC's own error line on stderr.

    Raises:
        BindError: the address cannot be bound (e.g. the port is taken); the message
            names `--listen`, the address and why.
    """
    check_bindable(host, port)
    address = f"{host}:{port}"
    try:
        bound = (
            server.add_secure_port(address, tls.credentials())
            if tls is not None
            else server.add_insecure_port(address)
        )
    except RuntimeError:
        # Taken between the check and now, or TLS it cannot use: gRPC does not say.
        raise BindError(address, None, _GRPC_REFUSED, source="--listen") from None
    if bound == 0:
        raise BindError(address, None, _GRPC_REFUSED, source="--listen")
    return bound


_GRPC_REFUSED = "gRPC refused it without a reason (see its log line above)"


def client_url(address: str, tls: ServerTls | None) -> str:
    """The URL a Frequenz client connects to `address` with (`?ssl=true` under TLS).

    With a private CA the client adds `&ssl_root_certificates_path=CA.pem`.
    """
    return f"grpc://{address}?ssl={'true' if tls is not None else 'false'}"


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
