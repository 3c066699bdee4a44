"""Gate closure: each period is cleared with our order in the book, a trade becomes a dispatch.

`clear_due` clears, on the market model and the actual weather, every period whose
gate has closed (with our order if we placed one, without otherwise: the members'
batteries and the price move every period). A fill becomes, as the market-bid actor
makes it through the dispatch producer, a real client `Dispatch` (`trade_dispatch`:
BATTERY_POWER, the delivery period, every battery, `{"power_w": ±filled}`) scheduled
in the loop's `DispatchSchedule`, which `inverter_commands` then executes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta

from frequenz.client.dispatch.recurrence import RecurrenceRule
from frequenz.client.dispatch.types import Dispatch, DispatchId, TargetIds

from edge_controller.servers.market import clearing
from edge_controller.servers.market.model import situation
from edge_controller.tools.scenario.inverter_commands import DISPATCH_TYPE
from edge_controller.tools.scenario.market_outlook import market_side
from edge_controller.tools.scenario.records import PeriodResult
from edge_controller.tools.scenario.setup import Setup
from edge_controller.tools.scenario.state import ControllerState
from edge_controller.trading.bids import Side
from edge_controller.trading.periods import gate_closure


def clear_due(
    setup: Setup, state: ControllerState, now: datetime
) -> tuple[ControllerState, tuple[PeriodResult, ...], tuple[Dispatch, ...]]:
    """Clear every period whose gate has closed by `now`; trades become dispatches.

    Periods are cleared even without an order of ours: the members' batteries and the
    price move every period. Periods past the scenario's end are not cleared.
    """
    market, spec = setup.market, setup.scenario.spec
    rules = market.rules
    results: list[PeriodResult] = []
    created: list[Dispatch] = []
    pending = dict(state.pending)
    while (
        gate_closure(state.next_clearing, rules.gate_closure) <= now
        and state.next_clearing + rules.period <= spec.end
    ):
        start = state.next_clearing
        ours = pending.pop(start, None)
        period = situation(market, state.market_state, start, setup.market_weather)
        bids = (
            [
                clearing.Bid(
                    ours.order_id,
                    market_side(ours.order.side),
                    ours.order.limit_price,
                    int(ours.order.quantity_mw * clearing.KW_PER_MW),
                )
            ]
            if ours is not None
            else []
        )
        outcome = clearing.clear_period(market, period, bids)
        filled_kw = outcome.fills_kw.get(ours.order_id, 0) if ours is not None else 0
        dispatch_id: int | None = None
        traded_w = 0.0
        schedule = state.schedule
        if ours is not None and filled_kw > 0:
            traded_w = filled_kw * 1000.0 * (1.0 if ours.order.side is Side.BUY else -1.0)
            dispatch = trade_dispatch(
                state.next_dispatch_id, start, rules.period, setup.layout.battery_ids, traded_w, now
            )
            schedule = schedule.add(dispatch, now)
            created.append(dispatch)
            dispatch_id = state.next_dispatch_id
        results.append(
            PeriodResult(
                record=outcome.record,
                expected_price=state.expected.get(start),
                order=ours.order if ours is not None else None,
                filled_mw=filled_kw / clearing.KW_PER_MW,
                dispatch_id=dispatch_id,
                traded_power_w=traded_w,
            )
        )
        state = replace(
            state,
            market_state=period.next_state,
            next_clearing=start + rules.period,
            schedule=schedule,
            next_dispatch_id=state.next_dispatch_id + (1 if dispatch_id is not None else 0),
        )
    return replace(state, pending=pending), tuple(results), tuple(created)


def trade_dispatch(
    dispatch_id: int,
    start: datetime,
    duration: timedelta,
    battery_ids: Sequence[int],
    power_w: float,
    now: datetime,
) -> Dispatch:
    """Return the BATTERY_POWER dispatch that executes a trade (a real client `Dispatch`).

    As the market-bid actor would create it through the dispatch producer: the delivery
    period, every battery, `{"power_w": W}` (+ charges, − discharges), created `now`.
    """
    return Dispatch(
        id=DispatchId(dispatch_id),
        type=DISPATCH_TYPE,
        start_time=start,
        duration=duration,
        target=TargetIds(*sorted(battery_ids)),
        active=True,
        dry_run=False,
        payload={"power_w": float(power_w)},
        recurrence=RecurrenceRule(),
        create_time=now,
        update_time=now,
    )


__all__ = ["clear_due", "trade_dispatch"]
