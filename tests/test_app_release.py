"""The release at stop is logged once: `batteries_released` with what was commanded."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import structlog

from edge_controller.controller.graph import release_summary
from edge_controller.microgrid.graph import BatteryPairs, InverterBatteries
from edge_controller.servers.sim.site import FaultKind, SiteSpec
from tests.harness import site_running

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
