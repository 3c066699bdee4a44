"""EV chargers and PV inverters through the power pipeline, end to end on the simulator.

Everything below the use cases is real and on loopback, on the wall clock: the
simulator (its own physics and EV sessions), the `MicrogridConnection`, the
PowerManagingActor and the PowerDistributingActor wired as the controller graph wires
them. The test is the use case: it sends `PowerRequest`s with `target=` EV chargers or
PV inverters, as the `ev_charging` and `pv_curtailment` plug-ins do, and watches the
simulated components.

The site: two PV inverters (40 and 20 kW peak, 60 % sun), a charger whose car
(at most 7.4 kW) leaves after 6 s, a charger whose car comes only after an hour, and
a battery nobody asks anything of.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import timedelta

import pytest
from frequenz.channels import BroadcastChannel, BroadcastSender, Receiver
from frequenz.quantities import Power

from edge_controller.controller.power_distributing import PowerDistributingActor
from edge_controller.controller.power_managing import PowerManagingActor
from edge_controller.framework.messages import PowerRequest, Result, Success, TargetKind
from edge_controller.framework.use_case import GridConfig, SiteView
from edge_controller.microgrid.connection import MicrogridConnection
from edge_controller.servers.sim.server import SimulatorServer
from edge_controller.servers.sim.site import SiteSpec, parse_site
from tests.patience import PATIENCE_S, until

EV, PV = TargetKind.EV_CHARGERS, TargetKind.PV_INVERTERS
ROOF = frozenset({50, 51})


def car_park() -> SiteSpec:
    return parse_site(
        {
            "microgrid": {"id": 3},
            "simulation": {"telemetry_rate_hz": 5.0, "time_step": 0.1},
            "weather": {"irradiance": 600, "temperature": 18.0},
            "components": [
                {"id": 1, "kind": "grid"},
                {"id": 2, "kind": "meter", "parent": 1},
                {
                    "id": 10,
                    "kind": "battery_inverter",
                    "parent": 2,
                    "active_power_bounds": [-60_000, 60_000],
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
                    "id": 82,
                    "kind": "ev_charger",
                    "parent": 2,
                    "max_power": 11_000,
                    "resolution": 10,
                    "sessions": [{"arrive": 0, "leave": 6, "energy": "30 kWh", "max_power": 7_400}],
                },
                {
                    "id": 83,
                    "kind": "ev_charger",
                    "parent": 2,
                    "max_power": 22_000,
                    "resolution": 10,
                    "sessions": [{"arrive": 3_600, "energy": "30 kWh"}],
                },
            ],
        }
    )


@dataclass
class Pipeline:
    sim: SimulatorServer
    requests: BroadcastSender[PowerRequest]
    distributing: PowerDistributingActor

    async def ask(self, namespace: str, target: TargetKind, watts: float, ids: set[int]) -> Result:
        results = self.distributing.new_result_receiver(namespace)
        await self.requests.send(
            PowerRequest(namespace, Power.from_watts(watts), frozenset(ids), target=target)
        )
        return await self._first(results)

    @staticmethod
    async def _first(results: Receiver[Result]) -> Result:
        async with asyncio.timeout(PATIENCE_S):
            return await results.receive()

    def power(self, *component_ids: int) -> float:
        return sum(self.sim.model.ac_power_w(c) for c in component_ids)

    def last_command(self, component_id: int) -> float | None:
        sent = [
            r.requested_w for r in self.sim.command_log.records() if r.component_id == component_id
        ]
        return sent[-1] if sent else None

    async def until(self, condition: Callable[[], bool], what: str) -> None:
        await until(condition, what, poll_s=0.05)


@pytest.fixture
async def pipeline() -> AsyncIterator[Pipeline]:
    async with SimulatorServer(car_park(), "127.0.0.1:0") as sim:
        connection = MicrogridConnection(sim.url, reconnect_interval_s=0.1)
        await connection.start()
        requests, requests_in = BroadcastChannel[PowerRequest](name="power_requests")
        to_distribute, to_distribute_in = BroadcastChannel[PowerRequest](name="power_distribution")
        managing = PowerManagingActor(
            requests_in,
            to_distribute,
            SiteView(connection.pairs, connection.cache, connection.grid_meter_id),
            grid=GridConfig(),
        )
        distributing = PowerDistributingActor(
            to_distribute_in,
            connection,
            resolutions_w={50: 1.0, 51: 1.0, 82: 10.0, 83: 10.0},
            tick=timedelta(seconds=0.05),
        )
        running = Pipeline(sim, requests, distributing)
        cache = connection.cache
        await running.until(
            lambda: (
                all(cache.last_ev_charger(c) for c in (82, 83))
                and all(cache.last_inverter(i) for i in (10, 50, 51))
            ),
            "telemetry of every charger and inverter",
        )
        distributing.start()
        managing.start()
        try:
            yield running
        finally:
            await managing.stop()
            await distributing.stop()
            await connection.stop()


async def test_a_pv_limit_curtails_the_simulated_production_and_a_withdraw_lifts_it(
    pipeline: Pipeline,
) -> None:
    assert pipeline.power(50, 51) == pytest.approx(-36_000)
    limited = await pipeline.ask("pv_curtailment", PV, -12_000, {50, 51})
    assert isinstance(limited, Success), limited
    await pipeline.until(
        lambda: pipeline.power(50, 51) == pytest.approx(-12_000, abs=2), "12 kW of PV"
    )
    # shared by rated power: 40 kW and 20 kW arrays give 8 kW and 4 kW
    assert pipeline.power(50) == pytest.approx(-8_000, abs=1)
    lifted = await pipeline.ask("pv_curtailment", PV, 0.0, {50, 51})
    assert isinstance(lifted, Success), lifted
    # at once — not after the 60 s the last limit would have held
    await pipeline.until(
        lambda: pipeline.power(50, 51) == pytest.approx(-36_000), "PV back to full production"
    )
    assert (pipeline.last_command(50), pipeline.last_command(51)) == (-40_000.0, -20_000.0)
    assert pipeline.sim.command_log.violations() == []


async def test_a_charger_takes_what_its_car_can_and_0_w_once_the_car_is_gone(
    pipeline: Pipeline,
) -> None:
    charging = await pipeline.ask("ev_charging", EV, 11_000, {82})
    assert isinstance(charging, Success), charging
    assert charging.succeeded_power.as_watts() == 7_400.0  # the car's own limit
    await pipeline.until(lambda: pipeline.power(82) == pytest.approx(7_400), "7.4 kW")
    # the car leaves (6 s): the charger's bounds drop to 0..0 and it is told 0 W
    await pipeline.until(lambda: pipeline.last_command(82) == 0.0, "0 W once the car left")
    assert pipeline.power(82) == 0.0
    waiting = await pipeline.ask("ev_charging_2", EV, 11_000, {83})
    assert isinstance(waiting, Success), waiting
    assert waiting.succeeded_power.as_watts() == 0.0  # no car: bounds 0..0
    assert waiting.excess_power.as_watts() == 11_000.0
    assert pipeline.last_command(83) == 0.0
    assert pipeline.sim.command_log.violations() == []
