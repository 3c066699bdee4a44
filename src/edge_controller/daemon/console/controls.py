"""The operator controls, changed from the console as a drop-in file of the configuration.

The TOML files stay the single truth: `PUT /api/controls` writes
`FILE.d/90-console-controls.toml` (a `[controls]` table), which the config watcher
reads, validates and applies live like any edit by hand. Before writing, the whole
configuration is loaded as it would be with the new file (`config_files.load(...,
overlay=...)`) and checked against the site, so a bad value is refused (400 with the
validator's own message, naming the file and key) and nothing is written.

Keys left out of the request keep the drop-in's current value; `power_limit_w: null`
removes the drop-in's limit, so the files below it decide again (TOML has no null).
Later drop-ins (name order after `90-`) still win: `effective` tells what runs.
"""

from __future__ import annotations

import math
import os
import tempfile
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Final

from edge_controller.config.files import drop_in_directory, load
from edge_controller.config.schema import ConfigError, ControllerConfig

DROP_IN_NAME: Final = "90-console-controls.toml"
_KEYS: Final = ("mode", "excluded_batteries", "power_limit_w")


class ControlsError(ValueError):
    """A request the controls cannot take; one message per problem."""

    def __init__(self, problems: list[str]) -> None:
        """Say every problem."""
        super().__init__("; ".join(problems))
        self.problems = problems


class ControlsWriter:
    """Reads and writes the console's controls drop-in for one configuration file."""

    def __init__(
        self,
        config_path: Path,
        *,
        drop_ins: Path | None = None,
        environ: Mapping[str, str] | None = None,
        check: Callable[[ControllerConfig], None] | None = None,
    ) -> None:
        """Write beside `config_path` (or into `drop_ins`).

        `check` refuses a valid configuration that does not fit the site (raises
        `ConfigError`, e.g. `Controller.check_against_site`).
        """
        self.config_path = config_path
        self.directory = drop_ins if drop_ins is not None else drop_in_directory(config_path)
        self.path = self.directory / DROP_IN_NAME
        self._environ = environ
        self._check = check

    def current(self) -> dict[str, Any]:
        """What the drop-in sets now (empty when there is none or it is unreadable)."""
        try:
            document = tomllib.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError):
            return {}
        table = document.get("controls", {})
        found: dict[str, Any] = {}
        if "mode" in table:
            found["mode"] = table["mode"]
        if "excluded_batteries" in table:
            found["excluded_batteries"] = table["excluded_batteries"]
        if "power_limit" in table:
            found["power_limit_w"] = table["power_limit"]
        return found

    def prepare(self, request: Mapping[str, Any], *, user: str) -> tuple[str, ControllerConfig]:
        """The drop-in's new text and the configuration it makes; nothing written.

        Raises:
            ControlsError: unknown keys, values of the wrong type, or what the
                configuration's validator (or the site check) says.
        """
        unknown = sorted(set(request) - set(_KEYS))
        if unknown:
            raise ControlsError([f"unknown keys {unknown}; expected some of {list(_KEYS)}"])
        wanted = {**self.current(), **request}
        lines = [
            f"# Written by the web console for {user}. The console rewrites this file;",
            "# edit it by hand or there, not both at once.",
            "[controls]",
        ]
        problems: list[str] = []
        if "mode" in wanted:
            lines.append(f"mode = {_toml_string(wanted['mode'], 'mode', problems)}")
        if "excluded_batteries" in wanted:
            ids = wanted["excluded_batteries"]
            if not isinstance(ids, list) or not all(
                isinstance(i, int) and not isinstance(i, bool) for i in ids
            ):
                problems.append(f"excluded_batteries: expected a list of battery ids, got {ids!r}")
            else:
                lines.append(f"excluded_batteries = [{', '.join(str(i) for i in ids)}]")
        limit = wanted.get("power_limit_w")
        if limit is not None:
            if (
                isinstance(limit, bool)
                or not isinstance(limit, int | float)
                or not math.isfinite(limit)
            ):
                problems.append(f"power_limit_w: expected a power in W or null, got {limit!r}")
            else:
                lines.append(f"power_limit = {float(limit)!r}")
        if problems:
            raise ControlsError(problems)
        text = "\n".join(lines) + "\n"
        try:
            config = load(
                self.config_path,
                environ=self._environ,
                drop_ins=self.directory,
                overlay=(self.path, text),
            )
            if self._check is not None:
                self._check(config)
        except ConfigError as error:
            raise ControlsError(error.lines) from None
        return text, config

    def write(self, text: str) -> None:
        """Write the drop-in atomically (the watcher never sees half a file)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(prefix=".console-", suffix=".tmp", dir=self.directory)
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                out.write(text)
            os.chmod(temporary, 0o644)
            os.replace(temporary, self.path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise


def _toml_string(value: object, key: str, problems: list[str]) -> str:
    if not isinstance(value, str):
        problems.append(f"{key}: expected a string, got {value!r}")
        return '""'
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'
