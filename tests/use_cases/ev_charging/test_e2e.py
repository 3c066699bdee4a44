"""EV charging end to end: an EV_CHARGING dispatch on the car park's simulated chargers.

The simulator (`config/sim-site-ev.toml` at 1200× physics speed: its cars come and go
in seconds), our dispatch service, the controller graph with an `ev_charging` use
case, and the dispatch client, all on loopback.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from frequenz.client.dispatch.types import TargetIds

from edge_controller.servers.sim.site import load_site
from tests.conftest import ROOT
from tests.harness import MICROGRID, Site, site_running

EV_SITE = ROOT / "config" / "sim-site-ev.toml"
SPEED = 1200.0
"""Charger 82's car leaves after two simulated hours: six seconds here."""


async def budget_of_15_kw_for_81_and_82(site: Site) -> None:
    """An EV_CHARGING dispatch for chargers 81 and 82 that starts in half a second."""
    await site.client.create(
        microgrid_id=MICROGRID,
        type="EV_CHARGING",
        start_time=datetime.now(UTC) + timedelta(seconds=0.5),
        duration=timedelta(minutes=10),
        target=TargetIds(81, 82),
        payload={"budget_w": "15 kW"},
    )


async def test_a_budget_is_shared_by_the_cars_and_a_leaving_car_releases_its_share(
    tmp_path: Path,
) -> None:
    extra = {
        "power_distribution": {"resolutions": {"10": 10}},
        "use_cases": [{"kind": "ev_charging", "min_power": "4140 W", "tick": 0.1}],
    }
    async with site_running(
        load_site(EV_SITE), tmp_path, extra, sim_options={"speed": SPEED}
    ) as site:
        model = site.sim.model
        assert model.ev_plugged(81)  # an 11 kW car, 40 kWh to go
        assert model.ev_plugged(82)  # a 7.4 kW car for two hours
        await budget_of_15_kw_for_81_and_82(site)
        await site.until(
            lambda: (site.power(81), site.power(82)) == (7_600.0, 7_400.0),
            "15 kW shared: the 7.4 kW car full out, the other the rest",
        )
        await site.until(lambda: not model.ev_plugged(82), "the two hours are up: it leaves")
        await site.until(
            lambda: (site.power(81), site.power(82)) == (11_000.0, 0.0),
            "its share goes to the car still there, up to that car's 11 kW",
        )
        assert site.power(83) == 0.0  # not in the dispatch's target
        assert site.sim.command_log.violations() == []


async def test_the_cars_share_the_room_the_import_limit_leaves_minimums_kept(
    tmp_path: Path,
) -> None:
    extra = {
        "power_distribution": {"resolutions": {"10": 10}},
        "grid": {"max_import": "12 kW"},
        "use_cases": [{"kind": "ev_charging", "min_power": "4140 W", "tick": 0.1}],
    }
    async with site_running(load_site(EV_SITE), tmp_path, extra) as site:
        assert site.power(2) == 6_000.0  # the building's 30 kW less the carport's 24 kW PV
        await budget_of_15_kw_for_81_and_82(site)
        # 6 kW of room: the guard alone would cut both cars to 3 kW, below the 4.14 kW
        # that each must get if it charges at all
        await site.until(
            lambda: (site.power(81), site.power(82)) == (6_000.0, 0.0),
            "one car takes the 6 kW the grid leaves",
        )
        assert site.power(2) == 12_000.0
        assert site.sim.command_log.violations() == []
