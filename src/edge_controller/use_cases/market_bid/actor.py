"""MarketBidActor: bids the batteries on the electricity market; won bids become dispatches.

```
 Receiver[WeatherForecast] ─┐
 battery_pool() ────────────┤   each round            create_gridpool_order (LIMIT)
 storage_units() ───────────┤   outlook + bids (threshold)
 load_w(t), price(t) ───────┼──► or optimizer.plan_bids ─────────────────────────► Trading API
                            │                                                         │
 Clock ─────────────────────┘          gridpool trades stream (+ listing each round) │
                                 ◄────────────────────────────────────────────────────┘
        trade ──► DispatchProducer.create_battery_power(±MW as W, batteries,
                      start = period start, duration = period) ──► Dispatch API
                      └─► the controller's BatteryPowerActor executes it, as any dispatch
 measured_power_w() ──► SettlementBook: traded vs delivered per period ──► `period_settled`
```

**Rounds.** One round per delivery period, `round_delay` after each gate closure (when
the period just closed has its trades in), plus one at start and one on each new
weather forecast. A round: (1) lists our orders (by `order_tag`) and the gridpool's
trades from the current period on — the market is the source of truth, so a restart or
a dropped stream loses nothing (the same listing runs whenever the trade stream
(re)starts); (2) reads the pool and takes out what the orders and trades still to
deliver may move (`outlook.committed_pool`); (3) builds orders for the next `horizon`
periods with `bids.build_orders`, skipping periods that already have one; (4) places
them (LIMIT, quantities ≥ 0.1 MW in 0.1 MW steps). With `strategy = "optimal"`, (2)
and (3) are one step: `optimizer.plan_bids` plans `plan_horizon` periods from each
inverter's batteries as measured (`storage_units`), the orders and trades still to
deliver as commitments, and keeps every unit above its reserve under any subset of
fills; it is price-taking (the actor reads no order book).

**One order per period, never replaced.** A period that has an order of ours (any state
but FAILED — an order an operator cancelled is not placed again) gets no other one,
and an order is never cancelled to be replaced: the first price and quantity stand.
Replacing is a cancel and a create that are not atomic: a cancel that times out or
arrives after the clearing leaves the old order live, it fills along with the new one,
and the two together may over-commit the batteries. Later rounds still see fresher
forecasts and prices, for the periods that have no order yet.

**Trades become dispatches.** Each trade of one of our orders (from the stream, or found
by a round's listing; counted once by trade id) adds its power to its period: SELL →
discharge (negative W), BUY → charge. A period with traded power gets one dispatch of
`dispatch_type` on `batteries` for exactly the period (a trade learnt after the period
began starts "NOW" for the rest of it). If the traded sum changes (a later trade, or
an adopted dispatch that holds another power), the dispatch's power is updated in
place — a running one takes it at once, with no stop and start in between; one the
service no longer has is created again, and a sum of 0 W deletes it. A dispatch that fails is
retried every `dispatch_retry` until the period ends. At start the actor adopts the
dispatches it made before a restart: same type, target, period start and duration.

**Errors.** A refused order (the trading API's status and message, or the client's own
check) is logged as `order_refused` and the period is tried again in the next round;
a listing that fails skips the round's orders (`bidding_skipped`, retried next
period); a dropped trade stream is logged (`trades_stream_lost`, with the reason), the
client reconnects it, and the trades are listed again when it is back; a stream that
ends for good is reopened after `STREAM_REOPEN_S`. None of these crash the actor.

**Settlement.** The measured power of the trading batteries (a callable, e.g.
`outlook.measured_power_w` over the telemetry cache) is sampled every `tick`; when a
traded period ends it is logged as `period_settled` (traded and delivered MWh,
imbalance, coverage, value) and kept in `settlements`.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
from collections import Counter
from collections.abc import AsyncGenerator, Callable, Collection, Sequence
from datetime import datetime, timedelta
from typing import Any, Final, Literal, Protocol, cast

import grpc
import structlog
from frequenz.channels import Receiver, ReceiverStoppedError, Selected, select, selected_from
from frequenz.channels.timer import SkipMissedAndDrift
from frequenz.client.base.streaming import (
    GrpcStreamBroadcaster,
    StreamEvent,
    StreamFatalError,
    StreamRetrying,
    StreamStarted,
)
from frequenz.client.electricity_trading import (
    Client,
    Currency,
    DeliveryPeriod,
    DeliveryTimeFilter,
    Interval,
    MarketSide,
    OrderState,
    OrderType,
    Power,
    Price,
    PublicTrade,
    Trade,
)

from edge_controller.common.clock import Clock, WallClock
from edge_controller.common.compat import Timer
from edge_controller.dispatching.producer import (
    BATTERY_POWER,
    DispatchProducerError,
    DispatchSummary,
    Start,
    battery_target,
    target_text,
)
from edge_controller.framework.supervision import SupervisedActor
from edge_controller.trading import outlook
from edge_controller.trading.bids import (
    BatteryPool,
    Order,
    PeriodOutlook,
    Side,
    build_orders,
)
from edge_controller.trading.optimizer import Committed, Settings, plan_bids
from edge_controller.trading.periods import period_floor
from edge_controller.trading.settlement import PeriodSettlement, SettlementBook
from edge_controller.trading.storage import StorageUnit
from edge_controller.use_cases.market_bid.config import DURATIONS, MarketBidOptions
from edge_controller.use_cases.market_bid.decide import (
    DeleteDispatch,
    PeriodDispatch,
    PlacedOrder,
    TradedPeriod,
    UpdateDispatch,
    committed,
    dispatch_change,
    forgotten,
    new_dispatch,
    side_power_w,
)
from edge_controller.weather.messages import WeatherForecast

_DURATION_OF: Final = {value: key for key, value in DURATIONS.items()}
_NOT_AN_ORDER: Final = frozenset({OrderState.FAILED})
STREAM_REOPEN_S: Final = 5.0
"""How long after a market stream ended for good it is opened again."""


class DispatchSink(Protocol):
    """Where won trades go: `dispatching.producer.DispatchProducer` is one."""

    async def create_battery_power(
        self,
        power_w: float,
        batteries: Collection[int] | None,
        start: Start,
        duration: timedelta | None,
        *,
        dry_run: bool = False,
        dispatch_type: str = BATTERY_POWER,
    ) -> int:
        """Create a battery-power dispatch; return its id."""
        ...

    async def set_battery_power(self, dispatch_id: int, power_w: float) -> object:
        """Change a battery-power dispatch's power in place."""
        ...

    async def delete(self, dispatch_id: int) -> None:
        """Delete a dispatch."""
        ...

    async def list(self) -> builtins.list[DispatchSummary]:
        """Return every dispatch of the microgrid."""
        ...


