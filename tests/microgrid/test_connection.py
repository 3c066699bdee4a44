"""`MicrogridConnection` against the simulator on loopback, with a manual clock.

`sim_server.service.tick()` publishes telemetry at once; the helpers then yield to
the event loop in 10 ms steps until the cache shows what is expected, bounded by a
timeout, so no test sleeps for seconds.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any, TypeVar

import pytest
from frequenz.client.microgrid import OperationOutOfRange

from edge_controller.common.clock import ManualClock
from edge_controller.microgrid import (
    BatteryReading,
    ComponentGraphError,
    EvChargerReading,
    InverterReading,
    MicrogridConnection,
    NotStartedError,
)
from edge_controller.power.bounds import Range
from edge_controller.servers.sim.fault_spec import FaultKind
from edge_controller.servers.sim.server import SimulatorServer
from edge_controller.servers.sim.site import SiteSpec, parse_site
from tests.patience import CALL_TIMEOUT_S, PATIENCE_S

_T = TypeVar("_T")
INVERTER_A, BATTERY_A = 10, 11


async def eventually(
    server: SimulatorServer,
    probe: Callable[[], _T | None],
    *,
    timeout_s: float = PATIENCE_S,
    tick_every_s: float = 0.05,
) -> _T:
    """Tick the server and poll `probe` every 10 ms until it returns something."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    next_tick = loop.time()
    while loop.time() < deadline:
        if loop.time() >= next_tick:
            server.service.tick()
            next_tick = loop.time() + tick_every_s
        found = probe()
        if found is not None:
            return found
        await asyncio.sleep(0.01)
    raise AssertionError(f"nothing acceptable within {timeout_s} s")


@pytest.fixture
async def connection(
    sim_server: SimulatorServer, clock: ManualClock
) -> AsyncIterator[MicrogridConnection]:
    async with MicrogridConnection(sim_server.url, clock=clock) as started:
        yield started


async def streams_open(server: SimulatorServer, count: int) -> None:
    """Wait until exactly `count` telemetry streams are open on the server."""
    await eventually(server, lambda: server.service.subscriber_count() == count or None)


def fresh_battery(
    connection: MicrogridConnection, clock: ManualClock, cid: int, accept: Any = None
) -> Callable[[], BatteryReading | None]:
    def probe() -> BatteryReading | None:
        reading = connection.cache.battery(cid, clock.now())
        if reading is None or reading.sampled_at != clock.now():
            return None
        return reading if accept is None or accept(reading) else None

    return probe


def fresh_inverter(
    connection: MicrogridConnection, clock: ManualClock, cid: int, accept: Any = None
) -> Callable[[], InverterReading | None]:
    def probe() -> InverterReading | None:
        reading = connection.cache.inverter(cid, clock.now())
        if reading is None or reading.sampled_at != clock.now():
            return None
        return reading if accept is None or accept(reading) else None

    return probe


async def test_start_pairs_every_inverter_with_its_battery(
    connection: MicrogridConnection, sim_server: SimulatorServer
) -> None:
    assert connection.pairs.as_dict() == {10: (11,), 20: (21,), 30: (31,), 40: (41,)}
    assert connection.grid_meter_id == 2
    assert connection.direct.pv_inverter_ids == (50,)
    assert connection.direct.ev_charger_ids == (80,)
    # one stream per battery, per battery inverter, for the PV inverter, the EV charger
    # and the grid meter, nothing else (not the wind turbine nor the load)
    await streams_open(sim_server, 11)


