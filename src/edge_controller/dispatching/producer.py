"""Creating, reading, updating, listing and deleting dispatches: the producer side.

`DispatchProducer` is a small typed layer over `frequenz-client-dispatch`'s
`DispatchApiClient` for whoever *asks* for work (an operator's command line, the
market-bid actor), as opposed to the controller, which executes dispatches:

    async with DispatchProducer(url, microgrid_id=1, auth_key=key) as producer:
        dispatch_id = await producer.create_battery_power(-40_000, [11, 21], "NOW", None)

What it adds to the client:

- **Checks before sending**, raising `ValueError` with a message that starts with the
  argument's name: a finite power, a duration of whole seconds > 0 (or None for
  indefinite; the API carries seconds), a timezone-aware start in the future (or
  "NOW"), battery ids > 0.
- **Errors an operator can read**: every gRPC failure becomes a
  `DispatchProducerError` "CODE: the server's message" (e.g. "INVALID_ARGUMENT:
  start_time: ..."), with the code name also in `.code`. The client's raw
  `grpc.aio.AioRpcError`s never leave this module.
- **Plain results**: `DispatchSummary` (frozen) instead of the client's types, with
  where the dispatch stands when it was read (`schedule`: pending, running, ended, ...
  and its next start; see `schedule.py`); `list()` walks every page and returns the
  dispatches in id order.

The API key is only handed to the client (which sends it as gRPC metadata); it is
never part of a message, a repr or a log.

Times: the service rounds a start time to the nearest whole second, so pass whole
seconds when the exact start matters. "NOW" starts at the server's current second.
"""

from __future__ import annotations

import builtins
import json
import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any, Literal, TypeAlias

import grpc
from frequenz.client.common.microgrid import MicrogridId
from frequenz.client.common.microgrid.electrical_components import ElectricalComponentCategory
from frequenz.client.dispatch import DispatchApiClient
from frequenz.client.dispatch.types import (
    Dispatch,
    DispatchId,
    TargetCategories,
    TargetComponents,
    TargetIds,
)

from edge_controller.dispatching.schedule import DispatchSchedule, dispatch_schedule

BATTERY_POWER = "BATTERY_POWER"
"""The dispatch type the controller's BatteryPowerActor executes by default."""

Start: TypeAlias = datetime | Literal["NOW"]
"""When a dispatch starts: an aware datetime in the future, or "NOW"."""


class DispatchProducerError(Exception):
    """The dispatch service refused or failed a call: "CODE: the server's message".

    `code` is the gRPC status code's name (e.g. "INVALID_ARGUMENT", "UNAVAILABLE"),
    or None for a failure that did not come with one.
    """

    def __init__(self, message: str, *, code: str | None = None) -> None:
        """Describe the failure; `code` is the gRPC status code's name, if any."""
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class DispatchSummary:
    """A stored dispatch, reduced to what an operator reads.

    `target` is text: "ids:11,21" or "categories:BATTERY". `duration` None means
    indefinite. `payload` is as the service returns it: numbers come back as floats
    (being a dict, it makes a summary compare by value but not hashable).
    `schedule` is where the dispatch stood when it was read, and `end_time` the
    service's end (None: open-ended); neither takes part in comparisons (a summary
    compares by what was asked for, not by when it was read).
    """

    id: int
    type: str
    start: datetime
    duration: timedelta | None
    target: str
    payload: dict[str, Any]
    active: bool
    dry_run: bool
    schedule: DispatchSchedule | None = field(default=None, compare=False)
    end_time: datetime | None = field(default=None, compare=False)


def battery_target(batteries: Collection[int] | None) -> TargetComponents:
    """Return the target for `batteries`: these ids, or (None) the battery category.

    Raises:
        ValueError: an empty collection, or an id that is not an integer > 0.
    """
    if batteries is None:
        return TargetCategories(ElectricalComponentCategory.BATTERY)
    if len(batteries) == 0:
        raise ValueError("batteries: empty; pass None to target every battery (the category)")
    bad = [b for b in batteries if isinstance(b, bool) or not isinstance(b, int) or b <= 0]
    if bad:
        raise ValueError(f"batteries: expected battery ids > 0, got {bad!r}")
    return TargetIds(*sorted(batteries))


