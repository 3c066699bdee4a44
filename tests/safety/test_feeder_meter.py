"""A feeder meter's limit end to end: simulator on loopback, the controller in process.

`config/sim-site-feeder.toml`: the example site with a feeder meter (id 3) between the
main meter and inverters A and B (ids 10, 20) and the office load (id 70); inverters C
and D (30, 40) stay directly below the main meter. `[[grid.meters]]` limits the feeder's import: the
batteries below it must not push it over, the others are not bound by it.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from edge_controller.controller.graph import SiteMismatchError
from edge_controller.servers.sim.fault_spec import FaultKind
from edge_controller.servers.sim.site import SiteSpec, load_site
from tests.conftest import ROOT
from tests.harness import Site, site_running

FEEDER_SITE = ROOT / "config" / "sim-site-feeder.toml"
FEEDER = 3
LOAD = 70
BELOW = (10, 20)
ELSEWHERE = (30, 40)
ALL_BATTERIES = (11, 21, 31, 41)
TOLERANCE_W = 5_000.0
"""Load noise between the share's prediction and the command, plus resolutions."""


@pytest.fixture
def feeder_site() -> SiteSpec:
    return load_site(FEEDER_SITE)


def feeder(site: Site) -> float:
    return site.sim.model.ac_power_w(FEEDER)


async def limited_site(
    spec: SiteSpec, tmp_path: Path, headroom_w: float
) -> tuple[float, dict[str, Any]]:
    """The feeder's import now (batteries idle) and a config limiting it to that + headroom."""
    async with site_running(spec, tmp_path / "probe") as site:
        await site.until(lambda: feeder(site) > 0, "the feeder carries its load", 5)
        base = feeder(site)
    limit = base + headroom_w
    return limit, {"grid": {"meters": [{"id": FEEDER, "max_import": limit}]}}


async def test_a_charge_is_held_to_the_feeder_limit_and_the_other_batteries_carry_the_rest(
    feeder_site: SiteSpec, tmp_path: Path
) -> None:
    limit, extra = await limited_site(feeder_site, tmp_path, 60_000)
    async with site_running(feeder_site, tmp_path / "run", extra) as site:
        await site.create(300_000.0, ALL_BATTERIES, start="NOW")
        await site.until(
            lambda: site.power(*BELOW, *ELSEWHERE) == pytest.approx(300_000, abs=TOLERANCE_W),
            "the whole charge runs",
            10,
        )
        await asyncio.sleep(1)
        assert feeder(site) <= limit + TOLERANCE_W
        assert site.power(*BELOW) <= 60_000 + TOLERANCE_W  # the feeder's headroom, no more
        assert site.power(*ELSEWHERE) >= 240_000 - TOLERANCE_W
        assert site.sim.command_log.violations() == []

        # A load step below the feeder: its batteries give way within a few ticks.
        # The step shows on the feeder for a tick or two only (the controller reacts
        # within them), so a poll may miss it on a busy machine: the load itself tells.
        load_before = site.sim.model.ac_power_w(LOAD)
        site.sim.model.load_steps_w[LOAD] = 40_000
        await site.until(
            lambda: site.sim.model.ac_power_w(LOAD) >= load_before + 35_000, "the step", 5
        )
        await site.until(
            lambda: site.power(*BELOW) <= 20_000 + TOLERANCE_W, "the batteries below give way", 5
        )
        await site.until(lambda: feeder(site) <= limit + TOLERANCE_W, "back under the limit", 5)
        assert site.controller.power_distributing is not None
        assert site.controller.power_distributing.counts.get("meter_limited", 0) >= 1

        # The step ends: the batteries below take their share back.
        site.sim.model.load_steps_w[LOAD] = 0.0
        await site.until(
            lambda: site.power(*BELOW) >= 55_000 - TOLERANCE_W, "the share grows back", 5
        )
        assert feeder(site) <= limit + TOLERANCE_W
        assert site.sim.command_log.violations() == []


