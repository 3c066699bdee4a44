"""The calendar's answer equals `dateutil`'s, as `frequenz-client-dispatch` builds the rule."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from itertools import islice

from dateutil import rrule
from frequenz.client.dispatch.recurrence import EndCriteria, Frequency, RecurrenceRule, Weekday
from hypothesis import given, reject, settings
from hypothesis import strategies as st

from edge_controller.common.occurrences import (
    Rule,
    first_at_or_after,
    last_at_or_before,
    last_occurrence,
    search_limit,
)
from tests.properties import examples

WINDOW = {
    Frequency.MINUTELY: timedelta(hours=8),
    Frequency.HOURLY: timedelta(days=6),
    Frequency.DAILY: timedelta(days=400),
    Frequency.WEEKLY: timedelta(days=3 * 365),
    Frequency.MONTHLY: timedelta(days=20 * 365),
    Frequency.YEARLY: timedelta(days=100 * 365),
}
"""How far past the start each frequency is compared (what `dateutil` walks quickly)."""
MOST_OCCURRENCES = 1000
DATEUTIL_BUDGET_S = 0.2
"""`dateutil` checks `until` only on a day that passes the rule's filters: on a rule with
none (every 7th day, on another weekday) it walks to the year 9999, which is the very
problem; such examples are left out (the rare rule has its own test below)."""


class _TooSlowError(Exception):
    """`dateutil` went past its budget."""


@contextmanager
def _at_most(seconds: float) -> Iterator[None]:
    def stop(_signal: int, _frame: object) -> None:
        raise _TooSlowError

    previous = signal.signal(signal.SIGALRM, stop)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _small_sets(values: range, most: int) -> st.SearchStrategy[list[int]]:
    return st.lists(st.sampled_from(list(values)), max_size=most, unique=True)


@st.composite
def _cases(draw: st.DrawFn) -> tuple[RecurrenceRule, datetime, datetime]:
    frequency = draw(st.sampled_from(list(WINDOW)))
    start = draw(st.datetimes(datetime(2024, 1, 1), datetime(2030, 12, 31), timezones=st.just(UTC)))
    window = WINDOW[frequency]
    end = draw(
        st.one_of(
            st.none(),
            st.builds(EndCriteria, count=st.integers(1, 60)),
            st.builds(
                EndCriteria,
                until=st.timedeltas(timedelta(0), window).map(lambda offset: start + offset),
            ),
        )
    )
    rule = RecurrenceRule(
        frequency=frequency,
        interval=draw(st.sampled_from([1, 1, 2, 3, 5, 7, 13, 24, 60, 100])),
        end_criteria=end,
        byminutes=draw(_small_sets(range(60), 3)),
        byhours=draw(_small_sets(range(24), 3)),
        byweekdays=[Weekday(d) for d in draw(_small_sets(range(1, 8), 3))],
        bymonthdays=(
            []
            if frequency == Frequency.WEEKLY
            else draw(_small_sets(range(-31, 32), 2).map(lambda days: [d for d in days if d]))
        ),
        bymonths=draw(_small_sets(range(1, 13), 3)),
    )
    now = start + draw(st.timedeltas(-timedelta(days=1), window))
    return rule, start, now


def as_rule(rule: RecurrenceRule) -> Rule:
    """The same rule in `occurrences`' terms."""
    end = rule.end_criteria
    return Rule(
        freq=int(rule.frequency),
        interval=rule.interval,
        byminutes=tuple(rule.byminutes),
        byhours=tuple(rule.byhours),
        byweekdays=tuple(int(d) for d in rule.byweekdays),
        bymonthdays=tuple(rule.bymonthdays),
        bymonths=tuple(rule.bymonths),
        count=None if end is None else end.count,
        until=None if end is None else end.until,
    )


@settings(max_examples=examples(2000), deadline=None)
@given(_cases())
def test_the_occurrences_around_any_moment_are_dateutils(
    case: tuple[RecurrenceRule, datetime, datetime],
) -> None:
    """Random rules and instants: the last occurrence at or before, the first at or after."""
    library_rule, start, now = case
    window_end = start + WINDOW[library_rule.frequency]
    end = library_rule.end_criteria
    # The library's own rule, with its count kept aside (applied below) and the walk
    # stopped at the window's end: dateutil would otherwise walk to year 9999.
    bounded = RecurrenceRule(**{**library_rule.__dict__, "end_criteria": None})
    until = window_end if end is None or end.until is None else min(end.until, window_end)
    rule = as_rule(library_rule)
    try:
        with _at_most(DATEUTIL_BUDGET_S):
            walked = list(islice(bounded._as_rrule(start).replace(until=until), MOST_OCCURRENCES))
    except _TooSlowError:
        reject()
    except ValueError:  # dateutil refuses the rule as empty: no occurrence here
        assert first_at_or_after(rule, start, start, window_end) is None
        return
    if end is not None and end.count is not None:
        walked = walked[: end.count]
    if len(walked) == MOST_OCCURRENCES:  # compare where dateutil was followed
        window_end = walked[-1]
        now = min(now, window_end)
    before = [t for t in walked if t <= now]
    after = [t for t in walked if t >= now]
    since = start - timedelta(days=1)
    assert last_at_or_before(rule, start, now, since) == (before[-1] if before else None)
    assert first_at_or_after(rule, start, now, window_end) == (after[0] if after else None)
    if end is not None and end.count is not None and len(walked) == end.count:
        assert last_occurrence(rule, start, search_limit(rule, start)) == walked[-1]


def test_a_year_old_minutely_rule_answers_from_the_calendar() -> None:
    """The library's walk takes seconds here; the calendar a few days of search."""
    start = datetime(2025, 1, 1, 0, 0, 30, tzinfo=UTC)
    now = datetime(2026, 1, 1, 12, 3, 40, tzinfo=UTC)
    rule = Rule(freq=1, interval=7)
    began = time.perf_counter()
    last = last_at_or_before(rule, start, now, now - timedelta(minutes=5))
    assert time.perf_counter() - began < 0.5
    assert last is not None
    assert (last - start) % timedelta(minutes=7) == timedelta(0)
    assert now - timedelta(minutes=7) < last <= now


def test_the_rare_rule_that_kept_dateutil_busy_for_minutes_is_searched_in_bounds() -> None:
    """MINUTELY every 7, 23:59 on a Sunday the 29th of February: found or not, at once."""
    rule = Rule(
        freq=1,
        interval=7,
        byminutes=(59,),
        byhours=(23,),
        byweekdays=(7,),
        bymonthdays=(29,),
        bymonths=(2,),
    )
    start = datetime(2026, 12, 1, tzinfo=UTC)
    first = first_at_or_after(rule, start, start, search_limit(rule, start))
    if first is not None:
        assert (first.month, first.day, first.weekday(), first.hour, first.minute) == (
            2,
            29,
            6,
            23,
            59,
        )
        assert (first - start) % timedelta(minutes=7) == timedelta(0)
    # Cross-check against dateutil where it is quick: one leap Sunday, counted in minutes.
    sunday = datetime(2032, 2, 29, 23, 59, tzinfo=UTC)
    aligned = sunday - timedelta(minutes=7 * 100)
    expected = rrule.rrule(rrule.MINUTELY, dtstart=aligned, interval=7, count=200)
    assert sunday in list(expected)
    assert first_at_or_after(rule, aligned, aligned, search_limit(rule, aligned)) == sunday
