"""What the market-bid actor reads of the batteries, from the controller's telemetry.

The actor takes plain callables (`MarketBidActor(battery_pool=..., measured_power_w=...,
storage_units=...)`), so its tests can feed any figures; `telemetry_inputs` builds them
over the telemetry cache, as the plug-in wires the actor (`__init__.py`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from edge_controller.common.clock import Clock
from edge_controller.microgrid.graph import BatteryPairs
from edge_controller.microgrid.telemetry import TelemetryCache
from edge_controller.trading import outlook
from edge_controller.trading.bids import BatteryPool
from edge_controller.trading.storage import StorageUnit
from edge_controller.use_cases.market_bid.config import MarketBidOptions


@dataclass(frozen=True, slots=True)
class TelemetryInputs:
    """The callables the actor reads the batteries with, built from the telemetry."""

    battery_pool: Callable[[], BatteryPool | None]
    measured_power_w: Callable[[], float | None]
    storage_units: Callable[[], list[StorageUnit]]
    """The trading batteries per inverter, for the optimizer (`outlook.units_from_telemetry`)."""


def telemetry_inputs(
    cache: TelemetryCache, pairs: BatteryPairs, options: MarketBidOptions, clock: Clock
) -> TelemetryInputs:
    """Return the pool, measured-power and per-unit readers over the controller's telemetry.

    `pairs` as `MicrogridConnection.pairs` (after start). The reserve and efficiency
    come from `options`, so the pool matches the strategy (see
    `outlook.pool_from_telemetry`).
    """

    def pool() -> BatteryPool | None:
        return outlook.pool_from_telemetry(
            cache,
            pairs,
            clock.now(),
            reserve_soc_pct=options.reserve_soc_pct,
            batteries=options.batteries,
            efficiency=options.efficiency,
        )

    def power() -> float | None:
        return outlook.measured_power_w(cache, pairs, clock.now(), batteries=options.batteries)

    def units() -> list[StorageUnit]:
        return outlook.units_from_telemetry(
            cache,
            pairs,
            clock.now(),
            reserve_soc_pct=options.reserve_soc_pct,
            batteries=options.batteries,
            efficiency=options.efficiency,
        )

    return TelemetryInputs(pool, power, units)


__all__ = ["TelemetryInputs", "telemetry_inputs"]
