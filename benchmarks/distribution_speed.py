"""Speed of our `SocBalancing` against the Frequenz SDK's `BatteryDistributionAlgorithm`.

Both get IDENTICAL inputs, drawn from a seeded generator: N battery strings (one
inverter, one battery each) with their SoC, SoC bounds, capacity, battery power bounds
and inverter power bounds. Ours sees each string as a `BatteryUnit` whose `allowed` is
the intersection of the battery's and the inverter's bounds; the SDK sees an
`InvBatPair(AggregatedBatteryData([BatteryData]), [InverterData])`, as its power
distributing actor builds them. Only the `distribute` / `distribute_power` call is
timed; building the inputs is not (both sides have that cost in their pipelines).

Targets: a discharge and a charge, each a fixed fraction of what the pool can do, so
both are feasible. Resolutions are mixed (1-100 W): ours honours them, the SDK does
not know about them, so ours is within one (largest) resolution step of the target and
the SDK's total is exact up to float rounding.

    .venv/bin/python benchmarks/distribution_speed.py [--seed 2026] [--runs 5]

The last line is machine-readable:

    speedup_vs_sdk_n1000=<float>

the SDK's time per call divided by ours at N=1000 (both directions added).
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial

from frequenz.client.common.microgrid.components import ComponentId
from frequenz.quantities import Power
from frequenz.sdk.microgrid._old_component_data import BatteryData, InverterData
from frequenz.sdk.microgrid._power_distributing._distribution_algorithm import (
    AggregatedBatteryData,
    BatteryDistributionAlgorithm,
    InvBatPair,
)

from edge_controller.power.bounds import Range
from edge_controller.power.distribution import BatteryUnit, SocBalancing

SIZES = (10, 100, 1000)
DEFAULT_SEED = 2026
TARGET_FRACTION = 0.6
"""Each target is this fraction of the pool's reach in its direction: feasible."""
MIN_RUN_S = 0.2
"""Each timed run repeats the call until it has lasted at least this long."""
RESOLUTIONS_W = (1.0, 10.0, 50.0, 100.0)
TARGET_SPEEDUP = 20.0


@dataclass(frozen=True, slots=True)
class StringSpec:
    """One battery string: a battery behind one inverter."""

    inverter_id: int
    battery_id: int
    soc_pct: float
    soc_lower_pct: float
    soc_upper_pct: float
    capacity_wh: float
    battery_bounds: Range
    inverter_bounds: Range
    resolution_w: float

    @property
    def allowed(self) -> Range:
        """What the inverter may be commanded to: battery ∩ inverter bounds."""
        return Range(
            max(self.battery_bounds.lower, self.inverter_bounds.lower),
            min(self.battery_bounds.upper, self.inverter_bounds.upper),
        )


def make_strings(n: int, seed: int) -> list[StringSpec]:
    """Draw `n` strings: 100-600 kWh, 0.25-1 C, SoC inside varied SoC bounds."""
    rng = random.Random(seed * 100_003 + n)
    strings = []
    for i in range(n):
        capacity_kwh = rng.randrange(100, 601, 10)
        battery_kw = max(25.0, round(capacity_kwh * rng.choice((0.25, 0.5, 1.0)) / 5) * 5)
        inverter_kw = battery_kw * rng.choice((0.8, 1.0, 1.2))
        soc_lower = float(rng.choice((5, 10, 15, 20)))
        soc_upper = float(rng.choice((80, 85, 90, 95)))
        strings.append(
            StringSpec(
                inverter_id=1000 + i,
                battery_id=100_000 + i,
                soc_pct=round(rng.uniform(soc_lower + 2, soc_upper - 2), 2),
                soc_lower_pct=soc_lower,
                soc_upper_pct=soc_upper,
                capacity_wh=capacity_kwh * 1000.0,
                battery_bounds=Range(-battery_kw * 1000.0, battery_kw * 1000.0),
                inverter_bounds=Range(-inverter_kw * 1000.0, inverter_kw * 1000.0),
                resolution_w=rng.choice(RESOLUTIONS_W),
            )
        )
    return strings


def our_units(strings: list[StringSpec]) -> list[BatteryUnit]:
    """The strings as our algorithm sees them."""
    return [
        BatteryUnit(
            inverter_id=s.inverter_id,
            soc_pct=s.soc_pct,
            soc_lower_pct=s.soc_lower_pct,
            soc_upper_pct=s.soc_upper_pct,
            capacity_wh=s.capacity_wh,
            allowed=(s.allowed,),
            resolution_w=s.resolution_w,
        )
        for s in strings
    ]


def _component_id(cid: int) -> ComponentId:
    # The SDK 1.0.0rc2214 still takes the deprecated ComponentId; not ours to fix.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return ComponentId(cid)


def sdk_pairs(strings: list[StringSpec], now: datetime) -> list[InvBatPair]:
    """The same strings as the SDK's power distributing actor hands them over."""
    pairs = []
    for s in strings:
        battery = BatteryData(
            component_id=_component_id(s.battery_id),
            timestamp=now,
            soc=s.soc_pct,
            soc_lower_bound=s.soc_lower_pct,
            soc_upper_bound=s.soc_upper_pct,
            capacity=s.capacity_wh,
            power_inclusion_lower_bound=s.battery_bounds.lower,
            power_inclusion_upper_bound=s.battery_bounds.upper,
        )
        inverter = InverterData(
            component_id=_component_id(s.inverter_id),
            timestamp=now,
            active_power_inclusion_lower_bound=s.inverter_bounds.lower,
            active_power_inclusion_upper_bound=s.inverter_bounds.upper,
        )
        pairs.append(InvBatPair(AggregatedBatteryData([battery]), [inverter]))
    return pairs


