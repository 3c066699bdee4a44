"""The site's production from the measured weather: what the simulated PV and wind give.

As the simulator does with `[weather] source = "measured"` (`sim.measured_weather`),
the scenario computes the actual production with the shared models
(`weather.production`: pvlib for PV, the windpowerlib curve for wind) from the
measured weather, once per run and control step (`actual_production`); the loop then
sets the simulated site's weather each step to the *equivalent* irradiance and wind
speed, so the simulated components produce exactly that (the grid meter sums it). The
site file's weather values are therefore not used; with several turbines of different
curves, the first turbine's curve sets the speed. The forecasts (`forecasts`) run the
same models on forecast weather.

Powers ≤ 0 (produced), passive sign convention.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import numpy.typing as npt

from edge_controller.tools.scenario.file import ScenarioSpec
from edge_controller.tools.scenario.layout import SiteLayout
from edge_controller.weather.data import Dataset, actual_weather
from edge_controller.weather.messages import GeoLocation
from edge_controller.weather.production import (
    SMALL_TURBINE_HUB_HEIGHT_M,
    pv_power_series_w,
    wind_power_series_w,
    wind_power_w,
)
from edge_controller.weather.wind import wind_speed_at_height

Array = npt.NDArray[np.float64]


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


def turbine_fraction(speed_m_s: float) -> float:
    """The shared wind model's output at a hub-height speed, as a fraction of rated power."""
    return -wind_power_w(speed_m_s, 1.0)


def actual_production(
    layout: SiteLayout, spec: ScenarioSpec, location: GeoLocation, dataset: Dataset
) -> ActualProduction:
    """The measured weather at `location` over the run, and the production it gives.

    One step before the start and a day after the end, so interpolation and the bid
    horizons never run out.
    """
    step_s = spec.step.total_seconds()
    count = int(spec.duration / spec.step) + int(timedelta(days=1) / spec.step) + 2
    epoch = spec.start.timestamp() + (np.arange(count, dtype=np.float64) - 1) * step_s
    measured = actual_weather(dataset, location, epoch, step_s=step_s)
    return ActualProduction(
        epoch_s=epoch,
        pv_w=pv_series_w(
            layout,
            measured.ghi_wm2,
            measured.temperature_c,
            epoch + step_s / 2,
            location,
            measured.wind_speed_10m_ms,
            measured.albedo,
        ),
        wind_w=wind_series_w(layout, measured.wind_speed_10m_ms),
        temperature_c=measured.temperature_c,
        hub_wind_ms=wind_speed_at_height(measured.wind_speed_10m_ms, SMALL_TURBINE_HUB_HEIGHT_M),
    )


def pv_series_w(
    layout: SiteLayout,
    ghi: Array,
    temperature: Array,
    epoch: Array,
    location: GeoLocation,
    wind_10m: Array,
    albedo: float,
) -> Array:
    """The site's PV production (W ≤ 0) at each instant of `epoch`; zeros without PV."""
    if layout.pv_peak_w <= 0:
        return np.zeros_like(epoch)
    return pv_power_series_w(
        ghi, temperature, epoch, location, layout.pv_peak_w, wind_speed_ms=wind_10m, albedo=albedo
    )


def wind_series_w(layout: SiteLayout, wind_10m: Array) -> Array:
    """The site's wind production (W ≤ 0) for each 10 m wind speed, at hub height."""
    hub = wind_speed_at_height(wind_10m, SMALL_TURBINE_HUB_HEIGHT_M)
    return wind_power_series_w(hub, layout.wind_rated_w)


__all__ = [
    "ActualProduction",
    "Array",
    "actual_production",
    "pv_series_w",
    "turbine_fraction",
    "wind_series_w",
]
