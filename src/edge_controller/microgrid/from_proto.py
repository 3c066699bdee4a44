"""Telemetry messages of the Microgrid API (v1alpha18) read straight into readings.

The controller streams every battery, battery inverter, PV inverter, EV charger and
limited meter at the API's
rate: at 200 inverters that is some 4 000 messages a second. Going through the
client's own objects (`ComponentDataSamples`, its enums, metric samples with their
issue lists) cost about 120 µs a message, the largest share of the controller's CPU
and of its reaction time while holding a target. The few fields a reading needs are
read here from the protobuf message itself, with the client's semantics: the newest
sample of each wanted metric, a simple value or an aggregate's average, bounds whose
ends are unset when unbounded (a range with lower > upper is dropped, as the client
drops it), state and error names as the client's enums name them (`READY`,
`RELAY_CLOSED`, `OVERTEMPERATURE`; `UNRECOGNIZED_n` for a number it does not know).

Pure: no I/O; `tests/microgrid/test_from_proto.py` checks it against the client's
conversion on messages the simulator builds.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from frequenz.api.common.v1alpha8.metrics import metrics_pb2
from frequenz.api.common.v1alpha8.microgrid.electrical_components import (
    electrical_components_pb2 as ec_pb2,
)
from frequenz.api.microgrid.v1alpha18 import microgrid_pb2
from frequenz.client.microgrid.component import ComponentErrorCode, ComponentStateCode
from frequenz.client.microgrid.metrics import Metric
from google.protobuf.timestamp_pb2 import Timestamp

from edge_controller.microgrid.telemetry import (
    BatteryReading,
    BoundEnds,
    EvChargerReading,
    InverterReading,
    MeterReading,
    ranges_from_bounds,
    soc_window,
)

BATTERY_METRICS = (Metric.BATTERY_SOC_PCT, Metric.DC_POWER, Metric.BATTERY_CAPACITY)
"""What the controller streams from a battery."""
INVERTER_METRICS = (Metric.AC_POWER_ACTIVE,)
"""What the controller streams from a battery or PV inverter."""
EV_CHARGER_METRICS = (Metric.AC_POWER_ACTIVE,)
"""What the controller streams from an EV charger (its cable state comes with the
state snapshot, which every message carries)."""
METER_METRICS = (Metric.AC_POWER_ACTIVE,)
"""What the controller streams from the grid meter."""

_SOC, _DC_POWER, _CAPACITY = (metric.value for metric in BATTERY_METRICS)
_AC_POWER = Metric.AC_POWER_ACTIVE.value
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# The client's own enums name the codes: the same names whatever the API's prefixes,
# and a number the client does not know stays UNRECOGNIZED_n, as it did.
_STATE_NAMES = {int(code.value): code.name for code in ComponentStateCode}
_DIAGNOSTIC_NAMES = {int(code.value): code.name for code in ComponentErrorCode}

Telemetry = ec_pb2.ElectricalComponentTelemetry


def stream_request(
    component_id: int, metrics: Iterable[Metric]
) -> microgrid_pb2.ReceiveElectricalComponentTelemetryStreamRequest:
    """The request for one component's telemetry, filtered to `metrics`."""
    request = microgrid_pb2.ReceiveElectricalComponentTelemetryStreamRequest
    return request(
        electrical_component_id=component_id,
        filter=request.ComponentTelemetryStreamFilter(metrics=[m.value for m in metrics]),
    )


