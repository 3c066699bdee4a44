"""Every path of the distribution module against the original code, bit for bit.

The oracle is `_original_distribution`, a frozen copy of the module from before the
numpy fast path; the numpy path (`_distribute_fast`), the plain-Python path
(`_distribute_python`) and the dispatching public API must all give exactly its result,
down to the sign of a zero.
"""

from __future__ import annotations

import math
import random
import struct
from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from edge_controller.power import distribution as d
from edge_controller.power.bounds import Range
from edge_controller.power.distribution import BatteryUnit, Distribution, Proportional, SocBalancing
from tests.power import _original_distribution as original
from tests.properties import examples

Algorithm = SocBalancing | Proportional


def bits(value: float) -> bytes:
    return struct.pack("<d", value)


def assert_identical(result: Distribution, expected: original.Distribution) -> None:
    """Same keys in the same order, same floats down to the sign of zero."""
    assert list(result.power_w) == list(expected.power_w)
    for key, value in expected.power_w.items():
        assert bits(result.power_w[key]) == bits(value), (key, result.power_w[key], value)
    assert bits(result.unplaced_w) == bits(expected.unplaced_w)


def oracle(algorithm: Algorithm, target: float, units: list[BatteryUnit]) -> original.Distribution:
    copies = [
        original.BatteryUnit(
            u.inverter_id,
            u.soc_pct,
            u.soc_lower_pct,
            u.soc_upper_pct,
            u.capacity_wh,
            u.allowed,
            u.resolution_w,
        )
        for u in units
    ]
    if isinstance(algorithm, SocBalancing):
        return original.SocBalancing(algorithm.horizon_s).distribute(target, copies)
    return original.Proportional(algorithm.exponent).distribute(target, copies)


def fast(algorithm: Algorithm, target: float, units: list[BatteryUnit]) -> Distribution | None:
    if isinstance(algorithm, SocBalancing):
        return d._distribute_fast(d._water_fill_fast, target, units, algorithm.horizon_s)
    return d._distribute_fast(
        d._proportional_fill_fast(algorithm.exponent), target, units, d.DEFAULT_HORIZON_S
    )


def python(algorithm: Algorithm, target: float, units: list[BatteryUnit]) -> Distribution:
    if isinstance(algorithm, SocBalancing):
        return d._distribute_python(d.water_fill, target, units, algorithm.horizon_s)
    return d._distribute_python(
        d.proportional_fill(algorithm.exponent), target, units, d.DEFAULT_HORIZON_S
    )


def outcome(
    call: Callable[[float, list[BatteryUnit]], Distribution | original.Distribution],
    target: float,
    units: list[BatteryUnit],
) -> Distribution | original.Distribution | type[Exception]:
    try:
        return call(target, units)
    except (ArithmeticError, ValueError) as error:
        return type(error)


def assert_same_outcome(
    result: Distribution | original.Distribution | type[Exception],
    expected: Distribution | original.Distribution | type[Exception],
) -> None:
    if isinstance(expected, original.Distribution):
        assert isinstance(result, Distribution)
        assert_identical(result, expected)
    else:
        assert result is expected


# Few distinct values, so that ties (equal levels, equal knees, equal resolutions) are common.
SOCS = st.one_of(
    st.sampled_from([0.0, 5.0, 10.0, 10.5, 20.0, 33.3, 50.0, 50, 66.7, 80.0, 89.99, 90.0, 100.0]),
    st.floats(min_value=-5, max_value=105, allow_nan=False),
)
POWERS = st.one_of(
    st.sampled_from([0.0, 500.0, 1000.0, 1999.0, 2000.0, 2050.0, 5000.0, 50_000.0, 123_456.7]),
    st.floats(min_value=0, max_value=500_000, allow_nan=False),
)


@st.composite
def ranges(draw: st.DrawFn) -> tuple[Range, ...]:
    """Allowed bounds of every shape: one range either side of 0 W or across it, bands, none."""
    shape = draw(
        st.sampled_from(["across", "across", "band", "charge", "discharge", "multi", "none"])
    )
    lower, upper = draw(POWERS), draw(POWERS)
    band = draw(st.sampled_from([0.0, 88.0, 500.0, 2000.0, 2001.0]))
    if shape == "across":
        return (Range(-lower, upper),)
    if shape == "band":
        pieces = []
        if lower > band:
            pieces.append(Range(-lower, -band))
        if upper > band:
            pieces.append(Range(band, upper))
        return tuple(pieces)
    if shape == "charge":  # only above 0 W (a band at its low end when band > 0)
        return (Range(min(band, upper), upper),)
    if shape == "discharge":
        return (Range(-lower, -min(band, lower)),)
    if shape == "multi":
        edges = sorted(draw(st.lists(POWERS, min_size=4, max_size=6)))
        signs = draw(st.sampled_from([-1.0, 1.0]))
        pieces = [Range(-edges[3], -edges[2]), Range(-edges[1], -edges[0])]
        if signs > 0:
            pieces.append(Range(edges[0], edges[1]))
        return tuple(pieces)
    return ()


