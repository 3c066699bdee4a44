"""Plan against outcome, one row per bidding round: what was planned, what happened. Pure.

Each round (`BidRecord`) decides the order for one delivery period, from a plan over
the whole horizon (the optimizer) or from thresholds. A row puts side by side, for
that period:

- the volume **planned** (the plan's first period; for the threshold strategy, the
  order it built), **ordered** (what went to the market after flooring to lots and
  trimming per battery) and **filled** (what the auction gave), all + bought / − sold;
- the price **expected** without us, the price expected **with our volume** in the
  book (what the plan counted on), and the price that **cleared**;
- the pool's stored energy the plan expected at the period's end against the one
  measured there, and each battery's SoC at the period's end;
- how long the plan took.

A planned volume that was not ordered means the per-battery check (or the market's
lot size) cut it; an ordered one that did not fill, a price forecast that was too high
(sell) or too low (buy) for its limit.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass
from datetime import datetime

from edge_controller.servers.sim.site_details import BatterySpec
from edge_controller.tools.scenario.records import BidRecord, PeriodResult, ScenarioResult
from edge_controller.trading.bids import Order, Side


@dataclass(frozen=True, slots=True)
class RoundRow:
    """One round: the plan for `period_start` and what happened (MW + bought, EUR/MWh, Wh, %)."""

    period_start: datetime
    decided_at: datetime
    planned_mw: float
    ordered_mw: float
    limit_price: float | None
    """The order's limit (None: no order)."""
    filled_mw: float
    expected_price: float
    """Without our volume, as forecast at the round."""
    expected_clearing_price: float
    """With the planned volume in the book (the expected price for the threshold strategy)."""
    cleared_price: float | None
    """None: the period was not cleared within the run."""
    planned_energy_wh: float | None
    """The pool's stored energy the plan expected at the period's end (None: no plan)."""
    energy_wh: float | None
    """The pool's stored energy measured at the period's end (None: after the run)."""
    soc_pct: tuple[float, ...]
    """Each battery's SoC at the period's end (in `ScenarioResult.battery_ids` order)."""
    solve_ms: float | None


def _signed(order: Order | None) -> float:
    if order is None:
        return 0.0
    quantity = float(order.quantity_mw)
    return quantity if order.side is Side.BUY else -quantity


def _row(
    bid: BidRecord,
    cleared: PeriodResult | None,
    end_soc: tuple[float, ...] | None,
    capacities: tuple[float, ...],
) -> RoundRow:
    planned = bid.plan[0] if bid.plan and bid.plan[0].start == bid.period_start else None
    if planned is not None:
        planned_mw = planned.buy_mw - planned.sell_mw
        with_us = planned.expected_clearing_price
        if not math.isfinite(with_us):
            with_us = planned.expected_price
    else:
        own = [o for o in bid.orders if o.period_start == bid.period_start]
        planned_mw = _signed(own[0]) if own else 0.0
        with_us = bid.expected_price
    filled = 0.0
    if cleared is not None and cleared.order is not None:
        filled = cleared.filled_mw if cleared.order.side is Side.BUY else -cleared.filled_mw
    energy = (
        math.fsum(c * s / 100.0 for c, s in zip(capacities, end_soc, strict=True))
        if end_soc is not None
        else None
    )
    return RoundRow(
        period_start=bid.period_start,
        decided_at=bid.at,
        planned_mw=planned_mw,
        ordered_mw=_signed(bid.submitted if bid.rejected is None else None),
        limit_price=(
            float(bid.submitted.limit_price)
            if bid.submitted is not None and bid.rejected is None
            else None
        ),
        filled_mw=filled,
        expected_price=bid.expected_price,
        expected_clearing_price=with_us,
        cleared_price=cleared.price if cleared is not None else None,
        planned_energy_wh=planned.energy_wh if planned is not None else None,
        energy_wh=energy,
        soc_pct=end_soc if end_soc is not None else (),
        solve_ms=bid.solve_ms,
    )


def plan_vs_outcome(result: ScenarioResult) -> tuple[RoundRow, ...]:
    """Return one row per bidding round of the run, earliest first (see the module)."""
    by_start = {p.start: p for p in result.periods}
    times = [s.at for s in result.steps]
    capacities = tuple(_capacity_wh(result, b) for b in result.battery_ids)
    rows = []
    for bid in sorted(result.bids, key=lambda b: b.period_start):
        end = bid.period_start + result.scenario.market.rules.period
        index = bisect.bisect_left(times, end)
        end_soc: tuple[float, ...] | None = None
        if index < len(times):
            end_soc = result.steps[index].soc_pct
        elif end == result.scenario.spec.end:
            end_soc = result.final_soc_pct
        rows.append(_row(bid, by_start.get(bid.period_start), end_soc, capacities))
    return tuple(rows)


def _capacity_wh(result: ScenarioResult, battery_id: int) -> float:
    details = result.scenario.site.by_id[battery_id].details
    if not isinstance(details, BatterySpec):  # pragma: no cover - ids come from the layout
        raise TypeError(f"component {battery_id} is not a battery")
    return details.capacity_wh


__all__ = ["RoundRow", "plan_vs_outcome"]
