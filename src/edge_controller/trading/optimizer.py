"""An optimal bidding plan: a linear program over the periods ahead, solved by HiGHS. Pure.

The threshold strategy (`bids`) sells above `mean + spread/2` and buys below
`mean − spread/2`, one period at a time. This module instead chooses, for every
period of the horizon at once (≥ 24 h of 15-minute periods), how much to buy and to
sell so that

    Σ_t  revenue_t(sell_t) − cost_t(buy_t) − degradation · (sell_t + buy_t) · h
         + terminal_price · (stored energy at the end − now)

is largest (EUR; volumes MW at the meter, h the period in hours). **The market answers
our volume**: a period's `PeriodOutlook.response` (`price_response`) says what a sell or
buy of k lots would clear at; its revenue and cost enter as segments of falling
marginal revenue and rising marginal cost, so the plan sells into a steep supply curve
only as far as the next MW still pays, and spreads its volume over periods rather than
sinking one period's price. A period without a response is price-taking
(revenue = expected price × volume). Subject to:

- **Each battery's window, through the distribution's own behaviour.** The power
  distribution (`power.distribution.SocBalancing`) water-fills on a *common normalised
  SoC level*: a discharge takes the fullest units (relative to their own SoC bounds)
  first, a charge the emptiest, and units that meet move together. A pool that never
  goes below the common level `L_floor` therefore never takes any unit below its own
  reserve, if `L_floor` is the highest of the units' reserves in normalised terms; the
  same on top with the lowest normalised ceiling. The pool's floor and ceiling are
  those levels turned back into energy (`PoolWindow.of`), so the pool's average never
  hides a unit that is lower than the rest (a unit below the level counts negative).
- **Efficiency, robustly**: the floor is checked on a trajectory with the *worst*
  one-way efficiency of any unit (charges store least, sells drain most) and the
  ceiling on one with the best.
- **Power**: the pool's charge and discharge bounds, `max_volume_mw`, and the grid
  connection: a buy adds to the import left by the load and production forecasts,
  a sell to the export, each with `forecast_margin` of forecast error on the load and
  the production taken against us.
- **Trades already made**: a period that already has an order or a trade is fixed
  at that power (nothing new is placed there); commitments before the horizon move
  the starting energy.
- **Any subset of fills is safe.** Only the periods in `place` get orders now (the
  later ones are planned, to make the near decisions right, and decided again in
  later rounds: a receding horizon). All sells placed or still committed must fit
  above the floor *together*, and all buys below the ceiling together — whatever
  subset of them fills, no unit is pushed past its reserve or ceiling (planned buys are
  never counted as energy to sell, as in `bids`).
- **The market's steps and limits**: the quantities placed are floored to
  `step_mw` (never rounded up, so every constraint above still holds) and dropped
  below `min_quantity_mw`; limit prices are clipped to the market's price range.

A `safety_margin_wh` is kept clear of the floor and the ceiling, against what the
linear model does not see (the distribution's finite balancing horizon, the taper,
inverter resolution).

**Limit prices.** A sell is worth placing as long as the price pays for the stored
energy it uses: at the break-even marginal price — the marginal revenue of the period's
first segment plus HiGHS' reduced cost of that segment / h (the same for every segment
of the period: they differ only in their marginal). The limit is that break-even, and
never above the price expected *with our volume in the book* (`PlannedPeriod.
expected_clearing_price`): a uniform-price auction pays every seller the clearing
price, so a low limit costs nothing when the forecast is right and, when it is wrong,
stops the order where keeping the energy is worth more. A limit at the price without
us would make our order the marginal offer and fill only what the curve leaves it.
Buys the same way round.

The solver is `scipy.optimize.linprog(method="highs")`: the plan is a linear
program; the steps apply to what is placed (the rest is re-solved every round).
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Final

import numpy as np
from numpy.typing import NDArray
from scipy.optimize import linprog  # type: ignore[import-untyped]
from scipy.sparse import csr_matrix  # type: ignore[import-untyped]

from edge_controller.trading.bids import Order, PeriodOutlook, Side
from edge_controller.trading.price_response import PriceResponse
from edge_controller.trading.storage import PoolWindow, StorageUnit
from edge_controller.trading.unit_paths import PoolPower, crossings, unit_paths

PENALTY_EUR_PER_MWH: Final = 1e5
"""Cost of an energy short of the floor (or over the ceiling) the plan cannot avoid
(a pool that starts outside its window): large, so the plan only accepts it when no
trade can prevent it, and then climbs back as fast as it can."""


class OptimizerError(RuntimeError):
    """HiGHS found no plan (a bug: the program is feasible by construction); carries the status."""

    def __init__(self, status: int, message: str) -> None:
        """Keep HiGHS' status and message."""
        super().__init__(f"HiGHS status {status}: {message}")
        self.status = status


