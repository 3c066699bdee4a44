"""The scenario file: the shipped example, defaults, and precise errors."""

from __future__ import annotations

import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from edge_controller.servers.market.file import MarketFileError
from edge_controller.servers.market.model import default_market
from edge_controller.servers.sim.site import SiteFileError
from edge_controller.tools.scenario.file import (
    Bidding,
    MarketWind,
    ScenarioFileError,
    duration,
    load_scenario,
    parse_scenario,
    show_duration,
)
from tests.scenario.conftest import MARKET, SHIPPED, SITE, scenario_text


def problems(text: str, base: Path | None = None) -> list[str]:
    with pytest.raises(ScenarioFileError) as caught:
        parse_scenario(tomllib.loads(text), "s.toml", base)
    return caught.value.problems


def load_problems(path: Path) -> list[str]:
    with pytest.raises(ScenarioFileError) as caught:
        load_scenario(path)
    return caught.value.problems


def test_the_shipped_day() -> None:
    scenario = load_scenario(SHIPPED)
    spec = scenario.spec
    assert spec.site_path == SITE
    assert spec.market_path == MARKET
    assert scenario.market == default_market()
    assert spec.start == datetime(2025, 6, 20, 22, tzinfo=UTC)
    assert spec.start.utcoffset() == timedelta(hours=2)
    assert (spec.duration, spec.step, spec.physics_step) == (
        timedelta(hours=24),
        timedelta(seconds=60),
        timedelta(seconds=1),
    )
    assert spec.market_wind is MarketWind.MEASURED
    assert spec.strategy.max_volume_mw == pytest.approx(0.5)
    assert spec.strategy.max_import_w == 1e6
    assert spec.bid_horizon == timedelta(hours=24)
    assert spec.bidding is Bidding.OPTIMAL
    assert spec.degradation_eur_per_mwh == 10.0
    assert (spec.latitude, spec.longitude) == (None, None)
    assert scenario.site.microgrid.name == "Lindenhof demo site"


def test_the_bidding_kind_is_checked_by_name(tmp_path: Path) -> None:
    document = tomllib.loads(
        f'[scenario]\nsite = "{SITE}"\nstart = 2025-01-01T00:00:00Z\n'
        '[strategy]\nkind = "greedy"\ndegradation_cost = -1'
    )
    with pytest.raises(ScenarioFileError) as raised:
        parse_scenario(document, "day.toml", tmp_path)
    assert raised.value.problems == [
        "strategy.kind: expected 'optimal' or 'threshold', got 'greedy'",
        "strategy.degradation_cost: expected EUR/MWh >= 0, got -1",
    ]


def test_defaults_need_only_site_and_start(tmp_path: Path) -> None:
    spec = parse_scenario(
        tomllib.loads(f'[scenario]\nsite = "{SITE}"\nstart = 2025-01-01T00:00:00Z'),
        "s.toml",
        tmp_path,
    )
    assert spec.market_path is None
    assert spec.duration == timedelta(hours=24)
    assert spec.step == timedelta(seconds=60)
    assert spec.seed == 1
    assert spec.forecast_interval == timedelta(hours=1)
    assert spec.strategy.reserve_soc_pct == 20
    assert spec.end == datetime(2025, 1, 2, tzinfo=UTC)


def test_relative_paths_are_read_from_the_scenario_files_directory(tmp_path: Path) -> None:
    (tmp_path / "site.toml").write_text(SITE.read_text(encoding="utf-8"), encoding="utf-8")
    path = tmp_path / "day.toml"
    path.write_text('[scenario]\nsite = "site.toml"\nstart = 2025-01-01T00:00:00Z\n')
    assert load_scenario(path).spec.site_path == tmp_path / "site.toml"


def test_every_problem_is_listed_with_its_key_path(tmp_path: Path) -> None:
    found = problems(
        """
        [scenario]
        site = "nowhere.toml"
        start = 2025-06-21T00:00:00
        duration = "forever"
        step = "0.5s"
        physics_step = "2m"
        seed = -1
        colour = "blue"

        [location]
        latitude = 95

        [market]
        wind = "strong"

        [forecast]
        issue_interval = "2d"

        [strategy]
        reserve_soc = 120
        max_volume = "50 kW"
        max_import = "lots"
        price_sprad = 3

        [extra]
        """,
        tmp_path,
    )
    assert found == [
        "extra: unknown key; expected one of "
        "['forecast', 'location', 'market', 'scenario', 'strategy']",
        "scenario.colour: unknown key; expected one of "
        "['duration', 'physics_step', 'seed', 'site', 'start', 'step']",
        f"scenario.site: expected an existing file; {str(tmp_path / 'nowhere.toml')!r} is none, "
        "got 'nowhere.toml'",
        "scenario.start: expected an RFC 3339 timestamp with a UTC offset, like "
        "2025-06-21T00:00:00+02:00, got 2025-06-21 00:00:00",
        "scenario.duration: expected a duration like '60s', '15m' or '24h' (> 0), got 'forever'",
        "scenario.step: expected a whole number of seconds >= 1s, like '60s', got '0.5s'",
        "scenario.physics_step: expected a duration 0.001s-60s, got '2m'",
        "scenario.seed: expected an integer >= 0, got -1",
        "location.latitude: expected degrees -90..90, got 95",
        "location.longitude: missing; expected degrees -180..180",
        "market.wind: expected 'measured' or 'file', got 'strong'",
        "forecast.issue_interval: expected a duration 1m-24h, like '1h', got '2d'",
        "strategy.price_sprad: unknown key (did you mean 'price_spread'?); expected one of "
        "['degradation_cost', 'horizon', 'kind', 'max_export', 'max_import', 'max_volume', "
        "'price_spread', 'reserve_soc']",
        "strategy.reserve_soc: expected a percentage 0-100, got 120",
        "strategy.max_volume: expected a power >= 0.1 MW (the trading API's smallest order), "
        "like '500 kW', got '50 kW'",
        "strategy.max_import: expected a power >= 0 (W, or with a unit like '1 MW'), got 'lots'",
    ]


