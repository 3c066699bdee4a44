"""When a recurrence rule occurs, read off the calendar with a bounded search: pure.

`dateutil.rrule` (which `frequenz-client-dispatch` evaluates a dispatch's rule with)
walks occurrence by occurrence from the rule's start: "the latest occurrence before
now" costs time in proportion to the dispatch's age (seconds for a minutely rule a
year old), and a rule whose days are rare (the 29th of February on a Sunday, at a
minute an interval of 7 must also hit) kept it busy for minutes. Here an occurrence is
tested, not generated: a day is in the rule when its month, day of the month, weekday
and period (every n-th year, month, week or day) match; a time of that day when its
hour and minute match and, for hourly and minutely rules, it lies a whole number of
intervals after the start. The search visits candidate days only (whole months and
years that cannot match are skipped) between two given dates, so its cost is bounded
by the span searched, whatever the rule and however old the dispatch.

The semantics are `dateutil`'s, as `frequenz-client-dispatch` builds the rule
(`RecurrenceRule._as_rrule`; checked against it on random rules in
`tests/test_occurrences.py`):

- Defaults taken from the start, as RFC 5545 and `dateutil` do: the second always;
  the minute below minutely rules, the hour below hourly ones; without a day filter
  the weekday (weekly), the day of the month (monthly, yearly) and the month (yearly).
- Periods count from the start's year, month, Monday-based week, day, hour or minute;
  the start's microseconds are dropped; nothing before the start occurs.
- `until` is inclusive; `count` counts occurrences from the start.
- Times are wall-clock times of the start's time zone (UTC in this project).

Two deliberate differences: a rule `dateutil` refuses as empty (an hourly interval
that never reaches the given hours) simply has no occurrence here, and nothing is
found beyond the span the caller searches (see `SEARCH_SPAN`).

Frequencies and weekdays are the API's numbers (`RecurrenceRule.Frequency` 1 minutely
.. 6 yearly, `Weekday` 1 Monday .. 7 Sunday), shared by `dispatch_service.model` and
`frequenz-client-dispatch`.
"""

from __future__ import annotations

import calendar
from bisect import bisect_left, bisect_right
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, tzinfo
from functools import lru_cache
from typing import Final

MINUTELY: Final = 1
HOURLY: Final = 2
DAILY: Final = 3
WEEKLY: Final = 4
MONTHLY: Final = 5
YEARLY: Final = 6

SEARCH_SPAN: Final[Mapping[int, timedelta]] = {
    MINUTELY: timedelta(days=3653),
    HOURLY: timedelta(days=3653),
    DAILY: timedelta(days=36525),
    WEEKLY: timedelta(days=36525),
}
"""How far a search for an occurrence looks: 10 years for minutely and hourly rules,
100 years for daily and weekly ones; monthly and yearly rules to the end of the
calendar (`datetime.max`), as `dateutil` does (they skip whole months, so that is cheap)."""

_UNITS_PER_DAY: Final = {MINUTELY: 1440, HOURLY: 24}
_LAST_DAY: Final = date.max


@dataclass(frozen=True, slots=True)
class Rule:
    """A recurrence rule in the API's terms (see the module for the numbers)."""

    freq: int
    interval: int
    byminutes: tuple[int, ...] = ()
    byhours: tuple[int, ...] = ()
    byweekdays: tuple[int, ...] = ()
    bymonthdays: tuple[int, ...] = ()
    bymonths: tuple[int, ...] = ()
    count: int | None = None
    until: datetime | None = None


def search_limit(rule: Rule, moment: datetime, *, forward: bool = True) -> datetime:
    """Return the far end of a search for `rule` from `moment` (see `SEARCH_SPAN`)."""
    span = SEARCH_SPAN.get(rule.freq)
    try:
        if span is not None:
            return moment + span if forward else moment - span
    except OverflowError:
        pass
    edge = datetime.max if forward else datetime.min
    return edge.replace(tzinfo=moment.tzinfo)


def first_at_or_after(
    rule: Rule, start: datetime, moment: datetime, not_after: datetime
) -> datetime | None:
    """Return the first occurrence at or after `moment` (`rrule.after(moment, inc=True)`).

    None when there is none up to `not_after` (nor up to `until`, nor within `count`).
    """
    compiled = _compiled(rule, start)
    moment = max(_wall(moment, compiled.tz), compiled.start)
    limit = _wall(not_after, compiled.tz)
    if rule.until is not None:
        limit = min(limit, _wall(rule.until, compiled.tz))
    if rule.count is not None:
        counted = _counted_last(compiled, rule.count)
        if counted is not None:
            limit = min(limit, counted)
    if moment > limit:
        return None
    first = compiled.first_from(moment, limit)
    return None if first is None else first.replace(tzinfo=compiled.tz)


