"""What makes a dispatch valid, when it ends, and how an update applies: pure functions.

Nothing here does I/O or knows gRPC: every function takes plain `model` values and
"now", and raises `DispatchError` (INVALID_ARGUMENT or NOT_FOUND) with a message that
names the field, what was expected and what was given.

Decisions where the API leaves room (also in the package docstring):

- **Start time.** Rounded to the nearest whole second, as the Frequenz service does
  (`frequenz-client-dispatch` rounds the same way when it reads a create request).
  A start more than `START_TIME_GRACE` (60 s) in the past is refused, on create and
  on an update of `start_time`: clocks drift and requests take time. With
  `start_immediately` the start is the server's "now", truncated to the second (so
  the dispatch has started when the response arrives).
- **Duration.** Seconds ≥ 0; 0 is allowed (the API: "immediately starts and ends",
  e.g. switching a component on); unset means indefinite.
- **Payload.** At most `MAX_PAYLOAD_BYTES` (50 KiB = 51 200 bytes) as compact UTF-8
  JSON and at most `MAX_PAYLOAD_DEPTH` (5) levels of objects/lists (the payload
  object itself is level 1), the limits the API's `DispatchData.payload` comment
  states; numbers must be finite.
- **Recurrence.** `interval` 1-10 000 with a frequency (the API's "typical" range),
  `count` 1-4096 (the API's range), byminutes 0-59, byhours 0-23, byweekdays
  Monday-Sunday, bymonthdays ±1-31 (not with WEEKLY, as the API says), bymonths
  1-12; without a frequency every other field must be empty. A rule must have an
  occurrence within its search horizon (below) of its start.
- **end_time.** One-off: start + duration, or unset when the duration is indefinite.
  Recurring: the end of the last occurrence when the rule ends (count or until;
  `until` is inclusive, as in RFC 5545 and `dateutil`), unset when it never ends or
  each occurrence is indefinite. Evaluating a rule is bounded, so that no request can
  keep the server busy for long: occurrences are read off the calendar
  (`edge_controller.common.occurrences`, `dateutil`'s semantics without its walk, which took
  more than 90 s on a 200-byte rule), searched within `SEARCH_HORIZON` of the start
  (the first occurrence, count rules) or before `until` (until rules) — 10 years for
  minutely and hourly rules, 100 years for daily and weekly ones, up to `LATEST_TIME`
  for monthly and yearly ones. A rule with no occurrence there is refused; a last
  occurrence not found there leaves `end_time` unset (open-ended, so the dispatch is
  never filtered out by mistake).
- **update_time** strictly increases: `max(now, previous + 1 µs)`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal

from dateutil import rrule

from edge_controller.common import occurrences
from edge_controller.servers.dispatch.errors import invalid, not_found
from edge_controller.servers.dispatch.model import (
    ComponentType,
    DispatchData,
    DispatchUpdate,
    EndCriteria,
    Frequency,
    Recurrence,
    Target,
    TargetKind,
    Weekday,
)

START_TIME_GRACE: Final = timedelta(seconds=60)
"""How far in the past a requested start time may lie and still be accepted."""
MAX_PAYLOAD_BYTES: Final = 50 * 1024
"""The API's payload limit ("should not exceed 50 KB"), measured as compact UTF-8 JSON."""
MAX_PAYLOAD_DEPTH: Final = 5
"""The API's "maximum JSON nesting depth: 5 levels" (objects and lists)."""
MAX_INTERVAL: Final = 10_000
MAX_COUNT: Final = 4096
SEARCH_HORIZON: Final[Mapping[Frequency, timedelta]] = {
    Frequency.MINUTELY: timedelta(days=3653),
    Frequency.HOURLY: timedelta(days=3653),
    Frequency.DAILY: timedelta(days=36525),
    Frequency.WEEKLY: timedelta(days=36525),
}
"""How far rule evaluation searches for an occurrence (monthly, yearly: to LATEST_TIME)."""
LATEST_TIME: Final = datetime(9000, 1, 1, tzinfo=UTC)
"""Start and until times must be before this, so start + duration stays representable."""
MAX_ID: Final = 2**63 - 1
"""Ids are stored as SQLite integers (signed 64 bit)."""
ONE_MICROSECOND: Final = timedelta(microseconds=1)

