"""What a scenario day earned, after wear, and what perfect foresight would have earned. Pure.

**Value** (EUR) of a day, for any bidding strategy:

    Σ trades' money at the clearing price (+ sold, − bought)
    − degradation × MWh traded (charged + discharged, at the meter)
    + terminal price × (stored energy at the end − at the start, MWh)

The last term makes days comparable whatever the batteries hold at the end: energy
sold out of the morning's store is not free money, energy bought and still held is
not a loss. The terminal price is the mean *realised* price of the day's periods
(the market's clearing without our orders), the same number for every strategy.

**Perfect foresight** is the optimizer's own program (`trading.optimizer.plan_bids`)
over the same periods, from the same SoCs, with that terminal price, on what really
happened: the realised production and load, and each period's price response from the
realised book (the market model on the actual weather, cleared with 0…max_volume of
ours in it; `market_outlook.expected_responses`). So it knows what each of its own orders would
have cleared at and filled — the program's value had every forecast been right, not a
price-taker's ceiling that no order of ours could reach.

**Reserve crossings**: steps at which a battery's SoC is below its floor
(max(reserve, lower bound + taper)) and lower than at the start.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import datetime

import numpy as np

from edge_controller.servers.market.model import initial_state
from edge_controller.servers.sim.model import SiteModel
from edge_controller.servers.sim.site_details import BatterySpec
from edge_controller.tools.scenario.bidding import optimizer_settings, storage_units
from edge_controller.tools.scenario.layout import load_w
from edge_controller.tools.scenario.market_outlook import (
    expected_prices,
    expected_responses,
    response_lots,
)
from edge_controller.tools.scenario.records import ScenarioResult
from edge_controller.tools.scenario.setup import Setup
from edge_controller.tools.scenario.site_model import observe
from edge_controller.trading.bids import PeriodOutlook
from edge_controller.trading.optimizer import Plan, plan_bids
from edge_controller.trading.periods import first_open_period


@dataclass(frozen=True, slots=True)
class DayValue:
    """A day's value and its parts (EUR, MWh)."""

    trade_eur: float
    degradation_eur: float
    terminal_eur: float
    traded_mwh: float

    @property
    def value_eur(self) -> float:
        """Trades − wear + the change of the stored energy at the terminal price."""
        return self.trade_eur - self.degradation_eur + self.terminal_eur


@dataclass(frozen=True, slots=True)
class ValueFigures:
    """A run's value against perfect foresight (EUR), as the report shows it."""

    strategy: str
    """The strategy that ran: "optimal" or "threshold"."""
    day: DayValue
    perfect_foresight_eur: float
    terminal_price: float
    """EUR/MWh: the mean realised price, at which the stored-energy change counts."""

    @property
    def pct_of_perfect_foresight(self) -> float | None:
        """100 · value / perfect foresight (None when perfect foresight earns ≤ 0)."""
        if self.perfect_foresight_eur <= 0:
            return None
        return 100.0 * self.day.value_eur / self.perfect_foresight_eur


def value_figures(result: ScenarioResult, setup: Setup) -> ValueFigures:
    """Return the run's value, the perfect-foresight value and the terminal price.

    `setup` must be the run's (`run.build_setup(result.scenario)`).
    """
    terminal = terminal_price(setup)
    degradation = result.scenario.spec.degradation_eur_per_mwh
    return ValueFigures(
        strategy=result.scenario.spec.bidding.value,
        day=day_value(result, degradation=degradation, terminal=terminal),
        perfect_foresight_eur=perfect_foresight(setup, terminal).value_eur,
        terminal_price=terminal,
    )


def realised_prices(setup: Setup) -> dict[datetime, float]:
    """The clearing price of every period of the day without our orders (EUR/MWh)."""
    spec, market = setup.scenario.spec, setup.market
    rules = market.rules
    first = first_open_period(spec.start, rules.period, rules.gate_closure)
    last = spec.end - rules.period
    return expected_prices(market, initial_state(market), first, last, setup.market_weather)


