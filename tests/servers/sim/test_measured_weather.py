"""Measured weather in the simulator: the site option, and production that follows it.

With `[weather] source = "measured"` the simulator's PV and wind make what the shared
production models (`weather.production`) give for the measured weather at the
microgrid's location, at the simulation time (not the wall time).
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from edge_controller.common.clock import ManualClock
from edge_controller.servers.sim.measured_weather import (
    Producers,
    equivalent_weather,
    measured_production,
    measured_weather,
    site_location,
)
from edge_controller.servers.sim.model import SiteModel
from edge_controller.servers.sim.service import SimService
from edge_controller.servers.sim.site import (
    SiteFileError,
    SiteSpec,
    WeatherSource,
    load_site,
    parse_site,
)
from edge_controller.servers.sim.site_details import ComponentKind, PvSpec, WindSpec
from edge_controller.weather.data import (
    DEFAULT_ALBEDO,
    WeatherSeries,
    actual_weather,
    bundled_datasets,
    nearest_dataset,
)
from edge_controller.weather.messages import GeoLocation
from edge_controller.weather.production import (
    SMALL_TURBINE_HUB_HEIGHT_M,
    pv_power_w,
    wind_power_w,
)
from edge_controller.weather.wind import wind_speed_at_height
from tests.conftest import EXAMPLE_SITE, LARGE_SITE

JUNE_MORNING = datetime(2026, 6, 21, 10, 0, tzinfo=UTC)
JUNE_NIGHT = datetime(2026, 6, 21, 23, 0, tzinfo=UTC)
WALL_START = datetime(2030, 1, 1, 0, 0, tzinfo=UTC)
"""The manual clock's start: far from the simulated day, so only simulation time counts."""
BERLIN = (52.52, 13.405)
SAND_POINT = (55.34, -160.5)
PV_ID, WIND_ID = 50, 60


# ---------------------------------------------------------------------- helpers


def minimal(weather: dict[str, Any]) -> dict[str, Any]:
    return {
        "microgrid": {"id": 7},
        "weather": weather,
        "components": [
            {"id": 1, "kind": "grid"},
            {"id": 2, "kind": "pv_inverter", "parent": 1, "peak_power": "10 kW"},
        ],
    }


def measured_example(
    start: datetime, location: tuple[float, float] = BERLIN, country: str = "DE"
) -> SiteSpec:
    """The shipped example site with its commented `source = "measured"` switched on."""
    text = EXAMPLE_SITE.read_text(encoding="utf-8")
    switched = text.replace('# source = "measured"', 'source = "measured"', 1)
    assert switched != text, "the example site lost its commented measured-weather line"
    document = tomllib.loads(switched)
    microgrid = document["microgrid"]
    microgrid["latitude"], microgrid["longitude"] = location
    microgrid["country_code"] = country
    document["simulation"]["start_time"] = start
    return parse_site(document, "sim-site.toml")


def measured_at(site: SiteSpec, moment: datetime) -> tuple[GeoLocation, WeatherSeries]:
    location = GeoLocation(site.microgrid.latitude, site.microgrid.longitude)
    dataset = nearest_dataset(location, bundled_datasets())
    return location, actual_weather(dataset, location, moment.timestamp())


def expected_pv_w(site: SiteSpec, moment: datetime, peak_w: float) -> float:
    location, weather = measured_at(site, moment)
    return pv_power_w(
        float(weather.ghi_wm2[0]),
        float(weather.temperature_c[0]),
        moment,
        location,
        peak_w,
        wind_speed_ms=float(weather.wind_speed_10m_ms[0]),
    )


def expected_wind_w(site: SiteSpec, moment: datetime, rated_w: float) -> float:
    _, weather = measured_at(site, moment)
    hub = wind_speed_at_height(weather.wind_speed_10m_ms, SMALL_TURBINE_HUB_HEIGHT_M)
    return wind_power_w(float(hub[0]), rated_w)


def details(site: SiteSpec, component_id: int) -> Any:
    return site.by_id[component_id].details


# ---------------------------------------------------------------------- the option


def test_the_source_defaults_to_the_file_and_the_shipped_site_keeps_it() -> None:
    assert parse_site(minimal({})).weather.source is WeatherSource.FILE
    assert load_site(EXAMPLE_SITE).weather.source is WeatherSource.FILE


