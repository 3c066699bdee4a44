from pathlib import Path
from typing import Any

import pytest

from edge_controller.config.files import load as load_config
from edge_controller.config.schema import ConfigError, parse_config
from edge_controller.use_cases import registry
from tests.conftest import ROOT

GOOD: dict[str, Any] = {
    "microgrid": {"url": "grpc://127.0.0.1:1?ssl=false"},
    "dispatch": {"url": "grpc://127.0.0.1:2?ssl=false", "microgrid_id": 1},
    "use_cases": [{"kind": "battery_power"}],
}
ENV = {"EDGE_CONTROLLER_DISPATCH_KEY": "k"}


def problems(document: dict[str, Any], environ: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(document, "ctl.toml", environ=ENV if environ is None else environ)
    return str(caught.value).splitlines()


def test_the_shipped_example_is_valid() -> None:
    config = load_config(ROOT / "config" / "edge-controller.toml", environ={})
    assert config.dispatch.microgrid_id == 1
    assert config.power_distribution.resolutions_w[10] == 88
    assert config.use_cases[0].dispatch_types == ("BATTERY_POWER",)
    assert "lab-key" not in repr(config)  # the key never shows in logs or reprs


def test_defaults_and_key_from_the_environment() -> None:
    config = parse_config(GOOD, environ=ENV)
    assert config.dispatch.auth_key == "k"
    assert config.power_distribution.algorithm == "soc_balancing"
    assert config.use_cases[0].dispatch_types == ("BATTERY_POWER",)


def test_every_problem_is_listed_with_its_key_path() -> None:
    document = {
        "microgrid": {"url": "http://x", "stale_aftr": 3},
        "dispatch": {"url": "grpc://h:1", "microgrid_id": 0},
        "power_distribution": {"keepalive_interval": 90, "command_lifetime": 60},
        "use_cases": [{"kind": "peak_shavings"}],
    }
    lines = problems(document, environ={})
    expected = [
        "ctl.toml: microgrid.url: expected a grpc://HOST:PORT URL",
        "ctl.toml: microgrid.stale_aftr: unknown key (did you mean 'stale_after'?)",
        "ctl.toml: dispatch.microgrid_id: expected an integer id > 0 (or set microgrid.id), got 0",
        "ctl.toml: dispatch.key_file: missing; expected a file holding the API key",
        "ctl.toml: power_distribution.keepalive_interval: expected less than command_lifetime",
        f"ctl.toml: use_cases[0].kind: expected one of {list(registry.entry_kinds())}, "
        "got 'peak_shavings'",
    ]
    for line in expected:
        assert any(found.startswith(line) for found in lines), (line, lines)


def test_key_file_relative_to_the_config_and_unreadable_ones(tmp_path: Path) -> None:
    (tmp_path / "key").write_text("secret\n")
    config_file = tmp_path / "ctl.toml"
    config_file.write_text(
        '[microgrid]\nurl = "grpc://127.0.0.1:1"\n'
        '[dispatch]\nurl = "grpc://127.0.0.1:2?ssl=false"\nmicrogrid_id = 1\nkey_file = "key"\n'
        '[[use_cases]]\nkind = "battery_power"\n'
    )
    assert load_config(config_file, environ={}).dispatch.auth_key == "secret"
    config_file.write_text(config_file.read_text().replace('"key"', '"absent"'))
    with pytest.raises(ConfigError, match=r"dispatch\.key_file: cannot read"):
        load_config(config_file, environ={})
    config_file.write_text("[microgrid\n")
    with pytest.raises(ConfigError, match=r"ctl\.toml: not valid TOML"):
        load_config(config_file, environ={})
