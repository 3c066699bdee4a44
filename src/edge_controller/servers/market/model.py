"""The seed's electricity market as plain data and pure functions: who consumes, who produces.

The members come from the electricity-market simulation in the seeds (a small market
with consumers, prosumers and one manager):

- **Consumer groups** (clusters of houses, only their total counts): demand = peak
  demand × the hour's factor, from 24 hourly factors 0–1 in the market's local time,
  interpolated linearly between full hours.
- **Prosumers**: houses with small wind turbines (one turbine type for the whole market,
  several turbines per house, each given by its rated power) and batteries, and a
  consumption of their own (peak × daily profile, like a consumer). Each period a house
  with a **surplus** stores `input_ratio` of it (within the batteries' charge power and
  free capacity) and sells the rest; a house with a **shortfall** draws `output_ratio`
  of it from the batteries (within their output power and stored energy) and buys the
  rest. `status = false` stops the turbines. Identical houses are one entry with a
  `count`; their batteries are pooled per house.
- **The manager** runs the coal plant: `max_production`, `ratio` (the share of the
  maximum it makes available), `status` (on/off) and `carbon_intensity`. It also keeps
  a reserve (imports, emergency supply) so that every consumer is always supplied; that
  reserve is what makes the price jump when demand exceeds all supply (`clearing`).

Every figure here is a power in **MW** averaged over a delivery period (energies in
MWh). Demand and supply are magnitudes (both positive); the project's passive sign
convention applies where these powers meet a site, not inside the market.

**Seams.** Wind comes from `Weather.wind_speed_at(t) -> m/s` and the turbines' output
from `Weather.power_curve(m/s) -> fraction of rated power`. `weather_from_spec` builds
both from the market file (24 hourly wind speeds, a piecewise-linear power curve); the
weather package's measured data and windpowerlib curves plug in through the same two
callables without touching this module.

`situation()` is the one step: from the members, the batteries' state and the weather it
returns the period's demand and supply (what the members bid and offer) and the
batteries' state after the period. It never reads the clock.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo
from decimal import Decimal
from zoneinfo import ZoneInfo

from edge_controller.weather.power_curve import DEFAULT_WIND_CURVE, wind_fraction

WindSpeedAt = Callable[[datetime], float]
"""Wind speed (m/s) at hub height at a UTC instant."""

PowerCurve = Callable[[float], float]
"""A turbine's output as a fraction (0–1) of its rated power at a wind speed (m/s)."""


@dataclass(frozen=True, slots=True)
class DailyProfile:
    """24 values, one per full hour of local time, linearly interpolated in between.

    The day wraps: 23:30 lies halfway between the values of 23:00 and 00:00.
    """

    hourly: tuple[float, ...]

    def __post_init__(self) -> None:
        """Check the length: one value per hour."""
        if len(self.hourly) != 24:
            raise ValueError(f"a daily profile needs 24 hourly values, got {len(self.hourly)}")

    @classmethod
    def constant(cls, value: float) -> DailyProfile:
        """Return a profile that is `value` all day."""
        return cls((value,) * 24)

    def at(self, local_time: datetime) -> float:
        """Return the value at `local_time` (read as wall-clock time of the market)."""
        hours = local_time.hour + local_time.minute / 60 + local_time.second / 3600
        index = int(hours) % 24
        fraction = hours - int(hours)
        return self.hourly[index] * (1 - fraction) + self.hourly[(index + 1) % 24] * fraction


@dataclass(frozen=True, slots=True)
class ConsumerGroup:
    """A cluster of houses that only consume: demand = peak × the hour's factor."""

    name: str
    peak_demand_mw: float
    profile: DailyProfile
    """Factors 0–1 of the peak, by local hour."""


@dataclass(frozen=True, slots=True)
class BatterySpec:
    """One house battery (the seed's `capacity`, `maxCharge`, `maxOutput`, `current`)."""

    capacity_mwh: float
    max_charge_mw: float
    max_output_mw: float
    initial_mwh: float


