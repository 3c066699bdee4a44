"""SoC balancing over a simulated day: our `SocBalancing` against the SDK's scheme.

Same physics, same requests for every algorithm: the simulator's pure `SiteModel`
(no gRPC, a synthetic `now`) on a site built with `parse_site` — grid, meter, 6 battery
inverters with one battery each, SoCs spread 20-80 %, capacities 100-600 kWh, power
bounds 50-300 kW, SoC bounds [10, 90] %, mixed inverter resolutions — and one seeded
request schedule that changes every 15 minutes. Every control step (default 15 s):

1. build a `BatteryUnit` per inverter from the model (SoC from `soc_pct`, bounds from
   `active_bounds`, capacity and SoC bounds from the site spec, resolution from the
   inverter spec);
2. clamp the scheduled request to what the pool can do right now (Σ of each unit's
   reach, floored to its resolution): the *feasible* target;
3. distribute it, command each inverter (`set_active_power`, lifetime 60 s) — a
   `SimError` counts as a refusal, an accepted command whose applied power lies outside
   the bounds it was accepted under as a violation;
4. step the model and book the AC energy the inverters actually moved.

Algorithms: ours `SocBalancing()`, ours `Proportional()` (our re-implementation of the
SDK's scheme) and the real SDK `BatteryDistributionAlgorithm(distributor_exponent=1.0)`
fed through an adapter (the private module of frequenz-sdk; its output is commanded
as is — the SDK does not round to the resolution, the inverter floors it).

Measures: the spread of SoC normalised to each battery's window (0 % at its lower SoC
bound, 100 % at its upper), the first time it is below 2 percentage points (or "never",
counted as the scenario's length), the tracking error Σ|E_feasible − E_delivered| per
step / Σ|E_feasible| in %, violations and refusals.

    .venv/bin/python benchmarks/balancing.py [--seed 7] [--hours 24] [--step 15]

The last line is machine-readable:

    time_to_2pp_ratio_vs_sdk=<float> violations=<int> tracking_error_pct=<float>

ratio = our time to 2 pp / the real SDK's (our `Proportional` if the SDK cannot be
imported); violations and tracking error are ours.
"""

from __future__ import annotations

import argparse
import math
import random
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from edge_controller.power.bounds import allows, hull
from edge_controller.power.distribution import (
    BatteryUnit,
    Distribution,
    Proportional,
    SocBalancing,
)
from edge_controller.servers.sim.errors import SimError
from edge_controller.servers.sim.model import SiteModel, battery_power_bounds
from edge_controller.servers.sim.site import SiteSpec, parse_site
from edge_controller.servers.sim.site_details import BatterySpec, InverterSpec

DEFAULT_SEED = 7
STRINGS = 6
SOC_BOUNDS = (10.0, 90.0)
SLOT_S = 15 * 60
SPREAD_GOAL_PP = 2.0
LIFETIME_S = 60
REPORT_EVERY_H = 2
START = datetime(2026, 3, 2, tzinfo=UTC)
RESOLUTIONS_W = (1.0, 10.0, 50.0, 100.0)
TARGET_RATIO = 0.5
TARGET_TRACKING_PCT = 0.5

Distribute = Callable[[float, Sequence[BatteryUnit]], Distribution]


# ------------------------------------------------------------------ scenario


@dataclass(frozen=True, slots=True)
class StringPlan:
    """One battery string of the benchmark site."""

    inverter_id: int
    battery_id: int
    capacity_wh: float
    initial_soc_pct: float
    battery_power_w: float
    inverter_power_w: float
    resolution_w: float


def plan_strings(seed: int) -> list[StringPlan]:
    """Six strings: SoCs 20-80 % (both ends present), 100-600 kWh, 50-300 kW."""
    rng = random.Random(seed)
    socs = [20.0, 80.0] + [round(rng.uniform(20.0, 80.0), 1) for _ in range(STRINGS - 2)]
    capacities = [100.0, 600.0] + [float(rng.randrange(100, 601, 10)) for _ in range(STRINGS - 2)]
    powers = [50.0, 300.0] + [float(rng.randrange(50, 301, 5)) for _ in range(STRINGS - 2)]
    rng.shuffle(socs)
    rng.shuffle(capacities)
    rng.shuffle(powers)
    return [
        StringPlan(
            inverter_id=10 + i,
            battery_id=20 + i,
            capacity_wh=capacities[i] * 1000.0,
            initial_soc_pct=socs[i],
            battery_power_w=powers[i] * 1000.0,
            inverter_power_w=powers[i] * 1000.0 * rng.choice((0.9, 1.0, 1.1)),
            resolution_w=rng.choice(RESOLUTIONS_W),
        )
        for i in range(STRINGS)
    ]


