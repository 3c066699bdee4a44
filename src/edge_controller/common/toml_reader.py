"""Reading typed values out of parsed TOML, with errors an operator can act on.

Every problem is recorded with its key path (`components[3].capacity`), what was
expected and what was found; unknown keys are errors with a "did you mean"
suggestion. Readers collect all problems so one run of a validator lists them all.
Shared by the simulator's site files and the controller's configuration.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, TypeVar

from frequenz.quantities import Energy, Power

_T = TypeVar("_T")
_MISSING = object()


class Reader:
    """Reads typed values out of parsed TOML, noting every problem with its key path."""

    def __init__(self) -> None:
        """Start with no problems."""
        self.problems: list[str] = []

    def fail(self, path: str, expected: str, found: object) -> None:
        """Record that `path` held `found` where `expected` was wanted."""
        self.problems.append(f"{path}: expected {expected}, got {show(found)}")

    def table(self, data: Mapping[str, Any], key: str, path: str) -> Mapping[str, Any]:
        """Return the sub-table `key` (empty if absent; a problem if not a table)."""
        value = data.get(key, {})
        if not isinstance(value, dict):
            self.fail(join(path, key), "a table", value)
            return {}
        return value

    def unknown_keys(self, data: Mapping[str, Any], allowed: set[str], path: str) -> None:
        """Record every key of `data` not in `allowed`, with a suggestion."""
        for key in sorted(set(data) - allowed):
            hint = closest(key, allowed)
            suggestion = f" (did you mean {hint!r}?)" if hint else ""
            self.problems.append(
                f"{join(path, key)}: unknown key{suggestion}; expected one of {sorted(allowed)}"
            )

    def value(
        self,
        data: Mapping[str, Any],
        key: str,
        path: str,
        convert: Callable[[object], _T | None],
        expected: str,
        default: object = _MISSING,
    ) -> _T | None:
        """Convert `data[key]`; None (and a problem) when missing or not convertible.

        A missing key with a `default` gives the default and no problem.
        """
        raw = data.get(key, _MISSING)
        if raw is _MISSING:
            if default is _MISSING:
                self.problems.append(f"{join(path, key)}: missing; expected {expected}")
                return None
            return default  # type: ignore[return-value]
        converted = convert(raw)
        if converted is None:
            self.fail(join(path, key), expected, raw)
        return converted


SHOWN_CHARS = 120
"""A bad value is shown up to this long: a huge list must not make a huge log line."""


def show(found: object) -> str:
    if isinstance(found, dict):
        return "a table"
    text = repr(found) if isinstance(found, str) else str(found)
    if len(text) > SHOWN_CHARS:
        size = f"{len(found)} items, " if isinstance(found, list | tuple | str) else ""
        return f"{text[: SHOWN_CHARS - 20]}... ({size}{len(text)} characters)"
    return text


def join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def closest(key: str, allowed: set[str]) -> str | None:
    matches = difflib.get_close_matches(key, sorted(allowed), n=1, cutoff=0.6)
    return matches[0] if matches else None


def number(raw: object) -> float | None:
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        return None
    value = float(raw)
    return value if math.isfinite(value) else None


def integer(raw: object) -> int | None:
    return raw if isinstance(raw, int) and not isinstance(raw, bool) else None


def positive_integer(raw: object) -> int | None:
    """An integer > 0 (an id, a count), or None."""
    value = integer(raw)
    return value if value is not None and value > 0 else None


def string(raw: object) -> str | None:
    return raw if isinstance(raw, str) and raw.strip() else None


def power(raw: object) -> float | None:
    if isinstance(raw, str):
        try:
            return number(Power.from_string(raw.strip()).as_watts())
        except (ValueError, KeyError, IndexError):
            return None
    return number(raw)


def energy(raw: object) -> float | None:
    if isinstance(raw, str):
        try:
            return number(Energy.from_string(raw.strip()).as_watt_hours())
        except (ValueError, KeyError, IndexError):
            return None
    return number(raw)


def checked(
    convert: Callable[[object], float | None], ok: Callable[[float], bool]
) -> Callable[[object], float | None]:
    def check(raw: object) -> float | None:
        value = convert(raw)
        return value if value is not None and ok(value) else None

    return check


def pair(
    convert: Callable[[object], float | None], make: Callable[[float, float], _T]
) -> Callable[[object], _T | None]:
    """Read `[lower, upper]` (both converted, lower <= upper) as `make(lower, upper)`.

    The reader knows TOML, not what a pair stands for: the caller names the type
    (`pair(power, Range)` for power bounds), so `common` needs nothing from `power`.
    """

    def read(raw: object) -> _T | None:
        if not isinstance(raw, list) or len(raw) != 2:
            return None
        lower, upper = convert(raw[0]), convert(raw[1])
        if lower is None or upper is None or lower > upper:
            return None
        return make(lower, upper)

    return read


def timestamp(raw: object) -> datetime | None:
    if isinstance(raw, datetime):
        return raw if raw.tzinfo is not None else None
    if isinstance(raw, str):
        try:
            parsed = datetime.fromisoformat(raw)
        except ValueError:
            return None
        return parsed if parsed.tzinfo is not None else None
    return None