def battery_power_payload(power_w: float) -> dict[str, Any]:
    """Return a BATTERY_POWER payload, `{"power_w": W}` (+ charges, − discharges).

    Raises:
        ValueError: a power that is not a finite number.
    """
    if isinstance(power_w, bool) or not isinstance(power_w, int | float):
        raise ValueError(f"power_w: expected a power in W, got {power_w!r}")
    if not math.isfinite(power_w):
        raise ValueError(f"power_w: expected a finite power in W, got {power_w!r}")
    return {"power_w": float(power_w)}


def target_text(target: TargetComponents) -> str:
    """Return a target as text: "ids:11,21" or "categories:BATTERY,INVERTER"."""
    if isinstance(target, TargetIds):
        return "ids:" + ",".join(str(i) for i in sorted(target))
    names = sorted(category.target.name for category in target)
    return "categories:" + ",".join(names)


def summarize(dispatch: Dispatch, now: datetime | None = None) -> DispatchSummary:
    """Reduce a client `Dispatch` to a `DispatchSummary`, its schedule as of `now`."""
    return DispatchSummary(
        id=int(dispatch.id),
        type=dispatch.type,
        start=dispatch.start_time,
        duration=dispatch.duration,
        target=target_text(dispatch.target),
        payload=dict(dispatch.payload),
        active=dispatch.active,
        dry_run=dispatch.dry_run,
        schedule=dispatch_schedule(dispatch, now or datetime.now(UTC)),
        end_time=dispatch.end_time,
    )


def _check_start(start: Start, now: datetime | None = None) -> None:
    if isinstance(start, str):
        if start != "NOW":
            raise ValueError(f"start: expected 'NOW' or a timezone-aware datetime, got {start!r}")
        return
    if not isinstance(start, datetime):
        raise ValueError(
            f"start: expected 'NOW' or a timezone-aware datetime, got {type(start).__name__}"
        )
    if start.tzinfo is None or start.utcoffset() is None:
        raise ValueError(
            f"start: expected a timezone-aware datetime, got {start.isoformat()} without a zone"
        )
    now = now or datetime.now(start.tzinfo)
    if start <= now:
        raise ValueError(
            f"start: {start.isoformat()} is not in the future (now {now.isoformat()}); "
            "use 'NOW' to start at once"
        )


def _check_duration(duration: timedelta | None) -> None:
    if duration is None:
        return
    if not isinstance(duration, timedelta):
        raise ValueError(
            f"duration: expected a timedelta or None (indefinite), got {type(duration).__name__}"
        )
    seconds = duration.total_seconds()
    if seconds <= 0 or duration.microseconds != 0:
        raise ValueError(
            "duration: expected a whole number of seconds > 0, or None (indefinite), "
            f"got {seconds:g} s"
        )


def check_schedule(start: Start, duration: timedelta | None) -> None:
    """Check a start and a duration as `create` does, before anything is sent.

    Raises:
        ValueError: "start: ..." or "duration: ..." (see `create`).
    """
    _check_start(start)
    _check_duration(duration)


def _check_payload(payload: Mapping[str, Any]) -> None:
    if not isinstance(payload, Mapping):
        raise ValueError(f"payload: expected a mapping, got {type(payload).__name__}")
    keys = [k for k in payload if not isinstance(k, str)]
    if keys:
        raise ValueError(f"payload: expected string keys, got {keys!r}")
    try:
        json.dumps(payload, allow_nan=False)
    except (TypeError, ValueError) as error:
        raise ValueError(f"payload: expected JSON values with finite numbers: {error}") from None


