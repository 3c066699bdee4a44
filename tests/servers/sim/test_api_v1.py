"""The v1 Microgrid API of the simulator, through the generated async stub on loopback.

Time moves by hand: the server reads a `ManualClock`; after advancing it, `tick()`
steps the model and publishes telemetry at once, so no test waits for real seconds.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import grpc
import pytest
from frequenz.api.common.v1.grid import delivery_area_pb2
from frequenz.api.common.v1.metrics import bounds_pb2
from frequenz.api.common.v1.metrics import metric_sample_pb2 as metrics
from frequenz.api.common.v1.microgrid import microgrid_pb2
from frequenz.api.common.v1.microgrid.components import (
    battery_pb2,
    ev_charger_pb2,
    inverter_pb2,
)
from frequenz.api.common.v1.microgrid.components import components_pb2 as comp
from frequenz.api.common.v1.microgrid.sensors import sensors_pb2
from frequenz.api.microgrid.v1 import microgrid_pb2 as pb
from frequenz.api.microgrid.v1 import microgrid_pb2_grpc as pb_grpc
from google.protobuf import empty_pb2
from google.protobuf.descriptor import MethodDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass

from edge_controller.common.clock import ManualClock
from edge_controller.servers.sim.fault_spec import FaultKind
from edge_controller.servers.sim.metrics import Metric
from edge_controller.servers.sim.server import SimulatorServer
from edge_controller.servers.sim.site import SensorKind, SensorSpec, SiteSpec

if TYPE_CHECKING:
    from frequenz.api.microgrid.v1.microgrid_pb2_grpc import MicrogridAsyncStub

SITE_FILE = Path(__file__).resolve().parents[3] / "config" / "sim-site.toml"
NOON = datetime(2026, 6, 21, 12, 0, tzinfo=UTC)
GRID, METER, LOAD, PV, WIND, EV, WEATHER = 1, 2, 70, 50, 60, 80, 100
INVERTER_A, BATTERY_A, INVERTER_B, INVERTER_C = 10, 11, 20, 30
AC_POWER = metrics.Metric.METRIC_AC_ACTIVE_POWER
Validity = pb.ComponentBoundsValidityDuration

UNSPECIFIED = Validity.COMPONENT_BOUNDS_VALIDITY_DURATION_UNSPECIFIED

_R = TypeVar("_R", bound=Message)
Stream = grpc.aio.UnaryStreamCall[Any, _R]

# ------------------------------------------------------------------ fixtures


@pytest.fixture
def server(sim_server: SimulatorServer) -> SimulatorServer:
    """The shared simulator fixture (tests/conftest.py), under this module's name."""
    return sim_server


@pytest.fixture
async def stub(server: SimulatorServer) -> AsyncIterator[MicrogridAsyncStub]:
    async with grpc.aio.insecure_channel(server.address) as channel:
        yield pb_grpc.MicrogridStub(channel)


# ------------------------------------------------------------------ helpers


async def status_of(call: Callable[[], Awaitable[object]]) -> grpc.StatusCode:
    """Return the status code a call fails with (failing the test if it succeeds)."""
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call()
    return caught.value.code()


async def next_message(stream: Stream[_R]) -> _R:
    """Return the stream's next message (the iterator form is typed; `read()` is not)."""
    return await anext(aiter(stream))


async def drain(stream: Stream[_R]) -> None:
    """Read a stream to its end, within a bound, so its final status surfaces."""
    async with asyncio.timeout(5):
        async for _message in stream:
            pass


async def subscribed(server: SimulatorServer, count: int) -> None:
    """Wait until `count` streams are open on the server, so a tick reaches them."""
    async with asyncio.timeout(5):
        # Polled: the service signals nothing when a stream subscribes.
        while server.service.subscriber_count() < count:
            await asyncio.sleep(0.01)


async def read_until(
    server: SimulatorServer, stream: Stream[_R], accept: Callable[[_R], bool]
) -> _R:
    """Tick and read until a message `accept`s; older queued samples are skipped."""
    async with asyncio.timeout(5):
        while True:
            server.service.tick()
            message = await next_message(stream)
            if accept(message):
                return message


async def component_data(
    server: SimulatorServer,
    stub: MicrogridAsyncStub,
    component_id: int,
    accept: Callable[[comp.ComponentData], bool] = lambda _data: True,
) -> comp.ComponentData:
    """Open a stream of all metrics of a component and return the first accepted data."""
    call = stub.ReceiveComponentDataStream(
        pb.ReceiveComponentDataStreamRequest(component_id=component_id)
    )
    try:
        await subscribed(server, server.service.subscriber_count() + 1)
        response = await read_until(server, call, lambda r: accept(r.data))
        return response.data
    finally:
        call.cancel()


