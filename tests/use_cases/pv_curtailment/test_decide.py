"""PV curtailment's decision, as a table of cycles and as properties.

The tables model a site whose PV follows the limit in force at once (it produces
`min(available, allowed)`) and whose grid meter reads load + batteries + PV.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from edge_controller.use_cases.pv_curtailment.decide import (
    NOT_CURTAILED,
    Curtailment,
    CurtailmentReason,
    CurtailmentSettings,
    PvSite,
    decide,
)
from tests.properties import examples
from tests.table import START, Step, run_table

KW = 1000.0
SETTINGS = CurtailmentSettings(export_limit_w=100 * KW, lift_margin_w=2 * KW, deadband_w=0.5 * KW)


@dataclass(frozen=True)
class Site:
    """What the table changes, in kW: the meter reads load + battery − PV produced."""

    load_kw: float = 120.0
    """The site without PV and batteries (+ consumes)."""
    available_kw: float = 300.0
    """What the PV could produce now (sun); it produces less only when limited."""
    rated_kw: float = 350.0
    battery_kw: float = 0.0
    """The batteries' measured power (+ charging)."""
    battery_upper_kw: float = 0.0
    """Their charge bound: the headroom is `upper − battery` (0: full or out of service)."""
    dispatch_kw: float | None = None
    grid_stale: bool = False
    pv_nan: bool = False
    last: Curtailment = NOT_CURTAILED
    """The decision in force (carried from the previous step)."""
    last_at: datetime = START


def produced_kw(site: Site, allowed_w: float | None) -> float:
    limit_kw = math.inf if allowed_w is None else allowed_w / KW
    return min(site.available_kw, limit_kw)


def curtail(settings: CurtailmentSettings) -> Callable[[Site, datetime], dict[str, object]]:
    def step(site: Site, now: datetime) -> dict[str, object]:
        pv_kw = produced_kw(site, site.last.allowed_w)
        grid_kw = site.load_kw + site.battery_kw - pv_kw
        decision = decide(
            settings,
            PvSite(
                grid_w=None if site.grid_stale else grid_kw * KW,
                pv_w=math.nan if site.pv_nan else -pv_kw * KW,
                battery_headroom_w=max(0.0, site.battery_upper_kw - site.battery_kw) * KW,
                pv_rated_w=site.rated_kw * KW,
            ),
            site.last,
            dispatch_limit_w=None if site.dispatch_kw is None else site.dispatch_kw * KW,
            elapsed_s=(now - site.last_at).total_seconds(),
        )
        after_kw = site.load_kw + site.battery_kw - produced_kw(site, decision.allowed_w)
        return {
            "decision": decision,
            "now": now,
            "allowed_kw": None if decision.allowed_w is None else decision.allowed_w / KW,
            "reason": decision.reason,
            "export_kw": -grid_kw,
            "export_after_kw": -after_kw,
        }

    return step


def follow(site: Site, result: dict[str, object]) -> Site:
    decision, now = result["decision"], result["now"]
    assert isinstance(decision, Curtailment)
    assert isinstance(now, datetime)
    return replace(site, last=decision, last_at=now)


