"""Durable storage of dispatches in one SQLite file (the standard library's `sqlite3`).

One row per dispatch: the client's `DispatchData` serialised as protobuf (the wire
format is stable, so a dispatch reads back field for field), next to indexed columns
for what the service derives, filters or sorts on; a dispatch's target components or
categories in two side tables, so that a list filters and pages in SQL with its
indexes (`sql_query`). Times are integer microseconds since the Unix epoch, so
`update_time` keeps its microseconds.

```
dispatches(id INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reused, even after delete
           microgrid_id, type, type_folded (casefolded, for queries),
           start_time_us, end_time_us (NULL: open-ended), create_time_us,
           update_time_us, is_active, is_dry_run, is_recurring,
           data BLOB)                               -- frequenz.api.dispatch.v1.DispatchData
target_ids(component_id, dispatch_id)               -- an id target's components
target_categories(category, type_kind, type_value, dispatch_id)
```

Characteristics:

- Every write is one transaction (`BEGIN IMMEDIATE` … `COMMIT`, rolled back on any
  error), in WAL mode with `synchronous=FULL`: a committed dispatch survives a crash
  or power loss.
- The file is opened in exclusive locking mode: a second server on the same file
  fails to start ("in use by another process") instead of serving a stale copy.
- `PRAGMA user_version` holds the schema version (2); a version-1 file is upgraded in
  place at open (side tables filled from the stored data), any other is refused.
- Not thread-safe by itself: the service calls it from one thread
  (`writer.StoreThread`), lists included: a list waits at most for the one write
  ahead of it, and no list or write ever runs on the event loop.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final

from frequenz.api.dispatch.v1 import dispatch_pb2 as pb

from edge_controller.servers.common.serving import StartupError
from edge_controller.servers.dispatch import sql_query
from edge_controller.servers.dispatch.convert import data_from_proto, data_to_proto
from edge_controller.servers.dispatch.errors import DispatchError
from edge_controller.servers.dispatch.model import Dispatch, DispatchData, Target, TargetKind
from edge_controller.servers.dispatch.query import DispatchFilter, Sort

SCHEMA_VERSION: Final = 2
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_SCHEMA: Final = """
CREATE TABLE dispatches (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    microgrid_id INTEGER NOT NULL,
    type TEXT NOT NULL,
    start_time_us INTEGER NOT NULL,
    end_time_us INTEGER,
    create_time_us INTEGER NOT NULL,
    update_time_us INTEGER NOT NULL,
    is_active INTEGER NOT NULL,
    is_dry_run INTEGER NOT NULL,
    is_recurring INTEGER NOT NULL,
    data BLOB NOT NULL
);
CREATE INDEX dispatches_by_microgrid ON dispatches (microgrid_id, create_time_us);
CREATE INDEX dispatches_by_end_time ON dispatches (microgrid_id, end_time_us);
"""
_UPGRADE_TO_2: Final = """
ALTER TABLE dispatches ADD COLUMN type_folded TEXT NOT NULL DEFAULT '';
CREATE INDEX dispatches_by_start_time ON dispatches (microgrid_id, start_time_us);
CREATE INDEX dispatches_by_update_time ON dispatches (microgrid_id, update_time_us);
CREATE TABLE target_ids (
    component_id INTEGER NOT NULL,
    dispatch_id INTEGER NOT NULL,
    PRIMARY KEY (component_id, dispatch_id)
) WITHOUT ROWID;
CREATE INDEX target_ids_by_dispatch ON target_ids (dispatch_id);
CREATE TABLE target_categories (
    category INTEGER NOT NULL,
    type_kind TEXT NOT NULL,
    type_value INTEGER NOT NULL,
    dispatch_id INTEGER NOT NULL
);
CREATE INDEX target_categories_by_category
    ON target_categories (category, type_kind, type_value, dispatch_id);
