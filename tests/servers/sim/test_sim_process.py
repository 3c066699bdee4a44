"""`edge-controller sim` as a black box: its start line, its faults file, its command log."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from frequenz.client.microgrid import InternalError, MicrogridApiClient

from tests.conftest import EXAMPLE_SITE, component_id
from tests.patience import PATIENCE_S

COMMAND = [sys.executable, "-m", "edge_controller.tools.cli", "--log-format", "json"]
INVERTER_A = 10


async def test_a_running_sim_prints_its_start_and_takes_faults_from_its_file(
    tmp_path: Path,
) -> None:
    faults, commands = tmp_path / "faults.toml", tmp_path / "commands.jsonl"
    before = datetime.now(UTC)
    process = await asyncio.create_subprocess_exec(
        *COMMAND,
        "sim",
        "--site",
        str(EXAMPLE_SITE),
        "--faults-file",
        str(faults),
        "--command-log",
        str(commands),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    assert process.stderr is not None
    try:
        async with asyncio.timeout(PATIENCE_S):
            first = (await process.stdout.readline()).decode()
            second = (await process.stdout.readline()).decode()
        listening = re.fullmatch(r"listening address=127\.0\.0\.1:(\d+)\n", first)
        assert listening, first
        started = re.fullmatch(r"started at=(\S+) speed=1\n", second)
        assert started, second
        at = datetime.fromisoformat(started.group(1))
        assert at.utcoffset() == timedelta(0)
        assert before - timedelta(seconds=1) <= at <= datetime.now(UTC)

        client = MicrogridApiClient(f"grpc://127.0.0.1:{listening.group(1)}?ssl=false")
        try:
            await client.set_component_power_active(component_id(INVERTER_A), -1000.0)
            temporary = tmp_path / "faults.tmp"
            temporary.write_text(
                '[[faults]]\ncomponent = 10\nkind = "rpc_error"\nstatus = "INTERNAL"\n'
            )
            os.replace(temporary, faults)
            async with asyncio.timeout(PATIENCE_S):
                while True:
                    try:
                        await client.set_component_power_active(component_id(INVERTER_A), 0.0)
                    except InternalError:
                        break
                    await asyncio.sleep(0.05)
        finally:
            await client.__aexit__(None, None, None)
    finally:
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), PATIENCE_S) == 0
    logs = (await process.stderr.read()).decode()
    assert '"event": "faults_file_applied"' in logs
    assert '"added": ["10 rpc_error INTERNAL"]' in logs
    outcomes = [
        (line["outcome"], line.get("status"))
        for line in map(json.loads, commands.read_text().splitlines())
    ]
    assert outcomes[0] == ("accepted", None)
    assert outcomes[-1] == ("refused", "INTERNAL")
