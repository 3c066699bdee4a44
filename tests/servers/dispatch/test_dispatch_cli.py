"""`dispatch-cli` (frequenz-client-dispatch's console script) against the server."""

from __future__ import annotations

import asyncio
import sys
from datetime import timedelta
from pathlib import Path

from frequenz.client.common.microgrid import MicrogridId
from frequenz.client.dispatch import DispatchApiClient
from frequenz.client.dispatch.types import TargetIds

from edge_controller.servers.dispatch.server import DispatchServer
from tests.servers.dispatch.conftest import KEY

DISPATCH_CLI = Path(sys.executable).parent / "dispatch-cli"


async def dispatch_cli(server: DispatchServer, *args: str, key: str = KEY) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        DISPATCH_CLI,
        "--url",
        server.url,
        "--auth-key",
        key,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(60):
        out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_create_then_list_shows_it(server: DispatchServer, client: DispatchApiClient) -> None:
    code, out, err = await dispatch_cli(
        server, "create", "1", "LAB-TEST", "7,8", "in 1 hour", "15m", "-p", '{"power_w": -5000}'
    )
    assert code == 0, err
    assert "Dispatch created." in out

    code, out, err = await dispatch_cli(server, "--raw", "list", "1")
    assert code == 0, err
    assert "type='LAB-TEST'" in out
    assert "payload={'power_w': -5000.0}" in out
    assert "1 dispatches, 0 filtered out." in out

    [page] = [list(page) async for page in client.list(MicrogridId(1))]
    [created] = page
    assert created.target == TargetIds(7, 8)
    # dispatch-cli measures "15m" from a later "now" than it parsed: 899 or 900 s.
    assert created.duration is not None
    assert timedelta(seconds=899) <= created.duration <= timedelta(minutes=15)

    code, out, err = await dispatch_cli(
        server, "update", "1", str(int(created.id)), "--active", "false"
    )
    assert code == 0, err
    assert not (await client.get(microgrid_id=MicrogridId(1), dispatch_id=created.id)).active


async def test_a_refusal_reaches_the_operator(server: DispatchServer) -> None:
    code, _, err = await dispatch_cli(
        server, "create", "1", "X", "BATTERY", "NOW", "15m", "-f", "hourly", "--by-minute", "61"
    )
    assert code == 1
    assert "recurrence.byminutes[0]: expected 0-59, got 61" in err
    code, _, err = await dispatch_cli(server, "list", "1", key="wrong-key")
    assert code == 1
    assert "UNAUTHENTICATED" in err
