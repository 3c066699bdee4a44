"""The keys file and the key check."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_controller.servers.common.api_keys import (
    KeyFileError,
    key_is_valid,
    load_keys,
    parse_keys,
)


def test_keys_file_format() -> None:
    text = "# lab keys\n\nalpha-1\n  beta_2  \n# retired: gamma\nalpha-1\n"
    assert parse_keys(text, "keys") == frozenset({"alpha-1", "beta_2"})


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", r"^keys: no keys \(one key per line"),
        ("# nothing\n   \n", r"^keys: no keys"),
        ("good\nsecret with space\n", r"^keys: line 2: expected one key of printable ASCII"),
        ("k\u00e9y\n", r"^keys: line 1: expected one key of printable ASCII"),
    ],
)
def test_bad_keys_files_name_the_line_never_the_key(text: str, message: str) -> None:
    with pytest.raises(KeyFileError, match=message) as caught:
        parse_keys(text, "keys")
    assert "secret" not in str(caught.value)


def test_unreadable_keys_file(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match=r"--keys-file .*absent: cannot read: No such file"):
        load_keys(tmp_path / "absent")
    binary = tmp_path / "binary"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(KeyFileError, match=r"cannot read"):
        load_keys(binary)


def test_key_check() -> None:
    keys = frozenset({"alpha", "beta"})
    assert key_is_valid("beta", keys)
    assert not key_is_valid("bet", keys)
    assert not key_is_valid("", keys)
    assert not key_is_valid(None, keys)
