"""The market file: a TOML description of the local market, parsed into a `MarketSpec`.

`config/market-default.toml` is a commented example and describes exactly the market
served without a file (`model.default_market()`). Every table and key is optional: what
a file leaves out keeps the default market's value, so a file can change only the coal
plant, say. An empty list (`consumers = []`) does mean none.

Parsing collects *every* problem and raises one `MarketFileError` whose lines each name
the file, the key path, what was expected and what was found, e.g.::

    market.toml: prosumers[0].batteries[0].initial: expected energy 0..capacity
    (13.5 kWh), got '20 kWh'

Powers and energies are numbers in base units (W, Wh) or strings with a unit ("25 kW",
"13.5 kWh"), parsed by `frequenz.quantities`; prices are EUR/MWh (the market's currency).
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Mapping
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from edge_controller.common.toml_reader import (
    Reader,
    checked,
    energy,
    integer,
    join,
    number,
    positive_integer,
    power,
    string,
)
from edge_controller.servers.market.model import (
    MAX_PRICE,
    MIN_PRICE,
    BatterySpec,
    CoalPlant,
    ConsumerGroup,
    DailyProfile,
    MarketRules,
    MarketSpec,
    Pricing,
    ProsumerSpec,
    default_market,
)
from edge_controller.weather.power_curve import read_curve

_T = TypeVar("_T")
W_PER_MW = 1_000_000
WH_PER_MWH = 1_000_000
PERIOD_MINUTES = (5, 15, 30, 60)
"""The delivery durations the Electricity Trading API knows."""
CURRENCIES = ("USD", "CAD", "EUR", "GBP", "CHF", "CNY", "JPY", "AUD", "NZD", "SGD")
MAX_HORIZON_HOURS = 7 * 24


class MarketFileError(ValueError):
    """A market file that cannot be used, with one line per problem found."""

    def __init__(self, source: str, problems: list[str]) -> None:
        """Keep every problem; the message lists them, file name first on each line."""
        self.source = source
        self.problems = problems
        super().__init__("\n".join(f"{source}: {problem}" for problem in problems))


def load_market(path: Path) -> MarketSpec:
    """Read and validate a market file.

    Raises:
        MarketFileError: the file is missing, not TOML, or not a valid market.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
        raise MarketFileError(str(path), [f"cannot read the file: {reason}"]) from error
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise MarketFileError(path.name, [f"not valid TOML: {error}"]) from error
    return parse_market(document, path.name)


def parse_market(document: Mapping[str, Any], source: str = "<market>") -> MarketSpec:
    """Validate a parsed market file; missing parts keep the default market's values.

    Raises:
        MarketFileError: listing every problem found.
    """
    reader = Reader()
    base = default_market()
    reader.unknown_keys(
        document, {"market", "pricing", "wind", "manager", "consumers", "prosumers"}, ""
    )
    rules, timezone = _rules(reader, reader.table(document, "market", ""), base)
    pricing = _pricing(reader, reader.table(document, "pricing", ""), base.pricing)
    wind, curve = _wind(reader, reader.table(document, "wind", ""), base)
    manager = _manager(reader, reader.table(document, "manager", ""), base.manager)
    consumers = base.consumers
    if "consumers" in document:
        consumers = tuple(
            c
            for index, raw in enumerate(_array(reader, document, "consumers"))
            if (c := _consumer(reader, raw, f"consumers[{index}]")) is not None
        )
    prosumers = base.prosumers
    if "prosumers" in document:
        prosumers = tuple(
            p
            for index, raw in enumerate(_array(reader, document, "prosumers"))
            if (p := _prosumer(reader, raw, f"prosumers[{index}]")) is not None
        )
    _check_price_order(reader, pricing, manager)
    if reader.problems:
        raise MarketFileError(source, reader.problems)
    return MarketSpec(
        rules=rules,
        pricing=pricing,
        consumers=consumers,
        prosumers=prosumers,
        manager=manager,
        timezone=timezone,
        wind=wind,
        power_curve=curve,
    )


# ---------------------------------------------------------------------- converters


def _decimal_price(raw: object) -> Decimal | None:
    value = number(raw)
    if value is None:
        return None
    price = Decimal(str(value))
    if not MIN_PRICE <= price <= MAX_PRICE or price != price.quantize(Decimal("0.01")):
        return None
    return price


def _fraction(raw: object) -> float | None:
    value = number(raw)
    return value if value is not None and 0 <= value <= 1 else None


def _boolean(raw: object) -> bool | None:
    return raw if isinstance(raw, bool) else None


def _mw(convert: Callable[[object], float | None]) -> Callable[[object], float | None]:
    def read(raw: object) -> float | None:
        value = convert(raw)
        return value / W_PER_MW if value is not None and value >= 0 else None

    return read