@dataclass(frozen=True, slots=True)
class ProsumerSpec:
    """`count` identical houses with wind turbines, batteries and a consumption profile."""

    name: str
    count: int
    turbines_mw: tuple[float, ...]
    """Rated power of each turbine of one house."""
    peak_demand_mw: float
    """One house's peak consumption."""
    profile: DailyProfile
    """One house's consumption factors 0–1 of its peak, by local hour."""
    batteries: tuple[BatterySpec, ...]
    input_ratio: float = 0.5
    """Share of a surplus that goes into the batteries (the rest is sold)."""
    output_ratio: float = 1.0
    """Share of a shortfall drawn from the batteries (the rest is bought)."""
    status: bool = True
    """False stops the turbines (the house then only consumes and uses its batteries)."""

    @property
    def capacity_mwh(self) -> float:
        """One house's battery capacity (all its batteries pooled)."""
        return sum(b.capacity_mwh for b in self.batteries)

    @property
    def max_charge_mw(self) -> float:
        """One house's charge power limit."""
        return sum(b.max_charge_mw for b in self.batteries)

    @property
    def max_output_mw(self) -> float:
        """One house's discharge power limit."""
        return sum(b.max_output_mw for b in self.batteries)


@dataclass(frozen=True, slots=True)
class CoalPlant:
    """The manager's coal plant.

    Its offer price rises linearly with its load, from `marginal_cost` at no load to
    `full_load_cost` at `available_mw` (see `clearing` for the price formula).
    """

    name: str
    max_production_mw: float
    ratio: float
    """Share of `max_production_mw` the manager makes available (0–1)."""
    status: bool
    """False: the plant is off and offers nothing."""
    carbon_intensity_kg_per_mwh: float
    marginal_cost: Decimal
    """EUR/MWh of the first MW."""
    full_load_cost: Decimal
    """EUR/MWh of the last available MW."""

    @property
    def available_mw(self) -> float:
        """What the plant offers: max production × ratio when on, else 0."""
        return self.max_production_mw * self.ratio if self.status else 0.0


@dataclass(frozen=True, slots=True)
class Pricing:
    """The prices the members' offers carry (EUR/MWh); see `clearing` for the formula."""

    renewable_price: Decimal = Decimal(0)
    """Prosumers offer their surplus at this price (they take any price at or above it)."""
    scarcity_price: Decimal = Decimal(500)
    """The manager's reserve covers whatever demand the rest cannot, at this price."""
    coal_tranches: int = 20
    """The coal plant's rising offer is split into this many equal blocks."""


MIN_PRICE: Decimal = Decimal(-9999)
"""The lowest limit price (EUR/MWh) an order may carry, as in the trading client."""
MAX_PRICE: Decimal = Decimal(9999)
"""The highest limit price (EUR/MWh); consumers bid it (they buy at any price)."""


@dataclass(frozen=True, slots=True)
class MarketRules:
    """What the market accepts: gridpools, areas, periods, gate closure, limits."""

    gridpool_ids: frozenset[int] = frozenset({1})
    delivery_areas: frozenset[str] = frozenset()
    """Delivery area codes accepted on orders; empty: any code (one price zone)."""
    market_area: str = "10YDE-EON------1"
    """The area code public trades carry (EIC)."""
    period: timedelta = timedelta(minutes=15)
    gate_closure: timedelta = timedelta(minutes=5)
    """How long before a period's start its trading closes and it is cleared."""
    horizon: timedelta = timedelta(hours=48)
    """How far ahead of now a delivery period may start."""
    currency: str = "EUR"
    min_price: Decimal = MIN_PRICE
    max_price: Decimal = MAX_PRICE
    lot_mw: Decimal = Decimal("0.1")
    """Order quantities are whole multiples of this (the trading client's step)."""
    max_quantity_mw: Decimal = Decimal(1000)


@dataclass(frozen=True, slots=True)
class MarketSpec:
    """A whole market: its rules, pricing, members, and the default weather."""

    rules: MarketRules
    pricing: Pricing
    consumers: tuple[ConsumerGroup, ...]
    prosumers: tuple[ProsumerSpec, ...]
    manager: CoalPlant
    timezone: tzinfo = field(default_factory=lambda: ZoneInfo("Europe/Berlin"))
    """Local time of the daily profiles (and of the hourly wind)."""
    wind: DailyProfile = field(default_factory=lambda: DailyProfile.constant(7.0))
    """Hourly wind speed (m/s), used when no other `Weather` is plugged in."""
    power_curve: tuple[tuple[float, float], ...] = DEFAULT_WIND_CURVE