async def test_a_blind_feeder_meter_holds_its_batteries_at_zero_and_the_rest_runs_on(
    feeder_site: SiteSpec, tmp_path: Path
) -> None:
    limit, extra = await limited_site(feeder_site, tmp_path, 500_000)
    extra["grid"]["stale_after"] = 1
    async with site_running(feeder_site, tmp_path / "run", extra) as site:
        await site.create(-200_000.0, ALL_BATTERIES, start="NOW")
        await site.until(
            lambda: (
                site.power(*BELOW) < -50_000
                and site.power(*BELOW, *ELSEWHERE) == pytest.approx(-200_000, abs=TOLERANCE_W)
            ),
            "running on all four",
            10,
        )
        site.sim.faults.inject(FEEDER, FaultKind.NO_TELEMETRY, now=datetime.now(UTC))
        await site.until(
            lambda: site.power(*BELOW) == pytest.approx(0, abs=500),
            "the feeder's batteries stop",
            5,
        )
        await asyncio.sleep(0.5)
        assert site.power(*ELSEWHERE) == pytest.approx(-200_000, abs=TOLERANCE_W)
        site.sim.faults.clear(FEEDER)
        await site.until(lambda: site.power(*BELOW) < -50_000, "the feeder's batteries resume", 10)
        assert feeder(site) <= limit
        assert site.sim.command_log.violations() == []


async def test_a_limit_on_a_meter_without_batteries_below_is_refused_at_start(
    feeder_site: SiteSpec, tmp_path: Path
) -> None:
    extra = {"grid": {"meters": [{"id": 2, "max_import": 1e6}, {"id": 70, "max_import": 1e5}]}}
    with pytest.raises(SiteMismatchError, match=r"grid\.meters\[1\]\.id: 70 is not a meter"):
        async with site_running(feeder_site, tmp_path, extra):
            pass


async def settle_and_watch(site: Site, limit: float, seconds: float) -> float:
    """The highest feeder power seen over `seconds` (sampled every 0.1 s)."""
    highest = feeder(site)
    for _ in range(round(seconds / 0.1)):
        await asyncio.sleep(0.1)
        highest = max(highest, feeder(site))
    return highest


async def test_two_targets_below_one_feeder_never_get_the_same_headroom_twice(
    feeder_site: SiteSpec, tmp_path: Path
) -> None:
    limit, extra = await limited_site(feeder_site, tmp_path, 60_000)
    async with site_running(feeder_site, tmp_path / "run", extra) as site:
        await site.create(100_000.0, (11,), start="NOW")
        await site.create(100_000.0, (21,), start="NOW")
        await site.until(
            lambda: site.power(*BELOW) == pytest.approx(60_000, abs=TOLERANCE_W),
            "the two share the feeder's headroom",
            10,
        )
        assert site.controller.power_distributing is not None
        counts = site.controller.power_distributing.counts
        before = counts.get("meter_limited", 0)
        assert await settle_and_watch(site, limit, 3.0) <= limit + TOLERANCE_W
        # Settled: no re-plan round after round (the keep-alive is 15 s).
        assert counts.get("meter_limited", 0) - before <= 2
        assert site.sim.command_log.violations() == []


async def test_a_silent_inverter_below_the_feeder_is_counted_at_what_it_still_runs(
    feeder_site: SiteSpec, tmp_path: Path
) -> None:
    limit, extra = await limited_site(feeder_site, tmp_path, 60_000)
    extra["power_distribution"] = {"keepalive_interval": 2}
    async with site_running(feeder_site, tmp_path / "run", extra) as site:
        await site.create(100_000.0, (11, 21), start="NOW")
        await site.until(lambda: site.power(*BELOW) > 55_000, "running at the headroom", 10)
        running_w = site.power(10)
        assert running_w > 10_000  # inverter A carries part of it
        # A stops answering but keeps its last command: B must not take A's part too.
        site.sim.faults.inject(10, FaultKind.RPC_ERROR, now=datetime.now(UTC), status="UNAVAILABLE")
        assert await settle_and_watch(site, limit, 5.0) <= limit + TOLERANCE_W
        assert site.power(10) == pytest.approx(running_w, abs=TOLERANCE_W)