def _check_id(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= 2**63 - 1:
        raise ValueError(f"{name}: expected an id > 0, got {value!r}")


def _rpc_error(error: grpc.aio.AioRpcError) -> DispatchProducerError:
    code = error.code()
    name = code.name if code is not None else "UNKNOWN"
    details = error.details() or "(no message)"
    return DispatchProducerError(f"{name}: {details}", code=name)


class DispatchProducer:
    """Creates, lists and deletes one microgrid's dispatches; see the module docstring.

    Use it as `async with DispatchProducer(...) as producer:`, or call `close()`.
    `call_timeout` bounds every call (a service that does not answer in time gives a
    `DispatchProducerError` "DEADLINE_EXCEEDED: ...").
    """

    def __init__(
        self,
        url: str,
        microgrid_id: int,
        auth_key: str,
        *,
        call_timeout: timedelta = timedelta(seconds=10),
    ) -> None:
        """Prepare a client for the Dispatch API at `url` (e.g. `grpc://h:p?ssl=false`).

        Raises:
            ValueError: a URL the client cannot use ("url: ..."), a microgrid id that is
                not > 0, an empty key, or a call timeout that is not > 0.
        """
        _check_id("microgrid_id", microgrid_id)
        if not auth_key:
            raise ValueError("auth_key: empty; expected the API key")
        if call_timeout <= timedelta(0):
            raise ValueError(f"call_timeout: expected > 0, got {call_timeout}")
        self.url = url
        self.microgrid_id = microgrid_id
        try:
            self._client = DispatchApiClient(
                server_url=url,
                auth_key=auth_key,
                call_timeout=call_timeout,
            )
        except ValueError as error:
            reason = error.args[0] if error.args else str(error)
            raise ValueError(f"url: {reason}") from None

    def __repr__(self) -> str:
        """Name the service and the microgrid, never the key."""
        return f"DispatchProducer(url={self.url!r}, microgrid_id={self.microgrid_id})"

    async def create(
        self,
        dispatch_type: str,
        payload: Mapping[str, Any],
        target: TargetComponents,
        start: Start,
        duration: timedelta | None,
        *,
        dry_run: bool = False,
        active: bool = True,
    ) -> DispatchSummary:
        """Create a dispatch of any type; return it as stored (start rounded to seconds).

        Raises:
            ValueError: an empty type, an empty target, a start not in the future or
                not timezone-aware, a duration that is not whole seconds > 0, or a
                payload that is not JSON (string keys, finite numbers).
            DispatchProducerError: the service refused or failed the call.
        """
        if not isinstance(dispatch_type, str) or not dispatch_type.strip():
            raise ValueError(f"dispatch_type: expected a non-empty name, got {dispatch_type!r}")
        if not isinstance(target, TargetIds | TargetCategories) or len(target) == 0:
            raise ValueError(f"target: expected TargetIds or TargetCategories, got {target!r}")
        _check_start(start)
        _check_duration(duration)
        _check_payload(payload)
        try:
            created = await self._client.create(
                microgrid_id=MicrogridId(self.microgrid_id),
                type=dispatch_type,
                start_time=start,
                duration=duration,
                target=target,
                active=active,
                dry_run=dry_run,
                payload=dict(payload),
            )
        except grpc.aio.AioRpcError as error:
            raise _rpc_error(error) from None
        except ValueError as error:
            # The client's own start checks, e.g. a start that passed ours but is past now.
            if "start_time" in str(error):
                raise ValueError(f"start: {error}") from None
            raise
        return summarize(created)

    async def create_battery_power(
        self,
        power_w: float,
        batteries: Collection[int] | None,
        start: Start,
        duration: timedelta | None,
        *,
        dry_run: bool = False,
        dispatch_type: str = BATTERY_POWER,
    ) -> int:
        """Ask `batteries` (None: every battery) to hold `power_w` W; return the new id.

        + charges, − discharges. `duration` None holds until the dispatch is deleted.

        Raises:
            ValueError: see `battery_power_payload`, `battery_target` and `create`.
            DispatchProducerError: the service refused or failed the call.
        """
        payload = battery_power_payload(power_w)
        target = battery_target(batteries)
        created = await self.create(
            dispatch_type, payload, target, start, duration, dry_run=dry_run
        )
        return created.id

    async def set_battery_power(self, dispatch_id: int, power_w: float) -> DispatchSummary:
        """Change a battery-power dispatch's power in place; return it as stored.

        A running dispatch takes the new power at once, without the stop and start a
        delete and a new create would make.

        Raises:
            ValueError: see `battery_power_payload`; an id that is not > 0.
            DispatchProducerError: e.g. "NOT_FOUND: ..." for an unknown id.
        """
        _check_id("dispatch_id", dispatch_id)
        payload = battery_power_payload(power_w)
        try:
            updated = await self._client.update(
                microgrid_id=MicrogridId(self.microgrid_id),
                dispatch_id=DispatchId(dispatch_id),
                new_fields={"payload": payload},
            )
        except grpc.aio.AioRpcError as error:
            raise _rpc_error(error) from None
        return summarize(updated)

    async def get(self, dispatch_id: int) -> DispatchSummary:
        """Return one dispatch as stored.

        Raises:
            ValueError: an id that is not > 0.
            DispatchProducerError: e.g. "NOT_FOUND: ..." for an unknown (or deleted) id.
        """
        _check_id("dispatch_id", dispatch_id)
        try:
            found = await self._client.get(
                microgrid_id=MicrogridId(self.microgrid_id), dispatch_id=DispatchId(dispatch_id)
            )
        except grpc.aio.AioRpcError as error:
            raise _rpc_error(error) from None
        return summarize(found)

    async def update(
        self,
        dispatch_id: int,
        *,
        payload: Mapping[str, Any] | None = None,
        target: TargetComponents | None = None,
        start: datetime | None = None,
        duration: timedelta | Literal["KEEP"] | None = "KEEP",
        active: bool | None = None,
    ) -> DispatchSummary:
        """Change the given fields of a dispatch in place; return it as stored.

        Only what is passed changes (`duration` None makes it indefinite; leave it out
        to keep it). `payload` replaces the whole payload. A running dispatch takes the
        change at once. The type and the dry-run flag cannot be updated (the API).

        Raises:
            ValueError: nothing to change, an id that is not > 0, a start that is not
                timezone-aware, a duration that is not whole seconds > 0, a payload
                that is not JSON, an empty target.
            DispatchProducerError: e.g. "NOT_FOUND: ..." for an unknown id,
                "INVALID_ARGUMENT: start_time: ..." for a start long past.
        """
        _check_id("dispatch_id", dispatch_id)
        new_fields: dict[str, Any] = {}
        if payload is not None:
            _check_payload(payload)
            new_fields["payload"] = dict(payload)
        if target is not None:
            if not isinstance(target, TargetIds | TargetCategories) or len(target) == 0:
                raise ValueError(f"target: expected TargetIds or TargetCategories, got {target!r}")
            new_fields["target"] = target
        if start is not None:
            if start.tzinfo is None or start.utcoffset() is None:
                raise ValueError(
                    f"start: expected a timezone-aware datetime, got {start.isoformat()} "
                    "without a zone"
                )
            new_fields["start_time"] = start
        if duration != "KEEP":
            _check_duration(duration)
            new_fields["duration"] = duration
        if active is not None:
            new_fields["is_active"] = active
        if not new_fields:
            raise ValueError("update: nothing to change")
        try:
            updated = await self._client.update(
                microgrid_id=MicrogridId(self.microgrid_id),
                dispatch_id=DispatchId(dispatch_id),
                new_fields=new_fields,
            )
        except grpc.aio.AioRpcError as error:
            raise _rpc_error(error) from None
        return summarize(updated)

    async def list(self) -> builtins.list[DispatchSummary]:
        """Return every dispatch of the microgrid (all pages), in id order.

        Raises:
            DispatchProducerError: the service refused or failed the call.
        """
        found: builtins.list[DispatchSummary] = []
        try:
            async for page in self._client.list(microgrid_id=MicrogridId(self.microgrid_id)):
                found.extend(summarize(dispatch) for dispatch in page)
        except grpc.aio.AioRpcError as error:
            raise _rpc_error(error) from None
        return sorted(found, key=lambda summary: summary.id)

    async def delete(self, dispatch_id: int) -> None:
        """Delete a dispatch (a running one stops at once).

        Raises:
            ValueError: an id that is not > 0.
            DispatchProducerError: e.g. "NOT_FOUND: ..." for an unknown id.
        """
        _check_id("dispatch_id", dispatch_id)
        try:
            await self._client.delete(
                microgrid_id=MicrogridId(self.microgrid_id), dispatch_id=DispatchId(dispatch_id)
            )
        except grpc.aio.AioRpcError as error:
            raise _rpc_error(error) from None

    async def close(self) -> None:
        """Close the connection."""
        await self._client.disconnect()

    async def __aenter__(self) -> DispatchProducer:
        """Return the producer (the client connects lazily)."""
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Close the connection."""
        await self.close()


def payload_text(payload: Mapping[str, Any]) -> str:
    """Return a payload as compact JSON (for one-line output)."""
    return json.dumps(payload, separators=(",", ":"), sort_keys=True, default=str)


__all__ = [
    "BATTERY_POWER",
    "DispatchProducer",
    "DispatchProducerError",
    "DispatchSummary",
    "Start",
    "battery_power_payload",
    "battery_target",
    "check_schedule",
    "payload_text",
    "summarize",
    "target_text",
]
