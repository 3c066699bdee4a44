"""The SQLite store: round trips, ids, atomic writes, one owner, schema checks."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from edge_controller.servers.dispatch.model import (
    CategoryTarget,
    ComponentType,
    EndCriteria,
    Frequency,
    Recurrence,
    Target,
    TargetKind,
)
from edge_controller.servers.dispatch.query import DispatchFilter, Sort
from edge_controller.servers.dispatch.storage import DispatchStore, StoreError
from tests.servers.dispatch.conftest import NOON, data

MICROSECOND = timedelta(microseconds=1)


@pytest.fixture
def store(db_path: Path) -> DispatchStore:
    return DispatchStore(db_path)


def test_every_field_reads_back_after_reopening(db_path: Path, store: DispatchStore) -> None:
    rich = data(
        type="BALANCE",
        duration_s=None,
        target=Target(
            TargetKind.CATEGORIES,
            categories=(CategoryTarget(5, ComponentType.BATTERY, 1), CategoryTarget(3)),
        ),
        is_active=False,
        is_dry_run=True,
        payload={"nested": {"list": [1.0, "x", None, True]}, "emoji": "⚡"},
        recurrence=Recurrence(
            freq=Frequency.WEEKLY,
            interval=2,
            end=EndCriteria(until=NOON + timedelta(days=30)),
            byminutes=(0, 30),
            byhours=(14,),
            byweekdays=(1, 5),
            bymonths=(6, 7),
        ),
    )
    created = store.insert(3, rich, create_time=NOON + 7 * MICROSECOND, end_time=None)
    legacy = store.insert(
        3,
        data(target=Target(TargetKind.LEGACY_CATEGORIES, categories=(CategoryTarget(5),))),
        create_time=NOON,
        end_time=NOON + timedelta(hours=2),
    )
    store.close()
    reopened = DispatchStore(db_path)
    assert reopened.load() == [created, legacy]
    assert created.update_time == created.create_time


def test_ids_are_never_reused(db_path: Path, store: DispatchStore) -> None:
    first = store.insert(1, data(), create_time=NOON, end_time=None)
    second = store.insert(1, data(), create_time=NOON, end_time=None)
    store.delete(second.id)
    store.close()
    reopened = DispatchStore(db_path)
    third = reopened.insert(1, data(), create_time=NOON, end_time=None)
    assert (first.id, second.id, third.id) == (1, 2, 3)
    assert [d.id for d in reopened.load()] == [1, 3]


def test_replace_and_delete_of_unknown_ids_write_nothing(store: DispatchStore) -> None:
    created = store.insert(1, data(), create_time=NOON, end_time=None)
    with pytest.raises(KeyError):
        store.replace(replace(created, id=99))
    with pytest.raises(KeyError):
        store.delete(99)
    assert store.load() == [created]


def test_a_failed_write_is_rolled_back(db_path: Path, store: DispatchStore) -> None:
    created = store.insert(1, data(), create_time=NOON, end_time=None)
    # Make every later update fail inside its transaction, after the row was written.
    store._db.execute(
        "CREATE TRIGGER refuse AFTER UPDATE ON dispatches "
        "BEGIN SELECT RAISE(ABORT, 'disk on fire'); END"
    )
    changed = replace(created, update_time=NOON + MICROSECOND, data=data(type="CHANGED"))
    with pytest.raises(sqlite3.IntegrityError, match="disk on fire"):
        store.replace(changed)
    assert store.load() == [created]
    store.close()
    assert DispatchStore(db_path).load() == [created]


def test_a_second_server_cannot_open_the_same_file(db_path: Path, store: DispatchStore) -> None:
    with pytest.raises(StoreError, match=r"in use by another process"):
        DispatchStore(db_path)
    store.close()
    DispatchStore(db_path).close()


def test_files_that_are_not_dispatch_databases_are_refused(tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("not sqlite " * 100)
    with pytest.raises(
        StoreError, match=r"notes.txt: not a dispatch database: file is not a database"
    ):
        DispatchStore(text)
    other = tmp_path / "other.sqlite"
    with sqlite3.connect(other) as connection:
        connection.execute("CREATE TABLE invoices (id INTEGER)")
    connection.close()
    with pytest.raises(
        StoreError,
        match=r"not a dispatch database of schema version 2 \(found version 0, tables: invoices\)",
    ):
        DispatchStore(other)
    with pytest.raises(StoreError, match=r"cannot open: unable to open database file"):
        DispatchStore(tmp_path / "missing-dir" / "d.sqlite")


def test_a_version_1_file_is_upgraded_and_lists_by_target(db_path: Path) -> None:
    store = DispatchStore(db_path)
    created = store.insert(1, data(type="Charge"), create_time=NOON, end_time=None)
    store.close()
    with sqlite3.connect(db_path) as old:  # back to what version 1 wrote
        for statement in (
            "DROP TABLE target_ids",
            "DROP TABLE target_categories",
            "DROP INDEX dispatches_by_start_time",
            "DROP INDEX dispatches_by_update_time",
            "ALTER TABLE dispatches DROP COLUMN type_folded",
            "PRAGMA user_version=1",
        ):
            old.execute(statement)
    old.close()
    store = DispatchStore(db_path)
    wanted = DispatchFilter(targets=(Target(TargetKind.IDS, ids=(8,)),), queries=("CHARGE",))
    keys, total = store.list_page(1, wanted, Sort(), 10, None)
    assert [i for _, i in keys] == [created.id]
    assert total == 1
    store.close()
