"""Every use case the controller knows, in one tuple: add a use case here, once.

The configuration (`config/schema.py`: the kinds, their keys, their default dispatch
types, `docs/config-reference.md`) and the controller graph (`controller/graph.py`:
building the actors) loop over `USE_CASES` and name no use case. A new one is its
folder under `use_cases/` (whose `__init__.py` holds `USE_CASE`), one line below and
its tests.
"""

from __future__ import annotations

from collections.abc import Mapping

from edge_controller.framework.use_case import SectionUseCase, UseCase
from edge_controller.use_cases import (
    battery_power,
    ev_charging,
    market_bid,
    peak_shaving,
    pv_curtailment,
)

USE_CASES: tuple[UseCase, ...] = (
    battery_power.USE_CASE,
    peak_shaving.USE_CASE,
    market_bid.USE_CASE,
    pv_curtailment.USE_CASE,
    ev_charging.USE_CASE,
)


def entry_kinds(use_cases: tuple[UseCase, ...] = USE_CASES) -> dict[str, UseCase]:
    """The `[[use_cases]] kind` values and their use cases, in registry order."""
    return {u.kind: u for u in use_cases if not isinstance(u, SectionUseCase)}


def section_owners(use_cases: tuple[UseCase, ...] = USE_CASES) -> dict[str, SectionUseCase]:
    """The top-level tables owned by a use case (`[market_bid]`), by table name."""
    return {u.section.name: u for u in use_cases if isinstance(u, SectionUseCase)}


def by_kind(use_cases: tuple[UseCase, ...] = USE_CASES) -> Mapping[str, UseCase]:
    """Every use case by kind (entry kinds and section owners alike)."""
    return {u.kind: u for u in use_cases}
