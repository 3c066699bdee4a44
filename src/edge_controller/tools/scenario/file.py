"""The scenario file: which site, which day, which market and strategy, parsed with precise errors.

`config/scenario-day.toml` is the commented example. In short::

    [scenario]
    site = "sim-site.toml"               # site file, relative to this file
    start = 2025-06-21T00:00:00+02:00    # RFC 3339 with a UTC offset, on the market's period grid
    duration = "24h"                     # a whole number of delivery periods (default 24h)
    step = "60s"                         # control step (default 60s)
    physics_step = "1s"                  # the simulator's physics sub-step (default 1s)
    seed = 1                             # forecast error seed (default 1)

    [location]                           # optional: default the site's [microgrid] position
    latitude = 52.52
    longitude = 13.405

    [market]
    file = "market-default.toml"         # optional: default the built-in default market
    wind = "measured"                    # members' wind: "measured" (the site's weather) or "file"

    [forecast]
    issue_interval = "1h"                # a new weather forecast this often (default 1h)

    [strategy]                           # the bid builder's parameters (`trading.bids.Strategy`)
    reserve_soc = 20                     # % never sold below
    price_spread = 20                    # EUR/MWh between the buy and the sell threshold
    max_volume = "0.5 MW"                # largest order
    horizon = "6h"                       # periods looked ahead for the mean price
    max_import = "1 MW"                  # optional grid connection limits
    max_export = "1 MW"
    kind = "optimal"                     # "optimal" (trading.optimizer) or "threshold" (bids)
    degradation_cost = 10                # EUR/MWh charged or discharged (optimal; and the value)

Durations are strings with units ("90s", "15m", "1h30m", "2d") or seconds as a number;
powers take units ("500 kW") or watts. Parsing collects *every* problem and raises one
`ScenarioFileError` whose lines each name the file, the key path, what was expected and
what was found, e.g.::

    scenario-day.toml: scenario.step: expected a divisor of the market's 15-minute
    period and 5-minute gate closure, got '7m'

The site file and the market file are read by their own parsers (`SiteFileError`,
`MarketFileError`, each naming its own file); a path that does not exist is reported
here, under the key that names it.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

from edge_controller.common.toml_reader import (
    Reader,
    checked,
    integer,
    join,
    number,
    power,
    string,
    timestamp,
)
from edge_controller.servers.market.file import load_market
from edge_controller.servers.market.model import MarketSpec, default_market
from edge_controller.servers.sim.site import SiteSpec, load_site
from edge_controller.trading.bids import Strategy
from edge_controller.trading.periods import is_period_start

_DURATION = re.compile(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+(?:\.\d+)?)s)?")
MAX_DURATION = timedelta(days=7)
"""The longest scenario: the weather data and the market horizon are about days."""


class MarketWind(StrEnum):
    """Where the market members' turbines get their wind."""

    MEASURED = "measured"
    """The scenario's measured weather at the location (the site's own wind), at a small
    turbine's hub height, through the shared wind power curve: the price then moves with
    the weather the site sees, and expected prices carry the forecast's error."""
    FILE = "file"
    """The market file's own 24 hourly wind speeds and power curve (deterministic)."""


class Bidding(StrEnum):
    """Which bid builder a scenario runs."""

    OPTIMAL = "optimal"
    """`trading.optimizer`: the plan over the horizon, re-solved each period."""
    THRESHOLD = "threshold"
    """`trading.bids`: sell above `mean + spread/2`, buy below `mean − spread/2`."""


class ScenarioFileError(ValueError):
    """A scenario file that cannot be used, with one line per problem found."""

    def __init__(self, source: str, problems: list[str]) -> None:
        """Keep every problem; the message lists them, file name first on each line."""
        self.source = source
        self.problems = problems
        super().__init__("\n".join(f"{source}: {problem}" for problem in problems))


