"""What the bidder expects, as the bid builder reads it: pure, no I/O.

```
WeatherForecast ──► production_w ─┐
load forecast  (W at a time) ─────┼──► period_outlooks ──► [PeriodOutlook] ─┐
price forecast (EUR/MWh) ─────────┘                                         ├─► build_orders
TelemetryCache + BatteryPairs ──► pool_from_telemetry ──► committed_pool ───┘
                  orders and trades still to deliver ──► committed_energy_wh ─┘
TelemetryCache + BatteryPairs ──► units_from_telemetry ──► [StorageUnit] ──► optimizer.plan_bids
```

- **Periods.** `delivery_starts` lists the next delivery periods whose gates are still
  open, on the market's grid (`trading.periods`).
- **Production** of the site's PV and wind from the forecast, with the project's
  production models (`weather.production`), averaged over `SAMPLES` instants of each
  period. `PeriodOutlook` carries it as a magnitude (≥ 0 W). A period the forecast does
  not cover (or covers with a missing feature) has no known production: for a site
  with PV or wind, `period_outlooks` leaves it out — it gets no order rather than one
  built on a guess. A site without production needs no forecast.
- **Load**: any callable `load_w(at) -> W` (≥ 0), `flat_load(w)` by default.
- **Price**: any callable `expected_price(period_start) -> EUR/MWh`; `HourlyPrices`
  learns one from the market's cleared prices by hour of day.
- **The pool**: `pool_from_telemetry` aggregates the trading batteries' fresh readings
  into one `BatteryPool`; `committed_pool` then takes out what earlier orders and
  trades may still move (`committed_energy_wh` over `optimizer.Committed`, the same
  values the optimizer takes), so that a new round never over-commits together with
  the old ones (see `bids`, "Rounds").
- **The units**: `units_from_telemetry` reads the same batteries per inverter, as the
  power distribution splits a target between them (`trading.storage`), for the
  optimizer: a pool's average can hide one battery close to its reserve.

Sign convention (passive, as everywhere): + charges or consumes, − discharges or
produces. `optimizer.Committed`'s powers follow it (a sell is negative); `PeriodOutlook`'s
production and load are magnitudes, as `bids` defines them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Final

from edge_controller.microgrid.graph import BatteryPairs
from edge_controller.microgrid.telemetry import BatteryReading, TelemetryCache
from edge_controller.power.bounds import Range
from edge_controller.trading.bids import BatteryPool, PeriodOutlook
from edge_controller.trading.optimizer import Committed
from edge_controller.trading.periods import first_open_period
from edge_controller.trading.storage import StorageUnit
from edge_controller.weather.messages import WeatherForecast
from edge_controller.weather.production import (
    SMALL_TURBINE_HUB_HEIGHT_M,
    pv_power_w,
    wind_power_w,
)
from edge_controller.weather.wind import wind_speed_at_height

LoadForecast = Callable[[datetime], float]
"""The site's expected consumption (W, ≥ 0) at an instant."""

PriceForecast = Callable[[datetime], float]
"""The expected clearing price (EUR/MWh) of the delivery period starting at an instant."""

SAMPLES: Final = 3
"""Instants per period at which production and load are read (the thirds' midpoints)."""


def flat_load(load_w: float) -> LoadForecast:
    """Return a load forecast that is `load_w` at every instant.

    Raises:
        ValueError: a load that is not a finite number ≥ 0.
    """
    if not (math.isfinite(load_w) and load_w >= 0):
        raise ValueError(f"load_w: expected a power >= 0 W, got {load_w!r}")

    def constant(_at: datetime) -> float:
        return load_w

    return constant


def delivery_starts(
    now: datetime, period: timedelta, gate_closure: timedelta, count: int
) -> list[datetime]:
    """Return the starts of the next `count` periods whose gates are open at `now`."""
    first = first_open_period(now, period, gate_closure)
    return [first + i * period for i in range(max(0, count))]


def _instants(start: datetime, duration: timedelta) -> list[datetime]:
    return [start + duration * (2 * i + 1) / (2 * SAMPLES) for i in range(SAMPLES)]


@dataclass(frozen=True, slots=True)
class SiteProduction:
    """The site's producers as the forecaster sees them (W).

    Raises:
        ValueError: on creation, a power or height that is not a finite number ≥ 0
            (height > 0).
    """

    pv_peak_w: float = 0.0
    """AC peak of the PV system (0: none)."""
    wind_rated_w: float = 0.0
    """Rated power of the wind turbines together (0: none)."""
    hub_height_m: float = SMALL_TURBINE_HUB_HEIGHT_M

    def __post_init__(self) -> None:
        """Check the values."""
        for name in ("pv_peak_w", "wind_rated_w"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name}: expected a power >= 0 W, got {value!r}")
        if not (math.isfinite(self.hub_height_m) and self.hub_height_m > 0):
            raise ValueError(f"hub_height_m: expected a height > 0 m, got {self.hub_height_m!r}")

    @property
    def produces(self) -> bool:
        """Whether the site has any PV or wind."""
        return self.pv_peak_w > 0 or self.wind_rated_w > 0


