"""The release at stop: every battery, EV charger and PV inverter given back, logged once.

`batteries_released` names what the 0 W release of the battery inverters commanded;
`direct_released` what the EV chargers (0 W) and PV inverters (full production) were told.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import structlog
from frequenz.client.dispatch.types import TargetIds

from edge_controller.controller.graph import direct_release_summary, release_summary
from edge_controller.microgrid.graph import BatteryPairs, InverterBatteries
from edge_controller.servers.sim.fault_spec import FaultKind
from edge_controller.servers.sim.server import SimulatorServer
from edge_controller.servers.sim.site import SiteSpec, load_site
from tests.conftest import ROOT
from tests.harness import MICROGRID, site_running

INVERTERS = [10, 20, 30, 40]
BATTERIES = [11, 21, 31, 41]


def test_the_summary_names_what_succeeded_and_what_failed() -> None:
    pairs = BatteryPairs((InverterBatteries(10, (11,)), InverterBatteries(20, (21, 22))))
    summary = release_summary(
        pairs, {10: datetime(2026, 12, 7, tzinfo=UTC), 20: TimeoutError()}, 2.0
    )
    assert summary == {
        "inverters": [10, 20],
        "batteries": [11, 21, 22],
        "power_w": 0.0,
        "succeeded": [10],
        "failed": {"20": "TimeoutError()"},
        "timeout_s": 2.0,
    }


async def test_a_stop_logs_batteries_released_once(example_site: SiteSpec, tmp_path: Path) -> None:
    with structlog.testing.capture_logs() as logs:
        async with site_running(example_site, tmp_path):
            pass
    released = [e for e in logs if e["event"] == "batteries_released"]
    assert len(released) == 1, released
    assert released[0]["log_level"] == "info"
    assert released[0]["inverters"] == INVERTERS
    assert released[0]["batteries"] == BATTERIES
    assert released[0]["power_w"] == 0.0
    assert released[0]["succeeded"] == INVERTERS
    assert released[0]["failed"] == {}


async def test_a_failed_release_is_a_warning_naming_the_inverter(
    example_site: SiteSpec, tmp_path: Path
) -> None:
    with structlog.testing.capture_logs() as logs:
        async with site_running(example_site, tmp_path) as site:
            site.sim.faults.inject(30, FaultKind.RPC_ERROR, now=datetime.now(UTC))
    released = [e for e in logs if e["event"] == "batteries_released"]
    assert len(released) == 1, released
    assert released[0]["log_level"] == "warning"
    assert released[0]["succeeded"] == [10, 20, 40]
    assert list(released[0]["failed"]) == ["30"]
    assert [e for e in logs if e["event"] == "release_failed"] == []  # one line, not two


async def test_observe_mode_says_nothing_was_released(
    example_site: SiteSpec, tmp_path: Path
) -> None:
    with structlog.testing.capture_logs() as logs:
        async with site_running(example_site, tmp_path, {"controls": {"mode": "observe"}}):
            pass
    assert [e for e in logs if e["event"] == "batteries_released"] == []
    assert [e["event"] for e in logs if e["event"] == "batteries_not_released"] == [
        "batteries_not_released"
    ]


def test_the_direct_summary_names_each_command_and_what_failed() -> None:
    summary = direct_release_summary(
        {81: 0.0, 50: -40_000.0}, {81: datetime(2026, 12, 7, tzinfo=UTC), 50: TimeoutError()}, 2.0
    )
    assert summary == {
        "components": [50, 81],
        "commands_w": {"50": -40_000.0, "81": 0.0},
        "succeeded": [81],
        "failed": {"50": "TimeoutError()"},
        "timeout_s": 2.0,
    }


EV_SITE = ROOT / "config" / "sim-site-ev.toml"
CHARGER, PV = 81, 50
"""Charger 81 has an 11 kW car from the start; the 40 kW carport PV makes 24 kW."""


def last_command(sim: SimulatorServer, component_id: int) -> float | None:
    sent = [r.requested_w for r in sim.command_log.records() if r.component_id == component_id]
    return sent[-1] if sent else None


async def test_a_stopped_controller_leaves_no_charger_charging_and_no_pv_curtailed(
    tmp_path: Path,
) -> None:
    extra = {
        "power_distribution": {"resolutions": {"10": 10, "50": 10, "81": 10}},
        "use_cases": [
            {"kind": "ev_charging", "min_power": "4140 W", "tick": 0.1},
            {"kind": "pv_curtailment", "name": "pv"},
        ],
    }
    with structlog.testing.capture_logs() as logs:
        async with site_running(load_site(EV_SITE), tmp_path, extra) as site:
            start = datetime.now(UTC) + timedelta(seconds=0.5)
            for kind, target, payload in (
                ("EV_CHARGING", CHARGER, {"budget_w": "11 kW"}),
                ("PV_CURTAILMENT", PV, {"max_production_pct": 50}),
            ):
                await site.client.create(
                    microgrid_id=MICROGRID,
                    type=kind,
                    start_time=start,
                    duration=timedelta(minutes=10),
                    target=TargetIds(target),
                    payload=payload,
                )
            await site.until(
                lambda: (site.power(CHARGER), site.power(PV)) == (11_000.0, -20_000.0),
                "the car charging at 11 kW, the PV held to 50 % of its 40 kW",
            )
            sim = site.sim
    # The last word each heard was the stop's: no waiting for a command to expire.
    assert (last_command(sim, CHARGER), last_command(sim, PV)) == (0.0, -40_000.0)
    assert sim.model.ac_power_w(CHARGER) == 0.0
    assert sim.model.ac_power_w(PV) == pytest.approx(-24_000.0, abs=10)
    assert sim.command_log.violations() == []
    (released,) = [e for e in logs if e["event"] == "direct_released"]
    assert released["commands_w"] == {"50": -40_000.0, "81": 0.0, "82": 0.0, "83": 0.0}
    assert released["failed"] == {}
    # resolutions for a charger and a PV inverter are no typo
    assert [e for e in logs if e["event"] == "resolution_for_unknown_inverters"] == []
