"""The market file: the shipped example, partial files, and precise errors."""

from __future__ import annotations

import tomllib
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from edge_controller.servers.market.file import MarketFileError, load_market, parse_market
from edge_controller.servers.market.model import default_market

EXAMPLE = Path(__file__).resolve().parents[3] / "config" / "market-default.toml"


def test_the_shipped_example_is_the_default_market() -> None:
    assert load_market(EXAMPLE) == default_market()


def test_a_partial_file_keeps_the_defaults_for_the_rest() -> None:
    spec = parse_market(
        tomllib.loads(
            """
            [market]
            gridpool_ids = [3, 4]
            period_minutes = 60
            gate_closure_minutes = 10
            [manager]
            ratio = 0.5
            status = false
            """
        )
    )
    base = default_market()
    assert spec.rules.gridpool_ids == frozenset({3, 4})
    assert (spec.rules.period, spec.rules.gate_closure) == (
        timedelta(hours=1),
        timedelta(minutes=10),
    )
    assert (spec.manager.ratio, spec.manager.status) == (0.5, False)
    assert spec.manager.max_production_mw == base.manager.max_production_mw
    assert spec.consumers == base.consumers
    assert spec.prosumers == base.prosumers


def test_empty_lists_mean_none() -> None:
    spec = parse_market({"consumers": [], "prosumers": []})
    assert (spec.consumers, spec.prosumers) == ((), ())


def test_members_in_a_file() -> None:
    spec = parse_market(
        tomllib.loads(
            """
            [pricing]
            scarcity_price = 999.99
            [[consumers]]
            name = "street"
            demand = "500 kW"
            profile = [0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5,
                       0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 1.0]
            [[prosumers]]
            turbines = ["10 kW"]
            demand = 2000
            profile = [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]
            batteries = [{ capacity = "10 kWh", max_charge = "3 kW", max_output = "3 kW" }]
            """
        )
    )
    assert spec.pricing.scarcity_price == Decimal("999.99")
    (street,) = spec.consumers
    assert (street.name, street.peak_demand_mw, street.profile.hourly[23]) == ("street", 0.5, 1.0)
    (prosumer,) = spec.prosumers
    assert (prosumer.name, prosumer.count, prosumer.turbines_mw) == ("prosumers[0]", 1, (0.01,))
    assert (prosumer.peak_demand_mw, prosumer.capacity_mwh) == (0.002, 0.01)
    assert prosumer.batteries[0].initial_mwh == 0.0


def test_every_problem_is_listed_with_its_key_path() -> None:
    with pytest.raises(MarketFileError) as caught:
        parse_market(
            tomllib.loads(
                """
                [market]
                period_minute = 15
                period_minutes = 7
                timezone = "Mars/Olympus"
                [manager]
                ratio = 1.5
                marginal_cost = 200.0
                [wind]
                power_curve = [[5.0, 0.1], [3.0, 0.5]]
                [[consumers]]
                name = "short"
                demand = "1 MW"
                profile = [1.0, 1.0]
                [[prosumers]]
                turbines = ["10 kW"]
                demand = "-2 kW"
                profile = [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]
                [[prosumers.batteries]]
                capacity = "10 kWh"
                max_charge = "3 kW"
                max_output = "3 kW"
                initial = "20 kWh"
                """
            ),
            "market.toml",
        )
    lines = str(caught.value).splitlines()
    assert all(line.startswith("market.toml: ") for line in lines)
    expected = [
        "market.period_minute: unknown key (did you mean 'period_minutes'?)",
        "market.period_minutes: expected one of [5, 15, 30, 60], got 7",
        "market.timezone: expected an IANA time zone name such as 'Europe/Berlin', "
        "got 'Mars/Olympus'",
        "manager.ratio: expected a fraction 0..1, got 1.5",
        "wind.power_curve: expected at least 2 [speed m/s, fraction 0..1] points",
        "consumers[0].profile: expected 24 hourly factors 0..1",
        "prosumers[0].demand: expected a peak power >= 0",
        "prosumers[0].batteries[0].initial: expected energy 0..capacity (10 kWh), got '20 kWh'",
        "manager.full_load_cost: expected a price >= marginal_cost (200.0), got 180",
    ]
    for fragment in expected:
        assert any(fragment in line for line in lines), (fragment, lines)


def test_files_that_cannot_be_read(tmp_path: Path) -> None:
    with pytest.raises(MarketFileError, match=r"absent.toml: cannot read the file: No such file"):
        load_market(tmp_path / "absent.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("[market\n")
    with pytest.raises(MarketFileError, match=r"^broken.toml: not valid TOML"):
        load_market(broken)