def site_document(strings: Sequence[StringPlan]) -> dict[str, Any]:
    """The site as a parsed-TOML dict, for `parse_site`."""
    components: list[dict[str, Any]] = [
        {"id": 1, "kind": "grid", "name": "Grid", "rated_fuse_current": 5000},
        {"id": 2, "kind": "meter", "name": "Main meter", "parent": 1},
    ]
    for s in strings:
        components.append(
            {
                "id": s.inverter_id,
                "kind": "battery_inverter",
                "parent": 2,
                "active_power_bounds": [-s.inverter_power_w, s.inverter_power_w],
                "resolution": s.resolution_w,
                "efficiency": 0.97,
            }
        )
        components.append(
            {
                "id": s.battery_id,
                "kind": "battery",
                "parent": s.inverter_id,
                "capacity": s.capacity_wh,
                "initial_soc": s.initial_soc_pct,
                "soc_bounds": list(SOC_BOUNDS),
                "power_bounds": [-s.battery_power_w, s.battery_power_w],
                "soc_taper": 5.0,
            }
        )
    return {
        "microgrid": {"id": 3, "name": "Balancing benchmark"},
        "simulation": {"telemetry_rate_hz": 1.0, "time_step": 1.0},
        "components": components,
    }


def make_schedule(strings: Sequence[StringPlan], hours: float, seed: int) -> list[float]:
    """One request (W, + charges) per 15-minute slot, seeded.

    The sign keeps the pool's aggregate SoC between 15 % and 85 % of its window (booked
    ahead with the inverter efficiency, as if every request were met), so the schedule
    never asks the pool as a whole for energy it does not have; 15 % of the slots idle.
    """
    rng = random.Random(seed * 7919 + 1)
    power = sum(min(s.battery_power_w, s.inverter_power_w) for s in strings)
    window = sum(s.capacity_wh * (SOC_BOUNDS[1] - SOC_BOUNDS[0]) / 100.0 for s in strings)
    stored = sum(s.capacity_wh * (s.initial_soc_pct - SOC_BOUNDS[0]) / 100.0 for s in strings)
    slots = math.ceil(hours * 3600.0 / SLOT_S)
    schedule = []
    for _ in range(slots):
        level = stored / window
        if rng.random() < 0.15:
            schedule.append(0.0)
            continue
        if level > 0.65:
            sign = -1.0
        elif level < 0.35:
            sign = 1.0
        else:
            sign = rng.choice((-1.0, 1.0))
        request = sign * rng.uniform(0.15, 0.7) * power
        hours_per_slot = SLOT_S / 3600.0
        if request > 0:
            room = (0.85 - level) * window / 0.97 / hours_per_slot
            request = min(request, max(room, 0.0))
            stored += request * 0.97 * hours_per_slot
        else:
            room = (level - 0.15) * window * 0.97 / hours_per_slot
            request = max(request, -max(room, 0.0))
            stored += request / 0.97 * hours_per_slot
        schedule.append(round(request, -2))
    return schedule


# ------------------------------------------------------------------ adapters


