import math
from datetime import datetime, timedelta

from frequenz.client.microgrid import Lifetime
from frequenz.client.microgrid.component import (
    ComponentConnection,
    ComponentDataSamples,
    ComponentErrorCode,
    ComponentStateCode,
    ComponentStateSample,
)
from frequenz.client.microgrid.metrics import Bounds, Metric, MetricSample

from edge_controller.microgrid.from_client import battery_reading, graph_inputs, inverter_reading
from edge_controller.power.bounds import Range
from tests.conftest import NOON, component_id


def sample(
    metric: Metric,
    value: float | None,
    bounds: list[Bounds] | None = None,
    at: datetime = NOON,
) -> MetricSample:
    return MetricSample(sampled_at=at, metric=metric, value=value, bounds=bounds or [])


def message(
    cid: int, *samples: MetricSample, states: list[ComponentStateSample] | None = None
) -> ComponentDataSamples:
    return ComponentDataSamples(
        component_id=component_id(cid), metric_samples=list(samples), states=states or []
    )


def state(
    *codes: ComponentStateCode | int, errors: frozenset[ComponentErrorCode | int] = frozenset()
) -> ComponentStateSample:
    return ComponentStateSample(
        sampled_at=NOON, states=frozenset(codes), warnings=frozenset(), errors=errors
    )


def test_battery_message_becomes_a_reading_with_soc_and_power_bounds() -> None:
    reading = battery_reading(
        message(
            11,
            sample(Metric.BATTERY_SOC_PCT, 50.0, [Bounds(lower=10, upper=90)]),
            sample(
                Metric.DC_POWER,
                -1000.0,
                [Bounds(lower=-250_000, upper=-1_000), Bounds(lower=1_000, upper=None)],
            ),
            sample(Metric.BATTERY_CAPACITY, 500_000.0),
            sample(Metric.BATTERY_TEMPERATURE, 25.0),
            states=[state(ComponentStateCode.DISCHARGING, ComponentStateCode.READY)],
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
            sample(Metric.BATTERY_SOC_PCT, math.nan, [Bounds(lower=10, upper=90)]),
            sample(Metric.DC_POWER, math.nan, [Bounds(lower=math.nan, upper=math.nan)]),
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
            sample(Metric.AC_POWER_ACTIVE, -968.0, [Bounds(lower=-250_000, upper=250_000)]),
            states=[
                state(
                    ComponentStateCode.ERROR,
                    999,
                    errors=frozenset({ComponentErrorCode.OVERTEMPERATURE}),
                )
            ],
        )
    )
    assert reading is not None
    assert reading.power_w == -968.0
    assert reading.bounds == (Range(-250_000, 250_000),)
    assert reading.states == {"ERROR", "UNRECOGNIZED_999"}
    assert reading.errors == {"OVERTEMPERATURE"}


def test_graph_inputs_drop_connections_not_operational_now() -> None:
    ended = Lifetime(start=NOON - timedelta(days=2), end=NOON - timedelta(days=1))
    connections = [
        ComponentConnection(source=component_id(1), destination=component_id(2)),
        ComponentConnection(
            source=component_id(2), destination=component_id(3), operational_lifetime=ended
        ),
    ]
    _, links = graph_inputs([], connections, NOON)
    assert links == [(1, 2)]
