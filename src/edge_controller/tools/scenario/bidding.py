"""Our side of the market: one bidding decision per delivery period, as the bidder makes it.

**Rolling horizon.** The period that becomes the first open one (right after the
previous gate closed) gets exactly one decision, from the latest forecast and SoC: the
builder sees `strategy.horizon` of periods (for the mean price and the allocation,
earliest first) but only the first period's order is placed; the later ones are
decided again when their turn comes. `kind = "optimal"` plans with `trading.optimizer`
on the batteries per inverter (`storage_units`) and the market model's price response;
`kind = "threshold"` builds orders with `trading.bids` from two pools.

**Committed energy.** What was already traded or ordered and not yet delivered is
committed (`commitments`: the scheduled dispatches' remaining run windows and the
orders not cleared yet), counted with `trading.outlook.committed_energy_wh` as the
market-bid actor counts it: sells count it as gone (the SoC for selling is now minus
every committed discharge), buys as stored (plus every committed charge), each at its
worst — as `build_orders` itself never counts a planned buy as energy to sell. The
pool offers only the SoC window where the batteries run at full power (their SoC
bounds narrowed by the taper) and the reserve; power is the pool's present bounds.

Every order is checked by the market's own order rules (`servers.market.orders`)
before it waits for its gate closure.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Final

import numpy as np

from edge_controller.dispatching.payload import PayloadError
from edge_controller.power.bounds import Range
from edge_controller.power.planning import pool_bounds, to_battery_unit
from edge_controller.servers.market.errors import MarketError
from edge_controller.servers.market.orders import DeliveryArea, OrderRequest, validate_order
from edge_controller.tools.scenario.file import Bidding
from edge_controller.tools.scenario.forecasts import Forecast, forecast_market_weather
from edge_controller.tools.scenario.market_outlook import (
    expected_prices,
    expected_responses,
    market_side,
    response_lots,
)
from edge_controller.tools.scenario.records import BidRecord
from edge_controller.tools.scenario.schedule import windows
from edge_controller.tools.scenario.setup import Setup
from edge_controller.tools.scenario.site_model import Observation
from edge_controller.tools.scenario.state import ControllerState, PendingOrder
from edge_controller.trading.bids import (
    BatteryPool,
    Order,
    PeriodOutlook,
    Side,
    Strategy,
    build_orders,
)
from edge_controller.trading.optimizer import Committed, Plan, Settings, plan_bids
from edge_controller.trading.outlook import committed_energy_wh
from edge_controller.trading.periods import first_open_period
from edge_controller.trading.price_response import PriceResponse
from edge_controller.trading.storage import StorageUnit
from edge_controller.use_cases.battery_power.payload import parse_battery_power


def decide_bid(
    setup: Setup, state: ControllerState, observation: Observation, forecast: Forecast
) -> tuple[ControllerState, BidRecord | None]:
    """Decide the order for the earliest open period, once per period.

    Returns the state unchanged (and no record) when that period was decided already
    or would not be delivered within the scenario.
    """
    now = observation.at
    spec, market = setup.scenario.spec, setup.market
    rules = market.rules
    target = first_open_period(now, rules.period, rules.gate_closure)
    if (state.bid_through is not None and target <= state.bid_through) or (
        target + rules.period > spec.end
    ):
        return state, None
    count = max(1, spec.bid_horizon // rules.period)
    starts = [target + k * rules.period for k in range(count)]
    weather = forecast_market_weather(setup, forecast)
    responses: dict[datetime, PriceResponse] = {}
    if spec.bidding is Bidding.OPTIMAL:
        responses = expected_responses(
            market,
            state.market_state,
            state.next_clearing,
            starts[-1],
            weather,
            response_lots(setup),
        )
        prices = {start: r.price_without_us for start, r in responses.items()}
    else:
        prices = expected_prices(
            market, state.market_state, state.next_clearing, starts[-1], weather
        )
    outlook = [
        PeriodOutlook(
            start=start,
            duration=rules.period,
            expected_price=prices[start],
            production_w=-(
                forecast.pv_w[forecast.index(start)] + forecast.wind_w[forecast.index(start)]
            ),
            load_w=float(forecast.load_w[forecast.index(start)]),
            response=responses.get(start),
        )
        for start in starts
    ]
    sell_pool, buy_pool, strategy = battery_pools(setup, state, observation)
    plan: Plan | None = None
    if spec.bidding is Bidding.OPTIMAL:
        plan = plan_bids(
            outlook,
            storage_units(setup, observation),
            optimizer_settings(setup),
            now=now,
            place={target},
            committed=commitments(setup, state, now),
        )
        proposed = list(plan.orders)
    else:
        proposed = [
            *(o for o in build_orders(outlook, sell_pool, strategy) if o.side is Side.SELL),
            *(o for o in build_orders(outlook, buy_pool, strategy) if o.side is Side.BUY),
        ]
    proposed.sort(key=lambda o: o.period_start)
    submitted = next((o for o in proposed if o.period_start == target), None)
    rejected: str | None = None
    pending = dict(state.pending)
    next_order_id = state.next_order_id
    if submitted is not None:
        try:
            validate_order(order_request(submitted, setup), rules, now)
        except MarketError as error:
            rejected = str(error)
        else:
            pending[target] = PendingOrder(next_order_id, submitted)
            next_order_id += 1
    index = forecast.index(target)
    record = BidRecord(
        at=now,
        period_start=target,
        forecast_issued_at=forecast.issued_at,
        expected_price=prices[target],
        horizon_mean_price=float(np.mean([prices[s] for s in starts])),
        sell_soc_pct=sell_pool.soc_pct,
        buy_soc_pct=buy_pool.soc_pct,
        pv_forecast_w=float(forecast.pv_w[index]),
        wind_forecast_w=float(forecast.wind_w[index]),
        load_forecast_w=outlook[0].load_w,
        orders=tuple(proposed),
        submitted=submitted,
        rejected=rejected,
        plan=plan.periods if plan is not None else (),
        solve_ms=plan.solve_ms if plan is not None else None,
    )
    state = replace(
        state,
        bid_through=target,
        pending=pending,
        expected={**state.expected, target: prices[target]},
        next_order_id=next_order_id,
    )
    return state, record


def battery_pools(
    setup: Setup, state: ControllerState, observation: Observation
) -> tuple[BatteryPool, BatteryPool, Strategy]:
    """Return the pool to sell from, the pool to buy into, and the effective strategy.

    See the module docstring: committed energy counted at its worst for each side, the
    SoC window narrowed by the taper, power from the present bounds.
    """
    layout, now = setup.layout, observation.at
    specs = layout.battery_specs
    capacity = layout.capacity_wh

    def weighted(values: Mapping[int, float]) -> float:
        return math.fsum(specs[b].capacity_wh * values[b] for b in specs) / capacity

    lower = weighted({b: s.soc_bounds_pct.lower + s.soc_taper_pct for b, s in specs.items()})
    upper = weighted({b: s.soc_bounds_pct.upper - s.soc_taper_pct for b, s in specs.items()})
    efficiency = weighted(
        {b: layout.inverter_specs[layout.inverter_of[b]].efficiency for b in specs}
    )
    sell_wh, buy_wh = committed_energy_wh(commitments(setup, state, now), now)
    stored = math.fsum(observation.energy_wh.values())
    units = [
        u for unit in observation.units.values() if not isinstance(u := to_battery_unit(unit), str)
    ]
    reach = pool_bounds(units).inclusion if units else Range(0.0, 0.0)

    def pool(energy_wh: float) -> BatteryPool:
        return BatteryPool(
            soc_pct=100.0 * energy_wh / capacity,
            capacity_wh=capacity,
            soc_upper_pct=upper,
            charge_max_w=max(0.0, reach.upper),
            discharge_max_w=max(0.0, -reach.lower),
            efficiency=efficiency,
        )

    strategy = setup.scenario.spec.strategy
    strategy = replace(strategy, reserve_soc_pct=max(strategy.reserve_soc_pct, lower))
    sell = pool(stored - sell_wh / efficiency)
    buy = pool(stored + buy_wh * efficiency)
    return sell, buy, strategy


def storage_units(setup: Setup, observation: Observation) -> list[StorageUnit]:
    """The distribution's units as the optimizer sees them (see `trading.storage`).

    Per battery inverter: SoC and SoC bounds as the distribution normalises them, the
    floor at the reserve (raised to the lower bound + taper, where the power fades), the
    ceiling at the upper bound − taper, the present power bounds, the inverter's
    efficiency. A unit the distribution cannot use is left out.
    """
    layout = setup.layout
    reserve = setup.scenario.spec.strategy.reserve_soc_pct
    units = []
    for inverter_id, unit in observation.units.items():
        aggregated = to_battery_unit(unit)
        if isinstance(aggregated, str):
            continue
        specs = [layout.battery_specs[b] for b in layout.batteries_of[inverter_id]]
        units.append(
            StorageUnit(
                unit_id=inverter_id,
                capacity_wh=aggregated.capacity_wh,
                soc_pct=aggregated.soc_pct,
                soc_lower_pct=aggregated.soc_lower_pct,
                soc_upper_pct=aggregated.soc_upper_pct,
                floor_pct=max(
                    max(reserve, s.soc_bounds_pct.lower + s.soc_taper_pct) for s in specs
                ),
                ceiling_pct=min(s.soc_bounds_pct.upper - s.soc_taper_pct for s in specs),
                charge_max_w=max(0.0, max(r.upper for r in aggregated.allowed)),
                discharge_max_w=max(0.0, -min(r.lower for r in aggregated.allowed)),
                efficiency=layout.inverter_specs[inverter_id].efficiency,
            )
        )
    return units


SAFETY_MARGIN_SHARE: Final = 0.002
"""Of the batteries' capacity, kept clear of the pool's floor and ceiling by the optimizer."""


def optimizer_settings(setup: Setup) -> Settings:
    """The optimizer's parameters from the scenario's strategy and the market's rules."""
    spec, rules = setup.scenario.spec, setup.market.rules
    strategy = spec.strategy
    return Settings(
        degradation_eur_per_mwh=spec.degradation_eur_per_mwh,
        max_volume_mw=strategy.max_volume_mw,
        min_quantity_mw=strategy.min_quantity_mw,
        step_mw=float(rules.lot_mw),
        max_import_w=strategy.max_import_w,
        max_export_w=strategy.max_export_w,
        safety_margin_wh=SAFETY_MARGIN_SHARE * setup.layout.capacity_wh,
        min_price=float(rules.min_price),
        max_price=float(rules.max_price),
    )