def value_of(data: comp.ComponentData, metric: metrics.Metric.ValueType) -> float:
    """Return the (only) value of `metric` in a data message."""
    (value,) = (s.value.simple_metric.value for s in data.metric_samples if s.metric == metric)
    return value


def states_of(data: comp.ComponentData) -> list[comp.ComponentStateCode.ValueType]:
    return list(data.states[0].states)


async def set_active(
    stub: MicrogridAsyncStub, component_id: int, power_w: float, lifetime_s: int | None = None
) -> pb.SetComponentPowerActiveResponse:
    return await stub.SetComponentPowerActive(
        pb.SetComponentPowerActiveRequest(
            component_id=component_id, power=power_w, request_lifetime=lifetime_s
        )
    )


def step(server: SimulatorServer, clock: ManualClock, seconds: float) -> None:
    """Move time and step the model synchronously."""
    clock.advance(seconds)
    server.service.tick()


# ------------------------------------------------------------------ metadata


async def test_metadata_describes_the_site(stub: MicrogridAsyncStub) -> None:
    microgrid = (await stub.GetMicrogridMetadata(empty_pb2.Empty())).microgrid

    assert (microgrid.id, microgrid.enterprise_id) == (1, 1)
    assert microgrid.name == "Lindenhof demo site"
    assert microgrid.delivery_area.code == "10YDE-EON------1"
    assert (
        microgrid.delivery_area.code_type
        == delivery_area_pb2.EnergyMarketCodeType.ENERGY_MARKET_CODE_TYPE_EUROPE_EIC
    )
    assert microgrid.location.latitude == pytest.approx(52.52)
    assert microgrid.location.longitude == pytest.approx(13.405)
    assert microgrid.location.country_code == "DE"
    assert microgrid.status == microgrid_pb2.MicrogridStatus.MICROGRID_STATUS_ACTIVE
    assert microgrid.create_timestamp.ToDatetime(tzinfo=UTC) == NOON


async def test_components_carry_category_metadata_and_rated_bounds(
    stub: MicrogridAsyncStub,
) -> None:
    listed = (await stub.ListComponents(pb.ListComponentsRequest())).components
    by_id = {c.id: c for c in listed}
    category = comp.ComponentCategory

    assert sorted(by_id) == [1, 2, 10, 11, 20, 21, 30, 31, 40, 41, 50, 60, 70, 80]
    assert by_id[GRID].category == category.COMPONENT_CATEGORY_GRID
    assert by_id[GRID].category_type.grid.rated_fuse_current == 1600
    assert by_id[METER].category == by_id[LOAD].category == category.COMPONENT_CATEGORY_METER
    assert by_id[INVERTER_A].category == by_id[PV].category == category.COMPONENT_CATEGORY_INVERTER
    assert by_id[INVERTER_A].category_type.inverter.type == inverter_pb2.INVERTER_TYPE_BATTERY
    assert by_id[PV].category_type.inverter.type == inverter_pb2.INVERTER_TYPE_SOLAR
    assert by_id[BATTERY_A].category == category.COMPONENT_CATEGORY_BATTERY
    assert by_id[BATTERY_A].category_type.battery.type == battery_pb2.BATTERY_TYPE_LI_ION
    assert by_id[EV].category == category.COMPONENT_CATEGORY_EV_CHARGER
    assert by_id[EV].category_type.ev_charger.type == ev_charger_pb2.EV_CHARGER_TYPE_AC
    assert by_id[WIND].category == category.COMPONENT_CATEGORY_UNSPECIFIED

    inverter = by_id[INVERTER_A]
    assert (inverter.name, inverter.microgrid_id) == ("Inverter A", 1)
    assert inverter.manufacturer == "edge-controller"
    assert inverter.model_name == "simulated"
    assert inverter.status == comp.ComponentStatus.COMPONENT_STATUS_ACTIVE
    assert inverter.operational_lifetime.HasField("start_timestamp")
    (rated,) = inverter.metric_config_bounds
    assert rated.metric == AC_POWER
    assert (rated.config_bounds.lower, rated.config_bounds.upper) == (-250_000, 250_000)
    (battery_rated,) = by_id[BATTERY_A].metric_config_bounds
    assert battery_rated.metric == metrics.Metric.METRIC_DC_POWER