def test_missing_required_keys() -> None:
    assert problems("[scenario]\n") == [
        "scenario.site: missing; expected a file path (relative to the scenario file)",
        "scenario.start: missing; expected an RFC 3339 timestamp with a UTC offset, like "
        "2025-06-21T00:00:00+02:00",
    ]


def test_physics_step_longer_than_the_step(tmp_path: Path) -> None:
    text = f'[scenario]\nsite = "{SITE}"\nstart = 2025-01-01T00:00:00Z\n'
    found = problems(text + 'step = "10s"\nphysics_step = "20s"\n', tmp_path)
    assert found == ["scenario.physics_step: expected at most the step (10s), got '20s'"]


def test_a_duration_over_a_week(tmp_path: Path) -> None:
    text = f'[scenario]\nsite = "{SITE}"\nstart = 2025-01-01T00:00:00Z\nduration = "8d"\n'
    assert problems(text, tmp_path) == ["scenario.duration: expected at most 7d, got '8d'"]


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        (
            {"step": "7m"},
            "scenario.step: expected a divisor of the market's 15m period and 5m gate "
            "closure, got '7m'",
        ),
        (
            {"start": "2025-06-21T00:05:00+02:00"},
            "scenario.start: expected a start of a 15m delivery period (periods count from "
            "00:00 UTC), got 2025-06-21T00:05:00+02:00",
        ),
        (
            {"duration": "20m"},
            "scenario.duration: expected a whole number of 15m periods, got '20m'",
        ),
    ],
)
def test_times_must_fit_the_markets_periods(
    tmp_path: Path, changes: dict[str, str], expected: str
) -> None:
    path = tmp_path / "s.toml"
    path.write_text(scenario_text(**changes), encoding="utf-8")  # type: ignore[arg-type]
    assert load_problems(path) == [expected]


def test_a_bidding_horizon_beyond_the_markets(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text(scenario_text(horizon="3d"))
    assert load_problems(path) == [
        "strategy.horizon: expected 15m (one period) to 2d (the market's horizon), got '3d'"
    ]


def test_not_a_file_or_not_toml(tmp_path: Path) -> None:
    missing = tmp_path / "missing.toml"
    with pytest.raises(ScenarioFileError) as caught:
        load_scenario(missing)
    assert str(caught.value) == f"{missing}: cannot read the file: No such file or directory"
    broken = tmp_path / "broken.toml"
    broken.write_text("[scenario\n")
    (problem,) = load_problems(broken)
    assert problem.startswith("not valid TOML: ")


def test_the_site_and_market_files_report_their_own_errors(tmp_path: Path) -> None:
    bad_site = tmp_path / "site.toml"
    bad_site.write_text("[microgrid]\nid = 0\n")
    path = tmp_path / "s.toml"
    path.write_text(scenario_text().replace(str(SITE), str(bad_site)))
    with pytest.raises(SiteFileError) as site_error:
        load_scenario(path)
    assert str(site_error.value).startswith("site.toml: microgrid.id: expected an integer id > 0")

    bad_market = tmp_path / "market.toml"
    bad_market.write_text("[manager]\nratio = 2\n")
    path.write_text(scenario_text().replace(str(MARKET), str(bad_market)))
    with pytest.raises(MarketFileError) as market_error:
        load_scenario(path)
    assert str(market_error.value).startswith("market.toml: manager.ratio: ")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("60s", timedelta(seconds=60)),
        ("15m", timedelta(minutes=15)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("2d", timedelta(days=2)),
        ("0.5s", timedelta(milliseconds=500)),
        (90, timedelta(seconds=90)),
        (0.25, timedelta(milliseconds=250)),
        ("", None),
        ("0s", None),
        ("-5m", None),
        ("15 minutes", None),
        (True, None),
        (0, None),
    ],
)
def test_durations(text: object, expected: timedelta | None) -> None:
    assert duration(text) == expected
    if expected is not None:
        assert duration(show_duration(expected)) == expected
