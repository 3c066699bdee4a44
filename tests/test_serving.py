"""`serving`: why a listen address cannot be bound, and TLS files checked up front."""

from __future__ import annotations

import errno
import socket

import grpc
import pytest

from edge_controller.daemon.metrics import Health, Metrics, MetricsServer
from edge_controller.servers.common.serving import (
    BindError,
    ListenAddressError,
    ServerTls,
    TlsFileError,
    bind,
    bind_exit_code,
    check_bindable,
)
from tests.conftest import ServerTlsFiles


def test_a_busy_port_is_a_bind_error_with_the_os_reason(busy_port: int) -> None:
    with pytest.raises(BindError) as caught:
        check_bindable("127.0.0.1", busy_port)

    error = caught.value
    assert error.errno == errno.EADDRINUSE
    assert error.address == f"127.0.0.1:{busy_port}"
    assert str(error).startswith(
        f"--listen: cannot bind 127.0.0.1:{busy_port}: address already in use"
    )
    # Callers that only ask "can this address be used?" need one except; the CLI
    # tells the two apart (malformed: exit 2, cannot be bound now: exit 1).
    assert isinstance(error, ListenAddressError)
    assert isinstance(error, OSError)


def test_a_free_port_and_port_zero_pass_the_check() -> None:
    check_bindable("127.0.0.1", 0)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free = probe.getsockname()[1]
    check_bindable("127.0.0.1", free)  # a race with another process is possible, not likely


def test_an_unknown_host_names_it() -> None:
    with pytest.raises(BindError, match=r"cannot bind no-such-host\.invalid:0: unknown host"):
        check_bindable("no-such-host.invalid", 0)


@pytest.mark.parametrize(
    ("error_number", "exit_code"),
    [
        (errno.EADDRINUSE, 1),  # busy now, maybe free when systemd restarts us
        (None, 1),  # no reason known (gRPC's own refusal, a resolver failure)
        (errno.EACCES, 2),  # a port below 1024 without the privilege
        (errno.EPERM, 2),
        (errno.EADDRNOTAVAIL, 2),  # an address that is not on this host
        (errno.EAFNOSUPPORT, 2),  # e.g. [::1] on a host without IPv6
    ],
    ids=lambda value: errno.errorcode.get(value, str(value)) if isinstance(value, int) else "",
)
def test_what_a_retry_cannot_cure_is_bad_input_the_rest_a_runtime_failure(
    error_number: int | None, exit_code: int
) -> None:
    assert bind_exit_code(error_number) == exit_code
    refused = OSError(error_number, "Some reason") if error_number else OSError("x")
    assert BindError.from_os_error("h:1", refused, source="--listen").exit_code == exit_code


def test_a_busy_port_for_real_exits_1(busy_port: int) -> None:
    with pytest.raises(BindError) as caught:
        check_bindable("127.0.0.1", busy_port)
    assert caught.value.exit_code == 1


def _no_socket_at_all(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if anything resolves or opens a socket (so nothing is bound)."""

    def forbidden(*_: object, **__: object) -> None:
        raise AssertionError("check_bindable probed the address")

    monkeypatch.setattr(socket, "getaddrinfo", forbidden)
    monkeypatch.setattr(socket, "socket", forbidden)


@pytest.mark.parametrize(
    ("host", "lacking"),
    [("[::]", socket.AF_INET6), ("::", socket.AF_INET6), ("0.0.0.0", socket.AF_INET)],
)
def test_a_wildcard_of_a_family_the_host_lacks_is_left_to_grpc(
    monkeypatch: pytest.MonkeyPatch, host: str, lacking: socket.AddressFamily
) -> None:
    # gRPC binds `::`, else `0.0.0.0`, for either wildcard: `--listen [::]:50051` works
    # on a host without IPv6, so the check must not refuse it. No IPv6 needs to be
    # missing here: the family check is injected, and nothing is bound.
    asked: list[socket.AddressFamily] = []

    def has_family(family: socket.AddressFamily) -> bool:
        asked.append(family)
        return family != lacking

    _no_socket_at_all(monkeypatch)
    check_bindable(host, 50051, has_family=has_family)
    assert asked == [lacking]


def test_a_wildcard_of_a_family_the_host_has_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    _no_socket_at_all(monkeypatch)  # the probe starts with the resolver: it must run
    with pytest.raises(AssertionError, match="probed the address"):
        check_bindable("[::]", 50051, has_family=lambda _family: True)


def test_only_a_wildcard_consults_the_family_check() -> None:
    def has_family(family: socket.AddressFamily) -> bool:
        raise AssertionError(f"asked about {family!r} for a specific address")

    check_bindable("127.0.0.1", 0, has_family=has_family)


async def test_grpc_bind_refuses_a_busy_port_before_grpc_tries(busy_port: int) -> None:
    server = grpc.aio.server()
    try:
        with pytest.raises(BindError, match="address already in use"):
            bind(server, "127.0.0.1", busy_port, None)
    finally:
        await server.stop(None)


async def test_the_metrics_server_names_its_config_key(busy_port: int) -> None:
    server = MetricsServer(f"127.0.0.1:{busy_port}", Metrics(), Health(lambda: True))

    with pytest.raises(BindError) as caught:
        await server.start()
    assert str(caught.value).startswith(
        f"metrics.listen: cannot bind 127.0.0.1:{busy_port}: address already in use"
    )


def test_a_key_of_another_certificate_is_refused_before_grpc_sees_it(
    server_tls_files: ServerTlsFiles,
) -> None:
    cert, key, other_key = server_tls_files

    assert ServerTls.from_files(cert, key).private_key == key.read_bytes()
    with pytest.raises(TlsFileError, match=f"--tls-key: '{other_key}' is not the private key"):
        ServerTls.from_files(cert, other_key)
