"""The simulator's gRPC server: both Microgrid API versions over one model.

It follows the conventions every server of this project shares (`serving.py`):
`--listen 127.0.0.1:0` and a first stdout line `listening address=HOST:PORT`, no
port sharing, streams ending with UNAVAILABLE on shutdown, optional TLS
(`--tls-cert/--tls-key`). Like a Microgrid API endpoint on a site's LAN, it asks for
no API key: TLS protects the wire, not who may command the inverters.

`start_line()` is the second stdout line of `edge-controller sim`: the instant the
site file's fault windows (and a faults file's) count from, and the speed. With
`faults_file` the server watches that file (`faults_watch.py`) while it serves.
"""

from __future__ import annotations

import asyncio
from datetime import UTC
from pathlib import Path

import grpc
import structlog
from frequenz.api.microgrid.v1 import microgrid_pb2_grpc as v1_grpc
from frequenz.api.microgrid.v1alpha18 import microgrid_pb2_grpc as v1alpha18_grpc

from edge_controller.common.clock import Clock
from edge_controller.common.waiting import cancel_and_wait
from edge_controller.servers.common.serving import SERVER_OPTIONS, ServerTls
from edge_controller.servers.common.shell import ManagedServer
from edge_controller.servers.sim.api_v1 import MicrogridServicerV1
from edge_controller.servers.sim.api_v1alpha18 import MicrogridServicerV1Alpha18
from edge_controller.servers.sim.command_log import CommandLog
from edge_controller.servers.sim.faults import FaultBook
from edge_controller.servers.sim.faults_watch import DEFAULT_INTERVAL_S, FaultsFileWatcher
from edge_controller.servers.sim.model import SiteModel
from edge_controller.servers.sim.service import SimService
from edge_controller.servers.sim.site import SiteSpec

_LOG = structlog.get_logger("edge_controller.servers.sim")


class SimulatorServer(ManagedServer):
    """A running simulator: `async with SimulatorServer(site) as server: ...`.

    `faults` is the in-process handle that tests use to switch faults on and off;
    `command_log` holds every accepted command with the bounds of the moment.
    """

    def __init__(
        self,
        site: SiteSpec,
        listen: str = "127.0.0.1:0",
        *,
        clock: Clock | None = None,
        speed: float = 1.0,
        command_log_path: Path | None = None,
        tls: ServerTls | None = None,
        faults_file: Path | None = None,
        faults_poll_s: float = DEFAULT_INTERVAL_S,
    ) -> None:
        """Prepare (not yet start) a server for `site` on `listen` (TLS when `tls`).

        `faults_file` is read here (its faults are in force from the start) and
        watched once the server runs.

        Raises:
            FaultsFileError: the faults file is bad.
        """
        super().__init__(listen, tls)
        self.service = SimService(
            site,
            clock=clock,
            speed=speed,
            command_log=CommandLog(site.simulation.command_log_size, command_log_path),
        )
        self.faults_watcher: FaultsFileWatcher | None = None
        if faults_file is not None:
            self.faults_watcher = FaultsFileWatcher(
                faults_file, site, self.service.faults, interval_s=faults_poll_s
            )
            self.faults_watcher.load()
        self._watching: asyncio.Task[None] | None = None
        self._server: grpc.aio.Server | None = None

    @property
    def model(self) -> SiteModel:
        """The site's physics model (read it only from the server's event loop)."""
        return self.service.model

    @property
    def faults(self) -> FaultBook:
        """The fault book: add or clear faults while clients are connected."""
        return self.service.faults

    @property
    def command_log(self) -> CommandLog:
        """Every accepted command, with its bounds at that moment."""
        return self.service.command_log

    def start_line(self) -> str:
        """Say when the simulation started (fault windows count from it) and its speed.

        `started at=2026-06-21T12:00:00.123456+00:00 speed=1`: the wall-clock instant
        in UTC (the service's clock) that `from`/`until` of every fault window count
        from.
        """
        at = self.service.started_at.astimezone(UTC).isoformat()
        return f"started at={at} speed={self.model.speed:g}"

    async def start(self) -> None:
        """Bind, register both API versions, start ticking.

        Raises:
            ListenAddressError: the address cannot be bound (e.g. the port is taken).
        """
        server = grpc.aio.server(options=SERVER_OPTIONS)
        v1alpha18_grpc.add_MicrogridServicer_to_server(
            MicrogridServicerV1Alpha18(self.service), server
        )
        v1_grpc.add_MicrogridServicer_to_server(MicrogridServicerV1(self.service), server)
        self._bind(server)
        await server.start()
        self._server = server
        self.service.start()
        if self.faults_watcher is not None:
            self._watching = asyncio.get_running_loop().create_task(self.faults_watcher.run())
        _LOG.info(
            "simulator_started",
            address=self.address,
            microgrid_id=self.service.site.microgrid.id,
            components=len(self.service.site.components),
            speed=self.model.speed,
            tls=self.tls is not None,
        )

    async def stop(self, grace_s: float = 1.0) -> None:
        """End streams with UNAVAILABLE, then stop the server."""
        if self._watching is not None:
            await cancel_and_wait(self._watching)
            self._watching = None
        await self.service.close()
        if self._server is not None:
            await asyncio.sleep(0)  # let streams deliver their UNAVAILABLE
            await self._server.stop(grace_s)
            self._server = None
            _LOG.info("simulator_stopped", address=self.address)