def terminal_price(setup: Setup) -> float:
    """The mean realised price of the day (EUR/MWh)."""
    prices = list(realised_prices(setup).values())
    return math.fsum(prices) / len(prices) if prices else 0.0


def day_value(result: ScenarioResult, *, degradation: float, terminal: float) -> DayValue:
    """Return the value of a run (see the module docstring)."""
    trade = math.fsum(-p.traded_power_w / 1e6 * p.hours * p.price for p in result.periods)
    traded = math.fsum(abs(p.traded_power_w) / 1e6 * p.hours for p in result.periods)
    capacities = [_battery(result, b).capacity_wh for b in result.battery_ids]
    start = result.steps[0].soc_pct if result.steps else result.final_soc_pct
    stored_change_mwh = math.fsum(
        c * (end - begin) / 100.0 / 1e6
        for c, begin, end in zip(capacities, start, result.final_soc_pct, strict=True)
    )
    return DayValue(trade, degradation * traded, terminal * stored_change_mwh, traded)


def reserve_floors(result: ScenarioResult) -> tuple[float, ...]:
    """Each battery's floor (%): max(reserve, lower bound + taper)."""
    reserve = result.scenario.spec.strategy.reserve_soc_pct
    specs = [_battery(result, b) for b in result.battery_ids]
    return tuple(max(reserve, s.soc_bounds_pct.lower + s.soc_taper_pct) for s in specs)


def _battery(result: ScenarioResult, battery_id: int) -> BatterySpec:
    details = result.scenario.site.by_id[battery_id].details
    if not isinstance(details, BatterySpec):  # pragma: no cover - the layout guarantees it
        raise TypeError(f"component {battery_id} is not a battery")
    return details


def reserve_crossings(result: ScenarioResult, *, tolerance_pct: float = 1e-6) -> int:
    """Steps × batteries below the floor and below where the battery started."""
    floors = reserve_floors(result)
    if not result.steps:
        return 0
    start = result.steps[0].soc_pct
    socs = [*(s.soc_pct for s in result.steps), result.final_soc_pct]
    return sum(
        1
        for soc in socs
        for i, value in enumerate(soc)
        if value < floors[i] - tolerance_pct and value < start[i] - tolerance_pct
    )


def perfect_foresight(setup: Setup, terminal: float) -> Plan:
    """The optimizer's program on what really happened (see the module docstring)."""
    spec, rules = setup.scenario.spec, setup.market.rules
    market = setup.market
    first = first_open_period(spec.start, rules.period, rules.gate_closure)
    responses = expected_responses(
        market,
        initial_state(market),
        first,
        spec.end - rules.period,
        setup.market_weather,
        response_lots(setup),
    )
    prices = {start: r.price_without_us for start, r in responses.items()}
    step_s = spec.step.total_seconds()
    per_period = int(rules.period.total_seconds() // step_s)
    periods = []
    for start, price in sorted(prices.items()):
        first_row = round((start - spec.start).total_seconds() / step_s) + 1
        rows = slice(first_row, first_row + per_period)
        produced = -float(np.mean(setup.actual.pv_w[rows] + setup.actual.wind_w[rows]))
        load = load_w(setup.layout, (start + rules.period / 2).astimezone(spec.start.tzinfo))
        periods.append(
            PeriodOutlook(start, rules.period, price, max(0.0, produced), load, responses[start])
        )
    model = SiteModel(setup.scenario.site, spec.start)
    units = storage_units(setup, observe(model, setup.layout, spec.start))
    settings = replace(optimizer_settings(setup), terminal_price=terminal, forecast_margin=0.0)
    return plan_bids(periods, units, settings, now=spec.start, place=())


__all__ = [
    "DayValue",
    "ValueFigures",
    "day_value",
    "perfect_foresight",
    "realised_prices",
    "reserve_crossings",
    "reserve_floors",
    "terminal_price",
    "value_figures",
]