@st.composite
def units(draw: st.DrawFn, count: int) -> list[BatteryUnit]:
    result = []
    for index in range(count):
        lower = draw(st.sampled_from([0.0, 10.0, 10, 15.0, 50.0, 90.0]))
        upper = draw(st.sampled_from([90.0, 90, 95.0, 100.0, 50.0, 10.0, 20.0]))
        result.append(
            BatteryUnit(
                inverter_id=draw(st.integers(min_value=0, max_value=count + 2))
                if draw(st.booleans()) and index % 7 == 3
                else index,  # now and then a duplicated id
                soc_pct=draw(SOCS),
                soc_lower_pct=lower,
                soc_upper_pct=upper,
                capacity_wh=draw(
                    st.one_of(
                        st.sampled_from([0.0, -1.0, 100_000.0, 100_000, 200_000.0, 1e-3]),
                        st.floats(min_value=1, max_value=2e6, allow_nan=False),
                    )
                ),
                allowed=draw(ranges()),
                resolution_w=draw(
                    st.sampled_from([1.0, 1.0, 10.0, 50.0, 88.0, 100.0, 0.25, 0.0, -5.0, 100])
                ),
            )
        )
    return result


ALGORITHMS = [
    SocBalancing(),
    SocBalancing(horizon_s=1.0),
    SocBalancing(horizon_s=3600 * 24.0),
    Proportional(),
    Proportional(exponent=2.0),
    Proportional(exponent=0.5),
]
TARGETS = st.one_of(
    st.floats(min_value=-3e6, max_value=3e6, allow_nan=False),
    st.sampled_from([-1.0, 1.0, -88.0, -2000.0, 2000.0, -1e9, 1e9]),
)


@settings(max_examples=examples(1500), deadline=None)
@given(
    st.integers(min_value=1, max_value=40).flatmap(units),
    TARGETS,
    st.sampled_from(ALGORITHMS),
)
def test_every_path_is_the_original_bit_for_bit(
    pool: list[BatteryUnit], target: float, algorithm: Algorithm
) -> None:
    expected = oracle(algorithm, target, pool)
    assert_identical(algorithm.distribute(target, pool), expected)
    assert_identical(python(algorithm, target, pool), expected)
    if target != 0.0:
        result = fast(algorithm, target, pool)
        assert result is not None  # finite inputs: the fast path must not give up
        assert_identical(result, expected)


@settings(max_examples=examples(300), deadline=None)
@given(
    st.integers(min_value=1, max_value=60).flatmap(units),
    TARGETS,
    st.sampled_from(ALGORITHMS),
    st.sampled_from(["soc", "capacity", "bound", "resolution", "horizon"]),
    st.sampled_from([math.nan, math.inf, -math.inf]),
)
def test_non_finite_inputs_behave_as_in_the_original(
    pool: list[BatteryUnit],
    target: float,
    algorithm: Algorithm,
    where: str,
    bad: float,
) -> None:
    first = pool[0]
    if where == "soc":
        pool[0] = BatteryUnit(0, bad, 10.0, 90.0, 1e5, (Range(-1e4, 1e4),), 1.0)
    elif where == "capacity":
        pool[0] = BatteryUnit(0, 50.0, 10.0, 90.0, bad, (Range(-1e4, 1e4),), 1.0)
    elif where == "bound" and not math.isnan(bad):
        pool[0] = BatteryUnit(0, 50.0, 10.0, 90.0, 1e5, (Range(min(bad, -bad), 1e4),), 1.0)
    elif where == "resolution":
        pool[0] = BatteryUnit(0, 50.0, 10.0, 90.0, 1e5, first.allowed, bad)
    elif where == "horizon" and isinstance(algorithm, SocBalancing):
        algorithm = SocBalancing(horizon_s=bad)
    expected = outcome(lambda t, u: oracle(algorithm, t, u), target, pool)
    assert_same_outcome(outcome(algorithm.distribute, target, pool), expected)
    assert_same_outcome(outcome(lambda t, u: python(algorithm, t, u), target, pool), expected)


