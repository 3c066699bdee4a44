import dataclasses
from pathlib import Path

import pytest

from edge_controller.config.changes import config_changes, in_force
from edge_controller.config.files import fingerprint, load, merge
from edge_controller.config.schema import ConfigError, parse_config, tls_problem
from tests.test_config import ENV, GOOD

MAIN = """
[microgrid]
url = "grpc://127.0.0.1:1?ssl=false"
id = 7
[dispatch]
url = "grpc://127.0.0.1:2?ssl=false"
[controls]
power_limit = "500 kW"
[[use_cases]]
kind = "battery_power"
name = "main"
"""


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "ctl.toml"
    path.write_text(MAIN)
    (tmp_path / "ctl.toml.d").mkdir()
    return path


def test_drop_ins_override_key_by_key_in_name_order(config_file: Path) -> None:
    drop_ins = config_file.parent / "ctl.toml.d"
    (drop_ins / "50-b.toml").write_text('[controls]\npower_limit = "300 kW"\n')
    (drop_ins / "10-a.toml").write_text('[controls]\npower_limit = "100 kW"\nmode = "observe"\n')
    (drop_ins / "notes.txt").write_text("not toml, not read")
    config = load(config_file, environ=ENV)
    assert config.controls.power_limit_w == 300_000  # 50-b wins over 10-a
    assert config.controls.mode == "observe"  # from 10-a, untouched by 50-b
    assert config.dispatch.microgrid_id == 7  # defaults to microgrid.id
    assert config.microgrid.url == "grpc://127.0.0.1:1?ssl=false"


def test_an_error_names_the_drop_in_that_set_the_key(config_file: Path) -> None:
    drop_ins = config_file.parent / "ctl.toml.d"
    (drop_ins / "20-limits.toml").write_text('[controls]\npower_limit = "lots"\n')
    (drop_ins / "30-use.toml").write_text('[[use_cases]]\nkind = "peak"\n')
    with pytest.raises(ConfigError) as caught:
        load(config_file, environ=ENV)
    lines = caught.value.lines
    assert any(
        line.startswith("ctl.toml.d/20-limits.toml: controls.power_limit:") for line in lines
    )
    assert any(line.startswith("ctl.toml.d/30-use.toml: use_cases[0].kind:") for line in lines)
    # A key nobody set is reported against the main file.
    assert not any("ctl.toml.d" in line and "microgrid" in line for line in lines)


def test_broken_toml_in_a_drop_in_is_named(config_file: Path) -> None:
    (config_file.parent / "ctl.toml.d" / "99-x.toml").write_text("[controls\n")
    with pytest.raises(ConfigError, match=r"ctl.toml.d/99-x.toml: not valid TOML"):
        load(config_file, environ=ENV)


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope.toml: cannot read: No such file"):
        load(tmp_path / "nope.toml", environ=ENV)


def test_lists_are_replaced_whole_and_tables_merge() -> None:
    merged, origins = merge(
        [
            ("a", {"use_cases": [{"kind": "x"}, {"kind": "y"}], "t": {"p": 1, "q": 2}}),
            ("b", {"use_cases": [{"kind": "z"}], "t": {"q": 3}}),
        ]
    )
    assert merged == {"use_cases": [{"kind": "z"}], "t": {"p": 1, "q": 3}}
    assert origins == {"use_cases": "b", "t": "a", "t.q": "b"}


def test_a_new_drop_in_changes_the_fingerprint(config_file: Path) -> None:
    before = fingerprint(config_file)
    (config_file.parent / "ctl.toml.d" / "10-new.toml").write_text("")
    assert fingerprint(config_file) != before


def test_the_key_comes_from_the_systemd_credential(tmp_path: Path) -> None:
    (tmp_path / "dispatch-key").write_text("from-credential\n")
    config = parse_config(GOOD, environ={"CREDENTIALS_DIRECTORY": str(tmp_path)})
    assert config.dispatch.auth_key == "from-credential"
    assert "from-credential" not in repr(config)


def test_a_loopback_dispatch_url_with_tls_left_on_is_flagged() -> None:
    assert tls_problem("grpc://127.0.0.1:50052") is not None
    assert tls_problem("grpc://localhost:50052") is not None
    assert tls_problem("grpc://127.0.0.1:50052?ssl=false") is None
    assert tls_problem("grpc://127.0.0.1:1?ssl_root_certificates_path=ca.pem") is None
    assert tls_problem("grpc://dispatch.example.com:443") is None


def test_operator_controls_logging_metrics_and_supervision_are_read() -> None:
    document = {
        **GOOD,
        "controls": {"mode": "observe", "excluded_batteries": [21], "power_limit": "0.5 MW"},
        "logging": {"level": "warning", "levels": {"grpc": "error"}},
        "metrics": {"listen": ""},
        "supervision": {"restart_limit": 0},
    }
    config = parse_config(document, environ=ENV)
    assert config.controls.mode == "observe"
    assert config.controls.excluded_batteries == {21}
    assert config.controls.power_limit_w == 500_000
    assert config.logging.levels == {"grpc": "error"}
    assert config.metrics.listen is None
    assert config.supervision.restart_limit == 0


def test_changes_are_split_into_live_and_restart_needed() -> None:
    old = parse_config(GOOD, environ=ENV)
    new = dataclasses.replace(
        old,
        microgrid=dataclasses.replace(old.microgrid, url="grpc://127.0.0.1:9?ssl=false"),
        controls=dataclasses.replace(old.controls, power_limit_w=1000.0),
        use_cases=(
            dataclasses.replace(old.use_cases[0], dispatch_types=("OTHER",)),
            dataclasses.replace(old.use_cases[0], name="second"),
        ),
    )
    changes = config_changes(old, new)
    assert changes.restart_needed == ("microgrid.url",)
    assert changes.live == ("controls.power_limit_w",)
    assert changes.use_cases_changed == ("battery_power_0",)
    assert changes.use_cases_added == ("second",)
    applied = in_force(old, new)
    assert applied.microgrid.url == old.microgrid.url  # kept until a restart
    assert applied.controls.power_limit_w == 1000.0
    assert config_changes(old, old).empty


MARKET_BID = {
    "trading_url": "grpc://127.0.0.1:1?ssl=false",
    "weather_url": "grpc://127.0.0.1:2?ssl=false",
    "latitude": 52.52,
    "longitude": 13.405,
}


def test_a_table_a_use_case_owns_applies_at_the_next_start() -> None:
    env = {**ENV, "EDGE_CONTROLLER_TRADING_KEY": "t"}
    old = parse_config({**GOOD, "market_bid": MARKET_BID}, environ=env)
    moved = parse_config({**GOOD, "market_bid": {**MARKET_BID, "latitude": 48.1}}, environ=env)
    changes = config_changes(old, moved)
    assert changes.restart_needed == ("market_bid.latitude",)
    assert not changes.live
    assert not changes.use_cases_changed
    assert in_force(old, moved).sections == old.sections  # the old table runs on
    removed = parse_config(GOOD, environ=env)
    assert config_changes(old, removed).restart_needed == ("market_bid",)
    assert config_changes(removed, old).restart_needed == ("market_bid",)
    assert config_changes(old, old).empty
