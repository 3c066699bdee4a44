"""The MarketBidActor with strategy "optimal", reading its batteries from telemetry.

Two battery inverters whose windows differ: the distribution (`SocBalancing`) empties
them on a common *normalised* level, so the one with the wider window reaches the 20 %
reserve first while the pool's average still looks sellable. The actor is driven as in
`test_market_bid` (the real local market and trading client, a dispatch service, a
`ManualClock` the test leaps to gate closure); its inputs come from
`telemetry_inputs` over a `TelemetryCache`, as the controller wires them.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, MutableMapping
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import structlog
from frequenz.channels import Broadcast
from frequenz.client.electricity_trading import Client

from edge_controller.common.clock import ManualClock
from edge_controller.dispatching.producer import DispatchProducer
from edge_controller.microgrid.graph import BatteryPairs, InverterBatteries
from edge_controller.microgrid.telemetry import BatteryReading, InverterReading, TelemetryCache
from edge_controller.power.bounds import Range
from edge_controller.servers.market.clearing import Side as MarketSide
from edge_controller.servers.market.orders import OrderFilter
from edge_controller.servers.market.server import MarketServer
from edge_controller.trading.storage import StorageUnit
from edge_controller.trading.unit_paths import PoolPower, crossings, unit_paths
from edge_controller.use_cases.market_bid.actor import MarketBidActor
from edge_controller.use_cases.market_bid.config import MarketBidOptions
from edge_controller.use_cases.market_bid.site_reading import telemetry_inputs
from edge_controller.weather.messages import WeatherForecast
from tests.trading.conftest import until

QUARTER = timedelta(minutes=15)
GATE = timedelta(minutes=5)
OPTIONS = MarketBidOptions(
    batteries=frozenset({11, 21}),
    bidding="optimal",
    horizon=4,
    plan_horizon=4,
    max_volume_mw=1.0,
    reserve_soc_pct=20.0,
    degradation_cost=20.0,
)
PAIRS = BatteryPairs((InverterBatteries(10, (11,)), InverterBatteries(20, (21,))))


def telemetry(at: datetime) -> TelemetryCache:
    """Battery 11: 0..100 % window, at 30 % (10 points above the reserve); battery 21:
    15..95 %, at 55 %. Both 500 kWh, ±1 MW. Per unit (the distribution's level), 170 kWh
    may go before battery 11 reaches 20 %; the pool's average says 225 kWh."""
    cache = TelemetryCache(stale_after=timedelta(hours=1))
    for battery_id, soc, window in ((11, 30.0, (0.0, 100.0)), (21, 55.0, (15.0, 95.0))):
        cache.update(
            BatteryReading(
                component_id=battery_id,
                sampled_at=at,
                soc_pct=soc,
                soc_lower_pct=window[0],
                soc_upper_pct=window[1],
                capacity_wh=500_000.0,
                power_w=0.0,
                bounds=(Range(-1e6, 1e6),),
                states=frozenset({"READY"}),
                errors=frozenset(),
            )
        )
    for inverter_id in (10, 20):
        cache.update(
            InverterReading(
                component_id=inverter_id,
                sampled_at=at,
                power_w=0.0,
                bounds=(Range(-1e6, 1e6),),
                states=frozenset({"READY"}),
                errors=frozenset(),
            )
        )
    return cache


@pytest.fixture
async def weather() -> AsyncIterator[Broadcast[WeatherForecast]]:
    channel = Broadcast[WeatherForecast](name="weather")
    yield channel
    await channel.aclose()


def sells(market: MarketServer) -> list[tuple[datetime, Decimal]]:
    return sorted(
        (r.order.period_start, r.order.quantity_mw)
        for r in market.exchange.list_orders(1, OrderFilter(tag=OPTIONS.order_tag))
        if r.order.side is MarketSide.SELL
    )


def built(logs: list[MutableMapping[str, Any]]) -> list[MutableMapping[str, Any]]:
    """The `bids_built` events so far: one per round that got to build orders."""
    return [event for event in logs if event["event"] == "bids_built"]


def worst_case_paths(
    units: list[StorageUnit], sold: list[tuple[datetime, Decimal]]
) -> dict[int, float]:
    """The units that leave their window if every sale fills, replayed through the
    distribution (`unit_paths`), with how far (SoC points below the floor)."""
    powers = [PoolPower(start, QUARTER, -float(mw) * 1e6) for start, mw in sold]
    return crossings(units, unit_paths(units, powers))


async def test_optimal_bids_sell_the_peak_and_keep_every_battery_above_its_reserve(
    market: MarketServer,
    trading: Client,
    producer: DispatchProducer,
    market_clock: ManualClock,
    weather: Broadcast[WeatherForecast],
) -> None:
    stack = contextlib.ExitStack()
    first = market.exchange.first_open_period()
    peak, second_peak = first + QUARTER, first + 4 * QUARTER
    inputs = telemetry_inputs(telemetry(market_clock.now()), PAIRS, OPTIONS, market_clock)
    units = inputs.storage_units()
    assert [u.unit_id for u in units] == [10, 20]

    def expected_price(start: datetime) -> float:
        """120 EUR/MWh (what the flat market clears at) in the second and the fifth
        period, 60 in the others: after 2 × 20 EUR/MWh of wear and the losses, only the
        peaks pay (the fifth comes into the 4-period plan in the second round)."""
        return 120.0 if start in (peak, second_peak) else 60.0

    logs = stack.enter_context(structlog.testing.capture_logs())
    actor = MarketBidActor(
        trading,
        producer,
        weather.new_receiver(),
        inputs.battery_pool,
        options=OPTIONS,
        storage_units=inputs.storage_units,
        expected_price=expected_price,
        clock=market_clock,
        tick=timedelta(seconds=0.01),
    )
    actor.start()
    try:
        await until(lambda: actor.counts["rounds"] >= 1 and peak in actor.orders, "bids placed")
        # The peak is sold, as far as battery 11's reserve allows: 170 kWh stored above
        # it per unit, 0.95 efficient, over 15 minutes: 0.646 MW, floored to 0.6 MW; the
        # sale's limit is the price expected, at which it fills.
        assert sells(market) == [(peak, Decimal("0.6"))]
        assert actor.orders[peak].limit_price == Decimal("120.00")
        assert worst_case_paths(units, sells(market)) == {}
        # The pool as one unit would have sold 0.8 MW, taking battery 11 below 20 %.
        assert 10 in worst_case_paths(units, [(peak, Decimal("0.8"))])  # battery 11's unit

        # Gate closure of the peak: the sale fills at 120 and becomes a dispatch.
        await until(lambda: market.exchange.stream_count("trades") >= 1, "trade stream open")
        market_clock.advance(peak - GATE - market_clock.now())
        market.clear_due()
        await until(lambda: peak in actor.dispatches, "the trade became a dispatch")
        assert actor.traded_w == {peak: -600_000.0}

        # The next round sees the second peak, and counts the sale as committed (the
        # telemetry has not moved yet): the energy above battery 11's reserve is sold,
        # so the second peak gets no sale.
        market_clock.advance(OPTIONS.next_round(market_clock.now()) - market_clock.now())
        await until(lambda: len(built(logs)) == 2, "the next round built its bids")
        assert second_peak in [o.start for o in actor.last_outlooks]
        assert built(logs)[-1]["orders"] == 0
        assert sells(market) == [(peak, Decimal("0.6"))]
        assert actor.counts["orders_refused"] == 0
    finally:
        await actor.stop()
        stack.close()