@dataclass(frozen=True, slots=True)
class ScenarioSpec:
    """A scenario file, validated on its own (the files it names not read yet)."""

    source: str
    """The file's name, for messages."""
    site_path: Path
    market_path: Path | None
    """None: the built-in default market (`market.model.default_market`)."""
    start: datetime
    """Timezone-aware; its UTC offset is also the local time of the site's profiles."""
    duration: timedelta
    step: timedelta
    physics_step: timedelta
    seed: int
    latitude: float | None
    """None (with `longitude`): the site file's `[microgrid]` position."""
    longitude: float | None
    market_wind: MarketWind
    forecast_interval: timedelta
    strategy: Strategy
    bid_horizon: timedelta
    bidding: Bidding = field(default_factory=lambda: Bidding.OPTIMAL)
    """Which bid builder decides: the optimizer or the threshold strategy."""
    degradation_eur_per_mwh: float = 10.0
    """Wear per MWh charged or discharged at the meter: the optimizer's cost, and the value's."""

    @property
    def end(self) -> datetime:
        """When the scenario ends."""
        return self.start + self.duration


@dataclass(frozen=True, slots=True)
class Scenario:
    """A scenario with the site and the market it names, checked against each other."""

    spec: ScenarioSpec
    site: SiteSpec
    market: MarketSpec


def duration(raw: object) -> timedelta | None:
    """Read a duration > 0: "90s", "15m", "1h30m", "2d", "0.5s", or seconds as a number."""
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int | float):
        seconds = number(raw)
        return timedelta(seconds=seconds) if seconds is not None and seconds > 0 else None
    if not isinstance(raw, str):
        return None
    text = raw.strip().replace(" ", "")
    match = _DURATION.fullmatch(text)
    if not text or match is None or not any(match.groups()):
        return None
    days, hours, minutes = (int(part or 0) for part in match.groups()[:3])
    seconds = float(match.group(4) or 0)
    value = timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)
    return value if value > timedelta(0) else None


def show_duration(value: timedelta) -> str:
    """Write a duration as the file would: "15m", "1h30m", "90s", "0.5s"."""
    seconds = value.total_seconds()
    if seconds != int(seconds):
        return f"{seconds:g}s"
    whole = int(seconds)
    parts = []
    for unit, size in (("d", 86_400), ("h", 3600), ("m", 60), ("s", 1)):
        count, whole = divmod(whole, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts) or "0s"


_DURATION_EXPECTED = "a duration like '60s', '15m' or '24h' (> 0)"
_SECTIONS = {"scenario", "location", "market", "forecast", "strategy"}


def parse_scenario(
    document: Mapping[str, Any], source: str = "<scenario>", base_dir: Path | None = None
) -> ScenarioSpec:
    """Validate a parsed scenario file; relative paths are resolved against `base_dir`.

    Raises:
        ScenarioFileError: listing every problem, each with its key path.
    """
    reader = Reader()
    base = base_dir if base_dir is not None else Path.cwd()
    reader.unknown_keys(document, _SECTIONS, "")

    path = "scenario"
    data = reader.table(document, "scenario", "")
    reader.unknown_keys(data, {"site", "start", "duration", "step", "physics_step", "seed"}, path)
    site_path = _file(reader, data, "site", path, base, required=True)
    start = reader.value(
        data,
        "start",
        path,
        timestamp,
        "an RFC 3339 timestamp with a UTC offset, like 2025-06-21T00:00:00+02:00",
    )
    length = reader.value(
        data, "duration", path, duration, _DURATION_EXPECTED, default=timedelta(hours=24)
    )
    if length is not None and length > MAX_DURATION:
        reader.fail(
            join(path, "duration"), f"at most {show_duration(MAX_DURATION)}", data["duration"]
        )
        length = None
    step = reader.value(
        data,
        "step",
        path,
        checked_duration(lambda d: d >= timedelta(seconds=1) and _whole_seconds(d)),
        "a whole number of seconds >= 1s, like '60s'",
        default=timedelta(seconds=60),
    )
    physics = reader.value(
        data,
        "physics_step",
        path,
        checked_duration(lambda d: timedelta(milliseconds=1) <= d <= timedelta(seconds=60)),
        "a duration 0.001s-60s",
        default=timedelta(seconds=1),
    )
    if step is not None and physics is not None and physics > step:
        reader.fail(
            join(path, "physics_step"),
            f"at most the step ({show_duration(step)})",
            data.get("physics_step", show_duration(physics)),
        )
    seed = reader.value(
        data, "seed", path, checked_int(lambda v: v >= 0), "an integer >= 0", default=1
    )

    latitude, longitude = _location(reader, reader.table(document, "location", ""))

    path = "market"
    data = reader.table(document, "market", "")
    reader.unknown_keys(data, {"file", "wind"}, path)
    market_path = _file(reader, data, "file", path, base, required=False)
    wind = reader.value(
        data,
        "wind",
        path,
        _market_wind,
        " or ".join(repr(w.value) for w in MarketWind),
        default=MarketWind.MEASURED,
    )

    path = "forecast"
    data = reader.table(document, "forecast", "")
    reader.unknown_keys(data, {"issue_interval"}, path)
    interval = reader.value(
        data,
        "issue_interval",
        path,
        checked_duration(lambda d: timedelta(minutes=1) <= d <= timedelta(days=1)),
        "a duration 1m-24h, like '1h'",
        default=timedelta(hours=1),
    )

    strategy_table = reader.table(document, "strategy", "")
    strategy, horizon = _strategy(reader, strategy_table)
    bidding = reader.value(
        strategy_table,
        "kind",
        "strategy",
        _bidding,
        " or ".join(repr(b.value) for b in Bidding),
        default=Bidding.OPTIMAL,
    )
    degradation = reader.value(
        strategy_table,
        "degradation_cost",
        "strategy",
        checked(number, lambda v: v >= 0),
        "EUR/MWh >= 0",
        default=10.0,
    )

    if (
        reader.problems
        or site_path is None
        or start is None
        or length is None
        or step is None
        or physics is None
        or seed is None
        or wind is None
        or interval is None
        or strategy is None
        or horizon is None
        or bidding is None
        or degradation is None
    ):
        raise ScenarioFileError(source, reader.problems or ["invalid"])
    return ScenarioSpec(
        source=source,
        site_path=site_path,
        market_path=market_path,
        start=start,
        duration=length,
        step=step,
        physics_step=physics,
        seed=seed,
        latitude=latitude,
        longitude=longitude,
        market_wind=wind,
        forecast_interval=interval,
        strategy=strategy,
        bid_horizon=horizon,
        bidding=bidding,
        degradation_eur_per_mwh=degradation,
    )


