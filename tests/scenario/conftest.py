"""Scenario files for the tests: the shipped example and short windows of its day."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from edge_controller.servers.sim.model import SiteModel
    from edge_controller.tools.scenario.setup import Setup

CONFIG = Path(__file__).resolve().parents[2] / "config"
SHIPPED = CONFIG / "scenario-day.toml"
SITE = CONFIG / "sim-site.toml"
MARKET = CONFIG / "market-default.toml"


def scenario_text(
    *,
    start: str = "2025-06-21T06:00:00+02:00",
    duration: str = "2h",
    step: str = "60s",
    spread: float = 0.0,
    horizon: str = "1h",
    wind: str = "measured",
    kind: str = "threshold",
    extra: str = "",
) -> str:
    """A scenario on the shipped site and market.

    The default window (06:00–08:00 local, when prices climb the coal plant's curve to
    their plateau) with a zero price spread and a 1-hour horizon gives an order in every
    period with the threshold strategy: buys while the price is below the horizon's
    mean, sells once it is not. `kind = "optimal"` runs the optimizer instead.
    """
    return f"""
[scenario]
site = "{SITE}"
start = {start}
duration = "{duration}"
step = "{step}"
physics_step = "1s"
seed = 3

[market]
file = "{MARKET}"
wind = "{wind}"

[strategy]
reserve_soc = 20
price_spread = {spread}
max_volume = "500 kW"
horizon = "{horizon}"
kind = "{kind}"
{extra}
"""


@pytest.fixture
def short_scenario(tmp_path: Path) -> Path:
    """A 2-hour scenario at 60 s steps, trading in every period."""
    path = tmp_path / "short.toml"
    path.write_text(scenario_text(), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Setup:
    """The short scenario's setup: its site, place and weather, for the pure pieces."""
    from edge_controller.tools.scenario.file import load_scenario
    from edge_controller.tools.scenario.setup import build_setup

    path = tmp_path_factory.mktemp("scenario") / "short.toml"
    path.write_text(scenario_text(), encoding="utf-8")
    return build_setup(load_scenario(path))


def model_at(setup: Setup, now: datetime) -> SiteModel:
    """A fresh simulated site of `setup` at `now`, as a run starts it."""
    from edge_controller.servers.sim.model import SiteModel

    return SiteModel(setup.scenario.site, now)
