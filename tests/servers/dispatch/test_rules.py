"""The pure rules: validation, end times, update masks, update times."""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Literal

import pytest
from dateutil import rrule
from frequenz.api.common.v1alpha8.microgrid.electrical_components import (
    electrical_components_pb2 as ec,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_controller.servers.dispatch import rules
from edge_controller.servers.dispatch.errors import DispatchError, ErrorKind
from edge_controller.servers.dispatch.model import (
    CategoryTarget,
    ComponentType,
    DispatchData,
    DispatchUpdate,
    EndCriteria,
    Frequency,
    Recurrence,
    RecurrenceUpdate,
    Target,
    TargetKind,
    Weekday,
)
from tests.properties import examples
from tests.servers.dispatch.conftest import NOON, data

START = NOON + timedelta(hours=1)  # a Sunday, 13:00 UTC
MINUTE = timedelta(minutes=1)


def refused(message: str) -> pytest.RaisesExc[DispatchError]:
    return pytest.raises(DispatchError, match=message)


def daily(**changes: object) -> Recurrence:
    return replace(Recurrence(freq=Frequency.DAILY, interval=1), **changes)  # type: ignore[arg-type]


# --- start times and update times -------------------------------------------------


@pytest.mark.parametrize(
    ("given_time", "expected"),
    [
        (NOON.replace(microsecond=400_000), NOON),
        (NOON.replace(microsecond=600_000), NOON + timedelta(seconds=1)),
        (NOON.replace(second=59, microsecond=700_000), NOON + MINUTE),
    ],
)
def test_start_time_is_rounded_to_the_second_like_the_client(
    given_time: datetime, expected: datetime
) -> None:
    assert rules.round_start_time(given_time) == expected


def test_update_time_strictly_increases_even_within_one_microsecond() -> None:
    previous = NOON
    assert rules.next_update_time(previous, NOON + MINUTE) == NOON + MINUTE
    assert rules.next_update_time(previous, NOON) == NOON + timedelta(microseconds=1)
    assert rules.next_update_time(previous, NOON - MINUTE) == NOON + timedelta(microseconds=1)


def test_start_immediately_starts_at_now_truncated_to_the_second() -> None:
    now = NOON.replace(microsecond=900_000)
    prepared = rules.prepare_new(
        data(start=NOON - timedelta(days=9)), start_immediately=True, now=now
    )
    assert prepared.start_time == NOON


def test_a_start_in_the_past_is_refused_beyond_a_grace_of_60_s() -> None:
    assert rules.prepare_new(
        data(start=NOON - timedelta(seconds=59)), start_immediately=False, now=NOON
    )
    with refused(r"start_time: 2026-06-21T11:58:59Z is in the past \(now 2026-06-21T12:00:00Z"):
        rules.prepare_new(
            data(start=NOON - timedelta(seconds=61)), start_immediately=False, now=NOON
        )


# --- validation, one problem per row ---------------------------------------------

BAD_DATA = [
    (data(type=""), r"^type: expected a non-empty string, got ''$"),
    (data(type="  "), r"^type: expected a non-empty string"),
    (data(duration_s=-5), r"^duration: expected seconds >= 0 \(or unset: indefinite\), got -5$"),
    (replace(data(), target=None), r"^target: required"),
    (data(target=Target(TargetKind.IDS)), r"^target.component_ids.ids: expected at least one"),
    (
        data(target=Target(TargetKind.CATEGORIES)),
        r"^target.component_categories_types.categories: expected at least one category",
    ),
    (
        data(target=Target(TargetKind.CATEGORIES, categories=(CategoryTarget(0),))),
        r"categories\[0\].category: expected a component category, got 0",
    ),
    (
        data(
            target=Target(
                TargetKind.CATEGORIES,
                categories=(CategoryTarget(5), CategoryTarget(3, ComponentType.BATTERY, 1)),
            )
        ),
        r"categories\[1\].battery: a battery type needs category 5, got category 3",
    ),
    (data(payload={"x": "a" * 52000}), r"^payload: 5200\d bytes as JSON, at most 51200 allowed"),
    (
        data(payload={"a": {"b": {"c": {"d": {"e": {}}}}}}),
        r"^payload: nested 6 levels deep, at most 5",
    ),
    (data(payload={"x": [[[[[1.0]]]]]}), r"^payload: nested 6 levels deep"),
    (data(payload={"x": float("nan")}), r"^payload: numbers must be finite"),
    (data(recurrence=Recurrence(freq=9, interval=1)), r"^recurrence.freq: unknown frequency 9$"),
    (
        data(recurrence=Recurrence(interval=2)),
        r"^recurrence.interval: set, but recurrence.freq is unspec",
    ),
    (data(recurrence=Recurrence(byhours=(3,))), r"^recurrence.byhours: set, but recurrence.freq"),
    (
        data(recurrence=daily(interval=0)),
        r"^recurrence.interval: expected 1-10000 with freq DAILY, got 0$",
    ),
    (data(recurrence=daily(interval=10_001)), r"^recurrence.interval: expected 1-10000"),
    (
        data(recurrence=daily(byminutes=(0, 60))),
        r"^recurrence.byminutes\[1\]: expected 0-59, got 60$",
    ),
    (data(recurrence=daily(byhours=(24,))), r"^recurrence.byhours\[0\]: expected 0-23, got 24$"),
    (data(recurrence=daily(byweekdays=(0,))), r"^recurrence.byweekdays\[0\]: expected 1-7, got 0$"),
    (
        data(recurrence=daily(bymonthdays=(0,))),
        r"^recurrence.bymonthdays\[0\]: expected ±1-31, got 0$",
    ),
    (data(recurrence=daily(bymonthdays=(-32,))), r"^recurrence.bymonthdays\[0\]: expected ±1-31"),
    (data(recurrence=daily(bymonths=(13,))), r"^recurrence.bymonths\[0\]: expected 1-12, got 13$"),
    (
        data(recurrence=daily(end=EndCriteria(count=3, until=START + timedelta(days=9)))),
        r"^recurrence.end_criteria: count and until_time are exclusive, got both$",
    ),
    (
        data(recurrence=daily(end=EndCriteria(count=0))),
        r"end_criteria.count: expected 1-4096, got 0",
    ),
    (data(recurrence=daily(end=EndCriteria(count=4097))), r"end_criteria.count: expected 1-4096"),
    (
        data(recurrence=daily(end=EndCriteria(until=START - MINUTE))),
        r"until_time: 2026-06-21T12:59:00Z is before start_time 2026-06-21T13:00:00Z",
    ),
    (
        data(recurrence=replace(daily(freq=Frequency.WEEKLY), bymonthdays=(1,))),
        r"^recurrence.bymonthdays: not allowed with freq WEEKLY",
    ),
    (
        data(recurrence=daily(bymonthdays=(30, 31), bymonths=(2,))),
        r"^recurrence.bymonthdays: none of \[30, 31\] exists in months \[2\]$",
    ),
    (  # dateutil: an hourly interval of 2 from 13:00 never reaches 14:00
        data(recurrence=replace(daily(freq=Frequency.HOURLY, interval=2), byhours=(14,))),
        r"^recurrence: Invalid rrule byxxx generates an empty set",
    ),
    (  # every 7 days from a Sunday never falls on a Monday
        data(recurrence=daily(interval=7, byweekdays=(Weekday.MONDAY,))),
        r"^recurrence: no occurrence between start_time .* \(the search horizon\)$",
    ),
    (
        data(recurrence=daily(byhours=(3,), end=EndCriteria(until=START + timedelta(hours=5)))),
        r"^recurrence: no occurrence between start_time .* and end_criteria.until_time",
    ),
    (data(start=datetime(9001, 1, 1, tzinfo=UTC)), r"^start_time: expected a time before 9000"),
]


@pytest.mark.parametrize(("bad", "message"), BAD_DATA)
def test_invalid_data_is_refused_with_a_precise_message(bad: DispatchData, message: str) -> None:
    with refused(message) as caught:
        rules.validate(bad)
    assert caught.value.kind is ErrorKind.INVALID_ARGUMENT


def test_the_limits_themselves_are_accepted() -> None:
    at_limit = {"x": "a" * (rules.MAX_PAYLOAD_BYTES - len('{"x":""}'))}
    rules.validate(data(payload=at_limit))
    rules.validate(data(payload={"a": {"b": {"c": {"d": {"e": 1.0}}}}}))
    rules.validate(data(duration_s=0))
    rules.validate(data(duration_s=None))
    rules.validate(data(recurrence=daily(end=EndCriteria(count=4096), bymonthdays=(-31, 31))))
    rules.validate(data(recurrence=daily(interval=10_000, byminutes=(0, 59), byhours=(0, 23))))


def test_the_type_numbers_match_the_api_categories() -> None:
    assert rules.CATEGORY_OF_TYPE == {
        ComponentType.BATTERY: ec.ELECTRICAL_COMPONENT_CATEGORY_BATTERY,
        ComponentType.INVERTER: ec.ELECTRICAL_COMPONENT_CATEGORY_INVERTER,
        ComponentType.EV_CHARGER: ec.ELECTRICAL_COMPONENT_CATEGORY_EV_CHARGER,
    }


def test_microgrids_not_served_are_not_found() -> None:
    rules.check_microgrid(5, None)
    rules.check_microgrid(5, frozenset({5}))
    with refused(r"^microgrid 6 is not served here \(serving: 1, 5\)$") as caught:
        rules.check_microgrid(6, frozenset({5, 1}))
    assert caught.value.kind is ErrorKind.NOT_FOUND
    with refused(r"^microgrid_id: expected an id 1-"):
        rules.check_microgrid(0, None)


# --- end times --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dispatch", "expected"),
    [
        (data(duration_s=900), START + timedelta(seconds=900)),
        (data(duration_s=0), START),
        (data(duration_s=None), None),
        (data(recurrence=daily()), None),  # never ends
        (data(duration_s=None, recurrence=daily(end=EndCriteria(count=3))), None),
        (data(recurrence=daily(end=EndCriteria(count=3))), START + timedelta(days=2, seconds=900)),
        (  # until is inclusive: the occurrence at until counts
            data(recurrence=daily(end=EndCriteria(until=START + timedelta(days=4)))),
            START + timedelta(days=4, seconds=900),
        ),
        (  # 13:00 and 18:30 every second day, three times: Sunday, Sunday, Tuesday
            data(
                recurrence=daily(
                    interval=2, byhours=(13, 18), byminutes=(30,), end=EndCriteria(count=3)
                )
            ),
            START + timedelta(days=2, minutes=30, seconds=900),
        ),
        (
            data(
                recurrence=Recurrence(
                    freq=Frequency.MONTHLY, interval=1, bymonthdays=(-1,), end=EndCriteria(count=2)
                )
            ),
            datetime(2026, 7, 31, 13, 15, tzinfo=UTC),
        ),
        (  # Feb 29 yearly, 20 times (2028 … 2096, 2104, 2108: 2100 is no leap year)
            data(
                recurrence=Recurrence(
                    freq=Frequency.YEARLY,
                    interval=1,
                    bymonths=(2,),
                    bymonthdays=(29,),
                    end=EndCriteria(count=20),
                )
            ),
            datetime(2108, 2, 29, 13, 15, tzinfo=UTC),
        ),
    ],
)
def test_end_time(dispatch: DispatchData, expected: datetime | None) -> None:
    rules.validate(dispatch)
    assert rules.end_time(dispatch) == expected