@dataclass(frozen=True, slots=True)
class Weather:
    """The seam to the weather: wind speed over time and the turbines' power curve."""

    wind_speed_at: WindSpeedAt
    power_curve: PowerCurve


def piecewise_curve(points: Sequence[tuple[float, float]]) -> PowerCurve:
    """Return the power curve through `points` (speed m/s, fraction) as the seam's callable.

    The simulator's turbines follow the same rule (`weather.power_curve.wind_fraction`):
    linear between the points, 0 below the first (not cut in yet), above the last (cut
    out) and for a NaN speed.
    """
    return functools.partial(wind_fraction, tuple(points))


def hourly_wind(profile: DailyProfile, timezone: tzinfo) -> WindSpeedAt:
    """Return the wind speed of a daily profile of hourly values in `timezone`."""

    def wind_speed_at(moment: datetime) -> float:
        return max(0.0, profile.at(moment.astimezone(timezone)))

    return wind_speed_at


def weather_from_spec(spec: MarketSpec) -> Weather:
    """Return the market file's own weather: its hourly wind and power curve."""
    return Weather(hourly_wind(spec.wind, spec.timezone), piecewise_curve(spec.power_curve))


@dataclass(frozen=True, slots=True)
class MarketState:
    """What carries over from one period to the next: each prosumer entry's battery energy.

    `battery_mwh[i]` is the energy stored in one house of `spec.prosumers[i]`.
    """

    battery_mwh: tuple[float, ...]


def initial_state(spec: MarketSpec) -> MarketState:
    """Return the state before the first period: the batteries' initial energy."""
    return MarketState(tuple(sum(b.initial_mwh for b in p.batteries) for p in spec.prosumers))


@dataclass(frozen=True, slots=True)
class Situation:
    """One period's demand and supply before clearing (all MW, averages over the period).

    The members' market positions do not depend on the price: consumers and prosumers
    short of energy buy whatever it costs; prosumers sell their whole surplus.
    """

    start: datetime
    duration: timedelta
    wind_speed_m_s: float
    consumer_demand_mw: float
    """Consumer groups together."""
    prosumer_load_mw: float
    """All prosumers' own consumption."""
    turbine_mw: float
    """All turbines' output."""
    battery_charge_mw: float
    battery_discharge_mw: float
    surplus_mw: float
    """Prosumers' energy for sale (turbines − own load − charging, where positive)."""
    shortfall_mw: float
    """Prosumers' energy to buy (own load − turbines − discharging, where positive)."""
    coal_available_mw: float
    next_state: MarketState
    """The batteries after this period."""

    @property
    def inelastic_demand_mw(self) -> float:
        """What the members buy at any price: consumers plus prosumers' shortfall."""
        return self.consumer_demand_mw + self.shortfall_mw


def situation(spec: MarketSpec, state: MarketState, start: datetime, weather: Weather) -> Situation:
    """Return the demand and supply of the period starting at `start`.

    Profiles and wind are read at the period's midpoint. A battery never goes below
    empty or above full, and never moves faster than its power limits.
    """
    duration = spec.rules.period
    hours = duration.total_seconds() / 3600
    midpoint = start + duration / 2
    local = midpoint.astimezone(spec.timezone)
    wind = max(0.0, weather.wind_speed_at(midpoint))
    fraction = min(1.0, max(0.0, weather.power_curve(wind)))

    consumers = sum(max(0.0, c.peak_demand_mw * c.profile.at(local)) for c in spec.consumers)
    load = turbines = charge = discharge = surplus = shortfall = 0.0
    energies: list[float] = []
    for prosumer, energy in zip(spec.prosumers, state.battery_mwh, strict=True):
        produced = sum(prosumer.turbines_mw) * fraction if prosumer.status else 0.0
        consumed = max(0.0, prosumer.peak_demand_mw * prosumer.profile.at(local))
        net = produced - consumed
        capacity = prosumer.capacity_mwh
        house_charge = house_discharge = 0.0
        if net >= 0:
            room_mw = max(0.0, (capacity - energy) / hours)
            house_charge = max(
                0.0, min(prosumer.input_ratio * net, prosumer.max_charge_mw, room_mw)
            )
            house_surplus, house_shortfall = net - house_charge, 0.0
        else:
            need = -net
            stored_mw = max(0.0, energy / hours)
            house_discharge = max(
                0.0, min(prosumer.output_ratio * need, prosumer.max_output_mw, stored_mw)
            )
            house_surplus, house_shortfall = 0.0, need - house_discharge
        energies.append(min(capacity, max(0.0, energy + (house_charge - house_discharge) * hours)))
        count = prosumer.count
        load += consumed * count
        turbines += produced * count
        charge += house_charge * count
        discharge += house_discharge * count
        surplus += house_surplus * count
        shortfall += house_shortfall * count

    return Situation(
        start=start,
        duration=duration,
        wind_speed_m_s=wind,
        consumer_demand_mw=consumers,
        prosumer_load_mw=load,
        turbine_mw=turbines,
        battery_charge_mw=charge,
        battery_discharge_mw=discharge,
        surplus_mw=surplus,
        shortfall_mw=shortfall,
        coal_available_mw=spec.manager.available_mw,
        next_state=MarketState(tuple(energies)),
    )


