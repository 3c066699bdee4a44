"""Measured weather: the NREL TMY3 files that `pvlib` ships, served for any location.

**Data.** Two typical-meteorological-year files (US-government data, NREL's TMY3
set), 8760 hourly rows each: temperature, 10 m wind speed and direction, and global
horizontal irradiance (GHI) with its extraterrestrial counterpart:

| key | station | lat, lon | character |
| --- | --- | --- | --- |
| `greensboro_nc` | Greensboro airport, NC (USAF 723170) | 36.10, −79.95 | sunny, light wind |
| `sand_point_ak` | Sand Point, AK (USAF 703165) | 55.32, −160.52 | windy, cloudy, cool |

Months of a TMY come from different years; only the position in the year is used,
so every year repeats the same typical year (in a leap year each day from 29 February
on reads the typical year's next day, and 31 December reads 1 January). `pvlib` also
ships a TMY2 file (Miami), in an older format with scaled values: not used.

**Which dataset (the nearest rule).** A location is served from the station with the
smallest great-circle distance to it; a southern-hemisphere location is first mirrored
to the northern hemisphere (latitude → |latitude|) and served *half a year shifted*,
so its summer is in January.

**Solar-time shift.** A location at longitude λ gets the value the station measured
at the same *local solar time*: the station's time axis is shifted by
(λ − λ_station) / 15 hours (the difference wrapped into ±180°, so the date moves by at
most half a day). The daily cycles — sunshine, the afternoon temperature peak, the
sea breeze — keep their solar hour wherever the location is.

**Irradiance.** TMY3 irradiance is the energy of the hour *ending* at the time stamp;
it is placed at the middle of that hour. What is carried over to the location is the
hourly *clearness index* kt = GHI / extraterrestrial horizontal irradiance (how much of
the sunlight the sky let through: cloudiness), interpolated linearly in time; the
location's GHI is then kt × its own extraterrestrial horizontal irradiance from the
sun's position there. So the sun rises, peaks at solar noon and sets at the location's
own times and height, with the station's clouds. Night hours (no sun above the
atmosphere at the station) take kt interpolated between the daylight hours around them.

**Interpolation.** Linear in time between the hourly samples (periodic over the
365-day year); wind direction along the shorter arc; 100 m wind from the 10 m
measurement by the profile in `wind`.

Times are seconds since the Unix epoch (UTC, float64 arrays). Pure apart from reading
the files (`load_tmy3`, `bundled_datasets`, cached).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt

from edge_controller.weather.messages import GeoLocation
from edge_controller.weather.solar import SECONDS_PER_DAY, day_of_year
from edge_controller.weather.solar import extraterrestrial_horizontal_wm2 as _extra_horizontal
from edge_controller.weather.wind import wind_speed_at_height, wrap_degrees

Array = npt.NDArray[np.float64]

YEAR_S: Final = 365 * SECONDS_PER_DAY
"""The period of the typical year, in seconds."""

EARTH_RADIUS_KM: Final = 6371.0
DEFAULT_ALBEDO: Final = 0.2
"""Ground reflectance when a file has no albedo column worth the name (Greensboro's is 0)."""
_MIN_EXTRA_WM2: Final = 10.0
"""Hours with less sun above the atmosphere have no meaningful clearness index."""


class DatasetError(ValueError):
    """A weather file that cannot be read or lacks a column we need."""


@dataclass(frozen=True, slots=True)
class BundledFile:
    """A TMY3 file shipped in `pvlib/data/`."""

    key: str
    file_name: str
    description: str


BUNDLED_FILES: Final = (
    BundledFile(
        "greensboro_nc", "723170TYA.CSV", "Greensboro, NC (USAF 723170): sunny, light wind"
    ),
    BundledFile("sand_point_ak", "703165TY.csv", "Sand Point, AK (USAF 703165): windy, cloudy"),
)


@dataclass(frozen=True, slots=True, eq=False)
class Dataset:
    """One station's typical year, ready to interpolate.

    Instantaneous samples (temperature, wind) sit at `instant_s`, hourly means
    (clearness) at `hour_mid_s`: both are seconds into the 365-day year (UTC), sorted.
    """

    key: str
    name: str
    latitude: float
    longitude: float
    albedo: float
    instant_s: Array
    temperature_c: Array
    wind_speed_ms: Array
    wind_direction_deg: Array
    hour_mid_s: Array
    clearness: Array

    @property
    def location(self) -> GeoLocation:
        """Where the station is."""
        return GeoLocation(self.latitude, self.longitude, "US")


def pvlib_data_dir() -> Path:
    """Return `pvlib/data/`, where the TMY3 files are installed."""
    import pvlib  # type: ignore[import-untyped]

    return Path(pvlib.__file__).resolve().parent / "data"


def load_tmy3(path: Path, key: str) -> Dataset:
    """Read a TMY3 file into a `Dataset` called `key`.

    Raises:
        DatasetError: the file cannot be read or misses a column.
    """
    import pandas  # type: ignore[import-untyped]
    from pvlib.iotools import read_tmy3  # type: ignore[import-untyped]

    try:
        # 2021 is not a leap year: the 8760 rows fill it exactly.
        frame, meta = read_tmy3(str(path), map_variables=True, coerce_year=2021)
    except (OSError, ValueError, KeyError) as error:
        raise DatasetError(f"{path}: cannot read as TMY3: {error}") from error
    needed = ["ghi", "ghi_extra", "temp_air", "wind_speed", "wind_direction"]
    missing = [name for name in needed if name not in frame.columns]
    if missing:
        raise DatasetError(f"{path}: missing columns {missing}")
    year_start = pandas.Timestamp("2021-01-01T00:00:00", tz="UTC")
    seconds = (frame.index.tz_convert("UTC") - year_start).total_seconds()
    albedo_column = frame["albedo"].to_numpy(dtype=float) if "albedo" in frame.columns else None
    albedo = DEFAULT_ALBEDO
    if albedo_column is not None and np.nanmedian(albedo_column) > 0.01:
        albedo = float(np.nanmedian(albedo_column))
    return dataset_from_columns(
        key=key,
        name=f"{str(meta.get('Name', key)).strip(chr(34)).title()}, {meta.get('State', '')} "
        f"(USAF {meta.get('USAF', '?')})",
        latitude=float(meta["latitude"]),
        longitude=float(meta["longitude"]),
        albedo=albedo,
        time_of_year_s=np.mod(np.asarray(seconds, dtype=np.float64), YEAR_S),
        temperature_c=frame["temp_air"].to_numpy(dtype=float),
        wind_speed_ms=frame["wind_speed"].to_numpy(dtype=float),
        wind_direction_deg=frame["wind_direction"].to_numpy(dtype=float),
        ghi_wm2=frame["ghi"].to_numpy(dtype=float),
        ghi_extra_wm2=frame["ghi_extra"].to_numpy(dtype=float),
    )


def dataset_from_columns(
    *,
    key: str,
    name: str,
    latitude: float,
    longitude: float,
    albedo: float,
    time_of_year_s: Array,
    temperature_c: Array,
    wind_speed_ms: Array,
    wind_direction_deg: Array,
    ghi_wm2: Array,
    ghi_extra_wm2: Array,
) -> Dataset:
    """Build a `Dataset` from hourly TMY3-style columns.

    `time_of_year_s` are the rows' time stamps (end of each hour, seconds into the
    year, UTC); irradiances are the means over the hour ending there.
    """
    order = np.argsort(time_of_year_s)
    instant_s = np.asarray(time_of_year_s, dtype=np.float64)[order]
    extra = np.asarray(ghi_extra_wm2, dtype=np.float64)[order]
    ghi = np.asarray(ghi_wm2, dtype=np.float64)[order]
    daylight = extra > _MIN_EXTRA_WM2
    clearness = np.full_like(ghi, np.nan)
    clearness[daylight] = np.clip(ghi[daylight] / extra[daylight], 0.0, 1.0)
    hour_mid_s = np.mod(instant_s - 1800.0, YEAR_S)
    valid = np.flatnonzero(daylight)
    if valid.size == 0:
        raise DatasetError(f"{key}: no daylight hour with irradiance above {_MIN_EXTRA_WM2} W/m²")
    # Night: interpolate between the daylight hours around it (periodic).
    clearness = np.interp(hour_mid_s, hour_mid_s[valid], clearness[valid], period=YEAR_S)
    mid_order = np.argsort(hour_mid_s)
    return Dataset(
        key=key,
        name=name,
        latitude=latitude,
        longitude=longitude,
        albedo=albedo,
        instant_s=instant_s,
        temperature_c=np.asarray(temperature_c, dtype=np.float64)[order],
        wind_speed_ms=np.asarray(wind_speed_ms, dtype=np.float64)[order],
        wind_direction_deg=np.asarray(wind_direction_deg, dtype=np.float64)[order],
        hour_mid_s=hour_mid_s[mid_order],
        clearness=np.asarray(clearness, dtype=np.float64)[mid_order],
    )


@lru_cache(maxsize=1)
def bundled_datasets() -> tuple[Dataset, ...]:
    """Return the TMY3 datasets shipped by `pvlib` (read once, about 0.1 s each)."""
    directory = pvlib_data_dir()
    return tuple(load_tmy3(directory / entry.file_name, entry.key) for entry in BUNDLED_FILES)


def great_circle_km(a: GeoLocation, b: GeoLocation) -> float:
    """Return the great-circle (haversine) distance between two locations."""
    lat_a, lat_b = math.radians(a.latitude), math.radians(b.latitude)
    d_lat = lat_b - lat_a
    d_lon = math.radians(b.longitude - a.longitude)
    h = math.sin(d_lat / 2) ** 2 + math.cos(lat_a) * math.cos(lat_b) * math.sin(d_lon / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(h)))