def test_a_minutely_rule_until_decades_away_ends_exactly_and_quickly() -> None:
    until = datetime(2076, 1, 1, 0, 0, 30, tzinfo=UTC)
    rule = Recurrence(freq=Frequency.MINUTELY, interval=7, end=EndCriteria(until=until))
    began = time.perf_counter()
    last = rules.last_occurrence(rule, START)
    assert time.perf_counter() - began < 1.0
    assert last is not None
    assert last <= until < last + timedelta(minutes=7)
    assert (last - START) % timedelta(minutes=7) == timedelta(0)


def test_a_rare_minutely_rule_is_searched_within_bounds() -> None:
    """Feb 29 at 03:00 only: the first occurrence is found, the count is not reached."""
    rule = Recurrence(
        freq=Frequency.MINUTELY,
        interval=1,
        byminutes=(0,),
        byhours=(3,),
        bymonths=(2,),
        bymonthdays=(29,),
        end=EndCriteria(count=4096),
    )
    began = time.perf_counter()
    rules.validate(data(recurrence=rule))
    assert rules.last_occurrence(rule, START) is None  # beyond the 10-year horizon
    assert time.perf_counter() - began < 5.0


RULES = st.builds(
    Recurrence,
    freq=st.sampled_from([Frequency.MINUTELY, Frequency.HOURLY, Frequency.DAILY, Frequency.WEEKLY]),
    interval=st.integers(1, 5),
    byminutes=st.lists(st.integers(0, 59), max_size=3).map(tuple),
    byhours=st.lists(st.integers(0, 23), max_size=3).map(tuple),
    byweekdays=st.lists(st.integers(1, 7), max_size=2).map(tuple),
    bymonthdays=st.lists(st.integers(1, 28), max_size=2).map(tuple),
    bymonths=st.lists(st.integers(1, 12), max_size=3).map(tuple),
)


