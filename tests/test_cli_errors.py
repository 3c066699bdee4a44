"""A user's mistakes at the command line: one line on stderr, the right exit code.

Every case runs `edge-controller` as a process, as a user would, and asserts what the
README promises: exit 2 for bad input (a flag, a file, a key), 1 for a runtime failure
(an address that cannot be bound now), and in both cases exactly one line on stderr
that names the cause — no traceback, no usage dump, no second copy of the message and
no line of gRPC's own. `--log-level error` keeps start-up's info and warning events
(not what these tests are about) out of stderr; an error logged besides the printed
line would still show up as a second line.

Ports are held by the test itself (a listening socket on 127.0.0.1, port picked by the
OS), so "busy" is certain and nothing else is touched. Nothing waits on a timer: each
command exits by itself; the subprocess time-out only bounds a hung one.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import EXAMPLE_SITE, ServerTlsFiles
from tests.patience import PATIENCE_S

COMMAND = [sys.executable, "-m", "edge_controller.tools.cli"]
QUIET = ["--log-level", "error"]
KEY = "0123456789abcdef0123456789abcdef"


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run `edge-controller ARGS`; a command that hangs fails the test after a while."""
    return subprocess.run(
        [*COMMAND, *args],
        capture_output=True,
        text=True,
        timeout=4 * PATIENCE_S,  # start-up imports are slow on a loaded 2-core machine
        check=False,
        stdin=subprocess.DEVNULL,
        cwd=cwd,
    )


def one_line(result: subprocess.CompletedProcess[str], code: int) -> str:
    """Assert the exit code and a stderr of exactly one line; return that line."""
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == code, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def write_config(
    directory: Path,
    extra: str = "",
    *,
    metrics: str = "127.0.0.1:0",
    microgrid_url: str = "grpc://127.0.0.1:1?ssl=false",
) -> Path:
    """A controller config that validates; `extra` is appended (a table of its own)."""
    (directory / "dispatch.key").write_text(KEY + "\n")
    config = directory / "controller.toml"
    config.write_text(
        "[microgrid]\n"
        f'url = "{microgrid_url}"\n'
        "id = 1\n"
        "[dispatch]\n"
        'url = "grpc://127.0.0.1:1?ssl=false"\n'
        'key_file = "dispatch.key"\n'
        "startup_timeout = 1\n"
        "[metrics]\n"
        f'listen = "{metrics}"\n'
        "[[use_cases]]\n"
        'kind = "battery_power"\n' + extra
    )
    return config


# ------------------------------------------------------------------ busy ports


@pytest.mark.parametrize(
    "command",
    [
        ["sim", "--site", str(EXAMPLE_SITE)],
        ["dispatch-server", "--db", "DB", "--no-auth"],
        ["market-server", "--no-auth"],
        ["weather-server"],
    ],
    ids=lambda command: command[0],
)
def test_a_busy_grpc_port_is_one_line_naming_address_and_cause_exit_1(
    tmp_path: Path, busy_port: int, command: list[str]
) -> None:
    args = [str(tmp_path / "d.db") if a == "DB" else a for a in command]
    result = run(*QUIET, *args, "--listen", f"127.0.0.1:{busy_port}")

    line = one_line(result, 1)
    assert line.startswith(f"edge-controller {command[0]}: --listen: "), line
    assert f"cannot bind 127.0.0.1:{busy_port}: address already in use" in line
    assert result.stdout == ""  # no `listening address=` line


def test_run_with_a_busy_metrics_port_is_one_line_exit_1(tmp_path: Path, busy_port: int) -> None:
    config = write_config(tmp_path, metrics=f"127.0.0.1:{busy_port}")

    # Printed like every other command's problem, not logged as a `start_failed` event.
    line = one_line(run(*QUIET, "run", "--config", str(config)), 1)
    assert line == (
        f"edge-controller run: metrics.listen: cannot bind 127.0.0.1:{busy_port}: "
        "address already in use (another process listens there)"
    )


# ------------------------------------------------------------------ files


