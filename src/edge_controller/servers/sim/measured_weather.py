"""Measured weather for the simulator: the constant weather that reproduces real production.

The simulator's physics (`model.SiteModel`) turns `WeatherSpec` into production with
simple rules: each PV inverter makes `peak × min(1, irradiance / 1000)`, each wind
turbine follows its site-file power curve. The project's production models
(`edge_controller.weather.production`: `pvlib` for PV, a `windpowerlib` curve for
wind) are what the forecaster uses. To make the simulator produce what those models
give for the *actual* (measured) weather, without a second physics, this module
computes that production at one moment and inverts the simulator's rules::

    measured weather at t ──► pv_power_series_w, wind_power_series_w ──► PV W, wind W
    (weather.data: NREL TMY3 at        (weather.production)                  │
     the microgrid's location)                                               ▼
                                 equivalent_weather: irradiance = 1000 × PV W / Σ peak,
                                 wind speed = the first turbine's curve inverted at
                                 wind W / Σ rated, temperature as measured
                                                                             │
                                                                             ▼
                                           WeatherSpec (constant) ──► SiteModel

Used by the `sim` command when the site file says `[weather] source = "measured"`
(`SimService` refreshes the model's weather every update interval of simulation
time) and by the scenario day loop (once per control step).

**Moments.** PV at the sun's position and the measured irradiance *at* the moment
(instantaneous, not averaged); wind and temperature at the moment; the turbines see
the 10 m wind lifted to `SMALL_TURBINE_HUB_HEIGHT_M`.

**Limits.** The PV fraction is the same for every PV inverter (the shared PV model
scales with peak power), so each one makes its share exactly. All turbines see one
wind speed: with turbines of different curves, the first turbine's curve sets it and
the others make what their curve gives at that speed. A weather station
(`[[sensors]]`) reports the *equivalent* irradiance and wind speed, not the measured
GHI and wind.

Pure, apart from reading the bundled weather files once (cached by
`weather.data.bundled_datasets`). `edge_controller.weather` is imported inside the
functions that need it: `pvlib` and the datasets take about a second to load, and
the simulator must start as fast as before when its weather comes from the file.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import pairwise
from typing import TYPE_CHECKING, Protocol

from edge_controller.servers.sim.site import SiteSpec, WeatherSource, WeatherSpec
from edge_controller.servers.sim.site_details import PvSpec, WindSpec

if TYPE_CHECKING:
    from edge_controller.weather.messages import GeoLocation

NO_WIND_CURVE: tuple[tuple[float, float], ...] = ((0.0, 0.0), (1.0, 0.0))
"""The curve of a site without turbines: nothing at any speed."""


class ProducerLayout(Protocol):
    """What `equivalent_weather` needs to know about a site's producers.

    `Producers` is one; the scenario's `SiteLayout` is another.
    """

    @property
    def pv_peak_w(self) -> float:
        """All PV inverters' peak power, W ≥ 0."""
        ...

    @property
    def wind_rated_w(self) -> float:
        """All wind turbines' rated power, W ≥ 0."""
        ...

    @property
    def wind_curve(self) -> tuple[tuple[float, float], ...]:
        """(wind speed m/s, fraction of rated power) of the turbine that sets the speed."""
        ...


@dataclass(frozen=True, slots=True)
class Producers:
    """A site's PV and wind capacity, read once from its spec."""

    pv_peak_w: float
    wind_rated_w: float
    wind_curve: tuple[tuple[float, float], ...]
    """The first turbine's curve (`NO_WIND_CURVE` without turbines)."""

    @classmethod
    def of(cls, site: SiteSpec) -> Producers:
        """Sum the site's PV peak and wind rated power; take the first turbine's curve."""
        pv = [c.details for c in site.components if isinstance(c.details, PvSpec)]
        wind = [c.details for c in site.components if isinstance(c.details, WindSpec)]
        return cls(
            pv_peak_w=math.fsum(d.peak_power_w for d in pv),
            wind_rated_w=math.fsum(d.rated_power_w for d in wind),
            wind_curve=wind[0].power_curve if wind else NO_WIND_CURVE,
        )


@dataclass(frozen=True, slots=True)
class MeasuredProduction:
    """The measured weather at one moment and what the shared models produce from it.

    Powers follow the passive sign convention: produced power is ≤ 0 W.
    """

    moment: datetime
    dataset_key: str
    """Which bundled dataset served the location (`weather.data`)."""
    ghi_wm2: float
    temperature_c: float
    wind_speed_10m_ms: float
    hub_wind_ms: float
    """The 10 m wind at the small turbines' hub height."""
    pv_w: float
    """All PV together, W ≤ 0."""
    wind_w: float
    """All turbines together, W ≤ 0."""


def site_location(site: SiteSpec) -> GeoLocation:
    """Return the microgrid's location, as the site file's `[microgrid]` gives it."""
    from edge_controller.weather.messages import GeoLocation

    microgrid = site.microgrid
    return GeoLocation(microgrid.latitude, microgrid.longitude, microgrid.country_code)


