"""PowerManagingActor in process: use cases' requests in, what the distributor is told out.

No simulator: the use cases are this test sending `PowerRequest`s, the distributor is
a channel the test reads, the grid meter and the batteries are a filled telemetry
cache on a `ManualClock`. The tick is short, so a meter going stale is noticed at
once in real time while its age is decided by the manual clock.
"""

from __future__ import annotations

import dataclasses
import math
import random
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from frequenz.quantities import Power
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_controller.controller.power_managing import Submitted, settle
from edge_controller.framework.messages import InForce, Overruled, PowerRequest, TargetKind
from edge_controller.framework.use_case import GridConfig
from edge_controller.power.bounds import Range
from tests.controller.cached_site import BOTH
from tests.controller.managed import Managed, managing
from tests.patience import evaluated
from tests.properties import examples
from tests.table import START

KW = 1000.0


def request(
    namespace: str,
    power_kw: float,
    *,
    priority: int = 0,
    batteries: frozenset[int] = BOTH,
    hold: bool = True,
    upper_kw: float | None = None,
) -> PowerRequest:
    """A use case's request; `upper_kw` makes it a guard ("charge at most this")."""
    return PowerRequest(
        namespace,
        Power.from_watts(power_kw * KW),
        batteries,
        priority=priority,
        hold=hold,
        bounds=None if upper_kw is None else Range(-math.inf, upper_kw * KW),
    )


def withdraw(
    namespace: str, batteries: frozenset[int] = BOTH, *, origin: int | None = None
) -> PowerRequest:
    return PowerRequest(namespace, Power.zero(), batteries, origin=origin)


def dispatch(
    dispatch_id: int, power_kw: float, batteries: frozenset[int], *, created_minutes_ago: int
) -> PowerRequest:
    """What the battery_power use case sends for one running dispatch."""
    return PowerRequest(
        "battery_power",
        Power.from_watts(power_kw * KW),
        batteries,
        priority=1,
        origin=dispatch_id,
        created=START - timedelta(minutes=created_minutes_ago),
    )


class Manager(Managed):
    async def told(self) -> tuple[str, float]:
        """The next request the distributor gets: (namespace, kW)."""
        forwarded = await self.told_request()
        return forwarded.namespace, forwarded.power.as_watts() / KW

    async def told_dispatches(self, count: int) -> dict[frozenset[int], tuple[int | None, float]]:
        """The next `count` requests: {batteries: (dispatch id, kW)}."""
        told = [await self.told_request() for _ in range(count)]
        return {r.batteries: (r.origin, r.power.as_watts() / KW) for r in told}


@pytest.fixture
async def manager() -> AsyncIterator[Manager]:
    async with managing(GridConfig(), Manager) as running:
        yield running


@pytest.fixture
async def guarded() -> AsyncIterator[Manager]:
    """A site whose grid connection may import at most 100 kW; the meter reads 60 kW."""
    grid = GridConfig(max_import_w=100 * KW, safe_power_w=0.0, stale_after=timedelta(seconds=3))
    async with managing(grid, Manager) as running:
        running.site.grid(60 * KW)
        yield running


async def test_the_higher_priority_holds_the_batteries_until_it_withdraws(
    manager: Manager,
) -> None:
    await manager.ask(request("market", -20, priority=1))
    assert await manager.told() == ("market", -20)
    await manager.ask(request("dispatch_7", 10, priority=5))
    # the held power is the dispatch's, and so is the distributor's result
    assert await manager.told() == ("dispatch_7", 10)
    # the lower priority changes its mind while outranked: nothing changes on the batteries
    await manager.ask(request("market", -30, priority=1))
    await manager.ask(withdraw("dispatch_7"))
    assert await manager.told() == ("market", -30)
    await manager.ask(withdraw("market"))
    assert await manager.told() == ("market", 0)


async def test_a_guard_of_higher_priority_cuts_a_charge_and_lets_it_run_when_it_withdraws(
    manager: Manager,
) -> None:
    await manager.ask(request("dispatch_7", 30, priority=1))
    assert await manager.told() == ("dispatch_7", 30)
    await manager.ask(request("peak_shaving", 0, priority=10, hold=False, upper_kw=10))
    assert await manager.told() == ("dispatch_7", 10)
    await manager.ask(withdraw("peak_shaving"))
    assert await manager.told() == ("dispatch_7", 30)


