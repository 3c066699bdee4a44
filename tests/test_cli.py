"""The `edge-controller` command line, run as operators run it: as a process."""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
import sys
from pathlib import Path

from frequenz.client.microgrid import MicrogridApiClient

from edge_controller import __version__
from tests.conftest import EXAMPLE_SITE

COMMAND = [sys.executable, "-m", "edge_controller.tools.cli"]


def run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*COMMAND, *args], capture_output=True, text=True, timeout=timeout, check=False
    )


def test_version() -> None:
    result = run("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"edge-controller {__version__}"


async def test_sim_prints_its_address_first_serves_and_stops_on_sigterm() -> None:
    process = await asyncio.create_subprocess_exec(
        *COMMAND,
        "--log-format",
        "json",
        "sim",
        "--site",
        str(EXAMPLE_SITE),
        "--listen",
        "127.0.0.1:0",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    assert process.stderr is not None
    first = (await asyncio.wait_for(process.stdout.readline(), 30)).decode()
    match = re.fullmatch(r"listening address=127\.0\.0\.1:(\d+)\n", first)
    assert match, first
    client = MicrogridApiClient(f"grpc://127.0.0.1:{match.group(1)}?ssl=false")
    try:
        assert len(list(await client.list_components())) == 14
    finally:
        await client.__aexit__(None, None, None)
    process.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(process.wait(), 30) == 0
    logs = (await process.stderr.read()).decode()
    assert '"event": "simulator_started"' in logs
    assert '"event": "simulator_stopped"' in logs


def test_bad_site_file_stops_start_up_with_a_precise_message(tmp_path: Path) -> None:
    site = tmp_path / "my-site.toml"
    text = EXAMPLE_SITE.read_text().replace('capacity = "400 kWh"', "capacity = -5", 1)
    site.write_text(text)
    result = run("sim", "--site", str(site), "--listen", "127.0.0.1:0")
    assert result.returncode == 2
    assert re.search(
        r"my-site\.toml: components\[\d+\]\.capacity: expected energy > 0, got -5", result.stderr
    ), result.stderr
    assert result.stdout == ""


def test_bad_flags_name_the_flag() -> None:
    listen = run("sim", "--site", str(EXAMPLE_SITE), "--listen", "localhost")
    assert listen.returncode == 2
    assert "--listen: expected HOST:PORT" in listen.stderr
    speed = run("sim", "--site", str(EXAMPLE_SITE), "--speed", "-3")
    assert speed.returncode == 2
    assert "--speed: expected a number > 0, got '-3'" in speed.stderr
    level = run("--log-level", "loud", "demo")
    assert level.returncode == 2
    assert "--log-level: expected one of" in level.stderr


def test_demo_runs_a_dispatch_schedule_through_the_controller_and_summarises() -> None:
    result = run("demo", "--duration", "10", timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("listening address=127.0.0.1:")
    summary = result.stdout.split("\nsummary\n", 1)[1]
    assert "rejected 1" in summary  # the malformed payload, while the others ran
    assert "started 3" in summary  # discharge, dry run, charge
    assert "0 outside their bounds" in summary
    socs = {
        name: (float(start), float(end))
        for name, start, end in re.findall(r"(Battery \w): SoC ([\d.]+)% -> ([\d.]+)%", summary)
    }
    assert len(socs) == 4
    # The fullest battery discharged; the emptiest was charged: the spread shrank.
    assert socs["Battery B"][1] < socs["Battery B"][0]
    assert socs["Battery C"][1] > socs["Battery C"][0]
    spread = re.search(r"SoC spread ([\d.]+) pp -> ([\d.]+) pp", summary)
    assert spread is not None
    assert float(spread.group(2)) < float(spread.group(1))
