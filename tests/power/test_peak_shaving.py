import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge_controller.use_cases.peak_shaving.decide import (
    BatteryPool,
    PeakShavingConfig,
    PeakShavingDecision,
    ShavingMode,
    decide,
)

KW = 1000.0
CONFIG = PeakShavingConfig(threshold_w=400 * KW, recharge_margin_w=50 * KW)


def pool(power_w: float = 0.0, soc_pct: float = 50.0, limit_kw: float = 250) -> BatteryPool:
    return BatteryPool(power_w, -limit_kw * KW, limit_kw * KW, soc_pct)


# ---------------------------------------------------------------- the module example


def test_a_load_step_above_the_threshold_is_shaved_to_it() -> None:
    assert decide(CONFIG, 520 * KW, pool()) == PeakShavingDecision(
        -120 * KW, ShavingMode.SHAVING, 400 * KW
    )


def test_below_the_band_the_batteries_recharge_without_reaching_the_threshold() -> None:
    assert decide(CONFIG, 300 * KW, pool()) == PeakShavingDecision(
        50 * KW, ShavingMode.RECHARGING, 350 * KW
    )


def test_within_the_band_they_rest() -> None:
    assert decide(CONFIG, 380 * KW, pool()) == PeakShavingDecision(0.0, ShavingMode.IDLE, 380 * KW)


def test_the_battery_power_already_flowing_is_not_counted_twice() -> None:
    # grid 400 kW while the batteries discharge 120 kW: the site needs 520 kW → hold −120 kW
    holding = decide(CONFIG, 400 * KW, pool(power_w=-120 * KW))
    assert (holding.target_w, holding.mode) == (-120 * KW, ShavingMode.SHAVING)
    # grid 450 kW because the batteries charge 100 kW: the site alone is at 350 kW
    charging = decide(CONFIG, 450 * KW, pool(power_w=100 * KW))
    assert (charging.target_w, charging.mode) == (0.0, ShavingMode.IDLE)


def test_bounds_and_soc_stop_the_batteries_short_and_say_by_how_much() -> None:
    small = decide(CONFIG, 700 * KW, pool(limit_kw=100))
    assert (small.target_w, small.predicted_grid_w, small.shortfall_w) == (
        -100 * KW,
        600 * KW,
        200 * KW,
    )
    empty = decide(PeakShavingConfig(400 * KW, soc_min_pct=10), 500 * KW, pool(soc_pct=10))
    assert (empty.target_w, empty.mode, empty.shortfall_w) == (0.0, ShavingMode.SHAVING, 100 * KW)
    full = decide(PeakShavingConfig(400 * KW, soc_max_pct=90), 100 * KW, pool(soc_pct=90))
    assert (full.target_w, full.mode) == (0.0, ShavingMode.IDLE)
    unknown_soc = decide(CONFIG, 500 * KW, pool(soc_pct=math.nan))
    assert unknown_soc.target_w == -100 * KW


def test_the_recharge_power_can_be_capped() -> None:
    gentle = PeakShavingConfig(400 * KW, 50 * KW, max_recharge_w=20 * KW)
    assert decide(gentle, 0.0, pool()).target_w == 20 * KW


def test_a_pv_surplus_beyond_the_export_limit_is_charged() -> None:
    config = PeakShavingConfig(400 * KW, 50 * KW, max_recharge_w=20 * KW, export_limit_w=100 * KW)
    decision = decide(config, -300 * KW, pool())
    assert decision == PeakShavingDecision(200 * KW, ShavingMode.EXPORT_SHAVING, -100 * KW)
    # a surplus within the limit only gets the gentle recharge
    assert decide(config, -50 * KW, pool()).mode is ShavingMode.RECHARGING
    # full: the surplus stays, and the decision says how much of it
    full = decide(config, -300 * KW, pool(soc_pct=100))
    assert (full.target_w, full.mode, full.shortfall_w) == (
        0.0,
        ShavingMode.EXPORT_SHAVING,
        200 * KW,
    )


def test_a_bound_that_excludes_zero_never_flips_the_sign() -> None:
    discharging_only = BatteryPool(0.0, -250 * KW, -10 * KW, 50.0)
    assert decide(CONFIG, 100 * KW, discharging_only).target_w == 0.0


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