def commitments(setup: Setup, state: ControllerState, now: datetime) -> list[Committed]:
    """Return what is still to deliver: for the optimizer, and counted against the pools.

    The dispatches' remaining run windows (traded: they will run) and the orders not
    cleared yet (open: they may fill, or not). The market-bid actor reads the same from
    its ledger of periods and orders; both count it with `outlook.committed_energy_wh`.
    """
    found: list[Committed] = []
    horizon = setup.scenario.spec.end + timedelta(days=1)
    for dispatch in state.schedule.dispatches:
        try:
            power_w = parse_battery_power(int(dispatch.id), dispatch.payload).power_w
        except PayloadError:
            continue
        for begin, end in windows(dispatch, now, horizon):
            found.append(Committed(begin, end - begin, traded_w=power_w))
    found += [
        Committed(p.order.period_start, p.order.duration, open_w=p.order.battery_power_w)
        for p in state.pending.values()
    ]
    return found


def order_request(order: Order, setup: Setup) -> OrderRequest:
    """Return `order` as the market's order rules read an API request."""
    rules = setup.market.rules
    side = market_side(order.side)
    return OrderRequest(
        area=DeliveryArea(setup.scenario.site.microgrid.delivery_area),
        period_start=order.period_start,
        duration=order.duration,
        duration_name=f"DELIVERY_DURATION_{order.duration.total_seconds() / 60:g}",
        order_type="ORDER_TYPE_LIMIT",
        side=side,
        side_name=f"MARKET_SIDE_{side.value}",
        price_amount=str(order.limit_price),
        currency=rules.currency,
        quantity_mw=str(order.quantity_mw),
    )


__all__ = [
    "SAFETY_MARGIN_SHARE",
    "battery_pools",
    "commitments",
    "decide_bid",
    "optimizer_settings",
    "order_request",
    "storage_units",
]
