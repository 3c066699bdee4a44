"""The local market's gRPC server: the Electricity Trading API over a `MarketExchange`.

It follows the conventions every server of this project shares (`serving.py`):
`--listen 127.0.0.1:0` and a first stdout line `listening address=HOST:PORT`, no port
sharing, streams ending with UNAVAILABLE on shutdown, optional TLS (`--tls-cert/--tls-key`);
API keys from a keys file, sent by the client as gRPC metadata `key` (the dispatch
service's interceptor; still required under TLS).

Clearing runs on the server's clock: a background task clears each period at its gate
closure (it wakes at least every `MAX_NAP_S`, so a clock that jumps is followed too).
With a `ManualClock`, tests advance the clock and call `clear_due()` themselves.
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Final

import grpc
import structlog
from frequenz.api.electricity_trading.v1 import electricity_trading_pb2_grpc as pb_grpc

from edge_controller.common.clock import Clock, WallClock
from edge_controller.common.waiting import cancel_and_wait
from edge_controller.servers.common.api_keys import KeyAuthInterceptor
from edge_controller.servers.common.serving import SERVER_OPTIONS, ServerTls
from edge_controller.servers.common.shell import ManagedServer
from edge_controller.servers.market.clearing import PeriodRecord
from edge_controller.servers.market.exchange import MarketExchange
from edge_controller.servers.market.member_store import MemberStore
from edge_controller.servers.market.model import MarketSpec, Weather, default_market
from edge_controller.servers.market.service import ElectricityTradingServicer
from edge_controller.servers.market.web import MarketWeb

_LOG = structlog.get_logger("edge_controller.servers.market")


@dataclass(frozen=True, slots=True)
class HttpSettings:
    """The market's REST API and dashboard: where, who may log in, where members are kept."""

    listen: str
    users_file: Path
    members_db: Path | None = None
    """SQLite file of the members; None: changes last until the server stops."""
    tls: ssl.SSLContext | None = None


MAX_NAP_S: Final = 1.0
"""The clearing task sleeps at most this long between looks at the clock."""