def nearest_dataset(location: GeoLocation, datasets: Sequence[Dataset]) -> Dataset:
    """Return the dataset that serves `location` (see the module docstring).

    Raises:
        ValueError: `datasets` is empty.
    """
    if not datasets:
        raise ValueError("no weather dataset to choose from")
    mirrored = GeoLocation(abs(location.latitude), location.longitude)
    return min(datasets, key=lambda dataset: great_circle_km(mirrored, dataset.location))


def time_of_year_s(epoch_s: npt.ArrayLike) -> Array:
    """Return seconds since 1 January 00:00 UTC of each time's own year."""
    return np.asarray((day_of_year(epoch_s) - 1.0) * SECONDS_PER_DAY, dtype=np.float64)


def dataset_time_s(epoch_s: npt.ArrayLike, location: GeoLocation, dataset: Dataset) -> Array:
    """Return the second of the dataset's year served at `epoch_s` for `location`.

    Same local solar time (longitude difference wrapped into ±180°), and half a
    year later for a southern-hemisphere location.
    """
    d_lon = (location.longitude - dataset.longitude + 180.0) % 360.0 - 180.0
    shift_s = d_lon / 15.0 * 3600.0
    if location.latitude < 0:
        shift_s += YEAR_S / 2
    return np.asarray(np.mod(time_of_year_s(epoch_s) + shift_s, YEAR_S), dtype=np.float64)


