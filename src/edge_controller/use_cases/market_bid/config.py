"""The `[market_bid]` section: where to trade and fetch forecasts, and the strategy.

Its values end in `MarketBidOptions` (below), what the market-bid actor is given. The
weather models its `site` needs (pvlib, pandas: about a second to import) are loaded
only when that is read, by the actor: a configuration without the section never
loads them. The options' own checks (`MarketBidOptions.__post_init__`) are turned into
problems with the `market_bid.` key path, like every other configuration error.

```toml
[market_bid]
trading_url = "grpc://127.0.0.1:50060?ssl=false"
key_file = "trading.key"         # else $CREDENTIALS_DIRECTORY/trading-key, else
                                 # EDGE_CONTROLLER_TRADING_KEY
weather_url = "grpc://127.0.0.1:50061?ssl=false"
# openweathermap_key_file = "owm.key"   # instead: an OpenWeatherMap-style HTTP API
# openweathermap_url = "https://api.openweathermap.org/data/2.5/forecast"
latitude = 52.52
longitude = 13.405
country_code = "DE"
gridpool_id = 1
delivery_area = "10YDE-EON------1"
batteries = [11, 21]             # default: all
dispatch_type = "BATTERY_POWER"  # routed to a battery_power use case
horizon = 8                      # delivery periods bid for ahead
period = 900                     # s: 300, 900, 1800 or 3600 (the market's)
gate_closure = 300               # s before delivery (the market's)
reserve_soc = 20                 # % never sold
strategy = "optimal"             # or "threshold" (price_spread)
degradation_cost = 10            # EUR/MWh of throughput (optimal)
price_spread = 20                # EUR/MWh between buy and sell thresholds
max_volume = "1 MW"
pv_peak = "350 kW"               # the site's production, for the forecast
wind_rated = "150 kW"
flat_load = "300 kW"             # load forecast
flat_price = 80                  # EUR/MWh expected before any cleared price is known
```
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from frequenz.client.electricity_trading import DeliveryArea, DeliveryDuration, EnergyMarketCodeType

from edge_controller.common.key_specs import KeySpec, SectionSpec, show_default
from edge_controller.common.secret_files import read_api_key
from edge_controller.common.tls_files import tls_file_problems
from edge_controller.common.toml_reader import Reader, checked, integer, join, number, string
from edge_controller.common.toml_reader import power as read_power
from edge_controller.dispatching.producer import BATTERY_POWER, battery_target
from edge_controller.trading.bids import Strategy
from edge_controller.trading.periods import period_floor

if TYPE_CHECKING:
    from edge_controller.trading import outlook

KEY_ENVIRONMENT_VARIABLE = "EDGE_CONTROLLER_TRADING_KEY"
KEY_CREDENTIAL = "trading-key"

DURATIONS: Final = {
    timedelta(minutes=5): DeliveryDuration.MINUTES_5,
    timedelta(minutes=15): DeliveryDuration.MINUTES_15,
    timedelta(minutes=30): DeliveryDuration.MINUTES_30,
    timedelta(minutes=60): DeliveryDuration.MINUTES_60,
}
"""The delivery periods the trading API knows."""
BIDDING: Final = ("optimal", "threshold")
"""The bid builders `MarketBidOptions.bidding` names (config `strategy`)."""


@dataclass(frozen=True, slots=True)
class MarketBidOptions:
    """What the market-bid actor trades, where, and how (config `[market_bid]`).

    Raises:
        ValueError: on creation, a value out of range, naming the field.
    """

    gridpool_id: int = 1
    delivery_area: str = "10YDE-EON------1"
    """The delivery area's code (EIC by default)."""
    delivery_area_code_type: str = "EUROPE_EIC"
    """`EnergyMarketCodeType` name of the code: EUROPE_EIC or US_NERC."""
    batteries: frozenset[int] | None = None
    """The trading batteries; None: every battery (the dispatch targets the category)."""
    dispatch_type: str = BATTERY_POWER
    """The type of the dispatches won trades become (a battery-power use case's type)."""
    horizon: int = 8
    """Delivery periods bid for ahead (8 × 15 min: the next two hours)."""
    period: timedelta = timedelta(minutes=15)
    """The market's delivery period: 5, 15, 30 or 60 minutes."""
    gate_closure: timedelta = timedelta(minutes=5)
    """How long before a period's start the market stops taking orders for it."""
    round_delay: timedelta = timedelta(seconds=30)
    """How long after each gate closure the next round runs."""
    reserve_soc_pct: float = 20.0
    bidding: str = "optimal"
    """How bids are built: "optimal" (`optimizer`: a plan over `plan_horizon` periods,
    re-solved every round, each inverter's batteries kept above the reserve) or
    "threshold" (`bids`: `price_spread`; kept for comparison — its shipped 20 EUR/MWh
    spread does not cover two passes of `degradation_cost` plus the losses)."""
    plan_horizon: int = 96
    """Delivery periods the optimizer plans ahead (orders go only to the first `horizon`)."""
    degradation_cost: float = 10.0
    """EUR/MWh charged or discharged at the meter: the optimizer's cost of wear."""
    price_spread: float = 20.0
    """EUR/MWh between the buy and the sell threshold (see `bids`)."""
    max_volume_mw: float = 1.0
    max_import_w: float | None = None
    """Grid connection import limit, if any (with the load and production forecasts)."""
    max_export_w: float | None = None
    efficiency: float = 0.95
    """One-way efficiency of the batteries (AC ↔ stored)."""
    pv_peak_w: float = 0.0
    wind_rated_w: float = 0.0
    flat_load_w: float = 0.0
    """The load forecast when none is given: this, all day."""
    flat_price: float = 80.0
    """EUR/MWh expected when no price forecast is given and no cleared price is known."""
    price_history: timedelta = timedelta(days=7)
    """How far back cleared public prices are read and kept for the price forecast."""
    order_tag: str = "edge-controller"
    """Tag on our orders: rounds find ours by it, the trade stream is filtered by it."""
    dispatch_retry: timedelta = timedelta(seconds=5)
    call_timeout: timedelta = timedelta(seconds=10)
    """Bound on each trading API call."""

    def __post_init__(self) -> None:
        """Check every field."""
        problems = []
        if self.gridpool_id <= 0:
            problems.append(f"gridpool_id: expected an id > 0, got {self.gridpool_id}")
        if not self.delivery_area.strip():
            problems.append("delivery_area: expected a delivery area code, got ''")
        if self.delivery_area_code_type not in ("EUROPE_EIC", "US_NERC"):
            problems.append(
                "delivery_area_code_type: expected EUROPE_EIC or US_NERC, "
                f"got {self.delivery_area_code_type!r}"
            )
        if self.batteries is not None:
            try:
                battery_target(self.batteries)
            except ValueError as error:
                problems.append(str(error))
        if not self.dispatch_type.strip():
            problems.append("dispatch_type: expected a dispatch type, got ''")
        if not 1 <= self.horizon <= 192:
            problems.append(f"horizon: expected 1..192 periods, got {self.horizon}")
        if self.period not in DURATIONS:
            problems.append(f"period: expected 5, 15, 30 or 60 minutes, got {self.period}")
        if not timedelta(0) <= self.gate_closure <= timedelta(days=1):
            problems.append(f"gate_closure: expected 0..1 day, got {self.gate_closure}")
        if not timedelta(0) <= self.round_delay < self.period:
            problems.append(
                f"round_delay: expected >= 0 and less than the period, got {self.round_delay}"
            )
        if not 0 <= self.reserve_soc_pct <= 100:
            problems.append(f"reserve_soc_pct: expected 0..100, got {self.reserve_soc_pct}")
        if self.bidding not in BIDDING:
            problems.append(
                f"strategy: expected one of {', '.join(repr(b) for b in BIDDING)}, "
                f"got {self.bidding!r}"
            )
        if not 1 <= self.plan_horizon <= 192:
            problems.append(f"plan_horizon: expected 1..192 periods, got {self.plan_horizon}")
        if not (math.isfinite(self.degradation_cost) and self.degradation_cost >= 0):
            problems.append(f"degradation_cost: expected >= 0 EUR/MWh, got {self.degradation_cost}")
        if not (math.isfinite(self.price_spread) and self.price_spread >= 0):
            problems.append(f"price_spread: expected >= 0 EUR/MWh, got {self.price_spread}")
        if not (math.isfinite(self.max_volume_mw) and self.max_volume_mw >= 0.1):
            problems.append(f"max_volume_mw: expected >= 0.1 MW, got {self.max_volume_mw}")
        if not 0 < self.efficiency <= 1:
            problems.append(f"efficiency: expected 0 < x <= 1, got {self.efficiency}")
        for name in ("max_import_w", "max_export_w", "pv_peak_w", "wind_rated_w", "flat_load_w"):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and value >= 0):
                problems.append(f"{name}: expected a power >= 0 W, got {value!r}")
        if not math.isfinite(self.flat_price):
            problems.append(f"flat_price: expected a finite price, got {self.flat_price}")
        if self.price_history <= timedelta(0):
            problems.append(f"price_history: expected > 0, got {self.price_history}")
        if not self.order_tag.strip():
            problems.append("order_tag: expected a tag, got ''")
        if self.dispatch_retry <= timedelta(0) or self.call_timeout <= timedelta(0):
            problems.append(
                f"dispatch_retry and call_timeout: expected > 0, got {self.dispatch_retry}, "
                f"{self.call_timeout}"
            )
        if problems:
            raise ValueError("; ".join(problems))

    @property
    def strategy(self) -> Strategy:
        """The bid builder's parameters."""
        return Strategy(
            reserve_soc_pct=self.reserve_soc_pct,
            price_spread=self.price_spread,
            max_volume_mw=self.max_volume_mw,
            max_import_w=self.max_import_w,
            max_export_w=self.max_export_w,
        )

    @property
    def site(self) -> outlook.SiteProduction:
        """The site's producers."""
        from edge_controller.trading import outlook  # pvlib: only where it is used

        return outlook.SiteProduction(pv_peak_w=self.pv_peak_w, wind_rated_w=self.wind_rated_w)

    @property
    def area(self) -> DeliveryArea:
        """The delivery area as the trading client takes it."""
        return DeliveryArea(self.delivery_area, EnergyMarketCodeType[self.delivery_area_code_type])

    def next_round(self, now: datetime) -> datetime:
        """Return the first round time strictly after `now`."""
        shifted = now - self.round_delay + self.gate_closure
        return (
            period_floor(shifted, self.period)
            + self.period
            - self.gate_closure
            + (self.round_delay)
        )