WALK_FREQ: dict[Frequency, Literal[0, 1, 2, 3, 4, 5, 6]] = {
    Frequency.MINUTELY: rrule.MINUTELY,
    Frequency.HOURLY: rrule.HOURLY,
    Frequency.DAILY: rrule.DAILY,
    Frequency.WEEKLY: rrule.WEEKLY,
}


@settings(max_examples=examples(60), deadline=None)
@given(rule=RULES, periods=st.integers(0, 400), seconds=st.integers(0, 3600))
def test_the_jump_to_until_finds_what_walking_from_the_start_finds(
    rule: Recurrence, periods: int, seconds: int
) -> None:
    unit = {
        Frequency.MINUTELY: MINUTE,
        Frequency.HOURLY: timedelta(hours=1),
        Frequency.DAILY: timedelta(days=1),
        Frequency.WEEKLY: timedelta(weeks=1),
    }[Frequency(rule.freq)]
    until = START + unit * rule.interval * periods + timedelta(seconds=seconds)
    try:
        walked = rrule.rrule(
            freq=WALK_FREQ[Frequency(rule.freq)],
            dtstart=START,
            interval=rule.interval,
            until=until,
            byminute=rule.byminutes or None,
            byhour=rule.byhours or None,
            byweekday=[d - 1 for d in rule.byweekdays] or None,
            bymonthday=rule.bymonthdays or None,
            bymonth=rule.bymonths or None,
        ).before(until, inc=True)
    except ValueError:
        return  # dateutil refuses the rule; so do the rules (tested above)
    assert rules.last_occurrence(replace(rule, end=EndCriteria(until=until)), START) == walked