@dataclass(frozen=True, slots=True)
class Committed:
    """An order or trade of ours still to deliver (passive sign, W)."""

    start: datetime
    duration: timedelta
    traded_w: float = 0.0
    """Cleared: it will be delivered."""
    open_w: float = 0.0
    """An order not cleared yet: it may fill, or not."""

    @property
    def power_w(self) -> float:
        """The period's power if the open order fills."""
        return self.traded_w + self.open_w


@dataclass(frozen=True, slots=True)
class Settings:
    """The optimizer's parameters (EUR/MWh, MW, W, Wh; `forecast_margin` a fraction)."""

    degradation_eur_per_mwh: float = 10.0
    """Cost of wear per MWh charged or discharged, at the meter."""
    max_volume_mw: float = 1.0
    min_quantity_mw: float = 0.1
    step_mw: float = 0.1
    max_import_w: float | None = None
    max_export_w: float | None = None
    forecast_margin: float = 0.1
    """Load and production may be off by this share, against the grid limits."""
    safety_margin_wh: float = 0.0
    """Kept clear of the pool's floor and ceiling."""
    terminal_price: float | None = None
    """EUR/MWh a stored MWh is worth at the horizon's end; None: the mean expected price."""
    min_price: float = -9999.0
    max_price: float = 9999.0


@dataclass(frozen=True, slots=True)
class PlannedPeriod:
    """One period of the plan (MW at the meter, EUR/MWh, Wh stored at its end)."""

    start: datetime
    duration: timedelta
    expected_price: float
    buy_mw: float
    sell_mw: float
    energy_wh: float
    """Stored energy expected at the period's end (nominal efficiency; commitments before
    the horizon delivered in full, from the plan's start on its own volumes)."""
    fixed: bool
    """Already ordered or traded: not decided here."""
    expected_clearing_price: float = math.nan
    """The price expected with our planned volume in the book (= `expected_price` when
    the period has no price response, or nothing is planned)."""

    @property
    def power_w(self) -> float:
        """The battery power of the plan (passive: + charges)."""
        return (self.buy_mw - self.sell_mw) * 1e6


@dataclass(frozen=True, slots=True)
class Plan:
    """The optimal plan and the orders to place now."""

    periods: tuple[PlannedPeriod, ...]
    orders: tuple[Order, ...]
    window: PoolWindow
    value_eur: float
    """The objective: trade money − degradation + terminal value of the energy change."""
    solve_ms: float
    shortfall_wh: float = 0.0
    """Energy outside the window the plan could not avoid (0 in a feasible start)."""
    notes: tuple[str, ...] = field(default=())


def _room_w(limit_w: float | None, other_w: NDArray[np.float64]) -> NDArray[np.float64]:
    """What a trade may add before the grid limit, given the site's own flow that way."""
    if limit_w is None:
        return np.full(len(other_w), math.inf)
    return np.maximum(0.0, limit_w - np.maximum(0.0, other_w))


_SegmentTable = tuple[
    NDArray[np.float64], NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]
]
"""A response's buy widths and marginals, then its sell widths and marginals."""


@functools.lru_cache(maxsize=4096)
def _segment_table(response: PriceResponse) -> _SegmentTable:
    """A response's segments as arrays (read-only: cached, the same response recurs).

    A scenario memoises its responses, and each round re-plans the same periods: the
    hulls were a sixth of a solve when built again every time.
    """
    arrays = []
    for segments in (response.buy_segments(), response.sell_segments()):
        for values in (
            [s.width_mw for s in segments],
            [s.marginal_eur_per_mwh for s in segments],
        ):
            array = np.array(values, dtype=np.float64)
            array.flags.writeable = False
            arrays.append(array)
    return arrays[0], arrays[1], arrays[2], arrays[3]


