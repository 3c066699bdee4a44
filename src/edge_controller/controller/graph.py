"""Builds the controller's actor graph from the configuration and runs it.

    Dispatch API ─▶ DispatchBroadcastingActor ─▶ use-case actors (from the registry)
                                                      │ PowerRequest
                                                      ▼
                                              PowerManagingActor
                                                      │
                                                      ▼
                  Microgrid API ◀── set power ── PowerDistributingActor ◀─ telemetry

The use cases are built only through `use_cases.registry` and `UseCase.build`
(`framework/use_case.py`): the graph names none of them.

`Controller` is the in-process form (tests start it next to the simulator and the
dispatch service); `edge-controller run --config FILE` wraps it with signal handling.
On stop it gives back everything it may have commanded before it disconnects: every
battery (0 W), EV charger (0 W) and PV inverter (its production limit lifted).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import sys
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import TracebackType

import grpc
import structlog
from frequenz.channels import BroadcastChannel, BroadcastSender, Sender
from frequenz.client.common.microgrid import MicrogridId
from frequenz.dispatch import Dispatch, Dispatcher

from edge_controller.common.clock import Clock, WallClock
from edge_controller.common.compat import stop_dispatcher
from edge_controller.common.waiting import cancel_and_wait
from edge_controller.config.changes import ConfigChanges, config_changes, in_force
from edge_controller.config.schema import ConfigError, ControllerConfig
from edge_controller.controller.component_recovery import ComponentRecoveryActor
from edge_controller.controller.dispatch_broadcasting import (
    DispatchBroadcastingActor,
    DispatchServiceUnreachableError,
    connect_dispatcher,
)
from edge_controller.controller.offline_schedule import OfflineScheduleActor
from edge_controller.controller.power_distributing import PowerDistributingActor
from edge_controller.controller.power_managing import PowerManagingActor
from edge_controller.dispatching import cache
from edge_controller.dispatching.cache import CachedSchedule
from edge_controller.dispatching.schedule import runs_at
from edge_controller.framework.messages import PowerRequest, Result
from edge_controller.framework.supervision import RestartPolicy, SupervisedActor
from edge_controller.framework.use_case import (
    DispatchApiAccess,
    SiteView,
    UseCaseActors,
    UseCaseConfig,
    UseCaseContext,
)
from edge_controller.microgrid.connection import MicrogridConnection
from edge_controller.microgrid.graph import BatteryPairs
from edge_controller.power.distribution import DistributionAlgorithm, Proportional, SocBalancing
from edge_controller.power.status import BlockingTracker
from edge_controller.use_cases import registry

_LOG = structlog.get_logger(__name__)

ACTOR_STOP_TIMEOUT_S = 3.0
"""An actor (or client) that does not stop within this is left behind, logged: the
batteries are released regardless."""
RELEASE_TIMEOUT_S = 2.0
"""The longest an inverter may take to acknowledge the 0 W release on stop."""


def release_summary(
    pairs: BatteryPairs, results: Mapping[int, object], timeout_s: float
) -> dict[str, object]:
    """The fields of the `batteries_released` line: what the 0 W release commanded.

    `results` is each inverter's answer to its 0 W command (sent with `timeout_s`):
    an exception when it failed (`failed` maps the inverter to the error), anything
    else when accepted (`succeeded`).
    """
    failed = {
        str(inverter): repr(result)
        for inverter, result in sorted(results.items())
        if isinstance(result, BaseException)
    }
    return {
        "inverters": sorted(results),
        "batteries": sorted(b for i in results for b in pairs.batteries_of(i)),
        "power_w": 0.0,
        "succeeded": sorted(i for i in results if str(i) not in failed),
        "failed": failed,
        "timeout_s": timeout_s,
    }


def direct_release_summary(
    commands_w: Mapping[int, float], results: Mapping[int, object], timeout_s: float
) -> dict[str, object]:
    """The fields of the `direct_released` line: EV chargers and PV inverters given back.

    `commands_w` is what each was told (0 W for a charger, its full production for a
    PV inverter), `results` each one's answer as in `release_summary`.
    """
    failed = {
        str(component): repr(result)
        for component, result in sorted(results.items())
        if isinstance(result, BaseException)
    }
    return {
        "components": sorted(results),
        "commands_w": {str(c): commands_w[c] for c in sorted(results)},
        "succeeded": sorted(c for c in results if str(c) not in failed),
        "failed": failed,
        "timeout_s": timeout_s,
    }


def _algorithm(name: str) -> DistributionAlgorithm:
    return SocBalancing() if name == "soc_balancing" else Proportional()


@dataclass(frozen=True, slots=True)
class RunningUseCase:
    """One use case the graph built: its configuration, its actors, its status.

    It reads as its status (`UseCaseStatus`): what the daemon, the console, `/metrics`
    and the demo show of it.
    """

    config: UseCaseConfig
    built: UseCaseActors

    @property
    def name(self) -> str:
        """The configured name (the namespace of its requests)."""
        return self.config.name

    @property
    def kind(self) -> str:
        """The registry kind."""
        return self.config.kind

    @property
    def running_dispatches(self) -> Mapping[int, float]:
        """Dispatch ids it runs now, each with the figure it asks."""
        return self.built.status.running_dispatches

    @property
    def driving(self) -> Mapping[frozenset[int], float]:
        """Component sets it holds a target on now, with the watts asked."""
        return self.built.status.driving

    @property
    def counts(self) -> Mapping[str, int]:
        """Its events since it was built."""
        return self.built.status.counts


class SiteMismatchError(ConfigError):
    """A valid configuration that does not fit the site (unknown battery ids)."""


@dataclass(frozen=True, slots=True)
class ControllerHooks:
    """Where the controller reports what metrics count (all optional, all cheap)."""

    on_command: Callable[[float, bool], None] | None = None
    """An inverter command took this many seconds; ok or not."""
    on_result: Callable[[Result], None] | None = None
    """The distributor answered a request."""
    on_restart: Callable[[str, float], None] | None = None
    """This actor crashed and restarts after this many seconds."""
    on_cache_saved: Callable[[str | None], None] | None = None
    """The dispatch cache was written (None) or not (why: the file and the error)."""


class Controller:
    """The whole controller graph; `async with Controller(config):` runs it."""

    def __init__(
        self,
        config: ControllerConfig,
        *,
        clock: Clock | None = None,
        hooks: ControllerHooks | None = None,
    ) -> None:
        """Prepare (not yet connect) the graph described by `config`."""
        self.config = config
        self._clock = clock
        self.connection = MicrogridConnection(
            config.microgrid.url,
            clock=clock,
            stale_after=config.microgrid.stale_after,
        )
        self.hooks = hooks or ControllerHooks()
        self._dispatcher: Dispatcher | None = None
        self.actors: list[SupervisedActor] = []
        self.power_distributing: PowerDistributingActor | None = None
        self._use_cases: dict[str, RunningUseCase] = {}
        """The `[[use_cases]]` entries, by name, in configuration order."""
        self._sections: list[RunningUseCase] = []
        """The use cases configured by a table of their own; started once."""
        self.power_managing: PowerManagingActor | None = None
        self._closers: list[Callable[[], Awaitable[None]]] = []
        self._feeder_lock = asyncio.Lock()
        """Held while the dispatch feeder (broadcaster or cached schedule) is replaced."""
        self.recovery: ComponentRecoveryActor | None = None
        self._dispatch_senders: dict[str, Sender[Dispatch]] = {}
        self._requests: BroadcastSender[PowerRequest] | None = None
        self._offline_schedule: CachedSchedule | None = None
        self.running = False
        """True from a completed `start` until `stop`."""
        self._failed: asyncio.Future[str] | None = None
        self._offline: OfflineScheduleActor | None = None
        self._broadcaster: DispatchBroadcastingActor | None = None
        self._reconnector: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Connect to both APIs, build the actors and start them.

        A battery the pairing leaves out (no battery inverter, several inverters) is
        logged (`battery_left_out`) and never commanded; the rest of the site runs.

        Raises:
            DispatchServiceUnreachableError: the dispatch service did not answer in time.
            ComponentGraphError: no battery of the site is usable.
        """
        settings = self.config.power_distribution
        await self.connection.start()
        try:
            self.check_against_site(self.config)
        except SiteMismatchError:
            await self.connection.stop()
            raise
        await self._wait_for_telemetry()
        offline: CachedSchedule | None = None
        try:
            self._dispatcher = await self._connect_dispatcher()
        except DispatchServiceUnreachableError as error:
            offline = self._cached_schedule()
            if offline is None:
                await self.connection.stop()
                raise
            _LOG.warning(
                "running_from_dispatch_cache",
                reason=str(error),
                cache=str(self.config.dispatch.cache_file),
                saved_at=offline.saved_at.isoformat(),
                dispatches=len(offline.dispatches),
            )
        except BaseException:
            await self.connection.stop()
            raise
        requests, requests_in = BroadcastChannel[PowerRequest](name="power_requests")
        self._requests = requests
        to_distribute, to_distribute_in = BroadcastChannel[PowerRequest](name="power_distribution")
        self.power_distributing = PowerDistributingActor(
            to_distribute_in,
            self.connection,
            clock=self._clock,
            algorithm=_algorithm(settings.algorithm),
            resolutions_w=settings.resolutions_w,
            command_lifetime=settings.command_lifetime,
            keepalive_interval=settings.keepalive_interval,
            blocking=BlockingTracker(settings.blocking_initial, settings.blocking_max),
            controls=self.config.controls,
            meter_limits=self.config.grid.meters,
            inverters_below=self.connection.inverters_below,
            meter_stale_after=self.config.grid.stale_after,
            on_command=self.hooks.on_command,
            on_result=self.hooks.on_result,
        )
        self.power_managing = PowerManagingActor(
            requests_in,
            to_distribute,
            self.site_view(),
            grid=self.config.grid,
            clock=self._clock,
            reports=self.power_distributing.publish,
        )
        self._warn_unknown_resolutions(settings.resolutions_w)
        self.actors = [self.power_distributing, self.power_managing]
        for use_case in self.config.use_cases:
            self.actors.extend(self._add_use_case(use_case).built.actors)
        for section in self.config.sections:
            running_section = self._build(section)
            self._sections.append(running_section)
            self.actors.extend(running_section.built.actors)
        if self.config.recovery.enabled:
            self.recovery = ComponentRecoveryActor(
                self.connection,
                self.power_distributing.set_out_of_service,
                config=self.config.recovery,
                clock=self._clock,
            )
            self.actors.append(self.recovery)
        self._offline_schedule = offline
        self._start_dispatch_source()
        for running in self.actors:
            self._supervise(running)
            running.start()
        self.running = True
        _LOG.info(
            "controller_started",
            microgrid=self.config.microgrid.url,
            dispatch=self.config.dispatch.url,
            batteries=list(self.connection.pairs.battery_ids),
            batteries_left_out=sorted(self.connection.pairs.left_out_batteries) or None,
            dispatch_types=sorted(self._routes()),
            mode=self.config.controls.mode,
        )

    def clock_now(self) -> datetime:
        """Now, on the controller's clock (the wall clock unless one was injected)."""
        return (self._clock or WallClock()).now()

    @property
    def failed(self) -> asyncio.Future[str]:
        """Resolves (with the reason) when an actor gave up: the process should exit."""
        if self._failed is None:
            self._failed = asyncio.get_running_loop().create_future()
        return self._failed

    @property
    def use_cases(self) -> list[RunningUseCase]:
        """The use cases running now, each read as its status.

        `[[use_cases]]` entries in configuration order, then the use cases configured
        by a table of their own.
        """
        return [*self._use_cases.values(), *self._sections]

    def site_view(self) -> SiteView:
        """What a use case may see of the site (after `start`)."""
        connection = self.connection
        return SiteView(
            connection.pairs,
            connection.cache,
            connection.grid_meter_id,
            ev_chargers=connection.direct.ev_charger_ids,
            pv_inverters=connection.direct.pv_inverter_ids,
        )

    def _warn_unknown_resolutions(self, resolutions_w: Mapping[int, float]) -> None:
        """Warn of resolutions for ids that are no battery inverter, EV charger or PV inverter.

        Each of those is commanded in whole steps of its resolution; any other id is a
        typo that leaves the component it meant at the 1 W default.
        """
        pairs, direct = self.connection.pairs, self.connection.direct
        known = {*pairs.inverter_ids, *direct.ev_charger_ids, *direct.pv_inverter_ids}
        unknown = sorted(set(resolutions_w) - known)
        if unknown:
            _LOG.warning(
                "resolution_for_unknown_inverters",
                inverters=unknown,
                battery_inverters=list(pairs.inverter_ids),
                ev_chargers=list(direct.ev_charger_ids) or None,
                pv_inverters=list(direct.pv_inverter_ids) or None,
            )

    def _build(self, use_case: UseCaseConfig) -> RunningUseCase:
        """Build one use case through the registry, on a context of its own.

        Its dispatches arrive on a channel of its own (routed by `_routes`); its
        requests go to the PowerManagingActor; its results come back by its name.
        """
        assert self.power_distributing is not None
        assert self._requests is not None
        name = use_case.name
        dispatches, dispatches_in = BroadcastChannel[Dispatch](name=f"{name}_dispatches")
        dispatch = self.config.dispatch
        context = UseCaseContext(
            name=name,
            dispatches=dispatches_in,
            requests=self._requests.clone(),
            results=self.power_distributing.new_result_receiver(name),
            site=self.site_view(),
            grid=self.config.grid,
            clock=self._clock or WallClock(),
            request_timeout=self.config.power_distribution.request_timeout,
            priority=use_case.priority,
            dispatch_api=DispatchApiAccess(dispatch.url, dispatch.microgrid_id, dispatch.auth_key),
        )
        built = registry.by_kind()[use_case.kind].build(context, use_case)
        self._dispatch_senders[name] = dispatches
        return RunningUseCase(use_case, built)

    def _add_use_case(self, use_case: UseCaseConfig) -> RunningUseCase:
        running = self._build(use_case)
        self._use_cases[use_case.name] = running
        return running

    def _routes(self) -> dict[str, list[Sender[Dispatch]]]:
        routes: dict[str, list[Sender[Dispatch]]] = {}
        for name, running in self._use_cases.items():
            for dispatch_type in running.config.dispatch_types:
                routes.setdefault(dispatch_type, []).append(self._dispatch_senders[name])
        return routes

    def _start_dispatch_source(self) -> None:
        """Build the actor that feeds the use cases: the live service or the cache."""
        if self._dispatcher is not None:
            self._broadcaster = self._broadcasting(self._dispatcher)
            self.actors.append(self._broadcaster)
        else:
            assert self._offline_schedule is not None
            self._offline = OfflineScheduleActor(
                self._offline_schedule, self._routes(), clock=self._clock
            )
            self.actors.append(self._offline)
            if self._reconnector is None:
                self._reconnector = asyncio.create_task(
                    self._reconnect(), name="dispatch_reconnect"
                )

    def _supervise(self, actor: SupervisedActor) -> None:
        policy = self.config.supervision
        actor.supervise(
            RestartPolicy(
                initial_s=policy.restart_initial.total_seconds(),
                max_s=policy.restart_max.total_seconds(),
                limit=policy.restart_limit,
                healthy_after_s=policy.healthy_after.total_seconds(),
            ),
            on_restart=self.hooks.on_restart,
            on_give_up=self._gave_up,
        )

    def _gave_up(self, actor: str, error: BaseException) -> None:
        if not self.failed.done():
            self.failed.set_result(f"actor {actor} kept crashing: {error!r}")

    # ------------------------------------------------------------- live edits

    async def apply(self, new: ControllerConfig) -> ConfigChanges:
        """Apply an edited configuration to the running graph, as far as it can be.

        Live: power distribution settings, operator controls, grid limits, recovery,
        restart policy, and the use-case actors (added, removed — their proposals
        withdrawn —, or replaced when their entry changed; all of them rebuilt when a
        setting they copy changed). The rest is logged as needing a restart and keeps
        its old value. Log levels are the daemon's business (`daemon/run.py`).

        Raises:
            SiteMismatchError: the edit names batteries this site does not have;
                nothing was changed.
        """
        old = self.config
        changes = config_changes(old, new)
        if changes.empty:
            return changes
        self.check_against_site(new)
        if changes.restart_needed:
            _LOG.warning("config_change_needs_restart", keys=list(changes.restart_needed))
        assert self.power_distributing is not None
        settings = new.power_distribution
        await self.power_distributing.reconfigure(
            algorithm=_algorithm(settings.algorithm),
            resolutions_w=settings.resolutions_w,
            command_lifetime=settings.command_lifetime,
            keepalive_interval=settings.keepalive_interval,
            blocking_initial=settings.blocking_initial,
            blocking_max=settings.blocking_max,
            controls=new.controls,
            meter_limits=new.grid.meters,
            meter_stale_after=new.grid.stale_after,
        )
        if self.power_managing is not None:
            await self.power_managing.reconfigure(new.grid)
        if self.recovery is not None:
            self.recovery.reconfigure(new.recovery)
        elif new.recovery.enabled != old.recovery.enabled:
            _LOG.warning("config_change_needs_restart", keys=["recovery.enabled"])
        self.config = in_force(old, new)
        for actor in self.actors:
            self._supervise(actor)
        rebuilt: tuple[str, ...] = ()
        if (
            old.power_distribution.request_timeout != settings.request_timeout
            or old.grid != new.grid
        ):
            # Use cases copy these when built (`UseCaseContext`): rebuild the ones that stay.
            kept = {u.name for u in old.use_cases} & {u.name for u in new.use_cases}
            rebuilt = tuple(sorted(kept - set(changes.use_cases_changed)))
        if (
            changes.use_cases_added
            or changes.use_cases_removed
            or changes.use_cases_changed
            or rebuilt
        ):
            changes = dataclasses.replace(
                changes, use_cases_changed=(*changes.use_cases_changed, *rebuilt)
            )
            await self._replace_use_cases(changes, new)
        _LOG.info(
            "config_applied",
            live=list(changes.live) or None,
            use_cases_added=list(changes.use_cases_added) or None,
            use_cases_removed=list(changes.use_cases_removed) or None,
            use_cases_changed=list(changes.use_cases_changed) or None,
        )
        return changes

    def check_against_site(self, config: ControllerConfig) -> None:
        """Refuse a configuration that names batteries or meters the site does not have.

        Raises:
            SiteMismatchError: naming the key and the batteries.
        """
        site = set(self.connection.pairs.battery_ids)
        left_out = self.connection.pairs.left_out_batteries
        problems = []
        for index, use_case in enumerate(config.use_cases):
            unknown = sorted(use_case.batteries - site)
            if unknown:
                reasons = "".join(f"; left out: {left_out[b]}" for b in unknown if b in left_out)
                problems.append(
                    f"use_cases[{index}].batteries: {unknown} are not batteries of this "
                    f"site; it has {sorted(site)}{reasons}"
                )
        below = self.connection.inverters_below
        for index, meter in enumerate(config.grid.meters):
            if meter.meter_id not in below:
                problems.append(
                    f"grid.meters[{index}].id: {meter.meter_id} is not a meter with battery "
                    f"inverters below it; meters with batteries below: {sorted(below)}"
                )
        unknown = sorted(config.controls.excluded_batteries - site)
        if unknown:
            _LOG.warning("excluded_batteries_unknown", batteries=unknown, site=sorted(site))
        if problems:
            raise SiteMismatchError(config.source, problems)

    async def _replace_use_cases(self, changes: ConfigChanges, new: ControllerConfig) -> None:
        """Stop the feeding actor, swap use cases, start a feeder with the new routes.

        The new feeder subscribes afresh, and the Dispatcher hands every subscriber the
        dispatches running now, so an added use case picks up a running dispatch. The
        feeder is started again whatever happens in between.
        """
        async with self._feeder_lock:
            feeder: SupervisedActor | None = self._broadcaster or self._offline
            if feeder is not None:
                await feeder.stop()
                self.actors.remove(feeder)
                if self._broadcaster is not None:
                    self._dispatcher = self._broadcaster.dispatcher
                self._broadcaster = self._offline = None
            try:
                for name in (*changes.use_cases_removed, *changes.use_cases_changed):
                    stopped = self._use_cases.pop(name)
                    for actor in stopped.built.actors:
                        await actor.stop()
                        self.actors.remove(actor)
                    for close in stopped.built.closers:
                        with contextlib.suppress(Exception):
                            async with asyncio.timeout(ACTOR_STOP_TIMEOUT_S):
                                await close()
                    del self._dispatch_senders[name]
                    if self.power_managing is not None:
                        await self.power_managing.withdraw(name)
                    _LOG.info("use_case_stopped", use_case=name)
                wanted = {u.name: u for u in new.use_cases}
                for name in (*changes.use_cases_changed, *changes.use_cases_added):
                    added = self._add_use_case(wanted[name])
                    for actor in added.built.actors:
                        self.actors.append(actor)
                        self._supervise(actor)
                        actor.start()
                    _LOG.info(
                        "use_case_started",
                        use_case=name,
                        dispatch_types=wanted[name].dispatch_types,
                    )
                # Keep configuration order for `use_cases`.
                self._use_cases = {
                    n: self._use_cases[n]
                    for n in (u.name for u in new.use_cases)
                    if n in self._use_cases
                }
            finally:
                self._start_dispatch_source()
                feeder = self._broadcaster or self._offline
                if feeder is not None:
                    self._supervise(feeder)
                    feeder.start()

    async def _connect_dispatcher(self) -> Dispatcher:
        return await connect_dispatcher(
            self.config.dispatch.url,
            self.config.dispatch.microgrid_id,
            self.config.dispatch.auth_key,
            timeout_s=self.config.dispatch.startup_timeout.total_seconds(),
        )

    def _broadcasting(self, dispatcher: Dispatcher) -> DispatchBroadcastingActor:
        return DispatchBroadcastingActor(
            dispatcher,
            self._routes(),
            microgrid_id=self.config.dispatch.microgrid_id,
            reconnect=self._connect_dispatcher,
            cache_path=self.config.dispatch.cache_file,
            on_cache_saved=self.hooks.on_cache_saved,
            first_check=self.config.dispatch.reconcile_first,
            reconcile_interval=self.config.dispatch.reconcile_interval,
        )

    def _cached_schedule(self) -> CachedSchedule | None:
        path = self.config.dispatch.cache_file
        if path is None:
            return None
        try:
            return cache.load(path)
        except cache.DispatchCacheError as error:
            # A warning, not an error: the controller goes on as if there were no
            # cache (and the message says which file, and what is wrong with it).
            _LOG.warning("dispatch_cache_unusable", path=str(path), problem=str(error))
            return None

    async def _reconnect(self) -> None:
        """Retry the dispatch service; when it answers, hand over from the cache."""
        interval = self.config.dispatch.reconnect_interval.total_seconds()
        while True:
            await asyncio.sleep(interval)
            _LOG.info("dispatch_reconnect_attempt", url=self.config.dispatch.url)
            try:
                dispatcher = await self._connect_dispatcher()
            except DispatchServiceUnreachableError as error:
                _LOG.info("dispatch_service_still_unreachable", reason=str(error))
                continue
            except Exception:
                _LOG.error("dispatch_reconnect_failed", error=repr(sys.exc_info()[1]))
                continue
            try:
                await self._take_over_live(dispatcher)
            except Exception as error:
                _LOG.error("dispatch_take_over_failed", error=repr(error))
                continue
            return

    async def _take_over_live(self, dispatcher: Dispatcher) -> None:
        """Leave the cached schedule for the live service."""
        async with self._feeder_lock:
            await self._take_over_live_locked(dispatcher)

    async def _take_over_live_locked(self, dispatcher: Dispatcher) -> None:
        self._dispatcher = dispatcher
        if self._offline is not None:
            await self._offline.hand_over(await self._running_live(dispatcher))
            self.actors.remove(self._offline)
            self._offline = None
        self._broadcaster = self._broadcasting(dispatcher)
        self.actors.append(self._broadcaster)
        self._supervise(self._broadcaster)
        self._broadcaster.start()
        _LOG.warning("dispatch_service_back", url=self.config.dispatch.url)

    async def _running_live(self, dispatcher: Dispatcher) -> frozenset[int]:
        """Ids of the dispatches the service says are running now."""
        now = datetime.now(UTC)
        running: set[int] = set()
        try:
            async for page in dispatcher.client.list(
                microgrid_id=MicrogridId(self.config.dispatch.microgrid_id),
                end_from=now - timedelta(seconds=5),
            ):
                running.update(int(d.id) for d in page if runs_at(d, now))
        except (grpc.aio.AioRpcError, TimeoutError) as error:
            _LOG.warning("dispatch_list_failed", error=str(error))
        return frozenset(running)

    async def _wait_for_telemetry(self) -> None:
        """Give every battery and inverter a moment to report before acting.

        Bounded by the staleness limit: a component that stays silent is logged and the
        controller goes on (the distributor treats it as missing until it reports).
        """
        pairs = self.connection.pairs
        cache = self.connection.cache
        waiting = set(pairs.battery_ids) | set(pairs.inverter_ids)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.microgrid.stale_after.total_seconds()
        while waiting and loop.time() < deadline:
            waiting = {
                cid
                for cid in waiting
                if cache.last_battery(cid) is None and cache.last_inverter(cid) is None
            }
            if waiting:
                await asyncio.sleep(0.05)
        if waiting:
            _LOG.warning("no_telemetry_yet", components=sorted(waiting))

    async def stop(self) -> None:
        """Stop the actors, give every component back, disconnect — come what may.

        Batteries and EV chargers get 0 W, PV inverters their full production (their
        limit lifted). In `observe` mode nothing was commanded, so nothing is released
        either. A stop
        of the caller that arrives meanwhile is raised only once every actor is stopped
        (each step is bounded in time): a distributor left running after the release
        could send its next keep-alive before the client closes.
        """
        self.running = False
        interrupted = False
        try:
            if self._reconnector is not None:
                try:
                    await cancel_and_wait(self._reconnector)
                except asyncio.CancelledError:
                    interrupted = True
                except Exception as error:
                    _LOG.warning("reconnector_failed", error=repr(error))
                self._reconnector = None
            for running in reversed(self.actors):
                try:
                    async with asyncio.timeout(ACTOR_STOP_TIMEOUT_S):
                        await running.stop()
                except TimeoutError:
                    _LOG.error(
                        "actor_stop_timeout", actor=running.name, after_s=ACTOR_STOP_TIMEOUT_S
                    )
                except asyncio.CancelledError:
                    interrupted = True
                except Exception as error:
                    _LOG.error("actor_stop_failed", actor=running.name, error=repr(error))
            self.actors = []
        finally:
            await self._release_all()
            if self._broadcaster is not None:
                self._dispatcher = self._broadcaster.dispatcher
            if self._dispatcher is not None:
                with contextlib.suppress(Exception):
                    await stop_dispatcher(self._dispatcher)
                self._dispatcher = None
            closers = [*self._closers, *(c for u in self.use_cases for c in u.built.closers)]
            for close in closers:
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(ACTOR_STOP_TIMEOUT_S):
                        await close()
            self._closers = []
            await self.connection.stop()
            _LOG.info("controller_stopped")
        if interrupted:
            raise asyncio.CancelledError

    async def _release_all(self) -> None:
        """Give every component back at once; log it (`batteries_released`, `direct_released`).

        Every battery inverter 0 W; every EV charger 0 W and every PV inverter its full
        production (`PowerDistributingActor.direct_release_commands`): what the
        distributor's own releases send. A charger left charging or a PV limit left in
        force would run on until the API's command lifetime ends.
        """
        if self.config.controls.mode == "observe":
            _LOG.info("batteries_not_released", reason="observe mode: nothing was commanded")
            return
        try:
            pairs = self.connection.pairs
        except RuntimeError:
            return
        distributing = self.power_distributing
        direct = distributing.direct_release_commands() if distributing is not None else {}
        inverters = pairs.inverter_ids
        # Bounded so the whole stop fits systemd's and the daemon's stop budget.
        timeout_s = min(
            RELEASE_TIMEOUT_S, self.config.power_distribution.request_timeout.total_seconds()
        )
        commands = {**dict.fromkeys(inverters, 0.0), **direct}
        results = dict(
            zip(
                commands,
                await asyncio.gather(
                    *(
                        self.connection.set_power(i, power_w, timeout_s=timeout_s)
                        for i, power_w in commands.items()
                    ),
                    return_exceptions=True,
                ),
                strict=True,
            )
        )
        released = release_summary(pairs, {i: results[i] for i in inverters}, timeout_s)
        (_LOG.warning if released["failed"] else _LOG.info)("batteries_released", **released)
        if direct:
            given_back = direct_release_summary(direct, {i: results[i] for i in direct}, timeout_s)
            (_LOG.warning if given_back["failed"] else _LOG.info)("direct_released", **given_back)

    async def __aenter__(self) -> Controller:
        """Start the controller."""
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Stop the controller."""
        with contextlib.suppress(Exception):
            await self.stop()
