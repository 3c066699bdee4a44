"""Translate between `frequenz.api.dispatch.v1` messages and the plain `model` values.

Only protobuf messages here, no gRPC: the servicer converts a request, calls the
service, and converts the result back; the storage keeps `DispatchData` serialised.
Times keep microseconds (protobuf's nanoseconds are truncated); an end criteria
message with neither count nor until reads as "no end".
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final

from frequenz.api.common.v1alpha8.pagination.pagination_info_pb2 import PaginationInfo
from frequenz.api.common.v1alpha8.types.interval_pb2 import Interval
from frequenz.api.dispatch.v1 import dispatch_pb2 as pb
from google.protobuf import json_format
from google.protobuf.struct_pb2 import Struct, Value
from google.protobuf.timestamp_pb2 import Timestamp

from edge_controller.servers.dispatch.errors import invalid
from edge_controller.servers.dispatch.model import (
    CategoryTarget,
    ComponentType,
    Dispatch,
    DispatchData,
    DispatchUpdate,
    EndCriteria,
    Recurrence,
    RecurrenceUpdate,
    Target,
    TargetKind,
)
from edge_controller.servers.dispatch.query import (
    DispatchFilter,
    Page,
    PageRequest,
    Sort,
    SortField,
    TimeInterval,
)
from edge_controller.servers.dispatch.rules import MAX_PAYLOAD_BYTES

_SORT_FIELDS = {
    pb.SORT_FIELD_CREATE_TIME: SortField.CREATE_TIME,
    pb.SORT_FIELD_START_TIME: SortField.START_TIME,
    pb.SORT_FIELD_LAST_UPDATE_TIME: SortField.UPDATE_TIME,
}


def to_datetime(message: Timestamp, field: str) -> datetime:
    """Read a Timestamp as an aware UTC datetime (microsecond precision).

    Raises:
        DispatchError: INVALID_ARGUMENT naming `field` for a timestamp out of range.
    """
    try:
        return message.ToDatetime(tzinfo=UTC)
    except (ValueError, OverflowError):
        raise invalid(f"{field}: not a valid timestamp (seconds={message.seconds})") from None


def timestamp(moment: datetime) -> Timestamp:
    """Return `moment` as a protobuf Timestamp."""
    message = Timestamp()
    message.FromDatetime(moment)
    return message


def _non_finite(value: Value, path: str) -> tuple[str, float] | None:
    """Return the path and value of the first NaN or ±inf number in `value`, if any."""
    match value.WhichOneof("kind"):
        case "number_value":
            number = value.number_value
            return None if math.isfinite(number) else (path, number)
        case "struct_value":
            for key, item in sorted(value.struct_value.fields.items()):
                if (found := _non_finite(item, f"{path}.{key}")) is not None:
                    return found
        case "list_value":
            for index, item in enumerate(value.list_value.values):
                if (found := _non_finite(item, f"{path}[{index}]")) is not None:
                    return found
    return None


MAX_PAYLOAD_WIRE_BYTES: Final = 6 * MAX_PAYLOAD_BYTES
"""A payload's largest size as a protobuf `Struct` that can still be ≤ 50 KiB as JSON.