CREATE INDEX target_categories_by_dispatch ON target_categories (dispatch_id);
"""
_COLUMNS: Final = (
    "microgrid_id, type, start_time_us, end_time_us, create_time_us, update_time_us, "
    "is_active, is_dry_run, is_recurring, data, type_folded"
)
_PLACES: Final = ", ".join("?" * len(_COLUMNS.split(",")))


class StoreError(StartupError):
    """The database file cannot be opened or used; the message names the file."""


def to_microseconds(moment: datetime) -> int:
    """Return a time as integer microseconds since the Unix epoch."""
    return (moment - _EPOCH) // timedelta(microseconds=1)


def from_microseconds(value: int) -> datetime:
    """Return integer microseconds since the Unix epoch as an aware UTC datetime."""
    return _EPOCH + timedelta(microseconds=value)


class DispatchStore:
    """The dispatches of every microgrid, in one SQLite file.

    ```
    store = DispatchStore(Path("dispatches.sqlite"))   # creates or opens, locks
    created = store.insert(1, data, create_time=now, end_time=None)
    store.replace(updated)         # same id, new fields
    store.delete(created.id)
    store.load()                   # every dispatch, by id
    store.close()
    ```
    """

    def __init__(self, path: Path) -> None:
        """Open (creating if needed) and lock the database at `path`.

        Raises:
            StoreError: the file cannot be opened, is not a dispatch database, has
                another schema version, or another process holds it.
        """
        self.path = path
        try:
            self._db = sqlite3.connect(
                path, timeout=0.2, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as error:
            raise StoreError(f"--db {path}: cannot open: {error}") from None
        try:
            self._prepare()
        except sqlite3.OperationalError as error:
            self._db.close()
            if "locked" in str(error):
                raise StoreError(
                    f"--db {path}: in use by another process (another dispatch-server?)"
                ) from None
            raise StoreError(f"--db {path}: cannot open: {error}") from None
        except sqlite3.DatabaseError as error:
            self._db.close()
            raise StoreError(f"--db {path}: not a dispatch database: {error}") from None
        except StoreError:
            self._db.close()
            raise

    def _prepare(self) -> None:
        self._db.execute("PRAGMA locking_mode=EXCLUSIVE")
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        with self._transaction():
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            tables = {
                row[0]
                for row in self._db.execute("SELECT name FROM sqlite_master WHERE type='table'")
            }
            if version == 0 and not tables:
                self._run_script(_SCHEMA)
                self._run_script(_UPGRADE_TO_2)
                self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            elif version == 1 and "dispatches" in tables:
                self._run_script(_UPGRADE_TO_2)
                self._fill_side_tables()
                self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            elif version != SCHEMA_VERSION or "dispatches" not in tables:
                raise StoreError(
                    f"--db {self.path}: not a dispatch database of schema version {SCHEMA_VERSION} "
                    f"(found version {version}, tables: {', '.join(sorted(tables)) or 'none'})"
                )

    def _run_script(self, script: str) -> None:
        for statement in script.split(";"):
            if statement.strip():
                self._db.execute(statement)

    def _fill_side_tables(self) -> None:
        """Derive the columns and rows schema 2 added from each stored dispatch (upgrade)."""
        for dispatch in self.load():
            self._db.execute(
                "UPDATE dispatches SET type_folded = ? WHERE id = ?",
                (dispatch.data.type.casefold(), dispatch.id),
            )
            self._write_targets(dispatch.id, dispatch.data.target)

    def _write_targets(self, dispatch_id: int, target: Target | None) -> None:
        self._db.execute("DELETE FROM target_ids WHERE dispatch_id = ?", (dispatch_id,))
        self._db.execute("DELETE FROM target_categories WHERE dispatch_id = ?", (dispatch_id,))
        if target is None:
            return
        if target.kind is TargetKind.IDS:
            self._db.executemany(
                "INSERT OR IGNORE INTO target_ids (component_id, dispatch_id) VALUES (?, ?)",
                [(component_id, dispatch_id) for component_id in target.ids],
            )
            return
        self._db.executemany(
            "INSERT INTO target_categories (category, type_kind, type_value, dispatch_id) "
            "VALUES (?, ?, ?, ?)",
            [
                (
                    entry.category,
                    "" if entry.type_kind is None else entry.type_kind.value,
                    entry.type_value,
                    dispatch_id,
                )
                for entry in target.categories
            ],
        )

    def list_page(
        self,
        microgrid_id: int,
        query: DispatchFilter,
        sort: Sort,
        size: int,
        after: tuple[int, int] | None,
    ) -> tuple[list[tuple[int, int]], int]:
        """Return one page's (id, sort key) pairs (up to `size + 1`) and the total count.

        Filtering, ordering and the keyset cut are SQL over the indexes (`sql_query`);
        the caller takes the dispatches themselves from memory.
        """
        statement, count = sql_query.page(microgrid_id, query, sort, size, after)
        rows = self._db.execute(statement.text, statement.params).fetchall()
        total = self._db.execute(count.text, count.params).fetchone()[0]
        return [(row[1], row[0]) for row in rows], total

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def load(self) -> list[Dispatch]:
        """Read every stored dispatch, ordered by id.

        Raises:
            StoreError: a row cannot be read back (the file was damaged).
        """
        rows = self._db.execute(
            "SELECT id, microgrid_id, create_time_us, update_time_us, end_time_us, data "
            "FROM dispatches ORDER BY id"
        ).fetchall()
        dispatches = []
        for dispatch_id, microgrid_id, create_us, update_us, end_us, blob in rows:
            try:
                data = data_from_proto(pb.DispatchData.FromString(blob))
            except (DispatchError, ValueError) as error:
                raise StoreError(
                    f"--db {self.path}: dispatch {dispatch_id} cannot be read: {error}"
                ) from None
            dispatches.append(
                Dispatch(
                    id=dispatch_id,
                    microgrid_id=microgrid_id,
                    create_time=from_microseconds(create_us),
                    update_time=from_microseconds(update_us),
                    end_time=None if end_us is None else from_microseconds(end_us),
                    data=data,
                )
            )
        return dispatches

    @staticmethod
    def _row(dispatch: Dispatch) -> tuple[object, ...]:
        data = dispatch.data
        return (
            dispatch.microgrid_id,
            data.type,
            to_microseconds(data.start_time),
            None if dispatch.end_time is None else to_microseconds(dispatch.end_time),
            to_microseconds(dispatch.create_time),
            to_microseconds(dispatch.update_time),
            data.is_active,
            data.is_dry_run,
            data.recurrence.is_recurring,
            data_to_proto(data).SerializeToString(deterministic=True),
            data.type.casefold(),
        )

    def insert(
        self,
        microgrid_id: int,
        data: DispatchData,
        *,
        create_time: datetime,
        end_time: datetime | None,
    ) -> Dispatch:
        """Store a new dispatch; its id is assigned here and never reused.

        Its update time is its create time.
        """
        draft = Dispatch(0, microgrid_id, create_time, create_time, end_time, data)
        with self._transaction():
            cursor = self._db.execute(
                f"INSERT INTO dispatches ({_COLUMNS}) VALUES ({_PLACES})", self._row(draft)
            )
            assert cursor.lastrowid is not None
            self._write_targets(cursor.lastrowid, data.target)
        return Dispatch(cursor.lastrowid, microgrid_id, create_time, create_time, end_time, data)

    def replace(self, dispatch: Dispatch) -> None:
        """Overwrite a stored dispatch with new fields (same id).

        Raises:
            KeyError: no dispatch has that id (nothing is written).
        """
        with self._transaction():
            cursor = self._db.execute(
                f"UPDATE dispatches SET ({_COLUMNS}) = ({_PLACES}) WHERE id = ?",
                (*self._row(dispatch), dispatch.id),
            )
            if cursor.rowcount != 1:
                raise KeyError(dispatch.id)
            self._write_targets(dispatch.id, dispatch.data.target)

    def delete(self, dispatch_id: int) -> None:
        """Remove a dispatch.

        Raises:
            KeyError: no dispatch has that id.
        """
        with self._transaction():
            cursor = self._db.execute("DELETE FROM dispatches WHERE id = ?", (dispatch_id,))
            if cursor.rowcount != 1:
                raise KeyError(dispatch_id)
            self._write_targets(dispatch_id, None)

    def close(self) -> None:
        """Close the file (and release its lock)."""
        self._db.close()


__all__ = ["SCHEMA_VERSION", "DispatchStore", "StoreError", "from_microseconds", "to_microseconds"]
