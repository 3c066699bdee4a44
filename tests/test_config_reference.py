"""docs/config-reference.md is what the key specs render, and covers every accepted key."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from edge_controller.cli import main
from edge_controller.config import CONFIG_SECTIONS, ConfigError, parse_config
from edge_controller.config_reference import DEFAULT_PATH, REGENERATE, reference_markdown

ROOT = Path(__file__).resolve().parents[1]
COMMITTED = ROOT / DEFAULT_PATH
EXAMPLE = ROOT / "config" / "edge-controller.toml"


def test_the_committed_reference_is_what_the_generator_renders_now() -> None:
    committed = COMMITTED.read_text(encoding="utf-8") if COMMITTED.exists() else ""
    assert committed == reference_markdown(), (
        f"{DEFAULT_PATH} is out of date with the config key specs: run "
        f"`{REGENERATE}` from the repository root (or `.venv/bin/{REGENERATE}`) and commit it"
    )


def test_every_section_and_key_of_the_specs_is_in_the_reference() -> None:
    text = reference_markdown()
    for section in CONFIG_SECTIONS:
        assert f"## `{section.header}`" in text
        for spec in section.keys:
            assert f"| `{spec.key}` |" in text, f"{section.name}.{spec.key}"


def test_every_key_of_the_example_config_has_a_spec() -> None:
    document = tomllib.loads(EXAMPLE.read_text(encoding="utf-8"))
    for section, table in document.items():
        known = set().union(*(s.names for s in CONFIG_SECTIONS if s.name == section))
        for item in table if isinstance(table, list) else [table]:
            for key in item:
                assert key in known, f"{section}.{key}"


def test_an_unknown_key_is_refused_with_the_keys_of_the_spec() -> None:
    document = tomllib.loads(EXAMPLE.read_text(encoding="utf-8"))
    document["controls"]["power_limt"] = "1 MW"
    with pytest.raises(ConfigError) as caught:
        parse_config(document, "x.toml", base_dir=EXAMPLE.parent, environ={})
    controls = next(s for s in CONFIG_SECTIONS if s.name == "controls")
    assert f"did you mean 'power_limit'?); expected one of {sorted(controls.names)}" in str(
        caught.value
    )


def test_live_and_restart_follow_the_section_specs() -> None:
    text = reference_markdown()
    assert (
        "## `[controls]`\n\nWhat the operator allows the controller to do. Applies: **live**."
        in (text)
    )
    assert "Applies: **restart**." in text.split("## `[metrics]`")[1].split("##")[0]


def test_check_config_reference_writes_the_file_or_stdout(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "docs" / "reference.md"
    assert main(["check-config", "--reference", str(target)]) == 0
    assert target.read_text(encoding="utf-8") == reference_markdown()
    capsys.readouterr()
    assert main(["check-config", "--reference", "-"]) == 0
    assert capsys.readouterr().out == reference_markdown()


def test_check_config_without_a_file_or_reference_is_bad_input(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["check-config"]) == 2
    assert "config" in capsys.readouterr().err