async def test_telemetry_reaches_the_cache(
    connection: MicrogridConnection, sim_server: SimulatorServer, clock: ManualClock
) -> None:
    battery = await eventually(sim_server, fresh_battery(connection, clock, BATTERY_A))
    assert battery.soc_pct == pytest.approx(50.0)
    assert (battery.soc_lower_pct, battery.soc_upper_pct) == (10.0, 90.0)
    assert battery.capacity_wh == 500_000.0
    assert battery.bounds == (Range(-250_000, 250_000),)
    assert "READY" in battery.states
    assert battery.errors == frozenset()
    inverter_c = await eventually(sim_server, fresh_inverter(connection, clock, 30))
    assert inverter_c.bounds == (Range(-200_000, -2_000), Range(2_000, 200_000))
    pv = await eventually(sim_server, fresh_inverter(connection, clock, 50))
    assert pv.power_w < 0.0  # producing at noon
    assert pv.bounds == (Range(-350_000, 0),)

    def charger() -> EvChargerReading | None:
        return connection.cache.ev_charger(80, clock.now())

    ev = await eventually(sim_server, charger)
    assert ev.power_w == 0.0
    assert ev.bounds is not None
    assert ev.bounds[0].lower == 0.0


async def test_set_power_returns_the_expiry_and_telemetry_shows_the_floored_power(
    connection: MicrogridConnection, sim_server: SimulatorServer, clock: ManualClock
) -> None:
    valid_until = await connection.set_power(INVERTER_A, -1000.0, timeout_s=CALL_TIMEOUT_S)
    assert valid_until == clock.now() + timedelta(seconds=60)
    inverter = await eventually(
        sim_server,
        fresh_inverter(connection, clock, INVERTER_A, lambda r: r.power_w != 0.0),
    )
    assert inverter.power_w == pytest.approx(-968.0)  # floored to the 88 W resolution


async def test_set_power_with_a_custom_lifetime(
    connection: MicrogridConnection, clock: ManualClock
) -> None:
    lifetime = timedelta(seconds=15)
    assert await connection.set_power(20, 0.0, timeout_s=CALL_TIMEOUT_S, lifetime=lifetime) == (
        clock.now() + lifetime
    )


@pytest.mark.parametrize("seconds", [9, 901, 0])
async def test_set_power_refuses_a_lifetime_outside_10_to_900_s(
    connection: MicrogridConnection, seconds: int
) -> None:
    with pytest.raises(ValueError, match="lifetime"):
        await connection.set_power(
            INVERTER_A, 0.0, timeout_s=1.0, lifetime=timedelta(seconds=seconds)
        )


async def test_client_errors_propagate(connection: MicrogridConnection) -> None:
    with pytest.raises(OperationOutOfRange):
        await connection.set_power(INVERTER_A, -400_000.0, timeout_s=CALL_TIMEOUT_S)


async def test_an_unresponsive_inverter_times_out_promptly(
    connection: MicrogridConnection, sim_server: SimulatorServer, clock: ManualClock
) -> None:
    sim_server.faults.inject(INVERTER_A, FaultKind.UNRESPONSIVE, now=clock.now())
    # Our 0.2 s timeout raises TimeoutError; were it ignored, the client's own 60 s one
    # would run past the patience, whose expiry cancels the call (not a TimeoutError
    # inside) and fails the test.
    async with asyncio.timeout(PATIENCE_S):
        with pytest.raises(TimeoutError):
            await connection.set_power(INVERTER_A, -880.0, timeout_s=0.2)
    # the others still answer
    assert await connection.set_power(20, -1000.0, timeout_s=CALL_TIMEOUT_S) is not None


async def test_readings_go_stale_when_the_clock_moves_without_telemetry(
    connection: MicrogridConnection, sim_server: SimulatorServer, clock: ManualClock
) -> None:
    await eventually(sim_server, fresh_battery(connection, clock, BATTERY_A))
    clock.advance(timedelta(seconds=10, milliseconds=1))
    # no await in between: nothing could have delivered a newer sample
    assert connection.cache.battery(BATTERY_A, clock.now()) is None
    assert connection.cache.last_battery(BATTERY_A) is not None
    assert connection.cache.age(BATTERY_A, clock.now()) == timedelta(seconds=10, milliseconds=1)
    # the next tick makes it fresh again
    await eventually(sim_server, fresh_battery(connection, clock, BATTERY_A))


