"""`telemetry_resumed`: only a re-opened stream of an inverter that has a target.

The actor runs against the simulator with a manual clock and a `MicrogridConnection`,
whose `GapTracker` it reads itself (`MicrogridAccess.telemetry_gaps`): nothing to wire,
so nothing to forget. `Rig.samples(seconds)` moves the clock in half-second steps and
waits until every inverter's reading of each step arrived, so the telemetry has no hole
unless the test makes one (by moving the clock without publishing). A request for an
unknown battery is a barrier: its answer comes from a loop iteration that first looked
for gaps.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, MutableMapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
import structlog
from frequenz.channels import BroadcastSender, Receiver
from frequenz.quantities import Power

from edge_controller.common.clock import ManualClock
from edge_controller.framework.messages import Error, PowerRequest, Result, Success
from edge_controller.microgrid.connection import MicrogridConnection
from edge_controller.servers.sim.fault_spec import FaultKind
from edge_controller.servers.sim.server import SimulatorServer
from edge_controller.servers.sim.site import SiteSpec
from tests.harness import distributor_running
from tests.patience import PATIENCE_S, until

INVERTERS = (10, 20, 30, 40)
ALL = frozenset({11, 21, 31, 41})
STEP = timedelta(seconds=0.5)


@dataclass
class Rig:
    server: SimulatorServer
    clock: ManualClock
    connection: MicrogridConnection
    requests: BroadcastSender[PowerRequest]
    results: Receiver[Result]
    logs: list[MutableMapping[str, Any]]

    async def request(self, kw: float, batteries: frozenset[int] = ALL) -> Result:
        await self.requests.send(PowerRequest("test", Power.from_kilowatts(kw), batteries))
        async with asyncio.timeout(PATIENCE_S):
            return await self.results.receive()

    async def barrier(self) -> None:
        """Return once the actor's loop went round (and looked for gaps) again."""
        assert isinstance(await self.request(0, frozenset({99})), Error)

    async def samples(self, seconds: float) -> None:
        """Move the clock by `seconds` in 0.5 s steps, each step's telemetry delivered."""
        for _ in range(round(seconds / STEP.total_seconds())):
            self.clock.advance(STEP)
            await self.published()

    async def published(self, inverters: tuple[int, ...] = INVERTERS) -> None:
        """Publish telemetry at the clock's time and wait until `inverters` have it."""
        cache, now = self.connection.cache, self.clock.now()
        async with asyncio.timeout(PATIENCE_S):
            while not all(
                (r := cache.last_inverter(i)) is not None and r.sampled_at == now for i in inverters
            ):
                self.server.service.tick()
                await asyncio.sleep(0.01)

    def commands(self) -> int:
        return sum(1 for r in self.server.command_log.records() if r.component_id in INVERTERS)

    def commanded(self) -> dict[int, int]:
        """How many commands each inverter took (from the running server's log)."""
        records = self.server.command_log.records()
        return {i: sum(1 for r in records if r.component_id == i) for i in INVERTERS}

    async def stream_failed(self, *inverters: int) -> None:
        """Return once the connection retried the streams of `inverters` at least once."""
        attempts = self.connection.retry_attempts
        await until(lambda: all(attempts.get(i, 0) >= 1 for i in inverters), f"{inverters} retried")

    def resumed(self) -> list[MutableMapping[str, Any]]:
        return [e for e in self.logs if e["event"] == "telemetry_resumed"]


@pytest.fixture
async def rig(sim_server: SimulatorServer, clock: ManualClock) -> AsyncIterator[Rig]:
    with structlog.testing.capture_logs() as logs:
        async with distributor_running(sim_server, clock) as distributor:
            connection, actor = distributor.connection, distributor.actor
            results = actor.new_result_receiver("test")
            rig = Rig(sim_server, clock, connection, distributor.requests, results, logs)
            await rig.published()
            actor.start()
            yield rig


async def test_a_rest_between_two_dispatches_is_no_telemetry_gap(rig: Rig) -> None:
    """The demo's case: discharge, rest 10 s (no target), charge — no resend, no warning."""
    assert isinstance(await rig.request(-400), Success)
    await rig.samples(2)
    assert isinstance(await rig.request(0), Success)  # release: no target any more
    await rig.samples(10)
    before = rig.commands()
    assert isinstance(await rig.request(300), Success)
    sent = rig.commands() - before
    await rig.samples(1)
    await rig.barrier()
    await rig.barrier()  # the iteration after the first barrier's ran its keep-alive
    assert rig.resumed() == []
    assert rig.commands() - before == sent  # no duplicate command