async def test_the_newest_dispatch_holds_shared_batteries_and_the_older_resumes(
    manager: Manager,
) -> None:
    # one use case, two running dispatches on the same batteries: the newer holds
    await manager.ask(dispatch(1, -40, BOTH, created_minutes_ago=20))
    assert await manager.told_dispatches(1) == {BOTH: (1, -40)}
    await manager.ask(dispatch(2, 5, BOTH, created_minutes_ago=5))
    assert await manager.told_dispatches(1) == {BOTH: (2, 5)}
    assert manager.actor.counts["conflicts"] == 1
    # an older dispatch arriving later does not take over
    await manager.ask(dispatch(3, -10, BOTH, created_minutes_ago=60))
    await manager.ask(withdraw("battery_power", origin=2))
    assert await manager.told_dispatches(1) == {BOTH: (1, -40)}
    await manager.ask(withdraw("battery_power", origin=1))
    assert await manager.told_dispatches(1) == {BOTH: (3, -10)}


async def test_the_older_dispatch_keeps_the_batteries_the_newer_does_not_want(
    manager: Manager,
) -> None:
    await manager.ask(dispatch(1, -40, BOTH, created_minutes_ago=20))
    assert await manager.told_dispatches(1) == {BOTH: (1, -40)}
    await manager.ask(dispatch(2, 5, frozenset({21}), created_minutes_ago=5))
    assert await manager.told_dispatches(2) == {
        frozenset({21}): (2, 5),
        frozenset({11}): (1, -40),  # its power, on what is left to it
    }
    await manager.ask(withdraw("battery_power", frozenset({21}), origin=2))
    assert await manager.told_dispatches(1) == {BOTH: (1, -40)}


async def test_a_guard_that_re_sends_does_not_take_over_a_newer_dispatch_of_its_priority(
    manager: Manager,
) -> None:
    # peak shaving guards from START; a dispatch of the same priority created later
    # ranks above it (the newest first) and holds its whole charge
    await manager.ask(request("peak_shaving", 0, priority=1, hold=False, upper_kw=10))
    assert await manager.told() == ("peak_shaving", 0)
    manager.site.clock.advance(timedelta(seconds=30))
    newer = PowerRequest(
        "battery_power",
        Power.from_watts(30 * KW),
        BOTH,
        priority=1,
        origin=7,
        created=manager.site.clock.now(),
    )
    await manager.ask(newer)
    assert await manager.told() == ("battery_power", 30)
    # the guard re-sends (its preference moved) a minute later: it is no newer for that
    manager.site.clock.advance(timedelta(minutes=1))
    await manager.ask(request("peak_shaving", -1, priority=1, hold=False, upper_kw=10))
    await manager.ask(withdraw("battery_power", origin=7))
    assert await manager.told() == ("peak_shaving", -1)
    assert manager.actor.counts["forwarded"] == 3  # never clamped to 10 kW in between


async def test_a_use_case_is_told_once_that_it_is_overruled_and_once_that_it_runs_again(
    manager: Manager,
) -> None:
    # PV curtailment asks the batteries to charge at least 80 kW; a dispatch of a higher
    # priority holds them at -50 kW: the ask gets nothing of what it asked, and is told
    pv_ask = PowerRequest(
        "pv", Power.from_watts(80 * KW), BOTH, hold=False, bounds=Range(80 * KW, math.inf)
    )
    await manager.ask(pv_ask)
    assert await manager.told() == ("pv", 80)
    await manager.ask(request("dispatch_7", -50, priority=10))
    assert await manager.told() == ("dispatch_7", -50)
    assert await manager.reported() == Overruled(pv_ask, Range(-50 * KW, -50 * KW))
    await evaluated(manager.actor.counts, 5)  # ticks: no word again while nothing changes
    # a new ask under the same range is no news: not told again
    pv_ask = dataclasses.replace(
        pv_ask, power=Power.from_watts(90 * KW), bounds=Range(90 * KW, math.inf)
    )
    await manager.ask(pv_ask)
    await evaluated(manager.actor.counts, 5)
    assert manager.actor.counts["overruled"] == 1
    # the dispatch moves: the range left to the ask moves, so it is told again
    await manager.ask(request("dispatch_7", -30, priority=10))
    assert await manager.told() == ("dispatch_7", -30)
    assert await manager.reported() == Overruled(pv_ask, Range(-30 * KW, -30 * KW))
    await manager.ask(withdraw("dispatch_7"))
    assert await manager.told() == ("pv", 90)
    assert await manager.reported() == InForce(pv_ask)
    assert manager.actor.counts["overruled"] == 2
    assert manager.actor.counts["in_force"] == 1