The densest JSON for its Struct size is a list of one-digit numbers: 2 bytes each
(`0,`) against 11 as a `Value` (a tag, a length, a tag and a double), 5.5 times more.
A larger Struct cannot be a valid payload, so it is refused before any conversion.
"""


def payload_from_proto(payload: Struct, field: str = "payload") -> dict[str, Any]:
    """Return a Struct as a JSON-like dict (numbers are floats).

    A Struct may hold NaN or ±inf; JSON, and so a payload, cannot. Its wire size is
    checked first (`ByteSize`, in C): converting a 3.3 MB Struct to Python held the
    event loop for seconds before the 50 KiB check could refuse it (issue 16).

    Raises:
        DispatchError: INVALID_ARGUMENT naming the path below `field` of a NaN or ±inf
            number (`payload.power_w: expected a finite number, got nan`), or for a
            Struct larger than `MAX_PAYLOAD_WIRE_BYTES`.
    """
    wire_bytes = payload.ByteSize()
    if wire_bytes > MAX_PAYLOAD_WIRE_BYTES:
        raise invalid(
            f"{field}: {wire_bytes} bytes as protobuf, more than any payload of at most "
            f"{MAX_PAYLOAD_BYTES} bytes as JSON (50 KiB) can take"
        )
    for key, item in sorted(payload.fields.items()):
        if (found := _non_finite(item, f"{field}.{key}")) is not None:
            path, number = found
            raise invalid(f"{path}: expected a finite number, got {number}")
    return json_format.MessageToDict(payload)


def payload_to_proto(payload: Mapping[str, Any]) -> Struct:
    """Return a JSON-like mapping as a Struct."""
    message = Struct()
    message.update(payload)
    return message


def target_from_proto(message: pb.TargetComponents) -> Target | None:
    """Read the target; None when the request set none of the three forms."""
    match message.WhichOneof("components"):
        case "component_ids":
            return Target(TargetKind.IDS, ids=tuple(message.component_ids.ids))
        case "component_categories":
            legacy = message.component_categories.categories
            return Target(
                TargetKind.LEGACY_CATEGORIES,
                categories=tuple(CategoryTarget(int(c)) for c in legacy),
            )
        case "component_categories_types":
            entries = []
            for entry in message.component_categories_types.categories:
                kind = entry.WhichOneof("type")
                type_kind = ComponentType(kind) if kind else None
                type_value = int(getattr(entry, kind)) if kind else 0
                entries.append(CategoryTarget(int(entry.category), type_kind, type_value))
            return Target(TargetKind.CATEGORIES, categories=tuple(entries))
        case _:
            return None


def target_to_proto(target: Target | None) -> pb.TargetComponents:
    """Return the target in the form it arrived in."""
    message = pb.TargetComponents()
    if target is None:
        return message
    if target.kind is TargetKind.IDS:
        message.component_ids.ids.extend(target.ids)
    elif target.kind is TargetKind.LEGACY_CATEGORIES:
        legacy = message.component_categories.categories
        legacy.extend(entry.category for entry in target.categories)  # type: ignore[misc]
    else:
        for entry in target.categories:
            item = message.component_categories_types.categories.add()
            item.category = entry.category  # type: ignore[assignment]
            if entry.type_kind is not None:
                setattr(item, entry.type_kind.value, entry.type_value)
    return message


def end_from_proto(message: pb.RecurrenceRule.EndCriteria, field: str) -> EndCriteria | None:
    """Read end criteria; None when neither count nor until is set."""
    match message.WhichOneof("count_or_until"):
        case "count":
            return EndCriteria(count=message.count)
        case "until_time":
            return EndCriteria(until=to_datetime(message.until_time, f"{field}.until_time"))
        case _:
            return None


def end_to_proto(end: EndCriteria) -> pb.RecurrenceRule.EndCriteria:
    """Return end criteria as the API's message."""
    message = pb.RecurrenceRule.EndCriteria()
    if end.count is not None:
        message.count = end.count
    elif end.until is not None:
        message.until_time.CopyFrom(timestamp(end.until))
    return message


def recurrence_from_proto(message: pb.RecurrenceRule) -> Recurrence:
    """Read a recurrence rule (unknown enum numbers are kept for the rules to refuse)."""
    end = (
        end_from_proto(message.end_criteria, "recurrence.end_criteria")
        if message.HasField("end_criteria")
        else None
    )
    return Recurrence(
        freq=int(message.freq),
        interval=message.interval,
        end=end,
        byminutes=tuple(message.byminutes),
        byhours=tuple(message.byhours),
        byweekdays=tuple(int(day) for day in message.byweekdays),
        bymonthdays=tuple(message.bymonthdays),
        bymonths=tuple(message.bymonths),
    )


def recurrence_to_proto(rule: Recurrence) -> pb.RecurrenceRule:
    """Return a recurrence rule as the API's message."""
    message = pb.RecurrenceRule(
        freq=rule.freq,  # type: ignore[arg-type]
        interval=rule.interval,
        byminutes=rule.byminutes,
        byhours=rule.byhours,
        byweekdays=rule.byweekdays,  # type: ignore[arg-type]
        bymonthdays=rule.bymonthdays,
        bymonths=rule.bymonths,
    )
    if rule.end is not None:
        message.end_criteria.CopyFrom(end_to_proto(rule.end))
    return message


def data_from_proto(message: pb.DispatchData) -> DispatchData:
    """Read `DispatchData`; an unset start time reads as the epoch (see `create_from_proto`)."""
    return DispatchData(
        type=message.type,
        start_time=to_datetime(message.start_time, "start_time"),
        duration_s=message.duration if message.HasField("duration") else None,
        target=target_from_proto(message.target),
        is_active=message.is_active,
        is_dry_run=message.is_dry_run,
        payload=payload_from_proto(message.payload),
        recurrence=recurrence_from_proto(message.recurrence),
    )


