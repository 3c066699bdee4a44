"""What a configuration key is: the one description the parser and the reference share.

Each section of the controller config is a `SectionSpec` holding `KeySpec`s. The
parser (`config/schema.py`, and each use case's `config.py` for its own keys) takes
from them the keys it accepts (anything else is an unknown key), what it tells the
operator it expected, the default it uses and the converter it applies;
`config/changes.py` takes from them which sections apply live; `config/reference.py`
renders them as `docs/config-reference.md`. A key that exists only in the parser or
only in the reference cannot happen.

Here, below `config/` and the use cases, because both describe keys with them: a use
case declares its keys without importing the configuration package that reads them.

```python
SectionSpec(
    "microgrid",
    "Where the Microgrid API is.",
    live=False,
    keys=(seconds_key("stale_after", 0.1, 3600, 10.0, "Older telemetry counts as missing."),),
)
```
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Final

from edge_controller.common.toml_reader import Reader, checked, number


class _Required:
    """The marker of a key without a default (missing is a problem)."""

    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Final = _Required()


@dataclass(frozen=True, slots=True)
class KeySpec:
    """One key of a section: what it must be, what it means, what it defaults to."""

    key: str
    expected: str
    """What the value must be; the "expected …" of an error message, and the type shown."""
    meaning: str
    """One line for the reference."""
    unit: str = ""
    default: object = REQUIRED
    """The value the parser uses when the key is missing (`REQUIRED`: none)."""
    default_text: str | None = None
    """Shown instead of `default` where the parser computes the default."""
    convert: Callable[[object], Any] | None = None
    """Raw TOML value → converted value, None when unusable; None here: the parser
    reads this key with code of its own (files, tables, keys from elsewhere)."""
    field: str = ""
    """The options field whose default this key takes, if not `default` (its section's
    `field_default` renders it for the reference)."""


@dataclass(frozen=True, slots=True)
class SectionSpec:
    """One table (or array of tables) of the config, its keys and how an edit applies."""

    name: str
    """The key path of the table: `dispatch`, `grid.meters`, `use_cases`."""
    meaning: str
    live: bool
    """An edit applies to the running daemon (False: logged, applied at the next start)."""
    keys: tuple[KeySpec, ...]
    array: bool = False
    """An array of tables (`[[use_cases]]`)."""
    heading: str = ""
    """Shown instead of the table header (e.g. a kind's extra keys)."""
    field_default: Callable[[str], str] | None = None
    """The reference's text for the default of an options field (`KeySpec.field`),
    called only when the reference is rendered: the options class may be slow to load."""

    @property
    def header(self) -> str:
        """The TOML header (`[dispatch]`, `[[use_cases]]`) or the heading."""
        if self.heading:
            return self.heading
        return f"[[{self.name}]]" if self.array else f"[{self.name}]"

    @property
    def names(self) -> set[str]:
        """Every key the section accepts."""
        return {spec.key for spec in self.keys}

    def __getitem__(self, key: str) -> KeySpec:
        """The spec of `key`.

        Raises:
            KeyError: the section has no such key (a programming error).
        """
        for spec in self.keys:
            if spec.key == key:
                return spec
        raise KeyError(f"{self.name}.{key}")

    def read(
        self, reader: Reader, table: Mapping[str, Any], key: str, path: str | None = None
    ) -> Any:
        """Convert `table[key]` as its spec says; None (a problem recorded) when unusable.

        `path` is the table's key path in messages (`use_cases[2]`; default: `name`).
        """
        spec = self[key]
        assert spec.convert is not None, f"{self.name}.{key} is read by its own code"
        default = {} if spec.default is REQUIRED else {"default": spec.default}
        return reader.value(
            table, key, self.name if path is None else path, spec.convert, spec.expected, **default
        )


def seconds(low: float, high: float) -> Callable[[object], float | None]:
    """A converter for a number of seconds within [low, high]."""
    return checked(number, lambda value: low <= value <= high)


def seconds_key(key: str, low: float, high: float, default: object, meaning: str) -> KeySpec:
    """A duration in seconds within [low, high]."""
    return KeySpec(
        key,
        f"seconds {low:g}-{high:g}",
        meaning,
        unit="s",
        default=default,
        convert=seconds(low, high),
    )


def show_default(value: object) -> str:
    """A default as the reference shows it: seconds, watts and lists in config form."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, timedelta):
        return f"{value.total_seconds():g}"
    if isinstance(value, int | float):
        return f"{value:g}"
    if isinstance(value, str):
        return f'`"{value}"`'
    if isinstance(value, frozenset | tuple | list):
        return f"`{sorted(value)!r}`" if value else "`[]`"
    return f"`{value}`"
