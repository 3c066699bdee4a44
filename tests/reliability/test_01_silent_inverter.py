"""Case 1: an inverter stops answering in the middle of a dispatch.

The simulator's `unresponsive` fault holds every control RPC to inverter 20 (the
string that carries most of the discharge) while its telemetry goes on, as in Frequenz
SDK #1354. Expected: PartialFailure within the request timeout + 50 ms; the silent
inverter's measured power is counted, so the sum never goes beyond the target; when
its last command expires the others carry all of it; after recovery (and its
blocking time) it is used again.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import math
from collections.abc import AsyncIterator
from pathlib import Path

from edge_controller.framework.messages import PartialFailure
from edge_controller.servers.sim.fault_spec import FaultKind
from edge_controller.servers.sim.site import SiteSpec
from tests.reliability.helpers import (
    BATTERIES,
    PowerWatch,
    ReliableSite,
    assert_no_violations,
    near,
    reliable_site,
    until,
)

TARGET_W = -400_000.0
TIMEOUT_S = 0.5  # power_distribution.request_timeout in helpers.FAST
LIFETIME_S = 10  # the shortest command lifetime the API takes


@contextlib.asynccontextmanager
async def _dispatch_running(
    example_site: SiteSpec, tmp_path: Path
) -> AsyncIterator[tuple[ReliableSite, float]]:
    """The site running TARGET_W on every battery; also what inverter 20 carries of it."""
    settings = {"power_distribution": {"command_lifetime": LIFETIME_S}}
    async with reliable_site(example_site, tmp_path, settings) as site:
        await site.create(TARGET_W, BATTERIES)
        await until(lambda: near(site.power(), TARGET_W, 1000), "the dispatch runs")
        yield site, site.sim.model.ac_power_w(20)


async def test_a_silent_inverter_fails_fast_is_counted_and_comes_back(
    example_site: SiteSpec, tmp_path: Path
) -> None:
    loop = asyncio.get_running_loop()
    async with _dispatch_running(example_site, tmp_path) as (site, share_20):
        assert share_20 < -100_000, "inverter 20 (the fullest string) carries a real share"

        async with PowerWatch(site.sim) as watch:
            site.fault(20, FaultKind.UNRESPONSIVE)
            faulted_at = loop.time()
            # The next keep-alive round (<= 1 s) hits the silent inverter.
            await until(
                lambda: bool(site.recorder.of_kind(PartialFailure, faulted_at)), "PartialFailure", 3
            )
            answered_at, failure = site.recorder.of_kind(PartialFailure, faulted_at)[0]
            ended_at, took_s = next(
                (t, seconds)
                for t, seconds, ok in site.recorder.commands
                if not ok and t >= faulted_at
            )
            sent_at = ended_at - took_s
            assert answered_at - sent_at <= TIMEOUT_S + 0.05, (
                "PartialFailure within timeout + 50 ms"
            )
            assert failure.failed_batteries == {21}
            assert failure.succeeded_batteries == {11, 31, 41}

            # Its last command still runs: it is counted, the others carry only the rest.
            assert near(site.sim.model.ac_power_w(20), share_20, 1.0)
            await asyncio.sleep(1.0)
            assert near(site.power(), TARGET_W, 1000)

            # The command expires (lifetime 10 s): the others carry all of it.
            await until(lambda: site.sim.model.ac_power_w(20) == 0.0, "expiry", LIFETIME_S + 2)
            expired_at = loop.time()
            carried_at = await until(
                lambda: near(site.power(10, 30, 40), TARGET_W, 1000), "the others carry it", 3
            )
            assert carried_at - expired_at < 2.0

            # Recovery: used again once its blocking time (<= blocking_max 2 s) ends.
            site.sim.faults.clear(20)
            recovered_at = loop.time()
            back_at = await until(lambda: site.sim.model.ac_power_w(20) < -1000, "back", 5)
            assert back_at - recovered_at <= 2.0 + 1.0 + 0.5  # blocking_max + keep-alive + slack
            await until(lambda: near(site.power(), TARGET_W, 1000), "balanced again", 3)

        # No over-delivery: beyond one resolution step only for the few milliseconds in
        # which a round's commands land one after the other (one sample at most).
        assert watch.longest_over(TARGET_W, tolerance_w=100.0) <= 0.05
        assert_no_violations(site.sim)
        site.assert_alive()


def _runs_at(site: ReliableSite, target_w: float) -> bool:
    return near(site.power(), target_w, 1000)


def _retried_since(site: ReliableSite, since: float) -> bool:
    """A command failed (the silent inverter's retry) that was sent after `since`."""
    return any(not ok and t - took >= since for t, took, ok in site.recorder.commands)


def _over_outside_changes(
    watch: PowerWatch, windows: list[tuple[float, float, float]], step_w: float
) -> list[tuple[float, float, float]]:
    """Samples beyond |target| + one step, outside the request timeout after a change.

    `windows` are (from, to, target): from = the change + the request timeout + the
    time a dispatch change takes to reach the distributor (wide, for a loaded CI).
    """
    found = []
    for begin, end, target in windows:
        for t, total in watch.sums(begin):
            if t < end and math.copysign(1.0, target) * total - abs(target) > step_w:
                found.append((t, total, target))
    return found


async def test_a_silent_inverter_is_counted_while_the_request_moves_around_its_power(
    example_site: SiteSpec, tmp_path: Path
) -> None:
    loop = asyncio.get_running_loop()
    async with _dispatch_running(example_site, tmp_path) as (site, held_w):
        assert held_w < -200_000, "inverter 20 (the fullest string) holds a real share"
        async with PowerWatch(site.sim) as watch:
            site.fault(20, FaultKind.UNRESPONSIVE)
            faulted_at = loop.time()
            await until(lambda: bool(site.recorder.of_kind(PartialFailure, faulted_at)), "failed")
            windows: list[tuple[float, float, float]] = []
            # Below its measured power (the others charge) and above it, while the
            # retries and keep-alives of the blocked battery go on (all within the
            # 10 s lifetime of its last command).
            for target_w in (-150_000.0, -450_000.0):
                changed_at = loop.time()
                await site.create(target_w, BATTERIES)
                reached_at = await until(
                    functools.partial(_runs_at, site, target_w), f"{target_w:g} W"
                )
                # A retry of the blocked battery (its blocking time over) hits it: the
                # moment a retry used to plan it as working (issue 13, item 1).
                await until(functools.partial(_retried_since, site, reached_at), "a retry")
                windows.append((changed_at + TIMEOUT_S + 1.0, loop.time(), target_w))
                assert near(site.sim.model.ac_power_w(20), held_w, 100.0), "still silent"
            # Its command expires: the others carry all of it within about one
            # telemetry period (asserted with a wide margin).
            await until(lambda: site.sim.model.ac_power_w(20) == 0.0, "expiry", LIFETIME_S + 5)
            expired_at = loop.time()
            carried_at = await until(
                lambda: near(site.power(), -450_000.0, 1000), "the others carry it", 5
            )
            assert carried_at - expired_at < 2.0
        assert _over_outside_changes(watch, windows, step_w=100.0) == []
        assert_no_violations(site.sim)
        site.assert_alive()
