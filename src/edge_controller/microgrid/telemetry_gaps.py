"""Gaps in a component's telemetry, told apart from a battery that merely rests.

An inverter whose telemetry stream was re-opened (it failed: the Microgrid API
restarted) may have lost the commands it held: the distributor then re-sends its
target at once instead of waiting for the keep-alive. The stream's own state tells
this, not the sample times alone: a hole in the samples of a stream that stayed open
is a slow or busy server (`Resumption.reconnected` is False), reported but no reason
to re-send — re-sending then loads a busy server further and makes the next samples
later still. Two things must not look like a gap at all:

- a rest between two dispatches: the inverter had no target, its telemetry never
  stopped; only the *distributor* stopped looking at it;
- a busy event loop (a command that waits out its time-out): readings pile up and
  are read late, but their sample times have no hole.

So a gap is judged where every sample passes, on the sample times themselves
(`GapTracker.sampled`, fed by the connection's stream tasks), and acted on only for
an inverter that has a target when the gap is noticed (`resumed_on_targets`). The
first sample after the stream was re-opened (`reconnected=True`: it failed, the
server may have restarted and lost its commands) ends a gap however short::

    gaps = GapTracker(min_gap=timedelta(seconds=2))
    gaps.sampled(10, t)                        # None
    gaps.sampled(10, t + timedelta(seconds=0.5))   # None
    gaps.sampled(10, t + timedelta(seconds=9))     # Resumption(10, count=1, gap=8.5 s)
    handled, act_on = resumed_on_targets({}, gaps.latest_all(), targeted={10})
    # act_on == [Resumption(10, 1, 8.5 s, reconnected=False)]; handled == {10: 1}:
    # told once; the distributor re-sends only for a reconnected one

One server serves every stream, so the first stream back from a reconnect also speaks
for the streams still silent then (`silent_with`): a restarted server lost their
commands too, and answers again, while each of their streams re-opens only at its own
next retry — up to a retry interval and a sample period later (0.4 s of the 1.5 s the
`fault_tracking` benchmark allows for a restart).

Pure: no clock, no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Set
from dataclasses import dataclass
from datetime import datetime, timedelta

TELEMETRY_GAP = timedelta(seconds=2)
"""A silence longer than this between two samples of one component is a gap (the
simulator and real inverters send several samples a second)."""


@dataclass(frozen=True, slots=True)
class Resumption:
    """A component's telemetry resumed after a gap."""

    component_id: int
    count: int
    """How many gaps this component has had so far: tells a new one from a known one."""
    gap: timedelta
    """The silence between the last sample before and the first after."""
    reconnected: bool = False
    """The stream failed and was re-opened (the server may have lost its commands);
    otherwise the stream stayed open and only its samples had a hole (a slow server,
    a device that skipped samples): late telemetry, no reason to re-send."""
    reconnects: int = 0
    """How many of this component's gaps so far were re-opened streams: a reconnect
    is not lost when a late gap follows it before anyone looked."""


def gap_before(
    previous: datetime | None, sampled_at: datetime, min_gap: timedelta
) -> timedelta | None:
    """The silence before a sample stamped `sampled_at`, if it is a gap (> `min_gap`).

    None for the first sample ever (`previous` is None) and for a late or repeated one.
    """
    if previous is None:
        return None
    silence = sampled_at - previous
    return silence if silence > min_gap else None


class GapTracker:
    """Every component's latest sample time and the last gap it had."""

    def __init__(self, min_gap: timedelta = TELEMETRY_GAP) -> None:
        """Count a silence longer than `min_gap` as a gap.

        Raises:
            ValueError: `min_gap` is not positive.
        """
        if min_gap <= timedelta(0):
            raise ValueError(f"min_gap must be > 0, got {min_gap}")
        self.min_gap = min_gap
        self._latest: dict[int, datetime] = {}
        self._resumed: dict[int, Resumption] = {}
        self._reconnect_pending: set[int] = set()
        """Re-opened streams whose first sample was older than the latest (ignored):
        the next sample it accepts ends the reconnect's gap."""

    def sampled(
        self, component_id: int, sampled_at: datetime, *, reconnected: bool = False
    ) -> Resumption | None:
        """Record a sample of `component_id`; return the gap it ends, if any.

        `reconnected`: the first sample since the stream failed and was re-opened, a
        gap whatever the silence before it (but the very first sample ever). A sample
        older than the latest one (a stream delivering late) changes nothing.
        """
        previous = self._latest.get(component_id)
        if previous is not None and sampled_at <= previous:
            if reconnected:
                self._reconnect_pending.add(component_id)
            return None
        if component_id in self._reconnect_pending:
            self._reconnect_pending.discard(component_id)
            reconnected = True
        self._latest[component_id] = sampled_at
        gap = gap_before(previous, sampled_at, self.min_gap)
        if gap is None and reconnected and previous is not None:
            gap = sampled_at - previous
        if gap is None:
            return None
        known = self._resumed.get(component_id)
        reconnects = (known.reconnects if known else 0) + (1 if reconnected else 0)
        resumption = Resumption(
            component_id,
            (known.count if known else 0) + 1,
            gap,
            reconnected=reconnected,
            reconnects=reconnects,
        )
        self._resumed[component_id] = resumption
        return resumption

    def latest(self, component_id: int) -> Resumption | None:
        """The last gap `component_id` resumed from (None: never had one)."""
        return self._resumed.get(component_id)

    def latest_all(self) -> dict[int, Resumption]:
        """The last gap of every component that had one."""
        return dict(self._resumed)


def resumed_on_targets(
    handled: Mapping[int, int], resumed: Mapping[int, Resumption], targeted: Set[int]
) -> tuple[dict[int, int], list[Resumption]]:
    """Which new gaps to act on: those of inverters that have a target now.

    `handled` is how many gaps of each component were already seen (from the previous
    call), `resumed` each component's latest gap (`GapTracker.latest_all`), `targeted`
    the inverters some target runs now. Returns the new `handled` — every gap is seen
    once, acted on or not, so a gap that ended while its inverter rested never comes
    back when the next dispatch starts — and the new gaps of targeted inverters, by id.
    """
    seen = dict(handled)
    act_on = []
    for component_id, resumption in sorted(resumed.items()):
        if resumption.count <= seen.get(component_id, 0):
            continue
        seen[component_id] = resumption.count
        if component_id in targeted:
            act_on.append(resumption)
    return seen, act_on


def silent_with(
    returned_at: datetime, last_sampled: Mapping[int, datetime], min_gap: timedelta
) -> list[int]:
    """The components still silent when a re-opened stream delivered its sample of `returned_at`.

    `last_sampled` holds each candidate's latest sample time. A component silent for
    longer than a gap (`min_gap`) by then is in the same outage as far as anyone can
    tell: the server answers again, its own stream is just not re-opened yet. One that
    sampled within `min_gap` is not (a stream that failed alone speaks for no other).
    Only the server's sample times are compared, so a clock difference between the
    server and the controller cannot change the answer. Sorted by id.
    """
    return sorted(i for i, at in last_sampled.items() if returned_at - at > min_gap)
