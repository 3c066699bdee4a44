import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge_controller.use_cases.peak_shaving.decide import (
    BatteryPool,
    PeakShavingConfig,
    ShavingMode,
    decide,
)
from tests.table import Step, run_table

KW = 1000.0
CONFIG = PeakShavingConfig(threshold_w=400 * KW, recharge_margin_w=50 * KW)


def pool(power_w: float = 0.0, soc_pct: float = 50.0, limit_kw: float = 250) -> BatteryPool:
    return BatteryPool(power_w, -limit_kw * KW, limit_kw * KW, soc_pct)


@dataclass(frozen=True)
class Site:
    """What peak shaving sees, in kW: the grid meter reads `load_kw + battery_kw`."""

    load_kw: float = 0.0
    """The site without its batteries (+ consumes, − a PV surplus)."""
    battery_kw: float = 0.0
    soc_pct: float = 50.0
    lower_kw: float = -250.0
    upper_kw: float = 250.0


def shaving(config: PeakShavingConfig) -> Callable[[Site, datetime], dict[str, object]]:
    def shave(site: Site, now: datetime) -> dict[str, object]:
        battery = BatteryPool(
            site.battery_kw * KW, site.lower_kw * KW, site.upper_kw * KW, site.soc_pct
        )
        decision = decide(config, (site.load_kw + site.battery_kw) * KW, battery)
        return {
            "target_kw": decision.target_w / KW,
            "mode": decision.mode,
            "grid_kw": decision.predicted_grid_w / KW,
            "shortfall_kw": decision.shortfall_w / KW,
        }

    return shave


def batteries_follow(site: Site, result: dict[str, object]) -> Site:
    """The batteries reach their target before the next step (the meter sees it)."""
    target_kw = result["target_kw"]
    assert isinstance(target_kw, float)
    return replace(site, battery_kw=target_kw)


# ---------------------------------------------------------------- the module example


def test_a_day_at_a_400_kw_threshold_with_a_50_kw_margin() -> None:
    run_table(
        shaving(CONFIG),
        Site(),
        [
            Step(
                "morning at 300 kW: recharge, never reaching the threshold",
                inputs={"load_kw": 300},
                expect={"target_kw": 50, "mode": ShavingMode.RECHARGING, "grid_kw": 350},
            ),
            Step(
                "380 kW: within the band they rest",
                advance=timedelta(hours=2),
                inputs={"load_kw": 380},
                expect={"target_kw": 0, "mode": ShavingMode.IDLE, "grid_kw": 380},
            ),
            Step(
                "a load step to 520 kW is shaved to the threshold",
                advance=timedelta(hours=1),
                inputs={"load_kw": 520},
                expect={
                    "target_kw": -120,
                    "mode": ShavingMode.SHAVING,
                    "grid_kw": 400,
                    "shortfall_kw": 0,
                },
            ),
            Step(
                "the meter reads 400 kW with 120 kW discharging: hold, not count it twice",
                advance=1,
                expect={"target_kw": -120, "mode": ShavingMode.SHAVING},
            ),
            Step(
                "450 kW on the meter because the batteries charge 100 kW: the site is at 350",
                advance=timedelta(minutes=30),
                inputs={"load_kw": 350, "battery_kw": 100},
                expect={"target_kw": 0, "mode": ShavingMode.IDLE},
            ),
            Step(
                "SoC unknown at a 500 kW peak: the bounds still apply",
                advance=timedelta(hours=1),
                inputs={"load_kw": 500, "soc_pct": math.nan},
                expect={"target_kw": -100, "mode": ShavingMode.SHAVING},
            ),
            Step(
                "a 700 kW peak beyond 100 kW bounds: the grid stays 200 kW above, and says so",
                advance=timedelta(hours=1),
                inputs={"load_kw": 700, "soc_pct": 50, "lower_kw": -100, "upper_kw": 100},
                expect={"target_kw": -100, "grid_kw": 600, "shortfall_kw": 200},
            ),
            Step(
                "at 100 kW a bound that excludes 0 W (discharge only) never flips to charge",
                advance=timedelta(hours=1),
                inputs={"load_kw": 100, "lower_kw": -250, "upper_kw": -10},
                expect={"target_kw": 0},
            ),
        ],
        carry=batteries_follow,
    )


def test_the_soc_window_stops_discharge_when_empty_and_charge_when_full() -> None:
    run_table(
        shaving(PeakShavingConfig(400 * KW, soc_min_pct=10, soc_max_pct=90)),
        Site(),
        [
            Step(
                "empty at a 500 kW peak: no discharge, 100 kW short",
                inputs={"load_kw": 500, "soc_pct": 10},
                expect={"target_kw": 0, "mode": ShavingMode.SHAVING, "shortfall_kw": 100},
            ),
            Step(
                "full at 100 kW: no recharge",
                advance=timedelta(hours=4),
                inputs={"load_kw": 100, "soc_pct": 90},
                expect={"target_kw": 0, "mode": ShavingMode.IDLE},
            ),
        ],
        carry=batteries_follow,
    )