_power_mw = _mw(power)
_energy_mwh = _mw(energy)


def _profile(raw: object) -> DailyProfile | None:
    if isinstance(raw, list) and len(raw) == 24:
        values = [_fraction(item) for item in raw]
        if all(v is not None for v in values):
            return DailyProfile(tuple(v for v in values if v is not None))
    return None


def _hourly_speed(raw: object) -> DailyProfile | None:
    single = number(raw)
    if single is not None:
        return DailyProfile.constant(single) if single >= 0 else None
    if isinstance(raw, list) and len(raw) == 24:
        values = [number(item) for item in raw]
        if all(v is not None and v >= 0 for v in values):
            return DailyProfile(tuple(v for v in values if v is not None))
    return None


def _gridpools(raw: object) -> frozenset[int] | None:
    if not isinstance(raw, list) or not raw:
        return None
    ids = [positive_integer(item) for item in raw]
    if any(i is None for i in ids) or len(set(ids)) != len(ids):
        return None
    return frozenset(i for i in ids if i is not None)


def _codes(raw: object) -> frozenset[str] | None:
    if not isinstance(raw, list):
        return None
    codes = [string(item) for item in raw]
    if any(c is None for c in codes):
        return None
    return frozenset(c.strip() for c in codes if c is not None)


def _zone(raw: object) -> ZoneInfo | None:
    name = string(raw)
    if name is None:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def _array(reader: Reader, data: Mapping[str, Any], key: str) -> list[Any]:
    value = data[key]
    if not isinstance(value, list):
        reader.fail(key, "an array of tables", value)
        return []
    return value


def _or(value: _T | None, default: _T) -> _T:
    return default if value is None else value


# ---------------------------------------------------------------------- sections