def production_w(
    forecast: WeatherForecast | None,
    site: SiteProduction,
    start: datetime,
    duration: timedelta,
) -> float | None:
    """Return the site's mean production over a period (W, a magnitude ≥ 0).

    0 for a site without PV or wind. None when the site produces and the forecast is
    missing, does not cover an instant of the period, or lacks a feature it needs.
    """
    if not site.produces:
        return 0.0
    if forecast is None:
        return None
    total_w = 0.0
    for when in _instants(start, duration):
        step = forecast.step_at(when)
        if step is None:
            return None
        produced_w = 0.0
        if site.pv_peak_w > 0:
            if not (math.isfinite(step.ghi_wm2) and math.isfinite(step.temperature_c)):
                return None
            wind_ms = step.wind_speed_10m_ms if math.isfinite(step.wind_speed_10m_ms) else 1.0
            produced_w += pv_power_w(
                step.ghi_wm2,
                step.temperature_c,
                when,
                forecast.location,
                site.pv_peak_w,
                wind_speed_ms=wind_ms,
            )
        if site.wind_rated_w > 0:
            if not math.isfinite(step.wind_speed_10m_ms):
                return None
            hub_ms = float(wind_speed_at_height(step.wind_speed_10m_ms, site.hub_height_m))
            produced_w += wind_power_w(hub_ms, site.wind_rated_w)
        total_w += -produced_w  # the models return ≤ 0 (passive sign)
    return max(0.0, total_w / SAMPLES)


def period_outlooks(
    starts: Iterable[datetime],
    duration: timedelta,
    *,
    forecast: WeatherForecast | None,
    site: SiteProduction,
    load_w: LoadForecast,
    expected_price: PriceForecast,
) -> list[PeriodOutlook]:
    """Return what is expected for each period (see the module docstring).

    Periods whose production is unknown are left out; a load that is not a finite
    number counts as unknown too (left out); a negative one as 0.
    """
    outlooks = []
    for start in starts:
        produced = production_w(forecast, site, start, duration)
        if produced is None:
            continue
        loads = [load_w(when) for when in _instants(start, duration)]
        if not all(math.isfinite(load) for load in loads):
            continue
        load = max(0.0, sum(loads) / len(loads))
        outlooks.append(PeriodOutlook(start, duration, expected_price(start), produced, load))
    return outlooks


class HourlyPrices:
    """A price forecast learnt from cleared prices: the mean by hour of day.

    ```
    prices = HourlyPrices(fallback=80.0)
    prices.record(period_start, 112.5)      # e.g. from the market's public trades
    prices(datetime(2026, 6, 22, 14, 15))   # mean of the 14:xx prices recorded, ...
    ```

    The expected price of a period is the mean of the recorded prices whose periods
    start in the same hour of day (in `timezone`); for an hour with none, the mean of
    all recorded prices; with none at all, `fallback`. One price per period start (a
    period recorded again replaces its price, so a replayed stream counts once);
    prices older than `keep` before the newest one are dropped.
    """

    def __init__(
        self, fallback: float, *, keep: timedelta = timedelta(days=7), timezone: tzinfo = UTC
    ) -> None:
        """Learn prices by hour of day in `timezone`, forgetting them after `keep`.

        Raises:
            ValueError: a fallback that is not finite, or `keep` not > 0.
        """
        if not math.isfinite(fallback):
            raise ValueError(f"fallback: expected a finite price, got {fallback!r}")
        if keep <= timedelta(0):
            raise ValueError(f"keep: expected > 0, got {keep}")
        self.fallback = fallback
        self._keep = keep
        self._timezone = timezone
        self._prices: dict[datetime, float] = {}

    def __len__(self) -> int:
        """How many periods' prices are held."""
        return len(self._prices)

    def record(self, period_start: datetime, price: float) -> None:
        """Remember the cleared `price` of the period starting at `period_start`.

        A price that is not finite is ignored.
        """
        if not math.isfinite(price):
            return
        self._prices[period_start] = price
        newest = max(self._prices)
        for start in [s for s in self._prices if s < newest - self._keep]:
            del self._prices[start]

    def expected(self, period_start: datetime) -> float:
        """Return the expected price of the period starting at `period_start`."""
        if not self._prices:
            return self.fallback
        hour = period_start.astimezone(self._timezone).hour
        same_hour = [
            price
            for start, price in self._prices.items()
            if start.astimezone(self._timezone).hour == hour
        ]
        chosen = same_hour or list(self._prices.values())
        return sum(chosen) / len(chosen)

    def __call__(self, period_start: datetime) -> float:
        """Return `expected(period_start)`: a `PriceForecast`."""
        return self.expected(period_start)


