"""Which running dispatch owns which battery, when several target the same ones.

Unused, to be deleted: overlaps are settled in one place, the PowerManagingActor
(`power.overlaps`, `controller.power_managing.settle`); this module stays only until
its line in pyproject's `pure_cores` import contract goes with it.

Rule (documented in the README): for every battery, the running dispatch created
last wins (ties: the higher id); each dispatch drives the batteries it owns. An older
dispatch keeps the batteries nobody newer claims, and gets the rest back when the
newer one ends. Every overlap is reported so the actor can log both ids.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class RunningDispatch:
    """A dispatch that is running now, reduced to what ownership needs."""

    dispatch_id: int
    created: datetime
    batteries: frozenset[int]
    power_w: float
    dry_run: bool = False


@dataclass(frozen=True, slots=True)
class Conflict:
    """Two running dispatches that want the same batteries."""

    winner: int
    loser: int
    batteries: frozenset[int]


@dataclass(frozen=True, slots=True)
class Assignment:
    """The batteries each running dispatch drives, and the overlaps that decided it."""

    owned: dict[int, frozenset[int]]
    conflicts: tuple[Conflict, ...]


def assign(running: Iterable[RunningDispatch]) -> Assignment:
    """Give every battery to the newest running dispatch that targets it."""
    ordered = sorted(running, key=lambda d: (d.created, d.dispatch_id), reverse=True)
    taken: dict[int, int] = {}
    owned: dict[int, frozenset[int]] = {}
    conflicts: list[Conflict] = []
    for dispatch in ordered:
        lost = {b for b in dispatch.batteries if b in taken}
        for winner in sorted({taken[b] for b in lost}):
            shared = frozenset(b for b in lost if taken[b] == winner)
            conflicts.append(Conflict(winner, dispatch.dispatch_id, shared))
        mine = dispatch.batteries - lost
        for battery in mine:
            taken[battery] = dispatch.dispatch_id
        if mine:
            owned[dispatch.dispatch_id] = frozenset(mine)
    return Assignment(owned, tuple(conflicts))
