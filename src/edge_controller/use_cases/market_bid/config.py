"""The `[market_bid]` section: where to trade and fetch forecasts, and the strategy.

Its values end in `actor.MarketBidOptions`, whose module pulls in the weather models
(pvlib, pandas: about a second to import): that import happens only for a
configuration that has the section (and when the reference is rendered).
The options' own checks (`MarketBidOptions.__post_init__`) are turned into problems
with the `market_bid.` key path, like every other configuration error.

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
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from edge_controller.common.key_specs import KeySpec, SectionSpec, show_default
from edge_controller.common.secret_files import read_api_key
from edge_controller.common.tls_files import tls_file_problems
from edge_controller.common.toml_reader import Reader, checked, integer, join, number, string
from edge_controller.common.toml_reader import power as read_power

KEY_ENVIRONMENT_VARIABLE = "EDGE_CONTROLLER_TRADING_KEY"
KEY_CREDENTIAL = "trading-key"


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
    from edge_controller.use_cases.market_bid.actor import MarketBidOptions

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
    from edge_controller.use_cases.market_bid.actor import MarketBidOptions

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