class MarketServer(ManagedServer):
    """A running local market: `async with MarketServer(spec, keys=...) as server: ...`.

    ```
    clock = ManualClock()
    async with MarketServer(None, "127.0.0.1:0", keys=frozenset({"k"}), clock=clock) as server:
        client = Client(server_url=server.url, auth_key="k")   # the real trading client
        ...            # place orders for the period server.exchange.first_open_period()
        clock.advance(timedelta(minutes=20))
        server.clear_due()                       # trades arrive on the client's streams
    ```

    `spec` None serves `default_market()`. `keys` None serves without authentication
    (lab use; a warning is logged); a set of keys makes every call need one of them as
    metadata `key`. `clock` (default: the wall clock) is the market's "now": validation,
    timestamps and clearing. `weather` plugs in wind and turbine models (default: the
    market file's own). `auto_clear` False leaves clearing to `clear_due()` alone.
    `tls` (default: plain text) serves with that certificate and key; clients then
    connect with `?ssl=true`. `http` adds the REST API and dashboard (`web`), with the
    members kept in `http.members_db` when given.
    """

    def __init__(
        self,
        spec: MarketSpec | None = None,
        listen: str = "127.0.0.1:0",
        *,
        keys: frozenset[str] | None,
        clock: Clock | None = None,
        weather: Weather | None = None,
        auto_clear: bool = True,
        tls: ServerTls | None = None,
        http: HttpSettings | None = None,
    ) -> None:
        """Prepare (not yet start) a server for `spec` on `listen`.

        Raises:
            ListenAddressError: `listen` is not `HOST:PORT`.
            ValueError: `keys` is an empty set (it would refuse every call).
        """
        if keys is not None and not keys:
            raise ValueError(
                "keys: an empty set would refuse every call; pass None to serve without keys"
            )
        super().__init__(listen, tls)
        self.spec = spec or default_market()
        self._keys = keys
        self._clock = clock or WallClock()
        self._weather = weather
        self._auto_clear = auto_clear
        self._exchange: MarketExchange | None = None
        self._server: grpc.aio.Server | None = None
        self._clearing: asyncio.Task[None] | None = None
        self._http_settings = http
        self.http: MarketWeb | None = None
        self._store: MemberStore | None = None

    @property
    def exchange(self) -> MarketExchange:
        """The market behind the API (after `start`): tests read and clear it."""
        if self._exchange is None:
            raise RuntimeError("MarketServer.exchange: the server is not started")
        return self._exchange

    def clear_due(self, now: datetime | None = None) -> list[PeriodRecord]:
        """Clear every period whose gate has closed by `now` (default: the clock's now)."""
        return self.exchange.clear_due(now)

    async def start(self) -> None:
        """Open the market, bind, serve, and start clearing on time.

        Raises:
            ListenAddressError: the address cannot be bound (e.g. the port is taken).
        """
        owners: dict[str, str] = {}
        settings = self._http_settings
        if settings is not None and settings.members_db is not None:
            self._store = MemberStore(settings.members_db)
            self.spec, owners = self._store.open(self.spec)
        exchange = MarketExchange(self.spec, clock=self._clock, weather=self._weather)
        interceptors = [KeyAuthInterceptor(self._keys)] if self._keys is not None else []
        server = grpc.aio.server(options=SERVER_OPTIONS, interceptors=interceptors)
        pb_grpc.add_ElectricityTradingServiceServicer_to_server(
            ElectricityTradingServicer(exchange), server
        )
        self._bind(server)
        await server.start()
        self._server = server
        self._exchange = exchange
        if settings is not None:
            self.http = MarketWeb(
                exchange,
                settings.listen,
                users_file=settings.users_file,
                store=self._store,
                owners=owners,
                tls=settings.tls,
            )
            try:
                await self.http.start()
            except BaseException:
                await self.stop(0)
                raise
        if self._auto_clear:
            self._clearing = asyncio.create_task(self._clear_on_time(), name="market-clearing")
        rules = self.spec.rules
        _LOG.info(
            "market_server_started",
            address=self.address,
            gridpool_ids=sorted(rules.gridpool_ids),
            delivery_areas=sorted(rules.delivery_areas) or "any",
            period_min=rules.period.total_seconds() / 60,
            gate_closure_min=rules.gate_closure.total_seconds() / 60,
            first_period=exchange.next_clearing.isoformat(),
            auth="keys" if self._keys is not None else "off",
            key_count=len(self._keys) if self._keys is not None else 0,
            tls=self.tls is not None,
        )
        if self._keys is None:
            _LOG.warning(
                "auth_disabled", detail="every client is accepted without an API key (--no-auth)"
            )

    async def _clear_on_time(self) -> None:
        """Clear each period at its gate closure, on the server's clock, until cancelled."""
        exchange = self.exchange
        while True:
            try:
                exchange.clear_due(self._clock.now())
            except Exception:  # a bug; keep the market running and say so
                _LOG.exception("clearing_failed", period_start=exchange.next_clearing.isoformat())
                await asyncio.sleep(MAX_NAP_S)
                continue
            wait_s = (exchange.next_gate_closure - self._clock.now()).total_seconds()
            await asyncio.sleep(min(max(wait_s, 0.0), MAX_NAP_S))

    async def stop(self, grace_s: float = 1.0) -> None:
        """Stop clearing and the HTTP face, end streams with UNAVAILABLE, let calls finish."""
        if self.http is not None:
            await self.http.stop()
            self.http = None
        if self._store is not None:
            self._store.close()
            self._store = None
        if self._clearing is not None:
            await cancel_and_wait(self._clearing)
            self._clearing = None
        if self._exchange is not None:
            await self._exchange.close()
        if self._server is not None:
            await asyncio.sleep(0)  # let streams deliver their UNAVAILABLE
            await self._server.stop(grace_s)
            self._server = None
            _LOG.info("market_server_stopped", address=self.address)


__all__ = ["MAX_NAP_S", "HttpSettings", "MarketServer"]
