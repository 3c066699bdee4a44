"""The market's members in SQLite, so that what the REST API added and changed survives a restart.

```python
store = MemberStore(Path("market-members.sqlite3"))
spec, owners = store.open(spec)      # an empty file is seeded from `spec`; else it wins
store.save(new_spec, owners)         # after every change, in one transaction
store.close()
```

One table, `members(id, kind, position, body, owner)`; `body` is the member's JSON as
the API shows it (`members.member_json`), so the stored form and the API's are one.
The file is created 0600 (like the dispatch service's database) before SQLite opens
it. The market's rules, pricing and weather still come from the market file (or the
built-in market); only its members are kept here. Battery energy is not kept: a
restarted market starts each battery at its `initial_kwh`.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

from edge_controller.servers.market.members import (
    consumer_from,
    manager_from,
    member_json,
    prosumer_from,
    spec_members,
)
from edge_controller.servers.market.model import ConsumerGroup, MarketSpec, ProsumerSpec

_SCHEMA = """
CREATE TABLE IF NOT EXISTS members (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('consumer', 'prosumer', 'manager')),
    position INTEGER NOT NULL,
    body TEXT NOT NULL,
    owner TEXT
)
"""


class MemberStoreError(ValueError):
    """The members database cannot be used; the message names the file and why."""


class MemberStore:
    """The members of one market in one SQLite file (see the module docstring)."""

    def __init__(self, path: Path) -> None:
        """Remember `path`; nothing is opened before `open`."""
        self.path = path
        self._db: sqlite3.Connection | None = None

    def open(self, spec: MarketSpec) -> tuple[MarketSpec, dict[str, str]]:
        """Open (creating it 0600 if missing); return the members and prosumers' owners.

        An empty database is seeded with `spec`'s members; a database with members
        wins over `spec` (its rules, pricing and weather are kept).

        Raises:
            MemberStoreError: the file cannot be opened or holds something else.
        """
        try:
            if not self.path.exists():
                self.path.parent.mkdir(parents=True, exist_ok=True)
                os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))
            self._db = sqlite3.connect(self.path, isolation_level=None)
            self._db.execute(_SCHEMA)
            rows = self._db.execute(
                "SELECT id, kind, body, owner FROM members ORDER BY kind, position"
            ).fetchall()
        except (OSError, sqlite3.Error) as error:
            raise MemberStoreError(f"{self.path}: cannot open: {error}") from None
        if not rows:
            self.save(spec, {})
            return spec, {}
        try:
            return self._read(spec, rows)
        except (ValueError, TypeError, KeyError) as error:
            raise MemberStoreError(f"{self.path}: a stored member is not valid: {error}") from None

    @staticmethod
    def _read(
        spec: MarketSpec, rows: list[tuple[str, str, str, str | None]]
    ) -> tuple[MarketSpec, dict[str, str]]:
        consumers: list[ConsumerGroup] = []
        prosumers: list[ProsumerSpec] = []
        manager = spec.manager
        owners: dict[str, str] = {}
        for _member_id, kind, body, owner in rows:
            fields = json.loads(body)
            if kind == "consumer":
                consumers.append(consumer_from(fields))
            elif kind == "prosumer":
                fields.pop("owner", None)
                prosumers.append(prosumer_from(fields))
                if owner:
                    owners[prosumers[-1].name] = owner
            else:
                name = fields.pop("id")
                manager = replace(manager_from(fields, spec.manager), name=name)
        return spec_members(spec, consumers, prosumers, manager), owners

    def save(self, spec: MarketSpec, owners: Mapping[str, str]) -> None:
        """Replace the stored members with `spec`'s, in one transaction.

        Raises:
            MemberStoreError: the write failed (full disk, read-only file).
        """
        if self._db is None:
            raise MemberStoreError(f"{self.path}: not open")
        rows: list[tuple[str, str, int, str, str | None]] = [
            (c.name, "consumer", i, json.dumps(member_json(c)), None)
            for i, c in enumerate(spec.consumers)
        ]
        rows += [
            (p.name, "prosumer", i, json.dumps(member_json(p, owner)), owner)
            for i, p in enumerate(spec.prosumers)
            for owner in [owners.get(p.name)]
        ]
        rows.append((spec.manager.name, "manager", 0, json.dumps(member_json(spec.manager)), None))
        try:
            with self._transaction():
                self._db.execute("DELETE FROM members")
                self._db.executemany("INSERT INTO members VALUES (?, ?, ?, ?, ?)", rows)
        except sqlite3.Error as error:
            raise MemberStoreError(f"{self.path}: cannot save the members: {error}") from None

    def _transaction(self) -> _Transaction:
        assert self._db is not None
        return _Transaction(self._db)

    def close(self) -> None:
        """Close the database."""
        if self._db is not None:
            self._db.close()
            self._db = None


class _Transaction:
    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, *_: object) -> None:
        self._db.execute("COMMIT" if exc_type is None else "ROLLBACK")


__all__ = ["MemberStore", "MemberStoreError"]