# --- updates ------------------------------------------------------------------------

CURRENT = data(recurrence=daily(byhours=(13,), end=EndCriteria(count=5)))


def update(*paths: str, **values: object) -> DispatchUpdate:
    return DispatchUpdate(paths=paths, **values)  # type: ignore[arg-type]


def test_an_update_changes_exactly_the_named_paths() -> None:
    changed = rules.apply_update(
        CURRENT,
        update(
            "duration",
            "recurrence.interval",
            target=Target(TargetKind.IDS, ids=(99,)),  # not named: ignored
            duration_s=60,
            recurrence=RecurrenceUpdate(interval=3, freq=Frequency.HOURLY),
        ),
        NOON,
    )
    assert changed == replace(
        CURRENT, duration_s=60, recurrence=replace(CURRENT.recurrence, interval=3)
    )


def test_named_paths_without_a_value_take_the_default() -> None:
    changed = rules.apply_update(
        CURRENT, update("duration", "is_active", "recurrence.end_criteria", "payload"), NOON
    )
    assert changed.duration_s is None
    assert changed.is_active is False
    assert changed.recurrence.end is None
    assert changed.payload == {}


RULE = CURRENT.recurrence
LATER = START + timedelta(days=3)
EACH_PATH = [
    (update("start_time", start_time=LATER + timedelta(microseconds=7)), "start_time", LATER),
    (
        update("target", target=Target(TargetKind.IDS, ids=(3,))),
        "target",
        Target(TargetKind.IDS, ids=(3,)),
    ),
    (update("is_active", is_active=False), "is_active", False),
    (update("payload", payload={"a": 1.0}), "payload", {"a": 1.0}),
    (
        update("recurrence.freq", recurrence=RecurrenceUpdate(freq=Frequency.WEEKLY)),
        "recurrence",
        replace(RULE, freq=Frequency.WEEKLY),
    ),
    (
        update("recurrence.byminutes", recurrence=RecurrenceUpdate(byminutes=(5, 10))),
        "recurrence",
        replace(RULE, byminutes=(5, 10)),
    ),
    (
        update("recurrence.byhours", recurrence=RecurrenceUpdate(byhours=())),
        "recurrence",
        replace(RULE, byhours=()),
    ),
    (
        update("recurrence.byweekdays", recurrence=RecurrenceUpdate(byweekdays=(1,))),
        "recurrence",
        replace(RULE, byweekdays=(1,)),
    ),
    (
        update("recurrence.bymonthdays", recurrence=RecurrenceUpdate(bymonthdays=(-1,))),
        "recurrence",
        replace(RULE, bymonthdays=(-1,)),
    ),
    (
        update("recurrence.bymonths", recurrence=RecurrenceUpdate(bymonths=(6, 7))),
        "recurrence",
        replace(RULE, bymonths=(6, 7)),
    ),
    (
        update(
            "recurrence.end_criteria.until_time",
            recurrence=RecurrenceUpdate(end=EndCriteria(until=LATER)),
        ),
        "recurrence",
        replace(RULE, end=EndCriteria(until=LATER)),
    ),
    (
        update(
            "recurrence.end_criteria.count", recurrence=RecurrenceUpdate(end=EndCriteria(count=9))
        ),
        "recurrence",
        replace(RULE, end=EndCriteria(count=9)),
    ),
    (
        update("recurrence", recurrence=RecurrenceUpdate(freq=Frequency.HOURLY, interval=4)),
        "recurrence",
        Recurrence(freq=Frequency.HOURLY, interval=4),
    ),
    (update("recurrence"), "recurrence", Recurrence()),
]


