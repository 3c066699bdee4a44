"""Lists in SQL say what the reference (`query.list_page`) says, page for page."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge_controller.servers.dispatch.model import (
    CategoryTarget,
    ComponentType,
    Dispatch,
    EndCriteria,
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
    list_page,
    page_token,
    resolve_page,
)
from edge_controller.servers.dispatch.storage import DispatchStore
from tests.properties import examples
from tests.servers.dispatch.conftest import NOON, data

HOUR = timedelta(hours=1)
times = st.integers(0, 6).map(lambda h: NOON + h * HOUR)
intervals = st.tuples(st.none() | times, st.none() | times).map(
    lambda pair: TimeInterval(*sorted(pair)) if None not in pair else TimeInterval(*pair)  # type: ignore[type-var]
)
categories = st.sampled_from(
    [
        CategoryTarget(5),
        CategoryTarget(5, ComponentType.BATTERY, 1),
        CategoryTarget(5, ComponentType.BATTERY, 2),
        CategoryTarget(3),
        CategoryTarget(3, ComponentType.INVERTER, 1),
    ]
)
targets = st.one_of(
    st.builds(
        lambda ids: Target(TargetKind.IDS, ids=tuple(ids)),
        st.lists(st.integers(1, 6), min_size=1, max_size=3),
    ),
    st.builds(
        lambda c: Target(TargetKind.CATEGORIES, categories=tuple(c)),
        st.lists(categories, min_size=1, max_size=2),
    ),
    st.builds(
        lambda c: Target(TargetKind.LEGACY_CATEGORIES, categories=(CategoryTarget(c),)),
        st.sampled_from([3, 5]),
    ),
)
types = st.sampled_from(["DISCHARGE", "Charge", "peak_shaving", "ÄRGER"])
rows = st.lists(
    st.tuples(
        types,
        times,
        st.sampled_from([None, 600, 7200]),
        targets,
        st.booleans(),
        st.booleans(),
        st.booleans(),
    ),
    max_size=12,
)
filters = st.builds(
    DispatchFilter,
    targets=st.lists(targets, max_size=2).map(tuple),
    is_active=st.none() | st.booleans(),
    is_dry_run=st.none() | st.booleans(),
    is_recurring=st.none() | st.booleans(),
    start_time=st.none() | intervals,
    end_time=st.none() | intervals,
    update_time=st.none() | intervals,
    dispatch_ids=st.frozensets(st.integers(1, 14), max_size=3),
    queries=st.lists(st.sampled_from(["charge", "ärger", "#2", "#x", "", "PEAK"]), max_size=2).map(
        tuple
    ),
)
sorts = st.builds(Sort, st.sampled_from(list(SortField)), st.booleans())


@settings(
    max_examples=examples(500),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(rows=rows, query=filters, sort=sorts, size=st.integers(1, 4))
def test_sql_pages_are_the_reference_pages(
    tmp_path: Path,
    rows: list[tuple[str, object, int | None, Target, bool, bool, bool]],
    query: DispatchFilter,
    sort: Sort,
    size: int,
) -> None:
    path = tmp_path / "sql.sqlite"
    path.unlink(missing_ok=True)
    store = DispatchStore(path)
    try:
        stored: list[Dispatch] = []
        for index, (type_, start, duration, target, active, dry, recurring) in enumerate(rows):
            rule = (
                Recurrence(Frequency.DAILY, 1, EndCriteria(count=2)) if recurring else Recurrence()
            )
            item = data(
                type=type_,
                start=start,  # type: ignore[arg-type]
                duration_s=duration,
                target=target,
                is_active=active,
                is_dry_run=dry,
                recurrence=rule,
            )
            end = None if duration is None else item.start_time + timedelta(seconds=duration)
            created = store.insert(1, item, create_time=NOON + (index % 3) * HOUR, end_time=end)
            stored.append(created)
        store.insert(2, data(), create_time=NOON, end_time=None)  # another microgrid
        request = PageRequest(size=size)
        while True:
            expected = list_page(stored, query, sort, request)
            page_size, page_sort, after = resolve_page(sort, request)
            keys, total = store.list_page(1, query, page_sort, page_size, after)
            assert total == expected.total
            assert [i for _, i in keys[:page_size]] == [d.id for d in expected.items]
            token = (
                page_token(page_size, page_sort, keys[page_size - 1])
                if len(keys) > page_size
                else None
            )
            assert token == expected.next_token
            if token is None:
                break
            request = PageRequest(token=token)
    finally:
        store.close()
