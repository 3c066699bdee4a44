"""The configuration's files: one main TOML file plus an optional drop-in directory.

Operators keep the shipped file untouched and put site changes in drop-ins, as with
systemd units: `edge-controller.toml` is read first, then every `*.toml` in
`edge-controller.toml.d/` in name order (`10-site.toml`, `50-limits.toml`, ...).
Later files win key by key: tables merge, anything else (numbers, strings, lists,
the `[[use_cases]]` array) is replaced whole — merging lists element by element
would make a removed use case impossible to express.

Each key remembers the file that set it last, so an error names the file to edit,
not just the merged result. `fingerprint` is what the live-edit watcher compares: a
file added to the directory later changes it too.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from edge_controller.config.schema import ConfigError, ControllerConfig, parse_config

Fingerprint = tuple[tuple[str, int, int, int], ...]
"""(path, inode, size, mtime in ns) per file: what changes when a file is edited."""


def drop_in_directory(path: Path) -> Path:
    """The default drop-in directory of a config file: `FILE.d` beside it."""
    return path.with_name(path.name + ".d")


def sources(path: Path, drop_ins: Path | None = None) -> list[Path]:
    """The files that make up the configuration, in the order they are merged."""
    directory = drop_in_directory(path) if drop_ins is None else drop_ins
    found = [path]
    if directory.is_dir():
        found.extend(sorted(p for p in directory.glob("*.toml") if p.is_file()))
    return found


def fingerprint(path: Path, drop_ins: Path | None = None) -> Fingerprint:
    """What the files look like on disk now; any edit, addition or removal changes it."""
    seen = []
    for source in sources(path, drop_ins):
        try:
            stat = source.stat()
        except OSError:
            seen.append((str(source), -1, -1, -1))
            continue
        seen.append((str(source), stat.st_ino, stat.st_size, stat.st_mtime_ns))
    return tuple(seen)


def merge(
    documents: list[tuple[str, Mapping[str, Any]]],
) -> tuple[dict[str, Any], dict[str, str]]:
    """Merge parsed documents in order; return the result and each key path's file."""
    merged: dict[str, Any] = {}
    origins: dict[str, str] = {}

    def into(target: dict[str, Any], update: Mapping[str, Any], prefix: str, name: str) -> None:
        for key, value in update.items():
            path = f"{prefix}.{key}" if prefix else key
            if isinstance(value, dict) and isinstance(target.get(key), dict):
                into(target[key], value, path, name)
                continue
            target[key] = _copy(value)
            for known in [p for p in origins if p.startswith(path + ".") or p == path]:
                del origins[known]
            origins[path] = name

    for name, document in documents:
        into(merged, document, "", name)
    return merged, origins


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


_INDEX = re.compile(r"\[\d+\]")


def locator(origins: Mapping[str, str], default: str) -> Any:
    """Map a problem line (`key.path: ...`) to the file that set that key."""

    def locate(problem: str) -> str:
        path = _INDEX.sub("", problem.split(": ", 1)[0])
        while path:
            if path in origins:
                return origins[path]
            path = path.rpartition(".")[0]
        return default

    return locate


def load(
    path: Path,
    *,
    environ: Mapping[str, str] | None = None,
    drop_ins: Path | None = None,
    overlay: tuple[Path, str] | None = None,
) -> ControllerConfig:
    """Read, merge and validate the configuration.

    `overlay` (a drop-in file and its text) is read as if that file held that text,
    whether it exists or not: what the configuration would be after writing it (the
    web console checks its controls drop-in so before it writes).

    Raises:
        ConfigError: a file cannot be read or is not TOML (each one named), or the
            merged configuration is invalid (each problem named with its file).
    """
    documents: list[tuple[str, Mapping[str, Any]]] = []
    problems: list[tuple[str, str]] = []
    found = sources(path, drop_ins)
    if overlay is not None and overlay[0] not in found:
        found = [path, *sorted([*found[1:], overlay[0]])]
    for source in found:
        name = path.name if source == path else f"{source.parent.name}/{source.name}"
        try:
            if overlay is not None and source == overlay[0]:
                text = overlay[1]
            else:
                text = source.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            reason = error.strerror if isinstance(error, OSError) else "not UTF-8 text"
            problems.append((name if source != path else str(path), f"cannot read: {reason}"))
            continue
        try:
            documents.append((name, tomllib.loads(text)))
        except tomllib.TOMLDecodeError as error:
            problems.append((name, f"not valid TOML: {error}"))
        except RecursionError:
            problems.append((name, "not usable: arrays or tables nested too deeply"))
    if problems:
        raise ConfigError(
            path.name,
            [problem for _, problem in problems],
            dict(zip((p for _, p in problems), (n for n, _ in problems), strict=True)).__getitem__,
        )
    try:
        merged, origins = merge(documents)
    except RecursionError:
        raise ConfigError(path.name, ["tables nested too deeply to be a configuration"]) from None
    return parse_config(
        merged,
        path.name,
        base_dir=path.parent,
        environ=environ,
        locate=locator(origins, path.name),
    )
