"""The last 24 hours of the site, sampled, in a bounded SQLite store that survives a restart.

One row per sample: time, the batteries' total AC power, the grid meter's power, and
per battery its SoC and power (JSON). `add` prunes what is older than `keep`, and the
row count never exceeds `keep / interval` × 1.5 whatever the clock does, so the file
stays small (24 h at 5 s: 17 280 rows, ~2 MB for four batteries). A missing value
(stale telemetry) is stored as null, never as 0.

```python
store = HistoryStore(Path("history.sqlite3"))   # None: in memory only
store.add(HistorySample(at, battery_w=-30e3, grid_w=12e3, batteries={11: (54.2, -15e3)}))
store.since(at - timedelta(hours=6))              # oldest first
```
Writes are one small INSERT (well under a millisecond), done on the event loop.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

KEEP = timedelta(hours=24)


@dataclass(frozen=True, slots=True)
class HistorySample:
    """The site at one time; powers in W (passive: + charges/imports), SoC in %."""

    at: datetime
    battery_w: float | None
    grid_w: float | None
    batteries: Mapping[int, tuple[float | None, float | None]] = field(default_factory=dict)
    """Battery id → (SoC %, power W)."""

    def to_json(self) -> dict[str, Any]:
        """The API's form."""
        return {
            "at": self.at.isoformat(),
            "battery_w": self.battery_w,
            "grid_w": self.grid_w,
            "batteries": {
                str(b): {"soc_pct": soc, "power_w": power}
                for b, (soc, power) in sorted(self.batteries.items())
            },
        }


class HistoryStore:
    """Samples of the last `keep`; see the module docstring."""

    def __init__(
        self,
        path: Path | None,
        *,
        keep: timedelta = KEEP,
        interval: timedelta = timedelta(seconds=5),
    ) -> None:
        """Open (create) the store at `path`, or in memory when None.

        Raises:
            sqlite3.Error: the file cannot be opened or is not a database.
        """
        self.path = path
        self.keep = keep
        self.max_rows = int(keep / interval * 1.5) + 10
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(":memory:" if path is None else str(path))
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS samples (at REAL PRIMARY KEY, battery_w REAL, "
            "grid_w REAL, batteries TEXT NOT NULL)"
        )
        self._db.commit()

    def add(self, sample: HistorySample) -> None:
        """Store a sample and drop what is too old (or beyond the row bound)."""
        at = sample.at.timestamp()
        batteries = {str(b): list(v) for b, v in sample.batteries.items()}
        with self._db:
            self._db.execute(
                "INSERT OR REPLACE INTO samples VALUES (?, ?, ?, ?)",
                (at, sample.battery_w, sample.grid_w, json.dumps(batteries)),
            )
            self._db.execute("DELETE FROM samples WHERE at < ?", (at - self.keep.total_seconds(),))
            self._db.execute(
                "DELETE FROM samples WHERE at NOT IN "
                "(SELECT at FROM samples ORDER BY at DESC LIMIT ?)",
                (self.max_rows,),
            )

    def since(self, start: datetime, *, step: timedelta | None = None) -> list[HistorySample]:
        """Samples from `start` on, oldest first; with `step`, at most one per step."""
        rows = self._db.execute(
            "SELECT at, battery_w, grid_w, batteries FROM samples WHERE at >= ? ORDER BY at",
            (start.timestamp(),),
        ).fetchall()
        found = []
        last = -1e18
        every = step.total_seconds() if step is not None else 0.0
        for at, battery_w, grid_w, batteries in rows:
            if at - last < every:
                continue
            last = at
            found.append(
                HistorySample(
                    datetime.fromtimestamp(at, UTC),
                    battery_w,
                    grid_w,
                    {int(b): (v[0], v[1]) for b, v in json.loads(batteries).items()},
                )
            )
        return found

    def __len__(self) -> int:
        """The number of samples stored."""
        return int(self._db.execute("SELECT COUNT(*) FROM samples").fetchone()[0])

    def close(self) -> None:
        """Close the database."""
        self._db.close()
