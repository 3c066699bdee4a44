"""PV curtailment on the simulated site, end to end: the simulator, the dispatch service,
the controller with its power pipeline.

`config/sim-site-pv.toml`: 300 kW of sun on two arrays (200 kW and 100 kW), 120 kW of
load, a 100 kW battery; the grid may export 100 kW. With the battery full, 80 kW of PV
must go, shared 2:1; with room in the battery, the use case has it charge the 80 kW and
curtails nothing; with the battery held by a higher-priority discharge, the PV is
curtailed by the surplus and the discharge.
"""

from __future__ import annotations

import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from frequenz.client.dispatch.types import DispatchId, TargetIds

from edge_controller.servers.sim.site import SiteSpec, parse_site
from edge_controller.use_cases.pv_curtailment.actor import PvCurtailmentActor
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


def pv_actor(site: Site) -> PvCurtailmentActor:
    """The running use case's actor (its status), for what only it tells."""
    (actor,) = (u.built.status for u in site.controller.use_cases if u.name == "pv")
    assert isinstance(actor, PvCurtailmentActor)
    return actor


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


async def test_an_idle_battery_with_room_is_charged_with_the_surplus_and_nothing_curtailed(
    tmp_path: Path,
) -> None:
    async with site_running(pv_site(battery_soc_pct=50), tmp_path, config()) as site:
        await site.until(
            lambda: site.power(BATTERY_INVERTER) == pytest.approx(80 * KW, abs=TOLERANCE_W),
            "the battery charging the 80 kW surplus",
        )
        assert production_w(site) == pytest.approx(300 * KW, abs=TOLERANCE_W)
        assert export_w(site) <= 100 * KW + TOLERANCE_W
        pv = pv_actor(site)
        assert pv.driving == {frozenset({11}): pytest.approx(80 * KW, abs=TOLERANCE_W)}
        assert pv.counts.get("requests", 0) == 0  # the PV was never limited

        site.sim.model.load_steps_w[LOAD] = 250 * KW  # no surplus any more: withdrawn
        await site.until(lambda: pv.driving == {}, "the battery's ask withdrawn")
        await site.until(
            lambda: site.power(BATTERY_INVERTER) == pytest.approx(0.0, abs=TOLERANCE_W),
            "the battery back at rest",
        )


async def test_a_higher_priority_discharge_on_the_battery_is_covered_by_curtailment(
    tmp_path: Path,
) -> None:
    # The use case's own export limit, no `[grid] max_export`: with one, the controller's
    # grid guard would turn the dispatch's discharge into the charge the export needs.
    settings = {
        **config(),
        "grid": {},
        "use_cases": [
            {"kind": "pv_curtailment", "name": "pv", "export_limit": "100 kW"},
            {"kind": "battery_power", "name": "trades", "priority": 10},
        ],
    }
    async with site_running(pv_site(battery_soc_pct=50), tmp_path, settings) as site:
        await site.until(
            lambda: site.power(BATTERY_INVERTER) == pytest.approx(80 * KW, abs=TOLERANCE_W),
            "the battery charging the 80 kW surplus",
        )
        await site.create(-50 * KW, (11,))
        await site.until(
            lambda: site.power(BATTERY_INVERTER) == pytest.approx(-50 * KW, abs=TOLERANCE_W),
            "the dispatch's 50 kW discharge, over the use case's ask",
        )
        await site.until(
            lambda: production_w(site) == pytest.approx(170 * KW, abs=TOLERANCE_W),
            "the PV curtailed by the 80 kW surplus and the 50 kW discharge",
        )
        assert export_w(site) <= 100 * KW + TOLERANCE_W
        assert site.power(BATTERY_INVERTER) == pytest.approx(-50 * KW, abs=TOLERANCE_W)
        assert not pv_actor(site).batteries_counted


async def test_under_the_grid_guard_a_higher_priority_discharge_runs_and_the_pv_gives_way(
    tmp_path: Path,
) -> None:
    # With `[grid] max_export`, the controller's grid guard holds the export the moment
    # the dispatch's discharge would break it — by turning the discharge into the
    # charge the export needs. The manager tells the use case its ask is overruled, so
    # it curtails for the discharge at its next step; the guard then lets the
    # discharge run. (Reckoned from what the battery measured, the curtailment would
    # see no export problem and the guard would hold the battery charging for good.)
    settings = {
        **config({"kind": "battery_power", "name": "trades", "priority": 10}),
    }
    async with site_running(pv_site(battery_soc_pct=50), tmp_path, settings) as site:
        await site.until(
            lambda: site.power(BATTERY_INVERTER) == pytest.approx(80 * KW, abs=TOLERANCE_W),
            "the battery charging the 80 kW surplus",
        )
        dispatch_id = await site.create(-50 * KW, (11,))
        await site.until(
            lambda: (
                production_w(site) == pytest.approx(170 * KW, abs=TOLERANCE_W)
                and site.power(BATTERY_INVERTER) == pytest.approx(-50 * KW, abs=TOLERANCE_W)
            ),
            "the dispatch's 50 kW discharge running, the PV curtailed to 170 kW",
        )
        assert export_w(site) <= 100 * KW + TOLERANCE_W
        pv = pv_actor(site)
        assert not pv.batteries_counted
        assert pv.counts.get("result_Overruled", 0) >= 1

        await site.client.delete(microgrid_id=MICROGRID, dispatch_id=DispatchId(dispatch_id))
        await site.until(
            lambda: (
                production_w(site) == pytest.approx(300 * KW, abs=TOLERANCE_W)
                and site.power(BATTERY_INVERTER) == pytest.approx(80 * KW, abs=TOLERANCE_W)
            ),
            "the dispatch gone: the battery takes the surplus again, the PV in full",
        )
        assert pv.counts.get("result_InForce", 0) >= 1
        assert export_w(site) <= 100 * KW + TOLERANCE_W


async def test_peak_shavings_export_limit_and_the_use_case_agree_on_the_charge(
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
        assert pv_actor(site).counts.get("requests", 0) == 0


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
