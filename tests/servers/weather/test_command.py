"""`weather-server`: its flags, and the server run as a process (first line, SIGTERM)."""

from __future__ import annotations

import argparse
import asyncio
import re
import signal
import subprocess
import sys
from datetime import timedelta

import pytest
from frequenz.client.weather import Client, ForecastFeature, Location

from edge_controller.common.compat import close_weather_client
from edge_controller.servers.weather.command import (
    WeatherServerStartupError,
    add_weather_server_parser,
    build_weather_server,
    parse_duration,
)

# What `edge-controller weather-server` does once cli.py wires it in: logging on
# stderr, then the subcommand.
LAUNCHER = """
import argparse, sys
from edge_controller.common import logging as logs
from edge_controller.servers.weather.command import add_weather_server_parser, run_weather_server
parser = argparse.ArgumentParser(prog="edge-controller")
add_weather_server_parser(parser.add_subparsers(dest="command", required=True))
args = parser.parse_args(sys.argv[1:])
logs.configure("info", "json")
sys.exit(run_weather_server(args))
"""
COMMAND = [sys.executable, "-c", LAUNCHER, "weather-server"]


def parse(*args: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="edge-controller", exit_on_error=False)
    add_weather_server_parser(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(["weather-server", *args])


def test_flags_and_defaults() -> None:
    args = parse()
    assert (args.listen, args.resolution, args.horizon, args.issue_interval, args.seed) == (
        "127.0.0.1:0",
        timedelta(minutes=15),
        timedelta(hours=48),
        timedelta(hours=1),
        1,
    )
    args = parse("--resolution", "1h", "--horizon", "2d", "--issue-interval", "30m", "--seed", "7")
    server = build_weather_server(args)
    settings = server.service.settings
    assert settings.resolution == timedelta(hours=1)
    assert settings.horizon == timedelta(days=2)
    assert settings.issue_interval == timedelta(minutes=30)
    assert settings.seed == 7
    assert server.tls is None
    assert server.url.endswith("?ssl=false")


def test_durations() -> None:
    assert parse_duration("1h30m") == timedelta(minutes=90)
    assert parse_duration("90s") == timedelta(seconds=90)
    for text in ("15", "", "0m", "1x"):
        with pytest.raises(argparse.ArgumentTypeError, match="expected a duration"):
            parse_duration(text)


def test_settings_out_of_range_name_the_flag() -> None:
    with pytest.raises(
        WeatherServerStartupError, match=r"--horizon: expected .*10 days, got 11 days"
    ):
        build_weather_server(parse("--horizon", "11d"))
    with pytest.raises(WeatherServerStartupError, match=r"--issue-interval: expected 1s..1d"):
        build_weather_server(parse("--issue-interval", "2d"))
    with pytest.raises(WeatherServerStartupError, match=r"--listen: expected HOST:PORT"):
        build_weather_server(parse("--listen", "nowhere"))
    with pytest.raises(WeatherServerStartupError, match=r"--tls-cert needs --tls-key as well"):
        build_weather_server(parse("--tls-cert", "server.pem"))


def test_bad_flags_exit_2_with_a_message() -> None:
    result = subprocess.run(
        [*COMMAND, "--resolution", "2d"], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 2
    assert "edge-controller weather-server: --resolution: expected 1s..1d" in result.stderr
    assert result.stdout == ""


async def test_the_server_process_prints_its_address_serves_and_stops_on_sigterm() -> None:
    process = await asyncio.create_subprocess_exec(
        *COMMAND,
        "--listen",
        "127.0.0.1:0",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    try:
        async with asyncio.timeout(30):
            first = (await process.stdout.readline()).decode()
        match = re.fullmatch(r"listening address=(127\.0\.0\.1:\d+)\n", first)
        assert match, first
        client = Client(f"grpc://{match.group(1)}?ssl=false")
        try:
            receiver = await client.stream_live_forecast(
                [Location(48.1, 11.6, "DE")], [ForecastFeature.TEMPERATURE_2_METRE]
            )
            async with asyncio.timeout(10):
                rows = (await receiver.receive()).flatten()
        finally:
            await close_weather_client(client)
        assert len(rows) == 193
    finally:
        process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(10):
            code = await process.wait()
    assert code == 0
