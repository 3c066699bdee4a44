"""A site as the controller's actors see it: a battery pairing and a filled telemetry cache.

The actors that read the site (the PowerManagingActor's grid guard, peak shaving,
component recovery) read a `TelemetryCache`, not the simulator. Their tests fill the
cache directly, stamped with a `ManualClock`, so a stale grid meter is one
`clock.advance` away and no server runs::

    site = CachedSite(ManualClock(START))
    site.grid(60_000.0)            # the grid meter imports 60 kW, sampled now
    site.inverter(10, -20_000.0)   # inverter 10 (battery 11) discharges 20 kW
    site.clock.advance(5)          # ... and now the meter is 5 s old

Two inverters with one battery each (10 → 11, 20 → 21) and a grid meter (1), each
battery and inverter bounded at ±`LIMIT_W`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from edge_controller.common.clock import ManualClock
from edge_controller.microgrid.graph import BatteryPairs, InverterBatteries
from edge_controller.microgrid.telemetry import (
    BatteryReading,
    InverterReading,
    MeterReading,
    TelemetryCache,
)
from edge_controller.power.bounds import Range

GRID_METER = 1
LIMIT_W = 100_000.0
PAIRS = BatteryPairs((InverterBatteries(10, (11,)), InverterBatteries(20, (21,))))
BOTH = frozenset({11, 21})


@dataclass
class CachedSite:
    """The pairing, the cache and the clock its readings are stamped with."""

    clock: ManualClock
    pairs: BatteryPairs = PAIRS
    cache: TelemetryCache = field(default_factory=lambda: TelemetryCache(timedelta(seconds=10)))
    grid_meter_id: int = GRID_METER

    def grid(self, power_w: float) -> None:
        """The grid meter reads `power_w` now (+ import)."""
        self.cache.update(MeterReading(self.grid_meter_id, self.clock.now(), power_w))

    def inverter(
        self,
        inverter_id: int,
        power_w: float = 0.0,
        *,
        state: str = "READY",
        limit_w: float = LIMIT_W,
    ) -> None:
        """Inverter `inverter_id` measures `power_w` (+ charging) now, in `state`."""
        self.cache.update(
            InverterReading(
                inverter_id,
                self.clock.now(),
                power_w,
                (Range(-limit_w, limit_w),),
                frozenset({state}),
                frozenset(),
            )
        )

    def battery(
        self,
        battery_id: int,
        *,
        soc_pct: float = 50.0,
        state: str = "READY",
        errors: frozenset[str] = frozenset(),
        limit_w: float = LIMIT_W,
    ) -> None:
        """Battery `battery_id` reports `soc_pct` and `state` now."""
        self.cache.update(
            BatteryReading(
                battery_id,
                self.clock.now(),
                soc_pct,
                0.0,
                100.0,
                100_000.0,
                0.0,
                (Range(-limit_w, limit_w),),
                frozenset({state}),
                errors,
            )
        )

    def everything_ready(self, *, soc_pct: float = 50.0) -> None:
        """Every inverter at 0 W and every battery at `soc_pct`, all READY, sampled now."""
        for pair in self.pairs.pairs:
            self.inverter(pair.inverter_id)
            for battery_id in pair.battery_ids:
                self.battery(battery_id, soc_pct=soc_pct)