async def test_nan_telemetry_is_kept_as_unknown(
    connection: MicrogridConnection, sim_server: SimulatorServer, clock: ManualClock
) -> None:
    sim_server.faults.inject(BATTERY_A, FaultKind.NAN_METRICS, now=clock.now())
    battery = await eventually(
        sim_server,
        fresh_battery(connection, clock, BATTERY_A, lambda r: math.isnan(r.soc_pct)),
    )
    assert math.isnan(battery.power_w)
    assert math.isnan(battery.capacity_wh)
    assert battery.bounds == (Range(-250_000, 250_000),)


async def test_a_dropped_stream_is_resumed_after_the_fault(
    connection: MicrogridConnection, sim_server: SimulatorServer, clock: ManualClock
) -> None:
    await eventually(sim_server, fresh_battery(connection, clock, BATTERY_A))
    sim_server.faults.inject(
        BATTERY_A, FaultKind.DROP_STREAM, now=clock.now(), duration=timedelta(seconds=2)
    )
    sim_server.service.tick()
    await streams_open(sim_server, 10)
    clock.advance(3)  # the fault is over; the client retries after ~0.5 s
    resumed = await eventually(sim_server, fresh_battery(connection, clock, BATTERY_A))
    assert resumed.soc_pct == pytest.approx(50.0, abs=0.1)
    await streams_open(sim_server, 11)


async def test_stop_ends_every_stream_and_is_idempotent(
    sim_server: SimulatorServer, clock: ManualClock
) -> None:
    connection = MicrogridConnection(sim_server.url, clock=clock)
    with pytest.raises(NotStartedError):
        _ = connection.pairs
    with pytest.raises(NotStartedError):
        await connection.set_power(INVERTER_A, 0.0, timeout_s=1.0)
    await connection.start()
    await streams_open(sim_server, 11)
    await connection.stop()
    await streams_open(sim_server, 0)
    await connection.stop()
    with pytest.raises(NotStartedError):
        _ = connection.pairs
    with pytest.raises(NotStartedError):
        _ = connection.direct


# ------------------------------------------------------------- other sites


def two_battery_site(second_battery_parents: int | list[int]) -> SiteSpec:
    inverter = {"kind": "battery_inverter", "parent": 2, "active_power_bounds": [-10_000, 10_000]}
    battery = {"kind": "battery", "capacity": "20 kWh", "initial_soc": 50}
    battery["power_bounds"] = [-10_000, 10_000]
    return parse_site(
        {
            "microgrid": {"id": 7},
            "components": [
                {"id": 1, "kind": "grid"},
                {"id": 2, "kind": "meter", "parent": 1},
                {"id": 10, **inverter},
                {"id": 12, **inverter},
                {"id": 11, "parent": 10, **battery},
                {"id": 13, "parent": 12, **battery},
                {"id": 14, "parent": second_battery_parents, **battery},
            ],
        }
    )


async def test_several_batteries_on_one_inverter_are_paired_together(clock: ManualClock) -> None:
    async with (
        SimulatorServer(two_battery_site(10), clock=clock) as server,
        MicrogridConnection(server.url, clock=clock) as connection,
    ):
        assert connection.pairs.as_dict() == {10: (11, 14), 12: (13,)}
        await streams_open(server, 6)
        battery = await eventually(server, fresh_battery(connection, clock, 14))
        assert battery.capacity_wh == 20_000.0


async def test_a_site_whose_every_battery_is_left_out_stops_start_up(clock: ManualClock) -> None:
    # battery 14 hangs on both inverters: 11 and 13 share a DC side with it
    async with SimulatorServer(two_battery_site([10, 12]), clock=clock) as server:
        connection = MicrogridConnection(server.url, clock=clock)
        with pytest.raises(ComponentGraphError) as caught:
            await connection.start()
        lines = str(caught.value).splitlines()
        assert lines[0] == "no usable battery: every one is left out"
        assert (
            "battery 14 is fed by inverters 10 and 12; "
            "a battery on several inverters is not supported"
        ) in lines
        assert caught.value.component_ids == {10, 11, 12, 13, 14}
        assert server.service.subscriber_count() == 0
        with pytest.raises(NotStartedError):
            _ = connection.pairs