async def test_a_hole_in_an_open_stream_is_reported_and_left_to_the_keep_alive(rig: Rig) -> None:
    """Late telemetry from a busy server is no reason to re-send: that loads it further."""
    assert isinstance(await rig.request(-400), Success)
    await rig.samples(1)
    await rig.barrier()
    before = rig.commands()
    rig.clock.advance(timedelta(seconds=5))  # nothing published meanwhile: a 5 s hole
    await rig.published()
    await rig.barrier()
    await rig.barrier()
    late = [e for e in rig.logs if e["event"] == "telemetry_late"]
    assert len(late) == 1
    assert late[0]["inverters"] == list(INVERTERS)
    assert late[0]["gap_s"] == pytest.approx(5.0)
    assert rig.resumed() == []
    assert rig.commands() == before  # the keep-alive is 10 s away still
    rig.clock.advance(timedelta(seconds=10))
    await rig.published()
    async with asyncio.timeout(PATIENCE_S):
        while rig.commands() < before + len(INVERTERS):
            await asyncio.sleep(0.01)


async def test_a_microgrid_api_restart_resends_the_targets_however_short_the_gap(
    rig: Rig, example_site: SiteSpec
) -> None:
    """The restarted server knows none of the commands: no waiting for the keep-alive."""
    assert isinstance(await rig.request(-400), Success)
    await rig.samples(1)
    await rig.barrier()
    address = rig.server.address
    await rig.server.stop(grace_s=0)
    await rig.stream_failed(*INVERTERS)
    restarted = SimulatorServer(example_site, address, clock=rig.clock)
    await restarted.start()
    try:
        rig.server = restarted  # its command log is empty
        rig.clock.advance(STEP)  # a 0.5 s silence in the sample times: no gap by itself
        await rig.published()
        async with asyncio.timeout(PATIENCE_S):  # the keep-alive is 15 s away
            while rig.commands() < len(INVERTERS) or len(rig.resumed()) < len(INVERTERS):
                await asyncio.sleep(0.01)
        resumed = rig.resumed()
        assert sorted(e["inverter"] for e in resumed) == list(INVERTERS)
        assert all(e["gap_s"] == pytest.approx(STEP.total_seconds()) for e in resumed)
    finally:
        await restarted.stop(grace_s=0)


async def test_a_gap_while_resting_is_not_reported_when_the_next_target_comes(rig: Rig) -> None:
    rig.clock.advance(timedelta(seconds=5))  # a hole while nothing is targeted
    await rig.published()
    await rig.barrier()
    before = rig.commands()
    assert isinstance(await rig.request(-400), Success)
    sent = rig.commands() - before
    await rig.samples(1)
    await rig.barrier()
    await rig.barrier()
    assert rig.resumed() == []
    assert rig.commands() - before == sent


async def test_after_a_restart_an_inverter_whose_stream_is_not_back_yet_gets_its_target_too(
    rig: Rig, example_site: SiteSpec
) -> None:
    """The first streams back speak for a silent one: the restarted server answers, and
    inverter 40 must not wait for its own stream (a retry and a sample later; in
    `benchmarks/fault_tracking.py` a restart took 1.56 s instead of 1.15 s that way)."""
    assert isinstance(await rig.request(-400), Success)
    await rig.samples(1)
    await rig.barrier()
    address = rig.server.address
    await rig.server.stop(grace_s=0)
    await rig.stream_failed(*INVERTERS)
    restarted = SimulatorServer(example_site, address, clock=rig.clock)
    # 40's stream opens but carries nothing: its telemetry is not back when the others are.
    restarted.faults.inject(40, FaultKind.NO_TELEMETRY, now=rig.clock.now())
    await restarted.start()
    try:
        rig.server = restarted  # its command log is empty
        rig.clock.advance(timedelta(seconds=3))  # down longer than a gap (2 s)
        await rig.published((10, 20, 30))
        # the keep-alive is 11 s away
        await until(lambda: all(rig.commanded().values()), "every inverter commanded")
        assert 40 not in [e["inverter"] for e in rig.resumed()]
        # Whichever streams the actor saw back first spoke for the rest: 40 among them.
        resent = [e for e in rig.logs if e["event"] == "telemetry_silent_resent"]
        assert [e["silent_s"] for e in resent if 40 in e["inverters"]] == [pytest.approx(3.0)]
    finally:
        await restarted.stop(grace_s=0)


async def test_a_stream_that_failed_alone_resends_its_own_inverter_only(rig: Rig) -> None:
    """The others sampled all along: one stream's reconnect says nothing of their commands."""
    assert isinstance(await rig.request(-400), Success)
    await rig.samples(2)
    await rig.barrier()
    before = rig.commanded()
    rig.server.faults.inject(10, FaultKind.DROP_STREAM, now=rig.clock.now())
    rig.server.service.tick()  # ends 10's stream; new ones are refused
    await rig.stream_failed(10)
    rig.server.faults.clear(10, FaultKind.DROP_STREAM)
    await rig.samples(1)
    await until(lambda: rig.commanded()[10] != before[10], "inverter 10 commanded again")
    await rig.barrier()
    await rig.barrier()
    assert [e["inverter"] for e in rig.resumed()] == [10]
    assert rig.commanded() == {**before, 10: before[10] + 1}
    assert not [e for e in rig.logs if e["event"] == "telemetry_silent_resent"]
