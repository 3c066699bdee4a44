"""Listing dispatches: filter, sort and paginate, as pure functions over `model` values.

Filter semantics (`ListMicrogridDispatches`; the lists combine with AND, the items
of one list with OR, an empty list filters nothing):

- `targets`: a dispatch matches a filter target it overlaps. Ids: at least one id in
  common. Categories: at least one category in common, where a filter entry with a
  type matches only entries of that type and one without a type matches every entry
  of its category. Ids never match categories (the service does not know which
  components a category holds). The deprecated `CategorySet` counts as categories
  without types.
- `is_active`, `is_dry_run`: equality when set; `is_recurring`: whether a frequency
  is set (the empty `RecurrenceFilter` filters nothing).
- `start_time_interval`, `end_time_interval`, `update_time_interval`: half-open
  `[start, end)`, either end optional (as `frequenz-client-dispatch` documents:
  `start_from <= start_time < start_to`). An unset end_time is open-ended, later than
  any time: it matches every lower bound and no upper bound — so the first fetch of
  `frequenz-dispatch` (end_time ≥ now − 5 s) includes indefinite and never-ending
  dispatches.
- `dispatch_ids`: the id is one of them.
- `queries`: `#<digits>` matches that id; any other query matches types containing
  it, ignoring case (`bar` matches `bar` and `FooBar`; `#x` matches types containing
  `#x`).

Sorting: by create time (default), start time or update time; descending by default
when no field is given (the API: "by their create time in a descending order"),
ascending when a field is given without an order. Ties are broken by id, in the same
direction.

Pagination: `page_size` 1-1000 (default 100; larger is capped, 0 means default).
The `next_page_token` is an opaque, self-contained cursor (page size, sort, and the
sort key and id of the last item): it stays valid indefinitely, a later page never
repeats an item of an earlier one unless it was updated in between (when sorted by
update time), and the client repeats the filter with it, as `frequenz-client-dispatch`
does. `total_items` counts every item that matches the filter.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import Final

from edge_controller.servers.dispatch.errors import invalid
from edge_controller.servers.dispatch.model import CategoryTarget, Dispatch, Target, TargetKind
from edge_controller.servers.dispatch.rules import iso

DEFAULT_PAGE_SIZE: Final = 100
MAX_PAGE_SIZE: Final = 1000
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_TOKEN_VERSION: Final = 1


@dataclass(frozen=True, slots=True)
class TimeInterval:
    """A half-open interval `[start, end)`; None leaves that side unbounded."""

    start: datetime | None = None
    end: datetime | None = None

    def contains(self, moment: datetime | None) -> bool:
        """Tell whether `moment` lies inside; None stands for "never" (later than all)."""
        if moment is None:
            return self.end is None
        return (self.start is None or moment >= self.start) and (
            self.end is None or moment < self.end
        )


@dataclass(frozen=True, slots=True)
class DispatchFilter:
    """The `DispatchFilter` of a list request (see the module docstring)."""

    targets: tuple[Target, ...] = ()
    is_active: bool | None = None
    is_dry_run: bool | None = None
    is_recurring: bool | None = None
    start_time: TimeInterval | None = None
    end_time: TimeInterval | None = None
    update_time: TimeInterval | None = None
    dispatch_ids: frozenset[int] = frozenset()
    queries: tuple[str, ...] = ()


class SortField(Enum):
    """What a list is ordered by."""

    CREATE_TIME = "create_time"
    START_TIME = "start_time"
    UPDATE_TIME = "update_time"


@dataclass(frozen=True, slots=True)
class Sort:
    """A list order; the default is the API's: newest created first."""

    field: SortField = SortField.CREATE_TIME
    descending: bool = True


@dataclass(frozen=True, slots=True)
class PageRequest:
    """`PaginationParams`: a page size for the first page, or a token for a later one."""

    size: int | None = None
    token: str | None = None


@dataclass(frozen=True, slots=True)
class Page:
    """One page of results, how many match in all, and the token for the next page."""

    items: tuple[Dispatch, ...]
    total: int
    next_token: str | None


def check_filter(query: DispatchFilter) -> None:
    """Refuse intervals whose start is after their end.

    Raises:
        DispatchError: INVALID_ARGUMENT naming the interval.
    """
    for name, interval in (
        ("start_time_interval", query.start_time),
        ("end_time_interval", query.end_time),
        ("update_time_interval", query.update_time),
    ):
        if interval and interval.start and interval.end and interval.start > interval.end:
            raise invalid(
                f"filter.{name}: start_time {iso(interval.start)} is after "
                f"end_time {iso(interval.end)}"
            )


def _category_matches(wanted: CategoryTarget, entry: CategoryTarget) -> bool:
    if wanted.category != entry.category:
        return False
    if wanted.type_kind is None:
        return True
    return wanted.type_kind == entry.type_kind and wanted.type_value == entry.type_value


def target_overlaps(wanted: Target, target: Target | None) -> bool:
    """Tell whether a filter target and a dispatch's target have something in common."""
    if target is None:
        return False
    if (wanted.kind is TargetKind.IDS) != (target.kind is TargetKind.IDS):
        return False
    if wanted.kind is TargetKind.IDS:
        return not set(wanted.ids).isdisjoint(target.ids)
    return any(
        _category_matches(w, entry) for w in wanted.categories for entry in target.categories
    )


