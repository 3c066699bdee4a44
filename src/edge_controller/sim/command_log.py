"""The record of every accepted power command, with the bounds it was accepted under.

Tests and benchmarks read it to prove that no accepted command ever left its
component's bounds. It keeps the newest `maxlen` records in memory and, when given a
path, appends every record to a JSON-lines file as well.
"""

from __future__ import annotations

import json
from collections import deque
from pathlib import Path
from typing import TextIO

from edge_controller.power.bounds import allows
from edge_controller.sim.model import CommandRecord


class CommandLog:
    """A bounded in-memory log of accepted commands, optionally mirrored to a file."""

    def __init__(self, maxlen: int = 100_000, path: Path | None = None) -> None:
        """Keep `maxlen` records; append each to the JSON-lines file `path` if given."""
        self._records: deque[CommandRecord] = deque(maxlen=maxlen)
        self._file: TextIO | None = path.open("a", encoding="utf-8") if path else None
        self.total = 0

    def record(self, record: CommandRecord) -> None:
        """Add an accepted command."""
        self._records.append(record)
        self.total += 1
        if self._file is not None:
            self._file.write(json.dumps(to_json(record)) + "\n")
            self._file.flush()

    def records(self) -> list[CommandRecord]:
        """Return the records still held in memory, oldest first."""
        return list(self._records)

    def violations(self) -> list[CommandRecord]:
        """Return the held records whose applied power was outside their bounds."""
        return [r for r in self._records if not allows(r.bounds, r.applied_w)]

    def close(self) -> None:
        """Close the mirror file, if any."""
        if self._file is not None:
            self._file.close()
            self._file = None


def to_json(record: CommandRecord) -> dict[str, object]:
    """Return a record as a JSON-ready dict (times in RFC 3339, powers in W)."""
    return {
        "at": record.at.isoformat(),
        "component_id": record.component_id,
        "reactive": record.reactive,
        "requested_w": record.requested_w,
        "applied_w": record.applied_w,
        "bounds_w": [[r.lower, r.upper] for r in record.bounds],
        "valid_until": record.valid_until.isoformat(),
    }
