"""Which planned commands are worth sending: each inverter hears a value when it means something.

Many things re-plan a running target — a new request, the keep-alive, a refusal, a
probe, a meter's allowance, an inverter counted at its measured power, a stream that
was re-opened — and each plan names a power for every inverter. Sending all of them
each time made a site of 200 inverters take 23 commands per inverter in 79 s, almost
all repeating the value the inverter already held, and loaded a busy Microgrid API
further (the SDK sends 3–4). So a planned command is sent only when:

- the inverter's present command is unknown: never sent, or its last command failed,
  was refused, or it was released outside the pacer's knowledge (`forget`);
- the value changes by at least the inverter's resolution (a change always goes, at
  once: it is what a new target or a re-plan is for);
- the last command is old enough to need its keep-alive: older than `refresh_after`
  (three quarters of the keep-alive interval), so that commands sent a little apart
  are refreshed together in the round planned when the first is due (`next_due`);
- its telemetry stream was re-opened (`reopened`: a restarted server may have lost
  its commands), and the last send is at least `min_resend_interval` old.

Everything else is held: the inverter holds that command already. By construction
an inverter gets the same value again at most once per `min_resend_interval`, however
often it is re-planned, so a re-send storm cannot feed on itself.

Pure: no clock, no I/O; watts as floats.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum

MIN_RESEND_INTERVAL = timedelta(seconds=1)
"""The shortest interval between two commands of the same value to one inverter."""

REFRESH_SHARE = 0.75
"""A command older than this share of the keep-alive interval is refreshed with it."""


class Why(Enum):
    """Why a planned command is sent."""

    UNKNOWN = "unknown"
    """The inverter's present command is not known (first, or after a failure)."""
    CHANGED = "changed"
    """The value moved by at least the inverter's resolution."""
    KEEPALIVE = "keepalive"
    """The same value, before the last command expires."""
    REOPENED = "reopened"
    """The same value, after the inverter's telemetry stream was re-opened."""


@dataclass(frozen=True, slots=True)
class Sent:
    """The last command an inverter took."""

    power_w: float
    at: datetime
    reopened: bool = False
    """Its stream was re-opened since: it may have lost this command."""


class CommandPacer:
    """The last command each inverter took, and which planned commands to send."""

    def __init__(
        self, keepalive: timedelta, min_resend_interval: timedelta = MIN_RESEND_INTERVAL
    ) -> None:
        """Refresh commands with the `keepalive`; repeat one at most every `min_resend_interval`.

        Raises:
            ValueError: a non-positive interval.
        """
        if keepalive <= timedelta(0) or min_resend_interval <= timedelta(0):
            raise ValueError(
                f"intervals must be > 0, got keepalive {keepalive}, "
                f"min_resend_interval {min_resend_interval}"
            )
        self.refresh_after = keepalive * REFRESH_SHARE
        self.keepalive = keepalive
        self.min_resend_interval = min_resend_interval
        self._sent: dict[int, Sent] = {}

    def due(
        self, inverter_id: int, power_w: float, now: datetime, resolution_w: float
    ) -> Why | None:
        """Why `power_w` should be sent to the inverter now; None: it holds it already."""
        last = self._sent.get(inverter_id)
        if last is None:
            return Why.UNKNOWN
        if abs(power_w - last.power_w) >= max(resolution_w, 1e-9):
            return Why.CHANGED
        age = now - last.at
        if age >= self.refresh_after:
            return Why.KEEPALIVE
        if last.reopened and age >= self.min_resend_interval:
            return Why.REOPENED
        return None

    def sent(self, inverter_id: int, power_w: float, now: datetime) -> None:
        """The inverter took `power_w` at `now`."""
        self._sent[inverter_id] = Sent(power_w, now)

    def forget(self, inverter_id: int) -> None:
        """What the inverter holds is unknown (its command failed or was refused)."""
        self._sent.pop(inverter_id, None)

    def reopened(self, inverter_id: int) -> None:
        """The inverter's stream was re-opened: re-send its command once it may."""
        last = self._sent.get(inverter_id)
        if last is not None:
            self._sent[inverter_id] = Sent(last.power_w, last.at, reopened=True)

    def next_due(self, inverter_ids: Iterable[int]) -> datetime | None:
        """When the first of `inverter_ids` needs its command again; None if none was sent.

        A command is due at its keep-alive (`keepalive` after it was sent), a held
        re-send at its minimum interval. The plan made then sends every command older
        than `refresh_after`, so those sent in the same round go together again.
        """
        times = []
        for inverter_id in inverter_ids:
            last = self._sent.get(inverter_id)
            if last is None:
                continue
            times.append(last.at + self.keepalive)
            if last.reopened:
                times.append(last.at + self.min_resend_interval)
        return min(times, default=None)

    def last(self, inverter_id: int) -> Sent | None:
        """The last command the inverter took, if known."""
        return self._sent.get(inverter_id)
