"""PowerDistributingActor: holds power targets on batteries, EV chargers and PV inverters.

A thin shell around one pure call, `power.distribute.decide()`: for each request (and
each re-plan of a running target) it converts the `PowerRequest` into watts once (an
`Ask`), snapshots the components it names from telemetry and failure bookkeeping,
asks `decide()` what to do, hands the commands it returns to its `Commander`, and
answers each namespace on its own channel::

    PowerRequest ──▶ PowerDistributingActor ──▶ Commander ──▶ set power (Microgrid API)
                       │  Ask, units ─▶ decide() ─▶ Planned / Refused / Rejected
                       ├──▶ Result per namespace (Success, PartialFailure, ...)
                       └──▶ BatteryStatus(working, uncertain)

This module is the actor's loop and its request handling; each other part of the
distributor is a module of its own:

- `power/distribute.py`: what to do (reach, the operator's controls, feeder-meter
  shares, the plan, refusals, take-overs), pure.
- `controller/commanding.py`: sending — pacing, concurrency, timeouts, failures
  booked as blocked or refused, releases (`Commander`, `Outcome`).
- `controller/replan_triggers.py`: what plans a running target again before its
  keep-alive (`ReplanTriggers`, looked at every tick).
- `controller/distribution_targets.py`: the running target record (`Target`) that the
  actor writes and the triggers read.
- `controller/direct_targets.py`: EV chargers and PV inverters as read from
  telemetry, and the commands that give them back.

What the actor adds to `decide()`, and where each part lives:

- A newer request for the same component set that arrives before an older one was
  processed makes the older one `Ignored`. The requests that arrive together are
  planned in one round: what a replaced target leaves is given back at once, unless
  another request of the round holds a power on it — then only if none took it, once
  the round is planned — so a set the PowerManagingActor shrinks or splits is never
  told 0 W on the part that goes on. (Here.)
- A target stays in force: it is re-planned every `keepalive_interval` (well within
  the API's command lifetime), which also keeps balancing SoC and brings recovered
  batteries back. Sending 0 W releases the batteries. (Here.)
- A plan's command goes to a component only when it means something
  (`power.command_pacing`): a changed value, a keep-alive, an unknown state (after a
  failure or refusal), a re-opened stream; a value it already holds is held back
  (`commands_held`), and the same value is never repeated within
  `MIN_RESEND_INTERVAL`, however often the target is re-planned. Commands go out
  concurrently, at most `MAX_CONCURRENT_COMMANDS` at a time. (`commanding`.)
- A timeout or an API error marks the battery (or EV charger, PV inverter) broken
  (growing blocking time, `power.status`); an OUT_OF_RANGE refusal does not: that
  component is counted at its measured power until the next keep-alive.
  (`commanding` books it; the actor keeps the refusal on the target.)
- A target is planned again at once after a failure, a refusal or an answered probe
  (here: `_next_send`), and when the site moved under it (`replan_triggers`): an
  inverter the plan counts at its measured power moves by more than its resolution
  (at least `COUNTED_POWER_STEP_W`), a limited feeder meter's allowance moved (by more
  than `METER_TOLERANCE_W`), an EV charger's or PV inverter's bounds moved, an
  inverter's telemetry stream was re-opened — and with it every targeted inverter
  whose telemetry is still silent then.
- `BatteryStatus(working, uncertain)` is published whenever it changes, checked every
  tick. (Here.)
- Time comes from the project's `Clock`, so tests leap minutes with a manual clock.
- Operator controls (`reconfigure`, applied live): entering observe mode releases the
  running targets once (batteries and EV chargers to 0 W, PV limits lifted), so
  nothing is left running unattended; excluding a battery in use gives its inverter
  0 W once. A PV withdraw lifts each PV inverter to its full production once and ends
  the target; EV chargers are released to 0 W. (Here what to release; the
  `Commander` sends it, and takes the new timing, resolutions and blocking times.)
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Protocol

import structlog
from frequenz.channels import BroadcastChannel, BroadcastSender, Receiver
from frequenz.quantities import Power

from edge_controller.common.clock import Clock, WallClock
from edge_controller.common.waiting import wait_event
from edge_controller.config.schema import ControlsConfig
from edge_controller.controller.commanding import (
    MAX_CONCURRENT_COMMANDS,
    Commander,
    Outcome,
    PowerSetter,
    check_timing,
)
from edge_controller.controller.direct_targets import (
    direct_access,
    direct_units,
    known_ids,
    release_commands,
)
from edge_controller.controller.distribution_targets import Target
from edge_controller.controller.replan_triggers import (
    COUNTED_POWER_STEP_W,
    ReplanTriggers,
    TelemetryAccess,
)
from edge_controller.framework.messages import (
    Error,
    Ignored,
    OutOfBounds,
    PowerBounds,
    PowerRequest,
    Result,
    Success,
    TargetKind,
)
from edge_controller.framework.supervision import SupervisedActor
from edge_controller.microgrid.direct import DirectComponents
from edge_controller.microgrid.site_view import meter_power_w
from edge_controller.power.bounds import hull
from edge_controller.power.direct import DirectUnit
from edge_controller.power.distribute import (
    METER_TOLERANCE_W,
    Ask,
    MeterReadings,
    Planned,
    Refused,
    Rejected,
    Rules,
    TakeOver,
    decide,
    each_alone,
    request_problem,
)
from edge_controller.power.distribution import DistributionAlgorithm, SocBalancing
from edge_controller.power.meter_limits import ZERO, MeterLimit
from edge_controller.power.planning import (
    Availability,
    BatteryState,
    Refusal,
    Unit,
)
from edge_controller.power.status import BatteryStatus, BlockingTracker

RETRY_INTERVAL = timedelta(seconds=2)
"""How soon a target that found no usable battery is tried again."""
ORPHAN_GRACE = timedelta(seconds=2)
"""After start, the use cases have had this long to ask for what runs (the controller
starts its actors only after the dispatch service's first fetch, so running dispatches
arrive at once); an inverter still delivering power that no target covers then is an
orphan of an earlier run."""

__all__ = [
    "COUNTED_POWER_STEP_W",
    "MAX_CONCURRENT_COMMANDS",
    "METER_TOLERANCE_W",
    "ORPHAN_GRACE",
    "RETRY_INTERVAL",
    "MicrogridAccess",
    "PowerDistributingActor",
]


class MicrogridAccess(TelemetryAccess, PowerSetter, Protocol):
    """What the actor needs from the microgrid connection.

    The battery pairing, the telemetry cache and its gaps (`replan_triggers.TelemetryAccess`)
    and the set-power call (`commanding.PowerSetter`): one protocol, so no wiring can
    hand the actor a connection without its telemetry gaps.
    """


def _ask(request: PowerRequest) -> Ask:
    """The request in watts: the one conversion from `Power` inside the distributor."""
    return Ask(
        request.target,
        request.components,
        request.power.as_watts(),
        adjust_power=request.adjust_power,
        include_broken=request.include_broken_batteries,
        withdraw=request.withdraws,
    )


class PowerDistributingActor(SupervisedActor):
    """Distributes power requests over batteries, EV chargers and PV inverters.

    Its loop and request handling; what it decides is `power.distribute.decide`, its
    `Commander` sends (`commanding`), its `ReplanTriggers` notice when a running
    target must be planned again (`replan_triggers`). See the module docstring.
    """

    def __init__(
        self,
        requests: Receiver[PowerRequest],
        microgrid: MicrogridAccess,
        *,
        clock: Clock | None = None,
        algorithm: DistributionAlgorithm | None = None,
        resolutions_w: Mapping[int, float] | None = None,
        command_lifetime: timedelta = timedelta(seconds=60),
        keepalive_interval: timedelta = timedelta(seconds=15),
        blocking: BlockingTracker | None = None,
        tick: timedelta = timedelta(seconds=0.2),
        controls: ControlsConfig | None = None,
        meter_limits: Sequence[MeterLimit] = (),
        inverters_below: Mapping[int, Sequence[int]] | None = None,
        meter_stale_after: timedelta = timedelta(seconds=3),
        on_command: Callable[[float, bool], None] | None = None,
        on_result: Callable[[Result], None] | None = None,
        name: str = "power_distributing",
    ) -> None:
        """Wire the actor; `resolutions_w` gives inverter resolutions (default 1 W).

        `meter_limits` are enforced on the battery inverters `inverters_below` each
        meter (the component graph's), from meter power no older than
        `meter_stale_after`. `on_command(seconds, ok)` is told how long each inverter
        command took (metrics). When an inverter's telemetry stream was re-opened
        (`microgrid.telemetry_gaps`), its target is re-sent at once (`telemetry_resumed`,
        `replan_triggers`); a hole in the samples of a stream that stayed open is only
        reported (`telemetry_late`).
        """
        super().__init__(name=name)
        self._log = structlog.get_logger(__name__).bind(actor=name)
        self._clock: Clock = clock or WallClock()
        self._commander = Commander(
            microgrid,
            clock=self._clock,
            log=self._log,
            resolutions_w=resolutions_w,
            command_lifetime=command_lifetime,
            keepalive_interval=keepalive_interval,
            blocking=blocking,
            on_command=on_command,
        )
        self._requests = requests
        self._microgrid = microgrid
        self._direct_access = direct_access(microgrid)
        self._algorithm: DistributionAlgorithm = algorithm or SocBalancing()
        self._controls = controls or ControlsConfig()
        self._meter_limits = tuple(meter_limits)
        self._inverters_below = {m: tuple(i) for m, i in (inverters_below or {}).items()}
        self._meter_stale_after = meter_stale_after
        self._out_of_service: frozenset[int] = frozenset()
        self._rules = self._current_rules()
        self._changes: deque[Callable[[], Awaitable[None]]] = deque()
        self._wake = asyncio.Event()
        self._orphans_checked = False
        self._triggers = ReplanTriggers(
            microgrid, self._commander, clock=self._clock, log=self._log, count=self._count
        )
        self._on_result = on_result
        self.counts: dict[str, int] = {}
        """Plans limited by the power limit, observe-only plans, releases, ..."""
        self._tick_s = tick.total_seconds()
        self._targets: dict[frozenset[int], Target] = {}
        self._coming: frozenset[int] = frozenset()
        """What the requests of this round not planned yet name (`_take_over`)."""
        self._left_over: dict[int, TargetKind] = {}
        """What replaced targets left and a coming request names: given back after the
        round's requests unless one of them took it."""
        self._pending: deque[PowerRequest] = deque()
        self._result_senders: dict[str, BroadcastSender[Result]] = {}
        self._anchors: list[Receiver[Result]] = []
        # A broadcast channel closes itself when its last receiver goes away. Each
        # channel here keeps its first receiver as an unread anchor (one slot, no
        # overflow warnings), so subscribers may come and go.
        self._status_published: BatteryStatus | None = None
        self._status_sender, self._status_anchor = BroadcastChannel[BatteryStatus](
            name=f"{name}_battery_status", resend_latest=True, limit=1, warn_on_overflow=False
        )

    # ------------------------------------------------------------- live settings

    @property
    def controls(self) -> ControlsConfig:
        """The operator controls in force."""
        return self._controls

    @property
    def targets(self) -> dict[frozenset[int], float]:
        """Running targets: watts asked per component set (before any power limit)."""
        return {ids: t.ask.power_w for ids, t in self._targets.items()}

    def _current_rules(self) -> Rules:
        """The settings `decide()` follows, from the actor's: made again on each change."""
        return Rules(
            self._algorithm,
            observe=self._controls.mode == "observe",
            left_out=self._controls.excluded_batteries | self._out_of_service,
            power_limit_w=self._controls.power_limit_w,
            meter_limits=self._meter_limits,
            inverters_below=self._inverters_below,
        )

    async def reconfigure(
        self,
        *,
        algorithm: DistributionAlgorithm | None = None,
        resolutions_w: Mapping[int, float] | None = None,
        command_lifetime: timedelta | None = None,
        keepalive_interval: timedelta | None = None,
        blocking_initial: timedelta | None = None,
        blocking_max: timedelta | None = None,
        controls: ControlsConfig | None = None,
        meter_limits: Sequence[MeterLimit] | None = None,
        meter_stale_after: timedelta | None = None,
    ) -> None:
        """Take new settings while running; every running target is re-planned at once.

        The change is carried out by the actor's own loop, between two requests, so a
        command planned under the old settings can never land after the release that
        entering observe mode (or excluding a battery) sends.

        Raises:
            ValueError: inconsistent timing (nothing is changed then).
        """
        lifetime = command_lifetime or self._commander.lifetime
        keepalive = keepalive_interval or self._commander.keepalive
        check_timing(lifetime, keepalive)

        async def change() -> None:
            self._commander.reconfigure(
                command_lifetime=lifetime,
                keepalive_interval=keepalive,
                resolutions_w=resolutions_w,
                blocking_initial=blocking_initial,
                blocking_max=blocking_max,
            )
            if algorithm is not None:
                self._algorithm = algorithm
            if controls is not None and controls != self._controls:
                await self._change_controls(controls)
            if meter_limits is not None:
                self._meter_limits = tuple(meter_limits)
            if meter_stale_after is not None:
                self._meter_stale_after = meter_stale_after
            self._rules = self._current_rules()
            self._replan_all()

        self._changes.append(change)
        self._wake.set()

    def _replan_all(self) -> None:
        now = self._clock.now()
        for target in self._targets.values():
            target.next_send = now

    def set_out_of_service(self, batteries: frozenset[int]) -> None:
        """Leave `batteries` out of every plan (component recovery); re-plan at once.

        The inverters of batteries newly taken out get 0 W once (from the actor's
        loop): a faulted device that still holds an old setpoint must not deliver it
        uncounted while the others carry the target.
        """
        if batteries == self._out_of_service:
            return
        newly_out = batteries - self._out_of_service
        self._log.warning("out_of_service", batteries=sorted(batteries))
        self._out_of_service = batteries
        self._rules = self._current_rules()

        async def change() -> None:
            in_use = self._in_use(TargetKind.BATTERIES)
            if newly_out & in_use and self._controls.mode == "control":
                await self._release(newly_out & in_use)
            self._replan_all()

        self._changes.append(change)
        self._wake.set()

    def _in_use(self, kind: TargetKind) -> frozenset[int]:
        """The components the running targets of `kind` hold."""
        return frozenset(
            component_id
            for ids, target in self._targets.items()
            if target.ask.kind is kind
            for component_id in ids
        )

    async def _change_controls(self, controls: ControlsConfig) -> None:
        old, self._controls = self._controls, controls
        self._rules = self._current_rules()
        release: dict[TargetKind, set[int]] = {kind: set() for kind in TargetKind}
        if controls.mode == "observe" and old.mode == "control":
            for kind in TargetKind:
                release[kind] |= self._in_use(kind)
        in_use = self._in_use(TargetKind.BATTERIES)
        newly_excluded = (controls.excluded_batteries - old.excluded_batteries) & in_use
        if old.mode == "control":
            release[TargetKind.BATTERIES] |= newly_excluded
        releasing = sorted(set().union(*release.values()))
        self._log.warning(
            "controls_changed",
            mode=controls.mode,
            excluded_batteries=sorted(controls.excluded_batteries),
            power_limit_w=controls.power_limit_w,
            releasing=releasing or None,
        )
        for kind, ids in release.items():
            if ids:
                await self._release(ids, kind)

    async def _release_orphans(self) -> None:
        """Release inverters that deliver power no target asks for (once, after start).

        A dispatch deleted while the controller was down left its last command
        running until the API's command lifetime ends; nothing else would stop it.
        """
        if self._controls.mode != "control":
            return
        pairs = self._microgrid.pairs
        cache = self._microgrid.cache
        now = self._clock.now()
        covered = frozenset().union(*self._targets) if self._targets else frozenset()
        orphans = {
            b
            for inverter_id in pairs.inverter_ids
            if (reading := cache.inverter(inverter_id, now)) is not None
            and math.isfinite(reading.power_w)
            and abs(reading.power_w) > 1.0
            and not set(pairs.batteries_of(inverter_id)) & covered
            for b in pairs.batteries_of(inverter_id)
        }
        if orphans:
            self._log.warning("orphan_power_released", batteries=sorted(orphans))
            await self._release(orphans)

    # ------------------------------------------------------------- main loop

    async def _run(self) -> None:
        # Kept on the actor: a restart after a crash must not lose requests (a 0 W
        # release among them) that were already taken from the channel.
        pending = self._pending
        arrived = self._wake
        arrived.set()
        started = self._clock.now()

        async def collect() -> None:
            async for request in self._requests:
                pending.append(request)
                arrived.set()

        collector = asyncio.create_task(collect(), name=f"{self.name}_collect")
        try:
            while True:
                await wait_event(arrived, self._tick_s)
                if collector.done():
                    collector.result()  # the request channel closed: re-raise or stop
                    return
                arrived.clear()
                while self._changes:
                    await self._changes.popleft()()
                if not self._orphans_checked and self._clock.now() - started >= ORPHAN_GRACE:
                    self._orphans_checked = True
                    await self._release_orphans()
                self._notice()
                await self._publish_status(self._clock.now())
                batch = list(pending)
                pending.clear()
                requests = await self._latest_only(batch)
                for request, coming in zip(requests, _named_later(requests), strict=True):
                    self._coming = coming
                    await self._handle(request, _ask(request), keepalive=False)
                self._coming = frozenset()
                await self._give_back_left_over()
                await self._keep_alive()
                self._count("evaluations")
        finally:
            collector.cancel()

    def _notice(self) -> None:
        """Move up the targets the site moved under (`replan_triggers`)."""
        meters = self._meter_readings(self._clock.now()) if self._meter_limits else None
        self._triggers.notice(self._targets, self._rules, meters=meters, direct=self._direct())

    async def _latest_only(self, batch: list[PowerRequest]) -> list[PowerRequest]:
        """Answer superseded requests with Ignored; keep the newest per component set."""
        newest: dict[frozenset[int], PowerRequest] = {}
        for request in batch:
            older = newest.get(request.components)
            if older is not None:
                await self.publish(Ignored(older))
            newest[request.components] = request
        return list(newest.values())

    async def _keep_alive(self) -> None:
        now = self._clock.now()
        for target in list(self._targets.values()):
            if target.next_send <= now:
                await self._handle(target.request, target.ask, keepalive=True)

    # ------------------------------------------------------------- one request

    async def _handle(self, request: PowerRequest, ask: Ask, *, keepalive: bool) -> None:
        """Gather, decide (`power.distribute.decide`), send, record, report."""
        log = self._log.bind(namespace=request.namespace, keepalive=keepalive)
        if ask.kind is not TargetKind.BATTERIES:
            log = log.bind(target=ask.kind.value)
        invalid = self._validate(request)
        if invalid is not None:
            await self.publish(Error(request, invalid))
            log.warning("request_rejected", reason=invalid)
            return
        now = self._clock.now()
        if ask.kind is TargetKind.BATTERIES:
            units: list[Unit] | list[DirectUnit] = self._units(request, now)
            meters = self._meter_readings(now) if self._meter_limits else None
        else:
            running = self._targets.get(ask.ids)
            refused = running.refused(now) if running is not None else frozenset()
            units = direct_units(
                self._microgrid.cache,
                self._direct(),
                ask.kind,
                ask.ids,
                now,
                blocking=self._commander.blocking,
                resolutions_w=self._commander.resolutions_w,
                refused=refused,
            )
            meters = None
        decision = decide(
            ask, self._targets, units, self._rules, keepalive=keepalive, meters=meters
        )
        if isinstance(decision, Rejected):
            await self.publish(Error(request, decision.reason))
            log.warning("request_rejected", reason=decision.reason)
        elif isinstance(decision, Refused):
            await self._on_refused(request, ask, decision, log, now)
        else:
            await self._on_planned(request, ask, decision, log, keepalive=keepalive, now=now)

    def _validate(self, request: PowerRequest) -> str | None:
        """What is wrong with the ids of a request, by the site's components."""
        groups = (
            self._microgrid.pairs.as_dict()
            if request.target is TargetKind.BATTERIES
            else each_alone(known_ids(self._direct(), request.target))
        )
        return request_problem(request.target, request.components, groups)

    async def _on_refused(
        self,
        request: PowerRequest,
        ask: Ask,
        refused: Refused,
        log: structlog.typing.FilteringBoundLogger,
        now: datetime,
    ) -> None:
        await self._take_over(request, refused.take_over)
        if refused.retry:
            self._targets[ask.ids] = Target(request, ask, now + RETRY_INTERVAL)
        if refused.report:
            await self._refuse(request, refused.refusal, log)
        if refused.withdraw is None:
            return
        log.warning(refused.withdraw)
        if ask.kind is TargetKind.BATTERIES:
            # Held at 0 W until the use case asks again.
            zero = dataclasses.replace(request, power=Power.zero())
            await self._handle(zero, _ask(zero), keepalive=True)
            return
        self._targets.pop(ask.ids, None)
        if self._controls.mode == "control":
            await self._release(ask.ids, ask.kind)

    async def _on_planned(
        self,
        request: PowerRequest,
        ask: Ask,
        planned: Planned,
        log: structlog.typing.FilteringBoundLogger,
        *,
        keepalive: bool,
        now: datetime,
    ) -> None:
        decided = planned.plan
        if planned.limited:
            self._count("power_limited")
            log.warning(
                "power_limited",
                requested_w=ask.power_w,
                allowed_w=planned.target_w,
                power_limit_w=self._controls.power_limit_w,
            )
        await self._take_over(request, planned.take_over)
        if self._rules.observe:
            if ask.withdraw and ask.kind is not TargetKind.BATTERIES:
                self._targets.pop(ask.ids, None)
            else:
                self._targets[ask.ids] = Target(
                    request,
                    ask,
                    now + self._commander.keepalive,
                    planned.target_w,
                    planned_bounds=planned.bounds_seen,
                )
            self._count("observed")
            if not keepalive:
                await self.publish(
                    Success(
                        request,
                        Power.from_watts(sum(decided.commands.values())),
                        planned.served,
                        Power.from_watts(decided.excess_w),
                    )
                )
            log.info("observe_only", target_w=planned.target_w, would_command_w=decided.commands)
            return
        outcome = await self._commander.send(request, decided, planned.serves, planned.always)
        self._count("commands_held", outcome.held)
        running = self._targets.get(ask.ids)
        refused_until = {
            i: until
            for i, until in (running.refused_until if running and keepalive else {}).items()
            if until > now
        }
        refused_until.update(dict.fromkeys(outcome.refused, now + self._commander.keepalive))
        if planned.ends and not outcome.failed:
            self._targets.pop(ask.ids, None)
        else:
            self._targets[ask.ids] = Target(
                request,
                ask,
                self._next_send(ask, planned, outcome, now),
                planned.target_w,
                {
                    i: command
                    for i, command in decided.commands.items()
                    if not planned.serves.get(i, frozenset()) & outcome.failed
                },
                {a.meter_id: a.allowed or ZERO for a in planned.meters.allowances},
                dict(planned.held),
                dict(decided.counted_w),
                refused_until,
                planned.bounds_seen,
            )
        if ask.kind is TargetKind.BATTERIES:
            self._log_meters(planned, log)
            await self._publish_status(now)
        result = outcome.result(request, decided)
        if not keepalive or not isinstance(result, Success):
            await self.publish(result)
        log.info(
            "power_distributed",
            target_w=planned.target_w,
            withdraw=ask.withdraw or None,
            commands_w=decided.commands,
            counted_elsewhere_w=decided.counted_elsewhere_w,
            excess_w=decided.excess_w,
            failed=sorted(outcome.failed),
            skipped=decided.skipped or None,
        )

    def _next_send(self, ask: Ask, planned: Planned, outcome: Outcome, now: datetime) -> datetime:
        """When a target that was just sent is planned again.

        At the keep-alive of the oldest command held (`command_pacing`); at once after
        a refusal (counted at its measured power from now on) or an answered probe
        (it takes its share): the plan changes either way. After a failure, at once
        too — the failed components are blocked now and the others make up the rest —
        but a battery release is not retried before its blocking time: its command
        would stall every other request for a whole timeout.
        """
        keepalive_at = now + self._commander.keepalive
        next_send = min(
            keepalive_at, self._commander.next_due(planned.plan.commands) or keepalive_at
        )
        if outcome.refused or planned.probed & outcome.answered:
            next_send = now
        if outcome.blocked:
            next_send = now
            if ask.kind is TargetKind.BATTERIES and planned.target_w == 0.0:
                blocked = [
                    t
                    for b in outcome.failed
                    if (t := self._commander.blocking.blocked_until(b)) is not None
                ]
                if blocked:
                    next_send = max(blocked)
        return next_send

    def _log_meters(self, planned: Planned, log: structlog.typing.FilteringBoundLogger) -> None:
        self._triggers.log_verdicts(planned.meters)
        if not planned.held:
            return
        self._count("meter_limited")
        allowances = [a for a in planned.meters.allowances if a.meter_id in planned.held]
        # Nothing left at all (the meter's data is missing, or other targets below it
        # run all its headroom: first planned, first served) is worth a warning.
        starved = any((a.allowed or ZERO) == ZERO for a in allowances)
        (log.warning if starved else log.info)(
            "meter_limited",
            starved=starved,
            target_w=planned.target_w,
            meters=sorted(planned.held),
            allowed_w={
                str(a.meter_id): [(a.allowed or ZERO).lower, (a.allowed or ZERO).upper]
                for a in allowances
            },
            excess_w=planned.plan.excess_w,
        )

    async def _take_over(self, request: PowerRequest, take_over: TakeOver) -> None:
        """Drop the running targets a request replaces; give back what it leaves.

        Except what a request that arrived with it names (`_coming`): that is given
        back only if none of them takes it (`_give_back_left_over`), so the part of a
        set that the manager keeps is never told 0 W in between (it sends the release
        of the part it drops before the request for the part it keeps).
        """
        for ids in take_over.replaces:
            self._log.warning(
                "overlapping_request",
                namespace=request.namespace,
                batteries=sorted(request.components),
                replaces=sorted(ids),
                released=sorted(ids - request.components - self._coming) or None,
            )
            self._targets.pop(ids, None)
        for kind, ids in take_over.releases:
            self._left_over.update(dict.fromkeys(ids & self._coming, kind))
            if ids - self._coming:
                await self._release(ids - self._coming, kind)

    async def _give_back_left_over(self) -> None:
        """Release what replaced targets left and no running target took since."""
        left, self._left_over = self._left_over, {}
        by_kind: dict[TargetKind, set[int]] = {}
        for component_id, kind in left.items():
            if component_id not in self._in_use(kind):
                by_kind.setdefault(kind, set()).add(component_id)
        for kind, ids in by_kind.items():
            await self._release(ids, kind)

    # ------------------------------------------------------------- snapshots

    def _meter_readings(self, now: datetime) -> MeterReadings:
        """The limited meters' power and their inverters' power and bounds, now."""
        cache = self._microgrid.cache
        below = {m.meter_id: self._inverters_below.get(m.meter_id, ()) for m in self._meter_limits}
        inverters = sorted({i for ids in below.values() for i in ids})
        fresh = {i: cache.inverter(i, now) for i in inverters}
        last = {i: cache.last_inverter(i) for i in inverters}
        return MeterReadings(
            {m: meter_power_w(cache, m, now, self._meter_stale_after) for m in below},
            {i: r.power_w if r is not None else None for i, r in fresh.items()},
            {i: hull(r.bounds) if r is not None and r.bounds else None for i, r in last.items()},
        )

    def _units(self, request: PowerRequest, now: datetime) -> list[Unit]:
        """Snapshot the request's inverters with their batteries from telemetry.

        With each, the facts `planning.reach` decides from: blocked, unconfirmed
        (blocking time over, not answered since), refused (until the next keep-alive).
        """
        running = self._targets.get(request.batteries)
        refused = running.refused(now) if running is not None else frozenset()
        cache = self._microgrid.cache
        blocking = self._commander.blocking
        inverters = sorted({self._microgrid.pairs.inverter_of(b) for b in request.batteries})
        units = []
        for inverter_id in inverters:
            battery_ids = self._microgrid.pairs.batteries_of(inverter_id)
            fresh = [cache.battery(b, now) for b in battery_ids]
            latest = [cache.last_battery(b) for b in battery_ids]
            inverter_fresh = cache.inverter(inverter_id, now)
            inverter_last = cache.last_inverter(inverter_id)
            if any(blocking.is_blocked(b, now) for b in battery_ids):
                availability = Availability.BROKEN
            elif all(r is not None for r in fresh) and inverter_fresh is not None:
                availability = Availability.WORKING
            else:
                availability = Availability.UNCERTAIN
            batteries = tuple(
                BatteryState(
                    battery_id,
                    reading.soc_pct if reading else math.nan,
                    reading.soc_lower_pct if reading else math.nan,
                    reading.soc_upper_pct if reading else math.nan,
                    reading.capacity_wh if reading else math.nan,
                    reading.bounds if reading else None,
                )
                for battery_id, reading in zip(battery_ids, latest, strict=True)
            )
            measured = inverter_fresh.power_w if inverter_fresh is not None else None
            units.append(
                Unit(
                    inverter_id=inverter_id,
                    batteries=batteries,
                    inverter_bounds=inverter_last.bounds if inverter_last else None,
                    resolution_w=self._commander.resolution_w(inverter_id),
                    availability=availability,
                    measured_power_w=(
                        measured if measured is not None and math.isfinite(measured) else None
                    ),
                    unconfirmed=any(blocking.unconfirmed(b, now) for b in battery_ids),
                    refused=inverter_id in refused,
                )
            )
        return units

    def direct_release_commands(self) -> dict[int, float]:
        """What gives every EV charger and PV inverter back, for the controller's stop.

        Every EV charger 0 W; every PV inverter its full production, in whole steps —
        what a withdraw sends (`direct_targets.release_commands`). Batteries are
        released by the controller on their own.
        """
        return release_commands(
            self._microgrid.cache,
            self._direct(),
            self._clock.now(),
            resolutions_w=self._commander.resolutions_w,
        )

    def _direct(self) -> DirectComponents:
        access = self._direct_access
        return access.direct if access is not None else DirectComponents()

    # ------------------------------------------------------------- sending, reporting

    async def _release(
        self, ids: frozenset[int] | set[int], kind: TargetKind = TargetKind.BATTERIES
    ) -> None:
        """Give components back, come what may (logged).

        A battery's inverter and an EV charger get 0 W; a PV inverter its full
        production (its limit lifted: 0 W would stop it producing), blocked or not.
        """
        timeout_s = min(5.0, self._commander.keepalive.total_seconds())
        if kind is TargetKind.BATTERIES:
            pairs = self._microgrid.pairs
            commands = dict.fromkeys(sorted({pairs.inverter_of(b) for b in ids}), 0.0)
        else:
            commands = {i: c for i, c in self.direct_release_commands().items() if i in ids}
        await self._commander.release(commands, timeout_s)
        self._count("releases")

    def _count(self, what: str, times: int = 1) -> None:
        if times:
            self.counts[what] = self.counts.get(what, 0) + times

    # ------------------------------------------------------------- channels

    def new_result_receiver(self, namespace: str) -> Receiver[Result]:
        """Subscribe to the results of one namespace's requests."""
        return self._result_sender(namespace).subscribe()

    def new_status_receiver(self) -> Receiver[BatteryStatus]:
        """Subscribe to battery status updates (the latest is resent at once)."""
        return self._status_sender.subscribe()

    def _result_sender(self, namespace: str) -> BroadcastSender[Result]:
        sender = self._result_senders.get(namespace)
        if sender is None:
            sender, anchor = BroadcastChannel[Result](
                name=f"power_results_{namespace}", limit=1, warn_on_overflow=False
            )
            self._result_senders[namespace] = sender
            self._anchors.append(anchor)
        return sender

    async def _refuse(
        self, request: PowerRequest, refusal: Refusal, log: structlog.typing.FilteringBoundLogger
    ) -> None:
        if refusal.bounds is not None:
            bounds = refusal.bounds
            await self.publish(
                OutOfBounds(
                    request,
                    PowerBounds(
                        Power.from_watts(bounds.inclusion.lower),
                        Power.from_watts(bounds.exclusion.lower),
                        Power.from_watts(bounds.exclusion.upper),
                        Power.from_watts(bounds.inclusion.upper),
                    ),
                )
            )
        else:
            await self.publish(Error(request, refusal.reason))
        log.warning("request_refused", reason=refusal.reason)

    async def publish(self, result: Result) -> None:
        """Send `result` to its request's namespace (the manager's `Overruled` too)."""
        if self._on_result is not None:
            self._on_result(result)
        await self._result_sender(result.request.namespace).send(result)

    def battery_status(self, now: datetime | None = None) -> BatteryStatus:
        """Which batteries are usable now: working, uncertain (stale), else blocked."""
        now = self._clock.now() if now is None else now
        cache = self._microgrid.cache
        battery_ids = self._microgrid.pairs.battery_ids
        fresh = [b for b in battery_ids if cache.battery(b, now) is not None]
        status = self._commander.blocking.status(battery_ids, fresh, now)
        unusable = self._out_of_service | self._controls.excluded_batteries
        if not unusable:
            return status
        return BatteryStatus(status.working - unusable, status.uncertain - unusable)

    async def _publish_status(self, now: datetime) -> None:
        """Publish the battery status if it changed since the last one published."""
        status = self.battery_status(now)
        if status != self._status_published:
            self._status_published = status
            await self._status_sender.send(status)


def _named_later(requests: Sequence[PowerRequest]) -> list[frozenset[int]]:
    """For each request, the ids the requests after it hold a power on.

    A withdraw holds nothing: what it names is given back by it anyway.
    """
    later: list[frozenset[int]] = []
    named: frozenset[int] = frozenset()
    for request in reversed(requests):
        later.append(named)
        if not request.withdraws:
            named = named | request.components
    return later[::-1]
