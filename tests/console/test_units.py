"""The console's pure pieces: users file, login limiter, history store, event ring, CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from edge_controller.common.event_ring import EventRing
from edge_controller.daemon.console.history import HistorySample, HistoryStore
from edge_controller.servers.common.auth import LoginLimiter
from edge_controller.servers.common.users import Users


def test_passwords_are_scrypt_hashed_with_a_salt_per_user_and_tokens_stored_as_hashes(
    tmp_path: Path,
) -> None:
    users = Users(tmp_path / "users.json")
    users.add("ada", "installer", "correct horse")
    users.add("bob", "guest", "correct horse")
    token = users.new_token("ada")
    users.save()
    stored = json.loads((tmp_path / "users.json").read_text())["users"]
    assert stored["ada"]["password"]["kdf"] == "scrypt"
    assert stored["ada"]["password"]["salt"] != stored["bob"]["password"]["salt"]
    assert "correct horse" not in (tmp_path / "users.json").read_text()
    assert token not in (tmp_path / "users.json").read_text()
    assert (tmp_path / "users.json").stat().st_mode & 0o777 == 0o600
    again = Users.load(tmp_path / "users.json")
    assert again.authenticate("ada", "correct horse") is not None
    assert again.authenticate("ada", "wrong horse") is None
    assert again.authenticate("nobody", "correct horse") is None
    user = again.by_token(token)
    assert user is not None
    assert user.name == "ada"
    assert again.at_least("installer", "owner")
    assert not again.at_least("owner", "installer")
    with pytest.raises(ValueError, match="at least 8"):
        again.add("eve", "admin", "short")
    with pytest.raises(ValueError, match="exists already"):
        again.add("ada", "admin", "long enough")


def test_the_limiter_refuses_after_five_failures_within_the_window() -> None:
    limiter = LoginLimiter(failures=5, window_s=300)
    for second in range(5):
        assert limiter.retry_after("10.0.0.1", second) == 0
        limiter.failed("10.0.0.1", second)
    assert limiter.retry_after("10.0.0.1", 5) == pytest.approx(295)
    assert limiter.retry_after("10.0.0.2", 5) == 0
    assert limiter.retry_after("10.0.0.1", 301) == 0
    limiter.succeeded("10.0.0.1")
    assert limiter.retry_after("10.0.0.1", 6) == 0


def test_history_survives_a_reopen_and_drops_what_is_older_than_a_day(tmp_path: Path) -> None:
    path = tmp_path / "history.sqlite3"
    start = datetime(2026, 6, 21, tzinfo=UTC)
    store = HistoryStore(path, interval=timedelta(seconds=10))
    for step in range(0, 25 * 360, 30):  # 25 h, one sample per 5 min
        at = start + timedelta(seconds=10 * step)
        store.add(HistorySample(at, -1000.0, 500.0, {11: (50.0, -1000.0)}))
    store.close()
    store = HistoryStore(path, interval=timedelta(seconds=10))
    kept = store.since(start)
    assert kept[-1].at - kept[0].at <= timedelta(hours=24)
    assert kept[-1].batteries == {11: (50.0, -1000.0)}
    assert len(store.since(start, step=timedelta(hours=1))) == 25  # both ends of the 24 h
    small = HistoryStore(None, keep=timedelta(hours=24), interval=timedelta(hours=12))
    for hour in range(24):
        small.add(HistorySample(start + timedelta(hours=hour), None, None))
    assert len(small) <= small.max_rows


def test_the_ring_keeps_warnings_and_errors_only_newest_first_bounded() -> None:
    ring = EventRing(size=3)
    ring.processor(None, "info", {"event": "fine", "level": "info"})
    for index in range(5):
        ring.processor(
            None, "warning", {"event": f"w{index}", "level": "warning", "big": "x" * 999}
        )
    recent = ring.recent()
    assert [e["event"] for e in recent] == ["w4", "w3", "w2"]
    assert len(recent[0]["big"]) == 300


def test_user_add_reads_the_password_from_stdin_and_refuses_a_short_one(tmp_path: Path) -> None:
    users_file = tmp_path / "users.json"
    command = [sys.executable, "-m", "edge_controller.tools.cli", "user"]
    done = subprocess.run(
        [*command, "add", "ada", "--role", "owner", "--users-file", str(users_file),
         "--password-stdin"],
        input="long enough\n", capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"added name=ada role=owner file={users_file}\n"
    short = subprocess.run(
        [*command, "add", "bob", "--role", "admin", "--users-file", str(users_file),
         "--password-stdin"],
        input="short\n", capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert short.returncode == 2
    assert short.stderr == "edge-controller user: password: expected at least 8 characters\n"
    listed = subprocess.run(
        [*command, "list", "--users-file", str(users_file)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert listed.stdout == "name=ada role=owner tokens=-\n"
