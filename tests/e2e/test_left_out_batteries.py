"""A battery the controller cannot drive is left out at start-up; the rest of the site runs.

Seed 004 (the SDK's PowerDistributingActor) logs a battery with no inverter, or on
several inverters, and goes on without it. Here the example site gets one more
string whose battery hangs on two inverters (90 and 92): the simulator models it,
the controller logs it, never commands 90 or 92, and drives the four other batteries.
A dispatch naming the left-out battery is rejected as a dispatch naming an unknown
battery is. (A battery with no inverter at all is covered by the pure pairing tests:
the simulator refuses such a site file.)
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
import structlog

from edge_controller.controller.graph import SiteMismatchError
from edge_controller.servers.sim.site import SiteSpec, parse_site
from tests.conftest import EXAMPLE_SITE
from tests.harness import site_running

SHARED_INVERTERS = (90, 92)
SHARED_BATTERY = 91


def site_with_a_battery_on_two_inverters() -> SiteSpec:
    document = tomllib.loads(EXAMPLE_SITE.read_text(encoding="utf-8"))
    inverter = {"kind": "battery_inverter", "parent": 2, "active_power_bounds": ["-50 kW", "50 kW"]}
    document["components"] += [
        {"id": 90, **inverter},
        {"id": 92, **inverter},
        {
            "id": SHARED_BATTERY,
            "kind": "battery",
            "parent": list(SHARED_INVERTERS),
            "capacity": "100 kWh",
            "initial_soc": 50,
            "power_bounds": ["-50 kW", "50 kW"],
        },
    ]
    return parse_site(document, "example site + a battery on two inverters")


async def test_a_battery_on_two_inverters_is_left_out_and_the_rest_of_the_site_runs(
    tmp_path: Path,
) -> None:
    with structlog.testing.capture_logs() as logs:
        async with site_running(site_with_a_battery_on_two_inverters(), tmp_path) as site:
            pairs = site.controller.connection.pairs
            assert pairs.battery_ids == (11, 21, 31, 41)
            assert pairs.inverter_ids == (10, 20, 30, 40)

            await site.create(-40_000.0, (11,), start="NOW")
            await site.until(
                lambda: site.power(10) == pytest.approx(-40_000, abs=100), "battery 11 runs"
            )
            await site.create(-20_000.0, (SHARED_BATTERY,), start="NOW")
            await site.until(
                lambda: site.controller.use_cases[0].counts.get("rejected") == 1,
                "the dispatch naming the left-out battery is rejected",
            )
            assert site.power(10) == pytest.approx(-40_000, abs=100)
            commanded = {r.component_id for r in site.sim.command_log.records()}
            assert commanded == {10}
            assert site.power(*SHARED_INVERTERS) == 0.0

    left_out = [e for e in logs if e["event"] == "battery_left_out"]
    assert [(e["log_level"], e["battery"]) for e in left_out] == [("warning", SHARED_BATTERY)]
    assert left_out[0]["reason"] == (
        "battery 91 is fed by inverters 90 and 92; a battery on several inverters is not supported"
    )
    inverters = [(e["inverter"], e["reason"]) for e in logs if e["event"] == "inverter_left_out"]
    assert inverters == [
        (90, "battery inverter 90 feeds battery 91, on several inverters"),
        (92, "battery inverter 92 feeds battery 91, on several inverters"),
    ]
    started = next(e for e in logs if e["event"] == "controller_started")
    assert started["batteries"] == [11, 21, 31, 41]
    assert started["batteries_left_out"] == [SHARED_BATTERY]
    rejected = next(e for e in logs if e["event"] == "dispatch_rejected")
    assert "unknown batteries [91]; available: [11, 21, 31, 41]" in rejected["reason"]


async def test_a_use_case_naming_a_left_out_battery_is_refused_with_the_reason(
    tmp_path: Path,
) -> None:
    use_case = {"kind": "battery_power", "dispatch_types": ["BATTERY_POWER"], "batteries": [91]}
    with pytest.raises(SiteMismatchError) as caught:
        async with site_running(
            site_with_a_battery_on_two_inverters(), tmp_path, {"use_cases": [use_case]}
        ):
            pass
    assert caught.value.problems == [
        "use_cases[0].batteries: [91] are not batteries of this site; it has "
        "[11, 21, 31, 41]; left out: battery 91 is fed by inverters 90 and 92; a battery on "
        "several inverters is not supported"
    ]
