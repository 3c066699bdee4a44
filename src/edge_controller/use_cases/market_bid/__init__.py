"""Bid the batteries' flexibility on a market and turn won bids into dispatches.

The plug-in (`USE_CASE`) owns the top-level `[market_bid]` table rather than a
`[[use_cases]]` entry (see `SectionUseCase`): operators' files keep their format; its
keys name key files and credentials, read relative to the config file; it is applied
at start only (an open order book and a trade-to-dispatch ledger are not rebuilt by a
live edit); and it acts on no dispatch — it creates them, for a `battery_power` use
case to run. It runs the WeatherActor (`weather_actor.py`) that feeds its forecasts.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from edge_controller.common.key_specs import SectionSpec
from edge_controller.common.toml_reader import Reader
from edge_controller.framework.use_case import (
    ConfigPlace,
    UseCaseActors,
    UseCaseConfig,
    UseCaseContext,
)
from edge_controller.use_cases.market_bid.config import (
    MARKET_BID,
    MarketBidConfig,
    MarketBidOptions,
    parse_market_bid,
)

if TYPE_CHECKING:
    from edge_controller.use_cases.market_bid.actor import MarketBidActor

KIND = "market_bid"


class MarketBidStatus:
    """The bidder's events for `/metrics`; it runs no dispatch and holds no target."""

    def __init__(self, bidder: MarketBidActor, anchor: object) -> None:
        """Read `bidder`; keep `anchor` (the forecast channel's first receiver) alive."""
        self.bidder = bidder
        self._anchor = anchor

    @property
    def running_dispatches(self) -> Mapping[int, float]:
        """None: the dispatches it creates run in a battery_power use case."""
        return {}

    @property
    def driving(self) -> Mapping[frozenset[int], float]:
        """None: it commands nothing itself."""
        return {}

    @property
    def counts(self) -> Mapping[str, int]:
        """Rounds, orders, trades, dispatches created (the actor's own counter)."""
        return dict(self.bidder.counts)


class MarketBid:
    """The `market_bid` use case: configured by `[market_bid]`, run when it is there."""

    kind = KIND
    default_dispatch_types: tuple[str, ...] = ()
    keys = SectionSpec(
        "use_cases",
        "Not a `[[use_cases]]` kind: configured by `[market_bid]`.",
        live=False,
        array=True,
        keys=(),
    )
    section = MARKET_BID

    def parse(self, reader: Reader, item: Mapping[str, Any], path: str) -> object:
        """Never called: it has no `[[use_cases]]` entry (`parse_section` reads it)."""
        return None

    def parse_section(
        self, reader: Reader, table: Mapping[str, Any], place: ConfigPlace
    ) -> object | None:
        """The validated `[market_bid]` table (`config.parse_market_bid`)."""
        return parse_market_bid(reader, table, place.base_dir, place.environ)

    def build(self, context: UseCaseContext, config: UseCaseConfig) -> UseCaseActors:
        """The WeatherActor and the MarketBidActor (imported here: pvlib is slow to load).

        Raises:
            ValueError: the context gives no Dispatch API to write won trades to.
        """
        from frequenz.channels import BroadcastChannel
        from frequenz.client.electricity_trading import Client as TradingClient

        from edge_controller.dispatching.producer import DispatchProducer
        from edge_controller.use_cases.market_bid.actor import MarketBidActor
        from edge_controller.use_cases.market_bid.site_reading import telemetry_inputs
        from edge_controller.use_cases.market_bid.weather_actor import (
            WeatherActor,
            WeatherApiSource,
        )
        from edge_controller.weather.messages import GeoLocation, WeatherForecast
        from edge_controller.weather.openweathermap import OpenWeatherMapSource

        section = config.options
        assert isinstance(section, MarketBidConfig), "parsed by MarketBid.parse_section"
        if context.dispatch_api is None:
            raise ValueError("market_bid needs the Dispatch API to create dispatches")
        options = MarketBidOptions(**section.options)
        forecasts, forecasts_in = BroadcastChannel[WeatherForecast](
            name="weather_forecasts", resend_latest=True
        )
        location = GeoLocation(section.latitude, section.longitude, section.country_code)
        source: WeatherApiSource | OpenWeatherMapSource
        if section.openweathermap_key_file is not None:
            source = (
                OpenWeatherMapSource(
                    location, section.openweathermap_key_file, base_url=section.openweathermap_url
                )
                if section.openweathermap_url
                else OpenWeatherMapSource(location, section.openweathermap_key_file)
            )
        else:
            source = WeatherApiSource(section.weather_url, location)
        weather = WeatherActor(source, forecasts)
        anchor = forecasts.subscribe()
        api = context.dispatch_api
        producer = DispatchProducer(api.url, api.microgrid_id, api.auth_key)
        trading = TradingClient(server_url=section.trading_url, auth_key=section.auth_key)
        inputs = telemetry_inputs(context.site.cache, context.site.pairs, options, context.clock)
        bidder = MarketBidActor(
            trading,
            producer,
            forecasts_in,
            inputs.battery_pool,
            options=options,
            measured_power_w=inputs.measured_power_w,
            storage_units=inputs.storage_units,
            clock=context.clock,
        )
        return UseCaseActors(
            (weather, bidder),
            status=MarketBidStatus(bidder, anchor),
            closers=(producer.close, trading.disconnect),
        )


USE_CASE = MarketBid()