def load_scenario(path: Path) -> Scenario:
    """Read a scenario file and the site and market files it names; check them together.

    Raises:
        ScenarioFileError: the scenario file is missing, not TOML, invalid, or does not
            fit the market (step, start, duration against the delivery periods).
        SiteFileError: the site file is invalid (naming the site file).
        MarketFileError: the market file is invalid (naming the market file).
    """
    source = path.name
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) else str(error)
        raise ScenarioFileError(str(path), [f"cannot read the file: {reason}"]) from error
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ScenarioFileError(source, [f"not valid TOML: {error}"]) from error
    spec = parse_scenario(document, source, Path(os.path.abspath(path)).parent)
    site = load_site(spec.site_path)
    market = load_market(spec.market_path) if spec.market_path is not None else default_market()
    check_against_market(spec, market)
    return Scenario(spec, site, market)


def check_against_market(spec: ScenarioSpec, market: MarketSpec) -> None:
    """Check that the scenario's times fit the market's delivery periods.

    Every delivery period, gate closure and dispatch start must fall on a control step,
    so the step divides the period and the gate closure lead; the start lies on the
    period grid and the duration is a whole number of periods; the bidding horizon is
    at least one period and within the market's horizon.

    Raises:
        ScenarioFileError: naming the scenario file's keys.
    """
    rules = market.rules
    period, lead = rules.period, rules.gate_closure
    problems: list[str] = []
    what = f"the market's {show_duration(period)} period"
    if lead > timedelta(0):
        what += f" and {show_duration(lead)} gate closure"
    if period % spec.step or (lead > timedelta(0) and lead % spec.step):
        problems.append(
            f"scenario.step: expected a divisor of {what}, got {show_duration(spec.step)!r}"
        )
    if not is_period_start(spec.start, period):
        problems.append(
            f"scenario.start: expected a start of a {show_duration(period)} delivery period "
            f"(periods count from 00:00 UTC), got {spec.start.isoformat()}"
        )
    if spec.duration % period:
        problems.append(
            f"scenario.duration: expected a whole number of {show_duration(period)} periods, "
            f"got {show_duration(spec.duration)!r}"
        )
    if not period <= spec.bid_horizon <= rules.horizon:
        problems.append(
            f"strategy.horizon: expected {show_duration(period)} (one period) to "
            f"{show_duration(rules.horizon)} (the market's horizon), "
            f"got {show_duration(spec.bid_horizon)!r}"
        )
    if problems:
        raise ScenarioFileError(spec.source, problems)