def test_only_what_the_batteries_cannot_take_is_curtailed_and_lifted_when_the_load_returns() -> (
    None
):
    run_table(
        curtail(SETTINGS),
        Site(),
        [
            Step(
                "300 kW of sun, 120 kW load, batteries full: 80 kW over the export limit",
                expect={
                    "export_kw": 180,
                    "allowed_kw": 220,
                    "reason": CurtailmentReason.EXPORT_LIMIT,
                    "export_after_kw": 100,
                },
            ),
            Step(
                "the PV at its limit: the export at the limit, the limit stays",
                advance=1,
                expect={"export_kw": 100, "allowed_kw": 220},
            ),
            Step(
                "the batteries get 50 kW of room: the PV may produce 50 kW more",
                advance=1,
                inputs={"battery_upper_kw": 50},
                expect={"allowed_kw": 270, "reason": CurtailmentReason.EXPORT_LIMIT},
            ),
            Step(
                "they charge those 50 kW: the export stays at the limit, nothing moves",
                advance=1,
                inputs={"battery_kw": 50},
                expect={"export_kw": 100, "allowed_kw": 270},
            ),
            Step(
                "the load rises to 190 kW: 340 kW of PV would fit, short of the rating: raised",
                advance=timedelta(minutes=5),
                inputs={"load_kw": 190},
                expect={"allowed_kw": 340, "reason": CurtailmentReason.EXPORT_LIMIT},
            ),
            Step(
                "the sun's 300 kW below the limit by 40 kW: lifted",
                advance=1,
                expect={"allowed_kw": None, "reason": CurtailmentReason.NONE},
            ),
            Step(
                "curtailed again when the load drops back",
                advance=timedelta(minutes=5),
                inputs={"load_kw": 120},
                expect={"allowed_kw": 270},
            ),
            Step(
                "the load rises to 300 kW: the whole 350 kW rating fits, lifted at once",
                advance=timedelta(minutes=5),
                inputs={"load_kw": 300},
                expect={"allowed_kw": None, "export_after_kw": -50},
            ),
        ],
        carry=follow,
    )


def test_batteries_with_room_for_the_surplus_mean_no_curtailment() -> None:
    run_table(
        curtail(SETTINGS),
        Site(battery_upper_kw=250),
        [
            Step(
                "80 kW over the limit, 250 kW of battery headroom: nothing curtailed",
                expect={"allowed_kw": None, "reason": CurtailmentReason.NONE},
            ),
            Step(
                "the batteries charge 200 kW: 50 kW of headroom for a surplus of 0",
                advance=1,
                inputs={"battery_kw": 200},
                expect={"export_kw": -20, "allowed_kw": None},
            ),
            Step(
                "they reach their bound at 100 kW less (SoC taper): 20 kW must go",
                advance=timedelta(minutes=20),
                inputs={"battery_upper_kw": 100, "battery_kw": 100, "load_kw": 100},
                expect={"export_kw": 100, "allowed_kw": None},
            ),
            Step(
                "the sun rises 20 kW more with the batteries at their bound: 20 kW curtailed",
                advance=timedelta(minutes=20),
                inputs={"available_kw": 320},
                expect={"export_kw": 120, "allowed_kw": 300, "export_after_kw": 100},
            ),
        ],
        carry=follow,
    )


def test_near_the_limit_it_does_not_flap() -> None:
    run_table(
        curtail(SETTINGS),
        Site(),
        [
            Step("curtailed to 220 kW", expect={"allowed_kw": 220}),
            Step(
                "a cloud: 1 kW below the limit, within the 2 kW margin: the limit stays",
                advance=1,
                inputs={"available_kw": 219},
                expect={"export_kw": 99, "allowed_kw": 220},
            ),
            Step(
                "the sun is back: no new decision, still 220 kW",
                advance=1,
                inputs={"available_kw": 300},
                expect={"export_kw": 100, "allowed_kw": 220},
            ),
            Step(
                "the load rises by 0.4 kW, inside the deadband: not worth a new limit",
                advance=1,
                inputs={"load_kw": 120.4},
                expect={"allowed_kw": 220},
            ),
            Step(
                "the load falls by 0.3 kW: tightened at once, however little",
                advance=1,
                inputs={"load_kw": 119.7},
                expect={"allowed_kw": pytest.approx(219.7), "export_after_kw": 100},
            ),
            Step(
                "a big cloud: 10 kW below the limit and 10 kW of room: lifted",
                advance=1,
                inputs={"available_kw": 209.7},
                expect={"allowed_kw": None},
            ),
        ],
        carry=follow,
    )