def _side_segments(
    tables: Sequence[_SegmentTable | None], side: int, prices: NDArray[np.float64]
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.int64]]:
    """Every period's segments of one side (`side` 0: buys, 2: sells), concatenated.

    Returns the widths, the marginals and each period's count. A period without a
    table is price-taking: one unbounded segment at its price; a response without a
    segment on that side one of width 0 (nothing can be traded there).
    """
    unbounded = np.array([math.inf])
    empty = np.array([0.0])
    widths = [
        unbounded if table is None else (table[side] if len(table[side]) else empty)
        for table in tables
    ]
    marginals = [
        prices[t : t + 1] if table is None or not len(table[side]) else table[side + 1]
        for t, table in enumerate(tables)
    ]
    counts = np.fromiter((len(w) for w in widths), np.int64, len(widths))
    return np.concatenate(widths), np.concatenate(marginals), counts


def _period_sums(values: NDArray[np.float64], counts: NDArray[np.int64]) -> NDArray[np.float64]:
    """Sum `values` per period, `counts[t]` consecutive values each (counts ≥ 1)."""
    return np.add.reduceat(values, np.cumsum(counts) - counts)


def _floor_step(value_mw: float, step_mw: float) -> Decimal:
    if not math.isfinite(value_mw) or value_mw <= 0:
        return Decimal(0)
    step = Decimal(str(step_mw))
    # A hair of tolerance: HiGHS returns 0.3 as 0.29999999999.
    return (Decimal(repr(value_mw + 1e-7)) / step).to_integral_value(rounding=ROUND_FLOOR) * step


def _remaining_h(commitment: Committed, now: datetime) -> float:
    end = commitment.start + commitment.duration
    return max(0.0, (end - max(commitment.start, now)).total_seconds() / 3600.0)


def _worst_case(
    orders: Sequence[Order], commitments: Sequence[Committed], now: datetime, side: Side
) -> list[PoolPower]:
    """The pool powers if every sell (`side` SELL) or every buy fills, and nothing else."""
    powers = []
    for commitment in commitments:
        begin = max(commitment.start, now)
        end = commitment.start + commitment.duration
        for power_w in (commitment.traded_w, commitment.open_w):
            if end > begin and (power_w < 0 if side is Side.SELL else power_w > 0):
                powers.append(PoolPower(begin, end - begin, power_w))
    powers += [
        PoolPower(o.period_start, o.duration, o.battery_power_w) for o in orders if o.side is side
    ]
    return powers


def _trimmed(
    orders: list[Order],
    units: Sequence[StorageUnit],
    commitments: Sequence[Committed],
    now: datetime,
    step_mw: float,
    min_quantity_mw: float,
) -> list[Order]:
    """Shrink the latest orders, a step at a time, until no unit leaves its window.

    Per side, at its worst (every sell and no buy fills, or the reverse), replayed
    through the distribution (`unit_paths`): the level argument of `storage` holds
    while the units move together; this catches a unit near its floor that must carry
    what a fuller unit at its power limit cannot.
    """
    step = Decimal(str(step_mw))
    smallest = Decimal(str(min_quantity_mw))
    kept = list(orders)
    for side in (Side.SELL, Side.BUY):
        while True:
            moved = crossings(units, unit_paths(units, _worst_case(kept, commitments, now, side)))
            if side is Side.SELL:
                moved = {k: v for k, v in moved.items() if v > 0}
            else:
                moved = {k: v for k, v in moved.items() if v < 0}
            candidates = [i for i, o in enumerate(kept) if o.side is side]
            if not moved or not candidates:
                break
            last = candidates[-1]
            quantity = kept[last].quantity_mw - step
            if quantity < smallest or quantity <= 0:
                del kept[last]
            else:
                kept[last] = replace(kept[last], quantity_mw=quantity)
    return kept


