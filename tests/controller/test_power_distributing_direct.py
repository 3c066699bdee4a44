"""The PowerDistributingActor commanding EV chargers and PV inverters on the simulator.

A car park on a manual clock: two PV inverters (40 kW and 20 kW peak, producing 60 % at
600 W/m²), a charger with a car that takes at most 11 kW above a 4.14 kW minimum, one
whose car (7.4 kW) leaves after 10 minutes, one whose first car comes a little after
20 minutes. The keep-alive is 50 s, so what happens sooner is the actor noticing.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import timedelta

import pytest
from frequenz.channels import BroadcastChannel, BroadcastSender, Receiver
from frequenz.quantities import Power

from edge_controller.common.clock import ManualClock
from edge_controller.config.schema import ControlsConfig
from edge_controller.controller.power_distributing import PowerDistributingActor
from edge_controller.framework.messages import (
    Error,
    OutOfBounds,
    PartialFailure,
    PowerRequest,
    Result,
    Success,
    TargetKind,
)
from edge_controller.microgrid.connection import MicrogridConnection
from edge_controller.power.bounds import Range
from edge_controller.servers.sim.fault_spec import FaultKind
from edge_controller.servers.sim.server import SimulatorServer
from edge_controller.servers.sim.site import SiteSpec, parse_site
from tests.patience import PATIENCE_S, evaluated, until

EV, PV = TargetKind.EV_CHARGERS, TargetKind.PV_INVERTERS
RESOLUTIONS = {10: 10.0, 50: 10.0, 51: 10.0, 81: 10.0, 82: 10.0, 83: 10.0}
KEEPALIVE = timedelta(seconds=50)
ARRIVAL_S = 1_210


def car_park() -> SiteSpec:
    return parse_site(
        {
            "microgrid": {"id": 3},
            "simulation": {"telemetry_rate_hz": 2.0, "time_step": 0.5},
            "weather": {"irradiance": 600, "temperature": 18.0},
            "components": [
                {"id": 1, "kind": "grid"},
                {"id": 2, "kind": "meter", "parent": 1},
                {
                    "id": 10,
                    "kind": "battery_inverter",
                    "parent": 2,
                    "active_power_bounds": [-60_000, 60_000],
                    "resolution": 10,
                },
                {
                    "id": 11,
                    "kind": "battery",
                    "parent": 10,
                    "capacity": "120 kWh",
                    "initial_soc": 60,
                    "power_bounds": [-60_000, 60_000],
                },
                {"id": 50, "kind": "pv_inverter", "parent": 2, "peak_power": 40_000},
                {"id": 51, "kind": "pv_inverter", "parent": 2, "peak_power": 20_000},
                {
                    "id": 81,
                    "kind": "ev_charger",
                    "parent": 2,
                    "max_power": 22_000,
                    "min_power": 4_140,
                    "resolution": 10,
                    "sessions": [{"arrive": 0, "energy": "60 kWh", "max_power": 11_000}],
                },
                {
                    "id": 82,
                    "kind": "ev_charger",
                    "parent": 2,
                    "max_power": 11_000,
                    "resolution": 10,
                    "sessions": [
                        {"arrive": 0, "leave": 600, "energy": "30 kWh", "max_power": 7_400}
                    ],
                },
                {
                    "id": 83,
                    "kind": "ev_charger",
                    "parent": 2,
                    "max_power": 22_000,
                    "resolution": 10,
                    "sessions": [{"arrive": ARRIVAL_S, "energy": "30 kWh"}],
                },
            ],
        }
    )


@dataclass
class Rig:
    server: SimulatorServer
    clock: ManualClock
    connection: MicrogridConnection
    actor: PowerDistributingActor
    requests: BroadcastSender[PowerRequest]
    results: Receiver[Result]

    async def request(
        self, target: TargetKind, watts: float, ids: set[int], **options: object
    ) -> Result:
        await self.requests.send(
            PowerRequest(
                "test",
                Power.from_watts(watts),
                frozenset(ids),
                target=target,
                **options,  # type: ignore[arg-type]
            )
        )
        async with asyncio.timeout(PATIENCE_S):
            return await self.results.receive()

    async def settle(self, condition: Callable[[], bool], what: str) -> None:
        await until(condition, what, tick=self.server.service.tick)

    def power(self, component_id: int) -> float:
        return self.server.model.ac_power_w(component_id)

    def commands(self, component_id: int) -> list[float]:
        return [
            r.requested_w
            for r in self.server.command_log.records()
            if r.component_id == component_id and not r.reactive
        ]

    async def leap(self, seconds: float, step_s: float = 60.0) -> None:
        """Move the clock on in steps, letting the actor keep its targets alive.

        After each step the actor has looked at its targets twice (`evaluations`): a
        whole pass began after the step, so every keep-alive then due was sent.
        """
        left = seconds
        while left > 0:
            self.clock.advance(min(step_s, left))
            left -= step_s
            self.server.service.tick()
            await evaluated(self.actor.counts, 2, what="the distributor")


@pytest.fixture
async def rig(clock: ManualClock) -> AsyncIterator[Rig]:
    async with SimulatorServer(car_park(), "127.0.0.1:0", clock=clock) as server:
        connection = MicrogridConnection(server.url, clock=clock, reconnect_interval_s=0.1)
        await connection.start()
        sender, receiver = BroadcastChannel[PowerRequest](name="requests")
        actor = PowerDistributingActor(
            receiver,
            connection,
            clock=clock,
            resolutions_w=RESOLUTIONS,
            keepalive_interval=KEEPALIVE,
            tick=timedelta(seconds=0.05),
        )
        try:
            results = actor.new_result_receiver("test")
            rig = Rig(server, clock, connection, actor, sender, results)
            cache = connection.cache
            await rig.settle(
                lambda: (
                    all(cache.ev_charger(c, clock.now()) for c in (81, 82, 83))
                    and all(cache.inverter(i, clock.now()) for i in (10, 50, 51))
                ),
                "telemetry of every charger and inverter",
            )
            actor.start()
            yield rig
        finally:
            await actor.stop()
            await connection.stop()


async def test_a_pv_limit_is_shared_by_rating_held_and_lifted_at_once(rig: Rig) -> None:
    assert rig.power(50) + rig.power(51) == pytest.approx(-36_000)  # 60 % of 60 kW
    limited = await rig.request(PV, -12_000, {50, 51})
    assert isinstance(limited, Success), limited
    assert limited.succeeded_batteries == {50, 51}
    await rig.settle(lambda: rig.power(50) == pytest.approx(-8_000), "PV 50 at its share")
    assert rig.power(51) == pytest.approx(-4_000)
    # held beyond the command lifetime: the keep-alive renews the limit
    await rig.leap(90, step_s=5)
    await rig.settle(lambda: rig.power(50) + rig.power(51) == pytest.approx(-12_000), "held")
    lifted = await rig.request(PV, 0.0, {50, 51})
    assert isinstance(lifted, Success), lifted
    # at once, not when the last limit would have expired: each told its full production
    await rig.settle(lambda: rig.power(50) == pytest.approx(-24_000), "PV 50 lifted")
    assert rig.power(51) == pytest.approx(-12_000)
    assert rig.commands(50)[-1] == -40_000.0
    assert rig.commands(51)[-1] == -20_000.0
    assert rig.actor.targets == {}  # nothing left to keep alive
    sent = len(rig.commands(50))
    await rig.leap(60, step_s=5)
    assert len(rig.commands(50)) == sent  # the lift went once


async def test_a_pv_limit_of_0_w_with_bounds_stops_production(rig: Rig) -> None:
    stopped = await rig.request(PV, 0.0, {50}, bounds=Range(0.0, 0.0))
    assert isinstance(stopped, Success), stopped
    await rig.settle(lambda: rig.power(50) == 0.0, "PV 50 stopped")
    assert rig.power(51) == pytest.approx(-12_000)  # not in the request


async def test_a_charger_gets_what_its_car_takes_and_0_w_once_the_car_left(rig: Rig) -> None:
    charging = await rig.request(EV, 11_000, {82})
    assert isinstance(charging, Success), charging
    assert charging.succeeded_power.as_watts() == 7_400.0  # the car's own limit
    assert charging.excess_power.as_watts() == pytest.approx(3_600.0)
    await rig.settle(lambda: rig.power(82) == pytest.approx(7_400), "charging at 7.4 kW")
    await rig.leap(660, step_s=30)  # the car leaves after 10 minutes: bounds 0..0
    await rig.settle(lambda: bool(rig.commands(82)) and rig.commands(82)[-1] == 0.0, "0 W")
    assert rig.power(82) == 0.0
    assert frozenset({82}) in rig.actor.targets  # the request stands for the next car


async def test_a_charger_without_a_car_gets_0_w_and_a_car_that_arrives_charges_at_once(
    rig: Rig,
) -> None:
    waiting = await rig.request(EV, 11_000, {83})
    assert isinstance(waiting, Success), waiting
    assert waiting.succeeded_power.as_watts() == 0.0
    assert waiting.excess_power.as_watts() == 11_000.0
    assert rig.commands(83) == [0.0]
    await rig.leap(1_200, step_s=50)  # kept alive at 1 200 s: the next one is due at 1 250 s
    assert rig.power(83) == 0.0
    rig.clock.advance(ARRIVAL_S - 1_200 + 5)  # the car has come
    # the clock stands still from here: no keep-alive can be what sends the power
    await rig.settle(lambda: rig.power(83) == pytest.approx(11_000), "charging on arrival")


async def test_a_charger_minimum_refuses_less_and_a_set_shares_by_what_each_takes(
    rig: Rig,
) -> None:
    below = await rig.request(EV, 2_000, {81})
    assert isinstance(below, OutOfBounds), below
    assert below.bounds.exclusion_upper.as_watts() == 4_140.0
    shared = await rig.request(EV, 9_000, {81, 82})
    assert isinstance(shared, Success), shared
    # in proportion to what each car takes: 11 kW and 7.4 kW
    await rig.settle(
        lambda: rig.power(81) + rig.power(82) == pytest.approx(9_000, abs=20), "9 kW in all"
    )
    assert rig.power(81) == pytest.approx(9_000 * 11 / 18.4, abs=20)
    unknown = await rig.request(EV, 5_000, {50})
    assert isinstance(unknown, Error)
    assert unknown.msg == "unknown EV chargers [50]; available: [81, 82, 83]"


async def test_a_failing_charger_is_blocked_and_the_others_take_its_share(rig: Rig) -> None:
    rig.server.faults.inject(82, FaultKind.RPC_ERROR, now=rig.clock.now())
    failed = await rig.request(EV, 10_000, {81, 82})
    assert isinstance(failed, PartialFailure), failed
    assert failed.failed_batteries == {82}
    # re-planned at once: 82 counted at what it measures (0 W), 81 takes the rest
    await rig.settle(lambda: rig.power(81) == pytest.approx(10_000, abs=10), "81 takes over")


async def test_entering_observe_mode_lifts_a_pv_limit_and_sends_nothing_after(rig: Rig) -> None:
    assert isinstance(await rig.request(PV, -6_000, {50, 51}), Success)
    await rig.settle(lambda: rig.power(50) == pytest.approx(-4_000), "limited")
    await rig.actor.reconfigure(controls=ControlsConfig(mode="observe"))
    await rig.settle(lambda: rig.power(50) == pytest.approx(-24_000), "lifted on observe")
    sent = len(rig.commands(50))
    observed = await rig.request(PV, -6_000, {50, 51})
    assert isinstance(observed, Success), observed
    await rig.leap(30, step_s=5)
    assert len(rig.commands(50)) == sent


async def test_what_gives_every_charger_and_pv_inverter_back_on_stop(rig: Rig) -> None:
    assert rig.actor.direct_release_commands() == {
        81: 0.0,
        82: 0.0,
        83: 0.0,
        50: -40_000.0,
        51: -20_000.0,
    }
