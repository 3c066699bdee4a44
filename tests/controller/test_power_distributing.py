"""The PowerDistributingActor against the simulator on loopback, with a manual clock."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import timedelta

import pytest
from frequenz.channels import BroadcastSender, Receiver
from frequenz.quantities import Power

from edge_controller.common.clock import ManualClock
from edge_controller.controller.power_distributing import PowerDistributingActor
from edge_controller.framework.messages import (
    Error,
    Ignored,
    OutOfBounds,
    PartialFailure,
    PowerRequest,
    Result,
    Success,
)
from edge_controller.microgrid.connection import MicrogridConnection
from edge_controller.power.status import BatteryStatus
from edge_controller.servers.sim.fault_spec import FaultKind
from edge_controller.servers.sim.server import SimulatorServer
from tests.harness import RESOLUTIONS, distributor_running
from tests.patience import PATIENCE_S, until

ALL = frozenset({11, 21, 31, 41})


@dataclass
class Rig:
    server: SimulatorServer
    clock: ManualClock
    connection: MicrogridConnection
    actor: PowerDistributingActor
    requests: BroadcastSender[PowerRequest]
    results: Receiver[Result]

    async def request(
        self, kw: float, batteries: frozenset[int] = ALL, **options: object
    ) -> Result:
        await self.requests.send(
            PowerRequest("test", Power.from_kilowatts(kw), batteries, **options)  # type: ignore[arg-type]
        )
        async with asyncio.timeout(10):
            return await self.results.receive()

    async def settle(self, condition: Callable[[], bool], what: str) -> None:
        """Tick the simulator until `condition` holds (short real waits, up to the patience)."""
        await until(condition, what, tick=self.server.service.tick)

    def inverter_power(self, inverter_id: int) -> float:
        return self.server.model.ac_power_w(inverter_id)

    def sent_more_than(self, inverter_id: int, count: int) -> bool:
        return self.commands_to(inverter_id) > count

    def commands_to(self, inverter_id: int) -> int:
        return sum(1 for r in self.server.command_log.records() if r.component_id == inverter_id)


@pytest.fixture
async def rig(sim_server: SimulatorServer, clock: ManualClock) -> AsyncIterator[Rig]:
    async with distributor_running(sim_server, clock) as distributor:
        connection, actor = distributor.connection, distributor.actor
        results = actor.new_result_receiver("test")
        rig = Rig(sim_server, clock, connection, actor, distributor.requests, results)
        await rig.settle(
            lambda: (
                all(connection.cache.battery(b, clock.now()) for b in ALL)
                and all(connection.cache.inverter(i, clock.now()) for i in RESOLUTIONS)
            ),
            "telemetry of every battery and inverter",
        )
        actor.start()
        yield rig


async def test_a_request_is_distributed_and_moves_socs_the_right_way(rig: Rig) -> None:
    result = await rig.request(-400)
    assert isinstance(result, Success), result
    assert result.succeeded_batteries == ALL
    assert result.succeeded_power.as_kilowatts() == pytest.approx(-400, abs=0.1)
    total = sum(rig.inverter_power(i) for i in RESOLUTIONS)
    assert total == pytest.approx(-400_000, abs=100)
    # Fullest first: B (72 %) at its full 300 kW, D (61 %) the rest, A and C rest.
    assert rig.inverter_power(20) == pytest.approx(-300_000)
    assert rig.inverter_power(40) == pytest.approx(-100_000, abs=100)
    assert rig.inverter_power(10) == rig.inverter_power(30) == 0.0
    assert abs(result.excess_power.as_watts()) < 50  # one (smallest) resolution step
    socs = {b: rig.server.model.soc_pct(b) for b in ALL}
    rig.clock.advance(30)
    rig.server.service.tick()
    assert rig.server.model.soc_pct(21) < socs[21]
    assert rig.server.model.soc_pct(41) < socs[41]
    assert rig.server.model.soc_pct(11) == socs[11]


async def test_invalid_requests_get_errors_and_out_of_bounds(rig: Rig) -> None:
    unknown = await rig.request(-10, frozenset({11, 99}))
    assert isinstance(unknown, Error)
    assert "unknown batteries [99]; available: [11, 21, 31, 41]" in unknown.msg
    empty = await rig.request(-10, frozenset())
    assert isinstance(empty, Error)
    too_much = await rig.request(-5_000, adjust_power=False)
    assert isinstance(too_much, OutOfBounds)
    assert too_much.bounds.inclusion_lower.as_kilowatts() == pytest.approx(-1_000, abs=1)
    clamped = await rig.request(-5_000)
    assert isinstance(clamped, Success)
    assert clamped.excess_power.as_kilowatts() == pytest.approx(-4_000, abs=1)


async def test_newer_request_for_the_same_batteries_supersedes_the_older(rig: Rig) -> None:
    await rig.requests.send(PowerRequest("test", Power.from_kilowatts(-10), ALL))
    await rig.requests.send(PowerRequest("test", Power.from_kilowatts(-20), ALL))
    async with asyncio.timeout(10):
        first = await rig.results.receive()
        second = await rig.results.receive()
    assert isinstance(first, Ignored)
    assert first.request.power.as_kilowatts() == -10
    assert isinstance(second, Success)
    assert second.request.power.as_kilowatts() == -20


async def test_silent_inverter_gives_partial_failure_in_time_and_is_not_compensated_twice(
    rig: Rig,
) -> None:
    assert isinstance(await rig.request(-100, frozenset({11})), Success)
    held = rig.inverter_power(10)
    assert held == pytest.approx(-100_000, abs=88)
    await rig.settle(
        lambda: (
            (reading := rig.connection.cache.inverter(10, rig.clock.now())) is not None
            and reading.power_w == pytest.approx(held)
        ),
        "telemetry of the held power",
    )
    rig.server.faults.inject(10, FaultKind.UNRESPONSIVE, now=rig.clock.now())
    # The 0.3 s request timeout answers; were it ignored, the client's own 60 s call
    # timeout would run past the patience, which cancels the wait and fails the test.
    async with asyncio.timeout(PATIENCE_S):
        result = await rig.request(-300, request_timeout=timedelta(seconds=0.3))
    assert isinstance(result, PartialFailure), result
    assert result.failed_batteries == {11}
    # Inverter 10 still holds its last command: the actor re-plans at once, counts it,
    # and the others carry only the rest, so the site delivers what was asked, no more.
    await rig.settle(
        lambda: sum(rig.inverter_power(i) for i in RESOLUTIONS) == pytest.approx(-300_000, abs=500),
        "the others to carry only the rest",
    )
    assert rig.inverter_power(10) == pytest.approx(held)
    again = await rig.request(-300, request_timeout=timedelta(seconds=0.3))
    assert isinstance(again, Success), again
    assert 11 not in again.succeeded_batteries
    assert sum(rig.inverter_power(i) for i in RESOLUTIONS) == pytest.approx(-300_000, abs=500)


async def test_broken_battery_is_used_again_after_its_blocking_time(rig: Rig) -> None:
    rig.server.faults.inject(10, FaultKind.RPC_ERROR, now=rig.clock.now())
    result = await rig.request(-100, request_timeout=timedelta(seconds=0.5))
    assert isinstance(result, PartialFailure)
    rig.server.faults.clear(10)
    blocked = await rig.request(-100)
    assert isinstance(blocked, Success)
    assert 11 not in blocked.succeeded_batteries
    rig.clock.advance(2)  # past the first blocking time of 1 s
    await rig.settle(lambda: True, "a tick")
    back = await rig.request(-100)
    assert isinstance(back, Success)
    assert 11 in back.succeeded_batteries


async def test_target_survives_past_the_command_lifetime(rig: Rig) -> None:
    assert isinstance(await rig.request(-100), Success)
    for _ in range(8):  # 120 s in 15 s leaps: the API lifetime is 60 s
        sent = rig.commands_to(20)
        rig.clock.advance(15)
        await rig.settle(functools.partial(rig.sent_more_than, 20, sent), "a keep-alive command")
    assert sum(rig.inverter_power(i) for i in RESOLUTIONS) == pytest.approx(-100_000, abs=500)


async def test_zero_releases_the_batteries(rig: Rig) -> None:
    assert isinstance(await rig.request(-100), Success)
    assert isinstance(await rig.request(0), Success)
    assert all(rig.inverter_power(i) == 0.0 for i in RESOLUTIONS)
    sent = rig.commands_to(20)
    rig.clock.advance(20)
    await rig.settle(lambda: True, "a tick")
    await asyncio.sleep(0.2)
    assert rig.commands_to(20) == sent  # nothing re-sent for a released target


async def test_a_refused_request_leaves_the_running_target_alone(rig: Rig) -> None:
    assert isinstance(await rig.request(-100), Success)
    beyond = await rig.request(-900, frozenset({11}), adjust_power=False)
    assert isinstance(beyond, OutOfBounds)
    sent = rig.commands_to(20)
    rig.clock.advance(15)
    await rig.settle(functools.partial(rig.sent_more_than, 20, sent), "the keep-alive of ALL")


async def test_a_target_with_no_usable_battery_resumes_when_telemetry_does(rig: Rig) -> None:
    for battery in ALL:
        rig.server.faults.inject(battery, FaultKind.NAN_METRICS, now=rig.clock.now())
    await rig.settle(
        lambda: all(
            (r := rig.connection.cache.battery(b, rig.clock.now())) is not None
            and r.soc_pct != r.soc_pct
            for b in ALL
        ),
        "NaN telemetry",
    )
    refused = await rig.request(-100)
    assert isinstance(refused, Error)
    assert "no battery can be used" in refused.msg
    rig.server.faults.clear()
    rig.clock.advance(3)  # past the retry interval
    await rig.settle(
        lambda: sum(rig.inverter_power(i) for i in RESOLUTIONS) == pytest.approx(-100_000, abs=100),
        "the target to resume",
    )


async def test_a_refused_change_of_a_running_target_stops_the_old_power(rig: Rig) -> None:
    assert isinstance(await rig.request(-100, frozenset({11})), Success)
    assert rig.inverter_power(10) == pytest.approx(-100_000, abs=88)
    refused = await rig.request(-900, frozenset({11}), adjust_power=False)
    assert isinstance(refused, OutOfBounds)
    await rig.settle(lambda: rig.inverter_power(10) == 0.0, "the old power to stop")


async def test_a_request_taking_over_part_of_a_target_releases_the_rest_of_it(rig: Rig) -> None:
    # A target on all four, then a request on two of them: the other two must not go
    # on running the old target's last command with nothing renewing it.
    assert isinstance(await rig.request(-400), Success)
    assert rig.inverter_power(20) != 0.0 or rig.inverter_power(40) != 0.0
    result = await rig.request(-100, frozenset({11, 31}))
    assert isinstance(result, Success), result
    assert rig.inverter_power(20) == 0.0
    assert rig.inverter_power(40) == 0.0
    assert rig.inverter_power(10) + rig.inverter_power(30) == pytest.approx(-100_000, abs=200)
    assert rig.actor.targets == {frozenset({11, 31}): -100_000.0}


async def test_battery_status_is_published_on_every_change_without_a_request(rig: Rig) -> None:
    statuses = rig.actor.new_status_receiver()

    async def status_until(condition: Callable[[BatteryStatus], bool], what: str) -> None:
        async with asyncio.timeout(PATIENCE_S):
            while not condition(await statuses.receive()):
                pass

    await status_until(lambda s: s.working == ALL, "all working")
    rig.server.faults.inject(10, FaultKind.RPC_ERROR, now=rig.clock.now())
    assert isinstance(
        await rig.request(-100, request_timeout=timedelta(seconds=0.5)), PartialFailure
    )
    await status_until(lambda s: 11 not in s.working | s.uncertain, "11 blocked")
    rig.server.faults.clear(10)
    # Its blocking time (1 s) ends: announced by the actor's own tick, no request.
    rig.clock.advance(2)
    await status_until(lambda s: 11 in s.working, "11 unblocked")
    rig.actor.set_out_of_service(frozenset({31}))
    await status_until(lambda s: 31 not in s.working | s.uncertain, "31 out of service")
    rig.actor.set_out_of_service(frozenset())
    await status_until(lambda s: s.working == ALL, "31 back")
    # Stale telemetry (the clock moves on, nothing new arrives) makes all uncertain.
    rig.clock.advance(30)
    await status_until(lambda s: s.uncertain == ALL and not s.working, "all stale")
    await rig.settle(lambda: True, "fresh telemetry")
    await status_until(lambda s: s.working == ALL, "all recovered")


async def send_together(rig: Rig, *requests: PowerRequest) -> list[Result]:
    """Send requests with no pause between them (one round of the actor), as the
    PowerManagingActor does when it settles; return their results."""
    for request in requests:
        await rig.requests.send(request)
    async with asyncio.timeout(PATIENCE_S):
        return [await rig.results.receive() for _ in requests]


def kw(value: float, batteries: set[int], **options: object) -> PowerRequest:
    return PowerRequest("test", Power.from_kilowatts(value), frozenset(batteries), **options)  # type: ignore[arg-type]


def commands_since(rig: Rig, inverter_id: int, count: int) -> list[float]:
    sent = [
        r.requested_w for r in rig.server.command_log.records() if r.component_id == inverter_id
    ]
    return sent[count:]


async def test_a_shrinking_set_never_tells_the_part_it_keeps_0_w(rig: Rig) -> None:
    assert isinstance(await rig.request(-400, frozenset({11, 21})), Success)
    assert rig.inverter_power(10) == pytest.approx(-100_000, abs=88)  # 21 carries 300 kW
    before = rig.commands_to(10)
    # The manager drops 21 (a withdraw) and keeps 11 at what it ran.
    results = await send_together(rig, kw(0, {21}), kw(-100, {11}))
    assert all(isinstance(r, Success) for r in results), results
    assert rig.inverter_power(20) == 0.0
    assert 0.0 not in commands_since(rig, 10, before)
    assert rig.inverter_power(10) == pytest.approx(-100_000, abs=88)


async def test_a_split_set_never_tells_either_part_0_w(rig: Rig) -> None:
    assert isinstance(await rig.request(-400, frozenset({11, 21})), Success)
    before = {i: rig.commands_to(i) for i in (10, 20)}
    results = await send_together(rig, kw(-100, {11}), kw(-300, {21}))
    assert all(isinstance(r, Success) for r in results), results
    assert all(0.0 not in commands_since(rig, i, before[i]) for i in (10, 20))
    assert rig.actor.targets == {frozenset({11}): -100_000.0, frozenset({21}): -300_000.0}


async def test_what_a_replaced_set_leaves_is_released_when_its_taker_is_refused(rig: Rig) -> None:
    assert isinstance(await rig.request(-400, frozenset({11, 21})), Success)
    results = await send_together(rig, kw(0, {21}), kw(-900, {11}, adjust_power=False))
    assert [type(r) for r in results] == [Success, OutOfBounds], results
    # nothing holds 11 now: its old command must not run on unattended
    await rig.settle(lambda: rig.inverter_power(10) == 0.0, "11 given back")
    assert rig.actor.targets == {}