def checked_duration(ok: Callable[[timedelta], bool]) -> Callable[[object], timedelta | None]:
    """Return a converter that reads a duration and keeps it only if `ok(duration)`."""

    def read(raw: object) -> timedelta | None:
        value = duration(raw)
        return value if value is not None and ok(value) else None

    return read


def checked_int(ok: Callable[[int], bool]) -> Callable[[object], int | None]:
    """Return a converter that reads an integer and keeps it only if `ok(value)`."""

    def read(raw: object) -> int | None:
        value = integer(raw)
        return value if value is not None and ok(value) else None

    return read


def _bidding(raw: object) -> Bidding | None:
    return Bidding(raw) if isinstance(raw, str) and raw in tuple(Bidding) else None


def _market_wind(raw: object) -> MarketWind | None:
    return MarketWind(raw) if isinstance(raw, str) and raw in tuple(MarketWind) else None


def _whole_seconds(value: timedelta) -> bool:
    return value.microseconds == 0


def _file(
    reader: Reader, data: Mapping[str, Any], key: str, path: str, base: Path, *, required: bool
) -> Path | None:
    expected = "a file path (relative to the scenario file)"
    if required:
        raw = reader.value(data, key, path, string, expected)
    else:
        raw = reader.value(data, key, path, string, expected, default=None)
    if raw is None:
        return None
    resolved = Path(os.path.abspath(base / raw))  # as written: symlinks kept
    if not resolved.is_file():
        reader.fail(join(path, key), f"an existing file; {str(resolved)!r} is none", raw)
        return None
    return resolved


def _location(reader: Reader, data: Mapping[str, Any]) -> tuple[float | None, float | None]:
    path = "location"
    reader.unknown_keys(data, {"latitude", "longitude"}, path)
    if not data:
        return None, None
    latitude = reader.value(
        data, "latitude", path, checked(number, lambda v: -90 <= v <= 90), "degrees -90..90"
    )
    longitude = reader.value(
        data, "longitude", path, checked(number, lambda v: -180 <= v <= 180), "degrees -180..180"
    )
    return latitude, longitude


def _strategy(reader: Reader, data: Mapping[str, Any]) -> tuple[Strategy | None, timedelta | None]:
    path = "strategy"
    reader.unknown_keys(
        data,
        {
            "reserve_soc",
            "price_spread",
            "max_volume",
            "horizon",
            "max_import",
            "max_export",
            "kind",
            "degradation_cost",
        },
        path,
    )
    defaults = Strategy()
    reserve = reader.value(
        data,
        "reserve_soc",
        path,
        checked(number, lambda v: 0 <= v <= 100),
        "a percentage 0-100",
        default=defaults.reserve_soc_pct,
    )
    spread = reader.value(
        data,
        "price_spread",
        path,
        checked(number, lambda v: v >= 0),
        "EUR/MWh >= 0",
        default=defaults.price_spread,
    )
    volume_w = reader.value(
        data,
        "max_volume",
        path,
        checked(power, lambda v: v >= defaults.min_quantity_mw * 1e6),
        f"a power >= {defaults.min_quantity_mw:g} MW (the trading API's smallest order), "
        "like '500 kW'",
        default=defaults.max_volume_mw * 1e6,
    )
    horizon = reader.value(
        data, "horizon", path, duration, _DURATION_EXPECTED, default=timedelta(hours=6)
    )
    limits: dict[str, float | None] = {}
    for key in ("max_import", "max_export"):
        limits[key] = reader.value(
            data,
            key,
            path,
            checked(power, lambda v: v >= 0),
            "a power >= 0 (W, or with a unit like '1 MW')",
            default=None,
        )
    if reserve is None or spread is None or volume_w is None:
        return None, horizon
    strategy = Strategy(
        reserve_soc_pct=reserve,
        price_spread=spread,
        max_volume_mw=volume_w / 1e6,
        max_import_w=limits["max_import"],
        max_export_w=limits["max_export"],
    )
    return strategy, horizon


__all__ = [
    "MAX_DURATION",
    "Bidding",
    "MarketWind",
    "Scenario",
    "ScenarioFileError",
    "ScenarioSpec",
    "check_against_market",
    "duration",
    "load_scenario",
    "parse_scenario",
    "show_duration",
]