def committed_energy_wh(committed: Iterable[Committed], now: datetime) -> tuple[float, float]:
    """Return (sell Wh, buy Wh) still to deliver after `now`, at the meter, both ≥ 0.

    The one count of what earlier rounds still hold, for the bidder and the scenario
    alike. Each commitment's traded power and open order count apart, each on its own
    side and in full: a trade will be delivered and an order may fill, so neither frees
    anything for the other side. Only the part of each period after `now` counts: what
    was already delivered is in the batteries' SoC. A power that is not finite counts
    as nothing.
    """
    sell_wh = buy_wh = 0.0
    for commitment in committed:
        end = commitment.start + commitment.duration
        remaining_s = (end - max(commitment.start, now)).total_seconds()
        if remaining_s <= 0:
            continue
        for power_w in (commitment.traded_w, commitment.open_w):
            if not math.isfinite(power_w) or power_w == 0:
                continue
            energy_wh = abs(power_w) * remaining_s / 3600.0
            if power_w < 0:
                sell_wh += energy_wh
            else:
                buy_wh += energy_wh
    return sell_wh, buy_wh


def committed_pool(pool: BatteryPool, *, sell_wh: float, buy_wh: float) -> BatteryPool:
    """Return `pool` as a new round must see it, with commitments taken out.

    Sells still to deliver (`sell_wh` at the meter) lower what may be sold; buys still
    to deliver lower the room to buy. Neither frees anything for the other side: any of
    them may fill, or not. In the pool's terms: the SoC drops by the sells' stored
    energy, the upper bound by that and by the buys' stored energy, so that
    `soc − reserve` shrinks by the sells only and `upper − soc` by the buys only.
    """
    if pool.capacity_wh <= 0:
        return pool
    efficiency = min(1.0, max(1e-6, pool.efficiency))
    sold_pct = max(0.0, sell_wh) / efficiency / pool.capacity_wh * 100.0
    bought_pct = max(0.0, buy_wh) * efficiency / pool.capacity_wh * 100.0
    return replace(
        pool,
        soc_pct=pool.soc_pct - sold_pct,
        soc_upper_pct=pool.soc_upper_pct - sold_pct - bought_pct,
    )


def _highest(ranges: tuple[Range, ...] | None) -> float:
    """The largest charge power a set of ranges allows (0 when unknown)."""
    if not ranges:
        return 0.0
    return max(0.0, max(r.upper for r in ranges))


def _lowest(ranges: tuple[Range, ...] | None) -> float:
    """The largest discharge power (as a magnitude) a set of ranges allows."""
    if not ranges:
        return 0.0
    return max(0.0, -min(r.lower for r in ranges))


def _usable(reading: BatteryReading | None) -> BatteryReading | None:
    if reading is None:
        return None
    values = (reading.soc_pct, reading.soc_lower_pct, reading.soc_upper_pct, reading.capacity_wh)
    if not all(math.isfinite(v) for v in values) or reading.capacity_wh <= 0:
        return None
    return reading


def _finite(value: float) -> float:
    return value if math.isfinite(value) else 0.0


def pool_from_telemetry(
    cache: TelemetryCache,
    pairs: BatteryPairs,
    now: datetime,
    *,
    reserve_soc_pct: float,
    batteries: Collection[int] | None = None,
    efficiency: float = 0.95,
) -> BatteryPool | None:
    """Return the trading batteries (None: all) as one pool, or None if none is usable.

    A battery counts when its reading is fresh at `now` and its SoC, SoC window and
    capacity are known. Energy: the pool's `soc_pct` and `soc_upper_pct` are chosen so
    that `(soc − reserve) × capacity` is exactly the energy above
    `max(reserve, own lower SoC bound)` summed over the batteries, and
    `(upper − soc) × capacity` exactly the room below their own upper bounds — each
    battery's window is kept, whatever the others hold. Power: per inverter, the sum of
    its batteries' DC bounds, capped by the inverter's own bounds (an inverter without a
    fresh reading or known bounds moves nothing); ±inf counts as 0 (unknown).
    """
    capacity_wh = above_wh = room_wh = charge_w = discharge_w = 0.0
    wanted = None if batteries is None else set(batteries)
    for pair in pairs.pairs:
        readings = [
            reading
            for battery_id in pair.battery_ids
            if wanted is None or battery_id in wanted
            if (reading := _usable(cache.battery(battery_id, now))) is not None
        ]
        if not readings:
            continue
        for reading in readings:
            floor_pct = max(reserve_soc_pct, reading.soc_lower_pct)
            capacity_wh += reading.capacity_wh
            above_wh += max(0.0, reading.soc_pct - floor_pct) * reading.capacity_wh / 100.0
            room_wh += max(0.0, reading.soc_upper_pct - reading.soc_pct) * reading.capacity_wh / 100
        inverter = cache.inverter(pair.inverter_id, now)
        if inverter is None or inverter.bounds is None:
            continue
        charge_w += _finite(
            min(sum(_highest(r.bounds) for r in readings), _highest(inverter.bounds))
        )
        discharge_w += _finite(
            min(sum(_lowest(r.bounds) for r in readings), _lowest(inverter.bounds))
        )
    if capacity_wh <= 0:
        return None
    soc_pct = reserve_soc_pct + above_wh / capacity_wh * 100.0
    return BatteryPool(
        soc_pct=soc_pct,
        capacity_wh=capacity_wh,
        soc_upper_pct=soc_pct + room_wh / capacity_wh * 100.0,
        charge_max_w=charge_w,
        discharge_max_w=discharge_w,
        efficiency=efficiency,
    )