def interpolate_periodic(x: Array, xp: Array, fp: Array, period: float = YEAR_S) -> Array:
    """Linear interpolation of samples `fp` at sorted `xp`, repeating every `period`."""
    return np.asarray(np.interp(x, xp, fp, period=period), dtype=np.float64)


def interpolate_direction(
    x: Array, xp: Array, directions_deg: Array, period: float = YEAR_S
) -> Array:
    """Interpolate directions (degrees) along the shorter arc; result in [0, 360)."""
    radians = np.radians(directions_deg)
    east = interpolate_periodic(x, xp, np.sin(radians), period)
    north = interpolate_periodic(x, xp, np.cos(radians), period)
    return wrap_degrees(np.degrees(np.arctan2(east, north)))


@dataclass(frozen=True, slots=True, eq=False)
class Measured:
    """The station's quantities served at some times (or additive errors to them)."""

    temperature_c: Array
    wind_speed_ms: Array
    wind_direction_deg: Array
    clearness: Array


ErrorFunction = Callable[[Array], Measured]
"""Additive errors at the given times (seconds since the epoch): see `forecast`."""


def measured_at(dataset: Dataset, location: GeoLocation, epoch_s: npt.ArrayLike) -> Measured:
    """Return the dataset's measurements served for `location` at `epoch_s`."""
    at = dataset_time_s(epoch_s, location, dataset)
    return Measured(
        temperature_c=interpolate_periodic(at, dataset.instant_s, dataset.temperature_c),
        wind_speed_ms=interpolate_periodic(at, dataset.instant_s, dataset.wind_speed_ms),
        wind_direction_deg=interpolate_direction(at, dataset.instant_s, dataset.wind_direction_deg),
        clearness=interpolate_periodic(at, dataset.hour_mid_s, dataset.clearness),
    )


