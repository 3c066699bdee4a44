"""What is fixed for a whole run, read once: the site, the place, the weather.

`build_setup` reads the site's layout, places it (the scenario's coordinates, else the
site file's), picks the nearest bundled weather dataset, computes the actual
production of the run (`production`) and the market members' actual weather (the
market file's wind, or the measured one). Every decision of the loop reads the
`Setup`; none changes it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from edge_controller.power.distribution import DistributionAlgorithm, SocBalancing
from edge_controller.servers.market.model import MarketSpec, Weather, weather_from_spec
from edge_controller.tools.scenario.file import MarketWind, Scenario
from edge_controller.tools.scenario.layout import SiteLayout
from edge_controller.tools.scenario.production import (
    ActualProduction,
    actual_production,
    turbine_fraction,
)
from edge_controller.weather.data import Dataset, bundled_datasets, nearest_dataset
from edge_controller.weather.messages import GeoLocation


@dataclass(frozen=True, slots=True, eq=False)
class Setup:
    """Everything fixed for a run: the scenario, the site's layout, the weather."""

    scenario: Scenario
    layout: SiteLayout
    location: GeoLocation
    dataset: Dataset
    actual: ActualProduction
    market_weather: Weather
    """The actual weather of the market's members: clearing uses it."""
    algorithm: DistributionAlgorithm = field(default_factory=SocBalancing)

    @property
    def market(self) -> MarketSpec:
        """The market's spec."""
        return self.scenario.market

    @property
    def command_lifetime_s(self) -> int:
        """Two steps (at least 10 s, at most 900 s): each step renews the commands."""
        return int(min(900, max(10, math.ceil(2 * self.scenario.spec.step.total_seconds()))))


def build_setup(scenario: Scenario) -> Setup:
    """Read the layout, pick the weather dataset, compute the actual production.

    Raises:
        ScenarioError: a site the loop cannot run.
    """
    spec, site = scenario.spec, scenario.site
    layout = SiteLayout.of(site)
    location = GeoLocation(
        spec.latitude if spec.latitude is not None else site.microgrid.latitude,
        spec.longitude if spec.longitude is not None else site.microgrid.longitude,
        site.microgrid.country_code,
    )
    dataset = nearest_dataset(location, bundled_datasets())
    actual = actual_production(layout, spec, location, dataset)
    market_weather = (
        weather_from_spec(scenario.market)
        if spec.market_wind is MarketWind.FILE
        else Weather(actual.hub_wind_at, turbine_fraction)
    )
    return Setup(scenario, layout, location, dataset, actual, market_weather)


__all__ = ["Setup", "build_setup"]