@pytest.mark.parametrize(
    ("ids", "categories", "expected"),
    [
        ([], [], [1, 2, 10, 11, 20, 21, 30, 31, 40, 41, 50, 60, 70, 80]),
        ([10, 11, 999], [], [10, 11]),
        ([], [comp.COMPONENT_CATEGORY_METER], [2, 70]),
        ([1, 10, 11, 50], [comp.COMPONENT_CATEGORY_INVERTER], [10, 50]),
        (
            [2, 10, 11],
            [comp.COMPONENT_CATEGORY_INVERTER, comp.COMPONENT_CATEGORY_BATTERY],
            [10, 11],
        ),
        ([1], [comp.COMPONENT_CATEGORY_BATTERY], []),
    ],
)
async def test_list_components_filters_ids_and_categories(
    stub: MicrogridAsyncStub,
    ids: list[int],
    categories: list[comp.ComponentCategory.ValueType],
    expected: list[int],
) -> None:
    request = pb.ListComponentsRequest(component_ids=ids, categories=categories)
    listed = (await stub.ListComponents(request)).components
    assert sorted(c.id for c in listed) == expected


@pytest.mark.parametrize(
    ("ids", "categories", "expected"),
    [
        ([], [], [WEATHER]),
        ([WEATHER], [], [WEATHER]),
        ([5], [], []),
        ([], [sensors_pb2.SENSOR_CATEGORY_GENERAL], [WEATHER]),
        ([WEATHER], [sensors_pb2.SENSOR_CATEGORY_THERMOMETER], []),
    ],
)
async def test_list_sensors_filters_ids_and_categories(
    stub: MicrogridAsyncStub,
    ids: list[int],
    categories: list[sensors_pb2.SensorCategory.ValueType],
    expected: list[int],
) -> None:
    listed = (
        await stub.ListSensors(pb.ListSensorRequest(sensor_ids=ids, categories=categories))
    ).sensors
    assert [s.id for s in listed] == expected
    for sensor in listed:
        assert sensor.name == "Roof weather station"
        assert sensor.category == sensors_pb2.SENSOR_CATEGORY_GENERAL
        assert sensor.microgrid_id == 1


async def test_each_kind_of_sensor_has_its_category_and_reports_what_it_measures(
    example_site: SiteSpec, clock: ManualClock
) -> None:
    sensors = (
        SensorSpec(100, "Roof weather station"),
        SensorSpec(101, "Battery room", SensorKind.THERMOMETER),
        SensorSpec(102, "Array plane", SensorKind.PYRANOMETER),
        SensorSpec(103, "Mast", SensorKind.ANEMOMETER),
    )
    site = dataclasses.replace(example_site, sensors=sensors)
    async with (
        SimulatorServer(site, "127.0.0.1:0", clock=clock) as server,
        grpc.aio.insecure_channel(server.address) as channel,
    ):
        stub = pb_grpc.MicrogridStub(channel)
        thermometers = await stub.ListSensors(
            pb.ListSensorRequest(categories=[sensors_pb2.SENSOR_CATEGORY_THERMOMETER])
        )
        assert [s.id for s in thermometers.sensors] == [101]
        listed = (await stub.ListSensors(pb.ListSensorRequest())).sensors
        assert [s.category for s in listed] == [
            sensors_pb2.SENSOR_CATEGORY_GENERAL,
            sensors_pb2.SENSOR_CATEGORY_THERMOMETER,
            sensors_pb2.SENSOR_CATEGORY_PYRANOMETER,
            sensors_pb2.SENSOR_CATEGORY_ANEMOMETER,
        ]
    measured = [
        {v.metric for v in server.model.sensor_sample(s.id, clock.now()).metrics} for s in sensors
    ]
    assert measured == [
        {Metric.SENSOR_IRRADIANCE, Metric.SENSOR_WIND_SPEED, Metric.SENSOR_TEMPERATURE},
        {Metric.SENSOR_TEMPERATURE},
        {Metric.SENSOR_IRRADIANCE},
        {Metric.SENSOR_WIND_SPEED},
    ]


@pytest.mark.parametrize(
    ("starts", "ends", "expected"),
    [
        ([], [BATTERY_A], {(INVERTER_A, BATTERY_A)}),
        ([METER], [INVERTER_A, BATTERY_A, PV], {(METER, INVERTER_A), (METER, PV)}),
        ([INVERTER_A, INVERTER_B], [], {(10, 11), (20, 21)}),
        ([INVERTER_A], [21], set()),
    ],
)
async def test_list_connections_filters_starts_and_ends(
    stub: MicrogridAsyncStub, starts: list[int], ends: list[int], expected: set[tuple[int, int]]
) -> None:
    request = pb.ListConnectionsRequest(starts=starts, ends=ends)
    listed = (await stub.ListConnections(request)).connections
    assert {(c.source_component_id, c.destination_component_id) for c in listed} == expected


async def test_list_connections_unfiltered_is_the_whole_site(
    stub: MicrogridAsyncStub, example_site: SiteSpec
) -> None:
    listed = (await stub.ListConnections(pb.ListConnectionsRequest())).connections
    assert {(c.source_component_id, c.destination_component_id) for c in listed} == set(
        example_site.connections
    )
    assert all(c.operational_lifetime.HasField("start_timestamp") for c in listed)