def test_a_pv_surplus_beyond_the_export_limit_is_charged_and_the_recharge_can_be_capped() -> None:
    config = PeakShavingConfig(400 * KW, 50 * KW, max_recharge_w=20 * KW, export_limit_w=100 * KW)
    run_table(
        shaving(config),
        Site(),
        [
            Step(
                "night at 0 kW: the recharge is capped at 20 kW",
                expect={"target_kw": 20, "mode": ShavingMode.RECHARGING},
            ),
            Step(
                "noon, 300 kW of PV surplus: charge 200 kW, export back at the 100 kW limit",
                advance=timedelta(hours=12),
                inputs={"load_kw": -300},
                expect={"target_kw": 200, "mode": ShavingMode.EXPORT_SHAVING, "grid_kw": -100},
            ),
            Step(
                "a 50 kW surplus, within the limit: only the gentle recharge",
                advance=timedelta(hours=3),
                inputs={"load_kw": -50},
                expect={"target_kw": 20, "mode": ShavingMode.RECHARGING},
            ),
            Step(
                "full, 300 kW surplus: it stays, and the decision says how much of it",
                advance=timedelta(days=1),
                inputs={"load_kw": -300, "soc_pct": 100},
                expect={"target_kw": 0, "mode": ShavingMode.EXPORT_SHAVING, "shortfall_kw": 200},
            ),
        ],
        carry=batteries_follow,
    )


@pytest.mark.parametrize(("grid", "battery"), [(None, 0.0), (math.nan, 0.0), (100.0, math.nan)])
def test_without_data_the_batteries_rest(grid: float | None, battery: float) -> None:
    decision = decide(CONFIG, grid, pool(power_w=battery))
    assert (decision.target_w, decision.mode) == (0.0, ShavingMode.NO_DATA)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"threshold_w": math.inf}, "threshold_w"),
        ({"recharge_margin_w": -1.0}, "recharge_margin_w"),
        ({"max_recharge_w": math.nan}, "max_recharge_w"),
        ({"export_limit_w": -5.0}, "export_limit_w"),
        ({"threshold_w": -200.0, "export_limit_w": 100.0}, "below the export limit"),
        ({"soc_min_pct": 90.0, "soc_max_pct": 10.0}, "soc_min_pct"),
    ],
)
def test_bad_settings_are_refused(kwargs: dict[str, float], field: str) -> None:
    settings: dict[str, float] = {"threshold_w": 400 * KW}
    settings.update(kwargs)
    with pytest.raises(ValueError, match=field):
        PeakShavingConfig(**settings)


# ---------------------------------------------------------------- properties

watts = st.floats(-2e6, 2e6, allow_nan=False)
TOL = 1e-6


@st.composite
def configs(draw: st.DrawFn) -> PeakShavingConfig:
    threshold = draw(st.floats(-5e5, 2e6, allow_nan=False))
    export = draw(st.one_of(st.none(), st.floats(max(0.0, -threshold), 2e6)))
    soc_min = draw(st.floats(0, 50))
    return PeakShavingConfig(
        threshold_w=threshold,
        recharge_margin_w=draw(st.floats(0, 2e5)),
        max_recharge_w=draw(st.one_of(st.none(), st.floats(0, 1e6))),
        export_limit_w=export,
        soc_min_pct=soc_min,
        soc_max_pct=draw(st.floats(soc_min + 1, 100)),
    )


@st.composite
def pools(draw: st.DrawFn) -> BatteryPool:
    return BatteryPool(
        power_w=draw(st.floats(-1e6, 1e6)),
        lower_w=draw(st.floats(-1e6, 0)),
        upper_w=draw(st.floats(0, 1e6)),
        soc_pct=draw(st.one_of(st.just(math.nan), st.floats(0, 100))),
    )


@given(configs(), watts, pools())
def test_charging_never_lifts_the_import_above_the_threshold(
    config: PeakShavingConfig, grid: float, battery: BatteryPool
) -> None:
    decision = decide(config, grid, battery)
    base = grid - battery.power_w
    assert decision.predicted_grid_w == pytest.approx(base + decision.target_w)
    if decision.target_w > 0:
        assert base + decision.target_w <= config.threshold_w + TOL
    if decision.mode is ShavingMode.RECHARGING:
        assert base + decision.target_w <= config.threshold_w - config.recharge_margin_w + TOL
        if config.max_recharge_w is not None:
            assert decision.target_w <= config.max_recharge_w


@given(configs(), watts, pools())
def test_discharge_never_exceeds_what_the_threshold_needs(
    config: PeakShavingConfig, grid: float, battery: BatteryPool
) -> None:
    decision = decide(config, grid, battery)
    base = grid - battery.power_w
    if decision.target_w < 0:
        assert decision.mode is ShavingMode.SHAVING
        assert base + decision.target_w >= config.threshold_w - TOL * max(1.0, abs(base))
    can_discharge = math.isnan(battery.soc_pct) or battery.soc_pct > config.soc_min_pct
    if can_discharge and config.threshold_w < base <= config.threshold_w - battery.lower_w:
        scale = TOL * max(1.0, abs(base))
        assert decision.predicted_grid_w == pytest.approx(config.threshold_w, abs=scale)
        assert decision.shortfall_w == pytest.approx(0.0, abs=scale)


@given(configs(), watts, pools())
def test_bounds_and_soc_are_respected(
    config: PeakShavingConfig, grid: float, battery: BatteryPool
) -> None:
    decision = decide(config, grid, battery)
    assert decision.shortfall_w >= 0
    assert decision.target_w == 0 or battery.lower_w <= decision.target_w <= battery.upper_w
    if battery.soc_pct <= config.soc_min_pct:
        assert decision.target_w >= 0
    if battery.soc_pct >= config.soc_max_pct:
        assert decision.target_w <= 0


@given(configs(), watts, pools())
def test_the_band_between_margin_and_threshold_rests(
    config: PeakShavingConfig, grid: float, battery: BatteryPool
) -> None:
    base = grid - battery.power_w
    decision = decide(config, grid, battery)
    in_band = config.threshold_w - config.recharge_margin_w <= base <= config.threshold_w
    exporting_too_much = config.export_limit_w is not None and base < -config.export_limit_w
    if in_band and not exporting_too_much:
        assert decision.target_w == 0.0