def sdk_distributor(site: SiteSpec, strings: Sequence[StringPlan]) -> Distribute | None:
    """The real SDK algorithm behind our interface, or None if it cannot be imported.

    The SDK reads a battery's power bounds from the battery's telemetry apart from the
    inverter's (ours needs only their intersection, `BatteryUnit.allowed`): they are
    taken from the site spec at the unit's SoC, as the simulator's battery reports them.
    """
    try:
        from frequenz.client.common.microgrid.components import ComponentId
        from frequenz.quantities import Power
        from frequenz.sdk.microgrid._old_component_data import BatteryData, InverterData
        from frequenz.sdk.microgrid._power_distributing._distribution_algorithm import (
            AggregatedBatteryData,
            BatteryDistributionAlgorithm,
            InvBatPair,
        )
    except ImportError:
        return None
    algorithm = BatteryDistributionAlgorithm(distributor_exponent=1.0)
    now = START
    batteries: dict[int, BatterySpec] = {}
    for s in strings:
        details = site.by_id[s.battery_id].details
        assert isinstance(details, BatterySpec)
        batteries[s.inverter_id] = details

    def component_id(cid: int) -> ComponentId:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            return ComponentId(cid)

    def distribute(target_w: float, units: Sequence[BatteryUnit]) -> Distribution:
        pairs = []
        for unit in units:
            battery_bounds = battery_power_bounds(batteries[unit.inverter_id], unit.soc_pct)
            inverter_bounds = hull(unit.allowed)
            battery = BatteryData(
                component_id=component_id(unit.inverter_id + 10_000),
                timestamp=now,
                soc=unit.soc_pct,
                soc_lower_bound=unit.soc_lower_pct,
                soc_upper_bound=unit.soc_upper_pct,
                capacity=unit.capacity_wh,
                power_inclusion_lower_bound=battery_bounds.lower,
                power_inclusion_upper_bound=battery_bounds.upper,
            )
            inverter = InverterData(
                component_id=component_id(unit.inverter_id),
                timestamp=now,
                active_power_inclusion_lower_bound=inverter_bounds.lower,
                active_power_inclusion_upper_bound=inverter_bounds.upper,
            )
            pairs.append(InvBatPair(AggregatedBatteryData([battery]), [inverter]))
        result = algorithm.distribute_power(Power.from_watts(target_w), pairs)
        powers = {int(cid): power.as_watts() for cid, power in result.distribution.items()}
        return Distribution(powers, target_w - math.fsum(powers.values()))

    return distribute


# ------------------------------------------------------------------ the run


@dataclass(slots=True)
class Outcome:
    """What one algorithm did over the scenario."""

    name: str
    spreads: list[tuple[float, float]] = field(default_factory=list)  # (hours, pp)
    time_to_goal_s: float | None = None
    max_spread_after_goal_pp: float = 0.0
    requested_wh: float = 0.0  # Σ|scheduled| energy
    feasible_wh: float = 0.0  # Σ|feasible| energy
    delivered_abs_wh: float = 0.0  # Σ|delivered| energy
    tracking_abs_wh: float = 0.0  # Σ|feasible − delivered| per step
    unplaced_steps: int = 0
    clipped_wh: float = 0.0  # Σ(|scheduled| − |feasible|): what the pool could not do
    commands: int = 0
    refusals: int = 0
    violations: int = 0
    refusal_examples: list[str] = field(default_factory=list)
    final_socs: list[float] = field(default_factory=list)
    cpu_s: float = 0.0

    @property
    def tracking_error_pct(self) -> float:
        """Σ|feasible − delivered| / Σ|feasible|, in percent."""
        return 100.0 * self.tracking_abs_wh / self.feasible_wh if self.feasible_wh else 0.0


def spread_pp(units: Sequence[BatteryUnit]) -> float:
    """Max − min of the normalised SoCs, in percentage points."""
    levels = [unit.normalized_soc for unit in units]
    return 100.0 * (max(levels) - min(levels))


def reach(units: Sequence[BatteryUnit]) -> tuple[float, float]:
    """What the pool can do now: Σ discharge reach (<= 0) and Σ charge reach (>= 0)."""
    low = high = 0.0
    for unit in units:
        bounds = hull(unit.allowed)
        step = unit.resolution_w
        low += -math.floor(-bounds.lower / step + 1e-9) * step if bounds.lower < 0 else 0.0
        high += math.floor(bounds.upper / step + 1e-9) * step if bounds.upper > 0 else 0.0
    return low, high


def read_units(model: SiteModel, strings: Sequence[StringPlan], now: datetime) -> list[BatteryUnit]:
    """The units as a controller would see them now."""
    units = []
    for s in strings:
        battery = model.spec(s.battery_id).details
        inverter = model.spec(s.inverter_id).details
        assert isinstance(battery, BatterySpec)
        assert isinstance(inverter, InverterSpec)
        units.append(
            BatteryUnit(
                inverter_id=s.inverter_id,
                soc_pct=model.soc_pct(s.battery_id),
                soc_lower_pct=battery.soc_bounds_pct.lower,
                soc_upper_pct=battery.soc_bounds_pct.upper,
                capacity_wh=battery.capacity_wh,
                allowed=model.active_bounds(s.inverter_id, now),
                resolution_w=inverter.resolution_w,
            )
        )
    return units


