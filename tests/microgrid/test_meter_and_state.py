"""Grid-meter telemetry and component states: conversion, cache, and the simulator."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import timedelta

import pytest

from edge_controller.common.clock import ManualClock
from edge_controller.microgrid import MicrogridConnection
from edge_controller.microgrid.telemetry import (
    ComponentState,
    InverterReading,
    MeterReading,
    TelemetryCache,
    component_state,
)
from edge_controller.servers.sim.fault_spec import FaultKind
from edge_controller.servers.sim.server import SimulatorServer
from edge_controller.servers.sim.service import StateAction
from tests.conftest import NOON
from tests.microgrid.test_connection import eventually, fresh_battery, fresh_inverter
from tests.patience import CALL_TIMEOUT_S

GRID_METER, INVERTER_A, BATTERY_A = 2, 10, 11


# ---------------------------------------------------------------- pure parts


def test_meter_readings_age_and_stay_apart_from_batteries_and_inverters() -> None:
    cache = TelemetryCache(stale_after=timedelta(seconds=2))
    assert cache.meter(GRID_METER, NOON) is None
    assert cache.last_meter(GRID_METER) is None
    reading = MeterReading(GRID_METER, NOON, -3_000.0)
    cache.update(reading)
    cache.update(MeterReading(GRID_METER, NOON - timedelta(seconds=1), 99.0))  # late, older
    assert cache.meter(GRID_METER, NOON + timedelta(seconds=2)) == reading
    assert cache.meter(GRID_METER, NOON + timedelta(seconds=2, microseconds=1)) is None
    assert cache.last_meter(GRID_METER) == reading
    assert cache.age(GRID_METER, NOON + timedelta(seconds=1)) == timedelta(seconds=1)
    assert cache.battery(GRID_METER, NOON) is None
    assert cache.inverter(GRID_METER, NOON) is None


@pytest.mark.parametrize(
    ("codes", "expected"),
    [
        ({"READY"}, ComponentState.READY),
        ({"READY", "DISCHARGING"}, ComponentState.DISCHARGING),
        ({"CHARGING", "RELAY_CLOSED"}, ComponentState.CHARGING),
        ({"ERROR", "READY", "CHARGING"}, ComponentState.ERROR),
        ({"STANDBY"}, ComponentState.STANDBY),
        ({"STANDBY", "SWITCHING_ON"}, ComponentState.STANDBY),
        ({"SWITCHING_ON"}, ComponentState.SWITCHING_ON),
        ({"OFF", "RELAY_OPEN"}, ComponentState.OFF),
        ({"UNAVAILABLE"}, ComponentState.UNAVAILABLE),
        ({"SWITCHING_OFF", "READY"}, ComponentState.SWITCHING_OFF),
        ({"UNRECOGNIZED_999"}, ComponentState.UNKNOWN),
        (set(), ComponentState.UNKNOWN),
    ],
)
def test_the_worst_state_code_decides(codes: set[str], expected: ComponentState) -> None:
    assert component_state(codes) is expected


def test_only_ready_charging_and_discharging_are_working() -> None:
    working = {s for s in ComponentState if s.is_working}
    assert working == {ComponentState.READY, ComponentState.CHARGING, ComponentState.DISCHARGING}


def test_readings_without_a_state_snapshot_are_unknown() -> None:
    reading = InverterReading(INVERTER_A, NOON, 0.0, None, frozenset(), frozenset())
    assert reading.state is ComponentState.UNKNOWN


# ---------------------------------------------------------------- against the simulator


@pytest.fixture
async def connection(
    sim_server: SimulatorServer, clock: ManualClock
) -> AsyncIterator[MicrogridConnection]:
    async with MicrogridConnection(sim_server.url, clock=clock) as started:
        yield started


def fresh_meter(
    connection: MicrogridConnection,
    clock: ManualClock,
    accept: Callable[[MeterReading], bool] | None = None,
) -> Callable[[], MeterReading | None]:
    def probe() -> MeterReading | None:
        reading = connection.cache.meter(GRID_METER, clock.now())
        if reading is None or reading.sampled_at != clock.now():
            return None
        return reading if accept is None or accept(reading) else None

    return probe


async def test_the_grid_meter_is_streamed_with_import_positive(
    connection: MicrogridConnection, sim_server: SimulatorServer, clock: ManualClock
) -> None:
    assert connection.grid_meter_id == GRID_METER
    model = sim_server.service.model
    before = await eventually(sim_server, fresh_meter(connection, clock))
    assert before.power_w == pytest.approx(model.ac_power_w(GRID_METER))
    # the site's own flows: load consumes (+), PV and wind produce (−)
    assert before.power_w == pytest.approx(
        sum(model.ac_power_w(c) for c in (50, 60, 70, 80)), abs=1.0
    )
    # a battery discharging 968 W lowers the import by as much
    await connection.set_power(INVERTER_A, -1000.0, timeout_s=CALL_TIMEOUT_S)
    after = await eventually(
        sim_server, fresh_meter(connection, clock, lambda r: r.power_w != before.power_w)
    )
    assert after.power_w == pytest.approx(before.power_w - 968.0)


async def test_the_grid_meter_goes_stale_without_telemetry(
    connection: MicrogridConnection, sim_server: SimulatorServer, clock: ManualClock
) -> None:
    await eventually(sim_server, fresh_meter(connection, clock))
    sim_server.faults.inject(GRID_METER, FaultKind.NO_TELEMETRY, now=clock.now())
    clock.advance(timedelta(seconds=10, milliseconds=1))
    sim_server.service.tick()
    assert connection.cache.meter(GRID_METER, clock.now()) is None
    assert connection.cache.last_meter(GRID_METER) is not None


async def test_states_follow_the_component_through_error_and_standby(
    connection: MicrogridConnection, sim_server: SimulatorServer, clock: ManualClock
) -> None:
    battery = await eventually(sim_server, fresh_battery(connection, clock, BATTERY_A))
    assert battery.state is ComponentState.READY
    await connection.set_power(INVERTER_A, -1000.0, timeout_s=CALL_TIMEOUT_S)
    await eventually(
        sim_server,
        fresh_inverter(
            connection, clock, INVERTER_A, lambda r: r.state is ComponentState.DISCHARGING
        ),
    )

    sim_server.faults.inject(
        INVERTER_A,
        FaultKind.ERROR,
        now=clock.now(),
        duration=timedelta(seconds=1),
        error_code="OVERTEMPERATURE",
    )
    faulted = await eventually(
        sim_server,
        fresh_inverter(connection, clock, INVERTER_A, lambda r: r.state is ComponentState.ERROR),
    )
    assert faulted.errors == {"OVERTEMPERATURE"}
    assert faulted.power_w == 0.0

    clock.advance(2)  # the cause is gone; the error stays latched until acknowledged
    await sim_server.service.change_state(INVERTER_A, StateAction.ACK)
    await eventually(
        sim_server,
        fresh_inverter(connection, clock, INVERTER_A, lambda r: r.state is ComponentState.STANDBY),
    )
    await sim_server.service.change_state(INVERTER_A, StateAction.START)
    ready = await eventually(
        sim_server,
        fresh_inverter(connection, clock, INVERTER_A, lambda r: r.state is ComponentState.READY),
    )
    assert ready.errors == frozenset()

    await sim_server.service.change_state(BATTERY_A, StateAction.STANDBY)
    standby = await eventually(
        sim_server,
        fresh_battery(connection, clock, BATTERY_A, lambda r: r.state is ComponentState.STANDBY),
    )
    assert not standby.state.is_working