@dataclass(frozen=True, slots=True)
class MarketBidConfig:
    """The validated section; `options` are `MarketBidOptions` keyword arguments."""

    trading_url: str
    auth_key: str = field(repr=False)
    weather_url: str
    latitude: float
    longitude: float
    country_code: str = ""
    options: Mapping[str, Any] = field(default_factory=dict)
    openweathermap_key_file: Path | None = None
    """Forecasts from an OpenWeatherMap-style HTTP API instead of `weather_url`."""
    openweathermap_url: str | None = None


def _url(raw: object) -> str | None:
    text = string(raw)
    return text if text is not None and text.startswith("grpc://") else None


def _seconds(raw: object) -> timedelta | None:
    value = number(raw)
    return timedelta(seconds=value) if value is not None and value >= 0 else None


def _watts_to_mw(raw: object) -> float | None:
    watts = read_power(raw)
    return watts / 1e6 if watts is not None and watts >= 0 else None


_POWER_EXPECTED = "a power >= 0 (W, or '350 kW')"
_NON_NEGATIVE_POWER = checked(read_power, lambda w: w >= 0)


def _option(
    key: str,
    field_name: str,
    convert: Callable[[object], Any],
    expected: str,
    meaning: str,
    unit: str = "",
) -> KeySpec:
    """A key passed on as the `MarketBidOptions` field `field_name` (its default there)."""
    return KeySpec(key, expected, meaning, unit=unit, convert=convert, field=field_name)


