"""The record of every power command, accepted or refused, with the bounds in force.

Accepted commands keep the bounds they were accepted under; refused ones the reason
and the bounds at that moment. Tests and benchmarks read it to prove that no
accepted command ever left its component's bounds, and to see, from outside the
controller, which commands a fault refused or left unanswered. It keeps the newest
`maxlen` records of each outcome in memory and, when given a path, appends every
record to a JSON-lines file as well.

An accepted line keeps the keys it always had (`at`, `component_id`, `reactive`,
`requested_w`, `applied_w`, `bounds_w`, `valid_until`) plus `"outcome": "accepted"`;
a refused line has `"outcome": "refused"`, `status` (the gRPC status name, or
`CANCELLED` when the client gave up on an unanswered request), `reason` and the
`bounds_w` in force, and no `applied_w`/`valid_until` — a reader of accepted commands
skips lines whose outcome is not "accepted".
"""

from __future__ import annotations

import json
from collections import deque
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TextIO

from edge_controller.power.bounds import Range, allows
from edge_controller.servers.sim.model import CommandRecord

CANCELLED = "CANCELLED"
"""The status of a request the client gave up on before the simulator answered it."""


@dataclass(frozen=True, slots=True)
class CommandRefusal:
    """A power command the simulator did not carry out, and why."""

    at: datetime
    component_id: int
    reactive: bool
    requested_w: float
    status: str
    """The gRPC status name it was refused with (`OUT_OF_RANGE`, ...) or `CANCELLED`."""
    reason: str
    bounds: tuple[Range, ...]
    """The component's bounds when it was refused (empty when it has none)."""


class CommandLog:
    """A bounded in-memory log of commands, optionally mirrored to a file.

    `records()`, `total` and `violations()` concern accepted commands only (as they
    always did); `refusals()` and `refused_total` the others.
    """

    def __init__(self, maxlen: int = 100_000, path: Path | None = None) -> None:
        """Keep `maxlen` records of each outcome; append each to `path` if given."""
        self._records: deque[CommandRecord] = deque(maxlen=maxlen)
        self._refusals: deque[CommandRefusal] = deque(maxlen=maxlen)
        self._file: TextIO | None = path.open("a", encoding="utf-8") if path else None
        self.total = 0
        self.refused_total = 0

    def record(self, record: CommandRecord) -> None:
        """Add an accepted command."""
        self._records.append(record)
        self.total += 1
        self._write(to_json(record))

    def refuse(self, refusal: CommandRefusal) -> None:
        """Add a refused (or unanswered) command."""
        self._refusals.append(refusal)
        self.refused_total += 1
        self._write(refusal_to_json(refusal))

    def _write(self, line: dict[str, object]) -> None:
        if self._file is not None:
            self._file.write(json.dumps(line) + "\n")
            self._file.flush()

    def records(self) -> list[CommandRecord]:
        """Return the accepted commands still held in memory, oldest first."""
        return list(self._records)

    def refusals(self) -> list[CommandRefusal]:
        """Return the refused commands still held in memory, oldest first."""
        return list(self._refusals)

    def violations(self) -> list[CommandRecord]:
        """Return the held records whose applied power was outside their bounds."""
        return [r for r in self._records if not allows(r.bounds, r.applied_w)]

    def close(self) -> None:
        """Close the mirror file, if any."""
        if self._file is not None:
            self._file.close()
            self._file = None


def _ranges(bounds: tuple[Range, ...]) -> list[list[float]]:
    return [[r.lower, r.upper] for r in bounds]


def to_json(record: CommandRecord) -> dict[str, object]:
    """Return an accepted command as a JSON-ready dict (times in RFC 3339, powers in W)."""
    return {
        "at": record.at.isoformat(),
        "component_id": record.component_id,
        "reactive": record.reactive,
        "requested_w": record.requested_w,
        "applied_w": record.applied_w,
        "bounds_w": _ranges(record.bounds),
        "valid_until": record.valid_until.isoformat(),
        "outcome": "accepted",
    }


def refusal_to_json(refusal: CommandRefusal) -> dict[str, object]:
    """Return a refused command as a JSON-ready dict (times in RFC 3339, powers in W)."""
    return {
        "at": refusal.at.isoformat(),
        "component_id": refusal.component_id,
        "reactive": refusal.reactive,
        "requested_w": refusal.requested_w,
        "bounds_w": _ranges(refusal.bounds),
        "outcome": "refused",
        "status": refusal.status,
        "reason": refusal.reason,
    }