_HOUSEHOLD_PROFILE = DailyProfile(
    (0.35, 0.30, 0.28, 0.27, 0.28, 0.35, 0.55, 0.75, 0.70, 0.60, 0.55, 0.55,
     0.60, 0.55, 0.50, 0.52, 0.60, 0.80, 0.95, 1.00, 0.95, 0.85, 0.65, 0.45)
)  # fmt: skip
_BUSINESS_PROFILE = DailyProfile(
    (0.20, 0.20, 0.20, 0.20, 0.20, 0.25, 0.40, 0.70, 0.90, 1.00, 1.00, 0.95,
     0.90, 0.95, 1.00, 0.95, 0.85, 0.65, 0.45, 0.35, 0.30, 0.25, 0.20, 0.20)
)  # fmt: skip
_WIND_M_S = DailyProfile(
    (8.0, 8.2, 8.4, 8.5, 8.3, 8.0, 7.4, 6.8, 6.2, 5.8, 5.6, 5.8,
     6.2, 6.8, 7.4, 8.0, 8.6, 9.2, 9.6, 9.8, 9.6, 9.2, 8.8, 8.4)
)  # fmt: skip


def default_market() -> MarketSpec:
    """Return the market served without a market file (`config/market-default.toml`).

    Gridpool 1, any delivery area code, 15-minute periods closing 5 minutes before
    delivery: 2 MW of households and 1.5 MW of businesses at peak, 30 wind prosumers
    (2 × 25 kW turbines, a 13.5 kWh / 5 kW battery, 3 kW peak load each), a 4 MW coal
    plant at 60–180 EUR/MWh and 900 kg CO2/MWh, scarcity at 500 EUR/MWh.
    """
    return MarketSpec(
        rules=MarketRules(),
        pricing=Pricing(),
        consumers=(
            ConsumerGroup("households", 2.0, _HOUSEHOLD_PROFILE),
            ConsumerGroup("businesses", 1.5, _BUSINESS_PROFILE),
        ),
        prosumers=(
            ProsumerSpec(
                name="wind homes",
                count=30,
                turbines_mw=(0.025, 0.025),
                peak_demand_mw=0.003,
                profile=_HOUSEHOLD_PROFILE,
                batteries=(BatterySpec(0.0135, 0.005, 0.005, 0.00675),),
                input_ratio=0.5,
                output_ratio=1.0,
                status=True,
            ),
        ),
        manager=CoalPlant(
            name="coal plant",
            max_production_mw=4.0,
            ratio=1.0,
            status=True,
            carbon_intensity_kg_per_mwh=900.0,
            marginal_cost=Decimal(60),
            full_load_cost=Decimal(180),
        ),
        timezone=ZoneInfo("Europe/Berlin"),
        wind=_WIND_M_S,
        power_curve=DEFAULT_WIND_CURVE,
    )


__all__ = [
    "MAX_PRICE",
    "MIN_PRICE",
    "BatterySpec",
    "CoalPlant",
    "ConsumerGroup",
    "DailyProfile",
    "MarketRules",
    "MarketSpec",
    "MarketState",
    "PowerCurve",
    "Pricing",
    "ProsumerSpec",
    "Situation",
    "Weather",
    "WindSpeedAt",
    "default_market",
    "hourly_wind",
    "initial_state",
    "piecewise_curve",
    "situation",
    "weather_from_spec",
]
