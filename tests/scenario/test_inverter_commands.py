"""The running dispatches as inverter commands, read and settled as the BatteryPowerActor does."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import timedelta

import pytest
from frequenz.client.common.microgrid.electrical_components import ElectricalComponentCategory
from frequenz.client.dispatch.types import Dispatch, TargetCategories, TargetIds

from edge_controller.power.bounds import allows
from edge_controller.tools.scenario.inverter_commands import battery_commands
from edge_controller.tools.scenario.schedule import DispatchSchedule
from edge_controller.tools.scenario.setup import Setup
from edge_controller.tools.scenario.site_model import observe
from edge_controller.tools.scenario.trades import trade_dispatch
from tests.scenario.conftest import model_at

QUARTER = timedelta(minutes=15)


def test_a_running_dispatch_becomes_commands_within_bounds(setup: Setup) -> None:
    start = setup.scenario.spec.start + QUARTER
    layout = setup.layout
    schedule = DispatchSchedule().add(
        trade_dispatch(1, start, QUARTER, layout.battery_ids, -300_000.0, start - QUARTER), start
    )
    model = model_at(setup, start)
    before = battery_commands(setup, schedule, observe(model, layout, start - QUARTER))
    assert set(before.commands.values()) == {0.0}
    assert before.running == ()
    observation = observe(model, layout, start)
    decision = battery_commands(setup, schedule, observation)
    assert decision.running == (1,)
    assert decision.target_w == -300_000.0
    assert math.fsum(decision.commands.values()) == pytest.approx(-300_000.0, abs=400)
    for inverter_id, power_w in decision.commands.items():
        assert allows(model.active_bounds(inverter_id, start), power_w) or power_w == 0.0
    # SoC balancing: the fullest battery (B, 72 %) discharges most, the emptiest not at all.
    assert decision.commands[20] == min(decision.commands.values())
    assert decision.commands[30] == 0.0


def test_the_newest_of_two_overlapping_dispatches_drives(setup: Setup) -> None:
    start = setup.scenario.spec.start + QUARTER
    layout = setup.layout
    older = trade_dispatch(1, start, QUARTER, layout.battery_ids, -300_000.0, start - QUARTER)
    newer = trade_dispatch(2, start, QUARTER, layout.battery_ids, 100_000.0, start)
    schedule = DispatchSchedule().add(older, start).add(newer, start)
    decision = battery_commands(setup, schedule, observe(model_at(setup, start), layout, start))
    assert decision.running == (1, 2)
    assert decision.target_w == 100_000.0
    assert math.fsum(decision.commands.values()) == pytest.approx(100_000.0, abs=400)


def test_an_older_dispatch_drives_the_batteries_a_newer_one_leaves_it(setup: Setup) -> None:
    # As the PowerManagingActor settles it: the newer drives its inverter's batteries,
    # the older holds its power on the rest.
    start = setup.scenario.spec.start + QUARTER
    layout = setup.layout
    first_inverter = layout.inverter_ids[0]
    mine = layout.batteries_of[first_inverter]
    older = trade_dispatch(1, start, QUARTER, layout.battery_ids, -100_000.0, start - QUARTER)
    newer = trade_dispatch(2, start, QUARTER, mine, 20_000.0, start)
    schedule = DispatchSchedule().add(older, start).add(newer, start)
    decision = battery_commands(setup, schedule, observe(model_at(setup, start), layout, start))
    assert decision.target_w == 20_000.0 - 100_000.0
    assert decision.commands[first_inverter] == pytest.approx(20_000.0, abs=400)
    rest_w = math.fsum(p for i, p in decision.commands.items() if i != first_inverter)
    assert rest_w == pytest.approx(-100_000.0, abs=400)


def test_dispatches_are_read_as_the_battery_power_actor_reads_them(setup: Setup) -> None:
    # Its payload and target rules: the battery category means every battery, a typo
    # in the payload or a battery the site lacks is refused (named), a dry run runs
    # without a command.
    start = setup.scenario.spec.start + QUARTER
    layout = setup.layout

    def trade(dispatch_id: int, power_w: float) -> Dispatch:
        return trade_dispatch(dispatch_id, start, QUARTER, layout.battery_ids, power_w, start)

    every = TargetCategories(ElectricalComponentCategory.BATTERY)
    model = model_at(setup, start)
    observation = observe(model, layout, start)
    category = DispatchSchedule().add(replace(trade(1, -200_000.0), target=every), start)
    decision = battery_commands(setup, category, observation)
    assert decision.running == (1,)
    assert math.fsum(decision.commands.values()) == pytest.approx(-200_000.0, abs=400)

    refused = (
        DispatchSchedule()
        .add(replace(trade(2, -200_000.0), payload={"powr_w": -200_000.0}), start)
        .add(replace(trade(3, -200_000.0), target=TargetIds(99)), start)
        .add(replace(trade(4, -200_000.0), dry_run=True), start)
    )
    decision = battery_commands(setup, refused, observation)
    assert decision.running == (4,)
    assert set(decision.commands.values()) == {0.0}
    assert decision.target_w == 0.0
    assert [note.split(":")[:2] for note in decision.notes] == [
        ["dispatch 2", " payload.powr_w"],
        ["dispatch 3", " target"],
    ]
    assert "unknown batteries [99]" in decision.notes[1]
