"""The `frequenz.api.microgrid.v1.Microgrid` service over the simulator.

Served next to v1alpha18 for clients built on the v1 API. It shows the same
`SimService` as the v1alpha18 servicer, so both APIs see one and the same site at the
same instant: only the message shapes and enum numbers differ.

Semantics this servicer had to decide, where the v1 API leaves room:

- Metrics map by name: `Metric.X` is `METRIC_X` (the numbers differ from v1alpha8).
- The wind turbine has no v1 category; it is listed as `COMPONENT_CATEGORY_UNSPECIFIED`.
  A load is shown as a meter, as on a real site where only its meter is visible.
- The weather station measures irradiance, wind speed and temperature, which no
  single-quantity sensor category covers: it is `SENSOR_CATEGORY_GENERAL`.
- A stream filter with no metrics (or no filter) streams every metric. The API text
  both says the filter is optional and that an empty one is an error; no client is
  helped by refusing, and v1alpha18 behaves the same way. Metrics the component does
  not report are left out, as the API says.
- Error codes the API does not name become `COMPONENT_ERROR_CODE_UNKNOWN`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from functools import partial
from typing import TypeAlias

from frequenz.api.common.v1 import location_pb2
from frequenz.api.common.v1.grid import delivery_area_pb2
from frequenz.api.common.v1.metrics import bounds_pb2, metric_sample_pb2
from frequenz.api.common.v1.microgrid import lifetime_pb2, microgrid_pb2
from frequenz.api.common.v1.microgrid.components import (
    battery_pb2,
    components_pb2,
    ev_charger_pb2,
    grid_pb2,
    inverter_pb2,
)
from frequenz.api.common.v1.microgrid.sensors import sensors_pb2
from frequenz.api.microgrid.v1 import microgrid_pb2 as pb
from frequenz.api.microgrid.v1 import microgrid_pb2_grpc as pb_grpc
from google.protobuf import empty_pb2
from typing_extensions import override

from edge_controller.power.bounds import Range
from edge_controller.servers.sim.grpc_shell import (
    EPOCH,
    Context,
    bounds_messages,
    change_state,
    enum_value,
    lookup,
    requested_ranges,
    selected,
    streamed,
    timestamp,
    unary,
)
from edge_controller.servers.sim.model import ComponentSample, Metric, StateCode
from edge_controller.servers.sim.service import SimService, StateAction
from edge_controller.servers.sim.site import ComponentSpec, SensorKind, SensorSpec
from edge_controller.servers.sim.site_details import (
    BatterySpec,
    ComponentKind,
    EvChargerSpec,
    GridSpec,
    InverterSpec,
    PvSpec,
)
from edge_controller.servers.sim.stream_message import MessageParts, StreamMessage

MetricNumber: TypeAlias = metric_sample_pb2.Metric.ValueType

METRIC_TO_PROTO: dict[Metric, MetricNumber] = {
    metric: metric_sample_pb2.Metric.Value("METRIC_" + metric.name) for metric in Metric
}
METRIC_FROM_PROTO: dict[MetricNumber, Metric] = {
    value: metric for metric, value in METRIC_TO_PROTO.items()
}

_CATEGORY = components_pb2.ComponentCategory
CATEGORY_OF_KIND: dict[ComponentKind, components_pb2.ComponentCategory.ValueType] = {
    ComponentKind.GRID: _CATEGORY.COMPONENT_CATEGORY_GRID,
    ComponentKind.METER: _CATEGORY.COMPONENT_CATEGORY_METER,
    ComponentKind.LOAD: _CATEGORY.COMPONENT_CATEGORY_METER,
    ComponentKind.BATTERY_INVERTER: _CATEGORY.COMPONENT_CATEGORY_INVERTER,
    ComponentKind.PV_INVERTER: _CATEGORY.COMPONENT_CATEGORY_INVERTER,
    ComponentKind.BATTERY: _CATEGORY.COMPONENT_CATEGORY_BATTERY,
    # v1 has no wind-turbine category (v1alpha18 has one) and no inverter type that
    # fits a turbine; UNSPECIFIED is the only honest answer.
    ComponentKind.WIND_TURBINE: _CATEGORY.COMPONENT_CATEGORY_UNSPECIFIED,
    ComponentKind.EV_CHARGER: _CATEGORY.COMPONENT_CATEGORY_EV_CHARGER,
    ComponentKind.RELAY: _CATEGORY.COMPONENT_CATEGORY_RELAY,
    ComponentKind.PRECHARGER: _CATEGORY.COMPONENT_CATEGORY_PRECHARGER,
}
_STATE_TO_PROTO = {
    code: components_pb2.ComponentStateCode.Value(f"COMPONENT_STATE_CODE_{code.name}")
    for code in StateCode
}
SENSOR_CATEGORY: dict[SensorKind, sensors_pb2.SensorCategory.ValueType] = {
    SensorKind.WEATHER_STATION: sensors_pb2.SensorCategory.SENSOR_CATEGORY_GENERAL,
    SensorKind.THERMOMETER: sensors_pb2.SensorCategory.SENSOR_CATEGORY_THERMOMETER,
    SensorKind.PYRANOMETER: sensors_pb2.SensorCategory.SENSOR_CATEGORY_PYRANOMETER,
    SensorKind.ANEMOMETER: sensors_pb2.SensorCategory.SENSOR_CATEGORY_ANEMOMETER,
}
"""The weather station's category: it measures several quantities (see module doc)."""

