"""The `frequenz.api.microgrid.v1alpha18.Microgrid` service over the simulator.

This is the API that `frequenz-client-microgrid` 0.18 (and so `frequenz-sdk` rc2214)
speaks. Every field that client reads is filled, so it logs no "missing" warnings.
Refusals are always gRPC status errors — never a "rejected" first message on
SetElectricalComponentPower, which the client would read as success.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable

from frequenz.api.common.v1alpha8.grid import delivery_area_pb2
from frequenz.api.common.v1alpha8.metrics import bounds_pb2, metrics_pb2
from frequenz.api.common.v1alpha8.microgrid import lifetime_pb2, microgrid_pb2
from frequenz.api.common.v1alpha8.microgrid.electrical_components import (
    electrical_components_pb2 as ec_pb2,
)
from frequenz.api.common.v1alpha8.microgrid.sensors import sensors_pb2
from frequenz.api.common.v1alpha8.types import location_pb2
from frequenz.api.microgrid.v1alpha18 import microgrid_pb2 as pb
from frequenz.api.microgrid.v1alpha18 import microgrid_pb2_grpc as pb_grpc
from google.protobuf import empty_pb2
from typing_extensions import override

from edge_controller.power.bounds import Range
from edge_controller.servers.sim.errors import ErrorKind, SimError
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
from edge_controller.servers.sim.site import ComponentSpec
from edge_controller.servers.sim.site_details import (
    BatterySpec,
    ComponentKind,
    EvChargerSpec,
    GridSpec,
    InverterSpec,
    PvSpec,
)
from edge_controller.servers.sim.stream_message import MessageParts, StreamMessage

_METRIC_NAMES = {
    Metric.AC_ACTIVE_POWER: "AC_POWER_ACTIVE",
    Metric.AC_ACTIVE_POWER_PHASE_1: "AC_POWER_ACTIVE_PHASE_1",
    Metric.AC_ACTIVE_POWER_PHASE_2: "AC_POWER_ACTIVE_PHASE_2",
    Metric.AC_ACTIVE_POWER_PHASE_3: "AC_POWER_ACTIVE_PHASE_3",
    Metric.AC_REACTIVE_POWER: "AC_POWER_REACTIVE",
}
METRIC_TO_PROTO: dict[Metric, metrics_pb2.Metric.ValueType] = {
    metric: metrics_pb2.Metric.Value("METRIC_" + _METRIC_NAMES.get(metric, metric.name))
    for metric in Metric
}
METRIC_FROM_PROTO = {value: metric for metric, value in METRIC_TO_PROTO.items()}

_CATEGORY = ec_pb2.ElectricalComponentCategory
CATEGORY_OF_KIND: dict[ComponentKind, ec_pb2.ElectricalComponentCategory.ValueType] = {
    ComponentKind.GRID: _CATEGORY.ELECTRICAL_COMPONENT_CATEGORY_GRID_CONNECTION_POINT,
    ComponentKind.METER: _CATEGORY.ELECTRICAL_COMPONENT_CATEGORY_METER,
    ComponentKind.LOAD: _CATEGORY.ELECTRICAL_COMPONENT_CATEGORY_METER,
    ComponentKind.BATTERY_INVERTER: _CATEGORY.ELECTRICAL_COMPONENT_CATEGORY_INVERTER,
    ComponentKind.PV_INVERTER: _CATEGORY.ELECTRICAL_COMPONENT_CATEGORY_INVERTER,
    ComponentKind.BATTERY: _CATEGORY.ELECTRICAL_COMPONENT_CATEGORY_BATTERY,
    ComponentKind.WIND_TURBINE: _CATEGORY.ELECTRICAL_COMPONENT_CATEGORY_WIND_TURBINE,
    ComponentKind.EV_CHARGER: _CATEGORY.ELECTRICAL_COMPONENT_CATEGORY_EV_CHARGER,
    # v1alpha8 has no relay category: a breaker is the switch it knows.
    ComponentKind.RELAY: _CATEGORY.ELECTRICAL_COMPONENT_CATEGORY_BREAKER,
    ComponentKind.PRECHARGER: _CATEGORY.ELECTRICAL_COMPONENT_CATEGORY_PRECHARGER,
}
_STATE_TO_PROTO = {
    code: ec_pb2.ElectricalComponentStateCode.Value(f"ELECTRICAL_COMPONENT_STATE_CODE_{code.name}")
    for code in StateCode
}


def bounds_to_proto(ranges: Iterable[Range]) -> list[bounds_pb2.Bounds]:
    """Return ranges as API bounds (an infinite end is left unset)."""
    return bounds_messages(ranges, bounds_pb2.Bounds)


def component_to_proto(spec: ComponentSpec, microgrid_id: int) -> ec_pb2.ElectricalComponent:
    """Describe a component as ListElectricalComponents does."""
    info = ec_pb2.ElectricalComponentCategorySpecificInfo()
    rated: list[ec_pb2.MetricConfigBounds] = []
    details = spec.details
    match details:
        case GridSpec():
            info.grid_connection_point.rated_fuse_current = details.rated_fuse_current_a
        case InverterSpec():
            info.inverter.type = ec_pb2.InverterType.INVERTER_TYPE_BATTERY
            rated.append(_rated(Metric.AC_ACTIVE_POWER, details.active_bounds))
        case PvSpec():
            info.inverter.type = ec_pb2.InverterType.INVERTER_TYPE_PV
            rated.append(_rated(Metric.AC_ACTIVE_POWER, Range(-details.peak_power_w, 0.0)))
        case BatterySpec():
            info.battery.type = ec_pb2.BatteryType.BATTERY_TYPE_LI_ION
            rated.append(_rated(Metric.DC_POWER, details.power_bounds))
        case EvChargerSpec():
            info.ev_charger.type = ec_pb2.EvChargerType.EV_CHARGER_TYPE_AC
            rated.append(_rated(Metric.AC_ACTIVE_POWER, Range(0.0, details.max_power_w)))
        case _:
            pass
    return ec_pb2.ElectricalComponent(
        id=spec.id,
        microgrid_id=microgrid_id,
        name=spec.name,
        category=CATEGORY_OF_KIND[spec.kind],
        category_specific_info=info,
        manufacturer=spec.manufacturer,
        model_name=spec.model_name,
        operational_lifetime=lifetime_pb2.Lifetime(start_timestamp=timestamp(EPOCH)),
        metric_config_bounds=rated,
    )


def _rated(metric: Metric, bounds: Range) -> ec_pb2.MetricConfigBounds:
    return ec_pb2.MetricConfigBounds(
        metric=METRIC_TO_PROTO[metric],
        config_bounds=bounds_pb2.Bounds(lower=bounds.lower, upper=bounds.upper),
    )


def telemetry_to_proto(
    sample: ComponentSample, metrics: frozenset[int]
) -> ec_pb2.ElectricalComponentTelemetry:
    """Build a telemetry message, keeping only `metrics` (all when empty)."""
    at = timestamp(sample.sampled_at)
    return ec_pb2.ElectricalComponentTelemetry(
        electrical_component_id=sample.component_id,
        metric_samples=[
            metrics_pb2.MetricSample(
                sample_time=at,
                metric=METRIC_TO_PROTO[value.metric],
                value=metrics_pb2.MetricValueVariant(
                    simple_metric=metrics_pb2.SimpleMetricValue(value=value.value)
                ),
                bounds=bounds_to_proto(value.bounds),
            )
            for value in sample.metrics
            if not metrics or METRIC_TO_PROTO[value.metric] in metrics
        ],
        state_snapshots=[
            ec_pb2.ElectricalComponentStateSnapshot(
                origin_time=at,
                states=[_STATE_TO_PROTO[state] for state in sample.states],
                errors=[
                    ec_pb2.ElectricalComponentDiagnostic(
                        diagnostic_code=_diagnostic_code(code), message=code
                    )
                    for code in sample.errors
                ],
            )
        ],
    )


def telemetry_parts(
    response: pb.ReceiveElectricalComponentTelemetryStreamResponse,
) -> MessageParts:
    """Find what changes from sample to sample in a telemetry response (see `StreamMessage`)."""
    telemetry = response.telemetry
    samples = telemetry.metric_samples
    return MessageParts(
        times=[m.sample_time for m in samples]
        + [snapshot.origin_time for snapshot in telemetry.state_snapshots],
        values=[m.value.simple_metric for m in samples],
        bounds=[list(m.bounds) for m in samples],
    )


def _diagnostic_code(name: str) -> ec_pb2.ElectricalComponentDiagnosticCode.ValueType:
    codes = ec_pb2.ElectricalComponentDiagnosticCode
    return enum_value(
        codes,
        f"ELECTRICAL_COMPONENT_DIAGNOSTIC_CODE_{name}",
        codes.ELECTRICAL_COMPONENT_DIAGNOSTIC_CODE_UNKNOWN,
    )


def metric_from_proto(value: metrics_pb2.Metric.ValueType) -> Metric:
    """Return the simulator's metric for an API metric number.

    Raises:
        SimError: INVALID_ARGUMENT for a metric the simulator does not know.
    """
    return lookup(METRIC_FROM_PROTO, value, "metric")


class MicrogridServicerV1Alpha18(pb_grpc.MicrogridServicer):
    """Serves v1alpha18 from a `SimService`."""

    def __init__(self, service: SimService) -> None:
        """Serve `service`'s site."""
        self._service = service
        self._site = service.site

    @override
    async def GetMicrogrid(
        self, request: empty_pb2.Empty, context: Context
    ) -> pb.GetMicrogridResponse:
        """Describe the microgrid, with every field the 0.18 client checks."""
        microgrid = self._site.microgrid
        return pb.GetMicrogridResponse(
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
    async def ListElectricalComponents(
        self, request: pb.ListElectricalComponentsRequest, context: Context
    ) -> pb.ListElectricalComponentsResponse:
        """List components; ids AND categories, OR within each list, empty = all."""
        ids = set(request.electrical_component_ids)
        categories = set(request.electrical_component_categories)
        return pb.ListElectricalComponentsResponse(
            electrical_components=[
                component_to_proto(spec, self._site.microgrid.id)
                for spec in self._site.components
                if selected(ids, spec.id) and selected(categories, CATEGORY_OF_KIND[spec.kind])
            ]
        )

    @override
    async def ListSensors(
        self, request: pb.ListSensorRequest, context: Context
    ) -> pb.ListSensorsResponse:
        """List the weather stations (filtered by id when ids are given)."""
        ids = set(request.sensor_ids)
        return pb.ListSensorsResponse(
            sensors=[
                sensors_pb2.Sensor(
                    id=sensor.id,
                    microgrid_id=self._site.microgrid.id,
                    name=sensor.name,
                    manufacturer="edge-controller",
                    model_name="simulated weather station",
                    operational_lifetime=lifetime_pb2.Lifetime(start_timestamp=timestamp(EPOCH)),
                )
                for sensor in self._site.sensors
                if selected(ids, sensor.id)
            ]
        )

    @override
    async def ListElectricalComponentConnections(
        self, request: pb.ListElectricalComponentConnectionsRequest, context: Context
    ) -> pb.ListElectricalComponentConnectionsResponse:
        """List connections (pointing away from the grid), filtered by ends."""
        sources = set(request.source_electrical_component_ids)
        destinations = set(request.destination_electrical_component_ids)
        return pb.ListElectricalComponentConnectionsResponse(
            electrical_component_connections=[
                ec_pb2.ElectricalComponentConnection(
                    source_electrical_component_id=source,
                    destination_electrical_component_id=destination,
                    operational_lifetime=lifetime_pb2.Lifetime(start_timestamp=timestamp(EPOCH)),
                )
                for source, destination in self._site.connections
                if selected(sources, source) and selected(destinations, destination)
            ]
        )

    @override
    async def ReceiveElectricalComponentTelemetryStream(
        self, request: pb.ReceiveElectricalComponentTelemetryStreamRequest, context: Context
    ) -> AsyncIterator[pb.ReceiveElectricalComponentTelemetryStreamResponse]:
        """Stream a component's telemetry at the site's rate, filtered by metric."""
        metrics = frozenset(int(m) for m in request.filter.metrics)

        def build(sample: ComponentSample) -> pb.ReceiveElectricalComponentTelemetryStreamResponse:
            return pb.ReceiveElectricalComponentTelemetryStreamResponse(
                telemetry=telemetry_to_proto(sample, metrics)
            )

        message = StreamMessage(
            build,
            telemetry_parts,
            lambda metric: not metrics or METRIC_TO_PROTO[metric] in metrics,
        )
        samples = self._service.stream(request.electrical_component_id)
        async for sample in streamed(context, samples):
            yield message.update(sample)

    @override
    async def ReceiveSensorTelemetryStream(
        self, request: pb.ReceiveSensorTelemetryStreamRequest, context: Context
    ) -> AsyncIterator[pb.ReceiveSensorTelemetryStreamResponse]:
        """Stream a weather station's readings."""
        metrics = frozenset(int(m) for m in request.filter.metrics)
        samples = self._service.stream(request.sensor_id, sensor=True)
        async for sample in streamed(context, samples):
            at = timestamp(sample.sampled_at)
            yield pb.ReceiveSensorTelemetryStreamResponse(
                telemetry=sensors_pb2.SensorTelemetry(
                    sensor_id=sample.component_id,
                    metric_samples=[
                        metrics_pb2.MetricSample(
                            sample_time=at,
                            metric=METRIC_TO_PROTO[value.metric],
                            value=metrics_pb2.MetricValueVariant(
                                simple_metric=metrics_pb2.SimpleMetricValue(value=value.value)
                            ),
                        )
                        for value in sample.metrics
                        if not metrics or METRIC_TO_PROTO[value.metric] in metrics
                    ],
                    state_snapshots=[
                        sensors_pb2.SensorStateSnapshot(
                            origin_time=at,
                            states=[sensors_pb2.SensorStateCode.SENSOR_STATE_CODE_OK],
                        )
                    ],
                )
            )

    @override
    async def AugmentElectricalComponentBounds(
        self, request: pb.AugmentElectricalComponentBoundsRequest, context: Context
    ) -> pb.AugmentElectricalComponentBoundsResponse:
        """Narrow a component's bounds for a while; returns when they expire."""

        async def call() -> pb.AugmentElectricalComponentBoundsResponse:
            until = await self._service.add_bounds(
                request.electrical_component_id,
                metric_from_proto(request.target_metric),
                requested_ranges(request.bounds),
                request.request_lifetime if request.HasField("request_lifetime") else None,
                request.bounds_token,
            )
            return pb.AugmentElectricalComponentBoundsResponse(valid_until_time=timestamp(until))

        return await unary(context, call)

    @override
    async def ClearElectricalComponentBounds(
        self, request: pb.ClearElectricalComponentBoundsRequest, context: Context
    ) -> empty_pb2.Empty:
        """Drop added bounds with the given token (all added bounds when empty)."""

        async def call() -> empty_pb2.Empty:
            metric = metric_from_proto(request.target_metric)
            await self._service.control(
                request.electrical_component_id,
                lambda _now: self._service.model.clear_bounds(
                    request.electrical_component_id, metric, request.bounds_token
                ),
            )
            return empty_pb2.Empty()

        return await unary(context, call)

    @override
    async def SetElectricalComponentPower(
        self, request: pb.SetElectricalComponentPowerRequest, context: Context
    ) -> AsyncIterator[pb.SetElectricalComponentPowerResponse]:
        """Set power: ACCEPTED (with the expiry) then SUCCESS, or a status error."""

        async def call() -> pb.SetElectricalComponentPowerResponse:
            if request.power_type == pb.PowerType.POWER_TYPE_UNSPECIFIED:
                raise SimError(ErrorKind.INVALID_ARGUMENT, "power_type must be ACTIVE or REACTIVE")
            record = await self._service.set_power(
                request.electrical_component_id,
                request.power,
                request.request_lifetime if request.HasField("request_lifetime") else None,
                reactive=request.power_type == pb.PowerType.POWER_TYPE_REACTIVE,
            )
            return pb.SetElectricalComponentPowerResponse(
                valid_until_time=timestamp(record.valid_until),
                status=pb.SetElectricalComponentPowerRequestStatus.SET_ELECTRICAL_COMPONENT_POWER_REQUEST_STATUS_ACCEPTED,
            )

        accepted = await unary(context, call)
        yield accepted
        yield pb.SetElectricalComponentPowerResponse(
            valid_until_time=accepted.valid_until_time,
            status=pb.SetElectricalComponentPowerRequestStatus.SET_ELECTRICAL_COMPONENT_POWER_REQUEST_STATUS_SUCCESS,
        )

    @override
    async def StartElectricalComponent(
        self, request: pb.StartElectricalComponentRequest, context: Context
    ) -> empty_pb2.Empty:
        """Start a component."""
        return await change_state(
            self._service, context, request.electrical_component_id, StateAction.START
        )

    @override
    async def PutElectricalComponentInStandby(
        self, request: pb.PutElectricalComponentInStandbyRequest, context: Context
    ) -> empty_pb2.Empty:
        """Put a component in standby."""
        return await change_state(
            self._service, context, request.electrical_component_id, StateAction.STANDBY
        )

    @override
    async def StopElectricalComponent(
        self, request: pb.StopElectricalComponentRequest, context: Context
    ) -> empty_pb2.Empty:
        """Stop a component."""
        return await change_state(
            self._service, context, request.electrical_component_id, StateAction.STOP
        )

    @override
    async def AckElectricalComponentError(
        self, request: pb.AckElectricalComponentErrorRequest, context: Context
    ) -> empty_pb2.Empty:
        """Acknowledge a component's error."""
        return await change_state(
            self._service, context, request.electrical_component_id, StateAction.ACK
        )
