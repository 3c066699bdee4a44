"""A list request as SQL: pure functions from `query` values to SQL text and parameters.

`query` states what a list means (and keeps a pure reference implementation,
`query.list_page`); this module says the same to SQLite, so that the store filters,
sorts and cuts a page with its indexes instead of the service scanning every
dispatch in Python (issue 16: 2 000 queries over 10 100 dispatches held the event
loop 20.8 s; a page cost 265 ms).

```
dispatches d ── WHERE microgrid, flags, time intervals         (columns, indexed)
             ── AND d.id IN (SELECT … FROM target_ids …)        (component ids)
             ── AND d.id IN (SELECT … FROM target_categories …) (categories)
             ── AND (keyset: (sort column, id) after the token's key)
             ── ORDER BY sort column, id  LIMIT size + 1       (the +1 says "more")
```

Lists of values travel as one JSON parameter (`json_each`), so the number of SQL
variables does not grow with a request; the request sizes are capped before
conversion anyway (`convert.check_list_sizes`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

from edge_controller.servers.dispatch.model import TargetKind
from edge_controller.servers.dispatch.query import DispatchFilter, Sort, SortField, TimeInterval

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
SORT_COLUMNS: Final = {
    SortField.CREATE_TIME: "create_time_us",
    SortField.START_TIME: "start_time_us",
    SortField.UPDATE_TIME: "update_time_us",
}
"""The column each sort field orders by (each indexed with the microgrid id)."""


@dataclass(frozen=True, slots=True)
class Sql:
    """A piece of SQL and the parameters of its `?`s, in order."""

    text: str
    params: tuple[object, ...] = ()


def _us(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(microseconds=1)


def _interval(column: str, interval: TimeInterval, *, null_is_never: bool) -> list[Sql]:
    parts = []
    if interval.start is not None:
        lower = f"d.{column} >= ?"
        if null_is_never:  # "never" is later than every lower bound
            lower = f"(d.{column} IS NULL OR {lower})"
        parts.append(Sql(lower, (_us(interval.start),)))
    if interval.end is not None:  # NULL < x is not true: "never" passes no upper bound
        parts.append(Sql(f"d.{column} < ?", (_us(interval.end),)))
    return parts


def _targets(query: DispatchFilter) -> list[Sql]:
    if not query.targets:
        return []
    ids = sorted({i for t in query.targets if t.kind is TargetKind.IDS for i in t.ids})
    categories = [c for t in query.targets if t.kind is not TargetKind.IDS for c in t.categories]
    alternatives = []
    if ids:
        alternatives.append(
            Sql(
                "d.id IN (SELECT dispatch_id FROM target_ids "
                "WHERE component_id IN (SELECT value FROM json_each(?)))",
                (json.dumps(ids),),
            )
        )
    if categories:
        wanted = [
            [c.category, "" if c.type_kind is None else c.type_kind.value, c.type_value]
            for c in categories
        ]
        alternatives.append(
            Sql(
                "d.id IN (SELECT c.dispatch_id FROM json_each(?) AS w "
                "JOIN target_categories AS c ON c.category = w.value ->> 0 "
                "AND (w.value ->> 1 = '' OR "
                "(c.type_kind = w.value ->> 1 AND c.type_value = w.value ->> 2)))",
                (json.dumps(wanted),),
            )
        )
    return [_any(alternatives)]


def _any(alternatives: list[Sql]) -> Sql:
    return Sql(
        "(" + " OR ".join(a.text for a in alternatives) + ")",
        tuple(p for a in alternatives for p in a.params),
    )


def _queries(queries: tuple[str, ...]) -> list[Sql]:
    if not queries:
        return []
    ids = [int(q[1:]) for q in queries if q.startswith("#") and q[1:].isdigit()]
    texts = [q.casefold() for q in queries if not (q.startswith("#") and q[1:].isdigit())]
    alternatives = []
    if ids:
        alternatives.append(Sql("d.id IN (SELECT value FROM json_each(?))", (json.dumps(ids),)))
    if texts:
        alternatives.append(
            Sql(
                "EXISTS (SELECT 1 FROM json_each(?) AS q WHERE instr(d.type_folded, q.value) > 0)",
                (json.dumps(texts),),
            )
        )
    return [_any(alternatives)]


def where(microgrid_id: int, query: DispatchFilter) -> Sql:
    """Return the WHERE condition (without the keyword) selecting what `query` matches."""
    parts = [Sql("d.microgrid_id = ?", (microgrid_id,))]
    for column, value in (
        ("is_active", query.is_active),
        ("is_dry_run", query.is_dry_run),
        ("is_recurring", query.is_recurring),
    ):
        if value is not None:
            parts.append(Sql(f"d.{column} = ?", (int(value),)))
    if query.start_time is not None:
        parts += _interval("start_time_us", query.start_time, null_is_never=False)
    if query.end_time is not None:
        parts += _interval("end_time_us", query.end_time, null_is_never=True)
    if query.update_time is not None:
        parts += _interval("update_time_us", query.update_time, null_is_never=False)
    if query.dispatch_ids:
        parts.append(
            Sql(
                "d.id IN (SELECT value FROM json_each(?))",
                (json.dumps(sorted(query.dispatch_ids)),),
            )
        )
    parts += _targets(query)
    parts += _queries(query.queries)
    return Sql(" AND ".join(p.text for p in parts), tuple(v for p in parts for v in p.params))


def page(
    microgrid_id: int,
    query: DispatchFilter,
    sort: Sort,
    size: int,
    after: tuple[int, int] | None,
) -> tuple[Sql, Sql]:
    """Return the statements for one page (ids and sort keys) and for the total count.

    The page statement selects `id, <sort column>` of up to `size + 1` rows, so that
    one row more than the page says whether a next page exists.
    """
    condition = where(microgrid_id, query)
    column = SORT_COLUMNS[sort.field]
    direction = "DESC" if sort.descending else "ASC"
    text = f"SELECT d.id, d.{column} FROM dispatches AS d WHERE {condition.text}"
    params = condition.params
    if after is not None:
        text += f" AND (d.{column}, d.id) {'<' if sort.descending else '>'} (?, ?)"
        params += after
    text += f" ORDER BY d.{column} {direction}, d.id {direction} LIMIT ?"
    params += (size + 1,)
    count = Sql(f"SELECT COUNT(*) FROM dispatches AS d WHERE {condition.text}", condition.params)
    return Sql(text, params), count


__all__ = ["SORT_COLUMNS", "Sql", "page", "where"]
