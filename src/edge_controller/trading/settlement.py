"""Settlement per delivery period: the energy traded against the energy delivered. Pure.

```
trades ──► add_trade(start, duration, power_w, price) ─┐
                                                       ├─► open periods ──settle_due(now)──► settled
measured power ──► add_sample(at, power_w) ────────────┘     (traded, delivered, value)
```

- **Traded** energy of a period is the sum of its trades' powers × its duration;
  **delivered** energy the integral of the trading batteries' measured power over the
  period. Both in MWh, passive sign: a sale is negative (the batteries discharge), a
  purchase positive. The **imbalance** is delivered − traded: what the balancing
  market would settle.
- **Integration**: each sample's power holds until the next sample (what the meter
  showed since the last reading), split exactly at period boundaries. An interval
  longer than `max_gap`, or one that starts with an unknown power (None or NaN), is not
  counted: the period's `measured_s` then falls short of its duration, and `coverage`
  says by how much. Samples out of order are ignored.
- Only periods with a trade are kept (a period without one has nothing to settle).
- **Value**: the trades' money at their prices, EUR, + for income (a sale) and − for
  cost (a purchase).

A period is settled by `settle_due(now)` once `now` reaches its end; the book keeps
the last `keep` settled periods.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, replace
from datetime import datetime, timedelta


@dataclass(frozen=True, slots=True)
class PeriodSettlement:
    """One delivery period's traded and delivered energy (MWh, passive sign)."""

    start: datetime
    duration: timedelta
    traded_mwh: float = 0.0
    """Sum of the trades: − sold, + bought."""
    delivered_mwh: float = 0.0
    """Integral of the measured power over the measured part of the period."""
    value_eur: float = 0.0
    """The trades' money: + income, − cost."""
    measured_s: float = 0.0
    """Seconds of the period covered by measurements."""
    trades: int = 0

    @property
    def end(self) -> datetime:
        """When the period ends."""
        return self.start + self.duration

    @property
    def traded_mw(self) -> float:
        """The traded power (MW, passive sign): traded energy over the duration."""
        hours = self.duration.total_seconds() / 3600.0
        return self.traded_mwh / hours if hours > 0 else 0.0

    @property
    def imbalance_mwh(self) -> float:
        """Delivered − traded (MWh): + the site took more (or gave less) than traded."""
        return self.delivered_mwh - self.traded_mwh

    @property
    def coverage(self) -> float:
        """Share of the period covered by measurements, 0–1."""
        seconds = self.duration.total_seconds()
        return min(1.0, self.measured_s / seconds) if seconds > 0 else 0.0


class SettlementBook:
    """Periods with trades, their delivered energy as it is measured, and the settled ones.

    See the module docstring. Not thread-safe (one actor owns it).
    """

    def __init__(self, *, max_gap: timedelta = timedelta(seconds=30), keep: int = 672) -> None:
        """Count intervals between samples of at most `max_gap`; keep `keep` settled periods.

        Raises:
            ValueError: `max_gap` not > 0 or `keep` < 1.
        """
        if max_gap <= timedelta(0):
            raise ValueError(f"max_gap: expected > 0, got {max_gap}")
        if keep < 1:
            raise ValueError(f"keep: expected >= 1, got {keep}")
        self._max_gap = max_gap
        self._open: dict[datetime, PeriodSettlement] = {}
        self._settled: deque[PeriodSettlement] = deque(maxlen=keep)
        self._last: tuple[datetime, float | None] | None = None

    @property
    def open(self) -> dict[datetime, PeriodSettlement]:
        """Periods with trades not yet settled, by start (a copy)."""
        return dict(self._open)

    @property
    def settled(self) -> tuple[PeriodSettlement, ...]:
        """Settled periods, oldest first (the last `keep`)."""
        return tuple(self._settled)

    def add_trade(
        self, start: datetime, duration: timedelta, power_w: float, price_eur_mwh: float
    ) -> PeriodSettlement:
        """Count a trade of `power_w` (W, passive: − sold) for the period; return the period.

        Raises:
            ValueError: a power or price that is not finite, or a duration not > 0.
        """
        if not (math.isfinite(power_w) and math.isfinite(price_eur_mwh)):
            raise ValueError(
                f"power_w and price_eur_mwh: expected finite numbers, got {power_w!r}, "
                f"{price_eur_mwh!r}"
            )
        if duration <= timedelta(0):
            raise ValueError(f"duration: expected > 0, got {duration}")
        period = self._open.get(start) or PeriodSettlement(start, duration)
        energy_mwh = power_w / 1e6 * duration.total_seconds() / 3600.0
        period = replace(
            period,
            traded_mwh=period.traded_mwh + energy_mwh,
            value_eur=period.value_eur - energy_mwh * price_eur_mwh,
            trades=period.trades + 1,
        )
        self._open[start] = period
        return period

    def add_sample(self, at: datetime, power_w: float | None) -> None:
        """Record the measured power at `at` (W, passive; None or NaN: unknown).

        The previous sample's power is counted from its time to `at`, in every open
        period that interval overlaps (see the module docstring).
        """
        if power_w is not None and not math.isfinite(power_w):
            power_w = None
        last = self._last
        if last is not None and at < last[0]:
            return
        self._last = (at, power_w)
        if last is None:
            return
        since, held_w = last
        if held_w is None or at - since > self._max_gap or at == since:
            return
        for start, period in self._open.items():
            begin = max(since, start)
            end = min(at, period.end)
            if end <= begin:
                continue
            seconds = (end - begin).total_seconds()
            self._open[start] = replace(
                period,
                delivered_mwh=period.delivered_mwh + held_w / 1e6 * seconds / 3600.0,
                measured_s=period.measured_s + seconds,
            )

    def settle_due(self, now: datetime) -> list[PeriodSettlement]:
        """Settle every open period that has ended by `now`; return them, oldest first."""
        due = sorted(start for start, period in self._open.items() if period.end <= now)
        settled = [self._open.pop(start) for start in due]
        self._settled.extend(settled)
        return settled


__all__ = ["PeriodSettlement", "SettlementBook"]
