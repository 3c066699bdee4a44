"""Every use case the controller knows, in one tuple: add a use case here, once.

The configuration (`config/schema.py`: the kinds, their keys, their default dispatch
types, `docs/config-reference.md`) and the controller graph (`controller/graph.py`:
building the actors) loop over `USE_CASES` and name no use case. A new one is its
folder under `use_cases/` (whose `__init__.py` holds `USE_CASE`), its name in the
import and one line in `USE_CASES` below, and its tests. The order is the
reference's and the kind list's.
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
