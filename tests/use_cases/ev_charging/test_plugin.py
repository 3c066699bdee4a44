"""The ev_charging plug-in: its keys in a `[[use_cases]]` entry, the reference, its actor."""

from __future__ import annotations

from datetime import timedelta

import pytest
from frequenz.channels import BroadcastChannel
from frequenz.dispatch import Dispatch

from edge_controller.common.clock import ManualClock
from edge_controller.config.reference import reference_markdown
from edge_controller.config.schema import ConfigError, parse_config
from edge_controller.framework.messages import PowerRequest, Result
from edge_controller.framework.use_case import (
    GridConfig,
    SiteView,
    UseCaseConfig,
    UseCaseContext,
)
from edge_controller.microgrid.graph import BatteryPairs, InverterBatteries
from edge_controller.microgrid.telemetry import TelemetryCache
from edge_controller.use_cases import ev_charging, registry
from edge_controller.use_cases.ev_charging.actor import EvChargingActor
from edge_controller.use_cases.ev_charging.config import EvChargingOptions
from tests.table import START
from tests.test_config import ENV, GOOD


def test_it_is_registered_with_its_dispatch_type() -> None:
    assert registry.by_kind()["ev_charging"] is ev_charging.USE_CASE
    config = parse_config({**GOOD, "use_cases": [{"kind": "ev_charging"}]}, environ=ENV)
    (entry,) = config.use_cases
    assert entry.dispatch_types == ("EV_CHARGING",)
    assert entry.options == EvChargingOptions()


def test_its_keys_become_options() -> None:
    item = {"kind": "ev_charging", "chargers": [81, 82], "min_power": "4140 W", "tick": 1}
    (entry,) = parse_config({**GOOD, "use_cases": [item]}, environ=ENV).use_cases
    assert entry.options == EvChargingOptions(
        chargers=frozenset({81, 82}), min_power_w=4140.0, tick=timedelta(seconds=1)
    )


def test_bad_values_are_named_with_their_key_path() -> None:
    item = {
        "kind": "ev_charging",
        "chargers": [81, "eighty-two"],
        "min_power": "-4 kW",
        "tick": 0,
        "min_powr": 1,
    }
    with pytest.raises(ConfigError) as caught:
        parse_config({**GOOD, "use_cases": [item]}, "ctl.toml", environ=ENV)
    lines = str(caught.value).splitlines()
    assert lines[0].startswith(
        "ctl.toml: use_cases[0].min_powr: unknown key (did you mean 'min_power'?)"
    )
    assert lines[1:] == [
        "ctl.toml: use_cases[0].chargers: expected a list of EV charger ids (empty: all), "
        "got [81, 'eighty-two']",
        "ctl.toml: use_cases[0].min_power: expected a power >= 0 (W, or with a unit like "
        "'4140 W'), got '-4 kW'",
        "ctl.toml: use_cases[0].tick: expected seconds 0.05-60, got 0",
    ]


def test_the_reference_shows_its_keys() -> None:
    text = reference_markdown()
    assert '## `[[use_cases]] kind = "ev_charging"`' in text
    assert 'ev_charging: `["EV_CHARGING"]`' in text
    for key in ("chargers", "min_power", "tick"):
        assert f"| `{key}` |" in text


def context(ev_chargers: tuple[int, ...]) -> UseCaseContext:
    _dispatch_sender, dispatches = BroadcastChannel[Dispatch](name="dispatches")
    requests, _requests_receiver = BroadcastChannel[PowerRequest](name="requests")
    _results_sender, results = BroadcastChannel[Result](name="results")
    pairs = BatteryPairs((InverterBatteries(10, (11,)),))
    return UseCaseContext(
        name="cars",
        dispatches=dispatches,
        requests=requests,
        results=results,
        site=SiteView(pairs, TelemetryCache(), 2, ev_chargers=ev_chargers),
        grid=GridConfig(),
        clock=ManualClock(START),
        request_timeout=timedelta(seconds=5),
        priority=1,
    )


def test_it_builds_one_actor_on_every_ev_charger_by_default() -> None:
    config = UseCaseConfig("ev_charging", ("EV_CHARGING",), "cars", options=EvChargingOptions())
    built = ev_charging.USE_CASE.build(context((81, 82, 83)), config)
    (actor,) = built.actors
    assert isinstance(actor, EvChargingActor)
    assert built.status is actor
    assert actor.name == "cars"
    assert (actor.driving, actor.running_dispatches, actor.counts) == ({}, {}, {})


def test_it_refuses_chargers_the_site_does_not_have() -> None:
    options = EvChargingOptions(chargers=frozenset({81, 10}))
    config = UseCaseConfig("ev_charging", ("EV_CHARGING",), "cars", options=options)
    with pytest.raises(ValueError, match=r"chargers \[10\] are not EV chargers"):
        ev_charging.USE_CASE.build(context((81, 82)), config)
    with pytest.raises(ValueError, match="the site has no EV charger"):
        ev_charging.USE_CASE.build(
            context(()), UseCaseConfig("ev_charging", (), "cars", options=EvChargingOptions())
        )