def last_at_or_before(
    rule: Rule, start: datetime, moment: datetime, not_before: datetime
) -> datetime | None:
    """Return the last occurrence at or before `moment` (`rrule.before(moment, inc=True)`).

    Only occurrences at or after `not_before` are searched: a caller asking "is an
    occurrence running now" passes now − duration, so the search is as short as the
    duration whatever the dispatch's age.
    """
    compiled = _compiled(rule, start)
    moment = _wall(moment, compiled.tz)
    if rule.until is not None:
        moment = min(moment, _wall(rule.until, compiled.tz))
    if rule.count is not None:
        counted = _counted_last(compiled, rule.count)
        if counted is not None:
            moment = min(moment, counted)
    low = max(_wall(not_before, compiled.tz), compiled.start)
    if moment < low:
        return None
    last = compiled.last_from(moment, low)
    return None if last is None else last.replace(tzinfo=compiled.tz)


def last_occurrence(rule: Rule, start: datetime, not_after: datetime) -> datetime | None:
    """Return the start of a rule's last occurrence; None if it never ends.

    Also None when that occurrence is not found up to `not_after` (for `count`) or
    within `SEARCH_SPAN` before `until`: the rule is then treated as open-ended.
    """
    if rule.count is not None:
        compiled = _compiled(rule, start)
        counted = _counted_last(compiled, rule.count)
        if counted is None or counted > _wall(not_after, compiled.tz):
            return None
        return counted.replace(tzinfo=compiled.tz)
    if rule.until is not None:
        return last_at_or_before(
            rule, start, rule.until, search_limit(rule, rule.until, forward=False)
        )
    return None


def _wall(moment: datetime, tz: tzinfo | None) -> datetime:
    """`moment` as a naive wall-clock time of the rule's time zone."""
    if tz is not None and moment.tzinfo is not None:
        moment = moment.astimezone(tz)
    return moment.replace(tzinfo=None)


def _seconds(moment: datetime) -> int:
    return moment.hour * 3600 + moment.minute * 60 + moment.second


