"""What makes the PowerDistributingActor plan a running target before its keep-alive.

A target is planned again every keep-alive anyway; between two, the site can move
under it in ways the next plan must answer at once, not up to 15 s later. Each tick
the actor's loop asks `ReplanTriggers.notice`, which looks at the running targets
against telemetry and moves a target's `next_send` up — it plans and sends nothing
itself (the loop's keep-alive does, through the pacer, so no trigger can start a
re-send storm). The triggers, in the order they are looked at:

- an inverter's telemetry stream was re-opened (`telemetry_resumed`), and with it
  every targeted inverter whose telemetry is still silent then
  (`telemetry_silent_resent`: one server lost both); a hole in a stream that stayed
  open is only reported (`telemetry_late`);
- a limited feeder meter's allowance moved (`meter_allowance_changed`): a standing
  command outside its new share by more than `METER_TOLERANCE_W`, or held back by a
  share that has since grown; each meter's verdict is logged when it changes
  (`meter_verdict`);
- a component the last plan counted at its measured power moved by more than its
  step, `COUNTED_POWER_STEP_W` at least (`counted_power_moved`: its last command
  expired, or it ramps down);
- an EV charger's or PV inverter's bounds moved (`direct_bounds_changed`: a car
  plugged in or out).

The state kept between ticks is only what tells a new event from one already
answered: the gaps and reconnects handled per stream, the silences re-sent, the
meters' last verdicts. What moved is decided by pure functions
(`microgrid.telemetry_gaps`, `power.distribute`, `power.planning`, `power.direct`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Protocol

import structlog

from edge_controller.common.clock import Clock
from edge_controller.controller.commanding import Commander
from edge_controller.controller.direct_targets import bounds_now
from edge_controller.controller.distribution_targets import Target
from edge_controller.microgrid.direct import DirectComponents
from edge_controller.microgrid.graph import BatteryPairs
from edge_controller.microgrid.telemetry import TelemetryCache
from edge_controller.microgrid.telemetry_gaps import GapTracker, resumed_on_targets, silent_with
from edge_controller.power.direct import bounds_moved
from edge_controller.power.distribute import (
    Ask,
    MeterReadings,
    Rules,
    meters_moved,
    shares_for,
    standing_w,
)
from edge_controller.power.kinds import TargetKind
from edge_controller.power.meter_limits import MeterShares
from edge_controller.power.planning import counted_moved

COUNTED_POWER_STEP_W = 50.0
"""The least change (W) of a counted inverter's measured power that re-plans its
target at once (its resolution when larger): a silent inverter's expired command or an
excluded one ramping down, not a meter's noise."""

__all__ = ["COUNTED_POWER_STEP_W", "ReplanTriggers", "TelemetryAccess"]


class TelemetryAccess(Protocol):
    """What the triggers read from the microgrid connection."""

    @property
    def pairs(self) -> BatteryPairs:
        """Batteries behind each inverter."""
        ...

    @property
    def cache(self) -> TelemetryCache:
        """Latest telemetry per component."""
        ...

    @property
    def telemetry_gaps(self) -> GapTracker:
        """Gaps in each component's sample times, judged as the samples arrive.

        An inverter's gap re-sends its target at once (`telemetry_resumed`): a part of
        the access, not an option, so no wiring can leave it out.
        """
        ...