_VALIDITY = pb.ComponentBoundsValidityDuration
VALIDITY_SECONDS: dict[pb.ComponentBoundsValidityDuration.ValueType, int | None] = {
    _VALIDITY.COMPONENT_BOUNDS_VALIDITY_DURATION_UNSPECIFIED: None,  # the model's 5 s default
    _VALIDITY.COMPONENT_BOUNDS_VALIDITY_DURATION_5_SECONDS: 5,
    _VALIDITY.COMPONENT_BOUNDS_VALIDITY_DURATION_1_MINUTE: 60,
    _VALIDITY.COMPONENT_BOUNDS_VALIDITY_DURATION_5_MINUTES: 300,
    _VALIDITY.COMPONENT_BOUNDS_VALIDITY_DURATION_15_MINUTES: 900,
}
"""How long added bounds hold, per the request's validity enum (None = default)."""


def _lifetime() -> lifetime_pb2.Lifetime:
    return lifetime_pb2.Lifetime(start_timestamp=timestamp(EPOCH))


def _rated(metric: Metric, bounds: Range) -> components_pb2.MetricConfigBounds:
    return components_pb2.MetricConfigBounds(
        metric=METRIC_TO_PROTO[metric],
        config_bounds=bounds_pb2.Bounds(lower=bounds.lower, upper=bounds.upper),
    )


def _category_details(
    spec: ComponentSpec,
) -> tuple[
    components_pb2.ComponentCategoryMetadataVariant, list[components_pb2.MetricConfigBounds]
]:
    """Return the category metadata and rated bounds that the v1 client reads."""
    metadata = components_pb2.ComponentCategoryMetadataVariant()
    rated: list[components_pb2.MetricConfigBounds] = []
    details = spec.details
    match details:
        case GridSpec():
            metadata.grid.CopyFrom(
                grid_pb2.GridConnectionPoint(rated_fuse_current=details.rated_fuse_current_a)
            )
        case InverterSpec():
            metadata.inverter.type = inverter_pb2.InverterType.INVERTER_TYPE_BATTERY
            rated.append(_rated(Metric.AC_ACTIVE_POWER, details.active_bounds))
        case PvSpec():
            metadata.inverter.type = inverter_pb2.InverterType.INVERTER_TYPE_SOLAR
            rated.append(_rated(Metric.AC_ACTIVE_POWER, Range(-details.peak_power_w, 0.0)))
        case BatterySpec():
            metadata.battery.type = battery_pb2.BatteryType.BATTERY_TYPE_LI_ION
            rated.append(_rated(Metric.DC_POWER, details.power_bounds))
        case EvChargerSpec():
            metadata.ev_charger.type = ev_charger_pb2.EvChargerType.EV_CHARGER_TYPE_AC
            rated.append(_rated(Metric.AC_ACTIVE_POWER, Range(0.0, details.max_power_w)))
        case _:
            pass
    return metadata, rated