def _time(stamp: Timestamp) -> datetime:
    return _EPOCH + timedelta(seconds=stamp.seconds, microseconds=stamp.nanos // 1000)


def _key(stamp: Timestamp) -> tuple[int, int]:
    return stamp.seconds, stamp.nanos


def _newest(message: Telemetry, wanted: frozenset[int]) -> dict[int, metrics_pb2.MetricSample]:
    """The newest sample of each wanted metric (the first on a tie)."""
    found: dict[int, metrics_pb2.MetricSample] = {}
    for sample in message.metric_samples:
        metric = sample.metric
        if metric not in wanted:
            continue
        held = found.get(metric)
        if held is None or _key(held.sample_time) < _key(sample.sample_time):
            found[metric] = sample
    return found


def _value(sample: metrics_pb2.MetricSample | None) -> float:
    if sample is None or not sample.HasField("value"):
        return math.nan
    variant = sample.value.WhichOneof("metric_value_variant")
    if variant == "simple_metric":
        return float(sample.value.simple_metric.value)
    if variant == "aggregated_metric":
        return float(sample.value.aggregated_metric.avg_value)
    return math.nan


def _ends(sample: metrics_pb2.MetricSample) -> list[BoundEnds]:
    ends: list[BoundEnds] = []
    for bounds in sample.bounds:
        lower = bounds.lower if bounds.HasField("lower") else None
        upper = bounds.upper if bounds.HasField("upper") else None
        if lower is not None and upper is not None and lower > upper:
            continue  # the client drops such bounds as invalid
        ends.append((lower, upper))
    return ends


def _states(message: Telemetry) -> tuple[frozenset[str], frozenset[str]]:
    """The state and error names of the newest state snapshot (empty if none)."""
    if not message.state_snapshots:
        return frozenset(), frozenset()
    latest = max(message.state_snapshots, key=lambda s: _key(s.origin_time))
    states = frozenset(_STATE_NAMES.get(s, f"UNRECOGNIZED_{s}") for s in latest.states)
    errors = frozenset(
        _DIAGNOSTIC_NAMES.get(e.diagnostic_code, f"UNRECOGNIZED_{e.diagnostic_code}")
        for e in latest.errors
    )
    return states, errors


_BATTERY = frozenset({_SOC, _DC_POWER, _CAPACITY})
_AC = frozenset({_AC_POWER})


def battery_reading(message: Telemetry) -> BatteryReading | None:
    """Read a battery's telemetry message; `None` if it holds none of its metrics.

    SoC bounds come with the SoC sample (its first range), power bounds with the DC
    power sample; a missing metric reads as NaN and missing bounds as unknown.
    `sampled_at` is the newest of the metric samples.
    """
    found = _newest(message, _BATTERY)
    if not found:
        return None
    soc = found.get(_SOC)
    power = found.get(_DC_POWER)
    soc_lower, soc_upper = soc_window(_ends(soc)) if soc else (math.nan, math.nan)
    states, errors = _states(message)
    return BatteryReading(
        component_id=message.electrical_component_id,
        sampled_at=_time(max((s.sample_time for s in found.values()), key=_key)),
        soc_pct=_value(soc),
        soc_lower_pct=soc_lower,
        soc_upper_pct=soc_upper,
        capacity_wh=_value(found.get(_CAPACITY)),
        power_w=_value(power),
        bounds=ranges_from_bounds(_ends(power)) if power else None,
        states=states,
        errors=errors,
    )


def inverter_reading(message: Telemetry) -> InverterReading | None:
    """Read an inverter's telemetry message; `None` if it holds no AC active power."""
    power = _newest(message, _AC).get(_AC_POWER)
    if power is None:
        return None
    states, errors = _states(message)
    return InverterReading(
        component_id=message.electrical_component_id,
        sampled_at=_time(power.sample_time),
        power_w=_value(power),
        bounds=ranges_from_bounds(_ends(power)),
        states=states,
        errors=errors,
    )


def ev_charger_reading(message: Telemetry) -> EvChargerReading | None:
    """Read an EV charger's telemetry message; `None` if it holds no AC active power.

    Its bounds are what it may take now (0..0 without a car, on the simulator and on
    chargers that report it so); the cable state is among the state names.
    """
    power = _newest(message, _AC).get(_AC_POWER)
    if power is None:
        return None
    states, errors = _states(message)
    return EvChargerReading(
        component_id=message.electrical_component_id,
        sampled_at=_time(power.sample_time),
        power_w=_value(power),
        bounds=ranges_from_bounds(_ends(power)),
        states=states,
        errors=errors,
    )


def meter_reading(message: Telemetry) -> MeterReading | None:
    """Read a meter's telemetry message; `None` if it holds no AC active power.

    The value is kept as the API gives it (passive sign convention: + flows down
    from the grid, i.e. import at the grid meter); a missing value reads as NaN.
    """
    power = _newest(message, _AC).get(_AC_POWER)
    if power is None:
        return None
    return MeterReading(
        component_id=message.electrical_component_id,
        sampled_at=_time(power.sample_time),
        power_w=_value(power),
    )
