"""Where an API key comes from: a file, a systemd credential, or the environment.

Keys never sit in the configuration itself (it is logged, diffed, shown in
`check-config`). In order: the section's `key_file` (relative to the config file),
else the systemd credential `$CREDENTIALS_DIRECTORY/<credential>` (`LoadCredential=`),
else the environment variable. Every way it can fail is a configuration problem with
the key path, never an exception.

A key file is read the way the dispatch service reads its keys file
(`dispatch_service.auth.parse_keys`): blank lines and lines starting with `#` are
ignored, and what is left must be one key of printable ASCII without spaces. An
operator who keeps a comment beside the key ("# issued 2026-11 for site 7"), or
copies a line from the service's keys file with its comment, expects it to work; and
whatever `check-config` accepts, `run` can send: gRPC metadata carries nothing but
printable ASCII, so a key with a newline or a non-ASCII character used to pass the
check and then end `run` in a gRPC `ExecuteBatchError` traceback (exit 1, restarted
by systemd for ever). The credential and the environment variable follow the same
rules.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from edge_controller.common.toml_reader import Reader


def read_api_key(
    reader: Reader,
    table: Mapping[str, Any],
    section: str,
    base_dir: Path | None,
    environ: Mapping[str, str],
    *,
    credential: str,
    variable: str,
    what: str = "the API key",
) -> str | None:
    """The key for `[section]`, or None with the problem recorded on `reader`."""
    path_key = f"{section}.key_file"
    raw = table.get("key_file")
    if raw is not None:
        if not isinstance(raw, str) or not raw:
            reader.fail(path_key, "a file path", raw)
            return None
        path = Path(raw)
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        text = _read(reader, path_key, path, raw)
        if text is None:
            return None
        return _one_key(reader, path_key, repr(str(path)), text, what)
    credentials = environ.get("CREDENTIALS_DIRECTORY", "")
    if credentials:
        prefix = f"{path_key}: missing, and the credential"
        path = Path(credentials) / credential
        text = _read(reader, prefix, path, credential, missing_ok=True)
        if text is None:
            return None
        if text.strip():
            return _one_key(reader, prefix, repr(str(path)), text, what)
    text = environ.get(variable, "")
    if not text.strip():
        reader.problems.append(
            f"{path_key}: missing; expected a file holding {what} (or a systemd "
            f"credential {credential!r}, or {variable} set)"
        )
        return None
    return _one_key(reader, f"{path_key}: missing, and", variable, text, what)


def _one_key(reader: Reader, prefix: str, shown: str, text: str, what: str) -> str | None:
    """The one key in `text` (see the module docstring), or None with the problem recorded.

    Problems give line numbers, never a line: the line may be a key.
    """
    keys: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        key = line.strip()
        if not key or key.startswith("#"):
            continue
        if not (key.isascii() and key.isprintable() and " " not in key and "\t" not in key):
            reader.problems.append(
                f"{prefix}: {shown} line {number}: expected {what} as one word of printable "
                "ASCII (gRPC metadata carries nothing else; comments go on their own line, "
                "starting with #)"
            )
            return None
        keys.append(key)
    if not keys:
        reader.problems.append(
            f"{prefix}: {shown} holds no key (only blank lines or # comments); expected {what}"
        )
        return None
    if len(keys) > 1:
        reader.problems.append(
            f"{prefix}: {shown} holds {len(keys)} keys (lines that are not blank or # "
            f"comments); expected exactly one, {what}"
        )
        return None
    return keys[0]


def _read(
    reader: Reader, prefix: str, path: Path, shown: str, *, missing_ok: bool = False
) -> str | None:
    """The text of `path`; "" if missing and `missing_ok`; None: a problem (recorded)."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError as error:
        if missing_ok:
            return ""
        reader.problems.append(f"{prefix}: cannot read {str(path)!r}: {error.strerror}")
    except OSError as error:
        reader.problems.append(f"{prefix}: cannot read {str(path)!r}: {error.strerror}")
    except UnicodeDecodeError:
        reader.problems.append(f"{prefix}: {str(path)!r} is not UTF-8 text")
    except ValueError as error:  # e.g. a NUL in the path
        reader.problems.append(f"{prefix}: unusable path {shown!r}: {error}")
    return None
