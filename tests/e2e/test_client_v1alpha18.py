"""The simulator through the real `frequenz-client-microgrid` 0.18 client, on loopback.

Time moves by hand: the server reads a `ManualClock`; after advancing it, `tick()`
steps the model and publishes telemetry at once, so no test waits for real seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import timedelta
from typing import Any

import grpc
import pytest
from frequenz.api.microgrid.v1alpha18 import microgrid_pb2 as pb
from frequenz.api.microgrid.v1alpha18 import microgrid_pb2_grpc as pb_grpc
from frequenz.client.microgrid import (
    EntityNotFound,
    InvalidArgument,
    MicrogridApiClient,
    OperationOutOfRange,
    ServiceUnavailable,
    Validity,
)
from frequenz.client.microgrid.component import (
    Battery,
    BatteryInverter,
    ComponentCategory,
    GridConnectionPoint,
    Meter,
    SolarInverter,
)
from frequenz.client.microgrid.metrics import Bounds, Metric

from edge_controller.common.clock import ManualClock
from edge_controller.power.bounds import allows
from edge_controller.servers.common.serving import ListenAddressError
from edge_controller.servers.sim.fault_spec import FaultKind
from edge_controller.servers.sim.server import SimulatorServer
from edge_controller.servers.sim.site import SiteSpec
from tests.conftest import component_id

INVERTER_A, BATTERY_A, INVERTER_B, INVERTER_C = 10, 11, 20, 30


async def next_value(
    client: MicrogridApiClient,
    server: SimulatorServer,
    cid: int,
    metric: Metric,
    accept: Any = lambda _value: True,
    attempts: int = 40,
) -> Any:
    """Return the first sample of `metric` that `accept` takes, ticking the server."""
    receiver = client.receive_component_data_samples_stream(component_id(cid), [metric])
    for _ in range(attempts):
        server.service.tick()
        async with asyncio.timeout(5):
            samples = await receiver.receive()
        for sample in samples.metric_samples:
            if sample.metric == metric and accept(sample):
                return sample
    raise AssertionError(f"no acceptable {metric} sample from component {cid}")


async def test_lists_components_and_connections_as_the_site_file_says(
    client: MicrogridApiClient, example_site: SiteSpec
) -> None:
    components = {int(c.id): c for c in await client.list_components()}
    assert set(components) == {c.id for c in example_site.components}
    assert isinstance(components[1], GridConnectionPoint)
    assert isinstance(components[2], Meter)
    assert isinstance(components[INVERTER_A], BatteryInverter)
    assert isinstance(components[BATTERY_A], Battery)
    assert isinstance(components[50], SolarInverter)
    connections = {(int(c.source), int(c.destination)) for c in await client.list_connections()}
    assert connections == set(example_site.connections)
    only_a = await client.list_connections(sources=[component_id(INVERTER_A)])
    assert [(int(c.source), int(c.destination)) for c in only_a] == [(INVERTER_A, BATTERY_A)]


async def test_filters_combine_ids_and_categories(client: MicrogridApiClient) -> None:
    found = await client.list_components(
        components=[component_id(i) for i in (1, 10, 11, 20)],
        categories=[ComponentCategory.INVERTER, ComponentCategory.BATTERY],
    )
    assert sorted(int(c.id) for c in found) == [10, 11, 20]


async def test_client_reads_metadata_without_missing_field_warnings(
    client: MicrogridApiClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="frequenz.client.microgrid")
    info = await client.get_microgrid_info()
    assert int(info.id) == 1
    assert info.delivery_area is not None
    assert info.delivery_area.code == "10YDE-EON------1"
    assert info.location is not None
    assert info.location.country_code == "DE"
    components = list(await client.list_components())
    list(await client.list_connections())
    assert components
    issues = [r.getMessage() for r in caplog.records if "issues" in r.getMessage()]
    assert issues == []


async def test_set_power_moves_soc_in_the_right_direction(
    client: MicrogridApiClient, sim_server: SimulatorServer, clock: ManualClock
) -> None:
    start = await next_value(client, sim_server, BATTERY_A, Metric.BATTERY_SOC_PCT)
    valid_until = await client.set_component_power_active(component_id(INVERTER_A), -100_000.0)
    assert valid_until == clock.now() + timedelta(seconds=60)
    clock.advance(30)
    later = await next_value(
        client, sim_server, BATTERY_A, Metric.BATTERY_SOC_PCT, lambda s: s.value < start.value
    )
    # 30 s at about 100 kW out of 500 kWh: about 0.17 percentage points.
    assert start.value - later.value == pytest.approx(100 / 0.97 * 30 / 3600 / 500 * 100, rel=0.05)


async def test_power_returns_to_zero_after_the_command_lifetime(
    client: MicrogridApiClient, sim_server: SimulatorServer, clock: ManualClock
) -> None:
    await client.set_component_power_active(
        component_id(INVERTER_A),
        -1000.0,
        request_lifetime=timedelta(seconds=10),
    )
    running = await next_value(client, sim_server, INVERTER_A, Metric.AC_POWER_ACTIVE)
    assert running.value == pytest.approx(-968.0)  # floored to the 88 W resolution
    clock.advance(11)
    stopped = await next_value(
        client, sim_server, INVERTER_A, Metric.AC_POWER_ACTIVE, lambda s: s.value == 0.0
    )
    assert stopped.value == 0.0


async def test_refusals_are_status_errors(client: MicrogridApiClient) -> None:
    with pytest.raises(OperationOutOfRange, match="outside its bounds"):
        await client.set_component_power_active(component_id(INVERTER_A), -400_000.0)
    with pytest.raises(OperationOutOfRange):
        await client.set_component_power_active(component_id(INVERTER_C), 1_000.0)  # exclusion band
    with pytest.raises(EntityNotFound):
        await client.set_component_power_active(component_id(999), 0.0)
    with pytest.raises(InvalidArgument, match="is a meter"):
        await client.set_component_power_active(component_id(2), 0.0)
    assert await client.set_component_power_active(component_id(INVERTER_C), 0.0) is not None


async def test_added_bounds_merge_narrow_and_expire(
    client: MicrogridApiClient, sim_server: SimulatorServer, clock: ManualClock
) -> None:
    until = await client.add_component_bounds(
        component_id(INVERTER_A),
        Metric.AC_POWER_ACTIVE,
        [
            Bounds(lower=0, upper=10_000),
            Bounds(lower=5_000, upper=15_000),
            Bounds(lower=20_000, upper=30_000),
        ],
    )
    assert until == clock.now() + timedelta(seconds=5)
    sample = await next_value(client, sim_server, INVERTER_A, Metric.AC_POWER_ACTIVE)
    assert [(b.lower, b.upper) for b in sample.bounds] == [(0, 15_000), (20_000, 30_000)]
    with pytest.raises(OperationOutOfRange):
        await client.set_component_power_active(component_id(INVERTER_A), 17_600.0)
    await client.set_component_power_active(component_id(INVERTER_A), 21_120.0)
    await client.set_component_power_active(component_id(INVERTER_A), 0.0)
    clock.advance(6)
    widened = await next_value(
        client, sim_server, INVERTER_A, Metric.AC_POWER_ACTIVE, lambda s: len(s.bounds) == 1
    )
    assert (widened.bounds[0].lower, widened.bounds[0].upper) == (-250_000, 250_000)
    longer = await client.add_component_bounds(
        component_id(INVERTER_A),
        Metric.AC_POWER_ACTIVE,
        [Bounds(lower=-1_000, upper=1_000)],
        validity=Validity.ONE_MINUTE,
    )
    assert longer == clock.now() + timedelta(seconds=60)


async def test_an_unresponsive_inverter_times_out_and_the_others_answer(
    client: MicrogridApiClient, sim_server: SimulatorServer, clock: ManualClock
) -> None:
    sim_server.faults.inject(INVERTER_A, FaultKind.UNRESPONSIVE, now=clock.now())
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.3):
            await client.set_component_power_active(component_id(INVERTER_A), -880.0)
    assert await client.set_component_power_active(component_id(INVERTER_B), -1000.0) is not None
    sim_server.faults.clear(INVERTER_A)
    assert await client.set_component_power_active(component_id(INVERTER_A), -880.0) is not None


async def test_rpc_error_fault_and_its_window(
    client: MicrogridApiClient, sim_server: SimulatorServer, clock: ManualClock
) -> None:
    sim_server.faults.inject(
        INVERTER_A, FaultKind.RPC_ERROR, now=clock.now(), duration=timedelta(seconds=5)
    )
    with pytest.raises(ServiceUnavailable, match="injected"):
        await client.set_component_power_active(component_id(INVERTER_A), -880.0)
    clock.advance(5)
    assert await client.set_component_power_active(component_id(INVERTER_A), -880.0) is not None


async def test_silent_inverter_keeps_its_last_command_until_it_expires(
    client: MicrogridApiClient, sim_server: SimulatorServer, clock: ManualClock
) -> None:
    await client.set_component_power_active(
        component_id(INVERTER_A),
        -8_800.0,
        request_lifetime=timedelta(seconds=20),
    )
    sim_server.faults.inject(INVERTER_A, FaultKind.UNRESPONSIVE, now=clock.now())
    clock.advance(10)
    still = await next_value(client, sim_server, INVERTER_A, Metric.AC_POWER_ACTIVE)
    assert still.value == pytest.approx(-8_800.0)
    clock.advance(11)
    lapsed = await next_value(
        client, sim_server, INVERTER_A, Metric.AC_POWER_ACTIVE, lambda s: s.value == 0.0
    )
    assert lapsed.value == 0.0


async def test_dropped_stream_is_resumed_by_the_client_after_the_fault(
    client: MicrogridApiClient, sim_server: SimulatorServer, clock: ManualClock
) -> None:
    await next_value(client, sim_server, BATTERY_A, Metric.BATTERY_SOC_PCT)
    sim_server.faults.inject(
        BATTERY_A, FaultKind.DROP_STREAM, now=clock.now(), duration=timedelta(seconds=2)
    )
    sim_server.service.tick()
    clock.advance(3)
    resumed = await next_value(client, sim_server, BATTERY_A, Metric.BATTERY_SOC_PCT, attempts=100)
    assert resumed.value == pytest.approx(50.0, abs=0.1)


async def test_nan_telemetry_fault_reaches_the_client(
    client: MicrogridApiClient, sim_server: SimulatorServer, clock: ManualClock
) -> None:
    sim_server.faults.inject(BATTERY_A, FaultKind.NAN_METRICS, now=clock.now())
    sample = await next_value(client, sim_server, BATTERY_A, Metric.BATTERY_SOC_PCT)
    assert sample.value != sample.value


async def read_until_end(call: Any) -> None:
    while True:
        message = await call.read()
        assert message is not grpc.aio.EOF, "stream ended with OK"


async def test_streams_end_with_unavailable_when_the_server_stops(example_site: SiteSpec) -> None:
    server = SimulatorServer(example_site)
    await server.start()
    async with grpc.aio.insecure_channel(server.address) as channel:
        stub = pb_grpc.MicrogridStub(channel)
        call = stub.ReceiveElectricalComponentTelemetryStream(
            pb.ReceiveElectricalComponentTelemetryStreamRequest(electrical_component_id=BATTERY_A)
        )
        server.service.tick()
        first = await call.read()
        assert isinstance(first, pb.ReceiveElectricalComponentTelemetryStreamResponse)
        assert first.telemetry.electrical_component_id == BATTERY_A
        await server.stop()
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await read_until_end(call)
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_a_second_server_cannot_share_the_port(
    sim_server: SimulatorServer, example_site: SiteSpec
) -> None:
    with pytest.raises(ListenAddressError, match="cannot bind"):
        await SimulatorServer(example_site, sim_server.address).start()


async def test_every_accepted_command_was_within_its_bounds(
    client: MicrogridApiClient, sim_server: SimulatorServer
) -> None:
    for power in (-250_000.0, -1000.0, 0.0, 88.0, 250_000.0, 300_000.0, -3_000.0):
        for inverter in (INVERTER_A, INVERTER_C):
            with contextlib.suppress(OperationOutOfRange):
                await client.set_component_power_active(component_id(inverter), power)
    records = sim_server.command_log.records()
    assert len(records) >= 8
    assert all(allows(r.bounds, r.applied_w) for r in records)
    assert sim_server.command_log.violations() == []
