"""`serve_until_signal`: a server that cannot start says why in one line, exit 1 or 2."""

from __future__ import annotations

import errno

import pytest

from edge_controller.servers.common.serving import BindError, ListenAddressError
from edge_controller.servers.common.shell import serve_until_signal


class _Refused:
    """A server whose `start` raises what it was given (nothing is bound)."""

    address = "127.0.0.1:80"

    def __init__(self, error: Exception) -> None:
        self.error = error

    async def start(self) -> None:
        raise self.error

    async def stop(self) -> None:
        raise AssertionError("a server that did not start is not stopped")


@pytest.mark.parametrize(
    ("error", "exit_code", "message"),
    [
        (
            BindError.from_os_error(
                "127.0.0.1:80", OSError(errno.EADDRINUSE, "Address in use"), source="--listen"
            ),
            1,
            "--listen: cannot bind 127.0.0.1:80: address in use (another process listens there)",
        ),
        (
            BindError.from_os_error(
                "127.0.0.1:80", OSError(errno.EACCES, "Permission denied"), source="--listen"
            ),
            2,
            "--listen: cannot bind 127.0.0.1:80: permission denied",
        ),
        (
            BindError.from_os_error(
                "192.0.2.1:80",
                OSError(errno.EADDRNOTAVAIL, "Cannot assign requested address"),
                source="--listen",
            ),
            2,
            "--listen: cannot bind 192.0.2.1:80: cannot assign requested address",
        ),
        (ListenAddressError("--listen: expected HOST:PORT"), 2, "--listen: expected HOST:PORT"),
    ],
    ids=["EADDRINUSE", "EACCES", "EADDRNOTAVAIL", "malformed"],
)
def test_a_server_that_cannot_start_is_one_line_with_its_exit_code(
    capsys: pytest.CaptureFixture[str], error: Exception, exit_code: int, message: str
) -> None:
    assert serve_until_signal("sim", _Refused(error), (ListenAddressError,)) == exit_code
    captured = capsys.readouterr()
    assert captured.err == f"edge-controller sim: {message}\n"
    assert captured.out == ""  # no `listening address=` line
