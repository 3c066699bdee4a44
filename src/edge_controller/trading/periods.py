"""The delivery-period grid: fixed-length periods counted from the Unix epoch (UTC).

```
           gate closure (start − lead)
                 │
  ──────┬────────┼───┬──────────────┬──────────────┬──▶ time
        │  period k  │  period k+1  │  period k+2  │
              orders for k+1 close here ┘
```

With 15-minute periods the starts are the quarter hours (…:00, :15, :30, :45 UTC).
Orders for a period are accepted until its gate closure, when the period is cleared.

Both sides of the market count periods the same way, so the grid lives here, in the
pure trading core: our bidder (`trading.outlook`, the market-bid use case) and the
exchange we serve (`servers.market`) import it; neither imports the other.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def period_floor(moment: datetime, period: timedelta) -> datetime:
    """Return the start of the period that contains `moment` (a start maps to itself)."""
    return moment - (moment - EPOCH) % period


def is_period_start(moment: datetime, period: timedelta) -> bool:
    """Tell whether `moment` lies exactly on the period grid."""
    return (moment - EPOCH) % period == timedelta(0)


def gate_closure(start: datetime, lead: timedelta) -> datetime:
    """Return when trading for the period starting at `start` closes."""
    return start - lead


def first_open_period(now: datetime, period: timedelta, lead: timedelta) -> datetime:
    """Return the start of the earliest period whose gate is still open at `now`.

    A gate that closes exactly at `now` is closed.
    """
    return period_floor(now + lead, period) + period


__all__ = ["EPOCH", "first_open_period", "gate_closure", "is_period_start", "period_floor"]