async def test_a_use_case_whose_set_waits_is_told_that_nothing_of_it_runs(
    manager: Manager,
) -> None:
    # a guard on both batteries cannot run on part of them: a dispatch holds battery 11
    await manager.ask(dispatch(1, -40, frozenset({11}), created_minutes_ago=5))
    assert await manager.told_dispatches(1) == {frozenset({11}): (1, -40)}
    guard = request("peak_shaving", 5, priority=0, hold=False, upper_kw=10)
    await manager.ask(guard)
    assert await manager.reported() == Overruled(guard, None)
    # withdrawn while it waits: the word is closed all the same, so that one still on
    # its way to the use case does not stand for ever
    await manager.ask(withdraw("peak_shaving"))
    assert await manager.reported() == InForce(guard)
    await manager.ask(withdraw("battery_power", frozenset({11}), origin=1))
    assert await manager.told() == ("battery_power", 0)
    await evaluated(manager.actor.counts, 5)
    assert (manager.actor.counts["overruled"], manager.actor.counts["in_force"]) == (1, 1)


async def test_a_request_replaced_on_another_set_closes_the_word_on_the_old_one(
    manager: Manager,
) -> None:
    await manager.ask(request("dispatch_7", -50, priority=10))
    assert await manager.told() == ("dispatch_7", -50)
    ask = PowerRequest(
        "pv", Power.from_watts(80 * KW), BOTH, hold=False, bounds=Range(80 * KW, math.inf)
    )
    await manager.ask(ask)
    assert await manager.reported() == Overruled(ask, Range(-50 * KW, -50 * KW))
    # the use case moves its ask to one battery: that set waits for the dispatch's
    moved = dataclasses.replace(ask, batteries=frozenset({11}))
    await manager.ask(moved)
    words = [await manager.reported(), await manager.reported()]
    assert InForce(ask) in words
    assert Overruled(moved, None) in words


async def test_only_changed_targets_reach_the_distributor(manager: Manager) -> None:
    await manager.ask(request("dispatch_7", 10))
    assert await manager.told() == ("dispatch_7", 10)
    # the same target again, and one within the 50 W deadband, over several ticks
    await manager.ask(request("dispatch_7", 10), request("dispatch_7", 10.03))
    await evaluated(manager.actor.counts, 5)
    await manager.ask(request("dispatch_7", 12))
    assert await manager.told() == ("dispatch_7", 12)
    assert manager.actor.counts["forwarded"] == 2


async def test_a_charge_is_clamped_to_the_import_limit_from_a_fresh_grid_meter(
    guarded: Manager,
) -> None:
    # 60 kW imported already: of an 80 kW charge only 40 kW fits under the 100 kW limit
    await guarded.ask(request("dispatch_7", 80))
    assert await guarded.told() == ("dispatch_7", 40)
    # the load drops by 30 kW (batteries still at 0 W): 70 kW of the charge fits
    guarded.site.grid(30 * KW)
    assert await guarded.told() == ("dispatch_7", 70)
    assert guarded.actor.counts["clamp_import_limit"] >= 1


async def test_a_stale_grid_meter_sends_the_batteries_to_the_safe_power(
    guarded: Manager,
) -> None:
    await guarded.ask(request("dispatch_7", -20))
    assert await guarded.told() == ("dispatch_7", -20)  # a discharge is within the limit
    guarded.site.clock.advance(3.5)  # the meter's last sample is older than stale_after
    assert await guarded.told() == ("dispatch_7", 0)
    assert guarded.actor.counts["grid_data_missing"] >= 1
    guarded.site.grid(60 * KW)  # it speaks again
    assert await guarded.told() == ("dispatch_7", -20)


# ---------------------------------------------------------------- settle, the pure rule


def submitted(request: PowerRequest, seconds: float = 0.0) -> Submitted:
    return Submitted(request, START + timedelta(seconds=seconds))


def test_settle_gives_each_driven_set_the_credited_request_narrowed_to_it() -> None:
    older = dispatch(1, -40, BOTH, created_minutes_ago=20)
    newer = dispatch(2, 5, frozenset({21}), created_minutes_ago=5)
    market = request("market", -20, priority=0, batteries=frozenset({11}))
    settled = settle([submitted(market), submitted(newer), submitted(older)])
    by_set = {
        ids: (r.namespace, r.origin, r.batteries, w) for (_, ids), (r, w) in settled.drives.items()
    }
    assert by_set == {
        frozenset({21}): ("battery_power", 2, frozenset({21}), 5 * KW),
        frozenset({11}): ("battery_power", 1, frozenset({11}), -40 * KW),
    }
    assert settled.withheld == {(TargetKind.BATTERIES, frozenset({11}))}  # the market waits
    assert {(c.winner, c.loser, c.components) for c in settled.conflicts} == {
        (("battery_power", 2), ("battery_power", 1), frozenset({21})),
        (("battery_power", 1), ("market", None), frozenset({11})),
    }