# ------------------------------------------------------------------ telemetry


async def test_component_stream_yields_only_the_filtered_metrics(
    server: SimulatorServer, stub: MicrogridAsyncStub
) -> None:
    wanted = [AC_POWER, metrics.Metric.METRIC_BATTERY_SOC_PCT]  # SoC: not an inverter metric
    call = stub.ReceiveComponentDataStream(
        pb.ReceiveComponentDataStreamRequest(
            component_id=INVERTER_A,
            filter=pb.ReceiveComponentDataStreamRequest.ComponentDataStreamFilter(metrics=wanted),
        )
    )
    await subscribed(server, 1)
    data = (await read_until(server, call, lambda _r: True)).data
    call.cancel()

    assert data.component_id == INVERTER_A
    (sample,) = data.metric_samples
    assert sample.metric == AC_POWER
    assert sample.value.simple_metric.value == 0.0
    assert sample.sampled_at.ToDatetime(tzinfo=UTC) == NOON
    assert [(b.lower, b.upper) for b in sample.bounds] == [(-250_000, 250_000)]
    assert states_of(data) == [comp.COMPONENT_STATE_CODE_READY]
    assert list(data.states[0].errors) == []


async def test_component_stream_without_filter_yields_every_metric(
    server: SimulatorServer, stub: MicrogridAsyncStub
) -> None:
    data = await component_data(server, stub, BATTERY_A)

    assert value_of(data, metrics.Metric.METRIC_BATTERY_SOC_PCT) == pytest.approx(50.0)
    assert value_of(data, metrics.Metric.METRIC_BATTERY_CAPACITY) == pytest.approx(500_000)
    assert {s.metric for s in data.metric_samples} >= {
        metrics.Metric.METRIC_DC_POWER,
        metrics.Metric.METRIC_DC_VOLTAGE,
        metrics.Metric.METRIC_BATTERY_TEMPERATURE,
    }


async def test_streams_with_different_filters_each_get_their_own_metrics(
    server: SimulatorServer, stub: MicrogridAsyncStub
) -> None:
    def request(metric: metrics.Metric.ValueType) -> pb.ReceiveComponentDataStreamRequest:
        return pb.ReceiveComponentDataStreamRequest(
            component_id=METER,
            filter=pb.ReceiveComponentDataStreamRequest.ComponentDataStreamFilter(metrics=[metric]),
        )

    power = stub.ReceiveComponentDataStream(request(AC_POWER))
    frequency = stub.ReceiveComponentDataStream(request(metrics.Metric.METRIC_AC_FREQUENCY))
    power_too = stub.ReceiveComponentDataStream(request(AC_POWER))
    await subscribed(server, 3)
    server.service.tick()
    first, second, third = [
        (await next_message(call)).data for call in (power, frequency, power_too)
    ]
    for call in (power, frequency, power_too):
        call.cancel()

    assert [s.metric for s in first.metric_samples] == [AC_POWER]
    assert [s.metric for s in second.metric_samples] == [metrics.Metric.METRIC_AC_FREQUENCY]
    assert second.metric_samples[0].value.simple_metric.value == pytest.approx(50.0)
    assert first == third


async def test_sensor_stream_yields_the_filtered_weather(
    server: SimulatorServer, stub: MicrogridAsyncStub
) -> None:
    call = stub.ReceiveSensorDataStream(
        pb.ReceiveSensorDataStreamRequest(
            sensor_id=WEATHER,
            filter=pb.ReceiveSensorDataStreamRequest.SensorDataStreamFilter(
                metrics=[metrics.Metric.METRIC_SENSOR_IRRADIANCE]
            ),
        )
    )
    await subscribed(server, 1)
    data = (await read_until(server, call, lambda _r: True)).data
    call.cancel()

    assert data.sensor_id == WEATHER
    (sample,) = data.metric_samples
    assert sample.metric == metrics.Metric.METRIC_SENSOR_IRRADIANCE
    assert sample.value.simple_metric.value == pytest.approx(790.0)  # the 12:00 value
    assert list(data.states[0].states) == [sensors_pb2.SENSOR_STATE_CODE_ON]


async def test_streams_of_unknown_ids_fail_with_not_found(stub: MicrogridAsyncStub) -> None:
    component = stub.ReceiveComponentDataStream(
        pb.ReceiveComponentDataStreamRequest(component_id=999)
    )
    sensor = stub.ReceiveSensorDataStream(pb.ReceiveSensorDataStreamRequest(sensor_id=5))

    assert await status_of(lambda: drain(component)) == grpc.StatusCode.NOT_FOUND
    assert await status_of(lambda: drain(sensor)) == grpc.StatusCode.NOT_FOUND


