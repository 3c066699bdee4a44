"""What the bidder knows of the coming periods: forecast production and load.

A forecast is issued every `forecast.issue_interval` (on the UTC grid) with the seeded
weather error of `weather.forecast`, run through the same production models as the
actual weather (`production`), and the site's load profile with the seeded error of
`load_forecast`. `forecast_provider` hands the loop the latest one issued by now;
`day_ahead` is the whole day as seen at the start (for the report), with the prices
the market model expects on it (`market_outlook`). Powers per delivery period, W:
production ≤ 0, load ≥ 0.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache

import numpy as np

from edge_controller.servers.market.model import Weather, initial_state
from edge_controller.tools.scenario.errors import ScenarioError
from edge_controller.tools.scenario.file import MarketWind
from edge_controller.tools.scenario.layout import load_w
from edge_controller.tools.scenario.load_forecast import forecast_load_w, load_errors
from edge_controller.tools.scenario.market_outlook import expected_prices
from edge_controller.tools.scenario.production import (
    Array,
    pv_series_w,
    turbine_fraction,
    wind_series_w,
)
from edge_controller.tools.scenario.records import ForecastPoint
from edge_controller.tools.scenario.setup import Setup
from edge_controller.trading.periods import period_floor
from edge_controller.weather.forecast import forecast_weather
from edge_controller.weather.production import SMALL_TURBINE_HUB_HEIGHT_M
from edge_controller.weather.wind import wind_speed_at_height


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
        pv_w=pv_series_w(
            setup.layout,
            means.ghi_wm2,
            at_mid.temperature_c,
            mids,
            setup.location,
            at_mid.wind_speed_10m_ms,
            at_mid.albedo,
        ),
        wind_w=wind_series_w(setup.layout, at_mid.wind_speed_10m_ms),
        mid_epoch_s=mids,
        hub_wind_ms=wind_speed_at_height(at_mid.wind_speed_10m_ms, SMALL_TURBINE_HUB_HEIGHT_M),
        load_w=forecast_load_w(
            [
                load_w(setup.layout, local_time(setup, first + k * period + period / 2))
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
        forecast_market_weather(setup, forecast),
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


def forecast_market_weather(setup: Setup, forecast: Forecast) -> Weather:
    """The market members' weather as the bidder expects it.

    The market file's own wind is known exactly; measured wind is forecast as ours is.
    """
    if setup.scenario.spec.market_wind is MarketWind.FILE:
        return setup.market_weather
    return Weather(forecast.hub_wind_at, turbine_fraction)


def local_time(setup: Setup, moment: datetime) -> datetime:
    """`moment` in the scenario start's UTC offset: the load profiles' hours read it."""
    return moment.astimezone(setup.scenario.spec.start.tzinfo)


__all__ = [
    "Forecast",
    "day_ahead",
    "forecast_market_weather",
    "forecast_provider",
    "local_time",
    "make_forecast",
]