@pytest.mark.parametrize(
    ("raw", "source"), [("file", WeatherSource.FILE), ("measured", WeatherSource.MEASURED)]
)
def test_the_source_parses(raw: str, source: WeatherSource) -> None:
    site = parse_site(minimal({"source": raw, "irradiance": 500}))
    assert site.weather.source is source
    assert site.weather.irradiance_w_m2 == (500.0,)


@pytest.mark.parametrize(
    ("raw", "shown"), [("tmy3", "'tmy3'"), (1, "1"), (["measured"], "['measured']")]
)
def test_a_bad_source_is_a_precise_error(raw: object, shown: str) -> None:
    with pytest.raises(SiteFileError) as caught:
        parse_site(minimal({"source": raw}), "site.toml")
    assert str(caught.value).splitlines() == [
        f"site.toml: weather.source: expected 'file' or 'measured', got {shown}"
    ]


def test_the_shipped_comment_switches_the_example_site_to_measured_weather() -> None:
    site = measured_example(JUNE_MORNING)
    assert site.weather.source is WeatherSource.MEASURED
    assert site.simulation.start_time == JUNE_MORNING


# ---------------------------------------------------------------------- production


def test_pv_follows_the_shared_model_on_a_june_morning() -> None:
    site = measured_example(JUNE_MORNING)
    location, _ = measured_at(site, JUNE_MORNING)
    assert nearest_dataset(location, bundled_datasets()).albedo == DEFAULT_ALBEDO  # pv_power_w's
    service = SimService(site, clock=ManualClock(WALL_START))
    service.tick()
    expected = expected_pv_w(site, JUNE_MORNING, details(site, PV_ID).peak_power_w)
    assert expected < -50_000.0  # a sunny morning: the check means something
    assert service.model.ac_power_w(PV_ID) == pytest.approx(expected, abs=0.5)


def test_pv_is_zero_at_night() -> None:
    site = measured_example(JUNE_NIGHT)
    service = SimService(site, clock=ManualClock(WALL_START))
    service.tick()
    assert service.model.ac_power_w(PV_ID) == 0.0
    assert service.model.site.weather.irradiance_w_m2 == (0.0,)


@pytest.mark.parametrize(
    ("location", "country"), [(BERLIN, "DE"), (SAND_POINT, "US")], ids=["berlin", "sand_point"]
)
@pytest.mark.parametrize("moment", [JUNE_MORNING, JUNE_NIGHT, datetime(2026, 1, 15, 4, tzinfo=UTC)])
def test_wind_follows_the_shared_model_for_the_measured_hub_wind(
    location: tuple[float, float], country: str, moment: datetime
) -> None:
    site = measured_example(moment, location, country)
    service = SimService(site, clock=ManualClock(WALL_START))
    service.tick()
    expected = expected_wind_w(site, moment, details(site, WIND_ID).rated_power_w)
    assert service.model.ac_power_w(WIND_ID) == pytest.approx(expected, abs=0.5)


def test_production_follows_simulation_time_at_speed() -> None:
    """At speed 120 one 0.5 s tick is a simulated minute: the weather keeps up with it."""
    start = datetime(2026, 6, 21, 5, 0, tzinfo=UTC)
    site = measured_example(start)
    clock = ManualClock(WALL_START)
    service = SimService(site, clock=clock, speed=120.0)
    peak_w, rated_w = details(site, PV_ID).peak_power_w, details(site, WIND_ID).rated_power_w
    pv_seen, wind_seen = [], []
    for _ in range(90):  # 05:00 .. 06:30 simulated, 45 s of wall time
        clock.advance(0.5)
        service.tick()
        moment = service.model.sim_time
        pv_seen.append(service.model.ac_power_w(PV_ID))
        wind_seen.append(service.model.ac_power_w(WIND_ID))
        assert pv_seen[-1] == pytest.approx(expected_pv_w(site, moment, peak_w), abs=0.5)
        assert wind_seen[-1] == pytest.approx(expected_wind_w(site, moment, rated_w), abs=0.5)
    assert service.model.sim_time == start + timedelta(minutes=90)
    assert len(set(pv_seen)) > 80  # the sun rises: PV changes every simulated minute
    assert any(-rated_w < w < 0 for w in wind_seen)  # between cut-in and rated


