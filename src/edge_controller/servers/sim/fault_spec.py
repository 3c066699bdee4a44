"""A fault table: which fault, on which component, in which window.

A site file's `[[faults]]` and a faults file (`faults_file.py`) hold the same tables;
both read them with `read_fault`. The fault book (`faults.py`) pins them to times.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

from edge_controller.common.toml_reader import (
    Reader,
    checked,
    join,
    number,
    positive_integer,
    string,
)
from edge_controller.servers.sim.metrics import METRIC_NAMES


class FaultKind(StrEnum):
    """The faults the simulator can inject, each during a time window."""

    DELAY = "delay"
    """Control RPCs to the component answer only after `delay` seconds."""
    UNRESPONSIVE = "unresponsive"
    """Control RPCs to the component never answer (the client's deadline ends them)."""
    RPC_ERROR = "rpc_error"
    """Control RPCs to the component fail with the gRPC status `status`."""
    ERROR = "error"
    """The component enters the ERROR state with `error_code`; it stays there until
    acknowledged after the window ends."""
    NAN_METRICS = "nan_metrics"
    """The listed metrics (all if none) are reported as NaN."""
    DROP_STREAM = "drop_stream"
    """Telemetry streams end with UNAVAILABLE and new ones are refused."""
    NO_TELEMETRY = "no_telemetry"
    """Telemetry streams stay open but carry nothing."""


RPC_ERROR_STATUSES = frozenset(
    {"UNAVAILABLE", "INTERNAL", "DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED", "UNKNOWN", "ABORTED"}
)


@dataclass(frozen=True, slots=True)
class FaultSpec:
    """A fault on one component during `[start_s, until_s)` after the server starts."""

    component_id: int
    kind: FaultKind
    start_s: float = 0.0
    until_s: float = math.inf
    delay_s: float = 0.0
    status: str = "UNAVAILABLE"
    error_code: str = "UNKNOWN"
    metrics: tuple[str, ...] = ()


def _fault_kind(raw: object) -> str | None:
    return raw if isinstance(raw, str) and raw in {k.value for k in FaultKind} else None


FAULT_KEYS = frozenset(
    {"component", "kind", "from", "until", "delay", "status", "error_code", "metrics"}
)
"""The keys of a fault table, in a site file's `[[faults]]` and in a faults file."""


def read_fault(reader: Reader, data: object, path: str) -> FaultSpec | None:
    """Read one fault table at `path`; `None` (with problems noted) when it is bad.

    `from` and `until` are seconds after the simulator's start; the component is not
    checked against a site here (the caller knows which site).
    """
    if not isinstance(data, dict):
        reader.fail(path, "a table", data)
        return None
    reader.unknown_keys(data, set(FAULT_KEYS), path)
    component = reader.value(data, "component", path, positive_integer, "a component id")
    kind_name = reader.value(
        data, "kind", path, _fault_kind, f"one of {[k.value for k in FaultKind]}"
    )
    start = reader.value(
        data, "from", path, checked(number, lambda v: v >= 0), "seconds >= 0", default=0.0
    )
    until = reader.value(
        data, "until", path, checked(number, lambda v: v >= 0), "seconds >= 0", default=math.inf
    )
    delay = reader.value(
        data, "delay", path, checked(number, lambda v: v >= 0), "seconds >= 0", default=0.0
    )
    status = reader.value(
        data,
        "status",
        path,
        lambda raw: raw if isinstance(raw, str) and raw in RPC_ERROR_STATUSES else None,
        f"one of {sorted(RPC_ERROR_STATUSES)}",
        default="UNAVAILABLE",
    )
    error_code = reader.value(
        data, "error_code", path, string, "an error code name", default="UNKNOWN"
    )
    metrics = reader.value(
        data,
        "metrics",
        path,
        lambda raw: (
            tuple(raw)
            if isinstance(raw, list)
            and all(isinstance(m, str) and m.lower() in METRIC_NAMES for m in raw)
            else None
        ),
        f"a list of metric names, each one of {sorted(METRIC_NAMES)}",
        default=(),
    )
    if start is not None and until is not None and until <= start:
        reader.fail(join(path, "until"), f"a time after from ({start} s)", until)
        return None
    if (
        component is None
        or kind_name is None
        or start is None
        or until is None
        or delay is None
        or status is None
        or error_code is None
        or metrics is None
    ):
        return None
    return FaultSpec(
        component_id=component,
        kind=FaultKind(kind_name),
        start_s=start,
        until_s=until,
        delay_s=delay,
        status=status,
        error_code=error_code.upper(),
        metrics=metrics,
    )