# The API's ElectricalComponentCategory numbers that the optional types belong to
# (frequenz.api.common.v1alpha8 electrical_components.proto; checked in the tests).
CATEGORY_OF_TYPE: Final[Mapping[ComponentType, int]] = {
    ComponentType.INVERTER: 3,
    ComponentType.BATTERY: 5,
    ComponentType.EV_CHARGER: 6,
}

_RRULE_FREQ: Final[dict[Frequency, Literal[0, 1, 2, 3, 4, 5, 6]]] = {
    Frequency.MINUTELY: rrule.MINUTELY,
    Frequency.HOURLY: rrule.HOURLY,
    Frequency.DAILY: rrule.DAILY,
    Frequency.WEEKLY: rrule.WEEKLY,
    Frequency.MONTHLY: rrule.MONTHLY,
    Frequency.YEARLY: rrule.YEARLY,
}
_KNOWN_FREQUENCIES: Final = frozenset(int(f) for f in Frequency)
_DAYS_IN_MONTH: Final = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def iso(moment: datetime) -> str:
    """Format a time for messages: `2026-06-21T12:00:00Z`."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def round_start_time(moment: datetime) -> datetime:
    """Round to the nearest whole second, exactly as `frequenz-client-dispatch` does."""
    seconds = moment.second + moment.microsecond / 1_000_000
    return moment.replace(second=0, microsecond=0) + timedelta(seconds=round(seconds))


def next_update_time(previous: datetime, now: datetime) -> datetime:
    """Return the update time for a change made at `now`: always after `previous`.

    `frequenz-dispatch` ignores an update whose update_time does not increase, so two
    changes within one microsecond (or a clock that stepped back) still move it by 1 µs.
    """
    return max(now, previous + ONE_MICROSECOND)


def check_microgrid(microgrid_id: int, served: frozenset[int] | None) -> None:
    """Refuse a microgrid id this server does not serve.

    Raises:
        DispatchError: INVALID_ARGUMENT for 0 (unset) or an id too large to store;
            NOT_FOUND when `served` is given and does not hold the id.
    """
    if not 0 < microgrid_id <= MAX_ID:
        raise invalid(f"microgrid_id: expected an id 1-{MAX_ID}, got {microgrid_id}")
    if served is not None and microgrid_id not in served:
        serving = ", ".join(str(i) for i in sorted(served))
        raise not_found(f"microgrid {microgrid_id} is not served here (serving: {serving})")


def prepare_new(data: DispatchData, *, start_immediately: bool, now: datetime) -> DispatchData:
    """Validate a create request and return the data as it will be stored.

    Raises:
        DispatchError: INVALID_ARGUMENT naming the first problem found.
    """
    if start_immediately:
        data = replace(data, start_time=now.replace(microsecond=0))
    else:
        data = replace(data, start_time=round_start_time(data.start_time))
        _check_not_past(data.start_time, now)
    validate(data)
    return data


def validate(data: DispatchData) -> None:
    """Check everything about a dispatch's data that does not depend on "now".

    Raises:
        DispatchError: INVALID_ARGUMENT naming the first problem found.
    """
    if not data.type.strip():
        raise invalid(f"type: expected a non-empty string, got {data.type!r}")
    if data.start_time >= LATEST_TIME:
        raise invalid(
            f"start_time: expected a time before {iso(LATEST_TIME)}, got {iso(data.start_time)}"
        )
    if data.duration_s is not None and data.duration_s < 0:
        raise invalid(
            f"duration: expected seconds >= 0 (or unset: indefinite), got {data.duration_s}"
        )
    _check_target(data.target)
    _check_payload(data.payload)
    _check_recurrence(data.recurrence, data.start_time)


def _check_not_past(start_time: datetime, now: datetime) -> None:
    if start_time < now - START_TIME_GRACE:
        raise invalid(
            f"start_time: {iso(start_time)} is in the past (now {iso(now)}; at most "
            f"{START_TIME_GRACE.total_seconds():.0f} s of grace); "
            "use start_immediately to start now"
        )


def _check_target(target: Target | None) -> None:
    if target is None:
        raise invalid("target: required: a set of component ids or component categories")
    if target.kind is TargetKind.IDS:
        if not target.ids:
            raise invalid("target.component_ids.ids: expected at least one component id, got none")
        return
    field = f"target.{target.kind.value}.categories"
    if not target.categories:
        raise invalid(f"{field}: expected at least one category, got none")
    for index, entry in enumerate(target.categories):
        if entry.category == 0:
            raise invalid(
                f"{field}[{index}].category: expected a component category, got 0 (unspecified)"
            )
        if entry.type_kind is None:
            continue
        expected = CATEGORY_OF_TYPE[entry.type_kind]
        if entry.category != expected:
            raise invalid(
                f"{field}[{index}].{entry.type_kind.value}: a {entry.type_kind.value} type needs "
                f"category {expected}, got category {entry.category}"
            )


def payload_depth(value: Any) -> int:
    """Return how many objects/lists are nested in `value` (a scalar is 0, `{}` is 1)."""
    if isinstance(value, Mapping):
        return 1 + max((payload_depth(item) for item in value.values()), default=0)
    if isinstance(value, list | tuple):
        return 1 + max((payload_depth(item) for item in value), default=0)
    return 0


def _check_payload(payload: Mapping[str, Any]) -> None:
    depth = payload_depth(payload)
    if depth > MAX_PAYLOAD_DEPTH:
        raise invalid(f"payload: nested {depth} levels deep, at most {MAX_PAYLOAD_DEPTH} allowed")
    try:
        text = json.dumps(payload, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except ValueError:
        raise invalid("payload: numbers must be finite (no NaN or infinity)") from None
    size = len(text.encode())
    if size > MAX_PAYLOAD_BYTES:
        raise invalid(
            f"payload: {size} bytes as JSON, at most {MAX_PAYLOAD_BYTES} allowed (50 KiB)"
        )


def _check_values(
    field: str, values: tuple[int, ...], low: int, high: int, *, no_zero: bool = False
) -> None:
    for index, value in enumerate(values):
        allowed = low <= abs(value) <= high if no_zero else low <= value <= high
        if not allowed:
            expected = f"±{low}-{high}" if no_zero else f"{low}-{high}"
            raise invalid(f"recurrence.{field}[{index}]: expected {expected}, got {value}")


def _check_recurrence(rule: Recurrence, start: datetime) -> None:
    if rule.freq not in _KNOWN_FREQUENCIES:
        raise invalid(f"recurrence.freq: unknown frequency {rule.freq}")
    if not rule.is_recurring:
        for name in (
            "interval",
            "end",
            "byminutes",
            "byhours",
            "byweekdays",
            "bymonthdays",
            "bymonths",
        ):
            if getattr(rule, name) not in (0, None, ()):
                field = "end_criteria" if name == "end" else name
                raise invalid(
                    f"recurrence.{field}: set, but recurrence.freq is unspecified (not recurring)"
                )
        return
    if not 1 <= rule.interval <= MAX_INTERVAL:
        raise invalid(
            f"recurrence.interval: expected 1-{MAX_INTERVAL} with freq "
            f"{Frequency(rule.freq).name}, got {rule.interval}"
        )
    _check_end(rule.end, start)
    _check_values("byminutes", rule.byminutes, 0, 59)
    _check_values("byhours", rule.byhours, 0, 23)
    _check_values("byweekdays", rule.byweekdays, Weekday.MONDAY, Weekday.SUNDAY)
    _check_values("bymonthdays", rule.bymonthdays, 1, 31, no_zero=True)
    _check_values("bymonths", rule.bymonths, 1, 12)
    if rule.bymonthdays and rule.freq == Frequency.WEEKLY:
        raise invalid("recurrence.bymonthdays: not allowed with freq WEEKLY (the API forbids it)")
    if rule.bymonthdays:
        months = rule.bymonths or tuple(range(1, 13))
        if not any(
            abs(day) <= _DAYS_IN_MONTH[month - 1] for day in rule.bymonthdays for month in months
        ):
            raise invalid(
                f"recurrence.bymonthdays: none of {list(rule.bymonthdays)} exists in "
                f"months {list(months)}"
            )
    until = rule.end.until if rule.end is not None else None
    horizon_end = _horizon_end(rule, start)
    _as_rrule(rule, start)  # only built (cheap): dateutil names some empty rules
    first = occurrences.first_at_or_after(
        _calendar_rule(rule), start, start, min(until or LATEST_TIME, horizon_end)
    )
    if first is None:
        if until is not None and until <= horizon_end:
            raise invalid(
                f"recurrence: no occurrence between start_time {iso(start)} and "
                f"end_criteria.until_time {iso(until)}"
            )
        raise invalid(
            f"recurrence: no occurrence between start_time {iso(start)} and {iso(horizon_end)} "
            "(the search horizon)"
        )


def _horizon_end(rule: Recurrence, start: datetime) -> datetime:
    horizon = SEARCH_HORIZON.get(Frequency(rule.freq))
    return LATEST_TIME if horizon is None else min(LATEST_TIME, start + horizon)


def _check_end(end: EndCriteria | None, start: datetime) -> None:
    if end is None:
        return
    if end.count is not None and end.until is not None:
        raise invalid("recurrence.end_criteria: count and until_time are exclusive, got both")
    if end.count is not None and not 1 <= end.count <= MAX_COUNT:
        raise invalid(f"recurrence.end_criteria.count: expected 1-{MAX_COUNT}, got {end.count}")
    if end.until is not None:
        if end.until < start:
            raise invalid(
                f"recurrence.end_criteria.until_time: {iso(end.until)} is before "
                f"start_time {iso(start)}"
            )
        if end.until >= LATEST_TIME:
            raise invalid(
                f"recurrence.end_criteria.until_time: expected a time before {iso(LATEST_TIME)}, "
                f"got {iso(end.until)}"
            )


def _calendar_rule(rule: Recurrence) -> occurrences.Rule:
    end = rule.end
    return occurrences.Rule(
        freq=int(rule.freq),
        interval=rule.interval,
        byminutes=tuple(rule.byminutes),
        byhours=tuple(rule.byhours),
        byweekdays=tuple(int(day) for day in rule.byweekdays),
        bymonthdays=tuple(rule.bymonthdays),
        bymonths=tuple(rule.bymonths),
        count=None if end is None else end.count,
        until=None if end is None else end.until,
    )


def _as_rrule(rule: Recurrence, start: datetime) -> rrule.rrule:
    """Build (never walk) the `dateutil` rule, as `frequenz-client-dispatch` does.

    Building it is cheap and names some empty rules the way a client library user
    would see them; walking it is what this module no longer does.

    Raises:
        DispatchError: INVALID_ARGUMENT when `dateutil` finds the rule empty (e.g. an
            hourly interval that never reaches the given hours).
    """
    try:
        return rrule.rrule(
            freq=_RRULE_FREQ[Frequency(rule.freq)],
            dtstart=start,
            interval=rule.interval,
            byminute=rule.byminutes or None,
            byhour=rule.byhours or None,
            byweekday=[day - 1 for day in rule.byweekdays] or None,
            bymonthday=rule.bymonthdays or None,
            bymonth=rule.bymonths or None,
            cache=False,
        )
    except ValueError as error:
        raise invalid(f"recurrence: {error}") from None


def end_time(data: DispatchData) -> datetime | None:
    """Return when a (valid) dispatch stops for good; None when it is open-ended."""
    if data.duration_s is None:
        return None
    duration = timedelta(seconds=data.duration_s)
    rule = data.recurrence
    if not rule.is_recurring:
        return data.start_time + duration
    last = last_occurrence(rule, data.start_time)
    return None if last is None else last + duration


def last_occurrence(rule: Recurrence, start: datetime) -> datetime | None:
    """Return the start of a rule's last occurrence; None if it never ends.

    Also None if the last occurrence is not found within the search bounds (see the
    module docstring): the dispatch is then treated as open-ended.
    """
    end = rule.end
    calendar_rule = _calendar_rule(rule)
    if end is not None and end.count is not None:
        return occurrences.last_occurrence(calendar_rule, start, _horizon_end(rule, start))
    if end is not None and end.until is not None:
        horizon = SEARCH_HORIZON.get(Frequency(rule.freq))
        since = start if horizon is None else max(start, end.until - horizon)
        return occurrences.last_at_or_before(calendar_rule, start, end.until, since)
    return None


_UPDATABLE_RECURRENCE = (
    "freq",
    "interval",
    "byminutes",
    "byhours",
    "byweekdays",
    "bymonthdays",
    "bymonths",
)
UPDATE_PATHS: Final = frozenset(
    {
        "start_time",
        "duration",
        "target",
        "is_active",
        "payload",
        "recurrence",
        "recurrence.end_criteria",
        "recurrence.end_criteria.count",
        "recurrence.end_criteria.until_time",
        *(f"recurrence.{name}" for name in _UPDATABLE_RECURRENCE),
    }
)
"""Every update_mask path the service honours."""


def apply_update(current: DispatchData, update: DispatchUpdate, now: datetime) -> DispatchData:
    """Apply exactly the mask's paths to `current`, then validate the result.

    A path whose value the request leaves unset takes the field's default (AIP-134):
    `duration` unset makes the dispatch indefinite, `is_active` unset makes it inactive,
    `recurrence.end_criteria` unset makes it recur forever. `start_time` must be set
    when named, and is held to the same "not in the past" rule as on create.

    Raises:
        DispatchError: INVALID_ARGUMENT for an empty mask, a path naming a field that
            cannot be updated or does not exist, or a result that is not valid.
    """
    if not update.paths:
        raise invalid("update_mask: empty; name the fields to update, e.g. 'duration'")
    for path in update.paths:
        if path in ("type", "is_dry_run"):
            raise invalid(
                f"update_mask: '{path}' cannot be updated (create a new dispatch instead)"
            )
        if path not in UPDATE_PATHS:
            raise invalid(
                f"update_mask: unknown path '{path}'; known: {', '.join(sorted(UPDATE_PATHS))}"
            )
    data = current
    rule = current.recurrence
    wanted = update.recurrence
    for path in update.paths:
        if path == "start_time":
            if update.start_time is None:
                raise invalid("start_time: named in update_mask but not set in the update")
            start = round_start_time(update.start_time)
            _check_not_past(start, now)
            data = replace(data, start_time=start)
        elif path == "duration":
            data = replace(data, duration_s=update.duration_s)
        elif path == "target":
            data = replace(data, target=update.target)
        elif path == "is_active":
            data = replace(data, is_active=bool(update.is_active))
        elif path == "payload":
            data = replace(data, payload=dict(update.payload or {}))
        elif path == "recurrence":
            rule = Recurrence(
                freq=wanted.freq or 0,
                interval=wanted.interval or 0,
                end=wanted.end,
                byminutes=wanted.byminutes,
                byhours=wanted.byhours,
                byweekdays=wanted.byweekdays,
                bymonthdays=wanted.bymonthdays,
                bymonths=wanted.bymonths,
            )
        elif path == "recurrence.end_criteria":
            rule = replace(rule, end=wanted.end)
        elif path == "recurrence.end_criteria.count":
            rule = replace(rule, end=EndCriteria(count=wanted.end.count if wanted.end else None))
        elif path == "recurrence.end_criteria.until_time":
            rule = replace(rule, end=EndCriteria(until=wanted.end.until if wanted.end else None))
        elif path == "recurrence.freq":
            rule = replace(rule, freq=wanted.freq or 0)
        elif path == "recurrence.interval":
            rule = replace(rule, interval=wanted.interval or 0)
        elif path == "recurrence.byminutes":
            rule = replace(rule, byminutes=wanted.byminutes)
        elif path == "recurrence.byhours":
            rule = replace(rule, byhours=wanted.byhours)
        elif path == "recurrence.byweekdays":
            rule = replace(rule, byweekdays=wanted.byweekdays)
        elif path == "recurrence.bymonthdays":
            rule = replace(rule, bymonthdays=wanted.bymonthdays)
        else:  # "recurrence.bymonths", the last of UPDATE_PATHS
            rule = replace(rule, bymonths=wanted.bymonths)
    if rule.end is not None and rule.end.count is None and rule.end.until is None:
        rule = replace(rule, end=None)
    data = replace(data, recurrence=rule)
    validate(data)
    return data


__all__ = [
    "CATEGORY_OF_TYPE",
    "LATEST_TIME",
    "MAX_COUNT",
    "MAX_ID",
    "MAX_INTERVAL",
    "MAX_PAYLOAD_BYTES",
    "MAX_PAYLOAD_DEPTH",
    "SEARCH_HORIZON",
    "START_TIME_GRACE",
    "UPDATE_PATHS",
    "apply_update",
    "check_microgrid",
    "end_time",
    "iso",
    "last_occurrence",
    "next_update_time",
    "payload_depth",
    "prepare_new",
    "round_start_time",
    "validate",
]