def measured_production(
    producers: ProducerLayout, location: GeoLocation, moment: datetime
) -> MeasuredProduction:
    """Return the measured weather at `location` and `moment`, and the production from it.

    Powers are ≤ 0 W (passive sign convention). One call is one production
    computation (about a millisecond once the weather files are loaded).

    Raises:
        ValueError: a naive `moment`.
        DatasetError: the bundled weather files cannot be read.
    """
    if moment.tzinfo is None:
        raise ValueError(f"moment: expected a timezone-aware time, got {moment!r}")
    import numpy as np

    from edge_controller.weather.data import actual_weather, bundled_datasets, nearest_dataset
    from edge_controller.weather.production import (
        SMALL_TURBINE_HUB_HEIGHT_M,
        pv_power_series_w,
        wind_power_series_w,
    )
    from edge_controller.weather.wind import wind_speed_at_height

    dataset = nearest_dataset(location, bundled_datasets())
    epoch_s = np.array([moment.timestamp()], dtype=np.float64)
    weather = actual_weather(dataset, location, epoch_s)
    hub_wind = wind_speed_at_height(weather.wind_speed_10m_ms, SMALL_TURBINE_HUB_HEIGHT_M)
    pv_w = 0.0
    if producers.pv_peak_w > 0:
        pv_w = float(
            pv_power_series_w(
                weather.ghi_wm2,
                weather.temperature_c,
                epoch_s,
                location,
                producers.pv_peak_w,
                wind_speed_ms=weather.wind_speed_10m_ms,
                albedo=weather.albedo,
            )[0]
        )
    wind_w = 0.0
    if producers.wind_rated_w > 0:
        wind_w = float(wind_power_series_w(hub_wind, producers.wind_rated_w)[0])
    return MeasuredProduction(
        moment=moment,
        dataset_key=dataset.key,
        ghi_wm2=float(weather.ghi_wm2[0]),
        temperature_c=float(weather.temperature_c[0]),
        wind_speed_10m_ms=float(weather.wind_speed_10m_ms[0]),
        hub_wind_ms=float(hub_wind[0]),
        pv_w=pv_w,
        wind_w=wind_w,
    )


def measured_weather(site: SiteSpec, location: GeoLocation, moment: datetime) -> WeatherSpec:
    """Return the constant weather that makes `site`'s model produce the measured production.

    The production is that of the shared models (`measured_production`) for the
    measured weather at `location` and `moment`; `SiteModel` then makes that PV and
    wind power (see the module docstring for the limits).

    Raises:
        ValueError: a naive `moment`.
        DatasetError: the bundled weather files cannot be read.
    """
    producers = Producers.of(site)
    production = measured_production(producers, location, moment)
    return equivalent_weather(
        producers, production.pv_w, production.wind_w, production.temperature_c
    )


def equivalent_weather(
    layout: ProducerLayout, pv_w: float, wind_w: float, temperature_c: float
) -> WeatherSpec:
    """Return the constant weather that makes `SiteModel` produce `pv_w` and `wind_w`.

    `pv_w` and `wind_w` are the site's whole PV and wind power (W, passive sign
    convention: ≤ 0 when producing). The model's PV makes `peak × min(1, irradiance
    / 1000)` and its turbines follow their curves; this inverts both (the wind with
    `layout.wind_curve`). The result's `source` is MEASURED: it stands for measured
    weather.
    """
    pv_fraction = -pv_w / layout.pv_peak_w if layout.pv_peak_w > 0 else 0.0
    wind_fraction = -wind_w / layout.wind_rated_w if layout.wind_rated_w > 0 else 0.0
    return WeatherSpec(
        irradiance_w_m2=(1000.0 * min(1.0, max(0.0, pv_fraction)),),
        wind_speed_m_s=(speed_for_fraction(layout.wind_curve, wind_fraction),),
        temperature_c=(temperature_c,),
        source=WeatherSource.MEASURED,
    )


def speed_for_fraction(curve: Sequence[tuple[float, float]], fraction: float) -> float:
    """Return the lowest wind speed at which `curve` gives `fraction` of rated power.

    0 m/s for 0 (or less); the speed of the curve's maximum for more than it gives.
    """
    if fraction <= 0:
        return 0.0
    for (speed_a, frac_a), (speed_b, frac_b) in pairwise(curve):
        if frac_a < fraction <= frac_b:
            return speed_a + (speed_b - speed_a) * (fraction - frac_a) / (frac_b - frac_a)
        if frac_a == fraction:
            return speed_a
    best = max(curve, key=lambda point: point[1])
    return best[0]


__all__ = [
    "NO_WIND_CURVE",
    "MeasuredProduction",
    "ProducerLayout",
    "Producers",
    "equivalent_weather",
    "measured_production",
    "measured_weather",
    "site_location",
    "speed_for_fraction",
]
