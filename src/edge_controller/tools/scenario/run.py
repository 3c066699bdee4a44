"""The day loop: the whole controller on a `ManualClock`, against the simulator's physics.

One control step at time t (a multiple of the step from the start) does, in order:

```
observe(model, t) ─► Observation (per inverter: SoC, bounds, capacity; pure data)
control_step(setup, state, observation, forecast) ─► new state + StepDecision   (pure)
   1. clear every period whose gate has closed: market model `situation` on the actual
      weather, `clear_period` with our order → trade → a real client `Dispatch`
      (BATTERY_POWER, the period, all batteries, {"power_w": ±filled}) in the schedule
   2. bid for the earliest period whose gate is open, once: forecast → outlook
      (expected price from the market model on the forecast, production, load) →
      `build_orders` over the horizon → the order for that period, checked by the
      market's own order rules
   3. the dispatches running now (`running_now`) → the BatteryPowerActor's own pieces:
      `read_dispatch` (payload, target, whole inverter groups) and ownership (`assign`,
      the newest drives) → `plan()` with `SocBalancing` over the batteries' present
      bounds → inverter commands
apply(model): set_active_power per inverter (each checked against the bounds in force)
set the step's production, model.step(t + step), record the step
```

**Pure where possible.** `control_step` and everything it calls are pure functions of
frozen values (the forecast provider is a memoised pure function of the issue time).
The simulator's `SiteModel` is the one mutable piece; only `run_scenario` touches it.

**Bidding.** The period that becomes the first open one (right after the previous
gate closed) gets exactly one decision, from the latest forecast and SoC — a rolling
horizon: the builder sees `strategy.horizon` of periods (for the mean price and the
allocation, earliest first) but only the first period's order is placed; the later
ones are decided again when their turn comes. What was already traded or ordered and
not yet delivered is committed: sells count it as gone (the SoC for selling is now
minus every committed discharge), buys as stored (plus every committed charge), each
at its worst — as `build_orders` itself never counts a planned buy as energy to sell.
The pool offers only the SoC window where the batteries run at full power (their SoC
bounds narrowed by the taper) and the reserve; power is the pool's present bounds.

**Production.** As the simulator does with `[weather] source = "measured"`
(`sim.measured_weather`), the scenario computes the actual production with the shared
models (`weather.production`: pvlib for PV, the windpowerlib curve for wind) from the
measured weather, and sets `model.site.weather` each step to the *equivalent*
irradiance and wind speed, so the simulated components produce exactly that (the grid
meter sums it). The site file's weather values are therefore not used; with
several turbines of different curves, the first turbine's curve sets the speed.

**Time.** The model's physics time equals its wall time (`speed` 1); its load
profiles read the hour in the scenario start's UTC offset. The site's fault windows
are not injected (they belong to the gRPC server). Orders, dispatch starts and gate
closures all fall on control steps (`file.check_against_market`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Final, TypeVar

import numpy as np
import numpy.typing as npt
import structlog
from frequenz.client.dispatch.recurrence import RecurrenceRule
from frequenz.client.dispatch.types import Dispatch, DispatchId, TargetIds

from edge_controller.common.clock import ManualClock
from edge_controller.dispatching.ownership import RunningDispatch, assign
from edge_controller.dispatching.payload import PayloadError
from edge_controller.power.bounds import Range, allows, inclusion_exclusion
from edge_controller.power.distribution import DistributionAlgorithm, SocBalancing
from edge_controller.power.planning import (
    Availability,
    BatteryState,
    Refusal,
    Unit,
    plan,
    pool_bounds,
    to_battery_unit,
)
from edge_controller.servers.market import clearing
from edge_controller.servers.market.errors import MarketError
from edge_controller.servers.market.model import (
    MarketSpec,
    MarketState,
    Situation,
    Weather,
    initial_state,
    situation,
    weather_from_spec,
)
from edge_controller.servers.market.orders import DeliveryArea, OrderRequest, validate_order
from edge_controller.servers.market.periods import first_open_period, gate_closure, period_floor
from edge_controller.servers.sim.errors import SimError
from edge_controller.servers.sim.measured_weather import equivalent_weather, speed_for_fraction
from edge_controller.servers.sim.model import SiteModel, battery_power_bounds, hourly_value
from edge_controller.servers.sim.site import (
    BatterySpec,
    ComponentKind,
    InverterSpec,
    LoadSpec,
    PvSpec,
    SiteSpec,
    WindSpec,
)
from edge_controller.tools.scenario.file import Bidding, MarketWind, Scenario
from edge_controller.tools.scenario.load_forecast import forecast_load_w, load_errors
from edge_controller.tools.scenario.records import (
    BidRecord,
    CommandCheck,
    ForecastPoint,
    PeriodResult,
    ScenarioResult,
    StepRecord,
)
from edge_controller.tools.scenario.schedule import DispatchSchedule, windows
from edge_controller.trading.bids import (
    BatteryPool,
    Order,
    PeriodOutlook,
    Side,
    Strategy,
    build_orders,
)
from edge_controller.trading.optimizer import Committed, Plan, Settings, plan_bids
from edge_controller.trading.outlook import committed_energy_wh
from edge_controller.trading.price_response import PriceResponse
from edge_controller.trading.storage import StorageUnit
from edge_controller.use_cases.battery_power.decide import TargetError, read_dispatch
from edge_controller.use_cases.battery_power.payload import parse_battery_power
from edge_controller.weather.data import (
    Dataset,
    actual_weather,
    bundled_datasets,
    nearest_dataset,
)
from edge_controller.weather.forecast import forecast_weather
from edge_controller.weather.messages import GeoLocation
from edge_controller.weather.production import (
    SMALL_TURBINE_HUB_HEIGHT_M,
    pv_power_series_w,
    wind_power_series_w,
    wind_power_w,
)
from edge_controller.weather.wind import wind_speed_at_height

Array = npt.NDArray[np.float64]
_T = TypeVar("_T")

_LOG = structlog.get_logger("edge_controller.tools.scenario")

DISPATCH_TYPE = "BATTERY_POWER"
"""The type of the dispatches won trades become (the BatteryPowerActor's default)."""


class ScenarioError(ValueError):
    """A site or scenario the day loop cannot run (the message says why)."""


# ---------------------------------------------------------------------- the site


@dataclass(frozen=True, slots=True)
class SiteLayout:
    """What the loop needs to know about the site's components, read once."""

    grid_id: int
    battery_ids: tuple[int, ...]
    inverter_ids: tuple[int, ...]
    """Battery inverters."""
    batteries_of: Mapping[int, tuple[int, ...]]
    inverter_of: Mapping[int, int]
    battery_specs: Mapping[int, BatterySpec]
    inverter_specs: Mapping[int, InverterSpec]
    pv_ids: tuple[int, ...]
    wind_ids: tuple[int, ...]
    load_ids: tuple[int, ...]
    pv_peak_w: float
    wind_rated_w: float
    wind_curve: tuple[tuple[float, float], ...]
    loads: tuple[LoadSpec, ...]

    @classmethod
    def of(cls, site: SiteSpec) -> SiteLayout:
        """Read the layout of `site`.

        Raises:
            ScenarioError: no grid, no battery, or a battery behind several inverters.
        """
        by_kind: dict[ComponentKind, list[int]] = {kind: [] for kind in ComponentKind}
        for component in site.components:
            by_kind[component.kind].append(component.id)
        if not by_kind[ComponentKind.GRID]:
            raise ScenarioError(f"{site.source}: the site has no grid connection")
        batteries = tuple(by_kind[ComponentKind.BATTERY])
        if not batteries:
            raise ScenarioError(f"{site.source}: the site has no battery to trade with")
        inverter_of: dict[int, int] = {}
        for battery_id in batteries:
            parents = site.by_id[battery_id].parents
            if len(parents) != 1:
                raise ScenarioError(
                    f"{site.source}: battery {battery_id} hangs behind inverters "
                    f"{list(parents)}; scenarios need one inverter per battery"
                )
            inverter_of[battery_id] = parents[0]
        inverters = tuple(sorted(set(inverter_of.values())))
        batteries_of = {
            inverter: tuple(b for b in batteries if inverter_of[b] == inverter)
            for inverter in inverters
        }
        details = {c.id: c.details for c in site.components}
        pv = [d for d in details.values() if isinstance(d, PvSpec)]
        wind = [d for d in details.values() if isinstance(d, WindSpec)]
        return cls(
            grid_id=by_kind[ComponentKind.GRID][0],
            battery_ids=batteries,
            inverter_ids=inverters,
            batteries_of=batteries_of,
            inverter_of=inverter_of,
            battery_specs={b: _details(details[b], BatterySpec) for b in batteries},
            inverter_specs={i: _details(details[i], InverterSpec) for i in inverters},
            pv_ids=tuple(by_kind[ComponentKind.PV_INVERTER]),
            wind_ids=tuple(by_kind[ComponentKind.WIND_TURBINE]),
            load_ids=tuple(by_kind[ComponentKind.LOAD]),
            pv_peak_w=math.fsum(d.peak_power_w for d in pv),
            wind_rated_w=math.fsum(d.rated_power_w for d in wind),
            wind_curve=wind[0].power_curve if wind else ((0.0, 0.0), (1.0, 0.0)),
            loads=tuple(d for d in details.values() if isinstance(d, LoadSpec)),
        )

    @property
    def site_batteries(self) -> frozenset[int]:
        """Every battery, as a dispatch's target is checked against."""
        return frozenset(self.battery_ids)

    @property
    def battery_groups(self) -> dict[int, frozenset[int]]:
        """Per battery, the batteries on its inverter (they move together)."""
        return {b: frozenset(self.batteries_of[i]) for b, i in self.inverter_of.items()}

    @property
    def capacity_wh(self) -> float:
        """All batteries' capacity."""
        return math.fsum(s.capacity_wh for s in self.battery_specs.values())


def _details(details: object, kind: type[_T]) -> _T:
    if not isinstance(details, kind):  # pragma: no cover - the site parser guarantees it
        raise ScenarioError(f"expected {kind.__name__}, got {type(details).__name__}")
    return details


def load_w(layout: SiteLayout, moment: datetime) -> float:
    """The site's consumption at `moment` (read in `moment`'s own UTC offset), W ≥ 0."""
    return math.fsum(s.peak_power_w * hourly_value(s.hourly_profile, moment) for s in layout.loads)


# ---------------------------------------------------------------------- weather


@dataclass(frozen=True, slots=True, eq=False)
class ActualProduction:
    """The measured weather and the production it gives, per control step.

    Index i covers `[start + i·step, start + (i+1)·step)`: irradiance averaged over the
    step, temperature and wind at its start. Powers ≤ 0 (produced).
    """

    epoch_s: Array
    pv_w: Array
    wind_w: Array
    temperature_c: Array
    hub_wind_ms: Array

    def hub_wind_at(self, moment: datetime) -> float:
        """Hub-height wind speed at `moment` (linear between steps)."""
        return float(np.interp(moment.timestamp(), self.epoch_s, self.hub_wind_ms))


@dataclass(frozen=True, slots=True, eq=False)
class Forecast:
    """One issued forecast of the site's production, per delivery period.

    Period k is `[starts[k], starts[k] + period)`: PV averaged over it (irradiance
    mean), wind at its midpoint. Powers ≤ 0 (produced).
    """

    issued_at: datetime
    first_start: datetime
    period: timedelta
    pv_w: Array
    wind_w: Array
    mid_epoch_s: Array
    hub_wind_ms: Array
    load_w: Array
    """The site's load forecast per period (W ≥ 0): the profile at the period's midpoint
    with the seeded error of `load_forecast` (the weather's own error stays apart)."""

    def index(self, start: datetime) -> int:
        """Return the index of the period starting at `start`.

        Raises:
            ScenarioError: the period is outside the forecast.
        """
        offset, rest = divmod(start - self.first_start, self.period)
        if rest or not 0 <= offset < len(self.pv_w):
            raise ScenarioError(f"no forecast for the period at {start.isoformat()}")
        return int(offset)

    def hub_wind_at(self, moment: datetime) -> float:
        """Forecast hub-height wind at `moment` (linear between period midpoints)."""
        return float(np.interp(moment.timestamp(), self.mid_epoch_s, self.hub_wind_ms))


def turbine_fraction(speed_m_s: float) -> float:
    """The shared wind model's output at a hub-height speed, as a fraction of rated power."""
    return -wind_power_w(speed_m_s, 1.0)


# ---------------------------------------------------------------------- setup and state


@dataclass(frozen=True, slots=True, eq=False)
class Setup:
    """Everything fixed for a run: the scenario, the site's layout, the weather."""

    scenario: Scenario
    layout: SiteLayout
    location: GeoLocation
    dataset: Dataset
    actual: ActualProduction
    market_weather: Weather
    """The actual weather of the market's members: clearing uses it."""
    algorithm: DistributionAlgorithm = field(default_factory=SocBalancing)

    @property
    def market(self) -> MarketSpec:
        """The market's spec."""
        return self.scenario.market

    @property
    def command_lifetime_s(self) -> int:
        """Two steps (at least 10 s, at most 900 s): each step renews the commands."""
        return int(min(900, max(10, math.ceil(2 * self.scenario.spec.step.total_seconds()))))


@dataclass(frozen=True, slots=True)
class PendingOrder:
    """Our order for one period, waiting for its gate closure."""

    order_id: int
    order: Order


@dataclass(frozen=True, slots=True)
class ControllerState:
    """What carries over from one step to the next, besides the simulated site."""

    market_state: MarketState
    """The market members' batteries, before `next_clearing`."""
    next_clearing: datetime
    """The next period to clear."""
    bid_through: datetime | None
    """The last period a bidding decision was made for."""
    pending: Mapping[datetime, PendingOrder]
    expected: Mapping[datetime, float]
    """Expected price at bid time, per period decided (also without an order)."""
    schedule: DispatchSchedule
    next_order_id: int = 1
    next_dispatch_id: int = 1


@dataclass(frozen=True, slots=True)
class Observation:
    """The site as the controller sees it at `at` (from the model's state, no telemetry)."""

    at: datetime
    units: Mapping[int, Unit]
    """Per battery inverter, as `plan()` takes them."""
    energy_wh: Mapping[int, float]
    """Per battery."""
    soc_pct: Mapping[int, float]


@dataclass(frozen=True, slots=True)
class StepDecision:
    """What one control step decided."""

    commands: Mapping[int, float]
    """Watts per battery inverter (every one: 0 W releases)."""
    target_w: float
    excess_w: float
    running: tuple[int, ...]
    cleared: tuple[PeriodResult, ...] = ()
    created: tuple[Dispatch, ...] = ()
    bid: BidRecord | None = None
    notes: tuple[str, ...] = ()
    """Refused plans or payloads (logged as `scenario_dispatch_not_executed`)."""


def initial_controller_state(setup: Setup, now: datetime) -> ControllerState:
    """The state at the scenario's start: the market opens, nothing is traded."""
    rules = setup.market.rules
    return ControllerState(
        market_state=initial_state(setup.market),
        next_clearing=first_open_period(now, rules.period, rules.gate_closure),
        bid_through=None,
        pending={},
        expected={},
        schedule=DispatchSchedule(),
    )


# ---------------------------------------------------------------------- the pure step


def control_step(
    setup: Setup, state: ControllerState, observation: Observation, forecast: Forecast
) -> tuple[ControllerState, StepDecision]:
    """Decide one step (see the module docstring): clear, bid, then command the batteries."""
    state, cleared, created = clear_due(setup, state, observation.at)
    state, bid = decide_bid(setup, state, observation, forecast)
    state = replace(state, schedule=state.schedule.prune(observation.at))
    decision = battery_commands(setup, state.schedule, observation)
    return state, replace(decision, cleared=cleared, created=created, bid=bid)


def clear_due(
    setup: Setup, state: ControllerState, now: datetime
) -> tuple[ControllerState, tuple[PeriodResult, ...], tuple[Dispatch, ...]]:
    """Clear every period whose gate has closed by `now`; trades become dispatches.

    Periods are cleared even without an order of ours: the members' batteries and the
    price move every period. Periods past the scenario's end are not cleared.
    """
    market, spec = setup.market, setup.scenario.spec
    rules = market.rules
    results: list[PeriodResult] = []
    created: list[Dispatch] = []
    pending = dict(state.pending)
    while (
        gate_closure(state.next_clearing, rules.gate_closure) <= now
        and state.next_clearing + rules.period <= spec.end
    ):
        start = state.next_clearing
        ours = pending.pop(start, None)
        period = situation(market, state.market_state, start, setup.market_weather)
        bids = (
            [
                clearing.Bid(
                    ours.order_id,
                    _market_side(ours.order.side),
                    ours.order.limit_price,
                    int(ours.order.quantity_mw * clearing.KW_PER_MW),
                )
            ]
            if ours is not None
            else []
        )
        outcome = clearing.clear_period(market, period, bids)
        filled_kw = outcome.fills_kw.get(ours.order_id, 0) if ours is not None else 0
        dispatch_id: int | None = None
        traded_w = 0.0
        schedule = state.schedule
        if ours is not None and filled_kw > 0:
            traded_w = filled_kw * 1000.0 * (1.0 if ours.order.side is Side.BUY else -1.0)
            dispatch = trade_dispatch(
                state.next_dispatch_id, start, rules.period, setup.layout.battery_ids, traded_w, now
            )
            schedule = schedule.add(dispatch, now)
            created.append(dispatch)
            dispatch_id = state.next_dispatch_id
        results.append(
            PeriodResult(
                record=outcome.record,
                expected_price=state.expected.get(start),
                order=ours.order if ours is not None else None,
                filled_mw=filled_kw / clearing.KW_PER_MW,
                dispatch_id=dispatch_id,
                traded_power_w=traded_w,
            )
        )
        state = replace(
            state,
            market_state=period.next_state,
            next_clearing=start + rules.period,
            schedule=schedule,
            next_dispatch_id=state.next_dispatch_id + (1 if dispatch_id is not None else 0),
        )
    return replace(state, pending=pending), tuple(results), tuple(created)


def trade_dispatch(
    dispatch_id: int,
    start: datetime,
    duration: timedelta,
    battery_ids: Sequence[int],
    power_w: float,
    now: datetime,
) -> Dispatch:
    """Return the BATTERY_POWER dispatch that executes a trade (a real client `Dispatch`).

    As the market-bid actor would create it through the dispatch producer: the delivery
    period, every battery, `{"power_w": W}` (+ charges, − discharges), created `now`.
    """
    return Dispatch(
        id=DispatchId(dispatch_id),
        type=DISPATCH_TYPE,
        start_time=start,
        duration=duration,
        target=TargetIds(*sorted(battery_ids)),
        active=True,
        dry_run=False,
        payload={"power_w": float(power_w)},
        recurrence=RecurrenceRule(),
        create_time=now,
        update_time=now,
    )


def decide_bid(
    setup: Setup, state: ControllerState, observation: Observation, forecast: Forecast
) -> tuple[ControllerState, BidRecord | None]:
    """Decide the order for the earliest open period, once per period.

    Returns the state unchanged (and no record) when that period was decided already
    or would not be delivered within the scenario.
    """
    now = observation.at
    spec, market = setup.scenario.spec, setup.market
    rules = market.rules
    target = first_open_period(now, rules.period, rules.gate_closure)
    if (state.bid_through is not None and target <= state.bid_through) or (
        target + rules.period > spec.end
    ):
        return state, None
    count = max(1, spec.bid_horizon // rules.period)
    starts = [target + k * rules.period for k in range(count)]
    weather = _forecast_weather(setup, forecast)
    responses: dict[datetime, PriceResponse] = {}
    if spec.bidding is Bidding.OPTIMAL:
        responses = expected_responses(
            market,
            state.market_state,
            state.next_clearing,
            starts[-1],
            weather,
            response_lots(setup),
        )
        prices = {start: r.price_without_us for start, r in responses.items()}
    else:
        prices = expected_prices(
            market, state.market_state, state.next_clearing, starts[-1], weather
        )
    outlook = [
        PeriodOutlook(
            start=start,
            duration=rules.period,
            expected_price=prices[start],
            production_w=-(
                forecast.pv_w[forecast.index(start)] + forecast.wind_w[forecast.index(start)]
            ),
            load_w=float(forecast.load_w[forecast.index(start)]),
            response=responses.get(start),
        )
        for start in starts
    ]
    sell_pool, buy_pool, strategy = battery_pools(setup, state, observation)
    plan: Plan | None = None
    if spec.bidding is Bidding.OPTIMAL:
        plan = plan_bids(
            outlook,
            storage_units(setup, observation),
            optimizer_settings(setup),
            now=now,
            place={target},
            committed=commitments(setup, state, now),
        )
        proposed = list(plan.orders)
    else:
        proposed = [
            *(o for o in build_orders(outlook, sell_pool, strategy) if o.side is Side.SELL),
            *(o for o in build_orders(outlook, buy_pool, strategy) if o.side is Side.BUY),
        ]
    proposed.sort(key=lambda o: o.period_start)
    submitted = next((o for o in proposed if o.period_start == target), None)
    rejected: str | None = None
    pending = dict(state.pending)
    next_order_id = state.next_order_id
    if submitted is not None:
        try:
            validate_order(order_request(submitted, setup), rules, now)
        except MarketError as error:
            rejected = str(error)
        else:
            pending[target] = PendingOrder(next_order_id, submitted)
            next_order_id += 1
    index = forecast.index(target)
    record = BidRecord(
        at=now,
        period_start=target,
        forecast_issued_at=forecast.issued_at,
        expected_price=prices[target],
        horizon_mean_price=float(np.mean([prices[s] for s in starts])),
        sell_soc_pct=sell_pool.soc_pct,
        buy_soc_pct=buy_pool.soc_pct,
        pv_forecast_w=float(forecast.pv_w[index]),
        wind_forecast_w=float(forecast.wind_w[index]),
        load_forecast_w=outlook[0].load_w,
        orders=tuple(proposed),
        submitted=submitted,
        rejected=rejected,
        plan=plan.periods if plan is not None else (),
        solve_ms=plan.solve_ms if plan is not None else None,
    )
    state = replace(
        state,
        bid_through=target,
        pending=pending,
        expected={**state.expected, target: prices[target]},
        next_order_id=next_order_id,
    )
    return state, record


def expected_prices(
    market: MarketSpec, state: MarketState, first: datetime, last: datetime, weather: Weather
) -> dict[datetime, float]:
    """Return the clearing price the market model expects for each period first..last.

    The members' batteries roll forward from `state` (the state before `first`); our
    own orders are left out (the price without us).
    """
    prices: dict[datetime, float] = {}
    start = first
    while start <= last:
        period = situation(market, state, start, weather)
        prices[start] = float(clearing.clear_period(market, period, []).record.price)
        state = period.next_state
        start += market.rules.period
    return prices


def expected_responses(
    market: MarketSpec,
    state: MarketState,
    first: datetime,
    last: datetime,
    weather: Weather,
    lots: int,
) -> dict[datetime, PriceResponse]:
    """Return how each period first..last would clear with our sell or buy of 0…`lots` lots.

    The members' book of the market model on `weather` (their batteries rolled forward
    from `state`, as in `expected_prices`), cleared with one order of ours in it: a sell
    at the renewable price (the lowest any member offers, so it is matched before the
    coal plant and takes the price the rest of the stack sets) or a buy at the price cap.
    Index 0 is the price without us (`expected_prices`).
    """
    responses: dict[datetime, PriceResponse] = {}
    start = first
    while start <= last:
        period = situation(market, state, start, weather)
        responses[start] = _book_response(
            market,
            clearing.to_kw(period.consumer_demand_mw),
            clearing.to_kw(period.shortfall_mw),
            clearing.to_kw(period.surplus_mw),
            clearing.to_kw(period.coal_available_mw),
            max(0, lots),
        )
        state = period.next_state
        start += market.rules.period
    return responses


@lru_cache(maxsize=1 << 16)
def _book_response(
    market: MarketSpec,
    consumers_kw: int,
    shortfall_kw: int,
    surplus_kw: int,
    coal_kw: int,
    lots: int,
) -> PriceResponse:
    """The response of one period's book, which depends only on these four whole-kW figures.

    (`clearing.member_orders` reads nothing else of the period.) A round asks for the
    same books again and again: 96 periods × 96 rounds a day, most of them unchanged.
    """
    period = Situation(
        start=datetime(2000, 1, 1, tzinfo=UTC),
        duration=market.rules.period,
        wind_speed_m_s=0.0,
        consumer_demand_mw=consumers_kw / clearing.KW_PER_MW,
        prosumer_load_mw=0.0,
        turbine_mw=0.0,
        battery_charge_mw=0.0,
        battery_discharge_mw=0.0,
        surplus_mw=surplus_kw / clearing.KW_PER_MW,
        shortfall_mw=shortfall_kw / clearing.KW_PER_MW,
        coal_available_mw=coal_kw / clearing.KW_PER_MW,
        next_state=MarketState(()),
    )
    lot_kw = round(float(market.rules.lot_mw) * clearing.KW_PER_MW)
    sell_limit, buy_limit = market.pricing.renewable_price, market.rules.max_price
    tables: list[tuple[tuple[float, ...], tuple[float, ...]]] = []
    for side, limit in ((clearing.Side.SELL, sell_limit), (clearing.Side.BUY, buy_limit)):
        prices: list[float] = []
        filled: list[float] = []
        for k in range(lots + 1):
            bids = [clearing.Bid(1, side, limit, k * lot_kw)] if k else []
            outcome = clearing.clear_period(market, period, bids)
            prices.append(float(outcome.record.price))
            filled.append(outcome.fills_kw.get(1, 0) / clearing.KW_PER_MW)
        tables.append((tuple(prices), tuple(filled)))
    (sell_price, sell_filled), (buy_price, buy_filled) = tables
    return PriceResponse(float(market.rules.lot_mw), sell_price, sell_filled, buy_price, buy_filled)


def response_lots(setup: Setup) -> int:
    """How many lots a price response covers: the largest order (`max_volume`)."""
    lot = float(setup.market.rules.lot_mw)
    return max(1, math.floor(setup.scenario.spec.strategy.max_volume_mw / lot + 1e-9))


def battery_pools(
    setup: Setup, state: ControllerState, observation: Observation
) -> tuple[BatteryPool, BatteryPool, Strategy]:
    """Return the pool to sell from, the pool to buy into, and the effective strategy.

    See the module docstring: committed energy counted at its worst for each side, the
    SoC window narrowed by the taper, power from the present bounds.
    """
    layout, now = setup.layout, observation.at
    specs = layout.battery_specs
    capacity = layout.capacity_wh

    def weighted(values: Mapping[int, float]) -> float:
        return math.fsum(specs[b].capacity_wh * values[b] for b in specs) / capacity

    lower = weighted({b: s.soc_bounds_pct.lower + s.soc_taper_pct for b, s in specs.items()})
    upper = weighted({b: s.soc_bounds_pct.upper - s.soc_taper_pct for b, s in specs.items()})
    efficiency = weighted(
        {b: layout.inverter_specs[layout.inverter_of[b]].efficiency for b in specs}
    )
    sell_wh, buy_wh = committed_energy_wh(commitments(setup, state, now), now)
    stored = math.fsum(observation.energy_wh.values())
    units = [
        u for unit in observation.units.values() if not isinstance(u := to_battery_unit(unit), str)
    ]
    reach = pool_bounds(units).inclusion if units else Range(0.0, 0.0)

    def pool(energy_wh: float) -> BatteryPool:
        return BatteryPool(
            soc_pct=100.0 * energy_wh / capacity,
            capacity_wh=capacity,
            soc_upper_pct=upper,
            charge_max_w=max(0.0, reach.upper),
            discharge_max_w=max(0.0, -reach.lower),
            efficiency=efficiency,
        )

    strategy = setup.scenario.spec.strategy
    strategy = replace(strategy, reserve_soc_pct=max(strategy.reserve_soc_pct, lower))
    sell = pool(stored - sell_wh / efficiency)
    buy = pool(stored + buy_wh * efficiency)
    return sell, buy, strategy


def storage_units(setup: Setup, observation: Observation) -> list[StorageUnit]:
    """The distribution's units as the optimizer sees them (see `trading.storage`).

    Per battery inverter: SoC and SoC bounds as the distribution normalises them, the
    floor at the reserve (raised to the lower bound + taper, where the power fades), the
    ceiling at the upper bound − taper, the present power bounds, the inverter's
    efficiency. A unit the distribution cannot use is left out.
    """
    layout = setup.layout
    reserve = setup.scenario.spec.strategy.reserve_soc_pct
    units = []
    for inverter_id, unit in observation.units.items():
        aggregated = to_battery_unit(unit)
        if isinstance(aggregated, str):
            continue
        specs = [layout.battery_specs[b] for b in layout.batteries_of[inverter_id]]
        units.append(
            StorageUnit(
                unit_id=inverter_id,
                capacity_wh=aggregated.capacity_wh,
                soc_pct=aggregated.soc_pct,
                soc_lower_pct=aggregated.soc_lower_pct,
                soc_upper_pct=aggregated.soc_upper_pct,
                floor_pct=max(
                    max(reserve, s.soc_bounds_pct.lower + s.soc_taper_pct) for s in specs
                ),
                ceiling_pct=min(s.soc_bounds_pct.upper - s.soc_taper_pct for s in specs),
                charge_max_w=max(0.0, max(r.upper for r in aggregated.allowed)),
                discharge_max_w=max(0.0, -min(r.lower for r in aggregated.allowed)),
                efficiency=layout.inverter_specs[inverter_id].efficiency,
            )
        )
    return units


SAFETY_MARGIN_SHARE: Final = 0.002
"""Of the batteries' capacity, kept clear of the pool's floor and ceiling by the optimizer."""


def optimizer_settings(setup: Setup) -> Settings:
    """The optimizer's parameters from the scenario's strategy and the market's rules."""
    spec, rules = setup.scenario.spec, setup.market.rules
    strategy = spec.strategy
    return Settings(
        degradation_eur_per_mwh=spec.degradation_eur_per_mwh,
        max_volume_mw=strategy.max_volume_mw,
        min_quantity_mw=strategy.min_quantity_mw,
        step_mw=float(rules.lot_mw),
        max_import_w=strategy.max_import_w,
        max_export_w=strategy.max_export_w,
        safety_margin_wh=SAFETY_MARGIN_SHARE * setup.layout.capacity_wh,
        min_price=float(rules.min_price),
        max_price=float(rules.max_price),
    )


def commitments(setup: Setup, state: ControllerState, now: datetime) -> list[Committed]:
    """Return what is still to deliver: for the optimizer, and counted against the pools.

    The dispatches' remaining run windows (traded: they will run) and the orders not
    cleared yet (open: they may fill, or not). The market-bid actor reads the same from
    its ledger of periods and orders; both count it with `outlook.committed_energy_wh`.
    """
    found: list[Committed] = []
    horizon = setup.scenario.spec.end + timedelta(days=1)
    for dispatch in state.schedule.dispatches:
        try:
            power_w = parse_battery_power(int(dispatch.id), dispatch.payload).power_w
        except PayloadError:
            continue
        for begin, end in windows(dispatch, now, horizon):
            found.append(Committed(begin, end - begin, traded_w=power_w))
    found += [
        Committed(p.order.period_start, p.order.duration, open_w=p.order.battery_power_w)
        for p in state.pending.values()
    ]
    return found


def battery_commands(
    setup: Setup, schedule: DispatchSchedule, observation: Observation
) -> StepDecision:
    """Turn the dispatches running now into inverter commands.

    The BatteryPowerActor's own pieces: only BATTERY_POWER dispatches, each read by
    `battery_power.decide.read_dispatch` (payload, target, whole inverter groups),
    overlaps decided by `assign` (the newest drives), dry runs command nothing; then
    `plan()` spreads each target with `SocBalancing`, as the distributor does. Every
    inverter nobody drives is told 0 W.
    """
    layout, now = setup.layout, observation.at
    notes: list[str] = []
    running: dict[int, RunningDispatch] = {}
    for dispatch in schedule.running(now):
        if dispatch.type != DISPATCH_TYPE:
            continue
        try:
            target = read_dispatch(dispatch, layout.site_batteries, layout.battery_groups)
        except (PayloadError, TargetError) as error:
            notes.append(str(error))
            continue
        running[int(dispatch.id)] = RunningDispatch(
            int(dispatch.id),
            dispatch.create_time,
            target.batteries,
            target.power_w,
            dispatch.dry_run,
        )
    commands = dict.fromkeys(layout.inverter_ids, 0.0)
    target_w = excess_w = 0.0
    for dispatch_id, batteries in assign(running.values()).owned.items():
        wanted = running[dispatch_id]
        if wanted.dry_run:
            continue
        inverters = sorted({layout.inverter_of[b] for b in batteries})
        decided = plan(wanted.power_w, [observation.units[i] for i in inverters], setup.algorithm)
        target_w += wanted.power_w
        if isinstance(decided, Refusal):
            notes.append(f"dispatch {dispatch_id}: {decided.reason}")
            excess_w += wanted.power_w
            continue
        commands.update(decided.commands)
        excess_w += decided.excess_w
    return StepDecision(
        commands=commands,
        target_w=target_w,
        excess_w=excess_w,
        running=tuple(sorted(running)),
        notes=tuple(notes),
    )


def order_request(order: Order, setup: Setup) -> OrderRequest:
    """Return `order` as the market's order rules read an API request."""
    rules = setup.market.rules
    side = _market_side(order.side)
    return OrderRequest(
        area=DeliveryArea(setup.scenario.site.microgrid.delivery_area),
        period_start=order.period_start,
        duration=order.duration,
        duration_name=f"DELIVERY_DURATION_{order.duration.total_seconds() / 60:g}",
        order_type="ORDER_TYPE_LIMIT",
        side=side,
        side_name=f"MARKET_SIDE_{side.value}",
        price_amount=str(order.limit_price),
        currency=rules.currency,
        quantity_mw=str(order.quantity_mw),
    )


def _market_side(side: Side) -> clearing.Side:
    return clearing.Side.BUY if side is Side.BUY else clearing.Side.SELL


def _local(setup: Setup, moment: datetime) -> datetime:
    return moment.astimezone(setup.scenario.spec.start.tzinfo)


def _forecast_weather(setup: Setup, forecast: Forecast) -> Weather:
    if setup.scenario.spec.market_wind is MarketWind.FILE:
        return setup.market_weather
    return Weather(forecast.hub_wind_at, turbine_fraction)


# ---------------------------------------------------------------------- building a run


def build_setup(scenario: Scenario) -> Setup:
    """Read the layout, pick the weather dataset, compute the actual production.

    Raises:
        ScenarioError: a site the loop cannot run.
    """
    spec, site = scenario.spec, scenario.site
    layout = SiteLayout.of(site)
    location = GeoLocation(
        spec.latitude if spec.latitude is not None else site.microgrid.latitude,
        spec.longitude if spec.longitude is not None else site.microgrid.longitude,
        site.microgrid.country_code,
    )
    dataset = nearest_dataset(location, bundled_datasets())
    step_s = spec.step.total_seconds()
    # One step before and a day after, so interpolation and horizons never run out.
    count = int(spec.duration / spec.step) + int(timedelta(days=1) / spec.step) + 2
    epoch = spec.start.timestamp() + (np.arange(count, dtype=np.float64) - 1) * step_s
    measured = actual_weather(dataset, location, epoch, step_s=step_s)
    actual = ActualProduction(
        epoch_s=epoch,
        pv_w=_pv(
            layout,
            measured.ghi_wm2,
            measured.temperature_c,
            epoch + step_s / 2,
            location,
            measured.wind_speed_10m_ms,
            measured.albedo,
        ),
        wind_w=_wind(layout, measured.wind_speed_10m_ms),
        temperature_c=measured.temperature_c,
        hub_wind_ms=wind_speed_at_height(measured.wind_speed_10m_ms, SMALL_TURBINE_HUB_HEIGHT_M),
    )
    market_weather = (
        weather_from_spec(scenario.market)
        if spec.market_wind is MarketWind.FILE
        else Weather(actual.hub_wind_at, turbine_fraction)
    )
    return Setup(scenario, layout, location, dataset, actual, market_weather)


def make_forecast(setup: Setup, issued_at: datetime, first: datetime, count: int) -> Forecast:
    """Return the forecast issued at `issued_at` for `count` periods from `first` (pure)."""
    spec = setup.scenario.spec
    period = setup.market.rules.period
    period_s = period.total_seconds()
    starts = first.timestamp() + np.arange(count, dtype=np.float64) * period_s
    mids = starts + period_s / 2
    issued_s = issued_at.timestamp()
    means = forecast_weather(
        setup.dataset, setup.location, issued_s, starts, step_s=period_s, seed=spec.seed
    )
    at_mid = forecast_weather(setup.dataset, setup.location, issued_s, mids, seed=spec.seed)
    return Forecast(
        issued_at=issued_at,
        first_start=first,
        period=period,
        pv_w=_pv(
            setup.layout,
            means.ghi_wm2,
            at_mid.temperature_c,
            mids,
            setup.location,
            at_mid.wind_speed_10m_ms,
            at_mid.albedo,
        ),
        wind_w=_wind(setup.layout, at_mid.wind_speed_10m_ms),
        mid_epoch_s=mids,
        hub_wind_ms=wind_speed_at_height(at_mid.wind_speed_10m_ms, SMALL_TURBINE_HUB_HEIGHT_M),
        load_w=forecast_load_w(
            [
                load_w(setup.layout, _local(setup, first + k * period + period / 2))
                for k in range(count)
            ],
            load_errors(spec.seed, issued_s, mids - issued_s),
        ),
    )


def forecast_provider(setup: Setup) -> Callable[[datetime], Forecast]:
    """Return `now → the latest forecast issued by now`, memoised per issue time.

    A forecast is issued every `forecast.issue_interval` (on the UTC grid) and reaches
    far enough for every bid until the next one.
    """
    spec, rules = setup.scenario.spec, setup.market.rules
    interval = spec.forecast_interval
    reach = interval + rules.gate_closure + spec.bid_horizon + 2 * rules.period
    count = math.ceil(reach / rules.period) + 1

    @lru_cache(maxsize=4)
    def issued(issued_at: datetime) -> Forecast:
        return make_forecast(setup, issued_at, period_floor(issued_at, rules.period), count)

    def latest(now: datetime) -> Forecast:
        return issued(period_floor(now, interval))

    return latest


def day_ahead(setup: Setup) -> tuple[ForecastPoint, ...]:
    """The whole day as seen at the start: one forecast, the market model's prices."""
    spec, market = setup.scenario.spec, setup.market
    period = market.rules.period
    count = int(spec.duration / period)
    forecast = make_forecast(setup, spec.start, spec.start, count)
    prices = expected_prices(
        market,
        initial_state(market),
        spec.start,
        spec.start + (count - 1) * period,
        _forecast_weather(setup, forecast),
    )
    return tuple(
        ForecastPoint(
            start=start,
            expected_price=prices[start],
            pv_w=float(forecast.pv_w[k]),
            wind_w=float(forecast.wind_w[k]),
            load_w=float(forecast.load_w[k]),
        )
        for k, start in enumerate(sorted(prices))
    )


def _pv(
    layout: SiteLayout,
    ghi: Array,
    temperature: Array,
    epoch: Array,
    location: GeoLocation,
    wind_10m: Array,
    albedo: float,
) -> Array:
    if layout.pv_peak_w <= 0:
        return np.zeros_like(epoch)
    return pv_power_series_w(
        ghi, temperature, epoch, location, layout.pv_peak_w, wind_speed_ms=wind_10m, albedo=albedo
    )


def _wind(layout: SiteLayout, wind_10m: Array) -> Array:
    hub = wind_speed_at_height(wind_10m, SMALL_TURBINE_HUB_HEIGHT_M)
    return wind_power_series_w(hub, layout.wind_rated_w)


# ---------------------------------------------------------------------- the shell


def observe(model: SiteModel, layout: SiteLayout, now: datetime) -> Observation:
    """Read the batteries and inverters from the model (what telemetry would show)."""
    units: dict[int, Unit] = {}
    energy: dict[int, float] = {}
    soc: dict[int, float] = {}
    for inverter_id in layout.inverter_ids:
        states = []
        for battery_id in layout.batteries_of[inverter_id]:
            spec = layout.battery_specs[battery_id]
            soc[battery_id] = model.soc_pct(battery_id)
            energy[battery_id] = model.energy_wh(battery_id)
            states.append(
                BatteryState(
                    battery_id,
                    soc[battery_id],
                    spec.soc_bounds_pct.lower,
                    spec.soc_bounds_pct.upper,
                    spec.capacity_wh,
                    inclusion_exclusion(
                        battery_power_bounds(spec, soc[battery_id]), spec.exclusion
                    ),
                )
            )
        units[inverter_id] = Unit(
            inverter_id=inverter_id,
            batteries=tuple(states),
            inverter_bounds=model.active_bounds(inverter_id, now),
            resolution_w=layout.inverter_specs[inverter_id].resolution_w,
            availability=Availability.WORKING,
            measured_power_w=model.ac_power_w(inverter_id),
        )
    return Observation(now, units, energy, soc)


def apply_commands(
    model: SiteModel, commands: Mapping[int, float], now: datetime, lifetime_s: int
) -> list[CommandCheck]:
    """Send each command to the model; check the applied power against its bounds."""
    checks = []
    for inverter_id, power_w in sorted(commands.items()):
        try:
            record = model.set_active_power(inverter_id, power_w, now, lifetime_s)
        except SimError as error:
            checks.append(CommandCheck(now, inverter_id, power_w, 0.0, True, str(error)))
            continue
        within = record.applied_w == 0.0 or allows(record.bounds, record.applied_w)
        checks.append(CommandCheck(now, inverter_id, power_w, record.applied_w, within))
    return checks


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
        for note in decision.notes:
            _LOG.warning("scenario_dispatch_not_executed", at=now.isoformat(), reason=note)
        commands += apply_commands(model, decision.commands, now, setup.command_lifetime_s)
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
                target_w=decision.target_w,
                commanded_w=math.fsum(decision.commands.values()),
                excess_w=decision.excess_w,
                pv_w=math.fsum(moved[c] for c in layout.pv_ids),
                wind_w=math.fsum(moved[c] for c in layout.wind_ids),
                load_w=math.fsum(moved[c] for c in layout.load_ids),
                grid_w=moved[layout.grid_id],
                running=decision.running,
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


__all__ = [
    "DISPATCH_TYPE",
    "ActualProduction",
    "ControllerState",
    "Forecast",
    "Observation",
    "PendingOrder",
    "ScenarioError",
    "Setup",
    "SiteLayout",
    "StepDecision",
    "apply_commands",
    "battery_commands",
    "battery_pools",
    "build_setup",
    "clear_due",
    "commitments",
    "control_step",
    "day_ahead",
    "decide_bid",
    "equivalent_weather",
    "expected_prices",
    "expected_responses",
    "forecast_provider",
    "initial_controller_state",
    "load_w",
    "make_forecast",
    "observe",
    "optimizer_settings",
    "order_request",
    "response_lots",
    "run_scenario",
    "speed_for_fraction",
    "storage_units",
    "trade_dispatch",
    "turbine_fraction",
    "with_delivery",
]