def units_from_telemetry(
    cache: TelemetryCache,
    pairs: BatteryPairs,
    now: datetime,
    *,
    reserve_soc_pct: float,
    batteries: Collection[int] | None = None,
    efficiency: float = 0.95,
) -> list[StorageUnit]:
    """Return the trading batteries (None: all) as the distribution's units, one per inverter.

    The optimizer keeps *each* unit above its reserve (`trading.storage`): the power
    distribution normalises every unit on its own SoC window, so a pool whose average
    is above the reserve may still take a unit with a wider window below it. A unit
    aggregates its trading batteries as the distribution does (`power.planning.
    to_battery_unit`): capacity summed, SoC and SoC bounds weighted by capacity. Its
    floor is the highest of `max(reserve, own lower bound)` of its batteries, its
    ceiling the lowest upper bound. Power as in `pool_from_telemetry`: the batteries'
    DC bounds summed, capped by the inverter's (no fresh inverter reading or no bounds:
    0 W, the unit moves nothing). An inverter with a trading battery whose reading is
    stale or incomplete is left out, as the distribution leaves it out.
    """
    wanted = None if batteries is None else set(batteries)
    units = []
    for pair in pairs.pairs:
        ids = [b for b in pair.battery_ids if wanted is None or b in wanted]
        if not ids:
            continue
        readings = [_usable(cache.battery(battery_id, now)) for battery_id in ids]
        known = [r for r in readings if r is not None]
        if len(known) != len(readings):
            continue
        capacity_wh = math.fsum(r.capacity_wh for r in known)
        inverter = cache.inverter(pair.inverter_id, now)
        charge_w = discharge_w = 0.0
        if inverter is not None and inverter.bounds is not None:
            charge_w = _finite(
                min(sum(_highest(r.bounds) for r in known), _highest(inverter.bounds))
            )
            discharge_w = _finite(
                min(sum(_lowest(r.bounds) for r in known), _lowest(inverter.bounds))
            )
        units.append(
            StorageUnit(
                unit_id=pair.inverter_id,
                capacity_wh=capacity_wh,
                soc_pct=math.fsum(r.soc_pct * r.capacity_wh for r in known) / capacity_wh,
                soc_lower_pct=math.fsum(r.soc_lower_pct * r.capacity_wh for r in known)
                / capacity_wh,
                soc_upper_pct=math.fsum(r.soc_upper_pct * r.capacity_wh for r in known)
                / capacity_wh,
                floor_pct=max(max(reserve_soc_pct, r.soc_lower_pct) for r in known),
                ceiling_pct=min(r.soc_upper_pct for r in known),
                charge_max_w=charge_w,
                discharge_max_w=discharge_w,
                efficiency=efficiency,
            )
        )
    return units


def measured_power_w(
    cache: TelemetryCache,
    pairs: BatteryPairs,
    now: datetime,
    *,
    batteries: Collection[int] | None = None,
) -> float | None:
    """Return the AC power of the inverters behind the trading batteries (W, passive).

    None when one of them has no fresh reading or its power is NaN: an interval without
    a measurement is not counted as delivered (see `settlement`).
    """
    wanted = None if batteries is None else set(batteries)
    total_w = 0.0
    found = False
    for pair in pairs.pairs:
        if wanted is not None and not wanted.intersection(pair.battery_ids):
            continue
        reading = cache.inverter(pair.inverter_id, now)
        if reading is None or not math.isfinite(reading.power_w):
            return None
        total_w += reading.power_w
        found = True
    return total_w if found else None


__all__ = [
    "SAMPLES",
    "HourlyPrices",
    "LoadForecast",
    "PriceForecast",
    "SiteProduction",
    "committed_energy_wh",
    "committed_pool",
    "delivery_starts",
    "flat_load",
    "measured_power_w",
    "period_outlooks",
    "pool_from_telemetry",
    "production_w",
    "units_from_telemetry",
]
