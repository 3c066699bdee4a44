"""The `market-server` subcommand: flags, refusals with exit code 2, and a real run."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from frequenz.client.electricity_trading import (
    Client,
    Currency,
    DeliveryArea,
    DeliveryDuration,
    DeliveryPeriod,
    EnergyMarketCodeType,
    MarketSide,
    OrderState,
    OrderType,
    Power,
    Price,
)

from edge_controller.common.clock import WallClock
from edge_controller.servers.market.command import add_market_server_parser, run_market_server
from edge_controller.servers.market.model import default_market
from edge_controller.trading.periods import first_open_period
from tests.servers.market.conftest import AREA, KEY

EXAMPLE = Path(__file__).resolve().parents[3] / "config" / "market-default.toml"
RUNNER = (  # what cli.py does for the subcommand: logs to stderr, then run it
    "import argparse, sys\n"
    "from edge_controller.common import logging as logs\n"
    "logs.configure('info', 'json')\n"
    "from edge_controller.servers.market.command import (\n"
    "    add_market_server_parser, run_market_server)\n"
    "parser = argparse.ArgumentParser()\n"
    "add_market_server_parser(parser.add_subparsers(dest='command'))\n"
    "sys.exit(run_market_server(parser.parse_args(sys.argv[1:])))\n"
)


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="edge-controller")
    add_market_server_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(["market-server", *argv])


@pytest.fixture
def keys_file(tmp_path: Path) -> Path:
    path = tmp_path / "market.keys"
    path.write_text(f"# lab\n{KEY}\n")
    return path


def test_flags() -> None:
    args = parse("--listen", "127.0.0.1:0", "--market", "m.toml", "--no-auth")
    assert (args.listen, args.market, args.keys_file, args.no_auth, args.tls_cert) == (
        "127.0.0.1:0",
        Path("m.toml"),
        None,
        True,
        None,
    )
    with pytest.raises(SystemExit):
        parse("--keys-file", "k", "--no-auth")


def test_keys_are_required(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_market_server(parse()) == 2
    assert "API keys are required: pass --keys-file FILE" in capsys.readouterr().err


def test_bad_inputs_exit_2_naming_them(
    tmp_path: Path, keys_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad_market = tmp_path / "market.toml"
    bad_market.write_text("[manager]\nratio = 2\n")
    assert run_market_server(parse("--keys-file", str(keys_file), "--market", str(bad_market))) == 2
    assert "market.toml: manager.ratio: expected a fraction 0..1, got 2" in capsys.readouterr().err
    assert run_market_server(parse("--keys-file", str(tmp_path / "none"))) == 2
    assert "--keys-file" in capsys.readouterr().err
    assert run_market_server(parse("--no-auth", "--listen", "localhost")) == 2
    assert "--listen: expected HOST:PORT" in capsys.readouterr().err
    assert run_market_server(parse("--no-auth", "--tls-cert", "server.pem")) == 2
    assert "--tls-cert needs --tls-key as well" in capsys.readouterr().err


async def test_a_real_run_prints_its_address_first_and_serves_the_real_client(
    keys_file: Path,
) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        RUNNER,
        "market-server",
        "--listen",
        "127.0.0.1:0",
        "--keys-file",
        str(keys_file),
        "--market",
        str(EXAMPLE),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    assert process.stdout is not None
    try:
        async with asyncio.timeout(20):
            first = (await process.stdout.readline()).decode().strip()
        assert first.startswith("listening address=127.0.0.1:")
        Client._instances.clear()
        client = Client(server_url=f"grpc://{first.split('=', 1)[1]}?ssl=false", auth_key=KEY)
        try:
            rules = default_market().rules
            # the period after the first open one: its gate cannot close during the test
            start = first_open_period(WallClock().now(), rules.period, rules.gate_closure)
            start += rules.period
            order = await client.create_gridpool_order(
                1,
                delivery_area=DeliveryArea(AREA, EnergyMarketCodeType.EUROPE_EIC),
                delivery_period=DeliveryPeriod(start, DeliveryDuration.MINUTES_15),
                order_type=OrderType.LIMIT,
                side=MarketSide.BUY,
                price=Price(Decimal("55.5"), Currency.EUR),
                quantity=Power(Decimal("1.2")),
            )
            assert order.state_detail.state is OrderState.ACTIVE
        finally:
            await client.disconnect()
            Client._instances.clear()
        process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(10):
            assert await process.wait() == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
