"""The `scenario` subcommand: exit codes, messages, and the report it writes."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from edge_controller.tools.scenario.command import add_scenario_parser, run_scenario_command
from edge_controller.tools.scenario.report import PLOTS
from tests.scenario.conftest import scenario_text


def run(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="edge-controller")
    add_scenario_parser(parser.add_subparsers(dest="command", required=True))
    return run_scenario_command(parser.parse_args(["scenario", *argv]))


def test_a_short_scenario_writes_its_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "short.toml"
    path.write_text(scenario_text(duration="1h"), encoding="utf-8")
    out = tmp_path / "out"
    assert run(str(path), "--out", str(out)) == 0
    for name in (*PLOTS, "summary.md", "summary.json"):
        assert (out / name).stat().st_size > 0
    printed = capsys.readouterr().out
    assert "violations: 0" in printed
    assert f"report: {out / 'summary.md'}" in printed
    # The shipped site is in Berlin; its measured weather is a US station's, said so.
    assert (
        "  weather: measured at Greensboro Piedmont Triad Int, NC (USAF 723170), a bundled "
        "sample (the NREL TMY3 data pvlib ships; the nearest of its stations), replayed at "
        "the site's coordinates "
        "52.5200, 13.4050 on local solar time\n"
    ) in printed


def test_a_bad_scenario_file_exits_2_naming_file_and_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(scenario_text(step="7m"), encoding="utf-8")
    assert run(str(path), "--out", str(tmp_path / "out")) == 2
    assert capsys.readouterr().err == (
        "edge-controller scenario: bad.toml: scenario.step: expected a divisor of the "
        "market's 15m period and 5m gate closure, got '7m'\n"
    )
    assert not (tmp_path / "out").exists()


def test_a_missing_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "missing.toml"
    assert run(str(missing), "--out", str(tmp_path)) == 2
    assert "cannot read the file" in capsys.readouterr().err


def test_an_out_that_is_a_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "short.toml"
    path.write_text(scenario_text(), encoding="utf-8")
    blocker = tmp_path / "taken"
    blocker.write_text("")
    assert run(str(path), "--out", str(blocker)) == 2
    assert capsys.readouterr().err == (
        f"edge-controller scenario: --out: expected a directory, got the file {str(blocker)!r}\n"
    )
