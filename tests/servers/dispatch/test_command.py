"""`edge-controller dispatch-server`, run as operators run it: as a process."""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
import sys
from pathlib import Path

import grpc
import pytest
from frequenz.client.common.microgrid import MicrogridId
from frequenz.client.dispatch import DispatchApiClient

from tests.servers.dispatch.conftest import KEY

COMMAND = [sys.executable, "-m", "edge_controller.tools.cli", "--log-format", "json"]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*COMMAND, "dispatch-server", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_without_keys_it_refuses_to_start(tmp_path: Path) -> None:
    result = run("--db", str(tmp_path / "d.sqlite"), "--listen", "127.0.0.1:0")
    assert result.returncode == 2
    assert "API keys are required: pass --keys-file FILE" in result.stderr
    assert "--no-auth" in result.stderr
    assert result.stdout == ""
    assert not (tmp_path / "d.sqlite").exists()


def test_bad_input_names_the_flag_or_file(tmp_path: Path) -> None:
    db = str(tmp_path / "d.sqlite")
    missing = run("--db", db, "--keys-file", str(tmp_path / "nope"))
    assert missing.returncode == 2
    assert (
        f"--keys-file {tmp_path / 'nope'}: cannot read: No such file or directory" in missing.stderr
    )

    empty = tmp_path / "keys"
    empty.write_text("# only a comment\n\n")
    result = run("--db", db, "--keys-file", str(empty))
    assert result.returncode == 2
    assert f"--keys-file {empty}: no keys" in result.stderr

    both = run("--db", db, "--keys-file", str(empty), "--no-auth")
    assert both.returncode == 2
    assert "not allowed with argument" in both.stderr

    listen = run("--db", db, "--no-auth", "--listen", "localhost")
    assert listen.returncode == 2
    assert "--listen: expected HOST:PORT" in listen.stderr

    grid = run("--db", db, "--no-auth", "--microgrid-id", "0")
    assert grid.returncode == 2
    assert "--microgrid-id: expected an id > 0, got '0'" in grid.stderr

    not_a_db = tmp_path / "notes.txt"
    not_a_db.write_text("hello " * 1000)
    result = run("--db", str(not_a_db), "--no-auth")
    assert result.returncode == 2
    assert f"--db {not_a_db}: not a dispatch database" in result.stderr


async def serve(*args: str) -> tuple[asyncio.subprocess.Process, str]:
    process = await asyncio.create_subprocess_exec(
        *COMMAND,
        "dispatch-server",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    first = (await asyncio.wait_for(process.stdout.readline(), 30)).decode()
    match = re.fullmatch(r"listening address=(127\.0\.0\.1:\d+)\n", first)
    assert match, first
    return process, match.group(1)


async def test_no_auth_prints_its_address_first_serves_and_stops_on_sigterm(tmp_path: Path) -> None:
    process, address = await serve(
        "--db", str(tmp_path / "d.sqlite"), "--listen", "127.0.0.1:0", "--no-auth"
    )
    client = DispatchApiClient(server_url=f"grpc://{address}?ssl=false", auth_key="anything")
    try:
        assert [list(page) async for page in client.list(MicrogridId(1))] == [[]]
    finally:
        await client.disconnect()
    process.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(process.wait(), 30) == 0
    assert process.stderr is not None
    logs = (await process.stderr.read()).decode()
    assert '"event": "auth_disabled"' in logs
    assert '"level": "warning"' in logs
    assert '"event": "dispatch_server_stopped"' in logs


async def test_with_a_keys_file_it_checks_keys_and_never_logs_them(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.write_text(f"# lab keys\n{KEY}\n\n  second-key  \n")
    process, address = await serve(
        "--db", str(tmp_path / "d.sqlite"), "--keys-file", str(keys), "--microgrid-id", "1", "2"
    )
    good = DispatchApiClient(server_url=f"grpc://{address}?ssl=false", auth_key="second-key")
    bad = DispatchApiClient(server_url=f"grpc://{address}?ssl=false", auth_key=KEY + "x")
    try:
        assert [list(page) async for page in good.list(MicrogridId(2))] == [[]]
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            [page async for page in bad.list(MicrogridId(1))]
        assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    finally:
        await good.disconnect()
        await bad.disconnect()
    process.send_signal(signal.SIGINT)
    assert await asyncio.wait_for(process.wait(), 30) == 0
    assert process.stderr is not None
    logs = (await process.stderr.read()).decode()
    assert '"event": "request_unauthenticated"' in logs
    assert '"key_count": 2' in logs
    assert KEY not in logs
    assert "second-key" not in logs