def plan_bids(
    periods: Sequence[PeriodOutlook],
    units: Sequence[StorageUnit],
    settings: Settings,
    *,
    now: datetime,
    place: Collection[datetime],
    committed: Iterable[Committed] = (),
) -> Plan:
    """Return the optimal plan over `periods` and the orders for the periods in `place`.

    `periods` are consecutive delivery periods (earliest first) starting after `now`;
    `committed` every order and trade of ours not yet delivered (those in a period of
    `periods` fix it, the others move the starting energy). A period in `place` that
    is committed gets no new order. See the module docstring.

    Raises:
        ValueError: no unit, or periods not in order.
        OptimizerError: HiGHS failed (not expected: the program is always feasible).
    """
    began = time.perf_counter()
    window = PoolWindow.of(units)
    ordered = sorted(periods, key=lambda p: p.start)
    if [p.start for p in ordered] != [p.start for p in periods]:
        raise ValueError("periods: expected them earliest first")
    count = len(ordered)
    eta_lo, eta_hi, eta = window.efficiency_low, window.efficiency_high, window.efficiency
    commitments = list(committed)
    fixed: dict[datetime, float] = {}
    # Starting energy on each trajectory after the commitments before the horizon, and
    # the worst-case energy (Wh stored) they may still move: sells down, buys up.
    start_lo = start_hi = start_nominal = window.energy_wh
    committed_down_wh = committed_up_wh = 0.0
    by_start = {p.start for p in ordered}
    for commitment in commitments:
        left_h = _remaining_h(commitment, now)
        if left_h <= 0:
            continue
        if commitment.start in by_start:
            fixed[commitment.start] = fixed.get(commitment.start, 0.0) + commitment.power_w
        else:
            energy = commitment.power_w * left_h
            start_lo += energy * eta_lo if energy > 0 else energy / eta_lo
            start_hi += energy * eta_hi if energy > 0 else energy / eta_hi
            start_nominal += energy * eta if energy > 0 else energy / eta
        for power_w in (commitment.traded_w, commitment.open_w):
            if power_w < 0:
                committed_down_wh += -power_w * left_h / eta_lo
            else:
                committed_up_wh += power_w * left_h * eta_hi
    if count == 0:
        return Plan((), (), window, 0.0, (time.perf_counter() - began) * 1000.0)

    # The periods as arrays: one pass over them, then numpy only (the solve's budget is
    # ~100 ms p99 on a shared 2-core box; Python loops over 96 periods × segments were
    # a third of it).
    hours = np.fromiter((p.duration.total_seconds() / 3600.0 for p in ordered), np.float64, count)
    prices = np.fromiter((p.expected_price for p in ordered), np.float64, count)
    priced = np.isfinite(prices)
    prices = np.where(priced, prices, 0.0)
    terminal = (
        settings.terminal_price
        if settings.terminal_price is not None
        else (math.fsum(prices[priced]) / int(priced.sum()) if priced.any() else 0.0)
    )
    margin = max(0.0, settings.forecast_margin)
    load = np.fmax(0.0, np.fromiter((p.load_w for p in ordered), np.float64, count))
    produced = np.fmax(0.0, np.fromiter((p.production_w for p in ordered), np.float64, count))
    import_w = load * (1 + margin) - produced * (1 - margin)
    export_w = produced * (1 + margin) - load * (1 - margin)
    cap_w = settings.max_volume_mw * 1e6
    buy_ub = (
        np.minimum(min(window.charge_max_w, cap_w), _room_w(settings.max_import_w, import_w)) / 1e6
    )
    sell_ub = (
        np.minimum(min(window.discharge_max_w, cap_w), _room_w(settings.max_export_w, export_w))
        / 1e6
    )
    buy_ub[~priced] = 0.0
    sell_ub[~priced] = 0.0
    is_fixed = np.fromiter((p.start in fixed for p in ordered), np.bool_, count)
    fixed_mw = np.fromiter((fixed.get(p.start, 0.0) for p in ordered), np.float64, count) / 1e6
    buy_lb = np.where(is_fixed, np.maximum(0.0, fixed_mw), 0.0)
    sell_lb = np.where(is_fixed, np.maximum(0.0, -fixed_mw), 0.0)

    # The money of each period's volume: segments of falling marginal revenue (sells)
    # and rising marginal cost (buys) from its price response, or one segment at the
    # expected price (price-taking; committed periods too: their money is settled).
    responses = [
        _segment_table(p.response) if p.response is not None and not is_fixed[t] else None
        for t, p in enumerate(ordered)
    ]
    buy_widths, buy_marginals, buy_counts = _side_segments(responses, 0, prices)
    sell_widths, sell_marginals, sell_counts = _side_segments(responses, 2, prices)
    responsive = np.fromiter((r is not None for r in responses), np.bool_, count)
    buy_ub = np.where(responsive, np.minimum(buy_ub, _period_sums(buy_widths, buy_counts)), buy_ub)
    sell_ub = np.where(
        responsive, np.minimum(sell_ub, _period_sums(sell_widths, sell_counts)), sell_ub
    )
    buy_ub = np.where(is_fixed, buy_lb, buy_ub)
    sell_ub = np.where(is_fixed, sell_lb, sell_ub)

    # Variables, in columns: buy_t, sell_t (MW); short_floor, over_ceiling (MWh); every
    # period's buy segments, then every period's sell segments (MW); then the stored
    # energy as two trajectories (MWh, relative to the start, the slack taken off):
    # drawn_t on the pessimistic one (worst efficiency), filled_t on the optimistic one.
    # One balance row per period and trajectory keeps the matrix sparse (4 entries a
    # row), where cumulative sums had a dense triangle of n²/2 entries per trajectory:
    #   drawn_t  = drawn_{t-1}  + (sell_t/η_lo − buy_t·η_lo)·h_t   (− short at t = 0)
    #   filled_t = filled_{t-1} + (buy_t·η_hi − sell_t/η_hi)·h_t   (− over at t = 0)
    # with drawn_t ≤ start − floor and filled_t ≤ ceiling − start as bounds.
    n = count
    buy_segments_at = 2 * n + 2
    sell_segments_at = buy_segments_at + len(buy_widths)
    drawn_at = sell_segments_at + len(sell_widths)
    filled_at = drawn_at + n
    columns = filled_at + n
    periods_n = np.arange(n)
    first_buy_segment = buy_segments_at + np.cumsum(buy_counts) - buy_counts
    first_sell_segment = sell_segments_at + np.cumsum(sell_counts) - sell_counts
    degradation = settings.degradation_eur_per_mwh
    objective = np.concatenate(
        [
            (degradation - terminal * eta) * hours,
            (degradation + terminal / eta) * hours,
            [PENALTY_EUR_PER_MWH, PENALTY_EUR_PER_MWH],
            buy_marginals * np.repeat(hours, buy_counts),
            -sell_marginals * np.repeat(hours, sell_counts),
            np.zeros(2 * n),
        ]
    )
    later = periods_n[1:]
    eq_rows = np.concatenate(
        [
            # buy_t − Σ its segments = 0; sell_t − Σ its segments = 0
            periods_n,
            np.repeat(periods_n, buy_counts),
            n + periods_n,
            n + np.repeat(periods_n, sell_counts),
            # the two balances
            *(r + periods_n for r in (2 * n, 2 * n, 2 * n)),
            2 * n + later,
            [2 * n],
            *(r + periods_n for r in (3 * n, 3 * n, 3 * n)),
            3 * n + later,
            [3 * n],
        ]
    )
    eq_cols = np.concatenate(
        [
            periods_n,
            np.arange(buy_segments_at, sell_segments_at),
            n + periods_n,
            np.arange(sell_segments_at, drawn_at),
            drawn_at + periods_n,
            n + periods_n,
            periods_n,
            drawn_at + later - 1,
            [2 * n],
            filled_at + periods_n,
            periods_n,
            n + periods_n,
            filled_at + later - 1,
            [2 * n + 1],
        ]
    )
    eq_values = np.concatenate(
        [
            np.ones(n),
            -np.ones(len(buy_widths)),
            np.ones(n),
            -np.ones(len(sell_widths)),
            np.ones(n),
            -hours / eta_lo,
            hours * eta_lo,
            -np.ones(n - 1),
            [1.0],
            np.ones(n),
            -hours * eta_hi,
            hours / eta_hi,
            -np.ones(n - 1),
            [1.0],
        ]
    )
    equalities = csr_matrix((eq_values, (eq_rows, eq_cols)), shape=(4 * n, columns))
    margin_wh = max(0.0, settings.safety_margin_wh)
    floor_mwh = (start_lo - window.floor_wh - margin_wh) / 1e6
    ceiling_mwh = (window.ceiling_wh - margin_wh - start_hi) / 1e6
    # Any subset of fills: all placed sells (and committed ones) above the floor together,
    # all placed buys (and committed ones) below the ceiling together.
    placing_mask = ~is_fixed & np.fromiter((p.start in place for p in ordered), np.bool_, count)
    chosen = np.flatnonzero(placing_mask)
    placing = set(chosen.tolist())
    matrix = None
    rhs = None
    if len(chosen):
        matrix = csr_matrix(
            (
                np.concatenate([hours[chosen] / eta_lo, hours[chosen] * eta_hi]),
                (np.repeat([0, 1], len(chosen)), np.concatenate([n + chosen, chosen])),
            ),
            shape=(2, columns),
        )
        down_wh = window.energy_wh - window.floor_wh - margin_wh - committed_down_wh
        up_wh = window.ceiling_wh - margin_wh - window.energy_wh - committed_up_wh
        rhs = np.array([max(0.0, down_wh) / 1e6, max(0.0, up_wh) / 1e6])
    bounds = np.column_stack(
        [
            np.concatenate(
                [
                    buy_lb,
                    sell_lb,
                    [0.0, 0.0],
                    np.zeros(len(buy_widths) + len(sell_widths)),
                    np.full(2 * n, -np.inf),
                ]
            ),
            np.concatenate(
                [
                    buy_ub,
                    sell_ub,
                    [np.inf, np.inf],
                    buy_widths,
                    sell_widths,
                    np.full(n, floor_mwh),
                    np.full(n, ceiling_mwh),
                ]
            ),
        ]
    )
    result = linprog(
        objective,
        A_ub=matrix,
        b_ub=rhs,
        A_eq=equalities,
        b_eq=np.zeros(4 * n),
        bounds=bounds,
        method="highs-ds",
        # Without presolve: a little faster on this program (it has nothing to remove),
        # and the 20-day benchmark's orders (limits from the duals of a degenerate
        # program) came out as the dense program's did: 226.7 EUR against 219.9 with it.
        options={"presolve": False},
    )
    if result.status != 0:
        raise OptimizerError(int(result.status), str(result.message))
    solution = np.asarray(result.x, dtype=np.float64)
    buys, sells = solution[:n], solution[n : 2 * n]
    # A segment's reduced cost is the same shift for every segment of its period: the
    # break-even marginal price is the first segment's marginal + reduced cost / h.
    reduced = np.asarray(result.lower.marginals, dtype=np.float64) + np.asarray(
        result.upper.marginals, dtype=np.float64
    )
    buy_rc = reduced[first_buy_segment]
    sell_rc = reduced[first_sell_segment]

    # What the plan expects stored: from now, through the commitments before the horizon.
    energies = start_nominal + np.cumsum((buys * eta - sells / eta) * hours * 1e6)
    planned: list[PlannedPeriod] = []
    orders: list[Order] = []
    for t, period in enumerate(ordered):
        buy, sell, energy = float(buys[t]), float(sells[t]), float(energies[t])
        response = period.response
        if response is None or is_fixed[t]:
            clearing_price = float(prices[t])
        elif sell >= buy:
            clearing_price = response.sell_price_at(float(_floor_step(sell, settings.step_mw)))
        else:
            clearing_price = response.buy_price_at(float(_floor_step(buy, settings.step_mw)))
        planned.append(
            PlannedPeriod(
                period.start,
                period.duration,
                float(prices[t]),
                buy,
                sell,
                energy,
                bool(is_fixed[t]),
                clearing_price,
            )
        )
        if t not in placing:
            continue
        side = Side.SELL if sell >= buy else Side.BUY
        quantity = _floor_step(sell if side is Side.SELL else buy, settings.step_mw)
        if quantity <= 0 or quantity < Decimal(str(settings.min_quantity_mw)):
            continue
        if side is Side.SELL:
            first_marginal = float(sell_marginals[first_sell_segment[t] - sell_segments_at])
            break_even = first_marginal + float(sell_rc[t]) / hours[t]
            limit = min(clearing_price, break_even)
            rounding = ROUND_CEILING
        else:
            first_marginal = float(buy_marginals[first_buy_segment[t] - buy_segments_at])
            break_even = first_marginal - float(buy_rc[t]) / hours[t]
            limit = max(clearing_price, break_even)
            rounding = ROUND_FLOOR
        limit = min(settings.max_price, max(settings.min_price, limit))
        orders.append(
            Order(
                period.start,
                period.duration,
                side,
                quantity,
                Decimal(repr(float(limit))).quantize(Decimal("0.01"), rounding=rounding),
            )
        )
    orders = _trimmed(orders, units, commitments, now, settings.step_mw, settings.min_quantity_mw)
    shortfall = float(solution[2 * n] + solution[2 * n + 1]) * 1e6
    value = -float(result.fun) - float(solution[2 * n] + solution[2 * n + 1]) * PENALTY_EUR_PER_MWH
    return Plan(
        tuple(planned),
        tuple(orders),
        window,
        value,
        (time.perf_counter() - began) * 1000.0,
        shortfall,
    )


__all__ = [
    "PENALTY_EUR_PER_MWH",
    "Committed",
    "OptimizerError",
    "Plan",
    "PlannedPeriod",
    "Settings",
    "plan_bids",
]
