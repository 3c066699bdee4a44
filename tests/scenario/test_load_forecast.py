"""The load forecast's seeded error: none at lead 0, reproducible, about σ at 24 h."""

from __future__ import annotations

import numpy as np
import pytest

from edge_controller.tools.scenario.load_forecast import SIGMA_24H, forecast_load_w, load_errors


def test_no_error_at_lead_zero_and_the_same_seed_gives_the_same_errors() -> None:
    leads = np.array([0.0, 900.0, 86_400.0])
    first = load_errors(7, 1.75e9, leads)
    assert first[0] == 0.0
    np.testing.assert_array_equal(first, load_errors(7, 1.75e9, leads))
    assert not np.array_equal(first, load_errors(8, 1.75e9, leads))


def test_the_rms_error_at_24_h_is_about_sigma() -> None:
    errors = np.array([load_errors(seed, 1.75e9, [86_400.0])[0] for seed in range(400)])
    assert float(np.sqrt(np.mean(errors**2))) == pytest.approx(SIGMA_24H, rel=0.15)


def test_the_forecast_load_is_never_negative() -> None:
    assert forecast_load_w([100.0, 100.0], [-1.5, 0.2]).tolist() == [0.0, pytest.approx(120.0)]
