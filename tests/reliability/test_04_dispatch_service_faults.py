"""Case 4: the dispatch stream drops, and the dispatch service restarts.

Nothing may be missed (a change made while the stream is down, a dispatch that ends
while the service is down, one created right after it is back) and nothing doubled
(a dispatch seen again after a reconnect is not requested again). Counted in the
BatteryPowerActor's `requests` (one PowerRequest per change of what a battery set is
asked) and in the simulator's command log.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import grpc
import pytest
from frequenz.client.dispatch.types import DispatchId

from edge_controller.servers.dispatch.server import DispatchServer
from edge_controller.servers.sim.site import SiteSpec
from tests.harness import KEY, MICROGRID, stream_connected
from tests.patience import PATIENCE_S
from tests.reliability.helpers import (
    ReliableSite,
    assert_no_violations,
    near,
    reliable_site,
    until,
)

_T = TypeVar("_T")


def _commanded(site: ReliableSite, inverter: int) -> list[float]:
    """The powers (rounded to 100 W) `inverter` accepted, oldest first."""
    records = site.sim.command_log.records()
    return [round(r.applied_w, -2) for r in records if r.component_id == inverter]


def _after_first(values: list[float], value: float) -> set[float]:
    """What came from the first occurrence of `value` on."""
    return set(values[values.index(value) :])


async def _retrying(call: Callable[[], Awaitable[_T]], timeout_s: float = PATIENCE_S) -> _T:
    """Repeat `call` while it fails with UNAVAILABLE."""
    async with asyncio.timeout(timeout_s):
        while True:
            try:
                return await call()
            except grpc.aio.AioRpcError as error:
                if error.code() != grpc.StatusCode.UNAVAILABLE:
                    raise
            await asyncio.sleep(0.05)


def _drop_streams(site: ReliableSite) -> None:
    """End every dispatch stream with UNAVAILABLE, as a proxy or a network blip would."""
    site.dispatch.service.end_streams("stream dropped by the test")


async def test_changes_while_the_stream_is_down_are_executed_once(
    example_site: SiteSpec, tmp_path: Path
) -> None:
    async with reliable_site(example_site, tmp_path) as site:
        first = await site.create(-100_000.0, (21,))
        await until(lambda: near(site.sim.model.ac_power_w(20), -100_000), "A runs")
        assert site.counts()["requests"] == 1

        _drop_streams(site)
        assert site.dispatch.service.subscriber_count(1) == 0
        # Made while the library waits to retry its stream (1 s):
        await site.client.update(
            microgrid_id=MICROGRID,
            dispatch_id=DispatchId(first),
            new_fields={"payload": {"power_w": -50_000.0}},
        )
        await site.create(-30_000.0, (31,))

        await stream_connected(site.dispatch, 5)
        await until(lambda: near(site.sim.model.ac_power_w(20), -50_000), "A's update", 5)
        await until(lambda: near(site.sim.model.ac_power_w(30), -30_000), "B runs", 5)
        await asyncio.sleep(1.5)  # time for a doubled event to show
        # A start, A update, B start: three requests, none repeated on the reconnect.
        assert site.counts()["requests"] == 3
        # The old power is held until the update arrives, never after it.
        assert set(_commanded(site, 20)) == {-100_000.0, -50_000.0}
        assert _after_first(_commanded(site, 20), -50_000.0) == {-50_000.0}
        assert set(_commanded(site, 30)) == {-30_000.0}
        assert_no_violations(site.sim)
        site.assert_alive()


async def test_a_dispatch_service_restart_misses_and_doubles_nothing(
    example_site: SiteSpec, tmp_path: Path
) -> None:
    async with reliable_site(example_site, tmp_path) as site:
        await site.create(-60_000.0, (21,), duration_s=2)
        await site.create(-40_000.0, (31,))
        await until(lambda: near(site.sim.model.ac_power_w(20), -60_000), "A runs")
        await until(lambda: near(site.sim.model.ac_power_w(30), -40_000), "B runs")
        address, db = site.dispatch.address, site.dispatch.db_path
        await site.dispatch.stop()

        # A ends while the service is down: the controller keeps time on its own.
        await until(lambda: site.sim.model.ac_power_w(20) == 0.0, "A ends on time", 5)
        assert near(site.sim.model.ac_power_w(30), -40_000)  # B goes on meanwhile

        restarted = DispatchServer(db, address, keys=frozenset({KEY}))
        await restarted.start()
        try:
            site.dispatch = restarted
            # Right away, before the library has reconnected: C is created. (The
            # test's own channel may still be in gRPC's reconnect backoff.)
            third = await _retrying(lambda: site.create(-20_000.0, (41,)))
            await until(lambda: near(site.sim.model.ac_power_w(40), -20_000), "C runs", 8)
            # Once reconnected, B's deletion arrives live. (One the stream misses is
            # found by the reconciliation: see below.)
            await stream_connected(restarted, 10)
            await site.client.delete(microgrid_id=MICROGRID, dispatch_id=DispatchId(third - 1))
            await until(lambda: site.sim.model.ac_power_w(30) == 0.0, "B released", 8)
            await asyncio.sleep(1.5)
            # A start + A release, B start + B release, C start: five, none doubled.
            assert site.counts()["requests"] == 5
            assert site.sim.model.ac_power_w(20) == 0.0  # A did not come back
            assert_no_violations(site.sim)
            site.assert_alive()
        finally:
            await restarted.stop()


async def test_a_deletion_the_stream_missed_is_found_and_released(
    example_site: SiteSpec, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = {"dispatch": {"reconcile_first": 0.5, "reconcile_interval": 1}}
    async with reliable_site(example_site, tmp_path, settings) as site:
        dispatch_id = await site.create(-40_000.0, (31,))
        await until(lambda: near(site.sim.model.ac_power_w(30), -40_000), "B runs")
        # The service deletes it, but the stream event is lost (as in a reconnect gap).
        monkeypatch.setattr(site.dispatch.service, "_publish", lambda *_args: None)
        await site.client.delete(microgrid_id=MICROGRID, dispatch_id=DispatchId(dispatch_id))
        await until(lambda: site.sim.model.ac_power_w(30) == 0.0, "B released", 4)
        # The Dispatcher that still believed in it is replaced: B does not come back.
        await asyncio.sleep(2.5)
        assert site.sim.model.ac_power_w(30) == 0.0
        assert site.counts()["requests"] == 2  # B start, B release
        assert_no_violations(site.sim)
        site.assert_alive()


async def test_a_deactivation_the_stream_missed_is_released_after_the_reconnect(
    example_site: SiteSpec, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The missed update makes the actor replace its Dispatcher; the new one does not
    # run B (inactive) and so never announces it: the actor stops it itself.
    settings = {"dispatch": {"reconcile_first": 0.5, "reconcile_interval": 1}}
    async with reliable_site(example_site, tmp_path, settings) as site:
        dispatch_id = await site.create(-40_000.0, (31,))
        await until(lambda: near(site.sim.model.ac_power_w(30), -40_000), "B runs")
        monkeypatch.setattr(site.dispatch.service, "_publish", lambda *_args: None)
        await site.client.update(
            microgrid_id=MICROGRID,
            dispatch_id=DispatchId(dispatch_id),
            new_fields={"active": False},
        )
        await until(lambda: site.sim.model.ac_power_w(30) == 0.0, "B released", 4)
        await asyncio.sleep(2.5)
        assert site.sim.model.ac_power_w(30) == 0.0
        assert site.counts()["requests"] == 2  # B start, B release
        assert_no_violations(site.sim)
        site.assert_alive()
