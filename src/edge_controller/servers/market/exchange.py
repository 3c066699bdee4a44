"""The local market's operations, independent of gRPC: orders, clearing on time, streams.

```
create/cancel ─► orders (pure rules) ─► order book (memory) ─► order stream
clear_due(now) ─► for each period whose gate has closed, in order:
                  model.situation ─► clearing.clear_period ─► order updates, trades,
                  public trade, period record ─► streams
```

Characteristics:

- **Time** is the injected `Clock`; nothing here sleeps. `clear_due(now)` clears every
  period whose gate closure is at or before `now`, oldest first, each exactly once. The
  server calls it on a timer (at each gate closure on the wall clock); tests advance a
  `ManualClock` and call it themselves.
- The market opens at creation: the first period cleared is the first whose gate was
  still open then. Periods are cleared even without orders, so the members' batteries,
  the records and the public trades follow every period.
- Everything runs on one event loop; no method awaits while changing state, so a
  clearing never interleaves with an order.
- Each stream has a bounded queue (`SUBSCRIBER_QUEUE_SIZE`); a subscriber that falls that
  far behind has its stream ended with UNAVAILABLE. `close()` ends every stream with
  UNAVAILABLE.
- Order, trade and period history is kept in memory for the server's lifetime.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Final, Generic, Literal, TypeVar

import structlog

from edge_controller.common.clock import Clock, WallClock
from edge_controller.servers.market import orders
from edge_controller.servers.market.clearing import KW_PER_MW, Bid, PeriodRecord, clear_period
from edge_controller.servers.market.errors import ErrorKind, MarketError, not_found
from edge_controller.servers.market.members import carry_state
from edge_controller.servers.market.model import (
    MarketSpec,
    MarketState,
    Weather,
    initial_state,
    situation,
    weather_from_spec,
)
from edge_controller.servers.market.orders import (
    OrderFilter,
    OrderRecord,
    OrderRequest,
    OrderState,
    PublicTradeFilter,
    PublicTradeRecord,
    TradeFilter,
    TradeRecord,
)
from edge_controller.trading.periods import first_open_period, gate_closure

_LOG = structlog.get_logger("edge_controller.servers.market")
_T = TypeVar("_T")
SUBSCRIBER_QUEUE_SIZE: Final = 1000
"""Items buffered per stream before a slow subscriber is cut off (UNAVAILABLE)."""
StreamKind = Literal["orders", "trades", "public_trades"]


@dataclass(frozen=True, slots=True)
class _EndOfStream:
    reason: str


class _Subscription(Generic[_T]):
    """One stream's mailbox, with the filter that decides what it wants."""

    def __init__(self, wants: Callable[[_T], bool]) -> None:
        self.wants = wants
        self.queue: asyncio.Queue[_T | _EndOfStream] = asyncio.Queue(SUBSCRIBER_QUEUE_SIZE + 1)
        self.ended = False

    def offer(self, item: _T | _EndOfStream) -> None:
        if self.ended:
            return
        if isinstance(item, _EndOfStream):
            self.ended = True
            while not self.queue.empty():  # the end goes first: nothing after it matters
                self.queue.get_nowait()
            self.queue.put_nowait(item)
        elif not self.wants(item):
            return
        elif self.queue.qsize() >= SUBSCRIBER_QUEUE_SIZE:
            self.offer(_EndOfStream(f"stream fell {SUBSCRIBER_QUEUE_SIZE} items behind"))
        else:
            self.queue.put_nowait(item)


class _Topic(Generic[_T]):
    """Subscribers to one kind of item."""

    def __init__(self) -> None:
        self.subscriptions: set[_Subscription[_T]] = set()

    def publish(self, item: _T) -> None:
        for subscription in list(self.subscriptions):
            subscription.offer(item)

    def end_all(self, reason: str) -> None:
        for subscription in list(self.subscriptions):
            subscription.offer(_EndOfStream(reason))

    def count(self) -> int:
        return sum(1 for s in self.subscriptions if not s.ended)

    async def follow(
        self, wants: Callable[[_T], bool], backlog: Sequence[_T] = ()
    ) -> AsyncGenerator[_T, None]:
        subscription: _Subscription[_T] = _Subscription(wants)
        self.subscriptions.add(subscription)
        try:
            for item in backlog:
                yield item
            while True:
                received = await subscription.queue.get()
                if isinstance(received, _EndOfStream):
                    raise MarketError(ErrorKind.UNAVAILABLE, received.reason)
                yield received
        finally:
            subscription.ended = True
            self.subscriptions.discard(subscription)