def query_matches(query: str, dispatch: Dispatch) -> bool:
    """Apply one free-text query: `#<digits>` is an id, anything else part of the type."""
    if query.startswith("#") and query[1:].isdigit():
        return dispatch.id == int(query[1:])
    return query.casefold() in dispatch.data.type.casefold()


def matches(dispatch: Dispatch, query: DispatchFilter) -> bool:
    """Tell whether a dispatch passes every part of the filter."""
    data = dispatch.data
    return (
        (not query.targets or any(target_overlaps(t, data.target) for t in query.targets))
        and (query.is_active is None or data.is_active == query.is_active)
        and (query.is_dry_run is None or data.is_dry_run == query.is_dry_run)
        and (query.is_recurring is None or data.recurrence.is_recurring == query.is_recurring)
        and (query.start_time is None or query.start_time.contains(data.start_time))
        and (query.end_time is None or query.end_time.contains(dispatch.end_time))
        and (query.update_time is None or query.update_time.contains(dispatch.update_time))
        and (not query.dispatch_ids or dispatch.id in query.dispatch_ids)
        and (not query.queries or any(query_matches(q, dispatch) for q in query.queries))
    )


def _microseconds(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(microseconds=1)


def sort_key(dispatch: Dispatch, field: SortField) -> tuple[int, int]:
    """Return the (time in µs, id) a dispatch is ordered by."""
    moment = {
        SortField.CREATE_TIME: dispatch.create_time,
        SortField.START_TIME: dispatch.data.start_time,
        SortField.UPDATE_TIME: dispatch.update_time,
    }[field]
    return (_microseconds(moment), dispatch.id)


@dataclass(frozen=True, slots=True)
class _Cursor:
    size: int
    sort: Sort
    after: tuple[int, int]


def encode_token(cursor: _Cursor) -> str:
    """Serialise a cursor into an opaque, URL-safe token."""
    body = {
        "v": _TOKEN_VERSION,
        "n": cursor.size,
        "f": cursor.sort.field.value,
        "d": cursor.sort.descending,
        "k": list(cursor.after),
    }
    return (
        base64.urlsafe_b64encode(json.dumps(body, separators=(",", ":")).encode())
        .decode()
        .rstrip("=")
    )


def decode_token(token: str) -> _Cursor:
    """Read back a token made by `encode_token`.

    Raises:
        DispatchError: INVALID_ARGUMENT for anything this server did not issue.
    """
    problem = invalid("pagination_params.page_token: not a page token this server issued")
    try:
        body = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        if not isinstance(body, dict) or body.get("v") != _TOKEN_VERSION:
            raise problem
        size, key = body["n"], body["k"]
        if not (isinstance(size, int) and 1 <= size <= MAX_PAGE_SIZE):
            raise problem
        if not (isinstance(key, list) and len(key) == 2 and all(isinstance(k, int) for k in key)):
            raise problem
        sort = Sort(SortField(body["f"]), bool(body["d"]))
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise problem from None
    return _Cursor(size=size, sort=sort, after=(key[0], key[1]))


def resolve_page(sort: Sort, page: PageRequest) -> tuple[int, Sort, tuple[int, int] | None]:
    """Return the page size, the sort and the key to continue after (None: first page).

    With a token, the token's page size and sort apply; `sort` is for the first page.

    Raises:
        DispatchError: INVALID_ARGUMENT for a page token this server did not issue.
    """
    if page.token:
        cursor = decode_token(page.token)
        return cursor.size, cursor.sort, cursor.after
    return min(page.size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE), sort, None


def page_token(size: int, sort: Sort, last: tuple[int, int]) -> str:
    """Return the token of the page that follows the item whose sort key is `last`."""
    return encode_token(_Cursor(size, sort, last))


def list_page(
    dispatches: Iterable[Dispatch], query: DispatchFilter, sort: Sort, page: PageRequest
) -> Page:
    """Filter, sort and cut one page (see the module docstring for the semantics).

    The reference implementation, over values in memory: the service runs the same
    request as SQL over indexes (`sql_query`, checked against this in the tests).
    With a token, the token's page size and sort apply; `sort` is for the first page.

    Raises:
        DispatchError: INVALID_ARGUMENT for a bad filter interval or page token.
    """
    check_filter(query)
    size, sort, after = resolve_page(sort, page)
    selected = sorted(
        (d for d in dispatches if matches(d, query)),
        key=lambda d: sort_key(d, sort.field),
        reverse=sort.descending,
    )
    remaining = selected
    if after is not None:
        remaining = [
            d
            for d in selected
            if (
                sort_key(d, sort.field) < after
                if sort.descending
                else sort_key(d, sort.field) > after
            )
        ]
    items = tuple(remaining[:size])
    next_token = None
    if len(remaining) > size:
        next_token = page_token(size, sort, sort_key(items[-1], sort.field))
    return Page(items=items, total=len(selected), next_token=next_token)


__all__ = [
    "DEFAULT_PAGE_SIZE",
    "MAX_PAGE_SIZE",
    "DispatchFilter",
    "Page",
    "PageRequest",
    "Sort",
    "SortField",
    "TimeInterval",
    "check_filter",
    "decode_token",
    "encode_token",
    "list_page",
    "matches",
    "page_token",
    "query_matches",
    "resolve_page",
    "sort_key",
    "target_overlaps",
]
