"""Where the sun is: solar time, zenith, azimuth and the irradiance above the atmosphere.

Vectorised over times given as seconds since the Unix epoch (UTC, float64), built
from `pvlib`'s analytical formulas (Spencer 1971 declination and equation of time,
spherical trigonometry for the angles): accurate to about half a degree, far finer
than an hourly weather dataset resolves, and fast enough for a simulator's tick.

Solar time: `utc_hours + longitude / 15 + equation_of_time / 60`; the sun is highest
(solar noon) at 12:00 solar time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt
from pvlib import clearsky, irradiance, solarposition  # type: ignore[import-untyped]

Seconds = npt.NDArray[np.float64]
"""Times as seconds since 1970-01-01T00:00Z."""

SECONDS_PER_DAY: Final = 86_400.0


def day_of_year(epoch_s: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Return the fractional day of the year: 1.0 at 1 January 00:00 UTC."""
    seconds = np.asarray(epoch_s, dtype=np.float64)
    whole = np.floor(seconds).astype("int64").astype("datetime64[s]")
    year_start = whole.astype("datetime64[Y]").astype("datetime64[s]").astype("int64")
    return np.asarray((seconds - year_start) / SECONDS_PER_DAY + 1.0, dtype=np.float64)


def equation_of_time_min(epoch_s: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Return how many minutes solar time runs ahead of mean solar time (±16 min)."""
    return np.asarray(solarposition.equation_of_time_spencer71(day_of_year(epoch_s)))


def solar_time_h(epoch_s: npt.ArrayLike, longitude_deg: float) -> npt.NDArray[np.float64]:
    """Return the local (apparent) solar time in hours, 0 ≤ h < 24."""
    seconds = np.asarray(epoch_s, dtype=np.float64)
    utc_h = np.mod(seconds, SECONDS_PER_DAY) / 3600.0
    hours = utc_h + longitude_deg / 15.0 + equation_of_time_min(seconds) / 60.0
    return np.asarray(np.mod(hours, 24.0), dtype=np.float64)


def solar_noon_s(epoch_s: float, longitude_deg: float) -> float:
    """Return the time of solar noon on the UTC day that contains `epoch_s`.

    For longitudes far from Greenwich, solar noon may fall on the day before or after
    in local civil time; this is simply 12:00 solar time nearest the UTC day's middle.
    """
    midnight = np.floor(epoch_s / SECONDS_PER_DAY) * SECONDS_PER_DAY
    noon = midnight + SECONDS_PER_DAY / 2
    eot_h = float(equation_of_time_min(noon)) / 60.0
    return float(noon - (longitude_deg / 15.0 + eot_h) * 3600.0)


@dataclass(frozen=True, slots=True, eq=False)
class SolarPosition:
    """The sun's position, in degrees.

    Zenith: 0° overhead, above 90° below the horizon. Azimuth: clockwise from north
    (90° east, 180° south).
    """

    zenith_deg: npt.NDArray[np.float64]
    azimuth_deg: npt.NDArray[np.float64]


def solar_position(
    epoch_s: npt.ArrayLike, latitude_deg: float, longitude_deg: float
) -> SolarPosition:
    """Return the sun's zenith and azimuth at `epoch_s` seen from the location (1-d arrays)."""
    seconds = np.atleast_1d(np.asarray(epoch_s, dtype=np.float64))
    doy = day_of_year(seconds)
    declination = solarposition.declination_spencer71(doy)
    hour_angle = np.radians(15.0 * (solar_time_h(seconds, longitude_deg) - 12.0))
    latitude = np.radians(latitude_deg)
    zenith = solarposition.solar_zenith_analytical(latitude, hour_angle, declination)
    azimuth = solarposition.solar_azimuth_analytical(latitude, hour_angle, declination, zenith)
    return SolarPosition(
        zenith_deg=np.asarray(np.degrees(zenith), dtype=np.float64),
        azimuth_deg=np.asarray(np.nan_to_num(np.degrees(azimuth), nan=180.0), dtype=np.float64),
    )


def extraterrestrial_normal_wm2(epoch_s: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Return the irradiance above the atmosphere on a plane facing the sun (≈ 1321–1413)."""
    return np.asarray(irradiance.get_extra_radiation(day_of_year(epoch_s)), dtype=np.float64)


def extraterrestrial_horizontal_wm2(
    epoch_s: npt.ArrayLike, latitude_deg: float, longitude_deg: float
) -> npt.NDArray[np.float64]:
    """Return the irradiance above the atmosphere on a horizontal plane; 0 at night (1-d)."""
    seconds = np.atleast_1d(np.asarray(epoch_s, dtype=np.float64))
    position = solar_position(seconds, latitude_deg, longitude_deg)
    cos_zenith = np.clip(np.cos(np.radians(position.zenith_deg)), 0.0, None)
    return np.asarray(extraterrestrial_normal_wm2(seconds) * cos_zenith, dtype=np.float64)


def clear_sky_ghi_wm2(
    epoch_s: npt.ArrayLike, latitude_deg: float, longitude_deg: float
) -> npt.NDArray[np.float64]:
    """Return the global horizontal irradiance under a cloudless sky (Haurwitz model; 1-d).

    `1098 · cos z · exp(−0.057 / cos z)` W/m² while the sun is up (`pvlib.clearsky.haurwitz`).
    """
    import pandas  # type: ignore[import-untyped]

    position = solar_position(epoch_s, latitude_deg, longitude_deg)
    ghi = clearsky.haurwitz(pandas.Series(position.zenith_deg))["ghi"]
    return np.asarray(ghi.to_numpy(dtype=np.float64), dtype=np.float64)


__all__ = [
    "SECONDS_PER_DAY",
    "Seconds",
    "SolarPosition",
    "clear_sky_ghi_wm2",
    "day_of_year",
    "equation_of_time_min",
    "extraterrestrial_horizontal_wm2",
    "extraterrestrial_normal_wm2",
    "solar_noon_s",
    "solar_position",
    "solar_time_h",
]
