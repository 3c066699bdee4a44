"""`run` with a `metrics.listen` it cannot bind: one printed line, exit 1 or 2 by cause.

Nothing is bound: `MetricsServer.start` is replaced by one that raises the `BindError`
the OS's answer would give (the real busy port is in `tests/test_cli_errors.py`).
"""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from edge_controller.common.systemd import Notifier
from edge_controller.config.files import load
from edge_controller.daemon.metrics import MetricsServer
from edge_controller.daemon.run import Daemon
from edge_controller.servers.common.serving import BindError
from tests.harness import KEY


@pytest.mark.parametrize(
    ("error_number", "reason", "exit_code"),
    [
        (errno.EADDRINUSE, "Address already in use", 1),  # systemd retries
        (errno.EACCES, "Permission denied", 2),  # a low port: retrying cannot help
        (errno.EADDRNOTAVAIL, "Cannot assign requested address", 2),  # not on this host
    ],
    ids=["EADDRINUSE", "EACCES", "EADDRNOTAVAIL"],
)
async def test_a_metrics_address_that_cannot_be_bound_is_one_printed_line(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    error_number: int,
    reason: str,
    exit_code: int,
) -> None:
    async def refuse(self: MetricsServer) -> None:
        raise BindError.from_os_error(
            "127.0.0.1:80", OSError(error_number, reason), source="metrics.listen"
        )

    monkeypatch.setattr(MetricsServer, "start", refuse)
    (tmp_path / "key").write_text(KEY)
    path = tmp_path / "controller.toml"
    path.write_text(
        '[microgrid]\nurl = "grpc://127.0.0.1:1?ssl=false"\nid = 1\n'
        '[dispatch]\nurl = "grpc://127.0.0.1:1?ssl=false"\nkey_file = "key"\n'
        '[metrics]\nlisten = "127.0.0.1:80"\n'
        '[[use_cases]]\nkind = "battery_power"\n'
    )
    daemon = Daemon(path, load(path), notifier=Notifier(None))
    capsys.readouterr()

    assert await daemon.run() == exit_code
    lowered = reason[:1].lower() + reason[1:]
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"edge-controller run: metrics.listen: cannot bind 127.0.0.1:80: {lowered}"
        + (" (another process listens there)" if error_number == errno.EADDRINUSE else "")
    )