def test_demo_with_a_missing_site_file_is_bad_input_like_sim(tmp_path: Path) -> None:
    missing = tmp_path / "missing.toml"
    for command in ("demo", "sim"):
        line = one_line(run(*QUIET, command, "--site", str(missing)), 2)
        assert line == (
            f"edge-controller {command}: {missing}: cannot read the file: No such file or directory"
        )


def test_every_problem_of_a_site_file_is_a_line_of_its_own(tmp_path: Path) -> None:
    site = tmp_path / "site.toml"
    site.write_text(
        "x = 1\n" + EXAMPLE_SITE.read_text().replace("[microgrid]", "[microgrid]\ny = 2", 1)
    )
    result = run(*QUIET, "sim", "--site", str(site))

    assert "Traceback" not in result.stderr
    assert result.returncode == 2, result.stderr
    first, second = result.stderr.splitlines()  # exactly two, each naming file and key
    assert first.startswith(f"edge-controller sim: {site.name}: x: unknown key"), first
    assert second.startswith(f"edge-controller sim: {site.name}: microgrid.y: unknown key")


def test_sim_with_an_unwritable_command_log_is_bad_input(tmp_path: Path) -> None:
    log = tmp_path / "no-such-dir" / "commands.jsonl"
    result = run(*QUIET, "sim", "--site", str(EXAMPLE_SITE), "--command-log", str(log))

    line = one_line(result, 2)
    assert line == f"edge-controller sim: --command-log: cannot append to '{log}': " + (
        "No such file or directory"
    )


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "cannot read: No such file or directory"),
        (b"", "no keys"),
        (b"\xff\xfe not text\n", "cannot read"),
    ],
    ids=["missing", "empty", "not-utf8"],
)
@pytest.mark.parametrize("command", ["dispatch-server", "market-server"])
def test_a_bad_keys_file_is_one_line_naming_it_exit_2(
    tmp_path: Path, command: str, content: bytes | None, expected: str
) -> None:
    keys = tmp_path / "keys.txt"
    if content is not None:
        keys.write_bytes(content)
    db = ["--db", str(tmp_path / "d.db")] if command == "dispatch-server" else []
    result = run(*QUIET, command, *db, "--keys-file", str(keys), "--listen", "127.0.0.1:0")

    line = one_line(result, 2)
    assert line.startswith(f"edge-controller {command}: --keys-file {keys}: {expected}"), line


def test_unusable_tls_files_are_one_line_naming_the_flag_exit_2(
    tmp_path: Path, server_tls_files: ServerTlsFiles
) -> None:
    cert, key, other_key = server_tls_files
    garbage = tmp_path / "garbage.pem"
    garbage.write_text(
        "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n"
        "-----BEGIN PRIVATE KEY-----\nnot base64\n-----END PRIVATE KEY-----\n"
    )
    cases = [
        (other_key, key, f"--tls-cert: '{other_key}' holds no PEM certificate"),
        (garbage, key, f"--tls-cert: '{garbage}' holds no certificate that parses"),
        (cert, garbage, f"--tls-key: '{garbage}' holds no private key that parses"),
        (cert, other_key, f"--tls-key: '{other_key}' is not the private key of '{cert}'"),
    ]
    for certificate, private_key, expected in cases:
        result = run(
            *QUIET,
            "sim",
            "--site",
            str(EXAMPLE_SITE),
            "--listen",
            "127.0.0.1:0",
            "--tls-cert",
            str(certificate),
            "--tls-key",
            str(private_key),
        )
        line = one_line(result, 2)
        assert line.startswith(f"edge-controller sim: {expected}"), line


# ------------------------------------------------------------------ the daemon's config


def test_run_says_each_config_problem_once_even_on_a_console(tmp_path: Path) -> None:
    config = write_config(tmp_path, '[controls]\nmode = "drive"\n')
    result = run("--log-format", "console", *QUIET, "run", "--config", str(config))

    line = one_line(result, 2)
    assert line == (
        "edge-controller run: controller.toml: controls.mode: "
        "expected 'control' or 'observe', got 'drive'"
    )