async def test_streams_end_with_unavailable_when_the_server_stops(
    server: SimulatorServer, stub: MicrogridAsyncStub
) -> None:
    component = stub.ReceiveComponentDataStream(
        pb.ReceiveComponentDataStreamRequest(component_id=INVERTER_A)
    )
    sensor = stub.ReceiveSensorDataStream(pb.ReceiveSensorDataStreamRequest(sensor_id=WEATHER))
    await subscribed(server, 2)

    await server.stop()

    assert await status_of(lambda: drain(component)) == grpc.StatusCode.UNAVAILABLE
    assert await status_of(lambda: drain(sensor)) == grpc.StatusCode.UNAVAILABLE


# ------------------------------------------------------------------ power


async def test_set_active_power_returns_expiry_and_floors_to_resolution(
    server: SimulatorServer, stub: MicrogridAsyncStub, clock: ManualClock
) -> None:
    response = await set_active(stub, INVERTER_A, -1000)

    assert response.valid_until.ToDatetime(tzinfo=UTC) == NOON + timedelta(seconds=60)
    record = server.command_log.records()[-1]
    assert (record.component_id, record.requested_w, record.applied_w) == (10, -1000, -968)
    step(server, clock, 1)
    data = await component_data(server, stub, INVERTER_A, lambda d: value_of(d, AC_POWER) != 0.0)
    assert value_of(data, AC_POWER) == pytest.approx(-968)
    assert states_of(data) == [comp.COMPONENT_STATE_CODE_DISCHARGING]


async def test_set_active_power_honours_the_request_lifetime(
    server: SimulatorServer, stub: MicrogridAsyncStub, clock: ManualClock
) -> None:
    response = await set_active(stub, INVERTER_A, -88_000, lifetime_s=10)
    assert response.valid_until.ToDatetime(tzinfo=UTC) == NOON + timedelta(seconds=10)

    step(server, clock, 11)  # the command expired: the inverter falls back to 0 W
    data = await component_data(server, stub, INVERTER_A)
    assert value_of(data, AC_POWER) == 0.0


async def test_set_reactive_power_returns_expiry_and_shows_in_telemetry(
    server: SimulatorServer, stub: MicrogridAsyncStub, clock: ManualClock
) -> None:
    response = await stub.SetComponentPowerReactive(
        pb.SetComponentPowerReactiveRequest(component_id=INVERTER_A, power=5000)
    )

    assert response.valid_until.ToDatetime(tzinfo=UTC) == NOON + timedelta(seconds=60)
    record = server.command_log.records()[-1]
    assert (record.reactive, record.applied_w) == (True, 4928)  # floored to 88 VAr steps
    step(server, clock, 1)
    reactive = metrics.Metric.METRIC_AC_REACTIVE_POWER
    data = await component_data(server, stub, INVERTER_A, lambda d: value_of(d, reactive) != 0)
    assert value_of(data, reactive) == pytest.approx(4928)


@pytest.mark.parametrize(
    ("component_id", "power_w", "lifetime_s", "code"),
    [
        (INVERTER_A, -300_000, None, grpc.StatusCode.OUT_OF_RANGE),
        (INVERTER_C, 1000, None, grpc.StatusCode.OUT_OF_RANGE),  # in the exclusion band
        (999, 1000, None, grpc.StatusCode.NOT_FOUND),
        (METER, 1000, None, grpc.StatusCode.INVALID_ARGUMENT),
        (BATTERY_A, 1000, None, grpc.StatusCode.INVALID_ARGUMENT),
        (INVERTER_A, 1000, 5, grpc.StatusCode.INVALID_ARGUMENT),
        (INVERTER_A, float("nan"), None, grpc.StatusCode.INVALID_ARGUMENT),
    ],
)
async def test_set_active_power_refusals(
    server: SimulatorServer,
    stub: MicrogridAsyncStub,
    component_id: int,
    power_w: float,
    lifetime_s: int | None,
    code: grpc.StatusCode,
) -> None:
    assert await status_of(lambda: set_active(stub, component_id, power_w, lifetime_s)) == code
    assert server.command_log.records() == []


async def test_set_reactive_power_refusals(stub: MicrogridAsyncStub) -> None:
    def reactive(component_id: int, power: float) -> Awaitable[object]:
        return stub.SetComponentPowerReactive(
            pb.SetComponentPowerReactiveRequest(component_id=component_id, power=power)
        )

    assert await status_of(lambda: reactive(METER, 100)) == grpc.StatusCode.INVALID_ARGUMENT
    assert await status_of(lambda: reactive(999, 100)) == grpc.StatusCode.NOT_FOUND
    assert await status_of(lambda: reactive(INVERTER_A, 1e6)) == grpc.StatusCode.OUT_OF_RANGE


