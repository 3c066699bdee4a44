"""The local Weather API server: `grpc.aio`, measured data, no key.

It follows the conventions every server of this project shares (`serving.py`):
`--listen 127.0.0.1:0` and a first stdout line `listening address=HOST:PORT`, no
port sharing, streams ending with UNAVAILABLE on shutdown, optional TLS
(`--tls-cert/--tls-key`). The weather is public, read-only data and the real
`frequenz-client-weather` sends no key: there is no authentication.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import grpc
import structlog
from frequenz.api.weather.v1 import weather_pb2_grpc as pb_grpc

from edge_controller.common.clock import Clock
from edge_controller.servers.common.serving import SERVER_OPTIONS, ServerTls
from edge_controller.servers.common.shell import ManagedServer
from edge_controller.servers.weather.service import ServiceSettings, WeatherService
from edge_controller.servers.weather.servicer import WeatherServicer
from edge_controller.weather.data import Dataset

_LOG = structlog.get_logger("edge_controller.weather")


class WeatherServer(ManagedServer):
    """A running Weather API server: `async with WeatherServer() as server: ...`.

    `service` is the in-process handle tests use (`drop_streams`, `live_streams`).
    Connect the real client with `Client(server.url)`.
    """

    def __init__(
        self,
        listen: str = "127.0.0.1:0",
        *,
        settings: ServiceSettings | None = None,
        clock: Clock | None = None,
        datasets: Sequence[Dataset] | None = None,
        tls: ServerTls | None = None,
    ) -> None:
        """Prepare (not yet start) a server on `listen` (TLS when `tls`).

        Raises:
            ListenAddressError: `listen` is not `HOST:PORT`.
        """
        super().__init__(listen, tls)
        self.service = WeatherService(settings, clock=clock, datasets=datasets)
        self._server: grpc.aio.Server | None = None

    async def start(self) -> None:
        """Read the datasets, bind, and serve.

        Raises:
            ListenAddressError: the address cannot be bound (e.g. the port is taken).
        """
        datasets = await asyncio.to_thread(lambda: self.service.datasets)
        server = grpc.aio.server(options=SERVER_OPTIONS)
        pb_grpc.add_WeatherForecastServiceServicer_to_server(WeatherServicer(self.service), server)
        self._bind(server)
        await server.start()
        self._server = server
        settings = self.service.settings
        _LOG.info(
            "weather_server_started",
            address=self.address,
            datasets=[dataset.key for dataset in datasets],
            resolution_s=settings.resolution.total_seconds(),
            horizon_h=settings.horizon.total_seconds() / 3600,
            issue_interval_s=settings.issue_interval.total_seconds(),
            seed=settings.seed,
            tls=self.tls is not None,
        )

    async def stop(self, grace_s: float = 1.0) -> None:
        """End streams with UNAVAILABLE, then stop the server."""
        await self.service.close()
        if self._server is not None:
            await asyncio.sleep(0)  # let streams deliver their UNAVAILABLE
            await self._server.stop(grace_s)
            self._server = None
            _LOG.info("weather_server_stopped", address=self.address)


__all__ = ["WeatherServer"]