def test_the_limit_rises_at_the_lift_rate_and_falls_at_once() -> None:
    settings = replace(SETTINGS, lift_rate_w_per_s=10 * KW)
    run_table(
        curtail(settings),
        Site(),
        [
            Step("curtailed to 220 kW", expect={"allowed_kw": 220}),
            Step(
                "the load rises 100 kW: the limit rises 10 kW in the second since",
                advance=1,
                inputs={"load_kw": 220},
                expect={"allowed_kw": 230},
            ),
            Step("and 20 kW two seconds later", advance=2, expect={"allowed_kw": 250}),
            Step(
                "the load drops back: down to 220 kW at once",
                advance=1,
                inputs={"load_kw": 120},
                expect={"allowed_kw": 220, "export_after_kw": 100},
            ),
            Step(
                "the load rises 50 kW, and a minute passes: up to what fits, not beyond",
                advance=60,
                inputs={"load_kw": 170},
                expect={"allowed_kw": 270},
            ),
        ],
        carry=follow,
    )


def test_stale_or_nan_telemetry_holds_the_last_decision() -> None:
    run_table(
        curtail(SETTINGS),
        Site(),
        [
            Step("curtailed to 220 kW", expect={"allowed_kw": 220}),
            Step(
                "the grid meter goes stale while the load falls 50 kW: held",
                advance=1,
                inputs={"grid_stale": True, "load_kw": 70},
                expect={"allowed_kw": 220, "reason": CurtailmentReason.NO_DATA},
            ),
            Step(
                "the meter is back: tightened to what fits",
                advance=1,
                inputs={"grid_stale": False},
                expect={"allowed_kw": 170, "reason": CurtailmentReason.EXPORT_LIMIT},
            ),
            Step(
                "the PV's power reads NaN while the load returns: held",
                advance=1,
                inputs={"pv_nan": True, "load_kw": 400},
                expect={"allowed_kw": 170, "reason": CurtailmentReason.NO_DATA},
            ),
        ],
        carry=follow,
    )


def test_never_curtails_on_garbage() -> None:
    blind = PvSite(grid_w=None, pv_w=-300 * KW)
    assert decide(SETTINGS, blind).allowed_w is None
    nan_headroom = PvSite(grid_w=-500 * KW, pv_w=-300 * KW, battery_headroom_w=math.nan)
    assert decide(SETTINGS, nan_headroom).allowed_w is None
    nan_grid = PvSite(grid_w=math.nan, pv_w=-300 * KW)
    assert decide(SETTINGS, nan_grid).reason is CurtailmentReason.NO_DATA


def test_a_dispatch_and_the_export_guard_combine_the_tighter_wins() -> None:
    run_table(
        curtail(SETTINGS),
        Site(load_kw=250),
        [
            Step(
                "a dispatch allows 150 kW; the export is fine: the dispatch's limit",
                inputs={"dispatch_kw": 150},
                expect={"allowed_kw": 150, "reason": CurtailmentReason.DISPATCH},
            ),
            Step(
                "the load falls to 40 kW: 10 kW over the limit, the guard's 140 kW wins",
                advance=1,
                inputs={"load_kw": 40},
                expect={"allowed_kw": 140, "reason": CurtailmentReason.EXPORT_LIMIT},
            ),
            Step(
                "the dispatch tightens to 100 kW: the dispatch wins again",
                advance=1,
                inputs={"dispatch_kw": 100},
                expect={"allowed_kw": 100, "reason": CurtailmentReason.DISPATCH},
            ),
            Step(
                "the dispatch ends: the guard's limit alone",
                advance=1,
                inputs={"dispatch_kw": None},
                expect={"allowed_kw": 140, "reason": CurtailmentReason.EXPORT_LIMIT},
            ),
            Step(
                "the load rises, a dispatch allows 500 kW: capped to the PV's 350 kW rating",
                advance=1,
                inputs={"dispatch_kw": 500, "load_kw": 300},
                expect={"allowed_kw": 350},
            ),
            Step(
                "the guard's limit, beyond the rating, is lifted: the dispatch's alone",
                advance=1,
                expect={"allowed_kw": 350, "reason": CurtailmentReason.DISPATCH},
            ),
        ],
        carry=follow,
    )


