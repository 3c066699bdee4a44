"""Fixtures for the local market: small hand-made markets, a server, the real client."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import grpc
import pytest
from frequenz.api.electricity_trading.v1 import electricity_trading_pb2_grpc as pb_grpc
from frequenz.client.base.streaming import GrpcStreamBroadcaster
from frequenz.client.electricity_trading import Client

from edge_controller.common.clock import ManualClock
from edge_controller.servers.market.exchange import MarketExchange, StreamKind
from edge_controller.servers.market.model import (
    CoalPlant,
    ConsumerGroup,
    DailyProfile,
    MarketRules,
    MarketSpec,
    MarketState,
    Pricing,
    Situation,
    Weather,
)
from edge_controller.servers.market.server import MarketServer

KEY = "market-key-0123"
AREA = "10YDE-EON------1"
NOON = datetime(2026, 6, 21, 12, 0, tzinfo=UTC)
METADATA = (("key", KEY),)


def coal(capacity_mw: float = 4.0, *, status: bool = True, ratio: float = 1.0) -> CoalPlant:
    """A coal plant at 60 → 180 EUR/MWh, 900 kg CO2/MWh."""
    return CoalPlant(
        name="coal",
        max_production_mw=capacity_mw,
        ratio=ratio,
        status=status,
        carbon_intensity_kg_per_mwh=900.0,
        marginal_cost=Decimal(60),
        full_load_cost=Decimal(180),
    )


def flat_market(
    demand_mw: float = 2.0, *, coal_mw: float = 4.0, tranches: int = 4, coal_on: bool = True
) -> MarketSpec:
    """One consumer group with a flat demand, no prosumers, a coal plant in few blocks.

    Without our orders the price is 60 + 120 · ⌈4 · demand / coal⌉ / 4, or 500 beyond.
    """
    return MarketSpec(
        rules=MarketRules(),
        pricing=Pricing(Decimal(0), Decimal(500), tranches),
        consumers=(ConsumerGroup("flat", demand_mw, DailyProfile.constant(1.0)),),
        prosumers=(),
        manager=coal(coal_mw, status=coal_on),
    )


def period(
    spec: MarketSpec, consumer_mw: float, *, surplus_mw: float = 0.0, start: datetime = NOON
) -> Situation:
    """A period's demand and supply written by hand."""
    return Situation(
        start=start,
        duration=spec.rules.period,
        wind_speed_m_s=0.0,
        consumer_demand_mw=consumer_mw,
        prosumer_load_mw=0.0,
        turbine_mw=surplus_mw,
        battery_charge_mw=0.0,
        battery_discharge_mw=0.0,
        surplus_mw=surplus_mw,
        shortfall_mw=0.0,
        coal_available_mw=spec.manager.available_mw,
        next_state=MarketState(()),
    )


CALM = Weather(wind_speed_at=lambda _t: 0.0, power_curve=lambda _v: 0.0)


def with_rules(spec: MarketSpec, **changes: object) -> MarketSpec:
    """The spec with some rules changed."""
    return replace(spec, rules=replace(spec.rules, **changes))  # type: ignore[arg-type]


async def wait_for_streams(exchange: MarketExchange, kind: StreamKind, count: int = 1) -> None:
    """Wait until `count` streams of `kind` are open (an item sent earlier is lost)."""
    async with asyncio.timeout(5):
        while exchange.stream_count(kind) < count:
            await asyncio.sleep(0.005)


def gate_of(start: datetime) -> datetime:
    """The default market's gate closure for a period starting at `start`."""
    return start - timedelta(minutes=5)


@pytest.fixture
def wall_clock() -> ManualClock:
    """A manual clock starting at the wall-clock time: the real client checks periods
    against the wall clock, so the market's "now" must start there."""
    return ManualClock()


@pytest.fixture
async def server(wall_clock: ManualClock) -> AsyncIterator[MarketServer]:
    async with MarketServer(
        None, "127.0.0.1:0", keys=frozenset({KEY}), clock=wall_clock, auto_clear=False
    ) as running:
        yield running


@pytest.fixture
async def client(server: MarketServer) -> AsyncIterator[Client]:
    """The real trading client; its per-(URL, key) instance cache is cleared around it."""
    Client._instances.clear()
    api = Client(server_url=server.url, auth_key=KEY)
    try:
        yield api
    finally:
        # The client keeps one stream task per filter; stop them before the loop ends.
        broadcasters: list[GrpcStreamBroadcaster[Any, Any]] = [
            *api._gridpool_orders_streams.values(),
            *api._gridpool_trades_streams.values(),
            *api._public_trades_streams.values(),
        ]
        for broadcaster in broadcasters:
            await broadcaster.stop()
        await api.disconnect()
        Client._instances.clear()


@pytest.fixture
async def stub(
    server: MarketServer,
) -> AsyncIterator[pb_grpc.ElectricityTradingServiceAsyncStub]:
    """The generated stub, for requests the real client refuses to send."""
    async with grpc.aio.insecure_channel(server.address) as channel:
        yield async_stub(channel)


def async_stub(channel: grpc.aio.Channel) -> pb_grpc.ElectricityTradingServiceAsyncStub:
    """The generated stub on an aio channel, typed as the async stub it then is."""
    return pb_grpc.ElectricityTradingServiceStub(channel)  # type: ignore[return-value]