@dataclass(frozen=True, slots=True)
class _Compiled:
    """A rule with its defaults filled in from the start, ready to test days and times."""

    freq: int
    interval: int
    start: datetime
    tz: tzinfo | None
    months: frozenset[int] | None
    monthdays: tuple[int, ...] | None
    weekdays: frozenset[int] | None
    times: tuple[int, ...]
    """Seconds of the day the rule may occur at, ascending."""
    _by_phase: dict[int, tuple[int, ...]] = field(default_factory=dict, compare=False)
    _phase_counts: Counter[int] = field(default_factory=Counter, compare=False)

    def __post_init__(self) -> None:
        units = _UNITS_PER_DAY.get(self.freq)
        if units is not None:
            for second in self.times:
                self._phase_counts[self._unit(second) % self.interval] += 1

    def _unit(self, second_of_day: int) -> int:
        return second_of_day // 60 if self.freq == MINUTELY else second_of_day // 3600

    def times_on(self, day: date) -> tuple[int, ...]:
        """The times of `day` the rule occurs at (for a day that passed `day_ok`)."""
        units = _UNITS_PER_DAY.get(self.freq)
        if units is None:
            return self.times
        start_unit = self.start.toordinal() * units + self._unit(_seconds(self.start))
        phase = (start_unit - day.toordinal() * units) % self.interval
        found = self._by_phase.get(phase)
        if found is None:
            found = tuple(s for s in self.times if self._unit(s) % self.interval == phase)
            self._by_phase[phase] = found
        return found

    def count_on(self, day: date) -> int:
        """How many times `day` holds, without listing them."""
        units = _UNITS_PER_DAY.get(self.freq)
        if units is None:
            return len(self.times)
        start_unit = self.start.toordinal() * units + self._unit(_seconds(self.start))
        return self._phase_counts[(start_unit - day.toordinal() * units) % self.interval]

    def month_ok(self, year: int, month: int) -> bool:
        if self.months is not None and month not in self.months:
            return False
        if self.freq == MONTHLY:
            elapsed = (year * 12 + month) - (self.start.year * 12 + self.start.month)
            return elapsed % self.interval == 0
        return True

    def year_ok(self, year: int) -> bool:
        return self.freq != YEARLY or (year - self.start.year) % self.interval == 0

    def days_of(self, year: int, month: int) -> list[int]:
        """Candidate days of a month, ascending (before the weekday and period tests)."""
        length = calendar.monthrange(year, month)[1]
        if self.monthdays is None:
            return list(range(1, length + 1))
        days = {d if d > 0 else length + 1 + d for d in self.monthdays if abs(d) <= length}
        return sorted(days)

    def day_ok(self, day: date) -> bool:
        if self.weekdays is not None and day.weekday() not in self.weekdays:
            return False
        if self.freq == DAILY:
            return (day.toordinal() - self.start.toordinal()) % self.interval == 0
        if self.freq == WEEKLY:
            monday = day.toordinal() - day.weekday()
            start_monday = self.start.toordinal() - self.start.weekday()
            return ((monday - start_monday) // 7) % self.interval == 0
        return True

    def days(self, first: date, last: date, *, forward: bool) -> Iterator[date]:
        """Days between `first` and `last` (inclusive) that the rule occurs on."""
        low, high = (first, last) if forward else (last, first)
        year, month = (low.year, low.month) if forward else (high.year, high.month)
        step = 1 if forward else -1
        while (low.year, low.month) <= (year, month) <= (high.year, high.month):
            if not self.year_ok(year):
                # jump to the next (previous) year of the rule's period
                offset = (year - self.start.year) % self.interval
                year += (self.interval - offset) if forward else -offset
                month = 1 if forward else 12
                continue
            if self.month_ok(year, month):
                candidates = self.days_of(year, month)
                for number in candidates if forward else reversed(candidates):
                    day = date(year, month, number)
                    if low <= day <= high and self.day_ok(day):
                        yield day
            month += step
            if month == 13:
                year, month = year + 1, 1
            elif month == 0:
                year, month = year - 1, 12

    def first_from(self, moment: datetime, limit: datetime) -> datetime | None:
        earliest = _seconds(moment) + (1 if moment.microsecond else 0)
        for day in self.days(moment.date(), limit.date(), forward=True):
            times = self.times_on(day)
            index = bisect_left(times, earliest) if day == moment.date() else 0
            if index < len(times):
                found = datetime.combine(day, datetime.min.time()) + timedelta(seconds=times[index])
                return found if found <= limit else None
        return None

    def last_from(self, moment: datetime, low: datetime) -> datetime | None:
        for day in self.days(moment.date(), low.date(), forward=False):
            times = self.times_on(day)
            index = bisect_right(times, _seconds(moment)) if day == moment.date() else len(times)
            if index > 0:
                found = datetime.combine(day, datetime.min.time()) + timedelta(
                    seconds=times[index - 1]
                )
                return found if found >= low else None
        return None


def _compiled(rule: Rule, start: datetime) -> _Compiled:
    if rule.interval < 1:
        raise ValueError("Interval must be greater than 0")
    if not MINUTELY <= rule.freq <= YEARLY:
        raise ValueError("Frequency must be specified")
    return _compile(rule, start.replace(microsecond=0))


@lru_cache(maxsize=1024)
def _compile(rule: Rule, start: datetime) -> _Compiled:
    tz = start.tzinfo
    wall = start.replace(tzinfo=None)
    months: frozenset[int] | None = frozenset(rule.bymonths) if rule.bymonths else None
    monthdays: tuple[int, ...] | None = rule.bymonthdays or None
    weekdays = frozenset(d - 1 for d in rule.byweekdays) if rule.byweekdays else None
    if monthdays is None and weekdays is None:
        if rule.freq == YEARLY:
            months = months or frozenset({wall.month})
            monthdays = (wall.day,)
        elif rule.freq == MONTHLY:
            monthdays = (wall.day,)
        elif rule.freq == WEEKLY:
            weekdays = frozenset({wall.weekday()})
    hours = rule.byhours or ((wall.hour,) if rule.freq > HOURLY else tuple(range(24)))
    minutes = rule.byminutes or ((wall.minute,) if rule.freq > MINUTELY else tuple(range(60)))
    times = tuple(sorted({h * 3600 + m * 60 + wall.second for h in hours for m in minutes}))
    return _Compiled(
        freq=rule.freq,
        interval=rule.interval,
        start=wall,
        tz=tz,
        months=months,
        monthdays=monthdays,
        weekdays=weekdays,
        times=times,
    )


@lru_cache(maxsize=1024)
def _counted_last(compiled: _Compiled, count: int) -> datetime | None:
    """The `count`-th occurrence (wall clock), None if not within `SEARCH_SPAN`.

    Counts day by day without listing times (`count_on`), so it costs the days
    searched, not the occurrences; cached, as a dispatch asks again every second.
    """
    start_day = compiled.start.date()
    limit = search_limit(Rule(compiled.freq, 1), compiled.start)
    left = count
    for day in compiled.days(start_day, limit.date(), forward=True):
        times = compiled.times_on(day) if day == start_day else ()
        if day == start_day:
            times = times[bisect_left(times, _seconds(compiled.start)) :]
        number = len(times) if day == start_day else compiled.count_on(day)
        if number >= left:
            times = times if day == start_day else compiled.times_on(day)
            found = datetime.combine(day, datetime.min.time()) + timedelta(seconds=times[left - 1])
            return found if found <= limit else None
        left -= number
    return None