def perturbed(measured: Measured, errors: Measured) -> Measured:
    """Add `errors`, keeping each quantity in its physical range."""
    return Measured(
        temperature_c=measured.temperature_c + errors.temperature_c,
        wind_speed_ms=np.clip(measured.wind_speed_ms + errors.wind_speed_ms, 0.0, None),
        wind_direction_deg=wrap_degrees(measured.wind_direction_deg + errors.wind_direction_deg),
        clearness=np.clip(measured.clearness + errors.clearness, 0.0, 1.0),
    )


@dataclass(frozen=True, slots=True, eq=False)
class WeatherSeries:
    """Weather at a location at times `epoch_s`.

    `ghi_wm2` is instantaneous when the series was made with `step_s = 0`, else the
    mean over `[t, t + step_s)` (the Weather API's definition of its irradiance).
    """

    dataset_key: str
    location: GeoLocation
    epoch_s: Array
    step_s: float
    temperature_c: Array
    wind_speed_10m_ms: Array
    wind_direction_deg: Array
    clearness: Array
    ghi_wm2: Array
    albedo: float

    @property
    def wind_speed_100m_ms(self) -> Array:
        """The wind speed at 100 m (power-law profile, see `wind`)."""
        return wind_speed_at_height(self.wind_speed_10m_ms, 100.0)


def _sub_times(epoch_s: Array, step_s: float) -> Array:
    """Midpoints of K equal slices of each `[t, t + step_s)`: shape (len, K)."""
    count = max(4, math.ceil(step_s / 900.0))
    offsets = (np.arange(count, dtype=np.float64) + 0.5) / count * step_s
    return np.asarray(epoch_s[:, None] + offsets[None, :], dtype=np.float64)


def weather_series(
    dataset: Dataset,
    location: GeoLocation,
    epoch_s: npt.ArrayLike,
    *,
    step_s: float = 0.0,
    errors: ErrorFunction | None = None,
) -> WeatherSeries:
    """Return the weather at `location` at `epoch_s`, optionally with errors added.

    With `step_s > 0` the irradiance is averaged over `[t, t + step_s)` (midpoint rule,
    one sample per 15 minutes, at least 4); temperature and wind are the values at `t`.
    """
    times = np.atleast_1d(np.asarray(epoch_s, dtype=np.float64))
    values = measured_at(dataset, location, times)
    if errors is not None:
        values = perturbed(values, errors(times))
    if step_s > 0:
        sub = _sub_times(times, step_s)
        flat = sub.ravel()
        clearness = measured_at(dataset, location, flat).clearness
        if errors is not None:
            clearness = np.clip(clearness + errors(flat).clearness, 0.0, 1.0)
        extra = _extra_horizontal(flat, location.latitude, location.longitude)
        ghi = (clearness * extra).reshape(sub.shape).mean(axis=1)
    else:
        ghi = values.clearness * _extra_horizontal(times, location.latitude, location.longitude)
    return WeatherSeries(
        dataset_key=dataset.key,
        location=location,
        epoch_s=times,
        step_s=step_s,
        temperature_c=values.temperature_c,
        wind_speed_10m_ms=values.wind_speed_ms,
        wind_direction_deg=values.wind_direction_deg,
        clearness=values.clearness,
        ghi_wm2=np.asarray(ghi, dtype=np.float64),
        albedo=dataset.albedo,
    )


def actual_weather(
    dataset: Dataset, location: GeoLocation, epoch_s: npt.ArrayLike, *, step_s: float = 0.0
) -> WeatherSeries:
    """Return the *actual* weather at `location`: what the simulator's PV and wind see.

    A forecast issued at `t` has no error at lead 0: it equals this at `t`.
    """
    return weather_series(dataset, location, epoch_s, step_s=step_s)


__all__ = [
    "BUNDLED_FILES",
    "DEFAULT_ALBEDO",
    "YEAR_S",
    "BundledFile",
    "Dataset",
    "DatasetError",
    "ErrorFunction",
    "Measured",
    "WeatherSeries",
    "actual_weather",
    "bundled_datasets",
    "dataset_from_columns",
    "dataset_time_s",
    "great_circle_km",
    "interpolate_direction",
    "interpolate_periodic",
    "load_tmy3",
    "measured_at",
    "nearest_dataset",
    "perturbed",
    "pvlib_data_dir",
    "time_of_year_s",
    "weather_series",
]
