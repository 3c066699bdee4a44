"""The `[market_bid]` section: where to trade and fetch forecasts, and the strategy.

Kept apart from `config.py` because its values end in `trading.market_bid.
MarketBidOptions`, whose module pulls in the weather models (pvlib, pandas: about a
second to import): that import happens only for a configuration that has the section.
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
price_spread = 20                # EUR/MWh between buy and sell thresholds
max_volume = "1 MW"
pv_peak = "350 kW"               # the site's production, for the forecast
wind_rated = "150 kW"
flat_load = "300 kW"             # load forecast
flat_price = 80                  # EUR/MWh expected before any cleared price is known
```
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from edge_controller.config_secret import read_api_key
from edge_controller.toml_reader import Reader, checked, integer, join, number, string
from edge_controller.toml_reader import power as read_power

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


_Convert = Callable[[object], Any]
_POWER = (checked(read_power, lambda w: w >= 0), "a power >= 0 (W, or '350 kW')")
_OPTIONS: dict[str, tuple[str, _Convert, str]] = {
    # TOML key: (MarketBidOptions field, converter, what is expected)
    "gridpool_id": ("gridpool_id", integer, "an integer id > 0"),
    "delivery_area": ("delivery_area", string, "a delivery area code"),
    "delivery_area_code_type": ("delivery_area_code_type", string, "EUROPE_EIC or US_NERC"),
    "dispatch_type": ("dispatch_type", string, "a dispatch type name"),
    "horizon": ("horizon", integer, "a number of periods 1-192"),
    "period": ("period", _seconds, "seconds: 300, 900, 1800 or 3600"),
    "gate_closure": ("gate_closure", _seconds, "seconds >= 0"),
    "round_delay": ("round_delay", _seconds, "seconds >= 0"),
    "reserve_soc": ("reserve_soc_pct", number, "a SoC % 0-100"),
    "price_spread": ("price_spread", number, "EUR/MWh >= 0"),
    "max_volume": ("max_volume_mw", _watts_to_mw, "a power >= 0 (W, or '1 MW')"),
    "max_import": ("max_import_w", *_POWER),
    "max_export": ("max_export_w", *_POWER),
    "efficiency": ("efficiency", number, "a number 0-1"),
    "pv_peak": ("pv_peak_w", *_POWER),
    "wind_rated": ("wind_rated_w", *_POWER),
    "flat_load": ("flat_load_w", *_POWER),
    "flat_price": ("flat_price", number, "EUR/MWh"),
    "price_history": ("price_history", _seconds, "seconds >= 0"),
    "order_tag": ("order_tag", string, "a tag for our orders"),
    "dispatch_retry": ("dispatch_retry", _seconds, "seconds >= 0"),
    "call_timeout": ("call_timeout", _seconds, "seconds >= 0"),
}
_OWN = {
    "trading_url",
    "key_file",
    "weather_url",
    "latitude",
    "longitude",
    "country_code",
    "openweathermap_key_file",
    "openweathermap_url",
}


def parse_market_bid(
    reader: Reader,
    table: Mapping[str, Any],
    base_dir: Path | None,
    environ: Mapping[str, str],
) -> MarketBidConfig | None:
    """Validate `[market_bid]`; None (with problems recorded) when it cannot be used."""
    path = "market_bid"
    reader.unknown_keys(table, _OWN | set(_OPTIONS) | {"batteries"}, path)
    trading_url = reader.value(table, "trading_url", path, _url, "a grpc://HOST:PORT URL")
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
    owm_url = reader.value(
        table,
        "openweathermap_url",
        path,
        lambda r: r if isinstance(r, str) and r.startswith(("http://", "https://")) else None,
        "an http(s):// URL",
        default=None,
    )
    # One forecast source: the Weather API, or an OpenWeatherMap-style HTTP API.
    weather_url = reader.value(
        table,
        "weather_url",
        path,
        _url,
        "a grpc://HOST:PORT URL (or set openweathermap_key_file)",
        **({"default": ""} if owm_key is not None else {}),
    )
    latitude = reader.value(
        table, "latitude", path, checked(number, lambda v: -90 <= v <= 90), "degrees -90..90"
    )
    longitude = reader.value(
        table, "longitude", path, checked(number, lambda v: -180 <= v <= 180), "degrees -180..180"
    )
    country_code = reader.value(table, "country_code", path, string, "a country code", default="")
    options: dict[str, Any] = {}
    for toml_key, (name, convert, expected) in _OPTIONS.items():
        if toml_key in table:
            value = reader.value(table, toml_key, path, convert, expected)
            if value is not None:
                options[name] = value
    if "batteries" in table:
        raw = table["batteries"]
        if isinstance(raw, list) and raw and all(integer(i) and i > 0 for i in raw):
            options["batteries"] = frozenset(raw)
        else:
            reader.fail(join(path, "batteries"), "a non-empty list of battery ids", raw)
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
    from edge_controller.trading.market_bid import MarketBidOptions

    try:
        MarketBidOptions(**options)
    except ValueError as error:
        for problem in str(error).split("; "):
            reader.problems.append(f"{path}.{problem}")
        return None
    assert trading_url is not None
    assert weather_url is not None
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