def _rules(reader: Reader, data: Mapping[str, Any], base: MarketSpec) -> tuple[MarketRules, Any]:
    path = "market"
    defaults = base.rules
    reader.unknown_keys(
        data,
        {
            "gridpool_ids",
            "delivery_areas",
            "market_area",
            "period_minutes",
            "gate_closure_minutes",
            "horizon_hours",
            "currency",
            "timezone",
        },
        path,
    )
    gridpools = reader.value(
        data,
        "gridpool_ids",
        path,
        _gridpools,
        "a non-empty array of distinct gridpool ids > 0",
        default=defaults.gridpool_ids,
    )
    areas = reader.value(
        data,
        "delivery_areas",
        path,
        _codes,
        "an array of delivery area codes (empty: any code)",
        default=defaults.delivery_areas,
    )
    market_area = reader.value(
        data, "market_area", path, string, "a delivery area code", default=defaults.market_area
    )
    period_minutes = reader.value(
        data,
        "period_minutes",
        path,
        lambda r: v if (v := integer(r)) in PERIOD_MINUTES else None,
        f"one of {list(PERIOD_MINUTES)}",
        default=int(defaults.period.total_seconds() // 60),
    )
    gate_minutes = reader.value(
        data,
        "gate_closure_minutes",
        path,
        checked(number, lambda v: 0 <= v <= 24 * 60),
        "minutes 0..1440 before delivery",
        default=defaults.gate_closure.total_seconds() / 60,
    )
    horizon_hours = reader.value(
        data,
        "horizon_hours",
        path,
        checked(number, lambda v: 0 < v <= MAX_HORIZON_HOURS),
        f"hours > 0 and at most {MAX_HORIZON_HOURS}",
        default=defaults.horizon.total_seconds() / 3600,
    )
    currency = reader.value(
        data,
        "currency",
        path,
        lambda r: r if r in CURRENCIES else None,
        f"one of {list(CURRENCIES)}",
        default=defaults.currency,
    )
    timezone = reader.value(
        data,
        "timezone",
        path,
        _zone,
        "an IANA time zone name such as 'Europe/Berlin'",
        default=base.timezone,
    )
    period = timedelta(minutes=_or(period_minutes, 15))
    gate = timedelta(minutes=_or(gate_minutes, 5.0))
    horizon = timedelta(hours=_or(horizon_hours, 48.0))
    if horizon <= gate + period:
        least = (gate + period) / timedelta(hours=1)
        reader.fail(
            join(path, "horizon_hours"),
            f"hours beyond one period plus the gate closure ({least:g} h)",
            horizon_hours,
        )
    rules = MarketRules(
        gridpool_ids=_or(gridpools, defaults.gridpool_ids),
        delivery_areas=_or(areas, defaults.delivery_areas),
        market_area=_or(market_area, defaults.market_area),
        period=period,
        gate_closure=gate,
        horizon=horizon,
        currency=_or(currency, defaults.currency),
    )
    return rules, _or(timezone, base.timezone)


def _pricing(reader: Reader, data: Mapping[str, Any], defaults: Pricing) -> Pricing:
    path = "pricing"
    reader.unknown_keys(data, {"renewable_price", "scarcity_price", "coal_tranches"}, path)
    expected = f"a price in EUR/MWh, {MIN_PRICE}..{MAX_PRICE}, at most 2 decimals"
    renewable = reader.value(
        data, "renewable_price", path, _decimal_price, expected, default=defaults.renewable_price
    )
    scarcity = reader.value(
        data, "scarcity_price", path, _decimal_price, expected, default=defaults.scarcity_price
    )
    tranches = reader.value(
        data,
        "coal_tranches",
        path,
        lambda r: v if (v := integer(r)) is not None and 1 <= v <= 1000 else None,
        "an integer 1..1000",
        default=defaults.coal_tranches,
    )
    return Pricing(
        renewable_price=_or(renewable, defaults.renewable_price),
        scarcity_price=_or(scarcity, defaults.scarcity_price),
        coal_tranches=_or(tranches, defaults.coal_tranches),
    )


def _wind(
    reader: Reader, data: Mapping[str, Any], base: MarketSpec
) -> tuple[DailyProfile, tuple[tuple[float, float], ...]]:
    path = "wind"
    reader.unknown_keys(data, {"hourly_speed", "power_curve"}, path)
    speed = reader.value(
        data,
        "hourly_speed",
        path,
        _hourly_speed,
        "a wind speed in m/s >= 0, or 24 hourly values",
        default=base.wind,
    )
    curve = reader.value(
        data,
        "power_curve",
        path,
        read_curve,
        "at least 2 [speed m/s, fraction 0..1] points with rising speeds",
        default=base.power_curve,
    )
    return _or(speed, base.wind), _or(curve, base.power_curve)


def _manager(reader: Reader, data: Mapping[str, Any], defaults: CoalPlant) -> CoalPlant:
    path = "manager"
    reader.unknown_keys(
        data,
        {
            "name",
            "max_production",
            "ratio",
            "status",
            "carbon_intensity",
            "marginal_cost",
            "full_load_cost",
        },
        path,
    )
    name = reader.value(data, "name", path, string, "a non-empty string", default=defaults.name)
    max_mw = reader.value(
        data,
        "max_production",
        path,
        _power_mw,
        'a power >= 0 (e.g. "4 MW")',
        default=defaults.max_production_mw,
    )
    ratio = reader.value(data, "ratio", path, _fraction, "a fraction 0..1", default=defaults.ratio)
    status = reader.value(
        data, "status", path, _boolean, "true (on) or false (off)", default=defaults.status
    )
    carbon = reader.value(
        data,
        "carbon_intensity",
        path,
        checked(number, lambda v: v >= 0),
        "kg CO2 per MWh >= 0",
        default=defaults.carbon_intensity_kg_per_mwh,
    )
    expected = "a price in EUR/MWh, at most 2 decimals"
    low = reader.value(
        data, "marginal_cost", path, _decimal_price, expected, default=defaults.marginal_cost
    )
    high = reader.value(
        data, "full_load_cost", path, _decimal_price, expected, default=defaults.full_load_cost
    )
    return CoalPlant(
        name=_or(name, defaults.name),
        max_production_mw=_or(max_mw, defaults.max_production_mw),
        ratio=_or(ratio, defaults.ratio),
        status=_or(status, defaults.status),
        carbon_intensity_kg_per_mwh=_or(carbon, defaults.carbon_intensity_kg_per_mwh),
        marginal_cost=_or(low, defaults.marginal_cost),
        full_load_cost=_or(high, defaults.full_load_cost),
    )


def _check_price_order(reader: Reader, pricing: Pricing, manager: CoalPlant) -> None:
    """Offers must climb: renewable ≤ coal at no load ≤ coal at full load ≤ scarcity."""
    if manager.full_load_cost < manager.marginal_cost:
        reader.fail(
            "manager.full_load_cost",
            f"a price >= marginal_cost ({manager.marginal_cost})",
            manager.full_load_cost,
        )
    if pricing.renewable_price > manager.marginal_cost:
        reader.fail(
            "pricing.renewable_price",
            f"a price <= manager.marginal_cost ({manager.marginal_cost})",
            pricing.renewable_price,
        )
    if pricing.scarcity_price < manager.full_load_cost:
        reader.fail(
            "pricing.scarcity_price",
            f"a price >= manager.full_load_cost ({manager.full_load_cost})",
            pricing.scarcity_price,
        )


def _consumer(reader: Reader, raw: object, path: str) -> ConsumerGroup | None:
    if not isinstance(raw, dict):
        reader.fail(path, "a table", raw)
        return None
    reader.unknown_keys(raw, {"name", "demand", "profile"}, path)
    name = reader.value(raw, "name", path, string, "a non-empty string", default=path)
    demand = reader.value(raw, "demand", path, _power_mw, 'a peak power >= 0 (e.g. "2 MW")')
    profile = reader.value(raw, "profile", path, _profile, "24 hourly factors 0..1")
    if name is None or demand is None or profile is None:
        return None
    return ConsumerGroup(name=name, peak_demand_mw=demand, profile=profile)


def _prosumer(reader: Reader, raw: object, path: str) -> ProsumerSpec | None:
    if not isinstance(raw, dict):
        reader.fail(path, "a table", raw)
        return None
    reader.unknown_keys(
        raw,
        {
            "name",
            "count",
            "turbines",
            "demand",
            "profile",
            "batteries",
            "input_ratio",
            "output_ratio",
            "status",
        },
        path,
    )
    name = reader.value(raw, "name", path, string, "a non-empty string", default=path)
    count = reader.value(raw, "count", path, positive_integer, "an integer > 0", default=1)
    turbines = reader.value(
        raw,
        "turbines",
        path,
        lambda r: _list_of(r, _power_mw),
        'an array of turbine rated powers >= 0 (e.g. ["25 kW", "25 kW"])',
    )
    demand = reader.value(raw, "demand", path, _power_mw, 'a peak power >= 0 (e.g. "3 kW")')
    profile = reader.value(raw, "profile", path, _profile, "24 hourly factors 0..1")
    input_ratio = reader.value(
        raw, "input_ratio", path, _fraction, "a fraction 0..1 of a surplus stored", default=0.5
    )
    output_ratio = reader.value(
        raw,
        "output_ratio",
        path,
        _fraction,
        "a fraction 0..1 of a shortfall drawn from the batteries",
        default=1.0,
    )
    status = reader.value(
        raw, "status", path, _boolean, "true (turbines run) or false (stopped)", default=True
    )
    batteries: list[BatterySpec] = []
    raw_batteries = raw.get("batteries", [])
    if not isinstance(raw_batteries, list):
        reader.fail(join(path, "batteries"), "an array of tables", raw_batteries)
    else:
        for index, item in enumerate(raw_batteries):
            battery = _battery(reader, item, f"{path}.batteries[{index}]")
            if battery is not None:
                batteries.append(battery)
    if (
        name is None
        or count is None
        or turbines is None
        or demand is None
        or profile is None
        or input_ratio is None
        or output_ratio is None
        or status is None
    ):
        return None
    return ProsumerSpec(
        name=name,
        count=count,
        turbines_mw=turbines,
        peak_demand_mw=demand,
        profile=profile,
        batteries=tuple(batteries),
        input_ratio=input_ratio,
        output_ratio=output_ratio,
        status=status,
    )


def _list_of(raw: object, convert: Callable[[object], float | None]) -> tuple[float, ...] | None:
    if not isinstance(raw, list):
        return None
    values = [convert(item) for item in raw]
    if any(v is None for v in values):
        return None
    return tuple(v for v in values if v is not None)


def _battery(reader: Reader, raw: object, path: str) -> BatterySpec | None:
    if not isinstance(raw, dict):
        reader.fail(path, "a table", raw)
        return None
    reader.unknown_keys(raw, {"capacity", "max_charge", "max_output", "initial"}, path)
    capacity = reader.value(
        raw,
        "capacity",
        path,
        lambda r: v if (v := _energy_mwh(r)) is not None and v > 0 else None,
        'an energy > 0 (e.g. "13.5 kWh")',
    )
    max_charge = reader.value(raw, "max_charge", path, _power_mw, 'a power >= 0 (e.g. "5 kW")')
    max_output = reader.value(raw, "max_output", path, _power_mw, 'a power >= 0 (e.g. "5 kW")')
    initial = reader.value(raw, "initial", path, _energy_mwh, "an energy >= 0", default=0.0)
    if capacity is not None and initial is not None and initial > capacity:
        shown = f"{capacity * WH_PER_MWH / 1000:g} kWh"
        reader.fail(join(path, "initial"), f"energy 0..capacity ({shown})", raw.get("initial"))
        return None
    if capacity is None or max_charge is None or max_output is None or initial is None:
        return None
    return BatterySpec(
        capacity_mwh=capacity,
        max_charge_mw=max_charge,
        max_output_mw=max_output,
        initial_mwh=initial,
    )


__all__ = ["MarketFileError", "load_market", "parse_market"]