# ------------------------------------------------------------------ bounds


def add_bounds_request(
    lower: float | None,
    upper: float | None,
    validity: pb.ComponentBoundsValidityDuration.ValueType = UNSPECIFIED,
    metric: metrics.Metric.ValueType = AC_POWER,
    component_id: int = INVERTER_A,
) -> pb.AddComponentBoundsRequest:
    return pb.AddComponentBoundsRequest(
        component_id=component_id,
        target_metric=metric,
        bounds=[bounds_pb2.Bounds(lower=lower, upper=upper)],
        validity_duration=validity,
    )


async def test_added_bounds_narrow_the_bounds_until_they_expire(
    server: SimulatorServer, stub: MicrogridAsyncStub, clock: ManualClock
) -> None:
    response = await stub.AddComponentBounds(
        add_bounds_request(-10_000, 10_000, Validity.COMPONENT_BOUNDS_VALIDITY_DURATION_5_SECONDS)
    )

    assert response.ts.ToDatetime(tzinfo=UTC) == NOON + timedelta(seconds=5)
    refused = await status_of(lambda: set_active(stub, INVERTER_A, -20_000))
    assert refused == grpc.StatusCode.OUT_OF_RANGE
    await set_active(stub, INVERTER_A, -5_000)
    data = await component_data(server, stub, INVERTER_A)
    (power,) = (s for s in data.metric_samples if s.metric == AC_POWER)
    assert [(b.lower, b.upper) for b in power.bounds] == [(-10_000, 10_000)]

    step(server, clock, 6)
    await set_active(stub, INVERTER_A, -20_000)  # the added bounds are gone


@pytest.mark.parametrize(
    ("validity", "seconds"),
    [
        (Validity.COMPONENT_BOUNDS_VALIDITY_DURATION_UNSPECIFIED, 5),
        (Validity.COMPONENT_BOUNDS_VALIDITY_DURATION_5_SECONDS, 5),
        (Validity.COMPONENT_BOUNDS_VALIDITY_DURATION_1_MINUTE, 60),
        (Validity.COMPONENT_BOUNDS_VALIDITY_DURATION_5_MINUTES, 300),
        (Validity.COMPONENT_BOUNDS_VALIDITY_DURATION_15_MINUTES, 900),
    ],
)
async def test_bounds_validity_maps_to_its_duration(
    stub: MicrogridAsyncStub, validity: pb.ComponentBoundsValidityDuration.ValueType, seconds: int
) -> None:
    response = await stub.AddComponentBounds(add_bounds_request(-1000, 1000, validity))
    assert response.ts.ToDatetime(tzinfo=UTC) == NOON + timedelta(seconds=seconds)


async def test_bounds_with_one_open_end_leave_that_side_unbounded(
    stub: MicrogridAsyncStub,
) -> None:
    await stub.AddComponentBounds(add_bounds_request(-10_000, None))

    await set_active(stub, INVERTER_A, 200_000)
    refused = await status_of(lambda: set_active(stub, INVERTER_A, -20_000))
    assert refused == grpc.StatusCode.OUT_OF_RANGE


async def test_a_battery_takes_the_documentations_dc_bounds_example(
    server: SimulatorServer, stub: MicrogridAsyncStub
) -> None:
    """Inclusion ±100 kW, exclusion ±50 kW on a battery's DC power (the API's own example)."""
    await stub.AddComponentBounds(
        pb.AddComponentBoundsRequest(
            component_id=BATTERY_A,
            target_metric=metrics.Metric.METRIC_DC_POWER,
            bounds=[
                bounds_pb2.Bounds(lower=-100_000, upper=-50_000),
                bounds_pb2.Bounds(lower=50_000, upper=100_000),
            ],
        )
    )
    data = await component_data(server, stub, BATTERY_A)
    (dc,) = (s for s in data.metric_samples if s.metric == metrics.Metric.METRIC_DC_POWER)
    assert [(b.lower, b.upper) for b in dc.bounds] == [(-100_000, -50_000), (50_000, 100_000)]
    # Its inverter may command only what the battery takes: outside the band, within ±100 kW.
    for power_w in (-30_000, 150_000):

        def command(power: float = power_w) -> Awaitable[object]:
            return set_active(stub, INVERTER_A, power)

        assert await status_of(command) == grpc.StatusCode.OUT_OF_RANGE, power_w
    await set_active(stub, INVERTER_A, -60_000)
    await set_active(stub, INVERTER_A, 0)  # 0 W is always allowed