class MarketExchange:
    """A local electricity market: order book, clearing at gate closure, and streams.

    ```
    exchange = MarketExchange(default_market(), clock=ManualClock(start))
    record = exchange.create_order(1, request)      # ACTIVE
    clock.advance(timedelta(minutes=20))
    exchange.clear_due()                            # FILLED/EXPIRED, trades, records
    ```

    `weather` plugs in wind and turbine models (default: the market file's own).
    Every method raises `MarketError` for a request it refuses.
    """

    def __init__(
        self, spec: MarketSpec, *, clock: Clock | None = None, weather: Weather | None = None
    ) -> None:
        """Open the market now: the first period cleared is the first still open."""
        self.spec = spec
        self._clock = clock or WallClock()
        self._weather = weather or weather_from_spec(spec)
        self._state: MarketState = initial_state(spec)
        rules = spec.rules
        self._next_start = first_open_period(self._clock.now(), rules.period, rules.gate_closure)
        self._orders: dict[int, OrderRecord] = {}
        self._trades: list[TradeRecord] = []
        self._public_trades: list[PublicTradeRecord] = []
        self._records: dict[datetime, PeriodRecord] = {}
        self._inputs: dict[datetime, tuple[MarketSpec, MarketState]] = {}
        self._order_topic: _Topic[OrderRecord] = _Topic()
        self._trade_topic: _Topic[TradeRecord] = _Topic()
        self._public_topic: _Topic[PublicTradeRecord] = _Topic()
        self._closed = False

    # ------------------------------------------------------------------ reading

    @property
    def now(self) -> datetime:
        """The market's current time (its clock's)."""
        return self._clock.now()

    @property
    def next_clearing(self) -> datetime:
        """The start of the next period to clear."""
        return self._next_start

    @property
    def next_gate_closure(self) -> datetime:
        """When the next clearing is due."""
        return gate_closure(self._next_start, self.spec.rules.gate_closure)

    def first_open_period(self, now: datetime | None = None) -> datetime:
        """Return the start of the earliest period that still takes orders at `now`."""
        rules = self.spec.rules
        return first_open_period(now or self.now, rules.period, rules.gate_closure)

    @property
    def records(self) -> dict[datetime, PeriodRecord]:
        """Every cleared period's record, by period start (a copy)."""
        return dict(self._records)

    @property
    def state(self) -> MarketState:
        """The members' batteries after the last cleared period."""
        return self._state

    @property
    def weather(self) -> Weather:
        """The wind and turbine models the market clears with."""
        return self._weather

    def inputs(self, start: datetime) -> tuple[MarketSpec, MarketState] | None:
        """The members and batteries a cleared period started with (None: not cleared)."""
        return self._inputs.get(start)

    def change_members(self, spec: MarketSpec) -> None:
        """Clear the next periods with `spec`'s members (its rules must be the same).

        Periods already cleared keep their outcome; each prosumer that stays keeps its
        batteries' energy, a new one starts with its initial energy.

        Raises:
            ValueError: `spec` has other market rules.
        """
        if spec.rules != self.spec.rules:
            raise ValueError("change_members: the market's rules cannot change while it runs")
        self._state = carry_state(self.spec, self._state, spec)
        self.spec = spec

    def stream_count(self, kind: StreamKind) -> int:
        """Return how many streams of `kind` are open (tests wait on this)."""
        if kind == "orders":
            return self._order_topic.count()
        if kind == "trades":
            return self._trade_topic.count()
        return self._public_topic.count()

    # ------------------------------------------------------------------ orders

    def _check_open(self) -> None:
        if self._closed:
            raise MarketError(ErrorKind.UNAVAILABLE, "the market is shutting down")

    def create_order(self, gridpool_id: int, request: OrderRequest) -> OrderRecord:
        """Validate and place an order; return it ACTIVE."""
        self._check_open()
        orders.check_gridpool(gridpool_id, self.spec.rules)
        now = self.now
        order = orders.validate_order(request, self.spec.rules, now)
        record = orders.new_record(len(self._orders) + 1, gridpool_id, order, now)
        self._orders[record.order_id] = record
        self._order_topic.publish(record)
        _LOG.info(
            "order_created",
            gridpool_id=gridpool_id,
            order_id=record.order_id,
            side=order.side.value,
            period_start=orders.show_time(order.period_start),
            price=str(order.price),
            quantity_mw=str(order.quantity_mw),
        )
        return record

    def _lookup(self, gridpool_id: int, order_id: int) -> OrderRecord:
        orders.check_gridpool(gridpool_id, self.spec.rules)
        record = self._orders.get(order_id)
        if record is None or record.gridpool_id != gridpool_id:
            raise not_found(f"order_id: no order {order_id} in gridpool {gridpool_id}")
        return record

    def get_order(self, gridpool_id: int, order_id: int) -> OrderRecord:
        """Return one order of the gridpool."""
        self._check_open()
        return self._lookup(gridpool_id, order_id)

    def cancel_order(self, gridpool_id: int, order_id: int) -> OrderRecord:
        """Cancel an ACTIVE order whose gate is still open; return it CANCELED."""
        self._check_open()
        record = orders.cancel(self._lookup(gridpool_id, order_id), self.spec.rules, self.now)
        self._orders[order_id] = record
        self._order_topic.publish(record)
        _LOG.info("order_cancelled", gridpool_id=gridpool_id, order_id=order_id)
        return record

    def cancel_all(self, gridpool_id: int) -> list[OrderRecord]:
        """Cancel every ACTIVE order of the gridpool whose gate is still open."""
        self._check_open()
        orders.check_gridpool(gridpool_id, self.spec.rules)
        now = self.now
        lead = self.spec.rules.gate_closure
        cancelled = []
        for record in list(self._orders.values()):
            if (
                record.gridpool_id == gridpool_id
                and record.state is OrderState.ACTIVE
                and gate_closure(record.order.period_start, lead) > now
            ):
                updated = orders.cancel(record, self.spec.rules, now)
                self._orders[record.order_id] = updated
                self._order_topic.publish(updated)
                cancelled.append(updated)
        _LOG.info("orders_cancelled", gridpool_id=gridpool_id, count=len(cancelled))
        return cancelled

    def list_orders(self, gridpool_id: int, order_filter: OrderFilter) -> list[OrderRecord]:
        """Return the gridpool's orders that pass the filter, oldest first."""
        self._check_open()
        orders.check_gridpool(gridpool_id, self.spec.rules)
        return [
            r
            for r in self._orders.values()
            if r.gridpool_id == gridpool_id and order_filter.matches(r)
        ]

    def list_trades(self, gridpool_id: int, trade_filter: TradeFilter) -> list[TradeRecord]:
        """Return the gridpool's trades that pass the filter, oldest first."""
        self._check_open()
        orders.check_gridpool(gridpool_id, self.spec.rules)
        return [t for t in self._trades if t.gridpool_id == gridpool_id and trade_filter.matches(t)]

    # ------------------------------------------------------------------ streams

    def follow_orders(
        self, gridpool_id: int, order_filter: OrderFilter
    ) -> AsyncIterator[OrderRecord]:
        """Yield every change to the gridpool's orders that passes the filter, from now on.

        Raises:
            MarketError: NOT_FOUND/INVALID_ARGUMENT for the gridpool; UNAVAILABLE when
                the market shuts down or the subscriber falls too far behind.
        """
        self._check_open()
        orders.check_gridpool(gridpool_id, self.spec.rules)
        return self._order_topic.follow(
            lambda r: r.gridpool_id == gridpool_id and order_filter.matches(r)
        )

    def follow_trades(
        self, gridpool_id: int, trade_filter: TradeFilter
    ) -> AsyncIterator[TradeRecord]:
        """Yield the gridpool's new trades that pass the filter (see `follow_orders`)."""
        self._check_open()
        orders.check_gridpool(gridpool_id, self.spec.rules)
        return self._trade_topic.follow(
            lambda t: t.gridpool_id == gridpool_id and trade_filter.matches(t)
        )

    async def follow_public_trades(
        self,
        public_filter: PublicTradeFilter,
        start_time: datetime | None = None,
        end_time: datetime | None = None,
    ) -> AsyncIterator[PublicTradeRecord]:
        """Yield public trades: those executed since `start_time` first, then new ones.

        Without `start_time` only new trades come. With `end_time` the stream ends
        (cleanly) after the last trade executed at or before it; an `end_time` already
        past ends it after the history.
        """
        self._check_open()

        def wanted(trade: PublicTradeRecord) -> bool:
            return public_filter.matches(trade)

        backlog = (
            [t for t in self._public_trades if t.execution_time >= start_time and wanted(t)]
            if start_time is not None
            else []
        )
        if end_time is not None and not backlog and self.next_gate_closure > end_time:
            return  # nothing before end_time, and every later trade executes after it
        replaying = len(backlog)
        stream = self._public_topic.follow(wanted, backlog)  # live from before the replay
        async with contextlib.aclosing(stream):
            async for trade in stream:
                if end_time is not None and trade.execution_time > end_time:
                    return
                yield trade
                replaying = max(0, replaying - 1)
                if end_time is not None and not replaying and self.next_gate_closure > end_time:
                    return

    # ------------------------------------------------------------------ clearing

    def clear_due(self, now: datetime | None = None) -> list[PeriodRecord]:
        """Clear every period whose gate has closed by `now` (default: the clock's now).

        Returns the records of the periods cleared by this call, oldest first.
        """
        if self._closed:
            return []
        moment = now or self.now
        cleared = []
        while self.next_gate_closure <= moment:
            cleared.append(self._clear(self._next_start))
            self._next_start += self.spec.rules.period
        return cleared

    def _clear(self, start: datetime) -> PeriodRecord:
        spec = self.spec
        executed = gate_closure(start, spec.rules.gate_closure)
        due = sorted(
            (
                r
                for r in self._orders.values()
                if r.state is OrderState.ACTIVE and r.order.period_start == start
            ),
            key=lambda r: r.order_id,
        )
        live = [r for r in due if r.order.valid_until is None or r.order.valid_until > executed]
        self._inputs[start] = (spec, self._state)
        period = situation(spec, self._state, start, self._weather)
        bids = [Bid(r.order_id, r.order.side, r.order.price, r.order.quantity_kw) for r in live]
        outcome = clear_period(spec, period, bids)
        self._state = period.next_state
        record = outcome.record
        self._records[start] = record
        for order_record in due:
            filled = Decimal(outcome.fills_kw.get(order_record.order_id, 0)) / KW_PER_MW
            settled = orders.settle(order_record, filled, executed)
            self._orders[settled.order_id] = settled
            self._order_topic.publish(settled)
            if filled > 0:
                order = settled.order
                trade = TradeRecord(
                    trade_id=len(self._trades) + 1,
                    order_id=settled.order_id,
                    gridpool_id=settled.gridpool_id,
                    side=order.side,
                    area=order.area,
                    period_start=start,
                    duration=order.duration,
                    execution_time=executed,
                    price=record.price,
                    currency=spec.rules.currency,
                    quantity_mw=filled,
                    tag=order.tag,
                )
                self._trades.append(trade)
                self._trade_topic.publish(trade)
        if record.volume_mw > 0:
            public = PublicTradeRecord(
                trade_id=len(self._public_trades) + 1,
                area=orders.DeliveryArea(spec.rules.market_area),
                period_start=start,
                duration=spec.rules.period,
                execution_time=executed,
                price=record.price,
                currency=spec.rules.currency,
                quantity_mw=Decimal(round(record.volume_mw * KW_PER_MW)) / KW_PER_MW,
            )
            self._public_trades.append(public)
            self._public_topic.publish(public)
        _LOG.info(
            "period_cleared",
            period_start=orders.show_time(start),
            price=str(record.price),
            volume_mw=round(record.volume_mw, 3),
            demand_mw=round(record.demand_mw, 3),
            production_mw=round(record.production_mw, 3),
            carbon_kg=round(record.carbon_kg, 1),
            orders=len(due),
            filled=len(outcome.fills_kw),
        )
        return record

    async def close(self) -> None:
        """End every stream with UNAVAILABLE; later calls fail with UNAVAILABLE."""
        self._closed = True
        reason = "the market is shutting down"
        self._order_topic.end_all(reason)
        self._trade_topic.end_all(reason)
        self._public_topic.end_all(reason)


__all__ = ["SUBSCRIBER_QUEUE_SIZE", "MarketExchange", "StreamKind"]