def data_to_proto(data: DispatchData) -> pb.DispatchData:
    """Return `DispatchData` as the API's message."""
    return pb.DispatchData(
        type=data.type,
        start_time=timestamp(data.start_time),
        duration=data.duration_s,
        target=target_to_proto(data.target),
        is_active=data.is_active,
        is_dry_run=data.is_dry_run,
        payload=payload_to_proto(data.payload),
        recurrence=recurrence_to_proto(data.recurrence),
    )


def create_from_proto(request: pb.CreateMicrogridDispatchRequest) -> tuple[DispatchData, bool]:
    """Read a create request: the data and whether to start immediately.

    Raises:
        DispatchError: INVALID_ARGUMENT when neither a start time nor
            `start_immediately` is given.
    """
    start_immediately = request.start_immediately
    if not request.dispatch_data.HasField("start_time") and not start_immediately:
        raise invalid("dispatch_data.start_time: required (or set start_immediately to start now)")
    return data_from_proto(request.dispatch_data), start_immediately


def dispatch_to_proto(dispatch: Dispatch) -> pb.Dispatch:
    """Return a stored dispatch as the API's message (end_time unset when open-ended)."""
    metadata = pb.DispatchMetadata(
        dispatch_id=dispatch.id,
        create_time=timestamp(dispatch.create_time),
        update_time=timestamp(dispatch.update_time),
    )
    if dispatch.end_time is not None:
        metadata.end_time.CopyFrom(timestamp(dispatch.end_time))
    return pb.Dispatch(metadata=metadata, data=data_to_proto(dispatch.data))


def update_from_proto(request: pb.UpdateMicrogridDispatchRequest) -> DispatchUpdate:
    """Read an update request; the mask decides later which values apply."""
    update = request.update
    rule = update.recurrence
    end = (
        end_from_proto(rule.end_criteria, "update.recurrence.end_criteria")
        if rule.HasField("end_criteria")
        else None
    )
    return DispatchUpdate(
        paths=tuple(request.update_mask.paths),
        start_time=(
            to_datetime(update.start_time, "update.start_time")
            if update.HasField("start_time")
            else None
        ),
        duration_s=update.duration if update.HasField("duration") else None,
        target=target_from_proto(update.target),
        is_active=update.is_active if update.HasField("is_active") else None,
        payload=payload_from_proto(update.payload, "update.payload"),
        recurrence=RecurrenceUpdate(
            freq=int(rule.freq) if rule.HasField("freq") else None,
            interval=rule.interval if rule.HasField("interval") else None,
            end=end,
            byminutes=tuple(rule.byminutes),
            byhours=tuple(rule.byhours),
            byweekdays=tuple(int(day) for day in rule.byweekdays),
            bymonthdays=tuple(rule.bymonthdays),
            bymonths=tuple(rule.bymonths),
        ),
    )


def _interval(message: Interval, field: str) -> TimeInterval:
    return TimeInterval(
        start=to_datetime(message.start_time, f"{field}.start_time")
        if message.HasField("start_time")
        else None,
        end=to_datetime(message.end_time, f"{field}.end_time")
        if message.HasField("end_time")
        else None,
    )


MAX_FILTER_IDS: Final = 1000
"""At most this many `filter.dispatch_ids`, and as many component ids over all targets."""
MAX_FILTER_TARGETS: Final = 100
"""At most this many `filter.targets`, and as many category entries over all targets."""
MAX_FILTER_QUERIES: Final = 100
"""At most this many `filter.queries`, each at most `MAX_QUERY_CHARS` characters."""
MAX_QUERY_CHARS: Final = 200