def _side(side: MarketSide) -> Side:
    return Side.SELL if side is MarketSide.SELL else Side.BUY


def _market_side(side: Side) -> MarketSide:
    return MarketSide.SELL if side is Side.SELL else MarketSide.BUY


def _reason(error: BaseException) -> dict[str, Any]:
    if isinstance(error, grpc.aio.AioRpcError):
        code = error.code()
        return {"code": code.name if code is not None else None, "reason": error.details()}
    if isinstance(error, DispatchProducerError):
        return {"code": error.code, "reason": str(error)}
    return {"code": None, "reason": str(error) or type(error).__name__}


_ApiError: Final = (grpc.RpcError, ValueError, TimeoutError, DispatchProducerError)
"""What a call to the trading or dispatch API may raise that is not our bug."""


class MarketBidActor(SupervisedActor):
    """Bids the trading batteries on the market and dispatches won trades; see the module.

    ```
    actor = MarketBidActor(
        Client(server_url=url, auth_key=key),            # the real trading client
        DispatchProducer(dispatch_url, microgrid_id, key),
        forecasts,                                       # Receiver[WeatherForecast]
        inputs.battery_pool,                             # telemetry_inputs(...)
        options=MarketBidOptions(gridpool_id=1, batteries=frozenset({11, 21})),
        measured_power_w=inputs.measured_power_w,
        storage_units=inputs.storage_units,              # for strategy "optimal"
    )
    ```

    `load_w` defaults to `options.flat_load_w` all day; `expected_price` to the mean
    cleared price by hour of day of the market's public trades in the delivery area
    (read from `options.price_history` back), else `options.flat_price`. `tick` is how
    often the clock is looked at (rounds, dispatch retries, settlement samples):
    rounds follow a clock that jumps (a `ManualClock`) within a tick. The trade and
    public-trade streams the actor opens on `trading` are stopped when it stops.

    With `options.bidding == "optimal"`, `storage_units` gives the batteries per
    inverter as the distribution splits a target between them: the plan keeps each
    one above its reserve. Without it the pool is planned as one unit (its floor the
    reserve), which the pool's average may hide a battery below (tests, old wiring).

    For tests and metrics: `orders` and `dispatches` by period start, `traded_w`,
    `settlements` (settled periods), `open_settlements`, `counts` (rounds,
    orders_placed, orders_refused, trades, dispatches_created, dispatch_failures, ...),
    `last_outlooks` and `last_pool` (what the last round built from).
    """

    def __init__(
        self,
        trading: Client,
        dispatches: DispatchSink,
        forecasts: Receiver[WeatherForecast],
        battery_pool: Callable[[], BatteryPool | None],
        *,
        options: MarketBidOptions | None = None,
        measured_power_w: Callable[[], float | None] | None = None,
        storage_units: Callable[[], Sequence[StorageUnit]] | None = None,
        load_w: outlook.LoadForecast | None = None,
        expected_price: outlook.PriceForecast | None = None,
        clock: Clock | None = None,
        tick: timedelta = timedelta(seconds=1),
        max_sample_gap: timedelta = timedelta(seconds=30),
        name: str = "market_bid",
    ) -> None:
        """Bid with `trading`, dispatch with `dispatches`; see the class docstring.

        Raises:
            ValueError: `tick` not > 0.
        """
        if tick <= timedelta(0):
            raise ValueError(f"tick: expected > 0, got {tick}")
        super().__init__(name=name)
        self._trading = trading
        self._sink = dispatches
        self._forecasts = forecasts
        self._battery_pool = battery_pool
        self.options = options or MarketBidOptions()
        self._measured_power_w = measured_power_w
        self._storage_units = storage_units
        self._load_w = load_w or outlook.flat_load(self.options.flat_load_w)
        self._prices: outlook.HourlyPrices | None = None
        if expected_price is None:
            self._prices = outlook.HourlyPrices(
                self.options.flat_price, keep=self.options.price_history
            )
            expected_price = self._prices
        self._expected_price: outlook.PriceForecast = expected_price
        self._clock: Clock = clock or WallClock()
        self._tick = tick
        self._log = structlog.get_logger(__name__).bind(actor=name)
        self._book = SettlementBook(max_gap=max_sample_gap)
        self._target = target_text(battery_target(self.options.batteries))
        self._forecast: WeatherForecast | None = None
        self._orders: dict[datetime, PlacedOrder] = {}
        self._order_ids: set[int] = set()
        self._periods: dict[datetime, TradedPeriod] = {}
        self._dispatched: dict[datetime, PeriodDispatch] = {}
        self._next_round: datetime | None = None
        self._adopted = False
        self._forecasts_ended = False
        self.counts: Counter[str] = Counter()
        self.last_outlooks: tuple[PeriodOutlook, ...] = ()
        self.last_pool: BatteryPool | None = None

    # ------------------------------------------------------------------ reading

    @property
    def orders(self) -> dict[datetime, PlacedOrder]:
        """Our order for each period, by start (a copy)."""
        return dict(self._orders)

    @property
    def dispatches(self) -> dict[datetime, PeriodDispatch]:
        """The dispatch executing each traded period, by start (a copy)."""
        return dict(self._dispatched)

    @property
    def traded_w(self) -> dict[datetime, float]:
        """The traded power of each period (W, passive: − sold), by start."""
        return {start: period.traded_w for start, period in self._periods.items()}

    @property
    def settlements(self) -> tuple[PeriodSettlement, ...]:
        """Settled periods, oldest first."""
        return self._book.settled

    @property
    def open_settlements(self) -> dict[datetime, PeriodSettlement]:
        """Traded periods not yet ended, with what was delivered so far."""
        return self._book.open

    @property
    def prices(self) -> outlook.HourlyPrices | None:
        """The price forecast learnt from public trades (None when one was given)."""
        return self._prices

    # ------------------------------------------------------------------ the loop

    async def _run(self) -> None:
        while True:
            await self._follow()

    async def _follow(self) -> None:
        """Handle ticks, forecasts and the market's streams until a stream ends for good.

        The client retries a failed stream itself; a stream that ends (cleanly, or after
        the client gave up) is reopened `STREAM_REOPEN_S` later, by returning.
        """
        options = self.options
        trades_stream = self._trading.gridpool_trades_stream(
            options.gridpool_id, tag=options.order_tag
        )
        streams: list[GrpcStreamBroadcaster[Any, Any]] = [trades_stream]
        trades: Receiver[Trade | StreamEvent] = trades_stream.new_receiver(include_events=True)
        public: Receiver[PublicTrade] | None = None
        if self._prices is not None:
            public_stream = self._trading.receive_public_trades(
                buy_delivery_area=options.area,
                start_time=self._clock.now() - options.price_history,
            )
            streams.append(public_stream)
            public = public_stream.new_receiver()
        receivers: list[Receiver[Any]] = [trades, *([public] if public is not None else [])]
        if not self._forecasts_ended:
            receivers.append(self._forecasts)
        ticker = Timer(self._tick, SkipMissedAndDrift(), tick_at_start=True)
        loop = asyncio.get_running_loop()
        reopen_at: float | None = None
        try:
            # `select` is an async generator (typed as an iterator): closed here, not
            # left to the garbage collector to finalise on whatever loop runs then.
            selecting = cast(AsyncGenerator[Selected[Any], None], select(ticker, *receivers))
            async with contextlib.aclosing(selecting) as selections:
                async for selected in selections:
                    if selected_from(selected, ticker):
                        await self._on_tick()
                        if reopen_at is not None and loop.time() >= reopen_at:
                            return
                    elif selected_from(selected, self._forecasts):
                        await self._on_forecast(selected)
                    elif selected_from(selected, trades) or (
                        public is not None and selected_from(selected, public)
                    ):
                        if selected.was_stopped:
                            self._log.warning("market_stream_ended", reopen_in_s=STREAM_REOPEN_S)
                            reopen_at = loop.time() + STREAM_REOPEN_S
                        else:
                            await self._on_stream_item(selected.message)
        finally:
            ticker.close()
            for stream in streams:
                await stream.stop()

    async def _on_forecast(self, selected: Selected[WeatherForecast]) -> None:
        try:
            forecast = selected.message
        except ReceiverStoppedError:
            self._forecasts_ended = True
            self._log.warning("weather_forecasts_ended", last_issued_at=self._issued_at())
            return
        self._forecast = forecast
        self._log.info("weather_forecast_received", issued_at=forecast.issued_at.isoformat())
        await self._round()

    def _issued_at(self) -> str | None:
        return self._forecast.issued_at.isoformat() if self._forecast is not None else None

    async def _on_stream_item(self, item: Trade | PublicTrade | StreamEvent) -> None:
        if isinstance(item, Trade):
            await self._apply_trade(item, source="stream")
        elif isinstance(item, PublicTrade):
            if self._prices is not None:
                self._prices.record(item.delivery_period.start, float(item.price.amount))
        elif isinstance(item, StreamRetrying):
            self._log.warning(
                "trades_stream_lost",
                retry_in_s=item.delay.total_seconds(),
                **_reason(item.exception) if item.exception else {"reason": "closed"},
            )
        elif isinstance(item, StreamFatalError):
            self._log.error("trades_stream_failed", **_reason(item.exception))
        elif isinstance(item, StreamStarted):
            # Trades made before the stream (re)started are only found by listing.
            self._log.info("trades_stream_started")
            now = self._clock.now()
            if await self._list_orders(now):
                await self._list_trades(now)

    async def _on_tick(self) -> None:
        now = self._clock.now()
        if self._measured_power_w is not None:
            self._book.add_sample(now, self._measured_power_w())
        for settled in self._book.settle_due(now):
            self._log.info(
                "period_settled",
                period_start=settled.start.isoformat(),
                traded_mwh=round(settled.traded_mwh, 6),
                delivered_mwh=round(settled.delivered_mwh, 6),
                imbalance_mwh=round(settled.imbalance_mwh, 6),
                coverage=round(settled.coverage, 3),
                value_eur=round(settled.value_eur, 2),
                trades=settled.trades,
            )
        for start in sorted(self._periods):
            period = self._periods[start]
            if period.retry_at is not None and now >= period.retry_at:
                await self._sync_dispatch(start, now)
        if self._next_round is None or now >= self._next_round:
            await self._round()
        self._forget(now)
        self.counts["evaluations"] += 1

    # ------------------------------------------------------------------ rounds

    async def _round(self) -> None:
        now = self._clock.now()
        self._next_round = self.options.next_round(now)
        self.counts["rounds"] += 1
        await self._adopt_dispatches()
        if not await self._list_orders(now) or not await self._list_trades(now):
            self.counts["rounds_skipped"] += 1
            self._log.warning("bidding_skipped", reason="our orders are unknown; next round")
            return
        measured = self._battery_pool()
        if measured is None:
            self.counts["rounds_skipped"] += 1
            self._log.warning("bidding_skipped", reason="no battery state")
            return
        sell_wh, buy_wh = outlook.committed_energy_wh(self._committed(), now)
        pool = outlook.committed_pool(measured, sell_wh=sell_wh, buy_wh=buy_wh)
        options = self.options
        starts = outlook.delivery_starts(now, options.period, options.gate_closure, options.horizon)
        outlooks = outlook.period_outlooks(
            starts,
            options.period,
            forecast=self._forecast,
            site=options.site,
            load_w=self._load_w,
            expected_price=self._expected_price,
        )
        self.last_pool, self.last_outlooks = pool, tuple(outlooks)
        if not outlooks:
            self.counts["rounds_skipped"] += 1
            self._log.warning(
                "bidding_skipped", reason="no weather forecast covers the coming periods"
            )
            return
        if options.bidding == "optimal":
            orders = self._optimal_orders(measured, now, starts[0])
        else:
            orders = build_orders(outlooks, pool, options.strategy, skip=frozenset(self._orders))
        self._log.info(
            "bids_built",
            periods=len(outlooks),
            first_period=outlooks[0].start.isoformat(),
            prices=[round(o.expected_price, 2) for o in outlooks],
            pool_soc_pct=round(pool.soc_pct, 2),
            committed_sell_kwh=round(sell_wh / 1000, 1),
            committed_buy_kwh=round(buy_wh / 1000, 1),
            orders=len(orders),
        )
        for order in orders:
            await self._place(order)

    def _optimal_orders(self, measured: BatteryPool, now: datetime, first: datetime) -> list[Order]:
        """The optimizer's orders for the open periods of `horizon` that have none.

        Plans `plan_horizon` periods from the batteries as measured (`storage_units`, one
        unit per inverter; else the pool as one unit), with every order and trade of
        ours still to deliver as commitments: a period that has one is fixed at its
        power, the one being delivered moves the starting energy (`plan_bids`). The
        plan is price-taking: the actor reads no order book (the trading API's public
        order book stream is not served by the local market), so each period's
        `PeriodOutlook` has no price response.
        """
        options = self.options
        starts = outlook.delivery_starts(
            now, options.period, options.gate_closure, max(options.plan_horizon, options.horizon)
        )
        periods = outlook.period_outlooks(
            starts,
            options.period,
            forecast=self._forecast,
            site=options.site,
            load_w=self._load_w,
            expected_price=self._expected_price,
        )
        units = list(self._storage_units()) if self._storage_units is not None else []
        per_unit = bool(units)
        if not per_unit:
            units = [
                StorageUnit(
                    unit_id=0,
                    capacity_wh=measured.capacity_wh,
                    soc_pct=measured.soc_pct,
                    soc_lower_pct=0.0,
                    soc_upper_pct=100.0,
                    floor_pct=options.reserve_soc_pct,
                    ceiling_pct=measured.soc_upper_pct,
                    charge_max_w=measured.charge_max_w,
                    discharge_max_w=measured.discharge_max_w,
                    efficiency=measured.efficiency,
                )
            ]
        place = {first + i * options.period for i in range(options.horizon)}
        plan = plan_bids(
            periods,
            units,
            Settings(
                degradation_eur_per_mwh=options.degradation_cost,
                max_volume_mw=options.max_volume_mw,
                max_import_w=options.max_import_w,
                max_export_w=options.max_export_w,
            ),
            now=now,
            place=place,
            committed=self._committed(),
        )
        self._log.info(
            "plan_solved",
            periods=len(plan.periods),
            units=[u.unit_id for u in units] if per_unit else "pool",
            solve_ms=round(plan.solve_ms, 1),
            shortfall_wh=round(plan.shortfall_wh, 1),
        )
        return list(plan.orders)

    def _committed(self) -> list[Committed]:
        """Every period with a trade or an order of ours (`decide.committed`)."""
        return committed(self._periods, self._orders, self.options.period)

    async def _place(self, order: Order) -> None:
        options = self.options
        try:
            # The limit is ours, not the client's `timeout=`: that one is an
            # `asyncio.wait_for`, which can drop the actor's stop (see `waiting`).
            async with asyncio.timeout(options.call_timeout.total_seconds()):
                placed = await self._trading.create_gridpool_order(
                    options.gridpool_id,
                    delivery_area=options.area,
                    delivery_period=DeliveryPeriod(order.period_start, DURATIONS[order.duration]),
                    order_type=OrderType.LIMIT,
                    side=_market_side(order.side),
                    price=Price(order.limit_price, Currency.EUR),
                    quantity=Power(order.quantity_mw),
                    tag=options.order_tag,
                )
        except _ApiError as error:
            self.counts["orders_refused"] += 1
            self._log.warning(
                "order_refused",
                period_start=order.period_start.isoformat(),
                side=order.side.value,
                quantity_mw=str(order.quantity_mw),
                limit_price=str(order.limit_price),
                retry="next round",
                **_reason(error),
            )
            return
        self.counts["orders_placed"] += 1
        self._order_ids.add(placed.order_id)
        self._orders[order.period_start] = PlacedOrder(
            placed.order_id,
            order.side,
            order.quantity_mw,
            order.limit_price,
            placed.state_detail.state.name,
            placed.open_quantity.mw,
        )
        self._log.info(
            "order_placed",
            order_id=placed.order_id,
            period_start=order.period_start.isoformat(),
            side=order.side.value,
            quantity_mw=str(order.quantity_mw),
            limit_price=str(order.limit_price),
        )

    def _since(self, now: datetime) -> DeliveryTimeFilter:
        """Periods from the current one on."""
        return DeliveryTimeFilter(
            time_interval=Interval(start_time=period_floor(now, self.options.period))
        )

    async def _list_orders(self, now: datetime) -> bool:
        """Refresh our orders from the market; False (logged) when the listing failed."""
        options = self.options
        try:
            async with asyncio.timeout(options.call_timeout.total_seconds()):
                details = [
                    detail
                    async for detail in self._trading.list_gridpool_orders(
                        options.gridpool_id,
                        tag=options.order_tag,
                        delivery_time_filter=self._since(now),
                    )
                ]
        except _ApiError as error:
            self._log.warning("orders_list_failed", **_reason(error))
            return False
        for detail in details:
            if detail.state_detail.state in _NOT_AN_ORDER:
                continue
            self._order_ids.add(detail.order_id)
            start = detail.order.delivery_period.start
            known = self._orders.get(start)
            if known is not None and known.order_id != detail.order_id:
                self._log.warning(
                    "second_order_found",
                    period_start=start.isoformat(),
                    order_ids=[known.order_id, detail.order_id],
                )
            self._orders[start] = PlacedOrder(
                detail.order_id,
                _side(detail.order.side),
                detail.order.quantity.mw,
                detail.order.price.amount,
                detail.state_detail.state.name,
                detail.open_quantity.mw,
            )
        return True

    async def _list_trades(self, now: datetime) -> bool:
        """Apply the trades of our orders the stream may have missed; False if it failed."""
        options = self.options
        try:
            async with asyncio.timeout(options.call_timeout.total_seconds()):
                trades = [
                    trade
                    async for trade in self._trading.list_gridpool_trades(
                        options.gridpool_id,
                        delivery_time_filter=self._since(now),
                    )
                ]
        except _ApiError as error:
            self._log.warning("trades_list_failed", **_reason(error))
            return False
        for trade in trades:
            if trade.order_id in self._order_ids:
                await self._apply_trade(trade, source="listing")
        return True

    # ------------------------------------------------------------------ trades → dispatches

    async def _apply_trade(self, trade: Trade, *, source: Literal["stream", "listing"]) -> None:
        start = trade.delivery_period.start
        duration = _DURATION_OF.get(trade.delivery_period.duration, self.options.period)
        period = self._periods.setdefault(start, TradedPeriod(duration))
        power_w = side_power_w(_side(trade.side), trade.quantity.mw)
        if not period.count_trade(trade.id, power_w):
            return
        self._order_ids.add(trade.order_id)
        self._book.add_trade(start, duration, power_w, float(trade.price.amount))
        order = self._orders.get(start)
        if order is not None and order.order_id == trade.order_id:
            self._orders[start] = order.filled(trade.quantity.mw)
        self.counts["trades"] += 1
        self._log.info(
            "trade_received",
            trade_id=trade.id,
            order_id=trade.order_id,
            period_start=start.isoformat(),
            side=_side(trade.side).value,
            quantity_mw=str(trade.quantity.mw),
            price=str(trade.price.amount),
            period_power_w=period.traded_w,
            source=source,
        )
        await self._sync_dispatch(start, self._clock.now())

    async def _sync_dispatch(self, start: datetime, now: datetime) -> None:
        """Make the period's dispatch carry its traded power (retried on failure).

        The dispatches made before a restart are adopted first: a trade the stream
        delivers before the first round must not create a second dispatch.
        """
        await self._adopt_dispatches()
        period = self._periods[start]
        current = self._dispatched.get(start)
        period.retry_at = None
        change = dispatch_change(start, period, current, now)
        if change is None:
            return
        try:
            if isinstance(change, UpdateDispatch):
                if await self._update(change.dispatch_id, change.power_w):
                    self.counts["dispatches_updated"] += 1
                    self._dispatched[start] = PeriodDispatch(change.dispatch_id, change.power_w)
                    self._log.info(
                        "dispatch_updated",
                        dispatch_id=change.dispatch_id,
                        period_start=start.isoformat(),
                        power_w=change.power_w,
                        was_w=change.was_w,
                    )
                    return
                del self._dispatched[start]  # gone from the service: create it again
                change = new_dispatch(start, period, now)
            elif isinstance(change, DeleteDispatch):
                await self._delete(change.dispatch_id)
                del self._dispatched[start]
                self._log.info(
                    "dispatch_deleted",
                    dispatch_id=change.dispatch_id,
                    period_start=start.isoformat(),
                )
                return
            if change is None:
                return
            dispatch_id = await self._sink.create_battery_power(
                change.power_w,
                self.options.batteries,
                change.start,
                timedelta(seconds=change.duration_s),
                dispatch_type=self.options.dispatch_type,
            )
        except _ApiError as error:
            self.counts["dispatch_failures"] += 1
            period.retry_at = now + self.options.dispatch_retry
            self._log.warning(
                "dispatch_failed",
                period_start=start.isoformat(),
                power_w=period.traded_w,
                retry_in_s=self.options.dispatch_retry.total_seconds(),
                **_reason(error),
            )
            return
        self.counts["dispatches_created"] += 1
        self._dispatched[start] = PeriodDispatch(dispatch_id, change.power_w)
        self._log.info(
            "dispatch_created",
            dispatch_id=dispatch_id,
            dispatch_type=self.options.dispatch_type,
            period_start=start.isoformat(),
            start="NOW" if change.start == "NOW" else start.isoformat(),
            duration_s=change.duration_s,
            power_w=change.power_w,
            target=self._target,
        )

    async def _update(self, dispatch_id: int, power_w: float) -> bool:
        """Set a dispatch's power in place; False when the service no longer has it."""
        try:
            await self._sink.set_battery_power(dispatch_id, power_w)
        except DispatchProducerError as error:
            if error.code == "NOT_FOUND":
                return False
            raise
        return True

    async def _delete(self, dispatch_id: int) -> None:
        try:
            await self._sink.delete(dispatch_id)
        except DispatchProducerError as error:
            if error.code != "NOT_FOUND":  # already gone: nothing to undo
                raise

    async def _adopt_dispatches(self) -> None:
        """Take over the dispatches this actor made before a restart (see the module)."""
        if self._adopted:
            return
        try:
            summaries = await self._sink.list()
        except _ApiError as error:
            self._log.warning("dispatch_list_failed", **_reason(error))
            return
        self._adopted = True
        now = self._clock.now()
        for summary in summaries:
            start = summary.start
            if (
                summary.type == self.options.dispatch_type
                and summary.target == self._target
                and summary.duration == self.options.period
                and start + self.options.period > now
                and period_floor(start, self.options.period) == start
                and start not in self._dispatched
                and isinstance(summary.payload.get("power_w"), int | float)
            ):
                power_w = float(summary.payload["power_w"])
                self._dispatched[start] = PeriodDispatch(summary.id, power_w)
                self._log.info(
                    "dispatch_adopted",
                    dispatch_id=summary.id,
                    period_start=start.isoformat(),
                    power_w=power_w,
                )

    def _forget(self, now: datetime) -> None:
        """Drop what belongs to periods that ended over an hour ago (`decide.forgotten`)."""
        stale = forgotten(self._periods, self._orders, now, self.options.period)
        for start in stale.periods:
            del self._periods[start]
            self._dispatched.pop(start, None)
        for start in stale.orders:
            self._order_ids.discard(self._orders.pop(start).order_id)


__all__ = [
    "DispatchSink",
    "MarketBidActor",
]