def test_zero_horizon_still_raises_like_the_original() -> None:
    pool = [BatteryUnit(i, 50.0, 10.0, 90.0, 1e5, (Range(-1e4, 1e4),)) for i in range(30)]
    with pytest.raises(ZeroDivisionError):
        SocBalancing(horizon_s=0.0).distribute(-1000.0, pool)


def benchmark_like_pool(n: int, seed: int) -> list[BatteryUnit]:
    """Strings as in benchmarks/distribution_speed.py."""
    rng = random.Random(seed)
    pool = []
    for i in range(n):
        capacity_kwh = rng.randrange(100, 601, 10)
        battery_kw = max(25.0, round(capacity_kwh * rng.choice((0.25, 0.5, 1.0)) / 5) * 5)
        inverter_kw = battery_kw * rng.choice((0.8, 1.0, 1.2))
        soc_lower = float(rng.choice((5, 10, 15, 20)))
        soc_upper = float(rng.choice((80, 85, 90, 95)))
        power = min(battery_kw, inverter_kw) * 1000.0
        band = rng.choice((0.0, 0.0, 0.0, 1000.0))
        allowed = (
            (Range(-power, power),) if not band else (Range(-power, -band), Range(band, power))
        )
        pool.append(
            BatteryUnit(
                inverter_id=1000 + i,
                soc_pct=round(rng.uniform(soc_lower + 2, soc_upper - 2), 2),
                soc_lower_pct=soc_lower,
                soc_upper_pct=soc_upper,
                capacity_wh=capacity_kwh * 1000.0,
                allowed=allowed,
                resolution_w=rng.choice((1.0, 10.0, 50.0, 100.0)),
            )
        )
    return pool


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("algorithm", [SocBalancing(), Proportional()])
def test_large_pools_match_the_original(seed: int, algorithm: Algorithm) -> None:
    pool = benchmark_like_pool(1000, seed)
    reach = math.fsum(hi.upper for hi in (u.allowed[-1] for u in pool))
    for fraction in (-1.2, -0.999, -0.6, -0.1, -1e-4, 1e-4, 0.3, 0.6, 1.0, 1.5):
        target = fraction * reach
        assert_identical(algorithm.distribute(target, pool), oracle(algorithm, target, pool))


@settings(max_examples=examples(2000), deadline=None)
@given(
    st.lists(
        st.one_of(
            st.sampled_from([0.0, -0.0, 1.0, -1.0, 0.5, math.inf, -math.inf]),
            st.floats(allow_nan=False),
        ),
        max_size=50,
    )
)
def test_stable_argsort_is_a_stable_argsort(keys: list[float]) -> None:
    array = np.array(keys, dtype=np.float64)
    assert d._stable_argsort(array).tolist() == np.argsort(array, kind="stable").tolist()


# The stages on their own, on arbitrary sides: reaches corners `distribute` seldom does
# (e.g. an overshoot that some unit can take back in the resolution step).


@st.composite
def raw_sides(draw: st.DrawFn) -> list[original._Side]:
    count = draw(st.integers(min_value=1, max_value=30))
    sides = []
    for _ in range(count):
        resolution = draw(st.sampled_from([1.0, 10.0, 50.0, 88.0, 100.0, 0.25, 0.1, 7.7]))
        steps = draw(st.integers(min_value=0, max_value=200))
        gap_steps = draw(st.sampled_from([0, 0, 1, 3, 20])) if steps else 0
        usable = steps > 0 and gap_steps <= steps and draw(st.booleans() | st.just(True))
        level = draw(st.sampled_from([0.0, 0.25, 0.5, 0.5, 0.75, 1.0, 1.2]) | st.floats(0, 1))
        if not usable:
            sides.append(original._Side(level, 0.0, 0.0, 0.0, resolution, 0.0, 0.0))
            continue
        sides.append(
            original._Side(
                level=level,
                weight=draw(st.sampled_from([1.0, 1000.0, 1e6]) | st.floats(1e-3, 1e7)),
                low=-steps * resolution,
                gap=gap_steps * resolution,
                resolution=resolution,
                capacity_wh=draw(st.sampled_from([1e5, 2e5]) | st.floats(1.0, 1e6)),
                headroom_pct=draw(st.sampled_from([1.0, 40.0]) | st.floats(0.01, 100)),
            )
        )
    return sides


def as_arrays(sides: list[original._Side]) -> d._Sides:
    def column(name: str) -> np.ndarray:
        return np.array([getattr(s, name) for s in sides], dtype=np.float64)

    return d._Sides(
        *(
            column(name)
            for name in (
                "level",
                "weight",
                "low",
                "gap",
                "resolution",
                "capacity_wh",
                "headroom_pct",
            )
        )
    )


def same_floats(fast: list[float], expected: list[float]) -> None:
    assert [bits(v) for v in fast] == [bits(v) for v in expected]


