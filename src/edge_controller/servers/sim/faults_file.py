"""The faults file: the set of faults in force, switched from outside the simulator.

`edge-controller sim --faults-file FILE` watches FILE (`faults_watch.py`) and, on
every change, replaces the faults that came from it with what it lists now. It holds
the same tables as a site file's `[[faults]]`, with the same keys and meanings::

    [[faults]]
    component = 10            # a component of the site
    kind = "unresponsive"     # delay, unresponsive, rpc_error, error, nan_metrics, ...
    # until = 90              # optional: seconds after the simulator's start
    # from = 60               # optional: likewise (default 0: in force at once)

`from`/`until` count from the instant the simulator prints in its `started at=` line,
as the site file's windows do. An empty file, a file without `[[faults]]`, or no
file at all means no faults from the file.

This module is pure: it turns a document into a set of faults and says what changed
between two sets; it imports nothing from `asyncio` or `grpc`.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge_controller.common.toml_reader import Reader
from edge_controller.servers.sim.fault_spec import FaultKind, FaultSpec, read_fault
from edge_controller.servers.sim.site import SiteSpec

FaultSet = tuple[FaultSpec, ...]
"""Faults in the order the file lists them, each once."""


class FaultsFileError(ValueError):
    """A faults file that cannot be used, with one line per problem found.

    Each line names the file and the key path, what was expected and what was found:
    `faults.toml: faults[0].kind: expected one of [...], got 'silent'`.
    """

    def __init__(self, source: str, problems: list[str]) -> None:
        """Keep every problem; the message lists them, file name first on each line."""
        self.source = source
        self.problems = problems
        super().__init__("\n".join(f"{source}: {problem}" for problem in problems))

    @property
    def lines(self) -> list[str]:
        """The problems, each prefixed with the file's name."""
        return [f"{self.source}: {problem}" for problem in self.problems]


@dataclass(frozen=True, slots=True)
class FaultsDiff:
    """What a new fault set changes against the one in force."""

    added: FaultSet
    removed: FaultSet

    @property
    def empty(self) -> bool:
        """Tell whether the two sets are the same."""
        return not self.added and not self.removed


def parse_faults(document: Mapping[str, Any], source: str, site: SiteSpec) -> FaultSet:
    """Validate a parsed faults document against `site`.

    Raises:
        FaultsFileError: listing every problem, each with its key path.
    """
    reader = Reader()
    reader.unknown_keys(document, {"faults"}, "")
    raw_faults = document.get("faults", [])
    faults: list[FaultSpec] = []
    if not isinstance(raw_faults, list):
        reader.fail("faults", "an array of tables ([[faults]])", raw_faults)
    else:
        for index, raw in enumerate(raw_faults):
            path = f"faults[{index}]"
            fault = read_fault(reader, raw, path)
            if fault is None:
                continue
            if fault.component_id not in site.by_id:
                reader.fail(
                    f"{path}.component",
                    f"a component of the site {site.source}",
                    fault.component_id,
                )
                continue
            if fault not in faults:
                faults.append(fault)
    if reader.problems:
        raise FaultsFileError(source, reader.problems)
    return tuple(faults)


def read_faults(path: Path, site: SiteSpec) -> FaultSet:
    """Read and validate the faults file at `path`; a missing file lists no faults.

    Raises:
        FaultsFileError: the file cannot be read, is not TOML, or lists a bad fault.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return ()
    except OSError as error:
        raise FaultsFileError(str(path), [f"cannot read the file: {error.strerror}"]) from error
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise FaultsFileError(path.name, [f"not valid TOML: {error}"]) from error
    return parse_faults(document, path.name, site)


def diff_faults(in_force: FaultSet, new: FaultSet) -> FaultsDiff:
    """Return the faults `new` adds to and removes from `in_force`."""
    return FaultsDiff(
        added=tuple(f for f in new if f not in in_force),
        removed=tuple(f for f in in_force if f not in new),
    )


def describe(fault: FaultSpec) -> str:
    """Say a fault in a few words for a log line: `10 unresponsive`, `20 delay 2s 0-30s`."""
    words = [str(fault.component_id), fault.kind.value]
    if fault.kind is FaultKind.DELAY:
        words.append(f"{fault.delay_s:g}s")
    elif fault.kind is FaultKind.RPC_ERROR:
        words.append(fault.status)
    elif fault.kind is FaultKind.ERROR:
        words.append(fault.error_code)
    elif fault.kind is FaultKind.NAN_METRICS and fault.metrics:
        words.append(",".join(fault.metrics))
    if fault.start_s > 0 or fault.until_s != float("inf"):
        words.append(f"{fault.start_s:g}-{fault.until_s:g}s")
    return " ".join(words)