def test_when_a_dispatch_ends_the_pv_rises_only_to_what_the_export_limit_allows() -> None:
    run_table(
        curtail(SETTINGS),
        Site(load_kw=40),
        [
            Step(
                "a dispatch limits the PV to 50 kW",
                inputs={"dispatch_kw": 50},
                expect={"allowed_kw": 50, "reason": CurtailmentReason.DISPATCH},
            ),
            Step(
                "it holds the PV at 50 kW: the export is well within the limit",
                advance=1,
                expect={"export_kw": 10, "allowed_kw": 50, "reason": CurtailmentReason.DISPATCH},
            ),
            Step(
                "the dispatch ends: the sun's 300 kW would export 260 kW, 140 kW are allowed",
                advance=timedelta(hours=1),
                inputs={"dispatch_kw": None},
                expect={
                    "allowed_kw": 140,
                    "reason": CurtailmentReason.EXPORT_LIMIT,
                    "export_after_kw": 100,
                },
            ),
            Step(
                "clouds: 100 kW of sun, 40 kW below the limit: lifted",
                advance=timedelta(minutes=10),
                inputs={"available_kw": 100},
                expect={"allowed_kw": None, "reason": CurtailmentReason.NONE},
            ),
        ],
        carry=follow,
    )


def test_without_an_export_limit_only_dispatches_limit_the_pv() -> None:
    settings = CurtailmentSettings(export_limit_w=None)
    site = PvSite(grid_w=-900 * KW, pv_w=-300 * KW)
    assert decide(settings, site).reason is CurtailmentReason.NONE
    assert decide(settings, site).allowed_w is None
    stale = PvSite(grid_w=None, pv_w=math.nan)
    limited = decide(settings, stale, dispatch_limit_w=0.0)
    assert (limited.allowed_w, limited.reason) == (0.0, CurtailmentReason.DISPATCH)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"export_limit_w": -1.0}, "export_limit_w"),
        ({"lift_margin_w": math.nan}, "lift_margin_w"),
        ({"deadband_w": math.inf}, "deadband_w"),
        ({"lift_rate_w_per_s": 0.0}, "lift_rate_w_per_s"),
    ],
)
def test_bad_settings_are_refused(kwargs: dict[str, float], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        CurtailmentSettings(**kwargs)


def test_a_negative_dispatch_limit_is_refused() -> None:
    with pytest.raises(ValueError, match="dispatch_limit_w"):
        decide(SETTINGS, PvSite(grid_w=0.0, pv_w=0.0), dispatch_limit_w=-1.0)


# ---------------------------------------------------------------- properties

TOL = 1e-6
powers = st.floats(0, 1e6, allow_nan=False)


@st.composite
def guard_settings(draw: st.DrawFn) -> CurtailmentSettings:
    return CurtailmentSettings(
        export_limit_w=draw(st.floats(0, 5e5)),
        lift_margin_w=draw(st.floats(0, 1e4)),
        deadband_w=draw(st.floats(0, 1e4)),
        lift_rate_w_per_s=draw(st.one_of(st.none(), st.floats(1, 1e5))),
    )


@dataclass(frozen=True)
class World:
    """A consistent site: the PV produces `min(available, limit in force)`."""

    load_w: float
    battery_w: float
    headroom_w: float
    available_w: float
    rated_w: float
    dispatch_w: float | None
    last: Curtailment

    @property
    def produced_w(self) -> float:
        return min(
            self.available_w, math.inf if self.last.allowed_w is None else self.last.allowed_w
        )

    def site(self) -> PvSite:
        grid = self.load_w + self.battery_w - self.produced_w
        return PvSite(grid, -self.produced_w, self.headroom_w, self.rated_w)


@st.composite
def worlds(draw: st.DrawFn) -> World:
    rated = draw(st.floats(1e3, 1e6))
    dispatch = draw(st.one_of(st.none(), st.floats(0, 1e6)))
    export_last = draw(st.one_of(st.none(), st.floats(0, 1e6)))
    limits = [w for w in (dispatch, export_last) if w is not None]
    allowed = min(min(limits), rated) if limits else None
    return World(
        load_w=draw(st.floats(-2e5, 1e6)),
        battery_w=draw(st.floats(-5e5, 5e5)),
        headroom_w=draw(powers),
        available_w=draw(st.floats(0, rated)),
        rated_w=rated,
        dispatch_w=dispatch,
        last=Curtailment(allowed, export_last, CurtailmentReason.EXPORT_LIMIT),
    )


def needed_w(settings: CurtailmentSettings, world: World) -> float:
    """Production that must go: export beyond the limit minus the battery headroom."""
    assert settings.export_limit_w is not None
    grid = world.site().grid_w
    assert grid is not None
    return -grid - settings.export_limit_w - world.headroom_w


@settings(max_examples=examples(2000), deadline=None)
@given(guard_settings(), worlds(), st.floats(0, 60))
@example(
    CurtailmentSettings(100 * KW),
    World(120 * KW, 0.0, 0.0, 300 * KW, 350 * KW, None, NOT_CURTAILED),
    1.0,
)
def test_never_allows_export_above_the_limit_when_the_pv_could_be_curtailed_enough(
    settings: CurtailmentSettings, world: World, elapsed_s: float
) -> None:
    decision = decide(
        settings, world.site(), world.last, dispatch_limit_w=world.dispatch_w, elapsed_s=elapsed_s
    )
    assert settings.export_limit_w is not None
    if needed_w(settings, world) > world.produced_w:
        return  # even no PV at all would export too much: not the PV's to fix
    # The batteries take their headroom; the rest of the site stays as it is. The
    # guard's own part must hold too: a dispatch's limit may end at any moment.
    for limit_w in (decision.allowed_w, decision.export_allowed_w):
        produced_after = min(world.available_w, math.inf if limit_w is None else limit_w)
        grid_after = world.load_w + world.battery_w + world.headroom_w - produced_after
        assert -grid_after <= settings.export_limit_w + TOL * max(1.0, abs(world.load_w))


@settings(max_examples=examples(1000), deadline=None)
@given(guard_settings(), worlds())
def test_never_curtails_while_the_batteries_have_room_for_the_surplus(
    settings: CurtailmentSettings, world: World
) -> None:
    fresh = replace(world, last=NOT_CURTAILED, dispatch_w=None)
    decision = decide(settings, fresh.site(), fresh.last)
    if needed_w(settings, fresh) <= 0 or fresh.produced_w == 0:
        assert decision.allowed_w is None
    else:
        assert decision.allowed_w is not None
        assert decision.allowed_w < fresh.produced_w


@settings(max_examples=examples(2000), deadline=None)
@given(guard_settings(), worlds(), st.floats(0, 60))
def test_a_lift_never_happens_while_still_needed(
    settings: CurtailmentSettings, world: World, elapsed_s: float
) -> None:
    decision = decide(
        settings, world.site(), world.last, dispatch_limit_w=world.dispatch_w, elapsed_s=elapsed_s
    )
    lifted = world.last.export_allowed_w is not None and decision.export_allowed_w is None
    if lifted:
        assert needed_w(settings, world) <= TOL * max(1.0, abs(world.load_w))
    if decision.allowed_w is not None:
        assert 0.0 <= decision.allowed_w <= world.rated_w


@settings(max_examples=examples(500), deadline=None)
@given(guard_settings(), worlds(), st.sampled_from(["grid", "pv", "headroom"]))
def test_garbage_telemetry_never_changes_the_guards_limit(
    settings: CurtailmentSettings, world: World, broken: str
) -> None:
    site = world.site()
    if broken == "grid":
        site = replace(site, grid_w=None)
    elif broken == "pv":
        site = replace(site, pv_w=math.nan)
    else:
        site = replace(site, battery_headroom_w=math.nan)
    decision = decide(settings, site, world.last, dispatch_limit_w=world.dispatch_w)
    assert decision.export_allowed_w == world.last.export_allowed_w
    assert decision.reason is CurtailmentReason.NO_DATA
