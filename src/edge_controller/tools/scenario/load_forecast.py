"""The site's load forecast: the actual profile times a seeded error that grows with lead time.

As `weather.forecast` does for the weather, one forecast — one seed and issue time —
has a relative error

    e(L) = σ · W(L / 24 h)

with W a standard Brownian motion drawn at hourly knots (linear between), so the
error is 0 at lead 0, its RMS σ at 24 h (σ/√24 after an hour), neighbouring periods
are off the same way, and forecasts issued at different times are independent draws.
The forecast load is `actual × max(0, 1 + e)`. σ = 10 % at 24 h: a site-level load
forecast from the profile and the calendar, no better.

Reproducible: the same seed and issue time give the same errors at any resolution.
The draws are kept apart from the weather's by their own tag in the seed.
"""

from __future__ import annotations

import math
from typing import Final

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float64]

SIGMA_24H: Final = 0.10
"""RMS relative error of the load forecast at 24 h lead."""
KNOT_S: Final = 3600.0
MAX_LEAD_S: Final = 3 * 86_400.0
_TAG: Final = 0x10AD
"""Keeps these draws apart from the weather forecast's for the same seed."""


def load_errors(
    seed: int, issued_at_s: float, lead_s: npt.ArrayLike, *, sigma_24h: float = SIGMA_24H
) -> Array:
    """Return the relative error of the forecast issued at `issued_at_s` at each lead (s).

    A negative lead has no error.

    Raises:
        ValueError: a negative seed or σ.
    """
    if seed < 0:
        raise ValueError(f"seed: expected an integer >= 0, got {seed!r}")
    if not (math.isfinite(sigma_24h) and sigma_24h >= 0):
        raise ValueError(f"sigma_24h: expected a number >= 0, got {sigma_24h!r}")
    count = math.ceil(MAX_LEAD_S / KNOT_S)
    generator = np.random.default_rng([_TAG, seed, round(issued_at_s) % 2**63])
    walk = np.zeros(count + 1, dtype=np.float64)
    np.cumsum(generator.standard_normal(count) * math.sqrt(KNOT_S / 86_400.0), out=walk[1:])
    leads = np.clip(np.asarray(lead_s, dtype=np.float64), 0.0, MAX_LEAD_S)
    knots = np.arange(count + 1, dtype=np.float64) * KNOT_S
    return np.asarray(sigma_24h * np.interp(leads, knots, walk), dtype=np.float64)


def forecast_load_w(actual_w: npt.ArrayLike, errors: npt.ArrayLike) -> Array:
    """Return the forecast load (W ≥ 0): `actual × max(0, 1 + error)`."""
    return np.asarray(
        np.asarray(actual_w, dtype=np.float64)
        * np.maximum(0.0, 1.0 + np.asarray(errors, dtype=np.float64)),
        dtype=np.float64,
    )


__all__ = ["KNOT_S", "MAX_LEAD_S", "SIGMA_24H", "forecast_load_w", "load_errors"]
