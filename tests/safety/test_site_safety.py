"""Site-level safety end to end: simulator on loopback, the controller in process.

Grid power follows the simulator's main meter (id 2): + import. Tolerances are one
inverter resolution step per inverter plus the guard's prediction error (loads move
between the prediction and the command).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import pytest

from edge_controller.servers.sim.fault_spec import FaultKind
from edge_controller.servers.sim.site import SiteSpec
from tests.harness import Site, site_running

METER = 2
LOAD = 70
INVERTERS = (10, 20, 30, 40)
TOLERANCE_W = 5_000.0


def grid(site: Site) -> float:
    return site.sim.model.ac_power_w(METER)


def batteries(site: Site) -> float:
    return site.power(*INVERTERS)


async def peak_shaving_config(
    spec: SiteSpec, tmp_path: Path
) -> tuple[float, float, dict[str, object]]:
    """The site's import now, a threshold 100 kW above it, and a config with dispatches
    (priority 1) under peak shaving on every battery (priority 10)."""
    async with site_running(spec, tmp_path / "probe") as site:
        base = grid(site)
    threshold = base + 100_000
    extra: dict[str, object] = {
        "use_cases": [
            {"kind": "battery_power", "priority": 1},
            {"kind": "peak_shaving", "name": "peak", "threshold": threshold, "priority": 10},
        ]
    }
    return base, threshold, extra


async def test_a_load_step_above_the_threshold_is_shaved_back_under_it(
    example_site: SiteSpec, tmp_path: Path
) -> None:
    # The threshold sits 100 kW above the site's import now; a 300 kW load step must
    # be met by about 200 kW of discharge.
    base, threshold, extra = await peak_shaving_config(example_site, tmp_path)
    async with site_running(example_site, tmp_path / "run", extra) as site:
        await site.until(lambda: abs(grid(site) - base) < 20_000, "settled", 10)
        assert batteries(site) == pytest.approx(0, abs=1_000)  # below the threshold: idle
        site.sim.model.load_steps_w[LOAD] = 300_000
        await site.until(lambda: grid(site) > threshold + 150_000, "the step shows", 5)
        await site.until(
            lambda: grid(site) <= threshold + TOLERANCE_W, "import back under the threshold", 10
        )
        assert batteries(site) == pytest.approx(-200_000, abs=25_000)
        # The step ends: no recharge above the threshold (margin 0: up to it at most).
        site.sim.model.load_steps_w[LOAD] = 0.0
        await site.until(lambda: batteries(site) >= -1_000, "discharge stops", 10)
        await asyncio.sleep(2)
        assert grid(site) <= threshold + TOLERANCE_W
        assert site.sim.command_log.violations() == []


async def test_a_dispatch_that_would_break_the_export_limit_is_clamped_and_the_rest_runs(
    example_site: SiteSpec, tmp_path: Path
) -> None:
    async with site_running(example_site, tmp_path / "probe") as site:
        base = grid(site)
    # Allow 150 kW of export: a 600 kW discharge would export far more.
    max_export = 150_000.0
    async with site_running(
        example_site, tmp_path / "run", {"grid": {"max_export": max_export}}
    ) as site:
        await site.create(-600_000.0, (11, 21, 31, 41), start="NOW")
        await site.until(lambda: batteries(site) < -50_000, "the dispatch runs (clamped)", 10)
        await site.until(lambda: grid(site) >= -max_export - TOLERANCE_W, "within the limit", 10)
        await asyncio.sleep(2)
        assert grid(site) >= -max_export - TOLERANCE_W  # stays within
        assert batteries(site) == pytest.approx(-(base + max_export), abs=TOLERANCE_W * 2)
        assert site.controller.power_managing is not None
        assert site.controller.power_managing.counts.get("clamp_export_limit", 0) >= 1


async def test_stale_grid_meter_data_sends_the_batteries_to_the_safe_power(
    example_site: SiteSpec, tmp_path: Path
) -> None:
    extra = {"grid": {"max_import": "2 MW", "safe_power": 0, "stale_after": 1}}
    async with site_running(example_site, tmp_path, extra) as site:
        await site.create(-100_000.0, (11, 21), start="NOW")
        await site.until(
            lambda: site.power(10, 20) == pytest.approx(-100_000, abs=500), "running", 10
        )
        site.sim.faults.inject(METER, FaultKind.NO_TELEMETRY, now=datetime.now(UTC))
        await site.until(lambda: site.power(10, 20) == pytest.approx(0, abs=500), "safe power", 10)
        assert site.controller.power_managing is not None
        assert site.controller.power_managing.counts.get("grid_data_missing", 0) >= 1
        assert site.sim.command_log.violations() == []
        site.sim.faults.clear(METER)
        await site.until(
            lambda: site.power(10, 20) == pytest.approx(-100_000, abs=500), "resumed", 10
        )


async def test_an_inverter_in_error_is_acknowledged_restarted_and_used_again(
    example_site: SiteSpec, tmp_path: Path
) -> None:
    extra = {"recovery": {"initial_backoff": 0.5, "max_backoff": 1}}
    async with site_running(example_site, tmp_path, extra) as site:
        await site.create(-200_000.0, (11, 21, 31, 41), start="NOW")
        await site.until(lambda: batteries(site) == pytest.approx(-200_000, abs=500), "running", 10)
        window = site.sim.faults.inject(
            20, FaultKind.ERROR, now=datetime.now(UTC), error_code="OVERTEMPERATURE"
        )
        del window
        # Out of distribution: the others carry the whole target.
        await site.until(lambda: site.power(20) == 0.0, "the faulted inverter stops", 10)
        await site.until(
            lambda: site.power(10, 30, 40) == pytest.approx(-200_000, abs=500), "others carry", 10
        )
        site.sim.faults.clear(20)  # the cause is gone; the latched error needs an ack
        recovery = site.controller.recovery
        assert recovery is not None
        await site.until(lambda: (20, "ack_error") in recovery.steps, "acknowledged", 15)
        await site.until(lambda: (20, "put_back") in recovery.steps, "back in service", 15)
        await site.until(lambda: site.power(20) < -10_000, "used again", 20)
        await site.until(
            lambda: batteries(site) == pytest.approx(-200_000, abs=1_000), "the target holds", 5
        )


async def test_two_use_cases_on_the_same_batteries_resolve_by_priority(
    example_site: SiteSpec, tmp_path: Path
) -> None:
    extra = {
        "use_cases": [
            {"kind": "battery_power", "name": "low", "dispatch_types": ["LOW"], "priority": 1},
            {"kind": "battery_power", "name": "high", "dispatch_types": ["HIGH"], "priority": 5},
        ]
    }
    async with site_running(example_site, tmp_path, extra) as site:
        await site.create(-50_000.0, (11,), start="NOW", type="LOW")
        await site.until(lambda: site.power(10) == pytest.approx(-50_000, abs=500), "low runs", 10)
        await site.create(-120_000.0, (11,), start="NOW", type="HIGH")
        # Dispatches hold their power: the higher priority wins while both run...
        await site.until(lambda: site.power(10) == pytest.approx(-120_000, abs=500), "high", 10)
        managing = site.controller.power_managing
        assert managing is not None
        assert managing.forwarded[frozenset({11})] == pytest.approx(-120_000)
        # ... and a later low-priority update does not take the batteries back.
        await site.create(-30_000.0, (11,), start="NOW", type="LOW")
        await asyncio.sleep(1.5)
        assert site.power(10) == pytest.approx(-120_000, abs=500)


async def test_a_lower_priority_dispatch_runs_within_peak_shaving_bounds(
    example_site: SiteSpec, tmp_path: Path
) -> None:
    _, threshold, extra = await peak_shaving_config(example_site, tmp_path)
    async with site_running(example_site, tmp_path / "run", extra) as site:
        # A charge of 300 kW would import 200 kW above the threshold: cut to ~100 kW.
        await site.create(300_000.0, (11, 21, 31, 41), start="NOW")
        await site.until(lambda: batteries(site) > 50_000, "charging", 10)
        await asyncio.sleep(2)
        assert grid(site) <= threshold + TOLERANCE_W
        assert batteries(site) == pytest.approx(100_000, abs=TOLERANCE_W * 2)
        # A discharge is within the bounds: it runs in full.
        await site.create(-150_000.0, (11, 21, 31, 41), start="NOW")
        await site.until(
            lambda: batteries(site) == pytest.approx(-150_000, abs=1_000), "discharge runs", 10
        )


async def test_a_dispatch_on_part_of_the_site_runs_within_peak_shaving_and_yields_to_a_peak(
    example_site: SiteSpec, tmp_path: Path
) -> None:
    base, threshold, extra = await peak_shaving_config(example_site, tmp_path)
    async with site_running(example_site, tmp_path / "run", extra) as site:
        await site.until(lambda: abs(grid(site) - base) < 20_000, "settled", 10)
        # A 300 kW charge on two batteries would make a 200 kW peak: cut to ~100 kW.
        await site.create(300_000.0, (11, 21), start="NOW")
        await site.until(lambda: site.power(10, 20) > 50_000, "the dispatch runs", 10)
        await asyncio.sleep(1.5)
        assert grid(site) <= threshold + TOLERANCE_W
        assert site.power(10, 20) == pytest.approx(threshold - base, abs=25_000)
        assert site.power(30, 40) == pytest.approx(0, abs=1_000)

        # A load step makes a peak: peak shaving takes every battery.
        site.sim.model.load_steps_w[LOAD] = 300_000
        await site.until(
            lambda: site.power(10, 20, 30, 40) < -100_000, "the batteries shave the peak", 10
        )
        await site.until(lambda: grid(site) <= threshold + TOLERANCE_W, "shaved", 10)
        assert site.controller.power_managing is not None
        assert site.controller.power_managing.counts.get("withheld", 0) >= 1

        # The peak is over: the dispatch runs again within the bounds.
        site.sim.model.load_steps_w[LOAD] = 0.0
        await site.until(lambda: site.power(10, 20) > 50_000, "the dispatch is back", 15)
        await asyncio.sleep(1.0)
        assert grid(site) <= threshold + TOLERANCE_W
        assert site.sim.command_log.violations() == []
