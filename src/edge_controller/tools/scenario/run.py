"""The day loop: the whole controller on a `ManualClock`, against the simulator's physics.

One control step at time t (a multiple of the step from the start) does, in order:

```
observe(model, t) ─► Observation (per inverter: SoC, bounds, capacity; pure data)   site_model
control_step(setup, state, observation, forecast) ─► new state + StepDecision      (pure)
   1. clear every period whose gate has closed: market model on the actual weather,   trades
      our order in the book → trade → a real client `Dispatch` (BATTERY_POWER, the
      period, all batteries, {"power_w": ±filled}) in the schedule
   2. bid for the earliest period whose gate is open, once: forecast → outlook        bidding
      (expected price from the market model on the forecast, production, load) →
      the optimizer or the threshold builder → the order for that period, checked
      by the market's own order rules
   3. the dispatches running now → the BatteryPowerActor's `read_dispatch` and     inverter_commands
      `dispatch_requests` → the manager's `settle` → `plan()` with `SocBalancing`
      over the batteries' present bounds → inverter commands
apply_commands(model): set_active_power per inverter (checked against the bounds)   site_model
set the step's production, model.step(t + step), record the step
```

**Pure where possible.** `control_step` and everything it calls are pure functions of
frozen values (the forecast provider is a memoised pure function of the issue time;
`build_setup` reads the site, the place and the weather once). The simulator's
`SiteModel` is the one mutable piece; only `run_scenario` touches it, through
`site_model`.

**Time.** The model's physics time equals its wall time (`speed` 1); its load
profiles read the hour in the scenario start's UTC offset. The site's fault windows
are not injected (they belong to the gRPC server). Orders, dispatch starts and gate
closures all fall on control steps (`file.check_against_market`). The production is
the measured weather's (`production`), set on the model step by step.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, timedelta

import structlog
from frequenz.client.dispatch.types import Dispatch

from edge_controller.common.clock import ManualClock
from edge_controller.servers.sim.measured_weather import equivalent_weather
from edge_controller.servers.sim.model import SiteModel
from edge_controller.tools.scenario.bidding import decide_bid
from edge_controller.tools.scenario.errors import ScenarioError
from edge_controller.tools.scenario.file import Scenario
from edge_controller.tools.scenario.forecasts import Forecast, day_ahead, forecast_provider
from edge_controller.tools.scenario.inverter_commands import BatteryCommands, battery_commands
from edge_controller.tools.scenario.records import (
    BidRecord,
    CommandCheck,
    PeriodResult,
    ScenarioResult,
    StepRecord,
)
from edge_controller.tools.scenario.setup import Setup, build_setup
from edge_controller.tools.scenario.site_model import Observation, apply_commands, observe
from edge_controller.tools.scenario.state import ControllerState, initial_controller_state
from edge_controller.tools.scenario.trades import clear_due

_LOG = structlog.get_logger("edge_controller.tools.scenario")


@dataclass(frozen=True, slots=True)
class StepDecision:
    """What one control step decided."""

    battery: BatteryCommands
    """The inverter commands; its notes are logged as `scenario_dispatch_not_executed`."""
    cleared: tuple[PeriodResult, ...] = ()
    created: tuple[Dispatch, ...] = ()
    bid: BidRecord | None = None


def control_step(
    setup: Setup, state: ControllerState, observation: Observation, forecast: Forecast
) -> tuple[ControllerState, StepDecision]:
    """Decide one step (see the module docstring): clear, bid, then command the batteries."""
    state, cleared, created = clear_due(setup, state, observation.at)
    state, bid = decide_bid(setup, state, observation, forecast)
    state = replace(state, schedule=state.schedule.prune(observation.at))
    battery = battery_commands(setup, state.schedule, observation)
    return state, StepDecision(battery, cleared=cleared, created=created, bid=bid)


def run_scenario(scenario: Scenario, *, clock: ManualClock | None = None) -> ScenarioResult:
    """Run the scenario's day on `clock` (default: a new `ManualClock` at its start).

    Raises:
        ScenarioError: a site the loop cannot run.
    """
    began = time.perf_counter()
    spec = scenario.spec
    setup = build_setup(scenario)
    layout = setup.layout
    clock = clock if clock is not None else ManualClock(spec.start.astimezone(UTC))
    if clock.now() != spec.start:
        raise ScenarioError(
            f"the clock shows {clock.now().isoformat()}, the scenario starts "
            f"{spec.start.isoformat()}"
        )
    site = replace(
        scenario.site,
        simulation=replace(
            scenario.site.simulation,
            time_step_s=spec.physics_step.total_seconds(),
            start_time=spec.start,
        ),
    )
    model = SiteModel(site, clock.now())
    forecasts = forecast_provider(setup)
    state = initial_controller_state(setup, clock.now())
    step_s = spec.step.total_seconds()
    dt_h = step_s / 3600.0
    steps: list[StepRecord] = []
    periods: list[PeriodResult] = []
    bids: list[BidRecord] = []
    commands: list[CommandCheck] = []
    dispatches: list[Dispatch] = []
    metered = (
        layout.grid_id,
        *layout.inverter_ids,
        *layout.pv_ids,
        *layout.wind_ids,
        *layout.load_ids,
    )
    for index in range(int(spec.duration / spec.step)):
        now = clock.now()
        observation = observe(model, layout, now)
        state, decision = control_step(setup, state, observation, forecasts(now))
        periods += decision.cleared
        dispatches += decision.created
        if decision.bid is not None:
            bids.append(decision.bid)
        battery = decision.battery
        for note in battery.notes:
            _LOG.warning("scenario_dispatch_not_executed", at=now.isoformat(), reason=note)
        commands += apply_commands(model, battery.commands, now, setup.command_lifetime_s)
        row = index + 1  # ActualProduction starts one step early
        model.site = replace(
            model.site,
            weather=equivalent_weather(
                layout,
                float(setup.actual.pv_w[row]),
                float(setup.actual.wind_w[row]),
                float(setup.actual.temperature_c[row]),
            ),
        )
        before = {cid: model.energy_delivered_wh[cid] for cid in metered}
        model.step(now + spec.step)
        moved = {cid: (model.energy_delivered_wh[cid] - before[cid]) / dt_h for cid in metered}
        inverter_w = tuple(moved[i] for i in layout.inverter_ids)
        steps.append(
            StepRecord(
                at=now,
                soc_pct=tuple(observation.soc_pct[b] for b in layout.battery_ids),
                inverter_power_w=inverter_w,
                battery_power_w=math.fsum(inverter_w),
                target_w=battery.target_w,
                commanded_w=math.fsum(battery.commands.values()),
                excess_w=battery.excess_w,
                pv_w=math.fsum(moved[c] for c in layout.pv_ids),
                wind_w=math.fsum(moved[c] for c in layout.wind_ids),
                load_w=math.fsum(moved[c] for c in layout.load_ids),
                grid_w=moved[layout.grid_id],
                running=battery.running,
            )
        )
        clock.advance(spec.step)
    final = observe(model, layout, clock.now())
    return ScenarioResult(
        scenario=scenario,
        location=setup.location,
        dataset=setup.dataset.key,
        weather_station=setup.dataset.name,
        battery_ids=layout.battery_ids,
        inverter_ids=layout.inverter_ids,
        steps=tuple(steps),
        periods=tuple(with_delivery(periods, steps, spec.step)),
        bids=tuple(bids),
        commands=tuple(commands),
        dispatches=tuple(dispatches),
        day_ahead=day_ahead(setup),
        final_soc_pct=tuple(final.soc_pct[b] for b in layout.battery_ids),
        runtime_s=time.perf_counter() - began,
    )


def with_delivery(
    periods: Sequence[PeriodResult], steps: Sequence[StepRecord], step: timedelta
) -> list[PeriodResult]:
    """Fill each period's delivered power: the batteries' average over the period."""
    result = []
    for period in periods:
        inside = [s for s in steps if period.start <= s.at < period.start + period.duration]
        covered = len(inside) * step
        delivered = (
            math.fsum(s.battery_power_w for s in inside) / len(inside)
            if inside and covered == period.duration
            else math.nan
        )
        result.append(replace(period, delivered_power_w=delivered))
    return result


__all__ = ["StepDecision", "build_setup", "control_step", "run_scenario", "with_delivery"]
