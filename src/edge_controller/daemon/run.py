"""`edge-controller run`: the controller as a long-running, supervised service.

The shell around `app.Controller` that makes it a daemon:

- configuration from one file plus drop-ins, re-read on every edit and on SIGHUP
  (`config_watch`); a good edit is applied live where it can be (`Controller.apply`,
  log levels here), a bad one is logged with every problem and changes nothing;
- systemd: `READY=1` once the graph runs, `STATUS=` lines (batteries, dispatches,
  mode), `RELOADING=1`/`READY=1` around a reload, `WATCHDOG=1` from the event loop
  only while the graph runs, `STOPPING=1` on the way out (`systemd`);
- `/metrics` and `/healthz` (`metrics`), fed by the controller's hooks and, for
  sampled values, at scrape time;
- SIGTERM/SIGINT: stop taking dispatches, command 0 W to every battery, exit 0.
  Releasing (rather than leaving the last command to expire at the API after up to
  `command_lifetime`) is the safe choice for a site nobody watches: a stopped
  controller no longer balances, watches bounds or renews anything. The whole stop
  is bounded (`STOP_BUDGET_S`), so systemd never has to SIGKILL us mid-release;
- an actor that gives up (see `supervision`) stops everything the same way and the
  process exits 1, so systemd's `Restart=on-failure` starts it afresh.

Exit codes: 0 stopped by a signal; 1 runtime failure (start-up: an API that does not
answer, a busy metrics port; or an actor gave up), which systemd restarts; 2 a
configuration it cannot use (also a `metrics.listen` that can never be bound here:
not on this host, a low port without privilege), one line per problem on stderr,
which it does not.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import structlog
from frequenz.client.microgrid import ApiClientError

from edge_controller import __version__
from edge_controller.common import logging as logs
from edge_controller.common.systemd import Notifier, watchdog_pings
from edge_controller.common.waiting import cancel_and_wait_all
from edge_controller.config.files import load
from edge_controller.config.schema import ConfigError, ControllerConfig
from edge_controller.config.watch import ConfigWatcher
from edge_controller.controller.dispatch_broadcasting import DispatchServiceUnreachableError
from edge_controller.controller.graph import Controller, ControllerHooks, SiteMismatchError
from edge_controller.daemon.early_signals import EarlySighup
from edge_controller.daemon.metrics import (
    RESULT_KIND_OF,
    Health,
    Metrics,
    MetricsServer,
    UseCaseSample,
)
from edge_controller.framework.messages import Result
from edge_controller.microgrid.graph import ComponentGraphError
from edge_controller.microgrid.site_view import meter_power_w
from edge_controller.servers.common.serving import BindError

if TYPE_CHECKING:
    from edge_controller.daemon.console.server import Console

_LOG = structlog.get_logger(__name__)

STOP_BUDGET_S = 5.0
"""SIGTERM to exit: stopping the actors and releasing the batteries fit in this."""
HEARTBEAT_S = 1.0
STATUS_EVERY_S = 10.0


class Daemon:
    """One run of the controller as a service; `await Daemon(...).run()` → exit code."""

    def __init__(
        self,
        path: Path,
        config: ControllerConfig,
        *,
        drop_ins: Path | None = None,
        environ: Mapping[str, str] | None = None,
        notifier: Notifier | None = None,
        cli_log_level: str | None = None,
        watch_interval_s: float = 1.0,
        early_sighup: EarlySighup | None = None,
    ) -> None:
        """Prepare everything; nothing connects before `run`.

        `early_sighup` counts the SIGHUPs that came before this object existed (the
        command line installs it first thing); `run` acts on them.
        """
        self.config = config
        self._early_sighup = early_sighup
        self._cli_log_level = cli_log_level
        self.notifier = notifier or Notifier.from_environment()
        self.metrics = Metrics(refresh=self._sample)
        self.health = Health(self._data_fresh)
        self.controller = Controller(
            config,
            hooks=ControllerHooks(
                on_command=self.metrics.observe_command,
                on_result=self._count_result,
                on_restart=lambda actor, _wait_s: self.metrics.count_restart(actor),
                on_cache_saved=self._cache_saved,
            ),
        )
        self.watcher = ConfigWatcher(
            path,
            on_config=self._apply,
            on_rejected=self._rejected,
            drop_ins=drop_ins,
            environ=environ,
            interval_s=watch_interval_s,
        )
        self.metrics_server: MetricsServer | None = None
        self.console: Console | None = None
        self._config_files = (path, drop_ins)
        self._stop = asyncio.Event()
        self._stop_reason = ""

    # ------------------------------------------------------------- the run

    async def run(self) -> int:
        """Start, serve until a signal or a fatal failure, stop; return the exit code."""
        loop = asyncio.get_running_loop()
        # First, before anything that takes time: from here on the loop handles the
        # signals (until now `early_sighup`, if any, counted SIGHUPs).
        self._install_signals(loop)
        try:
            return await self._run()
        finally:
            self._remove_signals(loop)

    async def _run(self) -> int:
        self._apply_log_levels(self.config)
        _LOG.info("daemon_starting", version=__version__, config=self.config.source)
        if self._early_sighup is not None and self._early_sighup.received:
            # The configuration was read after some of them, maybe not after all:
            # read it again once the watcher runs, as for a SIGHUP from now on.
            _LOG.info(
                "reload_requested",
                signal="SIGHUP",
                before_start=True,
                count=self._early_sighup.received,
            )
            self.watcher.reload()
        self.notifier.status("connecting to the Microgrid and Dispatch APIs")
        if self.config.metrics.listen is not None:
            metrics_server = MetricsServer(self.config.metrics.listen, self.metrics, self.health)
            try:
                await metrics_server.start()
            except BindError as error:
                # Busy now, maybe free after systemd's restart: a runtime failure (1);
                # not on this host or not allowed: bad input (2). Printed, as a bad
                # config is: `edge-controller run: metrics.listen: cannot bind ...`.
                _print_lines([str(error)])
                self.notifier.status(f"start failed: {error}")
                return error.exit_code
            self.metrics_server = metrics_server
            _LOG.info("metrics_listening", address=metrics_server.address)
        try:
            try:
                await self.controller.start()
            except SiteMismatchError as error:
                _print_problems(error)
                return 2
            except (DispatchServiceUnreachableError, ComponentGraphError, ApiClientError) as error:
                _LOG.error("start_failed", error=str(error))
                self.notifier.status(f"start failed: {error}")
                return 1
            self.health.graph_running = True
            self.notifier.ready(self._status_line())
            self.console = await self._start_console()
            code = await self._serve()
        finally:
            if self.console is not None:
                await self.console.stop()
            if self.metrics_server is not None:
                await self.metrics_server.stop()
        return code

    async def _serve(self) -> int:
        tasks = [
            asyncio.create_task(self.watcher.run(), name="config_watch"),
            asyncio.create_task(self._heartbeat(), name="heartbeat"),
            asyncio.create_task(watchdog_pings(self.notifier, self._alive), name="watchdog"),
        ]
        stop: asyncio.Future[object] = asyncio.ensure_future(self._stop.wait())
        gave_up: asyncio.Future[object] = self.controller.failed  # type: ignore[assignment]
        try:
            await asyncio.wait([stop, gave_up], return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
            with contextlib.suppress(Exception):
                await cancel_and_wait_all(tasks)
        failed = self.controller.failed.done()
        reason = self.controller.failed.result() if failed else self._stop_reason
        self.health.graph_running = False
        self.notifier.stopping(f"stopping: {reason}")
        _LOG.warning("daemon_stopping", reason=reason)
        try:
            async with asyncio.timeout(STOP_BUDGET_S):
                await self.controller.stop()
        except TimeoutError:
            _LOG.error("stop_budget_exceeded", budget_s=STOP_BUDGET_S)
        _LOG.info("daemon_stopped", exit_code=1 if failed else 0)
        return 1 if failed else 0

    async def _start_console(self) -> Console | None:
        """The web console (`[http]`), or None: off, or it failed (logged, we run on)."""
        if self.config.http.listen is None:
            return None
        from edge_controller.daemon.console.server import start_console  # aiohttp: only when on

        path, drop_ins = self._config_files
        return await start_console(
            self.controller,
            self.config.http,
            config_path=path,
            drop_ins=drop_ins,
            reload=self.watcher.reload,
        )

    def request_stop(self, reason: str) -> None:
        """Stop as on SIGTERM (tests, embedding)."""
        self._stop_reason = reason
        self._stop.set()

    # ------------------------------------------------------------- signals

    def _install_signals(self, loop: asyncio.AbstractEventLoop) -> None:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, self.request_stop, signal.Signals(signum).name)
        loop.add_signal_handler(signal.SIGHUP, self._on_sighup)

    @staticmethod
    def _remove_signals(loop: asyncio.AbstractEventLoop) -> None:
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            with contextlib.suppress(Exception):
                loop.remove_signal_handler(signum)

    def _on_sighup(self) -> None:
        _LOG.info("reload_requested", signal="SIGHUP")
        self.watcher.reload()

    # ------------------------------------------------------------- live edits

    async def _apply(self, config: ControllerConfig) -> None:
        self.notifier.reloading("reloading configuration")
        try:
            changes = await self.controller.apply(config)
        except Exception as error:
            # Validation passed but the running graph refused it (e.g. timing the
            # distributor cannot take): keep what runs, say why.
            self.metrics.count_reload(applied=False)
            _LOG.error("config_rejected", error=str(error), kept=self.config.source)
            self.notifier.ready(self._status_line())
            return
        self.config = self.controller.config
        self._apply_log_levels(config)
        self.metrics.count_reload(applied=True)
        if changes.empty:
            _LOG.info("config_unchanged")
        self.notifier.ready(self._status_line())

    def _watch_task(self, task: asyncio.Task[None]) -> None:
        """Say so when a background task of the daemon ends by itself (a bug)."""
        if task.cancelled():
            return
        error = task.exception()
        _LOG.error("daemon_task_ended", task=task.get_name(), error=repr(error))

    def _rejected(self, error: ConfigError) -> None:
        self.metrics.count_reload(applied=False)
        _LOG.error("config_rejected", problems=error.lines, kept="the last good configuration")

    def _apply_log_levels(self, config: ControllerConfig) -> None:
        logs.apply_levels(self._cli_log_level or config.logging.level, config.logging.levels)

    # ------------------------------------------------------------- health, metrics

    async def _heartbeat(self) -> None:
        loop = asyncio.get_running_loop()
        next_status = loop.time()
        while True:
            self.health.beat()
            if loop.time() >= next_status:
                next_status = loop.time() + STATUS_EVERY_S
                self.notifier.status(self._status_line())
            await asyncio.sleep(HEARTBEAT_S)

    def _cache_saved(self, problem: str | None) -> None:
        """A write of the dispatch cache: counted, and shown in `/healthz` while failing."""
        self.metrics.observe_cache_write(problem)
        self.health.set_degraded(
            "dispatch_cache", None if problem is None else f"dispatch cache not saved: {problem}"
        )

    def _alive(self) -> bool:
        """Whether systemd's watchdog should be fed: the graph runs, no actor gave up."""
        return self.controller.running and not self.controller.failed.done()

    def _data_fresh(self) -> bool:
        if not self.controller.running or self.controller.power_distributing is None:
            return False
        status = self.controller.power_distributing.battery_status()
        return bool(status.working or status.uncertain - self._stale_batteries())

    def _stale_batteries(self) -> set[int]:
        cache = self.controller.connection.cache
        now = self.controller.clock_now()
        return {
            b for b in self.controller.connection.pairs.battery_ids if cache.battery(b, now) is None
        }

    def _count_result(self, result: Result) -> None:
        self.metrics.count_result(RESULT_KIND_OF[type(result)], result.request.namespace)

    def _status_line(self) -> str:
        controller = self.controller
        if not controller.running or controller.power_distributing is None:
            return "starting"
        status = controller.power_distributing.battery_status()
        total = len(controller.connection.pairs.battery_ids)
        running = sum(len(u.running_dispatches) for u in controller.use_cases)
        mode = self.config.controls.mode
        return (
            f"{total} batteries ({len(status.working)} working), "
            f"{running} dispatch{'es' if running != 1 else ''} running, mode {mode}"
        )

    def _sample(self, metrics: Metrics) -> None:
        """Copy telemetry into the gauges, at scrape time only."""
        controller = self.controller
        if not controller.running or controller.power_distributing is None:
            return
        now = controller.clock_now()
        cache = controller.connection.cache
        pairs = controller.connection.pairs
        status = controller.power_distributing.battery_status(now)
        for battery_id in pairs.battery_ids:
            reading = cache.battery(battery_id, now)
            inverter = cache.inverter(pairs.inverter_of(battery_id), now)
            share = len(pairs.batteries_of(pairs.inverter_of(battery_id)))
            bounds = reading.bounds if reading is not None else None
            metrics.set_battery(
                battery_id,
                soc_pct=reading.soc_pct if reading is not None else None,
                power_w=inverter.power_w / share if inverter is not None else None,
                lower_w=min(r.lower for r in bounds) if bounds else None,
                upper_w=max(r.upper for r in bounds) if bounds else None,
            )
            metrics.set_battery_status(
                battery_id,
                "working"
                if battery_id in status.working
                else "uncertain"
                if battery_id in status.uncertain
                else "blocked",
            )
        metrics.set_dispatches_running(sum(len(u.running_dispatches) for u in controller.use_cases))
        metrics.set_use_cases(
            UseCaseSample(u.name, u.kind, len(u.running_dispatches), dict(u.counts))
            for u in controller.use_cases
        )
        metrics.set_mode(self.config.controls.mode)
        metrics.set_events("power_distributing", controller.power_distributing.counts)
        if controller.power_managing is not None:
            metrics.set_events("power_managing", controller.power_managing.counts)
        metrics.set_grid_power(
            meter_power_w(
                cache, controller.connection.grid_meter_id, now, self.config.grid.stale_after
            )
        )


async def run_daemon(
    path: Path,
    *,
    drop_ins: Path | None = None,
    environ: Mapping[str, str] | None = None,
    cli_log_level: str | None = None,
    early_sighup: EarlySighup | None = None,
) -> int:
    """Load the configuration and run the daemon; return the exit code (2: bad config)."""
    try:
        config = load(path, environ=environ, drop_ins=drop_ins)
    except ConfigError as error:
        _print_problems(error)
        return 2
    return await Daemon(
        path,
        config,
        drop_ins=drop_ins,
        environ=environ,
        cli_log_level=cli_log_level,
        early_sighup=early_sighup,
    ).run()


def _print_problems(error: ConfigError) -> None:
    """Say once, on stderr, every problem of a configuration the daemon cannot start with.

    One line per problem, each naming its file and key. Printed, not logged: this is
    the command line refusing its input, as every other command does, and logging it
    as well showed each problem twice on a terminal (log and print share stderr).
    """
    _print_lines(error.lines)


def _print_lines(lines: Iterable[str]) -> None:
    """Print each line on stderr after `edge-controller run: `, as every command does."""
    for line in lines:
        print(f"edge-controller run: {line}", file=sys.stderr)
    sys.stderr.flush()