def test_no_pv_inverter_or_ev_charger_is_switched_off_by_a_use_case_that_did_not_ask() -> None:
    # pv_site limits 50 and 51 to 250 kW; pv_roof, lower, limits 50 alone to 50 kW.
    # Both limits allow 0 W, but for a PV inverter 0 W means "produce nothing": 51 must
    # not get it for a limit that is only about 50. The site's limit runs, the roof waits.
    both, roof = frozenset({50, 51}), frozenset({50})
    pv = TargetKind.PV_INVERTERS
    site = PowerRequest(
        "pv_site",
        Power.from_watts(-250 * KW),
        both,
        priority=5,
        bounds=Range(-250 * KW, 0.0),
        target=pv,
        hold=False,
    )
    inner = PowerRequest(
        "pv_roof",
        Power.from_watts(-50 * KW),
        roof,
        priority=1,
        bounds=Range(-50 * KW, 0.0),
        target=pv,
        hold=False,
    )
    settled = settle([submitted(site), submitted(inner)])
    assert {ids: (r.namespace, w) for (_, ids), (r, w) in settled.drives.items()} == {
        both: ("pv_site", -250 * KW)
    }
    assert settled.withheld == {(pv, roof)}
    # the same shape on EV chargers (a charge bounded, not held): no charger told 0 W
    ev = TargetKind.EV_CHARGERS
    budget = PowerRequest(
        "ev_site",
        Power.from_watts(22 * KW),
        both,
        priority=5,
        bounds=Range(0.0, 44 * KW),
        target=ev,
        hold=False,
    )
    car = PowerRequest("ev_car", Power.from_watts(11 * KW), roof, priority=1, target=ev)
    settled = settle([submitted(budget), submitted(car)])
    assert {ids: w for (_, ids), (_, w) in settled.drives.items()} == {both: 22 * KW}
    # batteries keep the yielding guard: the dispatch runs inside peak shaving's bounds
    guard = request("peak", 0, priority=5, hold=False, upper_kw=40)
    inside = request("dispatch", 20, priority=1, batteries=frozenset({11}))
    settled = settle([submitted(guard), submitted(inside)])
    assert {ids: w for (_, ids), (_, w) in settled.drives.items()} == {
        frozenset({11}): 20 * KW,
        frozenset({21}): 0.0,
    }


@st.composite
def request_sets(draw: st.DrawFn) -> list[Submitted]:
    found: dict[tuple[str, int | None, frozenset[int]], Submitted] = {}
    for index in range(draw(st.integers(1, 5))):
        ids = frozenset(draw(st.sets(st.sampled_from([11, 21, 31]), min_size=1)))
        origin = draw(st.none() | st.integers(1, 3))
        namespace = draw(st.sampled_from(["battery_power", "market", "peak"]))
        power_kw = draw(st.integers(-50, 50).map(float))
        bounds = None
        if draw(st.booleans()):
            bounds = Range(-math.inf, max(power_kw, draw(st.integers(-50, 50).map(float))) * KW)
        asked = PowerRequest(
            namespace,
            Power.from_watts(power_kw * KW),
            ids,
            priority=draw(st.integers(0, 2)),
            hold=bounds is None,
            bounds=bounds,
            origin=origin,
            created=None if origin is None else START - timedelta(minutes=draw(st.integers(0, 3))),
        )
        # a proposer's new request replaces its overlapping ones, as the actor keeps them
        found = {
            key: s for key, s in found.items() if key[:2] != (namespace, origin) or not key[2] & ids
        }
        found[namespace, origin, ids] = submitted(asked, index)
    return list(found.values())


@settings(max_examples=examples(500), deadline=None)
@given(request_sets(), st.randoms(use_true_random=False))
def test_settle_drives_each_battery_once_for_someone_who_asked_whatever_the_order(
    asked: list[Submitted], rng: random.Random
) -> None:
    settled = settle(asked)
    seen: set[int] = set()
    for (kind, ids), (forwarded, _) in settled.drives.items():
        assert kind is TargetKind.BATTERIES
        assert forwarded.batteries == ids
        assert not ids & seen
        seen |= ids
        assert any(
            (s.request.namespace, s.request.origin) == (forwarded.namespace, forwarded.origin)
            and ids <= s.request.batteries
            for s in asked
        )
    shuffled = list(asked)
    rng.shuffle(shuffled)
    assert settle(shuffled).drives == settled.drives
