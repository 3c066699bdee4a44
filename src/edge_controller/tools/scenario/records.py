"""What a scenario run records: per control step, per delivery period, per bid, per command.

Plain frozen dataclasses, written by `run` and read by `report`. Powers are watts,
passive sign convention (+ charges a battery or is consumed, − discharges or is
produced); prices EUR/MWh; times timezone-aware.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from frequenz.client.dispatch.types import Dispatch

from edge_controller.servers.market.clearing import PeriodRecord
from edge_controller.tools.scenario.file import Scenario
from edge_controller.trading.bids import Order
from edge_controller.trading.optimizer import PlannedPeriod
from edge_controller.weather.messages import GeoLocation


@dataclass(frozen=True, slots=True)
class StepRecord:
    """One control step `[at, at + step)`: what was decided and what the site did.

    SoCs are read at `at`, before the step; powers are averages over the step, from the
    energy each component moved (so they sum to energies exactly).
    """

    at: datetime
    soc_pct: tuple[float, ...]
    """Per battery, in `ScenarioResult.battery_ids` order."""
    inverter_power_w: tuple[float, ...]
    """Per battery inverter, in `ScenarioResult.inverter_ids` order (AC)."""
    battery_power_w: float
    """All battery inverters together (AC)."""
    target_w: float
    """What the running dispatches ask of the batteries (0 W when none runs)."""
    commanded_w: float
    """The sum of the inverter commands the distribution planned."""
    excess_w: float
    """Asked but not placeable this step (bounds, SoC taper, resolution)."""
    pv_w: float
    wind_w: float
    load_w: float
    grid_w: float
    """At the grid connection: + imports, − exports."""
    running: tuple[int, ...]
    """Ids of the dispatches running during the step."""


@dataclass(frozen=True, slots=True)
class CommandCheck:
    """One inverter command sent to the simulator, checked against the bounds in force."""

    at: datetime
    inverter_id: int
    requested_w: float
    applied_w: float
    """After the inverter's resolution; 0 W when refused."""
    within_bounds: bool
    """The applied power lies within the bounds the simulator had in force (0 W always does)."""
    refused: str | None = None
    """The simulator's refusal, if any."""


@dataclass(frozen=True, slots=True)
class BidRecord:
    """One bidding decision: for the delivery period `period_start`, at time `at`."""

    at: datetime
    period_start: datetime
    forecast_issued_at: datetime
    expected_price: float
    """The expected clearing price of `period_start` (the market model on the forecast)."""
    horizon_mean_price: float
    """Mean expected price over the bidding horizon: the thresholds sit around it."""
    sell_soc_pct: float
    """The pool's SoC counted for selling: now, minus every committed discharge."""
    buy_soc_pct: float
    """The pool's SoC counted for buying: now, plus every committed charge."""
    pv_forecast_w: float
    wind_forecast_w: float
    load_forecast_w: float
    orders: tuple[Order, ...]
    """What the bid builder proposed over the whole horizon."""
    submitted: Order | None
    """The order placed for `period_start` (the others are decided again later)."""
    rejected: str | None = None
    """The market's refusal of `submitted`, if any."""
    plan: tuple[PlannedPeriod, ...] = ()
    """The optimizer's plan over the horizon at this round (empty: threshold strategy)."""
    solve_ms: float | None = None
    """How long the optimizer took (None: threshold strategy)."""


@dataclass(frozen=True, slots=True)
class PeriodResult:
    """One delivery period cleared: price, our order and its fill, and what was delivered."""

    record: PeriodRecord
    """The market's record (price, demand, production, coal, carbon)."""
    expected_price: float | None
    """The price expected when we bid for it (None: no bidding decision for it)."""
    order: Order | None
    """Our order in the auction (None: none, or refused)."""
    filled_mw: float
    dispatch_id: int | None
    """The BATTERY_POWER dispatch created for the trade."""
    traded_power_w: float
    """The battery power the trade asks (+ bought/charge, − sold/discharge), 0 W if none."""
    delivered_power_w: float = math.nan
    """Average battery power over the period (AC), from the run's steps."""

    @property
    def start(self) -> datetime:
        """When delivery starts."""
        return self.record.start

    @property
    def duration(self) -> timedelta:
        """How long delivery lasts."""
        return self.record.duration

    @property
    def price(self) -> float:
        """The clearing price, EUR/MWh."""
        return float(self.record.price)

    @property
    def hours(self) -> float:
        """The period's length in hours."""
        return self.duration.total_seconds() / 3600.0


@dataclass(frozen=True, slots=True)
class ForecastPoint:
    """The day-ahead view of one period: the forecast issued at the scenario's start."""

    start: datetime
    expected_price: float
    pv_w: float
    wind_w: float
    load_w: float


@dataclass(frozen=True, slots=True)
class ScenarioResult:
    """Everything a run recorded."""

    scenario: Scenario
    location: GeoLocation
    dataset: str
    """The measured-weather dataset that served the location."""
    weather_station: str
    """Where that dataset was measured (`Dataset.name`, e.g. "Greensboro, NC (USAF 723170)")."""
    battery_ids: tuple[int, ...]
    inverter_ids: tuple[int, ...]
    steps: tuple[StepRecord, ...]
    periods: tuple[PeriodResult, ...]
    bids: tuple[BidRecord, ...]
    commands: tuple[CommandCheck, ...]
    dispatches: tuple[Dispatch, ...]
    """Every dispatch created, in creation order."""
    day_ahead: tuple[ForecastPoint, ...]
    final_soc_pct: tuple[float, ...]
    runtime_s: float
    """Wall-clock seconds the run took (the report is not included)."""


__all__ = [
    "BidRecord",
    "CommandCheck",
    "ForecastPoint",
    "PeriodResult",
    "ScenarioResult",
    "StepRecord",
]
