"""Dispatches end to end: dispatch service → controller graph → simulated inverters.

Everything is real and on loopback: the simulator, our Dispatch API service (SQLite
in a temp dir), the controller graph (`Controller`), and the real
`frequenz-client-dispatch` client creating the dispatches. The dispatch library
schedules with the wall clock, so these tests use it too, with dispatches starting
a second or two ahead and short polls — never long sleeps.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from frequenz.client.dispatch import DispatchApiClient
from frequenz.client.dispatch.types import DispatchId, TargetIds

from edge_controller.config.schema import parse_config
from edge_controller.controller.graph import Controller
from edge_controller.servers.dispatch.model import (
    DispatchData,
    Frequency,
    Recurrence,
    Target,
    TargetKind,
)
from edge_controller.servers.dispatch.server import DispatchServer
from edge_controller.servers.sim.server import SimulatorServer
from edge_controller.servers.sim.site import SiteSpec
from tests.harness import KEY, MICROGRID, Site, create_now, power_reaches, stream_connected


async def test_a_dispatch_moves_power_from_its_start_and_follows_updates_and_deletion(
    site: Site,
) -> None:
    dispatch_id = await site.create(
        -100_000.0, (11, 21), start=datetime.now(UTC) + timedelta(seconds=1.5)
    )
    await asyncio.sleep(0.5)
    assert site.power(10, 20, 30, 40) == 0.0  # not before its start time
    await site.until(
        lambda: site.power(10, 20) == pytest.approx(-100_000, abs=200), "the dispatch runs"
    )
    assert site.power(30, 40) == 0.0  # only the targeted batteries
    await site.client.update(
        microgrid_id=MICROGRID,
        dispatch_id=DispatchId(dispatch_id),
        new_fields={"payload": {"power_w": "-50 kW"}},
    )
    await site.until(
        lambda: site.power(10, 20) == pytest.approx(-50_000, abs=200), "the update applies"
    )
    await site.client.delete(microgrid_id=MICROGRID, dispatch_id=DispatchId(dispatch_id))
    await site.until(lambda: site.power(10, 20, 30, 40) == 0.0, "deletion releases the batteries")
    assert site.sim.command_log.violations() == []


async def test_dry_run_commands_nothing(site: Site) -> None:
    await site.create(-100_000.0, (11,), dry_run=True, start="NOW")
    await asyncio.sleep(2.0)
    assert all(r.applied_w == 0.0 for r in site.sim.command_log.records())


async def test_a_bad_payload_is_rejected_and_another_dispatch_keeps_running(site: Site) -> None:
    await site.create(-40_000.0, (31,), start="NOW")
    await site.create("a lot", (41,), start="NOW")
    await site.until(lambda: site.power(30) == pytest.approx(-40_000, abs=100), "the good one runs")
    await asyncio.sleep(0.5)
    assert site.power(40) == 0.0
    counts = site.controller.use_cases[0].counts
    assert counts.get("rejected") == 1


async def test_a_recurring_dispatch_runs_its_next_occurrence(site: Site) -> None:
    # Created through the service (the client refuses past starts): an every-minute
    # dispatch whose last occurrence ended, with the next one two seconds away.
    now = datetime.now(UTC).replace(microsecond=0)
    first = now - timedelta(seconds=58)
    await site.dispatch.service.create(
        1,
        DispatchData(
            type="BATTERY_POWER",
            start_time=first,
            duration_s=3,
            target=Target(TargetKind.IDS, ids=(41,)),
            is_active=True,
            is_dry_run=False,
            payload={"power_w": -20_000.0},
            recurrence=Recurrence(freq=Frequency.MINUTELY, interval=1),
        ),
    )
    await asyncio.sleep(0.5)
    assert site.power(40) == 0.0  # between occurrences
    await site.until(
        lambda: site.power(40) == pytest.approx(-20_000, abs=100), "the next occurrence", 6.0
    )
    await site.until(lambda: site.power(40) == 0.0, "the occurrence's end", 6.0)


async def test_a_dispatch_service_restart_loses_nothing_and_doubles_nothing(
    example_site: SiteSpec, tmp_path: Path
) -> None:
    db = tmp_path / "dispatches.db"
    async with SimulatorServer(example_site) as sim:
        dispatch = DispatchServer(db, keys=frozenset({KEY}))
        await dispatch.start()
        address = dispatch.address
        config = parse_config(
            {
                "microgrid": {"url": sim.url},
                "dispatch": {"url": dispatch.url, "microgrid_id": 1},
                "use_cases": [{"kind": "battery_power"}],
            },
            environ={"EDGE_CONTROLLER_DISPATCH_KEY": KEY},
        )
        async with Controller(config) as controller:
            await stream_connected(dispatch, 10)
            await create_now(dispatch.url, 21, -30_000.0)
            await power_reaches(sim, 20, -30_000, 10)
            await dispatch.stop()
            await asyncio.sleep(1.0)
            assert sim.model.ac_power_w(20) == pytest.approx(-30_000, abs=100)  # keeps running
            restarted = DispatchServer(db, address, keys=frozenset({KEY}))
            await restarted.start()
            try:
                await stream_connected(restarted, 15)
                await asyncio.sleep(0.5)
                counts = controller.use_cases[0].counts
                # Seen again after the reconnect, but executed once: no second request.
                requests_to_20 = [
                    r for r in sim.command_log.records() if r.component_id == 20 and r.applied_w
                ]
                assert counts.get("rejected", 0) == 0
                assert counts["requests"] == 1
                assert sim.model.ac_power_w(20) == pytest.approx(-30_000, abs=100)
                assert all(r.applied_w == pytest.approx(-30_000, abs=100) for r in requests_to_20)
            finally:
                await restarted.stop()


async def test_a_restart_without_the_dispatch_service_runs_the_cached_schedule(
    example_site: SiteSpec, tmp_path: Path
) -> None:
    db = tmp_path / "dispatches.db"
    async with SimulatorServer(example_site) as sim:
        dispatch = DispatchServer(db, keys=frozenset({KEY}))
        await dispatch.start()
        address, url = dispatch.address, dispatch.url
        config = parse_config(
            {
                "microgrid": {"url": sim.url},
                "dispatch": {
                    "url": url,
                    "microgrid_id": 1,
                    "startup_timeout": 2,
                    "cache_file": str(tmp_path / "state" / "cache.json"),
                    "reconnect_interval": 1,
                },
                "use_cases": [{"kind": "battery_power"}],
            },
            environ={"EDGE_CONTROLLER_DISPATCH_KEY": KEY},
        )
        async with Controller(config):
            await stream_connected(dispatch, 10)
            client = DispatchApiClient(server_url=url, auth_key=KEY)
            created = await client.create(
                microgrid_id=MICROGRID,
                type="BATTERY_POWER",
                start_time="NOW",
                duration=timedelta(minutes=5),
                target=TargetIds(41),
                payload={"power_w": -25_000.0},
            )
            await power_reaches(sim, 40, -25_000, 10)
        assert sim.model.ac_power_w(40) == 0.0  # released on stop
        await dispatch.stop()

        # The controller comes back while the service is down: it runs from the cache.
        async with Controller(config):
            await power_reaches(sim, 40, -25_000, 10)
            # The service returns; the controller reconnects and follows it live again.
            restarted = DispatchServer(db, address, keys=frozenset({KEY}))
            await restarted.start()
            try:
                await stream_connected(restarted, 15)
                assert sim.model.ac_power_w(40) == pytest.approx(-25_000, abs=100)
                live = DispatchApiClient(server_url=url, auth_key=KEY)
                await live.delete(microgrid_id=MICROGRID, dispatch_id=created.id)
                async with asyncio.timeout(10):
                    while sim.model.ac_power_w(40) != 0.0:
                        await asyncio.sleep(0.05)
            finally:
                await restarted.stop()


async def test_a_dispatch_the_stream_never_delivered_is_found_and_executed(
    example_site: SiteSpec, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with (
        SimulatorServer(example_site) as sim,
        DispatchServer(tmp_path / "dispatches.db", keys=frozenset({KEY})) as dispatch,
    ):
        config = parse_config(
            {
                "microgrid": {"url": sim.url},
                "dispatch": {
                    "url": dispatch.url,
                    "microgrid_id": 1,
                    "reconcile_first": 1,
                    "reconcile_interval": 1,
                },
                "use_cases": [{"kind": "battery_power"}],
            },
            environ={"EDGE_CONTROLLER_DISPATCH_KEY": KEY},
        )
        async with Controller(config):
            await stream_connected(dispatch, 10)
            # The service stores the dispatch but its stream event is lost, as when a
            # dispatch is created between the library's first fetch and its stream.
            monkeypatch.setattr(dispatch.service, "_publish", lambda *_args: None)
            await create_now(dispatch.url, 31, -15_000.0)
            await power_reaches(sim, 30, -15_000, 15)
