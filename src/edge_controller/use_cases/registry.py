"""Every use case the controller knows, by folder: adding a use case is one line here.

The configuration (`config/schema.py`: the kinds, their keys, their default dispatch
types, `docs/config-reference.md`) and the controller graph (`controller/graph.py`:
building the actors) loop over `USE_CASES` and name no use case. A new one is its
folder under `use_cases/` (whose `__init__.py` holds `USE_CASE`), its folder's name in
`FOLDERS` below, and its tests. The order is the reference's and the kind list's.

The folders are imported by name (`importlib`) when this module is, so a name is the
whole entry: an import statement and a tuple entry were two lines, and ruff wraps the
import. Each is checked then, and a folder that is missing or whose `USE_CASE` does
not meet `UseCase` stops the start with a `RegistryError` naming the folder. The
import rules cannot see imports by name; `tests/use_cases/test_registry.py` checks
that `FOLDERS` and the folders defining `USE_CASE` are the same set instead.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Mapping

from edge_controller.framework.use_case import SectionUseCase, UseCase

FOLDERS: tuple[str, ...] = (
    "battery_power",
    "peak_shaving",
    "market_bid",
    "pv_curtailment",
    "ev_charging",
)
"""The use-case folders under `use_cases/`, one per line."""


class RegistryError(Exception):
    """A registry entry that is not a usable use case; `folder` names the entry."""

    def __init__(self, folder: str, problem: str) -> None:
        """Say what is wrong with the folder `folder` of `FOLDERS`."""
        super().__init__(f"use_cases/registry.py: {folder!r}: {problem}")
        self.folder = folder


def _required_members() -> tuple[str, ...]:
    """What `UseCase` asks of a plug-in: its attributes, then its methods."""
    attributes = tuple(UseCase.__annotations__)
    methods = tuple(
        name for name, value in vars(UseCase).items() if callable(value) and name[0] != "_"
    )
    return attributes + methods


def load(folder: str) -> UseCase:
    """The `USE_CASE` of `use_cases/<folder>/__init__.py`.

    Raises:
        RegistryError: no such folder, no `USE_CASE` in it, or one that lacks a member
            of `UseCase` (each missing member named).
    """
    module_name = f"{__package__}.{folder}"
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name != module_name:
            raise  # the folder is there; something it imports is not
        raise RegistryError(folder, f"no package {module_name}") from None
    use_case = getattr(module, "USE_CASE", None)
    if use_case is None:
        raise RegistryError(folder, "its __init__.py defines no USE_CASE")
    missing = [name for name in _required_members() if not hasattr(use_case, name)]
    if missing or not isinstance(use_case, UseCase):
        raise RegistryError(folder, f"its USE_CASE is no UseCase: it lacks {missing}")
    return use_case


def load_all(folders: Iterable[str]) -> tuple[UseCase, ...]:
    """Each folder's use case, in order.

    Raises:
        RegistryError: a folder `load` refuses, or two folders with one `kind` (the
            configuration could not tell them apart).
    """
    found: dict[str, str] = {}
    use_cases: list[UseCase] = []
    for folder in folders:
        use_case = load(folder)
        if use_case.kind in found:
            raise RegistryError(
                folder, f"kind {use_case.kind!r} is already the kind of {found[use_case.kind]!r}"
            )
        found[use_case.kind] = folder
        use_cases.append(use_case)
    return tuple(use_cases)


USE_CASES: tuple[UseCase, ...] = load_all(FOLDERS)


def entry_kinds(use_cases: tuple[UseCase, ...] | None = None) -> dict[str, UseCase]:
    """The `[[use_cases]] kind` values and their use cases, in registry order.

    `use_cases` defaults to `USE_CASES` as it is at the call (a test may add one).
    """
    found = USE_CASES if use_cases is None else use_cases
    return {u.kind: u for u in found if not isinstance(u, SectionUseCase)}


def section_owners(use_cases: tuple[UseCase, ...] | None = None) -> dict[str, SectionUseCase]:
    """The top-level tables owned by a use case (`[market_bid]`), by table name."""
    found = USE_CASES if use_cases is None else use_cases
    return {u.section.name: u for u in found if isinstance(u, SectionUseCase)}


def by_kind(use_cases: tuple[UseCase, ...] | None = None) -> Mapping[str, UseCase]:
    """Every use case by kind (entry kinds and section owners alike)."""
    found = USE_CASES if use_cases is None else use_cases
    return {u.kind: u for u in found}
