"""ComponentRecoveryActor in process: a battery faults, is taken out, recovered, put back.

The microgrid is a filled telemetry cache plus a fake that records the two recovery
commands and, like the simulator's devices, answers them through the state it
reports next (an acknowledged error goes to STANDBY, a started one to READY). What a
user notices is what the distributor is told: which batteries to leave out.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta

import pytest

from edge_controller.common.clock import ManualClock
from edge_controller.controller.component_recovery import ComponentRecoveryActor
from edge_controller.microgrid.graph import BatteryPairs
from edge_controller.microgrid.recovery import RecoveryConfig
from edge_controller.microgrid.telemetry import TelemetryCache
from tests.controller.cached_site import CachedSite
from tests.patience import until
from tests.table import START

NONE: frozenset[int] = frozenset()


@dataclass
class Microgrid:
    """The connection as the actor sees it; the devices obey unless `refuse` is set."""

    site: CachedSite
    commands: list[tuple[str, int]] = field(default_factory=list)
    refuse: bool = False

    @property
    def pairs(self) -> BatteryPairs:
        return self.site.pairs

    @property
    def cache(self) -> TelemetryCache:
        return self.site.cache

    async def ack_error(self, component_id: int, *, timeout_s: float = 5.0) -> None:
        self.commands.append(("ack", component_id))
        if self.refuse:
            raise TimeoutError("the device did not answer")
        self._report(component_id, "STANDBY")

    async def start_component(self, component_id: int, *, timeout_s: float = 5.0) -> None:
        self.commands.append(("start", component_id))
        self._report(component_id, "READY")

    def _report(self, component_id: int, state: str) -> None:
        if component_id in self.site.pairs.battery_ids:
            self.site.battery(component_id, state=state)
        else:
            self.site.inverter(component_id, state=state)


@dataclass
class Recovery:
    microgrid: Microgrid
    actor: ComponentRecoveryActor
    told: list[frozenset[int]]
    """Every set of batteries the distributor was told to leave out, in order."""

    @property
    def out(self) -> frozenset[int]:
        return self.told[-1] if self.told else NONE


def recovery(config: RecoveryConfig | None = None) -> Recovery:
    site = CachedSite(ManualClock(START))
    site.everything_ready()
    microgrid = Microgrid(site)
    told: list[frozenset[int]] = []
    actor = ComponentRecoveryActor(
        microgrid, told.append, config=config, clock=site.clock, tick=timedelta(milliseconds=20)
    )
    return Recovery(microgrid, actor, told)


async def test_a_faulted_battery_is_taken_out_recovered_and_put_back() -> None:
    run = recovery()
    await run.actor.check()
    assert run.told == []  # all working: nothing to tell
    run.microgrid.site.battery(11, state="ERROR", errors=frozenset({"OVERTEMPERATURE"}))
    await run.actor.check()
    assert run.out == {11}
    assert run.microgrid.commands == [("ack", 11)]
    await run.actor.check()  # the battery reports STANDBY after the ack: start it
    assert run.microgrid.commands == [("ack", 11), ("start", 11)]
    assert run.out == {11}
    await run.actor.check()  # READY: back in distribution
    assert run.told == [frozenset({11}), NONE]
    assert run.microgrid.commands == [("ack", 11), ("start", 11)]


async def test_an_inverter_in_error_takes_its_battery_out_and_only_that() -> None:
    run = recovery()
    run.microgrid.site.inverter(20, state="ERROR")
    await run.actor.check()
    assert run.out == {21}
    assert run.microgrid.commands[0] == ("ack", 20)


async def test_a_refused_command_is_retried_after_the_backoff_on_the_clock() -> None:
    run = recovery(RecoveryConfig(initial_backoff=timedelta(seconds=2)))
    run.microgrid.refuse = True
    run.microgrid.site.battery(11, state="ERROR")
    await run.actor.check()
    assert run.microgrid.commands == [("ack", 11)]
    run.microgrid.site.clock.advance(1.9)
    await run.actor.check()
    assert run.microgrid.commands == [("ack", 11)]  # still backing off
    assert run.out == {11}
    run.microgrid.refuse = False
    run.microgrid.site.clock.advance(0.1)
    await run.actor.check()
    assert run.microgrid.commands == [("ack", 11), ("ack", 11)]
    await run.actor.check()
    await run.actor.check()
    assert run.out == NONE


async def test_a_battery_switched_off_on_purpose_is_left_out_but_not_started() -> None:
    run = recovery()
    run.microgrid.site.battery(21, state="OFF")
    await run.actor.check()
    await run.actor.check()
    assert run.out == {21}
    assert run.microgrid.commands == []


@pytest.fixture
async def running() -> AsyncIterator[Recovery]:
    run = recovery()
    run.actor.start()
    try:
        yield run
    finally:
        await run.actor.stop()  # compat.Timer: a stop is never swallowed


async def test_the_running_actor_checks_on_its_own(running: Recovery) -> None:
    await asyncio.sleep(0)
    running.microgrid.site.battery(11, state="ERROR")
    await until(lambda: running.told == [frozenset({11}), NONE], "battery 11 out and back")
    assert running.microgrid.commands == [("ack", 11), ("start", 11)]