def test_run_with_a_missing_config_file_is_one_line_exit_2(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.toml"
    line = one_line(run(*QUIET, "run", "--config", str(missing)), 2)
    assert line == f"edge-controller run: {missing}: cannot read: No such file or directory"


def test_run_with_a_missing_key_file_names_the_key_exit_2(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    (tmp_path / "dispatch.key").unlink()

    line = one_line(run(*QUIET, "run", "--config", str(config)), 2)
    assert line.startswith("edge-controller run: controller.toml: dispatch.key_file: "), line
    assert f"cannot read '{tmp_path / 'dispatch.key'}'" in line
    assert "No such file or directory" in line


def test_a_missing_ca_file_in_a_url_is_a_config_problem(tmp_path: Path) -> None:
    ca = tmp_path / "missing-ca.pem"
    config = write_config(
        tmp_path, microgrid_url=f"grpc://127.0.0.1:1?ssl=true&ssl_root_certificates_path={ca}"
    )
    expected = (
        f"controller.toml: microgrid.url: ssl_root_certificates_path: "
        f"cannot read '{ca}': No such file or directory"
    )

    line = one_line(run(*QUIET, "run", "--config", str(config)), 2)
    assert line == f"edge-controller run: {expected}"
    check = run(*QUIET, "check-config", str(config))
    assert check.returncode == 2
    assert check.stdout.splitlines() == ["1 problem:", f"  {expected}"]


def test_check_config_exits_2_on_a_bad_config_and_0_on_a_good_one(tmp_path: Path) -> None:
    bad = write_config(tmp_path, '[controls]\npower_limit = "lots"\n')
    result = run(*QUIET, "check-config", str(bad))
    assert result.returncode == 2, result.stdout
    assert result.stdout.startswith("1 problem:\n  controller.toml: controls.power_limit: ")
    assert "Traceback" not in result.stderr

    good = write_config(tmp_path)
    assert run(*QUIET, "check-config", str(good)).returncode == 0


# ------------------------------------------------------------------ flags


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--log-format", "xml", "sim"], "edge-controller: argument --log-format: invalid choice"),
        (["--log-level", "loud", "sim", "--site", "S"], "edge-controller: --log-level: expected"),
        (["frobnicate"], "edge-controller: argument COMMAND: invalid choice: 'frobnicate'"),
        (["sim"], "edge-controller sim: the following arguments are required: --site"),
        (["sim", "--site", "S", "--speed", "-3"], "edge-controller sim: --speed: expected"),
        (["demo", "--duration", "0"], "edge-controller demo: --duration: expected a number > 0"),
        (
            ["dispatch-server", "--db", "D", "--microgrid-id", "0"],
            "edge-controller dispatch-server: --microgrid-id: expected an id > 0, got '0'",
        ),
        (
            ["dispatch-server", "--db", "D", "--keys-file", "K", "--no-auth"],
            "edge-controller dispatch-server: argument --no-auth: not allowed with",
        ),
        (
            ["dispatch", "create", "--power", "5"],
            "edge-controller dispatch create: argument --power",
        ),
        (["weather-server", "--seed", "x"], "edge-controller weather-server: argument --seed"),
        (
            ["market-server", "--no-auth", "--listen", "localhost"],
            "edge-controller market-server: --listen: ",
        ),
        (["scenario", "--out", "O"], "edge-controller scenario: the following arguments are"),
        (["run"], "edge-controller run: the following arguments are required: --config"),
        (
            ["check-config", "--reference", "--reference-out", "R"],
            "edge-controller check-config: argument --reference-out: not allowed with "
            "argument --reference",
        ),
        (
            ["check-config", "C", "--drop-in-dir", "NOWHERE"],
            "edge-controller check-config: --drop-in-dir: expected a directory, got 'NOWHERE'",
        ),
    ],
    ids=lambda value: " ".join(value) if isinstance(value, list) else "",
)
def test_a_bad_flag_is_one_line_naming_it_exit_2(args: list[str], expected: str) -> None:
    args = [str(EXAMPLE_SITE) if a == "S" else a for a in args]
    result = run(*args)

    line = one_line(result, 2)
    assert line.startswith(expected), line
    assert "usage:" not in result.stderr