async def test_a_running_command_is_brought_inside_newly_narrowed_bounds(
    server: SimulatorServer, stub: MicrogridAsyncStub, clock: ManualClock
) -> None:
    await set_active(stub, INVERTER_A, -80_000)
    step(server, clock, 1)
    assert server.model.ac_power_w(INVERTER_A) == pytest.approx(-80_000, abs=100)
    await stub.AddComponentBounds(add_bounds_request(-50_000, 50_000, metric=AC_POWER))
    step(server, clock, 1)
    assert server.model.ac_power_w(INVERTER_A) == pytest.approx(-50_000, abs=100)
    await stub.AddComponentBounds(
        add_bounds_request(
            -30_000, 30_000, metric=metrics.Metric.METRIC_DC_POWER, component_id=BATTERY_A
        )
    )
    step(server, clock, 1)
    assert server.model.ac_power_w(INVERTER_A) == pytest.approx(-30_000, abs=100)


@pytest.mark.parametrize(
    ("request_", "code"),
    [
        (add_bounds_request(-1, 1, component_id=999), grpc.StatusCode.NOT_FOUND),
        (add_bounds_request(-1, 1, component_id=METER), grpc.StatusCode.INVALID_ARGUMENT),
        (add_bounds_request(-1, 1, component_id=BATTERY_A), grpc.StatusCode.INVALID_ARGUMENT),
        (add_bounds_request(10, -10), grpc.StatusCode.INVALID_ARGUMENT),
        (
            add_bounds_request(-1, 1, metric=metrics.Metric.METRIC_DC_VOLTAGE),
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
        (
            add_bounds_request(-1, 1, metric=metrics.Metric.METRIC_AC_POWER_FACTOR),
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
        (
            add_bounds_request(-1, 1, validity=99),  # type: ignore[arg-type]
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
        (
            pb.AddComponentBoundsRequest(component_id=INVERTER_A, target_metric=AC_POWER),
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
    ],
)
async def test_add_bounds_refusals(
    stub: MicrogridAsyncStub, request_: pb.AddComponentBoundsRequest, code: grpc.StatusCode
) -> None:
    assert await status_of(lambda: stub.AddComponentBounds(request_)) == code


# ------------------------------------------------------------------ state machine


async def test_standby_then_set_power_starts_the_inverter(
    server: SimulatorServer, stub: MicrogridAsyncStub, clock: ManualClock
) -> None:
    await stub.PutComponentInStandby(pb.PutComponentInStandbyRequest(component_id=INVERTER_A))
    data = await component_data(server, stub, INVERTER_A)
    assert states_of(data) == [comp.COMPONENT_STATE_CODE_STANDBY]

    await set_active(stub, INVERTER_A, -8_800)
    step(server, clock, 1)
    data = await component_data(server, stub, INVERTER_A)
    assert states_of(data) == [comp.COMPONENT_STATE_CODE_DISCHARGING]
    assert value_of(data, AC_POWER) == pytest.approx(-8_800)


async def test_stopped_inverter_refuses_power_until_started(
    server: SimulatorServer, stub: MicrogridAsyncStub
) -> None:
    await stub.StopComponent(pb.StopComponentRequest(component_id=INVERTER_A))
    data = await component_data(server, stub, INVERTER_A)
    assert states_of(data) == [comp.COMPONENT_STATE_CODE_OFF]
    refused = await status_of(lambda: set_active(stub, INVERTER_A, -1000))
    assert refused == grpc.StatusCode.FAILED_PRECONDITION
    standby = await status_of(
        lambda: stub.PutComponentInStandby(pb.PutComponentInStandbyRequest(component_id=10))
    )
    assert standby == grpc.StatusCode.FAILED_PRECONDITION

    await stub.StartComponent(pb.StartComponentRequest(component_id=INVERTER_A))
    await set_active(stub, INVERTER_A, -1000)


async def test_a_battery_stops_only_at_zero_power(
    server: SimulatorServer, stub: MicrogridAsyncStub, clock: ManualClock
) -> None:
    def stop_battery() -> Awaitable[object]:
        return stub.StopComponent(pb.StopComponentRequest(component_id=BATTERY_A))

    await set_active(stub, INVERTER_A, -50_000)
    step(server, clock, 1)
    assert await status_of(stop_battery) == grpc.StatusCode.FAILED_PRECONDITION

    await stub.PutComponentInStandby(pb.PutComponentInStandbyRequest(component_id=INVERTER_A))
    step(server, clock, 1)
    await stop_battery()
    data = await component_data(server, stub, BATTERY_A)
    assert states_of(data) == [comp.COMPONENT_STATE_CODE_OFF, comp.COMPONENT_STATE_CODE_RELAY_OPEN]
    refused = await status_of(lambda: set_active(stub, INVERTER_A, -1000))
    assert refused == grpc.StatusCode.FAILED_PRECONDITION  # its battery is stopped

    await stub.StartComponent(pb.StartComponentRequest(component_id=BATTERY_A))
    await set_active(stub, INVERTER_A, -1000)


async def test_error_must_clear_and_be_acknowledged_before_the_inverter_runs_again(
    server: SimulatorServer, stub: MicrogridAsyncStub, clock: ManualClock
) -> None:
    def ack() -> Awaitable[object]:
        return stub.AckComponentError(pb.AckComponentErrorRequest(component_id=INVERTER_A))

    def start() -> Awaitable[object]:
        return stub.StartComponent(pb.StartComponentRequest(component_id=INVERTER_A))

    server.faults.inject(
        INVERTER_A,
        FaultKind.ERROR,
        now=clock.now(),
        duration=timedelta(seconds=5),
        error_code="OVERTEMPERATURE",
    )
    server.service.tick()

    refused = await status_of(lambda: set_active(stub, INVERTER_A, -1000))
    assert refused == grpc.StatusCode.FAILED_PRECONDITION
    data = await component_data(server, stub, INVERTER_A)
    assert states_of(data) == [comp.COMPONENT_STATE_CODE_ERROR]
    assert list(data.states[0].errors) == [comp.COMPONENT_ERROR_CODE_OVERTEMPERATURE]
    assert await status_of(ack) == grpc.StatusCode.FAILED_PRECONDITION  # the cause persists
    assert await status_of(start) == grpc.StatusCode.FAILED_PRECONDITION

    step(server, clock, 6)
    await ack()
    data = await component_data(server, stub, INVERTER_A)
    assert states_of(data) == [comp.COMPONENT_STATE_CODE_STANDBY]
    assert list(data.states[0].errors) == []
    await start()
    await set_active(stub, INVERTER_A, -1000)


async def test_an_error_code_v1_does_not_know_is_reported_as_unknown(
    server: SimulatorServer, stub: MicrogridAsyncStub, clock: ManualClock
) -> None:
    server.faults.inject(INVERTER_B, FaultKind.ERROR, now=clock.now(), error_code="FLUX_CAPACITOR")
    server.service.tick()

    data = await component_data(server, stub, INVERTER_B)
    assert list(data.states[0].errors) == [comp.COMPONENT_ERROR_CODE_UNKNOWN]


@pytest.mark.parametrize(
    ("method", "component_id", "code"),
    [
        ("StartComponent", 999, grpc.StatusCode.NOT_FOUND),
        ("PutComponentInStandby", 999, grpc.StatusCode.NOT_FOUND),
        ("StopComponent", METER, grpc.StatusCode.INVALID_ARGUMENT),
        ("AckComponentError", GRID, grpc.StatusCode.INVALID_ARGUMENT),
    ],
)
async def test_state_requests_refuse_unknown_and_passive_components(
    stub: MicrogridAsyncStub, method: str, component_id: int, code: grpc.StatusCode
) -> None:
    request_type = getattr(pb, f"{method}Request")
    rpc = getattr(stub, method)
    assert await status_of(lambda: rpc(request_type(component_id=component_id))) == code


# ------------------------------------------------------------------ completeness


async def status_with_empty_request(
    channel: grpc.aio.Channel, method: MethodDescriptor
) -> grpc.StatusCode:
    """Call `method` generically with its empty request; return the final status."""
    path = f"/{method.containing_service.full_name}/{method.name}"
    request_type = GetMessageClass(method.input_type)
    response_type = GetMessageClass(method.output_type)
    try:
        if method.server_streaming:
            stream = channel.unary_stream(
                path,
                request_serializer=request_type.SerializeToString,
                response_deserializer=response_type.FromString,
            )
            await drain(stream(request_type(), timeout=5))
        else:
            unary = channel.unary_unary(
                path,
                request_serializer=request_type.SerializeToString,
                response_deserializer=response_type.FromString,
            )
            await unary(request_type(), timeout=5)
    except grpc.aio.AioRpcError as error:
        return error.code()
    return grpc.StatusCode.OK


async def test_no_rpc_answers_unimplemented(server: SimulatorServer) -> None:
    """Every method of the v1 service is served: none says UNIMPLEMENTED or crashes."""
    service = pb.DESCRIPTOR.services_by_name["Microgrid"]
    assert len(service.methods) == 13
    async with grpc.aio.insecure_channel(server.address) as channel:
        for method in service.methods:
            code = await status_with_empty_request(channel, method)
            # Id 0 names nothing: the control RPCs and streams answer NOT_FOUND.
            assert code not in (grpc.StatusCode.UNIMPLEMENTED, grpc.StatusCode.UNKNOWN), method.name
