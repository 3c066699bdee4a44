"""docs/config-reference.md is what the key specs render, and covers every accepted key."""

from __future__ import annotations

import shlex
import tomllib
from pathlib import Path

import pytest

from edge_controller.config.reference import (
    DEFAULT_PATH,
    HEADER,
    REGENERATE,
    reference_markdown,
)
from edge_controller.config.schema import CONFIG_SECTIONS, ConfigError, parse_config
from edge_controller.tools.cli import main

ROOT = Path(__file__).resolve().parents[1]
COMMITTED = ROOT / DEFAULT_PATH
EXAMPLE = ROOT / "config" / "edge-controller.toml"


def test_the_committed_reference_is_what_the_generator_renders_now() -> None:
    committed = COMMITTED.read_text(encoding="utf-8") if COMMITTED.exists() else ""
    assert committed == reference_markdown(), (
        f"{DEFAULT_PATH} is out of date with the config key specs: run "
        f"`.venv/bin/{REGENERATE}` from the repository root and commit it"
    )


def test_the_regenerate_command_of_the_hint_writes_the_reference(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # The hint above and the file's header name this command: it must still work,
    # over a missing file and over an earlier reference alike.
    assert "--reference-out docs/config-reference.md" in REGENERATE
    monkeypatch.chdir(tmp_path)
    (tmp_path / "docs").mkdir()
    program, *args = shlex.split(REGENERATE)
    assert program == "edge-controller"
    for _ in range(2):
        assert main(args) == 0
        assert (tmp_path / DEFAULT_PATH).read_text(encoding="utf-8") == reference_markdown()
    assert capsys.readouterr().err == ""


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


def test_reference_prints_to_stdout_and_reference_out_writes_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["check-config", "--reference"]) == 0
    assert capsys.readouterr().out == reference_markdown()

    target = tmp_path / "reference.md"
    assert main(["check-config", "--reference-out", str(target)]) == 0
    assert target.read_text(encoding="utf-8") == reference_markdown()
    assert reference_markdown().startswith(HEADER)


def test_reference_with_a_config_after_it_is_bad_input_and_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # `check-config --reference site.toml` once wrote the reference over site.toml.
    monkeypatch.chdir(tmp_path)
    site = tmp_path / "site.toml"
    site.write_text("x = 1\n", encoding="utf-8")

    assert main(["check-config", "--reference", "site.toml"]) == 2
    captured = capsys.readouterr()
    assert captured.err == (
        "edge-controller check-config: --reference: not with a config file ('site.toml'): "
        "the reference lists every key and checks no config "
        "(to write it to a file: --reference-out FILE)\n"
    )
    assert captured.out == ""
    assert site.read_text(encoding="utf-8") == "x = 1\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["site.toml"]


def test_a_config_then_reference_is_bad_input_neither_checked_nor_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # `check-config my.toml --reference` once wrote docs/config-reference.md under the
    # current directory, validated nothing and exited 0.
    monkeypatch.chdir(tmp_path)
    (tmp_path / "my.toml").write_text("not a config\n", encoding="utf-8")

    assert main(["check-config", "my.toml", "--reference"]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith(
        "edge-controller check-config: --reference: not with a config file ('my.toml')"
    )
    assert captured.err.count("\n") == 1
    assert captured.out == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["my.toml"]

    assert main(["check-config", "my.toml", "--reference-out", "ref.md"]) == 2
    assert "--reference-out: not with a config file ('my.toml')" in capsys.readouterr().err
    assert not (tmp_path / "ref.md").exists()


def test_reference_with_a_drop_in_dir_is_bad_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["check-config", "--reference", "--drop-in-dir", str(tmp_path)]) == 2
    assert capsys.readouterr().err.startswith(
        "edge-controller check-config: --reference: not with --drop-in-dir: "
    )


def test_reference_out_overwrites_only_an_earlier_reference(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    site = tmp_path / "site.toml"
    site.write_text("[microgrid]\nid = 1\n", encoding="utf-8")

    assert main(["check-config", "--reference-out", str(site)]) == 2
    assert capsys.readouterr().err == (
        f"edge-controller check-config: --reference-out: refusing to overwrite {str(site)!r}: "
        "it does not start with '# Controller configuration reference', so it is not an "
        "earlier reference (remove it first, or name another file)\n"
    )
    assert site.read_text(encoding="utf-8") == "[microgrid]\nid = 1\n"

    earlier = tmp_path / "reference.md"
    earlier.write_text(HEADER + "\nan older reference\n", encoding="utf-8")
    assert main(["check-config", "--reference-out", str(earlier)]) == 0
    assert earlier.read_text(encoding="utf-8") == reference_markdown()


def test_reference_out_into_a_missing_directory_is_one_line_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "no-such-dir" / "reference.md"
    assert main(["check-config", "--reference-out", str(target)]) == 2
    assert capsys.readouterr().err == (
        f"edge-controller check-config: --reference-out: cannot write {str(target)!r}: "
        "No such file or directory\n"
    )
    assert not target.parent.exists()


def test_check_config_without_a_file_or_reference_is_bad_input(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["check-config"]) == 2
    assert "config" in capsys.readouterr().err