def run(
    name: str,
    distribute: Distribute,
    site: SiteSpec,
    strings: Sequence[StringPlan],
    schedule: Sequence[float],
    hours: float,
    step_s: float,
) -> Outcome:
    """Drive one algorithm through the whole scenario."""
    outcome = Outcome(name)
    model = SiteModel(site, START, speed=1.0)
    inverters = [s.inverter_id for s in strings]
    steps = round(hours * 3600.0 / step_s)
    step_h = step_s / 3600.0
    started = time.process_time()
    units = read_units(model, strings, START)
    outcome.spreads.append((0.0, spread_pp(units)))
    for k in range(steps):
        now = START + timedelta(seconds=k * step_s)
        request = schedule[min(int(k * step_s // SLOT_S), len(schedule) - 1)]
        low, high = reach(units)
        target = min(max(request, low), high)
        outcome.requested_wh += abs(request) * step_h
        outcome.feasible_wh += abs(target) * step_h
        outcome.clipped_wh += (abs(request) - abs(target)) * step_h
        result = distribute(target, units)
        if abs(result.unplaced_w) > max(u.resolution_w for u in units):
            outcome.unplaced_steps += 1
        for inverter_id in inverters:
            power = result.power_w.get(inverter_id, 0.0)
            outcome.commands += 1
            try:
                record = model.set_active_power(inverter_id, power, now, lifetime_s=LIFETIME_S)
            except SimError as error:
                outcome.refusals += 1
                if len(outcome.refusal_examples) < 3:
                    outcome.refusal_examples.append(f"t={k * step_s / 3600:.2f} h: {error}")
                continue
            if not allows(record.bounds, record.applied_w):
                outcome.violations += 1
        before = math.fsum(model.energy_delivered_wh[i] for i in inverters)
        after_time = now + timedelta(seconds=step_s)
        model.step(after_time)
        delivered = math.fsum(model.energy_delivered_wh[i] for i in inverters) - before
        outcome.delivered_abs_wh += abs(delivered)
        outcome.tracking_abs_wh += abs(target * step_h - delivered)
        units = read_units(model, strings, after_time)
        spread = spread_pp(units)
        elapsed_h = (k + 1) * step_h
        outcome.spreads.append((elapsed_h, spread))
        if outcome.time_to_goal_s is None and spread < SPREAD_GOAL_PP:
            outcome.time_to_goal_s = (k + 1) * step_s
        elif outcome.time_to_goal_s is not None:
            outcome.max_spread_after_goal_pp = max(outcome.max_spread_after_goal_pp, spread)
    outcome.final_socs = [model.soc_pct(s.battery_id) for s in strings]
    outcome.cpu_s = time.process_time() - started
    return outcome


# ------------------------------------------------------------------ the report


def show_time(seconds: float | None) -> str:
    """A duration as h:mm, or "never"."""
    if seconds is None:
        return "never"
    minutes = round(seconds / 60)
    return f"{minutes // 60}:{minutes % 60:02d} h"


def show_rebound(outcome: Outcome) -> str:
    """The worst spread once the goal was reached, or "-" if it never was."""
    if outcome.time_to_goal_s is None:
        return "-"
    return f"{outcome.max_spread_after_goal_pp:.2f}"


def spread_at(outcome: Outcome, hours: float) -> float:
    """The spread recorded nearest to `hours`."""
    return min(outcome.spreads, key=lambda point: abs(point[0] - hours))[1]


def report(
    outcomes: Sequence[Outcome],
    strings: Sequence[StringPlan],
    schedule: Sequence[float],
    hours: float,
    step_s: float,
    seed: int,
) -> None:
    """Print the comparison."""
    print(
        f"SoC balancing benchmark: {STRINGS} strings, {hours:g} h of model time in "
        f"{step_s:g} s steps, seed {seed}"
    )
    print()
    print("Site (SoC bounds 10-90 % each, inverter efficiency 0.97, SoC taper 5 pp):")
    print(
        f"  {'inverter':>8} {'capacity':>9} {'battery':>8} {'inverter':>9} {'res.':>6} {'SoC0':>6}"
    )
    for s in strings:
        print(
            f"  {s.inverter_id:>8} {s.capacity_wh / 1000:>6.0f} kWh "
            f"{s.battery_power_w / 1000:>5.0f} kW {s.inverter_power_w / 1000:>6.1f} kW "
            f"{s.resolution_w:>4g} W {s.initial_soc_pct:>5.1f}%"
        )
    charging = sum(1 for p in schedule if p > 0)
    discharging = sum(1 for p in schedule if p < 0)
    print(
        f"Schedule: {len(schedule)} slots of 15 min — {charging} charging, {discharging} "
        f"discharging, {len(schedule) - charging - discharging} idle; "
        f"|request| up to {max(abs(p) for p in schedule) / 1000:.0f} kW"
    )
    print()
    names = [o.name for o in outcomes]
    print("Spread of normalised SoC (max − min, pp):")
    print("  " + f"{'hour':>5}" + "".join(f"{name:>15}" for name in names))
    for hour in range(0, int(hours) + 1, REPORT_EVERY_H):
        print("  " + f"{hour:>5}" + "".join(f"{spread_at(o, hour):>15.2f}" for o in outcomes))
    print()
    rows: list[tuple[str, Callable[[Outcome], str]]] = [
        (f"time to spread < {SPREAD_GOAL_PP:g} pp", lambda o: show_time(o.time_to_goal_s)),
        ("max spread after that (pp)", show_rebound),
        ("final spread (pp)", lambda o: f"{o.spreads[-1][1]:.2f}"),
        ("requested |energy| (kWh)", lambda o: f"{o.requested_wh / 1000:.1f}"),
        ("feasible |energy| (kWh)", lambda o: f"{o.feasible_wh / 1000:.1f}"),
        ("clipped by the pool (kWh)", lambda o: f"{o.clipped_wh / 1000:.1f}"),
        ("delivered |energy| (kWh)", lambda o: f"{o.delivered_abs_wh / 1000:.1f}"),
        ("tracking error (%)", lambda o: f"{o.tracking_error_pct:.3f}"),
        ("steps with unplaced power", lambda o: str(o.unplaced_steps)),
        ("commands", lambda o: str(o.commands)),
        ("refusals", lambda o: str(o.refusals)),
        ("violations", lambda o: str(o.violations)),
        ("final SoCs (%)", lambda o: " ".join(f"{v:.0f}" for v in o.final_socs)),
        ("CPU time (s)", lambda o: f"{o.cpu_s:.1f}"),
    ]
    width = max(len(label) for label, _ in rows)
    print("  " + " " * width + "".join(f"{name:>22}" for name in names))
    for label, show in rows:
        print("  " + f"{label:<{width}}" + "".join(f"{show(o):>22}" for o in outcomes))
    for outcome in outcomes:
        for example in outcome.refusal_examples:
            print(f"  refused ({outcome.name}): {example}")
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--hours", type=float, default=24.0)
    parser.add_argument("--step", type=float, default=15.0, help="control step, seconds")
    args = parser.parse_args()

    strings = plan_strings(args.seed)
    site = parse_site(site_document(strings), "balancing-benchmark")
    schedule = make_schedule(strings, args.hours, args.seed)
    horizon_s = args.hours * 3600.0

    algorithms: list[tuple[str, Distribute]] = [
        ("SocBalancing", SocBalancing().distribute),
        ("Proportional", Proportional().distribute),
    ]
    sdk = sdk_distributor(site, strings)
    if sdk is not None:
        algorithms.append(("SDK", sdk))
    outcomes = [
        run(name, distribute, site, strings, schedule, args.hours, args.step)
        for name, distribute in algorithms
    ]
    report(outcomes, strings, schedule, args.hours, args.step, args.seed)

    ours = outcomes[0]
    reference = outcomes[-1]

    def to_goal(outcome: Outcome) -> float:
        return outcome.time_to_goal_s if outcome.time_to_goal_s is not None else horizon_s

    ratio = to_goal(ours) / to_goal(reference)
    for other in outcomes[1:]:
        print(
            f"Time to {SPREAD_GOAL_PP:g} pp, ours / {other.name}: "
            f"{to_goal(ours) / to_goal(other):.3f} ("
            f"{show_time(ours.time_to_goal_s)} vs {show_time(other.time_to_goal_s)}; "
            "never = the scenario's length)"
        )
    checks = (
        ("ratio", ratio <= TARGET_RATIO, f"≤ {TARGET_RATIO:g}"),
        ("violations", ours.violations == 0, "0"),
        ("tracking error", ours.tracking_error_pct <= TARGET_TRACKING_PCT, "≤ 0.5 %"),
    )
    print(
        f"Reference for the ratio: {reference.name}. Targets: "
        + ", ".join(f"{label} {goal} {'met' if ok else 'MISSED'}" for label, ok, goal in checks)
    )
    print(
        f"time_to_2pp_ratio_vs_sdk={ratio:.4f} violations={ours.violations} "
        f"tracking_error_pct={ours.tracking_error_pct:.4f}"
    )


if __name__ == "__main__":
    main()