@pytest.mark.parametrize(("the_update", "field", "expected"), EACH_PATH)
def test_each_update_path(the_update: DispatchUpdate, field: str, expected: object) -> None:
    changed = rules.apply_update(CURRENT, the_update, NOON)
    assert getattr(changed, field) == expected
    others = {name for name in DispatchData.__dataclass_fields__} - {field}
    assert all(getattr(changed, name) == getattr(CURRENT, name) for name in others)


@pytest.mark.parametrize(
    ("the_update", "message"),
    [
        (update(), r"^update_mask: empty; name the fields to update"),
        (update("duration", "colour"), r"^update_mask: unknown path 'colour'; known: "),
        (update("type"), r"^update_mask: 'type' cannot be updated"),
        (update("is_dry_run"), r"^update_mask: 'is_dry_run' cannot be updated"),
        (update("payload.power"), r"^update_mask: unknown path 'payload.power'"),
        (update("start_time"), r"^start_time: named in update_mask but not set"),
        (
            update("start_time", start_time=NOON - timedelta(minutes=5)),
            r"^start_time: .* is in the past",
        ),
        (update("target"), r"^target: required"),
        (
            update("recurrence.interval", recurrence=RecurrenceUpdate(interval=0)),
            r"^recurrence.interval: expected 1-10000 with freq DAILY, got 0$",
        ),
        (
            update("recurrence.byminutes", recurrence=RecurrenceUpdate(byminutes=(75,))),
            r"^recurrence.byminutes\[0\]: expected 0-59, got 75$",
        ),
    ],
)
def test_bad_updates_are_refused(the_update: DispatchUpdate, message: str) -> None:
    with refused(message):
        rules.apply_update(CURRENT, the_update, NOON)