def _power_option(key: str, field_name: str, meaning: str) -> KeySpec:
    return _option(key, field_name, _NON_NEGATIVE_POWER, _POWER_EXPECTED, meaning, "W")


def _option_default(field_name: str) -> str:
    """The default of a `MarketBidOptions` field, in the config's units (for the reference)."""
    defaults = {f.name: f.default for f in dataclasses.fields(MarketBidOptions)}
    value = defaults[field_name]
    if value is None:
        return "all" if field_name == "batteries" else "none"
    if field_name.endswith("_mw") and isinstance(value, int | float):
        return f"{value:g} MW"
    return show_default(value)


MARKET_BID = SectionSpec(
    "market_bid",
    "The market-bid actor: forecast, bid on the market, turn won trades into dispatches "
    "(`use_cases/market_bid/`). Runs only when the section is there.",
    live=False,
    field_default=_option_default,
    keys=(
        KeySpec(
            "trading_url", "a grpc://HOST:PORT URL", "The Electricity Trading API.", convert=_url
        ),
        KeySpec(
            "key_file",
            "a file path",
            "File holding the trading API key, relative to the config file.",
            default_text=(
                f"`$CREDENTIALS_DIRECTORY/{KEY_CREDENTIAL}`, else `${KEY_ENVIRONMENT_VARIABLE}`"
            ),
        ),
        KeySpec(
            "weather_url",
            "a grpc://HOST:PORT URL (or set openweathermap_key_file)",
            "The Weather API the forecasts come from.",
            default_text="required unless openweathermap_key_file is set",
            convert=_url,
        ),
        KeySpec(
            "openweathermap_key_file",
            "an existing file",
            "Forecasts from an OpenWeatherMap-style HTTP API (this key) instead of weather_url.",
            default_text="off",
        ),
        KeySpec(
            "openweathermap_url",
            "an http(s):// URL",
            "That HTTP API's base URL.",
            default=None,
            default_text="`https://api.openweathermap.org`",
            convert=lambda r: (
                r if isinstance(r, str) and r.startswith(("http://", "https://")) else None
            ),
        ),
        KeySpec(
            "latitude",
            "degrees -90..90",
            "The site's latitude, for the forecasts.",
            unit="°",
            convert=checked(number, lambda v: -90 <= v <= 90),
        ),
        KeySpec(
            "longitude",
            "degrees -180..180",
            "The site's longitude, for the forecasts.",
            unit="°",
            convert=checked(number, lambda v: -180 <= v <= 180),
        ),
        KeySpec(
            "country_code",
            "a country code",
            "The site's country (ISO 3166), for the forecasts.",
            default="",
            default_text='`""`',
            convert=string,
        ),
        KeySpec(
            "batteries",
            "a non-empty list of battery ids",
            "The trading batteries.",
            field="batteries",
        ),
        _option("gridpool_id", "gridpool_id", integer, "an integer id > 0", "Our gridpool."),
        _option(
            "delivery_area", "delivery_area", string, "a delivery area code", "Where we trade."
        ),
        _option(
            "delivery_area_code_type",
            "delivery_area_code_type",
            string,
            "EUROPE_EIC or US_NERC",
            "The kind of that code.",
        ),
        _option(
            "dispatch_type",
            "dispatch_type",
            string,
            "a dispatch type name",
            "The type of the dispatches won trades become (a battery_power use case's).",
        ),
        _option(
            "horizon",
            "horizon",
            integer,
            "a number of periods 1-192",
            "Delivery periods bid for ahead.",
        ),
        _option(
            "period",
            "period",
            _seconds,
            "seconds: 300, 900, 1800 or 3600",
            "The market's delivery period.",
            "s",
        ),
        _option(
            "gate_closure",
            "gate_closure",
            _seconds,
            "seconds >= 0",
            "How long before a period the market stops taking orders for it.",
            "s",
        ),
        _option(
            "round_delay",
            "round_delay",
            _seconds,
            "seconds >= 0",
            "How long after each gate closure the next round runs; less than the period.",
            "s",
        ),
        _option(
            "reserve_soc",
            "reserve_soc_pct",
            number,
            "a SoC % 0-100",
            "Energy below this SoC is never sold.",
            "%",
        ),
        _option(
            "strategy",
            "bidding",
            string,
            '"optimal" or "threshold"',
            "How bids are built: the optimizer's plan (per battery, after wear) or the "
            "price thresholds.",
        ),
        _option(
            "plan_horizon",
            "plan_horizon",
            integer,
            "a number of periods 1-192",
            "Delivery periods the optimizer plans ahead.",
        ),
        _option(
            "degradation_cost",
            "degradation_cost",
            number,
            "EUR/MWh >= 0",
            "The optimizer's cost of wear per MWh charged or discharged.",
            "EUR/MWh",
        ),
        _option(
            "price_spread",
            "price_spread",
            number,
            "EUR/MWh >= 0",
            "Between the buy and the sell threshold around the expected mean price.",
            "EUR/MWh",
        ),
        _option(
            "max_volume",
            "max_volume_mw",
            _watts_to_mw,
            "a power >= 0 (W, or '1 MW')",
            "The largest order (at least 0.1 MW).",
            "W",
        ),
        _power_option("max_import", "max_import_w", "Grid import limit the bids respect."),
        _power_option("max_export", "max_export_w", "Grid export limit the bids respect."),
        _option(
            "efficiency",
            "efficiency",
            number,
            "a number 0-1",
            "One-way efficiency of the batteries (AC ↔ stored).",
        ),
        _power_option("pv_peak", "pv_peak_w", "The site's PV peak power, for the forecast."),
        _power_option("wind_rated", "wind_rated_w", "The site's wind rated power."),
        _power_option("flat_load", "flat_load_w", "The load forecast: this, all day."),
        _option(
            "flat_price",
            "flat_price",
            number,
            "EUR/MWh",
            "The price expected before any cleared price is known.",
            "EUR/MWh",
        ),
        _option(
            "price_history",
            "price_history",
            _seconds,
            "seconds >= 0",
            "How far back cleared prices are read for the price forecast.",
            "s",
        ),
        _option(
            "order_tag",
            "order_tag",
            string,
            "a tag for our orders",
            "Tag on our orders: rounds and the trade stream find ours by it.",
        ),
        _option(
            "dispatch_retry",
            "dispatch_retry",
            _seconds,
            "seconds >= 0",
            "A trade's dispatch that could not be created is retried this often.",
            "s",
        ),
        _option(
            "call_timeout",
            "call_timeout",
            _seconds,
            "seconds >= 0",
            "Bound on each trading API call.",
            "s",
        ),
    ),
)
_OPTIONS = tuple(spec for spec in MARKET_BID.keys if spec.field and spec.convert is not None)
"""The keys passed on to `MarketBidOptions` (the rest are read here)."""


