"""PeakShavingActor in process: the grid meter and batteries in the cache, requests out.

The site is a filled telemetry cache on a `ManualClock` (two inverters of ±100 kW, one
battery each); the PowerManagingActor is a channel the test reads. What a user
notices is in each request: the batteries' target, and the bounds peak shaving allows
the use cases below it ("charge no more than would make a peak").
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta

import pytest
from frequenz.channels import Receiver, Sender
from frequenz.client.dispatch.types import TargetIds
from frequenz.dispatch import Dispatch

from edge_controller.common.clock import ManualClock
from edge_controller.framework.messages import PowerRequest, Result
from edge_controller.framework.use_case import GridConfig, SiteView
from edge_controller.use_cases.peak_shaving.actor import PeakShavingActor
from edge_controller.use_cases.peak_shaving.config import PeakShavingOptions
from tests.controller.cached_site import BOTH, CachedSite
from tests.patience import evaluated
from tests.table import START
from tests.use_cases.actor_steps import ActorSteps, dispatch, started

KW = 1000.0
PRIORITY = 10


def peak_shaving_dispatch(
    threshold_kw: float | str, *, deleted: bool = False, dry_run: bool = False
) -> Dispatch:
    return dispatch(
        5,
        "PEAK_SHAVING",
        {
            "threshold_w": threshold_kw * KW
            if isinstance(threshold_kw, float | int)
            else threshold_kw
        },
        TargetIds(*sorted(BOTH)),
        created_minutes_ago=2,
        deleted=deleted,
        dry_run=dry_run,
    )


@dataclass(frozen=True)
class Asked:
    """A request as the manager reads it, in kW; `may_charge_kw` is the bounds' upper end."""

    target_kw: float
    may_charge_kw: float | None
    withdraws: bool


@dataclass
class Shaver(ActorSteps[PeakShavingActor]):
    site: CachedSite = field(kw_only=True)

    async def asked(self) -> Asked:
        request = await self.next_request()
        assert (request.batteries, request.priority, request.hold) == (BOTH, PRIORITY, False)
        upper = None if request.bounds is None else request.bounds.upper / KW
        return Asked(request.power.as_watts() / KW, upper, request.withdraws)

    def batteries_at(self, total_kw: float) -> None:
        """Both inverters measure half of `total_kw` now."""
        for inverter_id in self.site.pairs.inverter_ids:
            self.site.inverter(inverter_id, total_kw * KW / 2)


async def shaver(options: PeakShavingOptions) -> AsyncIterator[Shaver]:
    site = CachedSite(ManualClock(START))
    site.everything_ready()

    def actor(
        dispatches: Receiver[Dispatch], requests: Sender[PowerRequest], results: Receiver[Result]
    ) -> PeakShavingActor:
        return PeakShavingActor(
            dispatches,
            requests,
            results,
            SiteView(site.pairs, site.cache, site.grid_meter_id),
            options=options,
            batteries=BOTH,
            priority=PRIORITY,
            grid=GridConfig(stale_after=timedelta(seconds=3)),
            clock=site.clock,
            tick=timedelta(milliseconds=20),
        )

    async with started(actor) as wired:  # compat.Timer: a stop is never swallowed
        yield Shaver(wired.dispatches, wired.requests, wired.actor, site=site)


@pytest.fixture
async def at_100_kw() -> AsyncIterator[Shaver]:
    """A configured threshold of 100 kW with a 10 kW recharge margin."""
    options = PeakShavingOptions(threshold_w=100 * KW, recharge_margin_w=10 * KW)
    async for running in shaver(options):
        yield running


@pytest.fixture
async def by_dispatch() -> AsyncIterator[Shaver]:
    """No configured threshold: it shaves only while a PEAK_SHAVING dispatch runs."""
    async for running in shaver(PeakShavingOptions()):
        yield running


async def test_a_peak_is_discharged_to_the_threshold_and_nobody_below_may_charge(
    at_100_kw: Shaver,
) -> None:
    at_100_kw.site.grid(150 * KW)
    assert await at_100_kw.asked() == Asked(-50, -50, withdraws=False)
    # the batteries deliver: the meter reads 100 kW, the site alone still 150 kW
    at_100_kw.batteries_at(-50)
    at_100_kw.site.grid(100 * KW)
    await evaluated(at_100_kw.actor.counts, 5)  # the same target, nothing re-sent
    # the load falls to 80 kW: recharge 10 kW up to the margin; below may charge 20 kW
    at_100_kw.site.grid(30 * KW)
    assert await at_100_kw.asked() == Asked(10, 20, withdraws=False)


async def test_a_blind_grid_meter_stops_shaving_and_forbids_charging(at_100_kw: Shaver) -> None:
    at_100_kw.site.grid(150 * KW)
    assert await at_100_kw.asked() == Asked(-50, -50, withdraws=False)
    at_100_kw.site.clock.advance(3.5)  # the meter's last sample is now stale
    assert await at_100_kw.asked() == Asked(0, 0, withdraws=False)


async def test_a_dispatch_sets_the_threshold_and_its_end_withdraws(by_dispatch: Shaver) -> None:
    by_dispatch.site.grid(150 * KW)
    await by_dispatch.dispatches.send(peak_shaving_dispatch(120))
    assert await by_dispatch.asked() == Asked(-30, -30, withdraws=False)
    assert by_dispatch.actor.threshold_w == 120 * KW
    await by_dispatch.dispatches.send(peak_shaving_dispatch(120, deleted=True))
    ended = await by_dispatch.asked()
    assert ended.withdraws
    assert by_dispatch.actor.threshold_w is None


async def test_without_a_threshold_it_asks_for_nothing(by_dispatch: Shaver) -> None:
    by_dispatch.site.grid(500 * KW)
    # the first request it makes is the dispatch's, at whatever moment that comes
    await evaluated(by_dispatch.actor.counts, 5)
    await by_dispatch.dispatches.send(peak_shaving_dispatch(450))
    first = await by_dispatch.asked()
    assert first == Asked(-50, -50, withdraws=False)
    assert math.isclose(by_dispatch.actor.threshold_w or 0.0, 450 * KW)


async def test_a_dry_run_dispatch_shaves_nothing(by_dispatch: Shaver) -> None:
    by_dispatch.site.grid(150 * KW)
    await by_dispatch.dispatches.send(peak_shaving_dispatch(120, dry_run=True))
    await by_dispatch.no_request()  # it would discharge 30 kW: logged, not asked
    assert by_dispatch.actor.threshold_w is None
    await by_dispatch.dispatches.send(peak_shaving_dispatch(120))
    assert await by_dispatch.asked() == Asked(-30, -30, withdraws=False)
    await by_dispatch.dispatches.send(peak_shaving_dispatch(120, dry_run=True))
    assert (await by_dispatch.asked()).withdraws  # switched to a dry run: it stops


async def test_a_dispatch_updated_to_a_bad_threshold_stops_shaving(by_dispatch: Shaver) -> None:
    by_dispatch.site.grid(150 * KW)
    await by_dispatch.dispatches.send(peak_shaving_dispatch(120))
    assert await by_dispatch.asked() == Asked(-30, -30, withdraws=False)
    await by_dispatch.dispatches.send(peak_shaving_dispatch("lots"))
    assert (await by_dispatch.asked()).withdraws  # its last good 120 kW is not kept
    assert by_dispatch.actor.counts["rejected"] == 1
    assert by_dispatch.actor.threshold_w is None
