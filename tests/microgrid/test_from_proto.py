"""Telemetry messages read straight from protobuf, as the client would read them."""

import math
import struct
from collections.abc import Sequence
from datetime import datetime, timedelta

from frequenz.api.common.v1alpha8.metrics import bounds_pb2, metrics_pb2
from frequenz.api.common.v1alpha8.microgrid.electrical_components import (
    electrical_components_pb2 as ec_pb2,
)
from frequenz.client.microgrid.component import ComponentErrorCode, ComponentStateCode
from frequenz.client.microgrid.metrics import Metric
from google.protobuf.timestamp_pb2 import Timestamp
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_controller.microgrid.from_proto import (
    Telemetry,
    battery_reading,
    ev_charger_reading,
    inverter_reading,
    meter_reading,
)
from edge_controller.microgrid.telemetry import ComponentState, EvCable, MeterReading
from edge_controller.power.bounds import Range, merge
from edge_controller.servers.sim.api_v1alpha18 import METRIC_TO_PROTO, telemetry_to_proto
from edge_controller.servers.sim.metrics import Metric as SimMetric
from edge_controller.servers.sim.model import ComponentSample, MetricValue, StateCode
from tests.conftest import NOON
from tests.properties import examples

Ends = tuple[float | None, float | None]


def f32(value: float) -> float:
    return float(struct.unpack("f", struct.pack("f", value))[0])


def stamp(at: datetime) -> Timestamp:
    message = Timestamp()
    message.FromDatetime(at)
    return message


def sample(
    metric: Metric,
    value: float | None,
    bounds: Sequence[Ends] = (),
    at: datetime = NOON,
) -> metrics_pb2.MetricSample:
    message = metrics_pb2.MetricSample(sample_time=stamp(at), metric=metric.value)
    if value is not None:
        message.value.simple_metric.value = value
    for lower, upper in bounds:
        ends = {"lower": lower, "upper": upper}
        message.bounds.append(bounds_pb2.Bounds(**{k: v for k, v in ends.items() if v is not None}))
    return message


def message(
    cid: int,
    *samples: metrics_pb2.MetricSample,
    states: Sequence[int] = (),
    errors: Sequence[int] = (),
) -> Telemetry:
    telemetry = ec_pb2.ElectricalComponentTelemetry(
        electrical_component_id=cid, metric_samples=list(samples)
    )
    if states or errors:
        telemetry.state_snapshots.append(
            ec_pb2.ElectricalComponentStateSnapshot(
                origin_time=stamp(NOON),
                states=[ec_pb2.ElectricalComponentStateCode.ValueType(c) for c in states],
                errors=[
                    ec_pb2.ElectricalComponentDiagnostic(
                        diagnostic_code=ec_pb2.ElectricalComponentDiagnosticCode.ValueType(e)
                    )
                    for e in errors
                ],
            )
        )
    return telemetry


def test_battery_message_becomes_a_reading_with_soc_and_power_bounds() -> None:
    reading = battery_reading(
        message(
            11,
            sample(Metric.BATTERY_SOC_PCT, 50.0, [(10, 90)]),
            sample(
                Metric.DC_POWER,
                -1000.0,
                [(-250_000, -1_000), (1_000, None)],
            ),
            sample(Metric.BATTERY_CAPACITY, 500_000.0),
            sample(Metric.BATTERY_TEMPERATURE, 25.0),
            states=[ComponentStateCode.DISCHARGING.value, ComponentStateCode.READY.value],
        )
    )
    assert reading is not None
    assert reading.component_id == 11
    assert reading.sampled_at == NOON
    assert (reading.soc_pct, reading.soc_lower_pct, reading.soc_upper_pct) == (50.0, 10.0, 90.0)
    assert reading.capacity_wh == 500_000.0
    assert reading.power_w == -1000.0
    assert reading.bounds == (Range(-250_000, -1_000), Range(1_000, math.inf))
    assert reading.states == {"DISCHARGING", "READY"}
    assert reading.errors == frozenset()


def test_nan_values_are_kept_and_nan_bounds_are_unknown() -> None:
    reading = battery_reading(
        message(
            11,
            sample(Metric.BATTERY_SOC_PCT, math.nan, [(10, 90)]),
            sample(Metric.DC_POWER, math.nan, [(math.nan, math.nan)]),
        )
    )
    assert reading is not None
    assert math.isnan(reading.soc_pct)
    assert math.isnan(reading.power_w)
    assert math.isnan(reading.capacity_wh)  # missing metric: unknown
    assert reading.bounds is None


def test_missing_values_and_bounds_read_as_unknown() -> None:
    reading = battery_reading(message(11, sample(Metric.BATTERY_CAPACITY, None)))
    assert reading is not None
    assert math.isnan(reading.capacity_wh)
    assert math.isnan(reading.soc_pct)
    assert math.isnan(reading.soc_lower_pct)
    assert math.isnan(reading.soc_upper_pct)
    assert reading.bounds is None
    assert reading.states == frozenset()


def test_a_message_without_the_wanted_metrics_gives_no_reading() -> None:
    assert battery_reading(message(11, sample(Metric.DC_VOLTAGE, 800.0))) is None
    assert inverter_reading(message(10, sample(Metric.DC_POWER, 0.0))) is None
    assert battery_reading(message(11)) is None


def test_sampled_at_is_the_newest_metric_sample() -> None:
    later = NOON + timedelta(seconds=1)
    reading = battery_reading(
        message(11, sample(Metric.BATTERY_SOC_PCT, 50.0), sample(Metric.DC_POWER, 0.0, at=later))
    )
    assert reading is not None
    assert reading.sampled_at == later


