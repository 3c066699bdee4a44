"""PV curtailment on the simulated site, end to end: the simulator, the dispatch service,
the controller with its power pipeline.

`config/sim-site-pv.toml`: 300 kW of sun on two arrays (200 kW and 100 kW), 120 kW of
load, a 100 kW battery; the grid may export 100 kW. With the battery full, 80 kW of PV
must go, shared 2:1; with room in the battery (peak shaving charges the surplus), none.
"""

from __future__ import annotations

import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from frequenz.client.dispatch.types import TargetIds

from edge_controller.servers.sim.site import SiteSpec, parse_site
from tests.harness import MICROGRID, Site, site_running

ROOT = Path(__file__).resolve().parents[3]
SITE_FILE = ROOT / "config" / "sim-site-pv.toml"
KW = 1000.0
GRID_METER, MAIN, ANNEX, BATTERY_INVERTER, LOAD = 2, 50, 51, 10, 70
TOLERANCE_W = 1.5 * KW
"""A tick of the simulator's physics and the PV's 10 W steps, with room to spare."""


def pv_site(*, battery_soc_pct: float = 90) -> SiteSpec:
    """The site file, its battery starting at `battery_soc_pct` (90: full)."""
    text = SITE_FILE.read_text(encoding="utf-8")
    assert "initial_soc = 90 " in text
    text = text.replace("initial_soc = 90 ", f"initial_soc = {battery_soc_pct:g} ")
    return parse_site(tomllib.loads(text), SITE_FILE.name)


def config(*use_cases: dict[str, object]) -> dict[str, object]:
    return {
        "power_distribution": {"resolutions": {str(BATTERY_INVERTER): 10}},
        "grid": {"max_export": "100 kW"},
        "use_cases": [{"kind": "pv_curtailment", "name": "pv"}, *use_cases],
    }


def export_w(site: Site) -> float:
    return -site.sim.model.ac_power_w(GRID_METER)


def production_w(site: Site) -> float:
    return -site.power(MAIN, ANNEX)


async def test_a_full_battery_means_the_pv_is_curtailed_to_the_export_limit_and_shared(
    tmp_path: Path,
) -> None:
    async with site_running(pv_site(), tmp_path, config()) as site:
        await site.until(
            lambda: production_w(site) == pytest.approx(220 * KW, abs=TOLERANCE_W),
            "the PV curtailed to 220 kW",
        )
        assert export_w(site) <= 100 * KW + TOLERANCE_W
        # Shared by rated power: the 200 kW array gives twice what the 100 kW one does.
        assert -site.power(MAIN) == pytest.approx(2 * -site.power(ANNEX), abs=TOLERANCE_W)
        (pv,) = site.controller.use_cases
        assert pv.driving == {frozenset({MAIN, ANNEX}): pytest.approx(-220 * KW, abs=TOLERANCE_W)}

        site.sim.model.load_steps_w[LOAD] = 150 * KW  # the load rises: all the sun fits
        await site.until(
            lambda: production_w(site) == pytest.approx(300 * KW, abs=TOLERANCE_W),
            "the limit lifted: both arrays at full production",
        )
        await site.until(lambda: pv.driving == {}, "no limit held")


async def test_a_battery_with_room_takes_the_surplus_and_the_pv_is_not_curtailed(
    tmp_path: Path,
) -> None:
    shaving = {
        "kind": "peak_shaving",
        "name": "export_shaving",
        "threshold": "1 MW",
        "export_limit": "100 kW",
        "max_recharge": 0,
    }
    async with site_running(pv_site(battery_soc_pct=50), tmp_path, config(shaving)) as site:
        await site.until(
            lambda: site.power(BATTERY_INVERTER) == pytest.approx(80 * KW, abs=TOLERANCE_W),
            "the battery charging the 80 kW surplus",
        )
        assert production_w(site) == pytest.approx(300 * KW, abs=TOLERANCE_W)
        assert export_w(site) <= 100 * KW + TOLERANCE_W
        pv = next(u for u in site.controller.use_cases if u.name == "pv")
        assert pv.driving == {}
        assert pv.counts.get("requests", 0) == 0


async def test_a_dispatch_limits_the_pv_by_share_of_its_rating(tmp_path: Path) -> None:
    async with site_running(pv_site(battery_soc_pct=50), tmp_path, config()) as site:
        site.sim.model.load_steps_w[LOAD] = 200 * KW  # no export problem at all
        await site.client.create(
            microgrid_id=MICROGRID,
            type="PV_CURTAILMENT",
            start_time=datetime.now(UTC) + timedelta(seconds=1),
            duration=timedelta(minutes=10),
            target=TargetIds(MAIN, ANNEX),
            payload={"max_production_pct": 50},
        )
        await site.until(
            lambda: production_w(site) == pytest.approx(150 * KW, abs=TOLERANCE_W),
            "the PV at 50 % of its 300 kW rating",
        )
        assert -site.power(ANNEX) == pytest.approx(50 * KW, abs=TOLERANCE_W)
