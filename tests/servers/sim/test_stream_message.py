"""A stream's message updated in place says, byte for byte, what a fresh one would."""

from __future__ import annotations

import math
from datetime import timedelta

from frequenz.api.microgrid.v1 import microgrid_pb2 as pb1
from frequenz.api.microgrid.v1alpha18 import microgrid_pb2 as pb18
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_controller.power.bounds import Range
from edge_controller.servers.sim.api_v1 import component_data_parts, component_data_to_proto
from edge_controller.servers.sim.api_v1alpha18 import (
    METRIC_TO_PROTO,
    telemetry_parts,
    telemetry_to_proto,
)
from edge_controller.servers.sim.metrics import Metric
from edge_controller.servers.sim.model import ComponentSample, MetricValue, StateCode
from edge_controller.servers.sim.stream_message import StreamMessage
from tests.conftest import NOON
from tests.properties import examples

METRICS = (Metric.AC_ACTIVE_POWER, Metric.AC_REACTIVE_POWER, Metric.DC_POWER)
ends = st.one_of(st.floats(min_value=-1e6, max_value=1e6), st.sampled_from([-math.inf, math.inf]))
ranges = st.lists(st.tuples(ends, ends).map(lambda pair: Range(min(pair), max(pair))), max_size=2)
values = st.builds(
    MetricValue,
    metric=st.sampled_from(METRICS),
    value=st.floats(allow_nan=True, allow_infinity=False),
    bounds=ranges.map(tuple),
)
samples = st.builds(
    lambda offset_us, metrics, states, errors: ComponentSample(
        component_id=10,
        sampled_at=NOON + timedelta(microseconds=offset_us),
        metrics=tuple(metrics),
        states=tuple(states),
        errors=tuple(errors),
    ),
    st.integers(min_value=0, max_value=10**9),
    st.lists(values, min_size=1, max_size=3, unique_by=lambda v: v.metric),
    st.lists(st.sampled_from(StateCode), min_size=1, max_size=2),
    st.lists(st.sampled_from(["OVERTEMPERATURE", "UNDERVOLTAGE"]), max_size=1),
)
filters = st.frozensets(st.sampled_from(METRICS))
# Shapes repeat in a real stream (the same metrics tick after tick): often reuse one.
streams = st.lists(samples, min_size=1, max_size=12)


@settings(max_examples=examples(400), deadline=None)
@given(streams, filters)
def test_v1alpha18_updates_in_place_equal_fresh_messages(
    stream: list[ComponentSample], wanted: frozenset[Metric]
) -> None:
    numbers = frozenset(int(METRIC_TO_PROTO[m]) for m in wanted)

    def build(sample: ComponentSample) -> pb18.ReceiveElectricalComponentTelemetryStreamResponse:
        return pb18.ReceiveElectricalComponentTelemetryStreamResponse(
            telemetry=telemetry_to_proto(sample, numbers)
        )

    message = StreamMessage(build, telemetry_parts, lambda m: not wanted or m in wanted)
    # Each sample twice with new values: the second is the in-place path for sure.
    for sample in stream + [_moved(s) for s in stream]:
        updated = message.update(sample).SerializeToString(deterministic=True)
        assert updated == build(sample).SerializeToString(deterministic=True)


@settings(max_examples=examples(200), deadline=None)
@given(streams)
def test_v1_updates_in_place_equal_fresh_messages(stream: list[ComponentSample]) -> None:
    def build(sample: ComponentSample) -> pb1.ReceiveComponentDataStreamResponse:
        return pb1.ReceiveComponentDataStreamResponse(
            data=component_data_to_proto(sample, frozenset())
        )

    message = StreamMessage(build, component_data_parts, lambda _: True)
    for sample in stream + [_moved(s) for s in stream]:
        updated = message.update(sample).SerializeToString(deterministic=True)
        assert updated == build(sample).SerializeToString(deterministic=True)


def test_a_steady_stream_builds_its_message_once() -> None:
    def build(sample: ComponentSample) -> pb18.ReceiveElectricalComponentTelemetryStreamResponse:
        return pb18.ReceiveElectricalComponentTelemetryStreamResponse(
            telemetry=telemetry_to_proto(sample, frozenset())
        )

    message = StreamMessage(build, telemetry_parts, lambda _: True)
    for tick in range(20):
        sample = ComponentSample(
            10,
            NOON + timedelta(seconds=tick / 10),
            (MetricValue(Metric.AC_ACTIVE_POWER, -1000.0 * tick, (Range(-5e4, 5e4),)),),
            (StateCode.DISCHARGING,),
        )
        assert message.update(sample).telemetry.metric_samples[0].value.simple_metric.value == (
            -1000.0 * tick
        )
    assert message.builds == 1  # then a state change builds it again:
    message.update(ComponentSample(10, NOON, sample.metrics, (StateCode.ERROR,), ("X",)))
    assert message.builds == 2


def test_an_end_that_becomes_unbounded_is_left_unset() -> None:
    def build(sample: ComponentSample) -> pb18.ReceiveElectricalComponentTelemetryStreamResponse:
        return pb18.ReceiveElectricalComponentTelemetryStreamResponse(
            telemetry=telemetry_to_proto(sample, frozenset())
        )

    message = StreamMessage(build, telemetry_parts, lambda _: True)
    for lower in (-1e4, -math.inf):
        metric = MetricValue(Metric.AC_ACTIVE_POWER, 0.0, (Range(lower, 1e4),))
        response = message.update(ComponentSample(10, NOON, (metric,), (StateCode.READY,)))
        bounds = response.telemetry.metric_samples[0].bounds[0]
        assert bounds.HasField("lower") is math.isfinite(lower)
    assert message.builds == 1


def _moved(sample: ComponentSample) -> ComponentSample:
    """The same shape a tick later, every value and finite end changed."""
    return ComponentSample(
        sample.component_id,
        sample.sampled_at + timedelta(milliseconds=100),
        tuple(
            MetricValue(
                v.metric,
                v.value + 1.5,
                tuple(Range(r.lower - 1, r.upper + 1) for r in v.bounds),
            )
            for v in sample.metrics
        ),
        sample.states,
        sample.errors,
    )
