"""The faults file, pure part: a document → the set of faults in force; what changed."""

from __future__ import annotations

import math
import tomllib
from pathlib import Path

import pytest

from edge_controller.servers.sim.fault_spec import FaultKind, FaultSpec
from edge_controller.servers.sim.faults_file import (
    FaultsFileError,
    describe,
    diff_faults,
    parse_faults,
    read_faults,
)
from edge_controller.servers.sim.site import SiteSpec


def parsed(text: str, site: SiteSpec) -> tuple[FaultSpec, ...]:
    return parse_faults(tomllib.loads(text), "faults.toml", site)


def problems(text: str, site: SiteSpec) -> list[str]:
    with pytest.raises(FaultsFileError) as caught:
        parsed(text, site)
    return str(caught.value).splitlines()


def test_faults_are_read_with_the_site_files_keys_and_meanings(example_site: SiteSpec) -> None:
    faults = parsed(
        """
        [[faults]]
        component = 10
        kind = "unresponsive"

        [[faults]]
        component = 20
        kind = "rpc_error"
        status = "INTERNAL"
        until = 90

        [[faults]]
        component = 11
        kind = "nan_metrics"
        metrics = ["BATTERY_SOC_PCT"]
        from = 30
        """,
        example_site,
    )
    assert faults == (
        FaultSpec(10, FaultKind.UNRESPONSIVE),
        FaultSpec(20, FaultKind.RPC_ERROR, until_s=90.0, status="INTERNAL"),
        FaultSpec(11, FaultKind.NAN_METRICS, start_s=30.0, metrics=("BATTERY_SOC_PCT",)),
    )
    assert faults[0].until_s == math.inf


@pytest.mark.parametrize("text", ["", "faults = []"])
def test_an_empty_file_lists_no_faults(example_site: SiteSpec, text: str) -> None:
    assert parsed(text, example_site) == ()


def test_a_fault_listed_twice_is_in_force_once(example_site: SiteSpec) -> None:
    text = '[[faults]]\ncomponent = 10\nkind = "unresponsive"\n' * 2
    assert parsed(text, example_site) == (FaultSpec(10, FaultKind.UNRESPONSIVE),)


@pytest.mark.parametrize(
    ("text", "line"),
    [
        (
            '[[faults]]\ncomponent = 10\nkind = "silent"',
            "faults.toml: faults[0].kind: expected one of ['delay', 'unresponsive', 'rpc_error', "
            "'error', 'nan_metrics', 'drop_stream', 'no_telemetry'], got 'silent'",
        ),
        (
            '[[faults]]\ncomponent = 999\nkind = "unresponsive"',
            "faults.toml: faults[0].component: expected a component of the site "
            "sim-site.toml, got 999",
        ),
        (
            '[[faults]]\ncomponent = 10\nkind = "unresponsive"\nuntill = 5',
            "faults.toml: faults[0].untill: unknown key (did you mean 'until'?); expected one "
            "of ['component', 'delay', 'error_code', 'from', 'kind', 'metrics', 'status', "
            "'until']",
        ),
        (
            '[[faults]]\ncomponent = 10\nkind = "delay"\nfrom = 9\nuntil = 3',
            "faults.toml: faults[0].until: expected a time after from (9.0 s), got 3.0",
        ),
        (
            "[faults]\ncomponent = 10",
            "faults.toml: faults: expected an array of tables ([[faults]]), got a table",
        ),
        (
            "[fault]\ncomponent = 10",
            "faults.toml: fault: unknown key (did you mean 'faults'?); expected one of ['faults']",
        ),
    ],
    ids=["kind", "component", "unknown-key", "window", "not-an-array", "top-level-key"],
)
def test_a_bad_file_is_one_line_per_problem_naming_file_and_key(
    example_site: SiteSpec, text: str, line: str
) -> None:
    assert problems(text, example_site) == [line]


def test_every_problem_is_listed(example_site: SiteSpec) -> None:
    found = problems(
        '[[faults]]\ncomponent = 999\nkind = "unresponsive"\n'
        '[[faults]]\ncomponent = 10\nkind = "rpc_error"\nstatus = "NOPE"',
        example_site,
    )
    assert [line.split(":")[1].strip() for line in found] == [
        "faults[0].component",
        "faults[1].status",
    ]


def test_a_missing_file_lists_no_faults_and_bad_toml_is_named(
    example_site: SiteSpec, tmp_path: Path
) -> None:
    assert read_faults(tmp_path / "absent.toml", example_site) == ()
    path = tmp_path / "faults.toml"
    path.write_text("[[faults]\n")
    with pytest.raises(FaultsFileError, match=r"^faults\.toml: not valid TOML: "):
        read_faults(path, example_site)


def test_the_diff_says_what_a_new_set_adds_and_removes() -> None:
    silent = FaultSpec(10, FaultKind.UNRESPONSIVE)
    failing = FaultSpec(20, FaultKind.RPC_ERROR)
    later = FaultSpec(20, FaultKind.RPC_ERROR, until_s=60.0)
    change = diff_faults((silent, failing), (failing, later))
    assert change.added == (later,)
    assert change.removed == (silent,)
    assert not change.empty
    assert diff_faults((silent,), (silent,)).empty


@pytest.mark.parametrize(
    ("fault", "words"),
    [
        (FaultSpec(10, FaultKind.UNRESPONSIVE), "10 unresponsive"),
        (FaultSpec(20, FaultKind.DELAY, delay_s=2.0, until_s=30.0), "20 delay 2s 0-30s"),
        (FaultSpec(30, FaultKind.RPC_ERROR, status="INTERNAL"), "30 rpc_error INTERNAL"),
        (
            FaultSpec(11, FaultKind.NAN_METRICS, metrics=("battery_soc_pct",)),
            "11 nan_metrics battery_soc_pct",
        ),
    ],
)
def test_a_fault_is_described_in_a_few_words(fault: FaultSpec, words: str) -> None:
    assert describe(fault) == words