def parse_market_bid(
    reader: Reader,
    table: Mapping[str, Any],
    base_dir: Path | None,
    environ: Mapping[str, str],
) -> MarketBidConfig | None:
    """Validate `[market_bid]`; None (with problems recorded) when it cannot be used."""
    path = "market_bid"
    reader.unknown_keys(table, MARKET_BID.names, path)
    trading_url = MARKET_BID.read(reader, table, "trading_url")
    owm_key = table.get("openweathermap_key_file")
    owm_path: Path | None = None
    if owm_key is not None:
        if not isinstance(owm_key, str) or not owm_key:
            reader.fail(join(path, "openweathermap_key_file"), "a file path", owm_key)
        else:
            owm_path = Path(owm_key)
            if not owm_path.is_absolute() and base_dir is not None:
                owm_path = base_dir / owm_path
            if not owm_path.is_file():
                reader.fail(join(path, "openweathermap_key_file"), "an existing file", owm_key)
    owm_url = MARKET_BID.read(reader, table, "openweathermap_url")
    # One forecast source: the Weather API, or an OpenWeatherMap-style HTTP API.
    weather_url = reader.value(
        table,
        "weather_url",
        path,
        _url,
        MARKET_BID["weather_url"].expected,
        **({"default": ""} if owm_key is not None else {}),
    )
    latitude = MARKET_BID.read(reader, table, "latitude")
    longitude = MARKET_BID.read(reader, table, "longitude")
    country_code = MARKET_BID.read(reader, table, "country_code")
    options: dict[str, Any] = {}
    for spec in _OPTIONS:
        if spec.key in table:
            value = MARKET_BID.read(reader, table, spec.key)
            if value is not None:
                options[spec.field] = value
    if "batteries" in table:
        raw = table["batteries"]
        if isinstance(raw, list) and raw and all(integer(i) and i > 0 for i in raw):
            options["batteries"] = frozenset(raw)
        else:
            reader.fail(join(path, "batteries"), MARKET_BID["batteries"].expected, raw)
    auth_key = read_api_key(
        reader,
        table,
        "market_bid",
        base_dir,
        environ,
        credential=KEY_CREDENTIAL,
        variable=KEY_ENVIRONMENT_VARIABLE,
        what="the trading API key",
    )
    if reader.problems:
        return None
    try:
        MarketBidOptions(**options)
    except ValueError as error:
        for problem in str(error).split("; "):
            reader.problems.append(f"{path}.{problem}")
        return None
    assert trading_url is not None
    assert weather_url is not None
    for key, url in (("trading_url", trading_url), ("weather_url", weather_url)):
        reader.problems.extend(f"{join(path, key)}: {p}" for p in tls_file_problems(url))
    assert latitude is not None
    assert longitude is not None
    assert auth_key is not None
    return MarketBidConfig(
        trading_url,
        auth_key,
        weather_url,
        latitude,
        longitude,
        country_code or "",
        options,
        owm_path,
        owm_url,
    )
