"""Power from weather: PV from irradiance (`pvlib`), wind from a real power curve (`windpowerlib`).

Shared by the simulator (fed the *actual* weather) and the market-bid actor (fed the
*forecast*), so both predict production the same way. Pure, vectorised over arrays
(`*_series_w`) with scalar conveniences for a simulator tick.

**Sign convention (passive):** produced power is negative; every function here
returns a power ≤ 0 W (0 at night, in a calm or above cut-out).

**PV** (PVWatts-style chain, all from `pvlib`): sun position at the location →
split of GHI into direct and diffuse (Erbs, unless DNI and DHI are given) → irradiance
on the tilted plane (isotropic sky, ground albedo) → cell temperature (Faiman, from air
temperature and wind) → DC power (`pvwatts_dc`, −0.37 %/K) → system losses (14 %, the
PVWatts default: soiling, wiring, mismatch…) → inverter (`inverter.pvwatts`, 96 %
nominal), whose AC output is capped at `peak_power_w`. Default orientation: 30° tilt,
facing the equator.

**Wind:** the power curve of a real turbine from `windpowerlib`'s turbine library
(offline data shipped with the package), by default the Enercon E-53/800 (cut-in
2 m/s, full power from 13 m/s, cut-out above 25 m/s), **scaled** so that its maximum is
`rated_power_w`: the library's smallest turbine is 800 kW, and the market simulation's
prosumers own small turbines of one type (several per prosumer), each given by its
rated power. Small turbines reach rated power at similar speeds (11–13 m/s); the
scaled curve is a shape, good for a market simulation, not for a yield assessment.
The curve holds at standard air density (1.225 kg/m³); no density correction. It takes
the wind at hub height: `wind.wind_speed_at_height(v10, SMALL_TURBINE_HUB_HEIGHT_M)`.
"""

from __future__ import annotations

import math
import warnings
from datetime import datetime
from functools import lru_cache
from typing import Final

import numpy as np
import numpy.typing as npt
from pvlib import inverter, irradiance, pvsystem, temperature  # type: ignore[import-untyped]

from edge_controller.weather.messages import GeoLocation
from edge_controller.weather.solar import day_of_year, solar_position

Array = npt.NDArray[np.float64]

DEFAULT_TURBINE_TYPE: Final = "E-53/800"
"""`windpowerlib` turbine whose power-curve shape the small turbines use."""

SMALL_TURBINE_HUB_HEIGHT_M: Final = 30.0
"""Hub height of a small (10–100 kW) turbine, for the 10 m → hub wind profile."""

PV_TILT_DEG: Final = 30.0
PV_SYSTEM_LOSSES: Final = 0.14
PV_TEMPERATURE_COEFFICIENT_PER_K: Final = -0.0037
INVERTER_EFFICIENCY: Final = 0.96


def _check_power(name: str, value: float) -> None:
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{name}: expected a power >= 0 W, got {value!r}")


def pv_power_series_w(
    ghi_wm2: npt.ArrayLike,
    temperature_c: npt.ArrayLike,
    epoch_s: npt.ArrayLike,
    location: GeoLocation,
    peak_power_w: float,
    *,
    dni_wm2: npt.ArrayLike | None = None,
    dhi_wm2: npt.ArrayLike | None = None,
    wind_speed_ms: npt.ArrayLike = 1.0,
    tilt_deg: float = PV_TILT_DEG,
    azimuth_deg: float | None = None,
    albedo: float = 0.2,
    losses: float = PV_SYSTEM_LOSSES,
    temperature_coefficient_per_k: float = PV_TEMPERATURE_COEFFICIENT_PER_K,
) -> Array:
    """Return the AC power (W, passive sign: ≤ 0) of a PV system at the times `epoch_s`.

    `peak_power_w` is the DC nameplate at standard test conditions and the inverter's
    AC limit. `azimuth_deg` None faces the equator (180° north of it, 0° south).
    `dni_wm2`/`dhi_wm2` are derived from GHI (Erbs) unless both are given.

    Raises:
        ValueError: a negative `peak_power_w`, or only one of `dni_wm2` and `dhi_wm2`.
    """
    _check_power("peak_power_w", peak_power_w)
    if (dni_wm2 is None) != (dhi_wm2 is None):
        raise ValueError("dni_wm2 and dhi_wm2: give both or neither (then Erbs splits GHI)")
    times = np.atleast_1d(np.asarray(epoch_s, dtype=np.float64))
    ghi = np.clip(np.broadcast_to(np.asarray(ghi_wm2, dtype=np.float64), times.shape), 0, None)
    sun = solar_position(times, location.latitude, location.longitude)
    if dni_wm2 is None or dhi_wm2 is None:
        split = irradiance.erbs(ghi, sun.zenith_deg, day_of_year(times))
        dni, dhi = np.asarray(split["dni"]), np.asarray(split["dhi"])
    else:
        dni = np.broadcast_to(np.asarray(dni_wm2, dtype=np.float64), times.shape)
        dhi = np.broadcast_to(np.asarray(dhi_wm2, dtype=np.float64), times.shape)
    up = sun.zenith_deg < 90.0
    dni = np.where(up, np.clip(dni, 0, None), 0.0)
    dhi = np.where(up, np.clip(dhi, 0, None), 0.0)
    ghi = np.where(up, ghi, 0.0)
    facing = azimuth_deg if azimuth_deg is not None else (180.0 if location.latitude >= 0 else 0.0)
    plane = irradiance.get_total_irradiance(
        tilt_deg, facing, sun.zenith_deg, sun.azimuth_deg, dni, ghi, dhi, albedo=albedo
    )
    poa = np.clip(np.nan_to_num(np.asarray(plane["poa_global"], dtype=np.float64)), 0, None)
    cell_c = temperature.faiman(poa, np.asarray(temperature_c, dtype=np.float64), wind_speed_ms)
    dc_w = pvsystem.pvwatts_dc(poa, cell_c, peak_power_w, temperature_coefficient_per_k)
    dc_w = np.clip(np.asarray(dc_w, dtype=np.float64) * (1.0 - losses), 0, None)
    if peak_power_w == 0:
        return np.zeros_like(times)
    ac_w = inverter.pvwatts(dc_w, peak_power_w / INVERTER_EFFICIENCY, INVERTER_EFFICIENCY)
    # + 0.0 turns -0.0 into 0.0.
    return np.asarray(-np.clip(np.asarray(ac_w, dtype=np.float64), 0, peak_power_w) + 0.0)


