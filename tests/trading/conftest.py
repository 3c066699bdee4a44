"""Fixtures for the market-bid actor: a small local market, the real trading client, a
dispatch service, and helpers that wait on state with short polls."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator, Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from frequenz.client.base.streaming import GrpcStreamBroadcaster
from frequenz.client.electricity_trading import Client

from edge_controller.common.clock import ManualClock
from edge_controller.dispatching.producer import DispatchProducer
from edge_controller.servers.dispatch.server import DispatchServer
from edge_controller.servers.market.model import (
    CoalPlant,
    ConsumerGroup,
    DailyProfile,
    MarketRules,
    MarketSpec,
    Pricing,
)
from edge_controller.servers.market.server import MarketServer
from tests import patience
from tests.patience import PATIENCE_S

MARKET_KEY = "trading-key-0815"
DISPATCH_KEY = "trading-dispatch-key"


def flat_market(rules: MarketRules | None = None) -> MarketSpec:
    """2 MW of flat demand against a 4 MW coal plant in four 1 MW blocks at 90, 120, 150
    and 180 EUR/MWh: without our orders every period clears at 120 EUR/MWh, and a sale of
    up to 1 MW at a limit up to 120 is filled completely."""
    return MarketSpec(
        rules=rules or MarketRules(),
        pricing=Pricing(Decimal(0), Decimal(500), 4),
        consumers=(ConsumerGroup("flat", 2.0, DailyProfile.constant(1.0)),),
        prosumers=(),
        manager=CoalPlant(
            name="coal",
            max_production_mw=4.0,
            ratio=1.0,
            status=True,
            carbon_intensity_kg_per_mwh=900.0,
            marginal_cost=Decimal(60),
            full_load_cost=Decimal(180),
        ),
    )


async def until(condition: Callable[[], bool], what: str, timeout_s: float = PATIENCE_S) -> None:
    """Wait until `condition()` holds, polling every 10 ms."""
    await patience.until(condition, what, timeout_s=timeout_s, poll_s=0.01)


async def close_trading_client(client: Client) -> None:
    """Stop the client's stream tasks, disconnect, and empty its per-(URL, key) cache."""
    broadcasters: list[GrpcStreamBroadcaster[Any, Any]] = [
        *client._gridpool_orders_streams.values(),
        *client._gridpool_trades_streams.values(),
        *client._public_trades_streams.values(),
    ]
    for broadcaster in broadcasters:
        await broadcaster.stop()
    await client.disconnect()
    Client._instances.clear()


@pytest.fixture
def market_clock() -> ManualClock:
    """The market's (and the actor's) clock, starting at the wall-clock time: the real
    trading client refuses periods that are past on the wall clock."""
    return ManualClock()


@pytest.fixture
async def market(market_clock: ManualClock) -> AsyncIterator[MarketServer]:
    async with MarketServer(
        flat_market(),
        "127.0.0.1:0",
        keys=frozenset({MARKET_KEY}),
        clock=market_clock,
        auto_clear=False,
    ) as running:
        yield running


@pytest.fixture
async def trading(market: MarketServer) -> AsyncIterator[Client]:
    Client._instances.clear()
    client = Client(server_url=market.url, auth_key=MARKET_KEY)
    try:
        yield client
    finally:
        await close_trading_client(client)


@pytest.fixture
async def dispatch_server(tmp_path: Path) -> AsyncIterator[DispatchServer]:
    async with DispatchServer(
        tmp_path / "dispatches.db",
        "127.0.0.1:0",
        keys=frozenset({DISPATCH_KEY}),
        microgrid_ids=frozenset({1}),
    ) as running:
        yield running


@pytest.fixture
async def producer(dispatch_server: DispatchServer) -> AsyncIterator[DispatchProducer]:
    async with DispatchProducer(dispatch_server.url, 1, DISPATCH_KEY) as made:
        yield made


@pytest.fixture(autouse=True)
def collect_garbage() -> Iterator[None]:
    """Run the garbage collector after each test, at a quiet moment.

    The actor tests leave cycles of finished tasks, closed channels and gRPC objects.
    Run alone (so that hypothesis is first imported, and rewritten by pytest, at the
    session's end), they failed with CPython 3.11's "SystemError: AST constructor
    recursion depth mismatch" — a collection inside `ast.parse` whose finalisers
    disturb the parser's global recursion count (cf. python/cpython#106905). Collecting
    here made it go away.
    """
    yield
    gc.collect()
