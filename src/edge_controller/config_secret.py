"""Where an API key comes from: a file, a systemd credential, or the environment.

Keys never sit in the configuration itself (it is logged, diffed, shown in
`check-config`). In order: the section's `key_file` (relative to the config file),
else the systemd credential `$CREDENTIALS_DIRECTORY/<credential>` (`LoadCredential=`),
else the environment variable. Every way it can fail is a configuration problem with
the key path, never an exception.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from edge_controller.toml_reader import Reader


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
        key = _read(reader, path_key, path, raw)
        if key == "":
            reader.problems.append(f"{path_key}: {str(path)!r} is empty; expected {what}")
            return None
        return key
    credentials = environ.get("CREDENTIALS_DIRECTORY", "")
    if credentials:
        key = _read(
            reader,
            f"{path_key}: missing, and the credential",
            Path(credentials) / credential,
            credential,
            missing_ok=True,
        )
        if key is None:
            return None
        if key:
            return key
    key = environ.get(variable, "").strip()
    if not key:
        reader.problems.append(
            f"{path_key}: missing; expected a file holding {what} (or a systemd "
            f"credential {credential!r}, or {variable} set)"
        )
        return None
    return key


def _read(
    reader: Reader, prefix: str, path: Path, shown: str, *, missing_ok: bool = False
) -> str | None:
    """The stripped text of `path`; "" if empty (or missing and `missing_ok`); None: a problem."""
    try:
        return path.read_text(encoding="utf-8").strip()
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