def pool_reach(strings: list[StringSpec]) -> tuple[float, float]:
    """Σ of what each string can discharge (<= 0) and charge (>= 0)."""
    return (
        math.fsum(s.allowed.lower for s in strings),
        math.fsum(s.allowed.upper for s in strings),
    )


def best_time_per_call(call: Callable[[], object], runs: int) -> float:
    """Best of `runs` timed runs (after a warm-up), in seconds per call."""
    call()
    start = time.perf_counter()
    call()
    once = max(time.perf_counter() - start, 1e-7)
    loops = max(1, math.ceil(MIN_RUN_S / once))
    best = math.inf
    for _ in range(runs):
        start = time.perf_counter()
        for _ in range(loops):
            call()
        best = min(best, (time.perf_counter() - start) / loops)
    return best


@dataclass(frozen=True, slots=True)
class Row:
    """Timings and sanity figures for one N and one direction."""

    n: int
    direction: str
    target_w: float
    ours_s: float
    sdk_s: float
    ours_error_w: float
    sdk_error_w: float
    tolerance_w: float


def measure(n: int, seed: int, runs: int, now: datetime) -> list[Row]:
    """Time both algorithms on the same N strings, discharging then charging."""
    strings = make_strings(n, seed)
    units = our_units(strings)
    pairs = sdk_pairs(strings, now)
    ours = SocBalancing()
    sdk = BatteryDistributionAlgorithm(distributor_exponent=1.0)
    discharge_reach, charge_reach = pool_reach(strings)
    tolerance = max(s.resolution_w for s in strings)
    rows = []
    for direction, target in (
        ("discharge", TARGET_FRACTION * discharge_reach),
        ("charge", TARGET_FRACTION * charge_reach),
    ):
        target_power = Power.from_watts(target)
        our_result = ours.distribute(target, units)
        sdk_result = sdk.distribute_power(target_power, pairs)
        sdk_total = math.fsum(power.as_watts() for power in sdk_result.distribution.values())
        ours_s = best_time_per_call(partial(ours.distribute, target, units), runs)
        sdk_s = best_time_per_call(partial(sdk.distribute_power, target_power, pairs), runs)
        rows.append(
            Row(
                n=n,
                direction=direction,
                target_w=target,
                ours_s=ours_s,
                sdk_s=sdk_s,
                ours_error_w=our_result.total_w - target,
                sdk_error_w=sdk_total - target,
                tolerance_w=tolerance,
            )
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--runs", type=int, default=5, help="timed runs; the best one counts")
    args = parser.parse_args()
    now = datetime.now(UTC)

    rows = [row for n in SIZES for row in measure(n, args.seed, args.runs, now)]

    print(
        f"Distribution speed: SocBalancing vs SDK BatteryDistributionAlgorithm(1.0); "
        f"seed {args.seed}, best of {args.runs} runs, targets ±{TARGET_FRACTION:.0%} of the "
        "pool's reach"
    )
    print()
    header = (
        f"{'N':>5} {'direction':<9} {'target kW':>11} | {'ours µs/call':>12} "
        f"{'µs/batt':>8} | {'SDK µs/call':>12} {'µs/batt':>8} | {'speedup':>7}"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        print(
            f"{row.n:>5} {row.direction:<9} {row.target_w / 1000:>11.1f} | "
            f"{row.ours_s * 1e6:>12.1f} {row.ours_s * 1e6 / row.n:>8.2f} | "
            f"{row.sdk_s * 1e6:>12.1f} {row.sdk_s * 1e6 / row.n:>8.2f} | "
            f"{row.sdk_s / row.ours_s:>6.1f}x"
        )
    print()
    print("Speedup per N (SDK time / ours, both directions added):")
    speedups: dict[int, float] = {}
    for n in SIZES:
        mine = [row for row in rows if row.n == n]
        speedups[n] = sum(r.sdk_s for r in mine) / sum(r.ours_s for r in mine)
        per_direction = ", ".join(f"{r.direction} {r.sdk_s / r.ours_s:.1f}x" for r in mine)
        print(f"  N={n:>4}: {speedups[n]:6.1f}x  ({per_direction})")
    print()
    print("Sanity: Σ distributed − target (W); ours must be within one resolution step")
    all_ok = True
    for row in rows:
        ok = abs(row.ours_error_w) <= row.tolerance_w and abs(row.sdk_error_w) <= row.tolerance_w
        all_ok = all_ok and ok
        print(
            f"  N={row.n:>4} {row.direction:<9} ours {row.ours_error_w:+10.3f}  "
            f"SDK {row.sdk_error_w:+10.3f}  step {row.tolerance_w:g} W  "
            f"{'ok' if ok else 'MISMATCH'}"
        )
    print(f"  totals match the target within a resolution step: {'yes' if all_ok else 'NO'}")
    mean_speedup = statistics.mean(r.sdk_s / r.ours_s for r in rows)
    verdict = "meets" if speedups[1000] >= TARGET_SPEEDUP else "MISSES"
    print(
        f"Mean per-row speedup {mean_speedup:.1f}x; "
        f"N=1000 {verdict} the ≥{TARGET_SPEEDUP:g}x target"
    )
    print(f"speedup_vs_sdk_n1000={speedups[1000]:.2f}")


if __name__ == "__main__":
    main()
