"""Durable storage of dispatches in one SQLite file (the standard library's `sqlite3`).

One table, one row per dispatch: the client's `DispatchData` serialised as protobuf
(the wire format is stable, so a dispatch reads back field for field), next to
indexed columns for what the service derives or filters on. Times are integer
microseconds since the Unix epoch, so `update_time` keeps its microseconds.

```
dispatches(id INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reused, even after delete
           microgrid_id, type, start_time_us, end_time_us (NULL: open-ended),
           create_time_us, update_time_us, is_active, is_dry_run, is_recurring,
           data BLOB)                               -- frequenz.api.dispatch.v1.DispatchData
```

Characteristics:

- Every write is one transaction (`BEGIN IMMEDIATE` … `COMMIT`, rolled back on any
  error), in WAL mode with `synchronous=FULL`: a committed dispatch survives a crash
  or power loss.
- The file is opened in exclusive locking mode: a second server on the same file
  fails to start ("in use by another process") instead of serving a stale copy.
- `PRAGMA user_version` holds the schema version (1); another version is refused.
- Not thread-safe by itself: the service calls it from one worker thread at a time.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final

from frequenz.api.dispatch.v1 import dispatch_pb2 as pb

from edge_controller.dispatch_service.convert import data_from_proto, data_to_proto
from edge_controller.dispatch_service.errors import DispatchError, StartupError
from edge_controller.dispatch_service.model import Dispatch, DispatchData

SCHEMA_VERSION: Final = 1
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
_COLUMNS: Final = (
    "microgrid_id, type, start_time_us, end_time_us, create_time_us, update_time_us, "
    "is_active, is_dry_run, is_recurring, data"
)


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
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        self._db.execute(statement)
                self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            elif version != SCHEMA_VERSION or "dispatches" not in tables:
                raise StoreError(
                    f"--db {self.path}: not a dispatch database of schema version {SCHEMA_VERSION} "
                    f"(found version {version}, tables: {', '.join(sorted(tables)) or 'none'})"
                )

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
                f"INSERT INTO dispatches ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                self._row(draft),
            )
        assert cursor.lastrowid is not None
        return Dispatch(cursor.lastrowid, microgrid_id, create_time, create_time, end_time, data)

    def replace(self, dispatch: Dispatch) -> None:
        """Overwrite a stored dispatch with new fields (same id).

        Raises:
            KeyError: no dispatch has that id (nothing is written).
        """
        with self._transaction():
            cursor = self._db.execute(
                "UPDATE dispatches SET ("
                + _COLUMNS
                + ") = (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) WHERE id = ?",
                (*self._row(dispatch), dispatch.id),
            )
            if cursor.rowcount != 1:
                raise KeyError(dispatch.id)

    def delete(self, dispatch_id: int) -> None:
        """Remove a dispatch.

        Raises:
            KeyError: no dispatch has that id.
        """
        with self._transaction():
            cursor = self._db.execute("DELETE FROM dispatches WHERE id = ?", (dispatch_id,))
            if cursor.rowcount != 1:
                raise KeyError(dispatch_id)

    def close(self) -> None:
        """Close the file (and release its lock)."""
        self._db.close()


__all__ = ["SCHEMA_VERSION", "DispatchStore", "StoreError", "from_microseconds", "to_microseconds"]
