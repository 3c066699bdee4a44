"""Live edits applied to a running controller (`Controller.apply`), in process.

The same real parts as the end-to-end tests: simulator, dispatch service, client.
"""

from __future__ import annotations

import dataclasses

import pytest

from edge_controller.config.schema import ControllerConfig, ControlsConfig
from edge_controller.framework.use_case import UseCaseConfig
from tests.harness import Site


def with_controls(site: Site, controls: ControlsConfig) -> ControllerConfig:
    return dataclasses.replace(site.controller.config, controls=controls)


async def test_observe_mode_releases_what_runs_and_commands_nothing_until_control_returns(
    site: Site,
) -> None:
    await site.create(-30_000.0, (21,), start="NOW")
    await site.until(lambda: site.power(20) == pytest.approx(-30_000, abs=100), "running")
    await site.controller.apply(with_controls(site, ControlsConfig(mode="observe")))
    await site.until(lambda: site.power(20) == 0.0, "released on entering observe")
    commands = site.sim.command_log.total
    await site.create(-40_000.0, (31,), start="NOW")
    await site.until(lambda: len(site.controller.use_cases[0].running_dispatches) == 2, "seen")
    await site.until(
        lambda: (
            site.controller.power_distributing is not None
            and site.controller.power_distributing.counts.get("observed", 0) >= 1
        ),
        "planned in observe mode",
    )
    assert site.sim.command_log.total == commands  # nothing sent while observing
    assert site.power(30) == 0.0
    await site.controller.apply(with_controls(site, ControlsConfig(mode="control")))
    await site.until(lambda: site.power(20) == pytest.approx(-30_000, abs=100), "resumed")
    await site.until(lambda: site.power(30) == pytest.approx(-40_000, abs=100), "resumed")


async def test_an_excluded_battery_is_released_and_the_others_carry_the_power(site: Site) -> None:
    await site.create(-200_000.0, (11, 21, 31, 41), start="NOW")
    await site.until(
        lambda: site.power(10, 20, 30, 40) == pytest.approx(-200_000, abs=400), "running"
    )
    await site.controller.apply(
        with_controls(site, ControlsConfig(excluded_batteries=frozenset({21})))
    )
    await site.until(lambda: site.power(20) == 0.0, "the excluded battery is released")
    await site.until(
        lambda: site.power(10, 30, 40) == pytest.approx(-200_000, abs=400), "the others carry it"
    )
    assert site.sim.command_log.violations() == []


async def test_a_lower_power_limit_applies_at_once_and_lifting_it_restores_the_target(
    site: Site,
) -> None:
    await site.create(-120_000.0, (11, 21), start="NOW")
    await site.until(lambda: site.power(10, 20) == pytest.approx(-120_000, abs=200), "running")
    await site.controller.apply(with_controls(site, ControlsConfig(power_limit_w=50_000.0)))
    await site.until(lambda: site.power(10, 20) == pytest.approx(-50_000, abs=200), "limited")
    await site.controller.apply(with_controls(site, ControlsConfig()))
    await site.until(lambda: site.power(10, 20) == pytest.approx(-120_000, abs=200), "restored")


async def test_use_cases_come_and_go_without_a_restart(site: Site) -> None:
    await site.create(-30_000.0, (41,), start="NOW")
    await site.until(lambda: site.power(40) == pytest.approx(-30_000, abs=100), "running")
    config = site.controller.config
    # The running use case is removed: its batteries are released.
    other = UseCaseConfig("battery_power", ("OTHER_TYPE",), "other")
    changes = await site.controller.apply(dataclasses.replace(config, use_cases=(other,)))
    assert changes.use_cases_removed == ("battery_power_0",)
    assert changes.use_cases_added == ("other",)
    await site.until(lambda: site.power(40) == 0.0, "released with its use case")
    assert [u.name for u in site.controller.use_cases] == ["other"]
    # Added back: it picks up the dispatch that is still running.
    changes = await site.controller.apply(config)
    await site.until(lambda: site.power(40) == pytest.approx(-30_000, abs=100), "picked up again")