def component_to_proto(spec: ComponentSpec, microgrid_id: int) -> components_pb2.Component:
    """Describe a component as ListComponents does."""
    metadata, rated = _category_details(spec)
    return components_pb2.Component(
        id=spec.id,
        microgrid_id=microgrid_id,
        name=spec.name,
        category=CATEGORY_OF_KIND[spec.kind],
        category_type=metadata,
        manufacturer=spec.manufacturer,
        model_name=spec.model_name,
        status=components_pb2.ComponentStatus.COMPONENT_STATUS_ACTIVE,
        operational_lifetime=_lifetime(),
        metric_config_bounds=rated,
    )


def sensor_to_proto(sensor: SensorSpec, microgrid_id: int) -> sensors_pb2.Sensor:
    """Describe a sensor as ListSensors does."""
    return sensors_pb2.Sensor(
        id=sensor.id,
        microgrid_id=microgrid_id,
        name=sensor.name,
        category=SENSOR_CATEGORY[sensor.kind],
        manufacturer="edge-controller",
        model_name="simulated weather station",
        operational_lifetime=_lifetime(),
    )


def error_code(name: str) -> components_pb2.ComponentErrorCode.ValueType:
    """Return the v1 error code for a simulator error name (UNKNOWN if v1 has none)."""
    codes = components_pb2.ComponentErrorCode
    return enum_value(codes, f"COMPONENT_ERROR_CODE_{name}", codes.COMPONENT_ERROR_CODE_UNKNOWN)


def _wanted(metric: Metric, metrics: frozenset[int]) -> bool:
    return not metrics or METRIC_TO_PROTO[metric] in metrics


def _metric_filter(metrics: Iterable[MetricNumber]) -> frozenset[int]:
    return frozenset(int(m) for m in metrics)


def _value(value: float) -> metric_sample_pb2.MetricValueVariant:
    return metric_sample_pb2.MetricValueVariant(
        simple_metric=metric_sample_pb2.SimpleMetricValue(value=value)
    )


def component_data_to_proto(
    sample: ComponentSample, metrics: frozenset[int]
) -> components_pb2.ComponentData:
    """Build a component's data message, keeping only `metrics` (all when empty)."""
    at = timestamp(sample.sampled_at)
    return components_pb2.ComponentData(
        component_id=sample.component_id,
        metric_samples=[
            metric_sample_pb2.MetricSample(
                sampled_at=at,
                metric=METRIC_TO_PROTO[value.metric],
                value=_value(value.value),
                bounds=bounds_messages(value.bounds, bounds_pb2.Bounds),
            )
            for value in sample.metrics
            if _wanted(value.metric, metrics)
        ],
        states=[
            components_pb2.ComponentState(
                sampled_at=at,
                states=[_STATE_TO_PROTO[state] for state in sample.states],
                errors=[error_code(name) for name in sample.errors],
            )
        ],
    )


def component_data_parts(response: pb.ReceiveComponentDataStreamResponse) -> MessageParts:
    """Find what changes from sample to sample in a data response (see `StreamMessage`)."""
    data = response.data
    samples = data.metric_samples
    return MessageParts(
        times=[m.sampled_at for m in samples] + [state.sampled_at for state in data.states],
        values=[m.value.simple_metric for m in samples],
        bounds=[list(m.bounds) for m in samples],
    )


def sensor_data_to_proto(
    sample: ComponentSample, metrics: frozenset[int]
) -> sensors_pb2.SensorData:
    """Build a weather station's data message, keeping only `metrics` (all when empty)."""
    at = timestamp(sample.sampled_at)
    return sensors_pb2.SensorData(
        sensor_id=sample.component_id,
        metric_samples=[
            sensors_pb2.SensorMetricSample(
                sampled_at=at, metric=METRIC_TO_PROTO[value.metric], value=_value(value.value)
            )
            for value in sample.metrics
            if _wanted(value.metric, metrics)
        ],
        states=[
            sensors_pb2.SensorState(
                sampled_at=at, states=[sensors_pb2.SensorStateCode.SENSOR_STATE_CODE_ON]
            )
        ],
    )


