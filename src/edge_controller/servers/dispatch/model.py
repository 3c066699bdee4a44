"""A dispatch as plain data: what the rules, the queries and the storage work on.

These frozen dataclasses mirror `frequenz.api.dispatch.v1` messages field by field,
without protobuf: `convert` translates at the edge. Enum fields keep the API's
numbers (`Frequency`, `Weekday` and the component categories and types), so a value
the API does not define can still be represented, and refused with its number.

```
Dispatch ── id, microgrid_id, create_time, update_time, end_time (derived)
   └── data: DispatchData ── type, start_time, duration_s, target, is_active,
                              is_dry_run, payload, recurrence
                                 ├── Target ── ids | categories (+ optional type)
                                 └── Recurrence ── freq, interval, end, by* lists
```

Every datetime is timezone-aware UTC.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum, IntEnum
from typing import Any


class Frequency(IntEnum):
    """How often a dispatch recurs (the API's `RecurrenceRule.Frequency` numbers)."""

    UNSPECIFIED = 0
    MINUTELY = 1
    HOURLY = 2
    DAILY = 3
    WEEKLY = 4
    MONTHLY = 5
    YEARLY = 6


class Weekday(IntEnum):
    """A day of the week (the API's `RecurrenceRule.Weekday` numbers: Monday is 1)."""

    UNSPECIFIED = 0
    MONDAY = 1
    TUESDAY = 2
    WEDNESDAY = 3
    THURSDAY = 4
    FRIDAY = 5
    SATURDAY = 6
    SUNDAY = 7


@dataclass(frozen=True, slots=True)
class EndCriteria:
    """When a recurrence ends: after `count` occurrences, or at `until`.

    With `until`, the last occurrence starts at or before it. The API makes the two
    exclusive; neither means the recurrence never ends.
    """

    count: int | None = None
    until: datetime | None = None


@dataclass(frozen=True, slots=True)
class Recurrence:
    """An RFC 5545-like recurrence rule; `freq == 0` means the dispatch is one-off.

    `freq` and `byweekdays` hold raw API numbers (see `Frequency`, `Weekday`) so that
    an unknown number survives conversion and is refused by the rules, by number.
    """

    freq: int = Frequency.UNSPECIFIED
    interval: int = 0
    end: EndCriteria | None = None
    byminutes: tuple[int, ...] = ()
    byhours: tuple[int, ...] = ()
    byweekdays: tuple[int, ...] = ()
    bymonthdays: tuple[int, ...] = ()
    bymonths: tuple[int, ...] = ()

    @property
    def is_recurring(self) -> bool:
        """Whether a frequency is set."""
        return self.freq != Frequency.UNSPECIFIED


class TargetKind(Enum):
    """Which of the API's three target forms a dispatch uses (kept for round trips)."""

    IDS = "component_ids"
    CATEGORIES = "component_categories_types"
    LEGACY_CATEGORIES = "component_categories"
    """The deprecated `CategorySet`: categories without types."""


class ComponentType(Enum):
    """Which optional type field a category entry carries."""

    BATTERY = "battery"
    INVERTER = "inverter"
    EV_CHARGER = "ev_charger"


@dataclass(frozen=True, slots=True)
class CategoryTarget:
    """One component category (an API number), optionally narrowed to a type.

    `type_kind` says which type enum `type_value` belongs to (battery, inverter or EV
    charger type); None targets every component of the category.
    """

    category: int
    type_kind: ComponentType | None = None
    type_value: int = 0


@dataclass(frozen=True, slots=True)
class Target:
    """The components a dispatch applies to: a set of ids, or a set of categories."""

    kind: TargetKind
    ids: tuple[int, ...] = ()
    categories: tuple[CategoryTarget, ...] = ()


@dataclass(frozen=True, slots=True)
class DispatchData:
    """What a client says about a dispatch (the API's `DispatchData`).

    `duration_s` None means indefinite; `target` None means the request had none (the
    rules refuse that); `payload` is JSON-like (numbers are floats, as in a protobuf
    `Struct`).
    """

    type: str
    start_time: datetime
    duration_s: int | None
    target: Target | None
    is_active: bool
    is_dry_run: bool
    payload: Mapping[str, Any] = field(default_factory=dict)
    recurrence: Recurrence = field(default_factory=Recurrence)


@dataclass(frozen=True, slots=True)
class Dispatch:
    """A stored dispatch: the client's data plus what the service keeps about it.

    `end_time` is derived from the data (see `rules.end_time`); None means open-ended.
    """

    id: int
    microgrid_id: int
    create_time: datetime
    update_time: datetime
    end_time: datetime | None
    data: DispatchData


class EventKind(Enum):
    """What happened to a dispatch, as the stream reports it."""

    CREATED = "created"
    UPDATED = "updated"
    DELETED = "deleted"


@dataclass(frozen=True, slots=True)
class DispatchEvent:
    """One change to a microgrid's dispatches, for the stream's subscribers."""

    kind: EventKind
    dispatch: Dispatch


@dataclass(frozen=True, slots=True)
class RecurrenceUpdate:
    """The recurrence part of an update request; None/empty where the client sent nothing.

    Which fields are applied is decided by the update mask, not by presence here.
    """

    freq: int | None = None
    interval: int | None = None
    end: EndCriteria | None = None
    byminutes: tuple[int, ...] = ()
    byhours: tuple[int, ...] = ()
    byweekdays: tuple[int, ...] = ()
    bymonthdays: tuple[int, ...] = ()
    bymonths: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class DispatchUpdate:
    """An update request: the mask's `paths` and the values they take them from."""

    paths: tuple[str, ...]
    start_time: datetime | None = None
    duration_s: int | None = None
    target: Target | None = None
    is_active: bool | None = None
    payload: Mapping[str, Any] | None = None
    recurrence: RecurrenceUpdate = field(default_factory=RecurrenceUpdate)


__all__ = [
    "CategoryTarget",
    "ComponentType",
    "Dispatch",
    "DispatchData",
    "DispatchEvent",
    "DispatchUpdate",
    "EndCriteria",
    "EventKind",
    "Frequency",
    "Recurrence",
    "RecurrenceUpdate",
    "Target",
    "TargetKind",
    "Weekday",
]
