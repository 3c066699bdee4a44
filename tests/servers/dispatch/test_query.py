"""The pure list logic: filters, sort orders, pages and tokens."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

import pytest

from edge_controller.servers.dispatch.errors import DispatchError
from edge_controller.servers.dispatch.model import (
    CategoryTarget,
    ComponentType,
    Dispatch,
    Frequency,
    Recurrence,
    Target,
    TargetKind,
)
from edge_controller.servers.dispatch.query import (
    DispatchFilter,
    PageRequest,
    Sort,
    SortField,
    TimeInterval,
    decode_token,
    list_page,
)
from tests.servers.dispatch.conftest import NOON, data

HOUR = timedelta(hours=1)
MINUTE = timedelta(minutes=1)
LI_ION_BATTERY = CategoryTarget(5, ComponentType.BATTERY, 1)
NA_ION_BATTERY = CategoryTarget(5, ComponentType.BATTERY, 2)
BATTERY, INVERTER = 5, 3


def dispatch(
    dispatch_id: int, *, end: datetime | None = NOON + 2 * HOUR, **fields: object
) -> Dispatch:
    """Dispatch `dispatch_id`, created `dispatch_id` minutes after noon."""
    created = NOON + timedelta(minutes=dispatch_id)
    return Dispatch(
        id=dispatch_id,
        microgrid_id=1,
        create_time=created,
        update_time=created,
        end_time=end,
        data=data(**fields),  # type: ignore[arg-type]
    )


def ids(items: object) -> list[int]:
    return [d.id for d in items]  # type: ignore[attr-defined]


def select(dispatches: list[Dispatch], query: DispatchFilter) -> list[int]:
    return sorted(ids(list_page(dispatches, query, Sort(), PageRequest(size=1000)).items))


def categories(*entries: CategoryTarget) -> Target:
    return Target(TargetKind.CATEGORIES, categories=entries)


DISPATCHES = [
    dispatch(1, type="DISCHARGE", target=Target(TargetKind.IDS, ids=(7, 8))),
    dispatch(2, type="charge-batteries", target=categories(CategoryTarget(BATTERY))),
    dispatch(
        3,
        type="FooBar",
        target=categories(LI_ION_BATTERY),
        is_active=False,
    ),
    dispatch(4, type="#special", target=categories(CategoryTarget(INVERTER)), is_dry_run=True),
    dispatch(
        5,
        type="peak",
        end=None,
        recurrence=Recurrence(freq=Frequency.DAILY, interval=1),
        target=Target(TargetKind.LEGACY_CATEGORIES, categories=(CategoryTarget(BATTERY),)),
    ),
    dispatch(6, type="late", start=NOON + 5 * HOUR, end=NOON + 6 * HOUR, duration_s=None),
]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (DispatchFilter(), [1, 2, 3, 4, 5, 6]),
        (DispatchFilter(targets=(Target(TargetKind.IDS, ids=(8, 99)),)), [1, 6]),
        (DispatchFilter(targets=(Target(TargetKind.IDS, ids=(99,)),)), []),
        (DispatchFilter(targets=(categories(CategoryTarget(BATTERY)),)), [2, 3, 5]),
        (DispatchFilter(targets=(categories(LI_ION_BATTERY),)), [3]),
        (DispatchFilter(targets=(categories(NA_ION_BATTERY),)), []),
        (
            DispatchFilter(
                targets=(categories(CategoryTarget(INVERTER)), Target(TargetKind.IDS, ids=(7,)))
            ),
            [1, 4, 6],
        ),
        (DispatchFilter(is_active=False), [3]),
        (DispatchFilter(is_active=True, is_dry_run=True), [4]),
        (DispatchFilter(is_recurring=True), [5]),
        (DispatchFilter(is_recurring=False), [1, 2, 3, 4, 6]),
        (DispatchFilter(start_time=TimeInterval(start=NOON + 2 * HOUR)), [6]),
        (DispatchFilter(start_time=TimeInterval(end=NOON + HOUR)), []),  # end is exclusive
        (DispatchFilter(start_time=TimeInterval(NOON + HOUR, NOON + 2 * HOUR)), [1, 2, 3, 4, 5]),
        (DispatchFilter(end_time=TimeInterval(start=NOON + 3 * HOUR)), [5, 6]),  # open-ended 5
        (DispatchFilter(end_time=TimeInterval(end=NOON + 3 * HOUR)), [1, 2, 3, 4]),
        (DispatchFilter(update_time=TimeInterval(NOON + 2 * MINUTE, NOON + 4 * MINUTE)), [2, 3]),
        (DispatchFilter(dispatch_ids=frozenset({2, 4, 77})), [2, 4]),
        (DispatchFilter(queries=("bar",)), [3]),
        (DispatchFilter(queries=("CHARGE",)), [1, 2]),  # substring, any case
        (DispatchFilter(queries=("#4", "#6")), [4, 6]),
        (DispatchFilter(queries=("#spec",)), [4]),  # not a number: part of the type
        (DispatchFilter(queries=("#5", "late")), [5, 6]),
        (DispatchFilter(is_active=True, queries=("bar", "peak")), [5]),
    ],
)
def test_filters(query: DispatchFilter, expected: list[int]) -> None:
    assert select(DISPATCHES, query) == expected


def test_a_filter_interval_that_ends_before_it_starts_is_refused() -> None:
    with pytest.raises(
        DispatchError, match=r"^filter.end_time_interval: start_time .* is after end_time"
    ):
        select(DISPATCHES, DispatchFilter(end_time=TimeInterval(NOON + HOUR, NOON)))


@pytest.mark.parametrize(
    ("sort", "expected"),
    [
        (Sort(), [6, 5, 4, 3, 2, 1]),  # the API's default: newest created first
        (Sort(SortField.CREATE_TIME, descending=False), [1, 2, 3, 4, 5, 6]),
        (Sort(SortField.START_TIME, descending=False), [1, 2, 3, 4, 5, 6]),  # ties: by id
        (Sort(SortField.START_TIME, descending=True), [6, 5, 4, 3, 2, 1]),
    ],
)
def test_sort_orders(sort: Sort, expected: list[int]) -> None:
    assert ids(list_page(DISPATCHES, DispatchFilter(), sort, PageRequest()).items) == expected


def test_sort_by_update_time() -> None:
    touched = [replace(d, update_time=NOON + timedelta(hours=10 - d.id)) for d in DISPATCHES]
    page = list_page(touched, DispatchFilter(), Sort(SortField.UPDATE_TIME, False), PageRequest())
    assert ids(page.items) == [6, 5, 4, 3, 2, 1]


def all_pages(dispatches: list[Dispatch], size: int, sort: Sort) -> list[list[int]]:
    pages = []
    page = list_page(dispatches, DispatchFilter(), sort, PageRequest(size=size))
    pages.append(ids(page.items))
    while page.next_token:
        assert page.total == len(dispatches)
        page = list_page(dispatches, DispatchFilter(), Sort(), PageRequest(token=page.next_token))
        pages.append(ids(page.items))
    return pages


def test_pages_cover_every_item_once_in_order() -> None:
    assert all_pages(DISPATCHES, 4, Sort()) == [[6, 5, 4, 3], [2, 1]]
    assert all_pages(DISPATCHES, 2, Sort(SortField.START_TIME, False)) == [[1, 2], [3, 4], [5, 6]]
    assert all_pages(DISPATCHES, 6, Sort()) == [[6, 5, 4, 3, 2, 1]]


def test_a_token_stays_valid_when_items_come_and_go() -> None:
    first = list_page(DISPATCHES, DispatchFilter(), Sort(), PageRequest(size=2))
    assert ids(first.items) == [6, 5]
    assert first.next_token is not None
    changed = [d for d in DISPATCHES if d.id != 4] + [dispatch(9)]
    second = list_page(changed, DispatchFilter(), Sort(), PageRequest(token=first.next_token))
    assert ids(second.items) == [3, 2]  # 9 is newer than the cursor, 4 is gone


def test_page_size_defaults_and_caps() -> None:
    many = [dispatch(i) for i in range(1, 1202)]
    assert len(list_page(many, DispatchFilter(), Sort(), PageRequest()).items) == 100
    assert len(list_page(many, DispatchFilter(), Sort(), PageRequest(size=0)).items) == 100
    capped = list_page(many, DispatchFilter(), Sort(), PageRequest(size=5000))
    assert len(capped.items) == 1000
    assert capped.total == 1201
    assert capped.next_token is not None
    assert decode_token(capped.next_token).size == 1000


@pytest.mark.parametrize(
    "token",
    [
        "garbage",
        "e30",
        "eyJ2IjoxfQ",
        "%%%",
        "eyJ2IjoxLCJuIjowLCJmIjoiY3JlYXRlX3RpbWUiLCJkIjp0cnVlLCJrIjpbMCwwXX0",
    ],
)
def test_foreign_tokens_are_refused(token: str) -> None:
    with pytest.raises(DispatchError, match=r"^pagination_params.page_token: not a page token"):
        list_page(DISPATCHES, DispatchFilter(), Sort(), PageRequest(token=token))