class MicrogridServicerV1(pb_grpc.MicrogridServicer):
    """Serves v1 from a `SimService`."""

    def __init__(self, service: SimService) -> None:
        """Serve `service`'s site."""
        self._service = service
        self._site = service.site

    # ------------------------------------------------------------- metadata

    @override
    async def GetMicrogridMetadata(
        self, request: empty_pb2.Empty, context: Context
    ) -> pb.GetMicrogridMetadataResponse:
        """Describe the microgrid: id, enterprise, name, delivery area, location."""
        return await unary(context, self._metadata)

    async def _metadata(self) -> pb.GetMicrogridMetadataResponse:
        microgrid = self._site.microgrid
        return pb.GetMicrogridMetadataResponse(
            microgrid=microgrid_pb2.Microgrid(
                id=microgrid.id,
                enterprise_id=microgrid.enterprise_id,
                name=microgrid.name,
                delivery_area=delivery_area_pb2.DeliveryArea(
                    code=microgrid.delivery_area,
                    code_type=delivery_area_pb2.EnergyMarketCodeType.ENERGY_MARKET_CODE_TYPE_EUROPE_EIC,
                ),
                location=location_pb2.Location(
                    latitude=microgrid.latitude,
                    longitude=microgrid.longitude,
                    country_code=microgrid.country_code,
                ),
                status=microgrid_pb2.MicrogridStatus.MICROGRID_STATUS_ACTIVE,
                create_timestamp=timestamp(self._service.started_at),
            )
        )

    @override
    async def ListComponents(
        self, request: pb.ListComponentsRequest, context: Context
    ) -> pb.ListComponentsResponse:
        """List components; ids AND categories, OR within each list, empty = all."""

        async def call() -> pb.ListComponentsResponse:
            ids = set(request.component_ids)
            categories = set(request.categories)
            return pb.ListComponentsResponse(
                components=[
                    component_to_proto(spec, self._site.microgrid.id)
                    for spec in self._site.components
                    if selected(ids, spec.id) and selected(categories, CATEGORY_OF_KIND[spec.kind])
                ]
            )

        return await unary(context, call)

    @override
    async def ListSensors(
        self, request: pb.ListSensorRequest, context: Context
    ) -> pb.ListSensorsResponse:
        """List the weather stations; ids AND categories, as ListComponents."""

        async def call() -> pb.ListSensorsResponse:
            ids = set(request.sensor_ids)
            categories = set(request.categories)
            return pb.ListSensorsResponse(
                sensors=[
                    sensor_to_proto(sensor, self._site.microgrid.id)
                    for sensor in self._site.sensors
                    if selected(ids, sensor.id)
                    and selected(categories, SENSOR_CATEGORY[sensor.kind])
                ]
            )

        return await unary(context, call)

    @override
    async def ListConnections(
        self, request: pb.ListConnectionsRequest, context: Context
    ) -> pb.ListConnectionsResponse:
        """List connections (pointing away from the grid); `starts` AND `ends`."""

        async def call() -> pb.ListConnectionsResponse:
            starts = set(request.starts)
            ends = set(request.ends)
            return pb.ListConnectionsResponse(
                connections=[
                    components_pb2.ComponentConnection(
                        source_component_id=source,
                        destination_component_id=destination,
                        operational_lifetime=_lifetime(),
                    )
                    for source, destination in self._site.connections
                    if selected(starts, source) and selected(ends, destination)
                ]
            )

        return await unary(context, call)

    # ------------------------------------------------------------- telemetry

    @override
    async def ReceiveComponentDataStream(
        self, request: pb.ReceiveComponentDataStreamRequest, context: Context
    ) -> AsyncIterator[pb.ReceiveComponentDataStreamResponse]:
        """Stream a component's data at the site's rate, filtered by metric."""
        metrics = _metric_filter(request.filter.metrics)

        def build(sample: ComponentSample) -> pb.ReceiveComponentDataStreamResponse:
            return pb.ReceiveComponentDataStreamResponse(
                data=component_data_to_proto(sample, metrics)
            )

        message = StreamMessage(build, component_data_parts, partial(_wanted, metrics=metrics))
        samples = self._service.stream(request.component_id)
        async for sample in streamed(context, samples):
            yield message.update(sample)

    @override
    async def ReceiveSensorDataStream(
        self, request: pb.ReceiveSensorDataStreamRequest, context: Context
    ) -> AsyncIterator[pb.ReceiveSensorDataStreamResponse]:
        """Stream a weather station's readings, filtered by metric."""
        metrics = _metric_filter(request.filter.metrics)
        samples = self._service.stream(request.sensor_id, sensor=True)
        async for sample in streamed(context, samples):
            yield pb.ReceiveSensorDataStreamResponse(data=sensor_data_to_proto(sample, metrics))

    # ------------------------------------------------------------- control

    @override
    async def AddComponentBounds(
        self, request: pb.AddComponentBoundsRequest, context: Context
    ) -> pb.AddComponentBoundsResponse:
        """Narrow a component's bounds for a while; `ts` is when they expire."""

        async def call() -> pb.AddComponentBoundsResponse:
            until = await self._service.add_bounds(
                request.component_id,
                lookup(METRIC_FROM_PROTO, request.target_metric, "metric"),
                requested_ranges(request.bounds),
                lookup(VALIDITY_SECONDS, request.validity_duration, "validity_duration"),
            )
            return pb.AddComponentBoundsResponse(ts=timestamp(until))

        return await unary(context, call)

    @override
    async def SetComponentPowerActive(
        self, request: pb.SetComponentPowerActiveRequest, context: Context
    ) -> pb.SetComponentPowerActiveResponse:
        """Set active power; answers when the command expires (default now + 60 s)."""

        async def call() -> pb.SetComponentPowerActiveResponse:
            record = await self._service.set_power(
                request.component_id,
                request.power,
                request.request_lifetime if request.HasField("request_lifetime") else None,
                reactive=False,
            )
            return pb.SetComponentPowerActiveResponse(valid_until=timestamp(record.valid_until))

        return await unary(context, call)

    @override
    async def SetComponentPowerReactive(
        self, request: pb.SetComponentPowerReactiveRequest, context: Context
    ) -> pb.SetComponentPowerReactiveResponse:
        """Set reactive power (VAr); answers when the command expires."""

        async def call() -> pb.SetComponentPowerReactiveResponse:
            record = await self._service.set_power(
                request.component_id,
                request.power,
                request.request_lifetime if request.HasField("request_lifetime") else None,
                reactive=True,
            )
            return pb.SetComponentPowerReactiveResponse(valid_until=timestamp(record.valid_until))

        return await unary(context, call)

    @override
    async def StartComponent(
        self, request: pb.StartComponentRequest, context: Context
    ) -> empty_pb2.Empty:
        """Start a component (a no-op if it runs; refused while in ERROR)."""
        return await change_state(self._service, context, request.component_id, StateAction.START)

    @override
    async def PutComponentInStandby(
        self, request: pb.PutComponentInStandbyRequest, context: Context
    ) -> empty_pb2.Empty:
        """Put a running component in standby at 0 W."""
        return await change_state(self._service, context, request.component_id, StateAction.STANDBY)

    @override
    async def StopComponent(
        self, request: pb.StopComponentRequest, context: Context
    ) -> empty_pb2.Empty:
        """Stop a component (a battery only at 0 W)."""
        return await change_state(self._service, context, request.component_id, StateAction.STOP)

    @override
    async def AckComponentError(
        self, request: pb.AckComponentErrorRequest, context: Context
    ) -> empty_pb2.Empty:
        """Acknowledge an error whose cause is gone, leaving the component in standby."""
        return await change_state(self._service, context, request.component_id, StateAction.ACK)
