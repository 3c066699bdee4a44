"""Wind: speed and direction ↔ (u, v) components, and speed at another height.

Directions follow the meteorological convention: where the wind blows *from*,
degrees clockwise from north (a west wind, 270°, blows towards the east: u > 0).

Height profile: the Hellman power law `v(h) = v(h_ref) · (h / h_ref) ** α` with
α = 1/7, the classic value for open, flat terrain (`windpowerlib.wind_speed.hellman`
uses the same default). From 10 m to 100 m it multiplies the speed by 1.39; a log
profile with roughness length 0.03 m (open farmland) gives 1.40. Direction is taken
as the same at every height (no veer).
"""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt

HELLMAN_EXPONENT: Final = 1.0 / 7.0
"""α of the power-law wind profile (open, flat terrain)."""

MEASUREMENT_HEIGHT_M: Final = 10.0
"""Standard anemometer height: the datasets' and forecasts' surface wind."""


def wrap_degrees(degrees: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Return angles in [0, 360) (`np.mod` alone can round -1e-15 up to 360.0)."""
    wrapped = np.mod(np.asarray(degrees, dtype=np.float64), 360.0)
    return np.asarray(np.where(wrapped >= 360.0, 0.0, wrapped), dtype=np.float64)


def wind_speed_at_height(
    speed_ms: npt.ArrayLike,
    height_m: float,
    *,
    reference_height_m: float = MEASUREMENT_HEIGHT_M,
    exponent: float = HELLMAN_EXPONENT,
) -> npt.NDArray[np.float64]:
    """Return the wind speed at `height_m` from the speed at `reference_height_m`.

    Raises:
        ValueError: a height that is not > 0.
    """
    if not (height_m > 0 and reference_height_m > 0):
        raise ValueError(
            f"heights must be > 0 m, got height_m={height_m!r}, "
            f"reference_height_m={reference_height_m!r}"
        )
    speed = np.asarray(speed_ms, dtype=np.float64)
    return np.asarray(speed * (height_m / reference_height_m) ** exponent, dtype=np.float64)


def wind_components(
    speed_ms: npt.ArrayLike, direction_deg: npt.ArrayLike
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Return (u eastward, v northward) in m/s from speed and the direction it comes from."""
    speed = np.asarray(speed_ms, dtype=np.float64)
    direction = np.radians(np.asarray(direction_deg, dtype=np.float64))
    u = -speed * np.sin(direction)
    v = -speed * np.cos(direction)
    return np.asarray(u, dtype=np.float64), np.asarray(v, dtype=np.float64)


def speed_and_direction(
    u_ms: npt.ArrayLike, v_ms: npt.ArrayLike
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Return (speed, direction it comes from, 0 ≤ deg < 360) from (u, v); calm is 0°."""
    u = np.asarray(u_ms, dtype=np.float64)
    v = np.asarray(v_ms, dtype=np.float64)
    speed = np.hypot(u, v)
    direction = wrap_degrees(np.degrees(np.arctan2(-u, -v)))
    return np.asarray(speed, dtype=np.float64), np.asarray(direction, dtype=np.float64)


__all__ = [
    "HELLMAN_EXPONENT",
    "MEASUREMENT_HEIGHT_M",
    "speed_and_direction",
    "wind_components",
    "wind_speed_at_height",
    "wrap_degrees",
]