def pv_power_w(
    ghi_wm2: float,
    temperature_c: float,
    when: datetime,
    location: GeoLocation,
    peak_power_w: float,
    *,
    dni_wm2: float | None = None,
    dhi_wm2: float | None = None,
    wind_speed_ms: float = 1.0,
    tilt_deg: float = PV_TILT_DEG,
    azimuth_deg: float | None = None,
) -> float:
    """Return the AC power (W, passive sign: ≤ 0) of a PV system at one moment.

    See `pv_power_series_w`; `when` must be timezone-aware.

    Raises:
        ValueError: a naive `when`, or as `pv_power_series_w`.
    """
    if when.tzinfo is None:
        raise ValueError(f"when: expected a timezone-aware time, got {when!r}")
    return float(
        pv_power_series_w(
            ghi_wm2,
            temperature_c,
            when.timestamp(),
            location,
            peak_power_w,
            dni_wm2=dni_wm2,
            dhi_wm2=dhi_wm2,
            wind_speed_ms=wind_speed_ms,
            tilt_deg=tilt_deg,
            azimuth_deg=azimuth_deg,
        )[0]
    )


@lru_cache(maxsize=8)
def turbine_power_curve(turbine_type: str = DEFAULT_TURBINE_TYPE) -> tuple[Array, Array]:
    """Return (wind speeds m/s, fraction of the curve's maximum) of a library turbine.

    Raises:
        ValueError: `turbine_type` has no power curve in `windpowerlib`'s library.
    """
    from windpowerlib import WindTurbine  # type: ignore[import-untyped]

    with warnings.catch_warnings():
        # windpowerlib warns on pandas deprecations and on turbines without a curve.
        warnings.simplefilter("ignore")
        try:
            turbine = WindTurbine(hub_height=100.0, turbine_type=turbine_type)
        except (KeyError, ValueError):
            turbine = None
    curve = turbine.power_curve if turbine is not None else None
    if curve is None or len(curve) < 2:
        raise ValueError(
            f"turbine_type: {turbine_type!r} has no power curve in windpowerlib's library "
            "(e.g. 'E-53/800', 'E-82/2350', 'V90/2000')"
        )
    speeds = np.asarray(curve["wind_speed"], dtype=np.float64)
    values = np.asarray(curve["value"], dtype=np.float64)
    return speeds, values / values.max()


def wind_power_series_w(
    wind_speed_hub_ms: npt.ArrayLike,
    rated_power_w: float,
    *,
    turbine_type: str = DEFAULT_TURBINE_TYPE,
) -> Array:
    """Return a small turbine's power (W, passive sign: ≤ 0) at hub-height wind speeds.

    The library curve scaled to `rated_power_w`; linear between its points, 0 below
    the first and above the last (cut-out).

    Raises:
        ValueError: a negative `rated_power_w` or an unknown `turbine_type`.
    """
    from windpowerlib import power_output

    _check_power("rated_power_w", rated_power_w)
    speeds, fractions = turbine_power_curve(turbine_type)
    wind = np.atleast_1d(np.asarray(wind_speed_hub_ms, dtype=np.float64))
    fraction = np.asarray(power_output.power_curve(wind, speeds, fractions), dtype=np.float64)
    return np.asarray(-rated_power_w * np.clip(fraction, 0.0, 1.0) + 0.0, dtype=np.float64)


def wind_power_w(
    wind_speed_hub_ms: float, rated_power_w: float, *, turbine_type: str = DEFAULT_TURBINE_TYPE
) -> float:
    """Return a small turbine's power (W, passive sign: ≤ 0) at one hub-height wind speed."""
    return float(
        wind_power_series_w(wind_speed_hub_ms, rated_power_w, turbine_type=turbine_type)[0]
    )


__all__ = [
    "DEFAULT_TURBINE_TYPE",
    "SMALL_TURBINE_HUB_HEIGHT_M",
    "pv_power_series_w",
    "pv_power_w",
    "turbine_power_curve",
    "wind_power_series_w",
    "wind_power_w",
]
