"""The pv_curtailment plug-in: its keys in a `[[use_cases]]` entry, the reference, its actor."""

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
from edge_controller.use_cases import pv_curtailment, registry
from edge_controller.use_cases.pv_curtailment.actor import PvCurtailmentActor
from edge_controller.use_cases.pv_curtailment.config import PvCurtailmentOptions
from tests.table import START
from tests.test_config import ENV, GOOD


def test_it_is_registered_with_its_dispatch_type() -> None:
    assert registry.by_kind()["pv_curtailment"] is pv_curtailment.USE_CASE
    config = parse_config({**GOOD, "use_cases": [{"kind": "pv_curtailment"}]}, environ=ENV)
    (entry,) = config.use_cases
    assert entry.dispatch_types == ("PV_CURTAILMENT",)
    assert entry.options == PvCurtailmentOptions()


def test_its_keys_become_options() -> None:
    item = {
        "kind": "pv_curtailment",
        "inverters": [50, 51],
        "batteries": [11],
        "export_limit": "90 kW",
        "lift_margin": "1 kW",
        "deadband": 200,
        "lift_rate": "20 kW",
        "tick": 0.5,
    }
    (entry,) = parse_config({**GOOD, "use_cases": [item]}, environ=ENV).use_cases
    assert entry.batteries == {11}
    assert entry.options == PvCurtailmentOptions(
        inverters=frozenset({50, 51}),
        export_limit_w=90_000.0,
        lift_margin_w=1000.0,
        deadband_w=200.0,
        lift_rate_w_per_s=20_000.0,
        tick=timedelta(seconds=0.5),
    )


def test_bad_values_are_named_with_their_key_path() -> None:
    item = {
        "kind": "pv_curtailment",
        "inverters": [50, "pv"],
        "export_limit": "-5 kW",
        "lift_margin": "lots",
        "lift_rate": 0,
        "tick": 60,
        "deadbnd": 1,
    }
    with pytest.raises(ConfigError) as caught:
        parse_config({**GOOD, "use_cases": [item]}, "ctl.toml", environ=ENV)
    lines = str(caught.value).splitlines()
    assert lines[0].startswith(
        "ctl.toml: use_cases[0].deadbnd: unknown key (did you mean 'deadband'?)"
    )
    assert lines[1:] == [
        "ctl.toml: use_cases[0].inverters: expected a list of PV inverter ids (empty: all), "
        "got [50, 'pv']",
        "ctl.toml: use_cases[0].export_limit: expected a power >= 0 (W, or with a unit like "
        "'2 kW'), got '-5 kW'",
        "ctl.toml: use_cases[0].lift_margin: expected a power >= 0 (W, or with a unit like "
        "'2 kW'), got 'lots'",
        "ctl.toml: use_cases[0].lift_rate: expected a power > 0 per second (W, or '20 kW'), got 0",
        "ctl.toml: use_cases[0].tick: expected seconds 0.05-10, got 60",
    ]


def test_the_reference_shows_its_keys() -> None:
    text = reference_markdown()
    assert '## `[[use_cases]] kind = "pv_curtailment"`' in text
    assert 'pv_curtailment: `["PV_CURTAILMENT"]`' in text
    for key in ("inverters", "export_limit", "lift_margin", "deadband", "lift_rate", "tick"):
        assert f"| `{key}` |" in text


def context(pv_inverters: tuple[int, ...]) -> UseCaseContext:
    _dispatch_sender, dispatches = BroadcastChannel[Dispatch](name="dispatches")
    requests, _requests_receiver = BroadcastChannel[PowerRequest](name="requests")
    _results_sender, results = BroadcastChannel[Result](name="results")
    pairs = BatteryPairs((InverterBatteries(10, (11,)), InverterBatteries(20, (21,))))
    return UseCaseContext(
        name="pv",
        dispatches=dispatches,
        requests=requests,
        results=results,
        site=SiteView(pairs, TelemetryCache(), 1, pv_inverters=pv_inverters),
        grid=GridConfig(max_export_w=100_000.0),
        clock=ManualClock(START),
        request_timeout=timedelta(seconds=5),
        priority=2,
    )


def test_it_builds_one_actor_on_every_pv_inverter_by_default() -> None:
    config = UseCaseConfig(
        "pv_curtailment", ("PV_CURTAILMENT",), "pv", options=PvCurtailmentOptions()
    )
    built = pv_curtailment.USE_CASE.build(context((50, 51)), config)
    (actor,) = built.actors
    assert isinstance(actor, PvCurtailmentActor)
    assert built.status is actor
    assert actor.name == "pv"
    assert (actor.driving, actor.running_dispatches, actor.counts) == ({}, {}, {})


def test_it_refuses_inverters_the_site_does_not_have_as_pv() -> None:
    options = PvCurtailmentOptions(inverters=frozenset({50, 10}))
    config = UseCaseConfig("pv_curtailment", ("PV_CURTAILMENT",), "pv", options=options)
    with pytest.raises(ValueError, match=r"inverters \[10\] are not PV inverters"):
        pv_curtailment.USE_CASE.build(context((50, 51)), config)
    with pytest.raises(ValueError, match="the site has no PV inverter"):
        pv_curtailment.USE_CASE.build(
            context(()), UseCaseConfig("pv_curtailment", (), "pv", options=PvCurtailmentOptions())
        )
