"""Which batteries can be used: broken ones are blocked for a growing while.

A battery whose inverter failed a command (timeout, gRPC error) is *broken* for a
blocking time that starts at `initial_block` and doubles on each repeated failure up
to `max_block`; a success resets it. A refusal for being out of range is the caller's
mistake, not the battery's, and must not be reported here (Frequenz SDK #1321: a
battery refused at its SoC bound was marked broken and its capacity lost).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta


@dataclass(frozen=True, slots=True)
class BatteryStatus:
    """What the distributor may use: `working` freely, `uncertain` only as a last resort."""

    working: frozenset[int]
    uncertain: frozenset[int]


@dataclass(slots=True)
class _Blocking:
    until: datetime
    duration: timedelta


@dataclass
class BlockingTracker:
    """Failure bookkeeping per battery; pure, time passed in."""

    initial_block: timedelta = timedelta(seconds=1)
    max_block: timedelta = timedelta(seconds=30)
    _blocked: dict[int, _Blocking] = field(default_factory=dict)

    def failed(self, battery_id: int, now: datetime) -> datetime:
        """Record a failure; return until when the battery is blocked."""
        previous = self._blocked.get(battery_id)
        duration = (
            self.initial_block if previous is None else min(previous.duration * 2, self.max_block)
        )
        self._blocked[battery_id] = _Blocking(now + duration, duration)
        return now + duration

    def succeeded(self, battery_id: int) -> None:
        """Record a success: the battery is no longer broken, the backoff resets."""
        self._blocked.pop(battery_id, None)

    def is_blocked(self, battery_id: int, now: datetime) -> bool:
        """Tell whether the battery is within its blocking time."""
        blocking = self._blocked.get(battery_id)
        return blocking is not None and now < blocking.until

    def unconfirmed(self, battery_id: int, now: datetime) -> bool:
        """Tell whether the battery failed and was not confirmed back since.

        Its blocking time is over but no command succeeded after the failure: the next
        command to it is a probe (`planning.Reach.PROBED`).
        """
        blocking = self._blocked.get(battery_id)
        return blocking is not None and now >= blocking.until

    def blocked_until(self, battery_id: int) -> datetime | None:
        """Return the end of the battery's current or last blocking time, if any."""
        blocking = self._blocked.get(battery_id)
        return blocking.until if blocking is not None else None

    def status(
        self, battery_ids: Iterable[int], fresh_ids: Iterable[int], now: datetime
    ) -> BatteryStatus:
        """Split batteries: fresh and not blocked → working; stale → uncertain.

        Blocked batteries are in neither set: they are broken until their time ends.
        """
        fresh = set(fresh_ids)
        working: set[int] = set()
        uncertain: set[int] = set()
        for battery_id in battery_ids:
            if self.is_blocked(battery_id, now):
                continue
            (working if battery_id in fresh else uncertain).add(battery_id)
        return BatteryStatus(frozenset(working), frozenset(uncertain))