def test_the_weather_is_refreshed_once_per_interval_not_per_tick() -> None:
    site = measured_example(JUNE_MORNING)
    clock = ManualClock(WALL_START)
    service = SimService(site, clock=clock)
    assert service.weather_refreshes == 1  # at start, before any tick
    for _ in range(300):  # 150 s at speed 1, two ticks a second
        clock.advance(0.5)
        service.tick()
    assert service.ticks == 300
    assert service.weather_refreshes == 3  # start, +60 s, +120 s


def test_a_longer_interval_refreshes_less() -> None:
    site = measured_example(JUNE_MORNING)
    clock = ManualClock(WALL_START)
    service = SimService(site, clock=clock, weather_update_interval=timedelta(minutes=15))
    clock.advance(timedelta(minutes=14))
    service.tick()
    assert service.weather_refreshes == 1
    clock.advance(timedelta(minutes=1))
    service.tick()
    assert service.weather_refreshes == 2


def test_the_update_interval_must_be_positive() -> None:
    with pytest.raises(ValueError, match="weather_update_interval"):
        SimService(load_site(EXAMPLE_SITE), weather_update_interval=timedelta(0))


def test_file_weather_is_left_alone() -> None:
    site = load_site(EXAMPLE_SITE)
    clock = ManualClock(WALL_START)
    service = SimService(site, clock=clock)
    clock.advance(timedelta(hours=2))
    service.tick()
    assert service.weather_refreshes == 0
    assert service.model.site.weather is site.weather


def test_every_pv_inverter_makes_its_share_on_a_site_with_many() -> None:
    site = load_site(LARGE_SITE)
    model = SiteModel(site, JUNE_MORNING)
    model.site = replace(site, weather=measured_weather(site, site_location(site), JUNE_MORNING))
    model.step(JUNE_MORNING)
    pv = [c for c in site.components if c.kind is ComponentKind.PV_INVERTER]
    assert len({details(site, c.id).peak_power_w for c in pv}) > 1
    for component in pv:
        assert isinstance(component.details, PvSpec)
        expected = expected_pv_w(site, JUNE_MORNING, component.details.peak_power_w)
        assert model.ac_power_w(component.id) == pytest.approx(expected, rel=1e-9, abs=1e-6)
    wind = [c for c in site.components if isinstance(c.details, WindSpec)]
    production = measured_production(Producers.of(site), site_location(site), JUNE_MORNING)
    assert sum(model.ac_power_w(c.id) for c in wind) == pytest.approx(production.wind_w, abs=0.5)


def test_equivalent_weather_is_marked_measured_and_needs_an_aware_moment() -> None:
    producers = Producers(
        pv_peak_w=100_000.0, wind_rated_w=0.0, wind_curve=((0.0, 0.0), (1.0, 0.0))
    )
    weather = equivalent_weather(producers, -25_000.0, 0.0, 12.0)
    assert weather.source is WeatherSource.MEASURED
    assert weather.irradiance_w_m2 == (250.0,)
    assert weather.wind_speed_m_s == (0.0,)
    with pytest.raises(ValueError, match="timezone-aware"):
        measured_production(producers, GeoLocation(*BERLIN), datetime(2026, 6, 21, 10))


# ---------------------------------------------------------------------- start-up cost


def test_file_weather_never_imports_the_weather_models() -> None:
    """`edge-controller sim` with the file's weather starts without `pvlib`."""
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "import edge_controller.tools.cli\n"
        "from edge_controller.servers.sim.server import SimulatorServer\n"
        "from edge_controller.servers.sim.site import load_site\n"
        f"server = SimulatorServer(load_site(Path({str(EXAMPLE_SITE)!r})))\n"
        "server.service.tick()\n"
        "loaded = sorted(m for m in sys.modules\n"
        "                if m.split('.')[0] in {'pvlib', 'windpowerlib', 'pandas'}\n"
        "                or m.startswith(('edge_controller.weather.production',\n"
        "                                 'edge_controller.weather.data')))\n"
        "print(loaded)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "[]"