@settings(max_examples=examples(1500), deadline=None)
@given(raw_sides(), st.data())
def test_resolution_step_is_the_original_bit_for_bit(
    sides: list[original._Side], data: st.DataObject
) -> None:
    powers = [
        data.draw(st.sampled_from([s.low, 0.0, -s.gap, s.low / 2]) | st.floats(s.low, 0.0))
        if s.low < 0
        else 0.0
        for s in sides
    ]
    total = math.fsum(s.low for s in sides)
    target = data.draw(st.floats(min(total * 1.1, -1.0), 0.0) | st.sampled_from([0.0, -1.0]))
    expected = original._apply_resolution(target, sides, list(powers))
    result = d._apply_resolution_fast(target, as_arrays(sides), np.array(powers, dtype=np.float64))
    assert result is not None
    same_floats(result.tolist(), expected)


@settings(max_examples=examples(1500), deadline=None)
@given(raw_sides(), st.floats(-1.2, 0.1), st.sampled_from(["water", "proportional", "squared"]))
def test_fill_and_solve_are_the_original_bit_for_bit(
    sides: list[original._Side], share: float, kind: str
) -> None:
    target = share * -math.fsum(s.low for s in sides) if share else -1.0
    fill, fast_fill = {
        "water": (original.water_fill, d._water_fill_fast),
        "proportional": (original.proportional_fill(1.0), d._proportional_fill_fast(1.0)),
        "squared": (original.proportional_fill(2.0), d._proportional_fill_fast(2.0)),
    }[kind]
    arrays = as_arrays(sides)
    same_floats(fast_fill(target, arrays).tolist(), fill(target, sides))
    solved = d._solve_fast(fast_fill, target, arrays)
    assert solved is not None
    same_floats(solved.tolist(), original._solve(fill, target, sides))


def grid_pool(band_kw: float) -> list[BatteryUnit]:
    """30 units on an exact grid: equal weights, levels 1/4, 1/2, 3/4, many exact ties."""
    band = (
        (Range(-50_000.0, -band_kw * 1000), Range(band_kw * 1000, 50_000.0))
        if band_kw
        else (Range(-50_000.0, 50_000.0),)
    )
    return [
        BatteryUnit(i, (30.0, 50.0, 70.0)[i % 3], 10.0, 90.0, 100_000.0, band, 1.0)
        for i in range(30)
    ]


@pytest.mark.parametrize("band_kw", [0.0, 2.0, 30.0])
@pytest.mark.parametrize("algorithm", [SocBalancing(), Proportional()])
def test_ties_and_targets_on_knees_match_the_original(band_kw: float, algorithm: Algorithm) -> None:
    pool = grid_pool(band_kw)
    # Totals at the knees are exact multiples of the steps below: hit them exactly.
    targets = [
        sign * k * step
        for sign in (-1, 1)
        for step in (1000.0, 3000.0, 50_000.0)
        for k in range(1, 31)
    ]
    for target in targets:
        expected = oracle(algorithm, target, pool)
        assert_identical(algorithm.distribute(target, pool), expected)
        assert_identical(python(algorithm, target, pool), expected)
        result = fast(algorithm, target, pool)
        assert result is not None
        assert_identical(result, expected)


def knee_totals(sides: list[original._Side]) -> list[float]:
    """The totals `water_fill` computes at its knees, as it computes them."""
    usable = [i for i, s in enumerate(sides) if s.weight > 0.0 and s.low < 0.0]
    knees = [(sides[i].level, False, i) for i in usable]
    knees += [(sides[i].level + sides[i].low / sides[i].weight, True, i) for i in usable]
    knees.sort(key=lambda knee: (-knee[0], knee[1], knee[2]))
    slope = weighted = saturated = 0.0
    totals = []
    for knee_level, saturates, i in knees:
        if slope > 0.0:
            totals.append(slope * knee_level - weighted + saturated)
        side = sides[i]
        sign = -1.0 if saturates else 1.0
        slope += sign * side.weight
        weighted += sign * (side.weight * side.level)
        saturated += side.low if saturates else 0.0
    return totals


@settings(max_examples=examples(1000), deadline=None)
@given(raw_sides(), st.data())
def test_targets_exactly_on_a_knee_are_the_original(
    sides: list[original._Side], data: st.DataObject
) -> None:
    totals = [t for t in knee_totals(sides) if t < 0.0]
    assume(totals)
    target = data.draw(st.sampled_from(totals))
    arrays = as_arrays(sides)
    same_floats(d._water_fill_fast(target, arrays).tolist(), original.water_fill(target, sides))