def check_filter_sizes(message: pb.DispatchFilter) -> None:
    """Refuse a filter too large to be a real question, before converting any of it.

    A list filter costs the store work in proportion to its lists (issue 16: 2 000
    queries held the service 20.8 s). Counting repeated fields is cheap; these caps
    are far above what an operator or `frequenz-dispatch` sends.

    Raises:
        DispatchError: INVALID_ARGUMENT naming the list, its size and the cap.
    """
    component_ids = sum(len(t.component_ids.ids) for t in message.targets)
    categories = sum(
        len(t.component_categories.categories) + len(t.component_categories_types.categories)
        for t in message.targets
    )
    for field, size, cap in (
        ("filter.dispatch_ids", len(message.dispatch_ids), MAX_FILTER_IDS),
        ("filter.targets", len(message.targets), MAX_FILTER_TARGETS),
        ("filter.targets[*].component_ids.ids", component_ids, MAX_FILTER_IDS),
        ("filter.targets[*].categories", categories, MAX_FILTER_TARGETS),
        ("filter.queries", len(message.queries), MAX_FILTER_QUERIES),
    ):
        if size > cap:
            raise invalid(f"{field}: {size} items, at most {cap} allowed")
    for index, text in enumerate(message.queries):
        if len(text) > MAX_QUERY_CHARS:
            raise invalid(
                f"filter.queries[{index}]: {len(text)} characters, at most {MAX_QUERY_CHARS}"
            )


def filter_from_proto(message: pb.DispatchFilter) -> DispatchFilter:
    """Read the filter of a list request (sizes checked first: `check_filter_sizes`)."""
    check_filter_sizes(message)
    targets = []
    for index, item in enumerate(message.targets):
        target = target_from_proto(item)
        if target is None:
            raise invalid(f"filter.targets[{index}]: set component ids or categories")
        targets.append(target)
    recurring = message.is_recurring if message.WhichOneof("recurrence") == "is_recurring" else None
    return DispatchFilter(
        targets=tuple(targets),
        is_active=message.is_active if message.HasField("is_active") else None,
        is_dry_run=message.is_dry_run if message.HasField("is_dry_run") else None,
        is_recurring=recurring,
        start_time=(
            _interval(message.start_time_interval, "filter.start_time_interval")
            if message.HasField("start_time_interval")
            else None
        ),
        end_time=(
            _interval(message.end_time_interval, "filter.end_time_interval")
            if message.HasField("end_time_interval")
            else None
        ),
        update_time=(
            _interval(message.update_time_interval, "filter.update_time_interval")
            if message.HasField("update_time_interval")
            else None
        ),
        dispatch_ids=frozenset(message.dispatch_ids),
        queries=tuple(message.queries),
    )


def sort_from_proto(message: pb.SortOptions) -> Sort:
    """Read sort options (see `query` for the defaults).

    Raises:
        DispatchError: INVALID_ARGUMENT for an unknown field or order number.
    """
    if message.sort_field not in (pb.SORT_FIELD_UNSPECIFIED, *_SORT_FIELDS):
        raise invalid(f"sort_options.sort_field: unknown field {message.sort_field}")
    if message.sort_order not in (
        pb.SORT_ORDER_UNSPECIFIED,
        pb.SORT_ORDER_ASCENDING,
        pb.SORT_ORDER_DESCENDING,
    ):
        raise invalid(f"sort_options.sort_order: unknown order {message.sort_order}")
    if message.sort_field == pb.SORT_FIELD_UNSPECIFIED:
        return Sort(descending=message.sort_order != pb.SORT_ORDER_ASCENDING)
    return Sort(_SORT_FIELDS[message.sort_field], message.sort_order == pb.SORT_ORDER_DESCENDING)


def page_request_from_proto(request: pb.ListMicrogridDispatchesRequest) -> PageRequest:
    """Read the pagination parameters (page size or token; the API makes them exclusive)."""
    params = request.pagination_params
    match params.WhichOneof("params"):
        case "page_size":
            return PageRequest(size=params.page_size)
        case "page_token":
            return PageRequest(token=params.page_token)
        case _:
            return PageRequest()


def list_response(page: Page) -> pb.ListMicrogridDispatchesResponse:
    """Build the list response for one page."""
    info = PaginationInfo(total_items=page.total)
    if page.next_token is not None:
        info.next_page_token = page.next_token
    return pb.ListMicrogridDispatchesResponse(
        dispatches=[dispatch_to_proto(d) for d in page.items], pagination_info=info
    )


__all__ = [
    "create_from_proto",
    "data_from_proto",
    "data_to_proto",
    "dispatch_to_proto",
    "filter_from_proto",
    "list_response",
    "page_request_from_proto",
    "payload_from_proto",
    "payload_to_proto",
    "recurrence_from_proto",
    "recurrence_to_proto",
    "sort_from_proto",
    "target_from_proto",
    "target_to_proto",
    "timestamp",
    "to_datetime",
    "update_from_proto",
]
