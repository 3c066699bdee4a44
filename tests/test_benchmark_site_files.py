"""The benchmarks' TOML writer: what it writes, tomllib reads back as it was given."""

from __future__ import annotations

import math
import tomllib

import pytest
from benchmarks.battery_sites import battery_site_document
from benchmarks.site_processes import toml_text

from edge_controller.servers.sim.site import parse_site


def test_a_battery_site_reads_back_equal_and_parses() -> None:
    document = battery_site_document(5)
    assert tomllib.loads(toml_text(document)) == document
    assert len(parse_site(tomllib.loads(toml_text(document)), "<bench>").components) == 14


def test_a_controller_config_with_quoted_and_inline_keys_reads_back() -> None:
    document = {
        "microgrid": {"url": "grpc://127.0.0.1:1?ssl=false", "id": 3},
        "power_distribution": {"resolutions": {"1000": 8.0, "1001": 16.0}},
        "logging": {"levels": {"edge_controller.controller": "debug", "grpc": "warning"}},
        "use_cases": [{"kind": "battery_power", "dispatch_types": ["BATTERY_POWER"]}],
    }
    assert tomllib.loads(toml_text(document)) == document


@pytest.mark.parametrize("value", [None, math.nan, object()])
def test_a_value_without_a_toml_form_is_refused(value: object) -> None:
    with pytest.raises((TypeError, ValueError)):
        toml_text({"table": {"key": value}})