class ReplanTriggers:
    """Notices, each tick, which running targets must be planned again now.

    Holds only what tells a new event from one already answered; the targets are the
    actor's, passed in each tick, and only their `next_send` is moved (earlier).
    """

    def __init__(
        self,
        microgrid: TelemetryAccess,
        commander: Commander,
        *,
        clock: Clock,
        log: structlog.typing.FilteringBoundLogger,
        count: Callable[[str], None],
    ) -> None:
        """Read `microgrid`; ask `commander` when a re-sent command may go.

        `log` is the actor's (bound to its name), `count` adds to the actor's `counts`.
        """
        self._microgrid = microgrid
        self._commander = commander
        self._clock = clock
        self._log = log
        self._count = count
        self._gaps_handled: dict[int, int] = {}
        self._reconnects_handled: dict[int, int] = {}
        self._silence_resent: dict[int, datetime] = {}
        """Inverters re-sent for a silence, with their last sample before it: re-sent once
        per silence, however many streams come back during it."""
        self._meter_verdicts: dict[int, str] = {}

    def notice(
        self,
        targets: Mapping[frozenset[int], Target],
        rules: Rules,
        *,
        meters: MeterReadings | None,
        direct: DirectComponents,
    ) -> None:
        """Move up the `next_send` of every target the site moved under; log why.

        `meters` are the limited meters' readings now (None without meter limits),
        `direct` the site's EV chargers and PV inverters.
        """
        self._notice_telemetry_gaps(targets, direct)
        self._notice_meter_shares(targets, rules, meters)
        self._notice_counted_power(targets)
        self._notice_direct_bounds(targets)

    def log_verdicts(self, decided: MeterShares) -> None:
        """Log each limited meter's verdict when it changed since it was last seen.

        Called on every look at the shares: each tick here, and by the actor when it
        plans a battery target, so a change is logged once, whichever saw it first.
        """
        for allowance in decided.allowances:
            verdict = (
                "data_missing"
                if allowance.data_missing
                else "site_over_limit"
                if allowance.site_over
                else "ok"
            )
            if self._meter_verdicts.get(allowance.meter_id, "ok") != verdict:
                (self._log.info if verdict == "ok" else self._log.warning)(
                    "meter_verdict",
                    meter=allowance.meter_id,
                    verdict=verdict,
                    rest_w=None if math.isnan(allowance.rest_w) else allowance.rest_w,
                )
            self._meter_verdicts[allowance.meter_id] = verdict

    def _notice_meter_shares(
        self,
        targets: Mapping[frozenset[int], Target],
        rules: Rules,
        readings: MeterReadings | None,
    ) -> None:
        """Re-plan a target whose meters' allowance moved; log each meter's verdict."""
        if not rules.meter_limits and not any(t.allowed for t in targets.values()):
            return
        now = self._clock.now()
        for ids, target in targets.items():
            if not target.commands_w or target.ask.kind is not TargetKind.BATTERIES:
                continue
            decided = shares_for(rules, readings, target.commands_w, standing_w(targets, ids))
            self.log_verdicts(decided)
            moved = meters_moved(target.commands_w, target.allowed, target.held, decided, rules)
            if moved and target.next_send > now:
                self._log.info("meter_allowance_changed", batteries=sorted(ids), meters=moved)
                target.next_send = now

    def _notice_counted_power(self, targets: Mapping[frozenset[int], Target]) -> None:
        """Re-plan a target at once when a component it counts moved (`counted_moved`).

        A silent inverter's last command expired (its power fell to 0 W), or an
        excluded one ramps down: the others must take over the difference now, not at
        the next keep-alive.
        """
        now = self._clock.now()
        cache = self._microgrid.cache
        for ids, target in targets.items():
            if not target.counted_w or target.next_send <= now:
                continue
            measured: dict[int, float | None] = {}
            for component_id in target.counted_w:
                reading = cache.inverter(component_id, now) or cache.ev_charger(component_id, now)
                measured[component_id] = reading.power_w if reading is not None else None
            moved = counted_moved(target.counted_w, measured, self._steps(target.counted_w))
            if moved:
                self._log.info(
                    "counted_power_moved",
                    batteries=sorted(ids),
                    inverters=moved,
                    counted_w={i: target.counted_w[i] for i in moved},
                    measured_w={i: measured[i] for i in moved},
                )
                target.next_send = now

    def _notice_direct_bounds(self, targets: Mapping[frozenset[int], Target]) -> None:
        """Re-plan a direct target at once when one of its components' bounds moved.

        A car plugged in (0..0 → 0..22 kW) or out, a PV inverter whose bounds follow its
        sun (`power.direct.bounds_moved`).
        """
        now = self._clock.now()
        cache = self._microgrid.cache
        for ids, target in targets.items():
            if not target.planned_bounds or target.next_send <= now:
                continue
            moved = bounds_moved(
                target.planned_bounds,
                bounds_now(cache, target.planned_bounds),
                self._steps(target.planned_bounds),
            )
            if moved:
                self._log.info("direct_bounds_changed", components=sorted(ids), moved=moved)
                target.next_send = now

    def _steps(self, component_ids: Iterable[int]) -> dict[int, float]:
        """Each component's least move that is not noise (W).

        Its resolution, at least `COUNTED_POWER_STEP_W`: a meter's noise must not re-plan.
        """
        return {
            i: max(self._commander.resolution_w(i), COUNTED_POWER_STEP_W) for i in component_ids
        }

    def _notice_telemetry_gaps(
        self, targets: Mapping[frozenset[int], Target], direct: DirectComponents
    ) -> None:
        """Re-send a target at once when one of its inverters' streams was re-opened.

        Only a real hole in the sample times counts (`microgrid.telemetry_gaps`), and
        only on an inverter that has a target now: a battery resting between two
        dispatches has no gap, and a gap while it rested needs no re-send. A hole in a
        stream that stayed open is late telemetry from a busy server: reported, and
        left to the keep-alive (a re-send would load that server further).

        A re-opened stream also speaks for the targeted inverters whose telemetry is
        still silent then (`telemetry_gaps.silent_with`): the server that lost their
        commands answers again, and each of their streams re-opens only at its own next
        retry. Their targets are re-sent with it (`telemetry_silent_resent`), not one
        retry interval and a sample later: once per silence, however many streams come
        back during it, and again when its own stream is back, at least the pacer's
        minimum interval later (that its stream failed with the others cannot be told).
        """
        gaps = self._microgrid.telemetry_gaps
        inverters_of = {ids: self._commanded_ids(target.ask) for ids, target in targets.items()}
        targeted = set().union(*inverters_of.values()) if inverters_of else set()
        streamed = (
            *self._microgrid.pairs.inverter_ids,
            *direct.ev_charger_ids,
            *direct.pv_inverter_ids,
        )
        latest = {i: r for i in streamed if (r := gaps.latest(i)) is not None}
        self._gaps_handled, resumed = resumed_on_targets(self._gaps_handled, latest, targeted)
        # Counted apart from the gaps: a reconnect is not lost when a late gap of the
        # same stream comes before this look (only the latest gap is kept).
        reopened = []
        returned = []
        for inverter_id, latest_gap in latest.items():
            if latest_gap.reconnects > self._reconnects_handled.get(inverter_id, 0):
                self._reconnects_handled[inverter_id] = latest_gap.reconnects
                returned.append(inverter_id)
                if inverter_id in targeted:
                    reopened.append(latest_gap)
        reopened_ids = {r.component_id for r in reopened}
        late = [r for r in resumed if r.component_id not in reopened_ids]
        if late:
            self._count("telemetry_late")
            self._log.info(
                "telemetry_late",
                inverters=[r.component_id for r in late],
                gap_s=max(r.gap.total_seconds() for r in late),
            )
        for resumption in reopened:
            self._log.warning(
                "telemetry_resumed",
                inverter=resumption.component_id,
                gap_s=resumption.gap.total_seconds(),
            )
            self._resend(resumption.component_id, targets, inverters_of)
        returned_at = [t for i in returned if (t := self._last_sampled(i)) is not None]
        if not returned_at:
            return
        candidates = {
            i: t
            for i in targeted - set(returned)
            if (t := self._last_sampled(i)) is not None and self._silence_resent.get(i) != t
        }
        silent = silent_with(max(returned_at), candidates, gaps.min_gap)
        self._silence_resent.update({i: candidates[i] for i in silent})
        if silent:
            self._log.warning(
                "telemetry_silent_resent",
                inverters=silent,
                reconnected=sorted(returned),
                silent_s=max((max(returned_at) - candidates[i]).total_seconds() for i in silent),
            )
        for inverter_id in silent:
            self._resend(inverter_id, targets, inverters_of)

    def _resend(
        self,
        inverter_id: int,
        targets: Mapping[frozenset[int], Target],
        inverters_of: Mapping[frozenset[int], set[int]],
    ) -> None:
        """Plan the targets commanding `inverter_id` again once the pacer lets it re-send."""
        self._commander.reopened(inverter_id)
        due = self._commander.next_due([inverter_id]) or self._clock.now()
        for batteries, inverters in inverters_of.items():
            if inverter_id in inverters:
                target = targets[batteries]
                target.next_send = min(target.next_send, due)

    def _last_sampled(self, component_id: int) -> datetime | None:
        """When the latest sample of an inverter, EV charger or PV inverter was taken."""
        cache = self._microgrid.cache
        reading = cache.last_inverter(component_id) or cache.last_ev_charger(component_id)
        return reading.sampled_at if reading is not None else None

    def _commanded_ids(self, ask: Ask) -> set[int]:
        """The components a target's commands go to: inverters, or the ids themselves."""
        if ask.kind is TargetKind.BATTERIES:
            pairs = self._microgrid.pairs
            return {pairs.inverter_of(b) for b in ask.ids}
        return set(ask.ids)
