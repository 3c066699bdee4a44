"""The `frequenz.api.microgrid.v1.Microgrid` service over the simulator (in progress)."""

from __future__ import annotations

from frequenz.api.microgrid.v1 import microgrid_pb2_grpc as pb_grpc

from edge_controller.sim.service import SimService


class MicrogridServicerV1(pb_grpc.MicrogridServicer):
    """Serves v1 from a `SimService`."""

    def __init__(self, service: SimService) -> None:
        """Serve `service`'s site."""
        self._service = service
