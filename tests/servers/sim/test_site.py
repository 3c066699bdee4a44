from pathlib import Path
from typing import Any

import pytest

from edge_controller.servers.sim.fault_spec import FaultKind
from edge_controller.servers.sim.site import (
    SensorKind,
    SensorSpec,
    SiteFileError,
    load_site,
    parse_site,
)
from edge_controller.servers.sim.site_details import BatterySpec, ComponentKind
from tests.conftest import EXAMPLE_SITE, LARGE_SITE


def minimal(**extra_components: Any) -> dict[str, Any]:
    return {
        "microgrid": {"id": 7},
        "components": [
            {"id": 1, "kind": "grid"},
            {"id": 2, "kind": "meter", "parent": 1},
            {
                "id": 3,
                "kind": "battery_inverter",
                "parent": 2,
                "active_power_bounds": ["-10 kW", "10 kW"],
            },
            {
                "id": 4,
                "kind": "battery",
                "parent": 3,
                "capacity": "20 kWh",
                "initial_soc": 50,
                "power_bounds": [-10_000, 10_000],
                **extra_components,
            },
        ],
    }


def problems(document: dict[str, Any]) -> list[str]:
    with pytest.raises(SiteFileError) as caught:
        parse_site(document, "site.toml")
    return str(caught.value).splitlines()


def test_example_sites_load_and_are_big_enough_to_trade() -> None:
    site = load_site(EXAMPLE_SITE)
    batteries = [c for c in site.components if c.kind is ComponentKind.BATTERY]
    assert 3 <= len(batteries) <= 4
    details = [c.details for c in batteries if isinstance(c.details, BatterySpec)]
    capacity_wh = sum(d.capacity_wh for d in details)
    discharge_w = sum(-d.power_bounds.lower for d in details)
    assert capacity_wh >= 800_000
    assert discharge_w >= 400_000
    assert {c.kind for c in site.components} >= {
        ComponentKind.GRID,
        ComponentKind.METER,
        ComponentKind.PV_INVERTER,
        ComponentKind.WIND_TURBINE,
        ComponentKind.LOAD,
    }


def test_large_site_has_at_least_200_components() -> None:
    if not LARGE_SITE.exists():
        pytest.fail("config/sim-site-large.toml is missing")
    assert len(load_site(LARGE_SITE).components) >= 200


def test_quantities_accept_units_and_base_units() -> None:
    site = parse_site(minimal())
    battery = site.by_id[4].details
    assert battery.capacity_wh == 20_000  # type: ignore[union-attr]
    assert site.by_id[3].details.active_bounds.upper == 10_000  # type: ignore[union-attr]
    assert site.connections == ((1, 2), (2, 3), (3, 4))


def test_error_names_file_key_path_expectation_and_value() -> None:
    document = minimal()
    document["components"][3]["capacity"] = -5
    assert "site.toml: components[3].capacity: expected energy > 0, got -5" in problems(document)


def test_unknown_key_suggests_the_right_one() -> None:
    lines = problems(minimal(initial_sco=4))
    assert any(
        "components[3].initial_sco: unknown key (did you mean 'initial_soc'?)" in line
        for line in lines
    )


def test_every_problem_is_reported_at_once() -> None:
    document = minimal()
    document["microgrid"]["id"] = "seven"
    document["components"][2]["active_power_bounds"] = ["10 kW", "-10 kW"]
    document["components"][3]["initial_soc"] = 140
    lines = problems(document)
    assert any(line.startswith("site.toml: microgrid.id: expected an integer id") for line in lines)
    assert any("components[2].active_power_bounds" in line for line in lines)
    assert any(
        "components[3].initial_soc: expected a percentage 0-100, got 140" in line for line in lines
    )


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            lambda d: d["components"][3].update(parent=2),
            "expected a battery_inverter (or a precharger below one) for a battery",
        ),
        (
            lambda d: d["components"][1].update(parent=99),
            "expected an existing component id, got 99",
        ),
        (lambda d: d["components"].append({"id": 1, "kind": "meter", "parent": 1}), "unique id"),
        (
            lambda d: d["components"][0].update(kind="meter", parent=2),
            "exactly one component of kind 'grid'",
        ),
        (
            lambda d: d["components"][1].update(kind="reactor"),
            "components[1].kind: expected one of",
        ),
    ],
)
def test_topology_errors_are_specific(change: Any, expected: str) -> None:
    document = minimal()
    change(document)
    assert any(expected in line for line in problems(document)), problems(document)


def test_faults_parse_with_windows_and_reject_bad_ones() -> None:
    document = minimal()
    document["faults"] = [{"component": 3, "kind": "unresponsive", "from": 5, "until": 10}]
    site = parse_site(document)
    assert site.faults[0].kind is FaultKind.UNRESPONSIVE
    assert (site.faults[0].start_s, site.faults[0].until_s) == (5, 10)
    document["faults"] = [
        {"component": 3, "kind": "rpc_error", "from": 5, "until": 2, "status": "TEAPOT"}
    ]
    lines = problems(document)
    assert any("faults[0].status: expected one of" in line for line in lines)
    assert any("faults[0].until: expected a time after from (5" in line for line in lines)


def test_a_nan_metrics_fault_names_metrics_the_simulator_reports() -> None:
    # "soc" used to be taken and then matched nothing: the fault silently did nothing.
    document = minimal()
    document["faults"] = [{"component": 3, "kind": "nan_metrics", "metrics": ["soc"]}]
    (line,) = problems(document)
    assert "faults[0].metrics: expected a list of metric names, each one of" in line
    assert "'battery_soc_pct'" in line
    assert "got ['soc']" in line
    document["faults"] = [{"component": 3, "kind": "nan_metrics", "metrics": ["Battery_SoC_Pct"]}]
    assert parse_site(document).faults[0].metrics == ("Battery_SoC_Pct",)


def test_broken_toml_and_missing_file_name_the_file(tmp_path: Path) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text("[microgrid\nid = 1\n")
    with pytest.raises(SiteFileError, match=r"^broken\.toml: not valid TOML"):
        load_site(broken)
    with pytest.raises(SiteFileError, match="cannot read the file"):
        load_site(tmp_path / "absent.toml")


def test_a_sensor_kind_is_one_the_simulator_models() -> None:
    document = minimal() | {
        "sensors": [{"id": 90, "kind": "thermometer"}, {"id": 91, "kind": "hygrometer"}]
    }
    assert problems(document) == [
        "site.toml: sensors[1].kind: expected one of 'weather_station', 'thermometer', "
        "'pyranometer', 'anemometer', got 'hygrometer'"
    ]
    del document["sensors"][1]
    (thermometer,) = parse_site(document, "site.toml").sensors
    assert thermometer == SensorSpec(90, "thermometer 90", SensorKind.THERMOMETER)


def test_the_standby_wake_up_time_is_seconds_within_an_hour() -> None:
    assert problems(minimal() | {"simulation": {"standby_wake_time": -1}}) == [
        "site.toml: simulation.standby_wake_time: expected seconds, 0-3600, got -1"
    ]
    site = parse_site(minimal() | {"simulation": {"standby_wake_time": 180}}, "site.toml")
    assert site.simulation.standby_wake_s == 180.0
