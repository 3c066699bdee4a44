import tomllib
from pathlib import Path
from typing import Any

import pytest

from edge_controller.config.files import load as load_config
from edge_controller.config.schema import ConfigError, parse_config
from edge_controller.framework.use_case import GridConfig
from edge_controller.power.meter_limits import MeterLimit

ENV = {"EDGE_CONTROLLER_DISPATCH_KEY": "k"}
BASE = """
[microgrid]
url = "grpc://127.0.0.1:1?ssl=false"

[dispatch]
url = "grpc://127.0.0.1:2?ssl=false"
microgrid_id = 1

[[use_cases]]
kind = "battery_power"

[grid]
max_import = "800 kW"
"""


def document(grid_meters: str) -> dict[str, Any]:
    return tomllib.loads(BASE + grid_meters)


def grid(grid_meters: str) -> GridConfig:
    return parse_config(document(grid_meters), "ctl.toml", environ=ENV).grid


def problems(doc: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(doc, "ctl.toml", environ=ENV)
    return str(caught.value).splitlines()


def meter_problems(grid_meters: str) -> list[str]:
    return problems(document(grid_meters))


def test_meter_limits_are_read_in_watts() -> None:
    config = grid(
        """
[[grid.meters]]
id = 3
max_import = "150 kW"
max_export = 20000

[[grid.meters]]
id = 4
max_export = "1.5 MW"
"""
    )
    assert config.meters == (
        MeterLimit(3, max_import_w=150_000.0, max_export_w=20_000.0),
        MeterLimit(4, max_import_w=None, max_export_w=1_500_000.0),
    )
    assert config.max_import_w == 800_000.0  # the connection's own limit is untouched


def test_no_meters_and_an_empty_list_mean_no_meter_limits() -> None:
    assert grid("") == GridConfig(max_import_w=800_000.0)
    assert grid("meters = []\n").meters == ()


def test_a_zero_limit_is_allowed() -> None:
    assert grid("[[grid.meters]]\nid = 3\nmax_export = 0\n").meters == (MeterLimit(3, None, 0.0),)


def test_a_file_with_meter_limits_loads(tmp_path: Path) -> None:
    path = tmp_path / "ctl.toml"
    path.write_text(BASE + '[[grid.meters]]\nid = 3\nmax_import = "150 kW"\n')
    config = load_config(path, environ=ENV)
    assert config.grid.meters == (MeterLimit(3, 150_000.0, None),)


def test_an_unknown_key_is_named_with_its_index_and_a_suggestion() -> None:
    lines = meter_problems(
        """
[[grid.meters]]
id = 3
max_import = "150 kW"

[[grid.meters]]
id = 4
max_imprt = "100 kW"
"""
    )
    assert any(
        line.startswith(
            "ctl.toml: grid.meters[1].max_imprt: unknown key (did you mean 'max_import'?)"
        )
        for line in lines
    ), lines
    # with its only limit misspelt the table has no limit at all: that is said too
    assert any(
        line.startswith("ctl.toml: grid.meters[1]: expected max_import and/or max_export")
        for line in lines
    ), lines
    assert not any("grid.meters[0]" in line for line in lines), lines


def test_a_table_without_any_limit_is_an_error() -> None:
    lines = meter_problems("[[grid.meters]]\nid = 3\n")
    assert lines == ["ctl.toml: grid.meters[0]: expected max_import and/or max_export, got a table"]


def test_a_duplicate_id_names_the_second_entry() -> None:
    lines = meter_problems(
        """
[[grid.meters]]
id = 3
max_import = "150 kW"

[[grid.meters]]
id = 3
max_export = "10 kW"
"""
    )
    assert len(lines) == 1, lines
    assert lines[0].startswith("ctl.toml: grid.meters[1].id: expected an id not listed before")
    assert lines[0].endswith("got 3")


@pytest.mark.parametrize(
    ("entry", "path", "shown"),
    [
        ('max_import = "-5 kW"', "grid.meters[0].max_import", "'-5 kW'"),
        ("max_export = -1", "grid.meters[0].max_export", "-1"),
        ('max_import = "lots"', "grid.meters[0].max_import", "'lots'"),
        ("max_import = nan", "grid.meters[0].max_import", "nan"),
        ("max_import = inf", "grid.meters[0].max_import", "inf"),
    ],
)
def test_a_negative_or_unreadable_limit_names_its_key(entry: str, path: str, shown: str) -> None:
    lines = meter_problems(f"[[grid.meters]]\nid = 3\n{entry}\n")
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"ctl.toml: {path}: expected a power >= 0"), lines
    assert lines[0].endswith(f"got {shown}"), lines


@pytest.mark.parametrize("bad_id", ["0", "-3", '"3"', "3.0", "true"])
def test_a_bad_id_names_its_key(bad_id: str) -> None:
    lines = meter_problems(f"[[grid.meters]]\nid = {bad_id}\nmax_import = 5\n")
    assert len(lines) == 1, lines
    assert lines[0].startswith("ctl.toml: grid.meters[0].id: expected a meter's component id > 0")


def test_a_missing_id_names_its_key() -> None:
    lines = meter_problems("[[grid.meters]]\nmax_import = 5\n")
    assert lines == ["ctl.toml: grid.meters[0].id: missing; expected a meter's component id > 0"]


def test_an_item_that_is_not_a_table_is_named_by_its_index() -> None:
    lines = meter_problems('meters = [{ id = 3, max_import = 5 }, 7, "4"]\n')
    assert any(
        line.startswith("ctl.toml: grid.meters[1]: expected a table with id") and "got 7" in line
        for line in lines
    ), lines
    assert any(
        line.startswith("ctl.toml: grid.meters[2]: expected a table with id") and "got '4'" in line
        for line in lines
    ), lines
    assert not any("grid.meters[0]" in line for line in lines), lines


@pytest.mark.parametrize(
    ("value", "shown"),
    [("5", "got 5"), ('"3"', "got '3'"), ("{ id = 3, max_import = 5 }", "got a table")],
)
def test_meters_that_is_not_a_list_is_an_error(value: str, shown: str) -> None:
    lines = meter_problems(f"meters = {value}\n")
    assert lines == [f"ctl.toml: grid.meters: expected a list of [[grid.meters]] tables, {shown}"]


def test_every_meter_problem_is_listed_at_once() -> None:
    lines = meter_problems(
        """
[[grid.meters]]
id = 0
max_import = 5

[[grid.meters]]
id = 4
max_export = "-1 kW"

[[grid.meters]]
id = 5
"""
    )
    paths = sorted(line.split(": ")[1] for line in lines)
    assert paths == ["grid.meters[0].id", "grid.meters[1].max_export", "grid.meters[2]"], lines