def test_inverter_message_with_errors_and_an_unknown_state_code() -> None:
    reading = inverter_reading(
        message(
            10,
            sample(Metric.AC_POWER_ACTIVE, -968.0, [(-250_000, 250_000)]),
            states=[ComponentStateCode.ERROR.value, 999],
            errors=[ComponentErrorCode.OVERTEMPERATURE.value],
        )
    )
    assert reading is not None
    assert reading.power_w == -968.0
    assert reading.bounds == (Range(-250_000, 250_000),)
    assert reading.states == {"ERROR", "UNRECOGNIZED_999"}
    assert reading.errors == {"OVERTEMPERATURE"}


def test_a_meter_message_becomes_a_meter_reading() -> None:
    def meter(value: float | None, metric: Metric = Metric.AC_POWER_ACTIVE) -> Telemetry:
        return message(2, sample(metric, value))

    assert meter_reading(meter(12_500.0)) == MeterReading(2, NOON, 12_500.0)
    unknown = meter_reading(meter(None))
    assert unknown is not None
    assert math.isnan(unknown.power_w)
    assert meter_reading(meter(1.0, Metric.AC_VOLTAGE)) is None


def test_a_battery_message_carries_its_state() -> None:
    reading = battery_reading(
        message(11, sample(Metric.DC_POWER, 0.0), states=[ComponentStateCode.STANDBY.value])
    )
    assert reading is not None
    assert reading.state is ComponentState.STANDBY


def test_an_inverted_range_is_dropped_as_the_client_drops_it() -> None:
    reading = inverter_reading(
        message(10, sample(Metric.AC_POWER_ACTIVE, 0.0, [(5_000, -5_000), (-1_000, 1_000)]))
    )
    assert reading is not None
    assert reading.bounds == (Range(-1_000, 1_000),)


ends = st.one_of(st.none(), st.floats(min_value=-1e6, max_value=1e6))
battery_samples = st.builds(
    lambda soc, soc_bounds, power, power_bounds, states, offset_ms: ComponentSample(
        component_id=11,
        sampled_at=NOON + timedelta(milliseconds=offset_ms),
        metrics=(
            MetricValue(SimMetric.BATTERY_SOC_PCT, soc, soc_bounds),
            MetricValue(SimMetric.DC_POWER, power, power_bounds),
            MetricValue(SimMetric.BATTERY_CAPACITY, 500_000.0),
            MetricValue(SimMetric.BATTERY_TEMPERATURE, 25.0),
        ),
        states=tuple(states),
    ),
    st.floats(min_value=0, max_value=100),
    st.just((Range(10.0, 90.0),)),
    st.floats(allow_nan=True, allow_infinity=False),
    st.lists(
        st.tuples(st.floats(-1e6, 0), st.floats(0, 1e6)).map(lambda p: Range(*p)),
        max_size=2,
    ).map(tuple),
    st.lists(st.sampled_from(StateCode), min_size=1, max_size=2, unique=True),
    st.integers(min_value=0, max_value=10**6),
)


@settings(max_examples=examples(300), deadline=None)
@given(battery_samples)
def test_what_the_simulator_sends_is_what_the_controller_reads(sample_: ComponentSample) -> None:
    """Every field the simulator puts in a battery's message comes back in the reading."""
    wanted = frozenset(
        METRIC_TO_PROTO[m]
        for m in (SimMetric.BATTERY_SOC_PCT, SimMetric.DC_POWER, SimMetric.BATTERY_CAPACITY)
    )
    reading = battery_reading(telemetry_to_proto(sample_, wanted))
    assert reading is not None
    soc, power, capacity = (sample_.metrics[i] for i in range(3))
    assert reading.sampled_at == sample_.sampled_at
    assert reading.soc_pct == f32(soc.value)  # the API carries 32-bit floats
    assert (reading.soc_lower_pct, reading.soc_upper_pct) == (10.0, 90.0)
    assert reading.capacity_wh == capacity.value
    assert reading.power_w == f32(power.value) or math.isnan(power.value)
    assert math.isnan(reading.power_w) is math.isnan(power.value)
    expected = merge(Range(f32(r.lower), f32(r.upper)) for r in power.bounds)
    assert reading.bounds == (expected or None)
    assert reading.states == {state.name for state in sample_.states}


def test_an_ev_charger_message_carries_its_bounds_and_cable_state() -> None:
    plugged = ev_charger_reading(
        message(
            80,
            sample(Metric.AC_POWER_ACTIVE, 11_000.0, [(0, 22_000)]),
            states=[
                ComponentStateCode.CHARGING.value,
                ComponentStateCode.EV_CHARGING_CABLE_LOCKED_AT_EV.value,
            ],
        )
    )
    assert plugged is not None
    assert (plugged.power_w, plugged.bounds) == (11_000.0, (Range(0, 22_000),))
    assert plugged.state is ComponentState.CHARGING
    assert plugged.cable is EvCable.LOCKED_AT_EV
    assert plugged.cable.car_connected is True
    empty = ev_charger_reading(
        message(
            80,
            sample(Metric.AC_POWER_ACTIVE, 0.0, [(0, 0)]),
            states=[
                ComponentStateCode.READY.value,
                ComponentStateCode.EV_CHARGING_CABLE_PLUGGED_AT_STATION.value,
            ],
        )
    )
    assert empty is not None
    assert empty.bounds == (Range(0, 0),)
    assert empty.cable.car_connected is False
    silent = ev_charger_reading(message(80, sample(Metric.AC_POWER_ACTIVE, 0.0)))
    assert silent is not None
    assert silent.cable is EvCable.UNKNOWN
    assert silent.cable.car_connected is None
    assert ev_charger_reading(message(80, sample(Metric.DC_POWER, 5.0))) is None
