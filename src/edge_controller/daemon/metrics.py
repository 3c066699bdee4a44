"""The daemon's Prometheus metrics and its `/healthz` endpoint.

```
  Prometheus ─ GET /metrics ─┐                       ┌▶ Metrics.render(): refresh hook, text
                             ├▶ MetricsServer thread ┤    (both run on the event loop)
  probe ────── GET /healthz ─┘                       └▶ Health.check(): 200 ok / 503 reasons
```

Three parts, each usable alone:

- `Metrics`: the instruments, in a `CollectorRegistry` of their own (never
  prometheus-client's global one, so tests and several controllers in one process do
  not clash), behind methods that take plain values (watts as floats, ids as ints), so
  callers import nothing from prometheus-client.
- `Health`: pure. Is the actor graph running, did the event loop beat recently, is
  the telemetry fresh? Time comes from an injected monotonic clock.
- `MetricsServer`: a small HTTP server: `GET /metrics`, `GET /healthz`, 404 for
  anything else. prometheus-client's own `start_http_server` answers every path with
  metrics, so a health probe could not tell a healthy daemon from a stuck one.

Why a thread and not the event loop: a server in the loop cannot answer while the loop
is stuck, which is exactly when health matters. The thread answers anyway, and it runs
whatever reads the controller's state (the refresh hook, `data_fresh`) *on* the loop
through `call_soon_threadsafe`, so those callbacks never race the actors that change
that state. If the loop does not run them within `loop_timeout_s`, `/healthz` answers
503 "event loop did not answer" and `/metrics` serves the values it already has.

Bounded: one thread waits for connections and for their first bytes; a small pool
(`MAX_WORKERS`) answers the requests that came. Idle connections cost no thread, at
most `MAX_CONNECTIONS` are open at once (more are closed as they come), and one that
has not sent its request within `IDLE_TIMEOUT_S` is closed. (The stdlib's threading
server started a thread per connection and never timed one out: 300 idle connections
held 300 threads.)

Sign convention: passive, as everywhere in the project: positive power charges a
battery or is consumed (grid: imported), negative power discharges or is produced
(grid: exported).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import math
import selectors
import socket
import socketserver
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from types import TracebackType
from typing import Any, Final, TypeGuard, TypeVar
from urllib.parse import urlsplit

import structlog
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    generate_latest,
)
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from typing_extensions import override

from edge_controller import __version__
from edge_controller.common.log_limit import LogLimiter
from edge_controller.framework.messages import (
    Error,
    Ignored,
    InForce,
    OutOfBounds,
    Overruled,
    PartialFailure,
    Result,
    Success,
)
from edge_controller.servers.common.serving import BindError, parse_listen

_T = TypeVar("_T")

RESULT_KIND_OF: Final[Mapping[type[Result], str]] = {
    Success: "success",
    PartialFailure: "partial_failure",
    OutOfBounds: "out_of_bounds",
    Error: "error",
    Ignored: "ignored",
    Overruled: "overruled",
    InForce: "in_force",
}
"""The `kind` label of `edge_controller_power_results_total` for each result type (the
last two are the power manager's word on an overruled request, not the distributor's).
Every type of `Result` has one (a test holds them together): a result counted without
one would stop the actor that published it."""

RESULT_KINDS: Final = tuple(RESULT_KIND_OF.values())
"""Values of the `kind` label of `edge_controller_power_results_total`."""

BATTERY_STATUSES: Final = ("working", "uncertain", "blocked")
"""Values of the `status` label of `edge_controller_battery_status`."""

MODES: Final = ("control", "observe")
"""Values of the `mode` label of `edge_controller_mode` (the config's `mode`)."""

COMMAND_LATENCY_BUCKETS_S: Final = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
)  # fmt: skip
"""Upper bounds of the command latency buckets: a loopback gRPC call takes about a
millisecond, a command times out after the request's timeout (5 s by default)."""


_POLL_INTERVAL_S: Final = 0.1
"""How often the idle server thread checks whether to stop: `stop()` waits up to this
long (the stdlib's 0.5 s default would add half a second to every shutdown)."""

MAX_WORKERS: Final = 4
"""Requests answered at once: Prometheus and a probe or two is the normal load."""

MAX_CONNECTIONS: Final = 64
"""Connections open at once (waiting for their request, queued or being answered);
one more is closed as soon as it is accepted."""

IDLE_TIMEOUT_S: Final = 5.0
"""A connection must send its request within this (and each later part of it within
this again: the socket's timeout while it is read and answered), else it is closed."""


def _log() -> structlog.stdlib.BoundLogger:
    # Fetched at call time (only on rare events), like `systemd._log`: a module-level
    # proxy would pin the logging configuration of its first use.
    logger: structlog.stdlib.BoundLogger = structlog.get_logger(__name__)
    return logger


def _checked(value: str, allowed: tuple[str, ...], what: str) -> str:
    """Return `value` if it is one of `allowed`: a typo must not create a new series."""
    if value not in allowed:
        raise ValueError(f"unknown {what} {value!r}, expected one of {', '.join(allowed)}")
    return value


@dataclass(frozen=True, slots=True)
class UseCaseSample:
    """One running use case's figures, as its status (`UseCaseStatus`) tells them."""

    name: str
    kind: str
    dispatches_running: int
    counts: Mapping[str, int]


class _SampledValues:
    """Gauges copied from telemetry, where a missing reading exports no sample.

    A custom collector rather than prometheus-client gauges because an unlabelled
    gauge (grid power) cannot drop its sample. Thread-safe: values are set on the event
    loop and may be read from the server's thread.
    """

    BATTERY_FAMILIES: Final = (
        ("edge_controller_battery_soc_percent", "State of charge of each battery, in %."),
        (
            "edge_controller_battery_power_watts",
            "Active power of each battery, measured at its inverter, in W (+ charges).",
        ),
        (
            "edge_controller_battery_power_lower_bound_watts",
            "Lowest power each battery may be set to (battery ∩ inverter bounds), in W.",
        ),
        (
            "edge_controller_battery_power_upper_bound_watts",
            "Highest power each battery may be set to (battery ∩ inverter bounds), in W.",
        ),
    )
    GRID_FAMILY: Final = (
        "edge_controller_grid_power_watts",
        "Active power at the grid connection point, in W (+ imports, - exports).",
    )

    EVENTS_FAMILY: Final = (
        "edge_controller_site_events",
        "Counted events of the site stages: grid-limit clamps by reason, grid data "
        "missing, power-limited and observe-only plans, withheld proposals, releases.",
    )

    USE_CASE_RUNNING_FAMILY: Final = (
        "edge_controller_use_case_dispatches_running",
        "Dispatches each use case runs now.",
    )
    USE_CASE_EVENTS_FAMILY: Final = (
        "edge_controller_use_case_events",
        "Counted events of each use case (started, stopped, rejected, requests, ...); "
        "they start again from 0 when a live edit rebuilds it.",
    )

    def __init__(self) -> None:
        """Start with no samples."""
        self._lock = threading.Lock()
        self._battery: dict[int, tuple[float | None, ...]] = {}
        self._grid_w: float | None = None
        self._events: dict[tuple[str, str], int] = {}
        self._use_cases: tuple[UseCaseSample, ...] = ()

    def set_events(self, source: str, counts: Mapping[str, int]) -> None:
        """Store one stage's event counts (they only grow: exported as counters)."""
        with self._lock:
            for event, count in counts.items():
                self._events[(source, event)] = count

    def set_use_cases(self, samples: Iterable[UseCaseSample]) -> None:
        """Store every running use case's figures; a use case not among them is gone."""
        with self._lock:
            self._use_cases = tuple(samples)

    def set_battery(self, battery_id: int, values: tuple[float | None, ...]) -> None:
        """Store one battery's values, in the order of `BATTERY_FAMILIES`."""
        with self._lock:
            self._battery[battery_id] = values

    def remove_battery(self, battery_id: int) -> None:
        """Drop every sample of a battery."""
        with self._lock:
            self._battery.pop(battery_id, None)

    def set_grid(self, watts: float | None) -> None:
        """Store the grid power."""
        with self._lock:
            self._grid_w = watts

    def describe(self) -> Iterable[Metric]:
        """The families without samples: lets the registry refuse clashing names."""
        for name, documentation in (*self.BATTERY_FAMILIES, self.GRID_FAMILY):
            yield GaugeMetricFamily(name, documentation)
        yield CounterMetricFamily(*self.EVENTS_FAMILY)
        yield GaugeMetricFamily(*self.USE_CASE_RUNNING_FAMILY)
        yield CounterMetricFamily(*self.USE_CASE_EVENTS_FAMILY)

    def collect(self) -> Iterable[Metric]:
        """The families with a sample for each value that is known."""
        with self._lock:
            battery = sorted(self._battery.items())
            grid_w = self._grid_w
            events = sorted(self._events.items())
            use_cases = self._use_cases
        for index, (name, documentation) in enumerate(self.BATTERY_FAMILIES):
            family = GaugeMetricFamily(name, documentation, labels=["battery"])
            for battery_id, values in battery:
                value = values[index]
                if _known(value):
                    family.add_metric([str(battery_id)], value)
            yield family
        grid = GaugeMetricFamily(*self.GRID_FAMILY, labels=[])
        if _known(grid_w):
            grid.add_metric([], grid_w)
        yield grid
        counted = CounterMetricFamily(*self.EVENTS_FAMILY, labels=["source", "event"])
        for (source, event), count in events:
            counted.add_metric([source, event], count)
        yield counted
        labels = ["use_case", "kind"]
        running = GaugeMetricFamily(*self.USE_CASE_RUNNING_FAMILY, labels=labels)
        use_case_events = CounterMetricFamily(
            *self.USE_CASE_EVENTS_FAMILY, labels=[*labels, "event"]
        )
        for sample in use_cases:
            running.add_metric([sample.name, sample.kind], sample.dispatches_running)
            for event, count in sorted(sample.counts.items()):
                use_case_events.add_metric([sample.name, sample.kind, event], count)
        yield running
        yield use_case_events


def _known(value: float | None) -> TypeGuard[float]:
    return value is not None and not math.isnan(value)


class Metrics:
    """The controller's instruments, in a registry of their own.

    Sampled values (SoC, power, bounds, grid power) take `None` or NaN for "no
    reading", and then export *no sample* rather than NaN: a NaN would poison every
    aggregate over the site (`sum(edge_controller_battery_power_watts)` would be NaN
    because one inverter is silent), while a missing series is what `absent()` and
    `count()` alerts are made for. The battery's status series stay, so the battery
    is still listed.

    The `refresh` hook is called right before each render with this object, so the
    app can copy its telemetry into the gauges only when Prometheus scrapes (every
    15 s or so) instead of on every telemetry message:

    ```python
    def copy_telemetry(metrics: Metrics) -> None:
        for battery_id, sample in cache.batteries().items():
            metrics.set_battery(battery_id, soc_pct=sample.soc_pct, power_w=..., ...)

    metrics = Metrics(refresh=copy_telemetry)
    ```

    A hook that raises is logged (`metrics_refresh_failed`) and the scrape still
    answers, with the values of the last successful refresh.
    """

    def __init__(
        self, refresh: Callable[[Metrics], None] | None = None, *, version: str = __version__
    ) -> None:
        """Create the instruments; `version` goes into `edge_controller_info`."""
        self.registry: Final = CollectorRegistry()
        self._refresh = refresh
        self._sampled = _SampledValues()
        self.registry.register(self._sampled)
        self._battery_status = Gauge(
            "edge_controller_battery_status",
            "1 for each battery's current status (working, uncertain, blocked), else 0.",
            ["battery", "status"],
            registry=self.registry,
        )
        self._dispatches_running = Gauge(
            "edge_controller_dispatches_running",
            "Dispatches whose actor is currently running.",
            registry=self.registry,
        )
        self._mode = Gauge(
            "edge_controller_mode",
            "1 for the controller's mode (control: commands; observe: plans and logs).",
            ["mode"],
            registry=self.registry,
        )
        self._results = Counter(
            "edge_controller_power_results_total",
            "Results of power requests, by kind and requesting namespace.",
            ["kind", "namespace"],
            registry=self.registry,
        )
        self._restarts = Counter(
            "edge_controller_actor_restarts_total",
            "Restarts of crashed actors.",
            ["actor"],
            registry=self.registry,
        )
        self._command_latency = Histogram(
            "edge_controller_command_latency_seconds",
            "Duration of power commands to inverters, by outcome (ok, error).",
            ["outcome"],
            buckets=COMMAND_LATENCY_BUCKETS_S,
            registry=self.registry,
        )
        self._reloads = Counter(
            "edge_controller_config_reloads_total",
            "Configuration reloads, by outcome (applied, rejected).",
            ["outcome"],
            registry=self.registry,
        )
        self._cache_write_failures = Counter(
            "edge_controller_dispatch_cache_write_failures_total",
            "Writes of the dispatch cache that failed (a read-only or full disk, ...).",
            registry=self.registry,
        )
        self._cache_write_ok = Gauge(
            "edge_controller_dispatch_cache_write_ok",
            "0 while the last write of the dispatch cache failed, else 1 (also before any).",
            registry=self.registry,
        )
        self._cache_write_ok.set(1.0)
        Info("edge_controller", "The running edge-controller.", registry=self.registry).info(
            {"version": version}
        )
        # Series that exist from the start, so `rate()` and `increase()` see the first event.
        for outcome in ("ok", "error"):
            self._command_latency.labels(outcome=outcome)
        for outcome in ("applied", "rejected"):
            self._reloads.labels(outcome=outcome)

    def set_battery(
        self,
        battery_id: int,
        *,
        soc_pct: float | None,
        power_w: float | None,
        lower_w: float | None,
        upper_w: float | None,
    ) -> None:
        """Set a battery's SoC (%), measured power and power bounds (W, + charges).

        `None` or NaN drops that sample (see the class docstring); every value is
        required so a caller cannot forget one and leave an old reading behind.
        """
        self._sampled.set_battery(battery_id, (soc_pct, power_w, lower_w, upper_w))

    def set_battery_status(self, battery_id: int, status: str) -> None:
        """Mark `status` (working, uncertain or blocked) as the battery's current one.

        Raises:
            ValueError: for any other status.
        """
        _checked(status, BATTERY_STATUSES, "battery status")
        for candidate in BATTERY_STATUSES:
            self._battery_status.labels(battery=str(battery_id), status=candidate).set(
                1.0 if candidate == status else 0.0
            )

    def remove_battery(self, battery_id: int) -> None:
        """Drop every series of a battery that left the component graph."""
        self._sampled.remove_battery(battery_id)
        for status in BATTERY_STATUSES:
            self._battery_status.remove(str(battery_id), status)

    def set_dispatches_running(self, count: int) -> None:
        """Set how many dispatches are running now."""
        self._dispatches_running.set(count)

    def set_mode(self, mode: str) -> None:
        """Mark `mode` (control or observe) as the controller's current one.

        Raises:
            ValueError: for any other mode.
        """
        _checked(mode, MODES, "mode")
        for candidate in MODES:
            self._mode.labels(mode=candidate).set(1.0 if candidate == mode else 0.0)

    def count_result(self, kind: str, namespace: str) -> None:
        """Count one power request result of `kind` sent to `namespace`.

        Raises:
            ValueError: for a kind not in `RESULT_KINDS`.
        """
        self._results.labels(
            kind=_checked(kind, RESULT_KINDS, "result kind"), namespace=namespace
        ).inc()

    def count_restart(self, actor: str) -> None:
        """Count one restart of the crashed actor named `actor`."""
        self._restarts.labels(actor=actor).inc()

    def observe_command(self, seconds: float, ok: bool) -> None:
        """Record how long one inverter command took, and whether it succeeded."""
        self._command_latency.labels(outcome="ok" if ok else "error").observe(seconds)

    def count_reload(self, applied: bool) -> None:
        """Count one configuration reload, applied or rejected."""
        self._reloads.labels(outcome="applied" if applied else "rejected").inc()

    def observe_cache_write(self, problem: str | None) -> None:
        """Record one write of the dispatch cache: `None` if it worked, else why not."""
        if problem is not None:
            self._cache_write_failures.inc()
        self._cache_write_ok.set(0.0 if problem is not None else 1.0)

    def set_events(self, source: str, counts: Mapping[str, int]) -> None:
        """Export a stage's event counts, e.g. the PowerManagingActor's grid clamps."""
        self._sampled.set_events(source, counts)

    def set_use_cases(self, samples: Iterable[UseCaseSample]) -> None:
        """Export each running use case's dispatches and events (the rest are dropped)."""
        self._sampled.set_use_cases(samples)

    def set_grid_power(self, watts: float | None) -> None:
        """Set the grid connection's power (W, + imports); `None` or NaN drops the sample."""
        self._sampled.set_grid(watts)

    def render(self, *, refresh: bool = True) -> bytes:
        """Run the refresh hook (unless `refresh` is False), then the text format.

        `refresh=False` serves the values as they are: the server uses it when the event
        loop, where the hook must run, does not answer.
        """
        if refresh and self._refresh is not None:
            try:
                self._refresh(self)
            except Exception:
                _log().exception("metrics_refresh_failed")
        return generate_latest(_WithoutCreated(self.registry))


class _WithoutCreated:
    """A registry's metrics without prometheus-client's `_created` samples.

    In the text format each counter and histogram would get a twin gauge series
    (`..._created`, its creation time) that nobody queries; prometheus-client can only
    turn them off for the whole process, which is not this object's decision to make.
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry

    def collect(self) -> Iterable[Metric]:
        for metric in self._registry.collect():
            metric.samples = [s for s in metric.samples if not s.name.endswith("_created")]
            yield metric


class Health:
    """Whether the controller is healthy: the answer of `/healthz`.

    Healthy means all of:

    - `graph_running`: set by the app once the actor graph runs, cleared on shutdown;
    - the event loop's heartbeat is recent: the app calls `beat()` from a task every
      second or so; a loop blocked by a synchronous call stops beating;
    - `data_fresh()`: supplied by the app, True while telemetry is recent.

    Degraded (`set_degraded`) is something else: a part that only matters later is
    broken (the dispatch cache cannot be written: it is read only on a restart while
    the dispatch service is down). `/healthz` then still answers 200, with a
    `degraded: <reason>` line after `ok`: a probe or watchdog that restarts the
    daemon on 503 must not restart it for this — a restart does not make a full disk
    writable, and it would throw away the schedule held in memory, the one thing that
    still works without the cache. Alerting goes by the body or by the metrics
    (`edge_controller_dispatch_cache_write_ok`).

    Pure: time comes from `monotonic` (seconds), so tests step it by hand.
    """

    def __init__(
        self,
        data_fresh: Callable[[], bool],
        *,
        max_heartbeat_age_s: float = 5.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        """Start unhealthy: the graph does not run and the loop has not beaten yet."""
        self.graph_running = False
        self.data_fresh = data_fresh
        self.max_heartbeat_age_s = max_heartbeat_age_s
        self._monotonic = monotonic
        self._last_beat: float | None = None
        self._degraded: dict[str, str] = {}
        """Rebound, never changed in place: read from the server's thread."""

    def set_degraded(self, part: str, reason: str | None) -> None:
        """Mark `part` degraded for `reason`, or no longer degraded (None)."""
        degraded = {k: v for k, v in self._degraded.items() if k != part}
        if reason is not None:
            degraded[part] = reason
        self._degraded = degraded

    def degraded(self) -> list[str]:
        """The reasons the controller is degraded (sorted by part); safe from any thread."""
        return [reason for _part, reason in sorted(self._degraded.items())]

    def beat(self) -> None:
        """Record that the event loop is alive; call it from a task on the loop."""
        self._last_beat = self._monotonic()

    def heartbeat_problem(self) -> str | None:
        """Why the heartbeat is not recent, or None. Safe to call from any thread."""
        last_beat = self._last_beat
        if last_beat is None:
            return "no event loop heartbeat yet"
        age_s = self._monotonic() - last_beat
        if age_s > self.max_heartbeat_age_s:
            return f"event loop heartbeat {age_s:.1f} s old (limit {self.max_heartbeat_age_s:g} s)"
        return None

    def check(self) -> tuple[bool, list[str]]:
        """Return whether the controller is healthy, and every reason it is not.

        Calls `data_fresh()`: run it where that is safe (the server runs it on the
        event loop). A `data_fresh` that raises counts as unhealthy, with the error.
        """
        reasons: list[str] = []
        if not self.graph_running:
            reasons.append("graph not running")
        heartbeat = self.heartbeat_problem()
        if heartbeat is not None:
            reasons.append(heartbeat)
        try:
            fresh = self.data_fresh()
        except Exception as error:
            reasons.append(f"telemetry freshness unknown: {error!r}")
        else:
            if not fresh:
                reasons.append("telemetry stale")
        return not reasons, reasons


class MetricsServer:
    """HTTP endpoint for Prometheus and health probes, in a daemon thread.

    ```python
    async with MetricsServer("127.0.0.1:9464", metrics, health) as server:
        log.info("metrics_listening", address=server.address)
        ...
    ```

    - `GET /metrics`: `Metrics.render()` in the Prometheus text format
      (`CONTENT_TYPE_LATEST`);
    - `GET /healthz`: 200 `ok` or 503 with the reasons, one per line (text/plain),
      followed by a `degraded: ...` line per part that is degraded (`Health`);
    - anything else: 404.

    The refresh hook and `Health.check()` run on the event loop that called `start()`
    (see the module docstring); the thread only does I/O. Any host that binds is
    accepted (the config defaults to loopback); IPv6 hosts may be given as `[::1]`.
    """

    def __init__(
        self,
        listen: str,
        metrics: Metrics,
        health: Health,
        *,
        loop_timeout_s: float = 1.0,
        idle_timeout_s: float = IDLE_TIMEOUT_S,
        max_connections: int = MAX_CONNECTIONS,
    ) -> None:
        """Prepare to serve on `listen` (`HOST:PORT`, port 0 picks a free port).

        Raises:
            ListenAddressError: if `listen` is not `HOST:PORT`.
        """
        host, self._port = parse_listen(listen)
        self._listen = listen
        self._host = host.removeprefix("[").removesuffix("]")
        self.metrics = metrics
        self.health = health
        self.loop_timeout_s = loop_timeout_s
        self.idle_timeout_s = idle_timeout_s
        self.max_connections = max_connections
        self._loop: asyncio.AbstractEventLoop | None = None
        self._http: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._address: str | None = None

    @property
    def address(self) -> str:
        """`HOST:PORT` it is bound to, with the real port when 0 was asked for.

        Raises:
            RuntimeError: before `start()`.
        """
        if self._address is None:
            raise RuntimeError("MetricsServer.address: the server has not been started")
        return self._address

    async def start(self) -> None:
        """Bind and start answering; the calling event loop runs the callbacks.

        Raises:
            BindError: if the address cannot be bound (e.g. the port is in use); an
                `OSError` whose message names `metrics.listen`, the address and why.
            RuntimeError: if already started.
        """
        if self._http is not None:
            raise RuntimeError("MetricsServer.start: already started")
        self._loop = asyncio.get_running_loop()
        try:
            http = _HTTPServer((self._host, self._port), self)
        except OSError as error:
            raise BindError.from_os_error(self._listen, error, source="metrics.listen") from error
        host, port = http.server_address[:2]
        assert isinstance(host, str)
        self._address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        self._http = http
        self._thread = threading.Thread(
            target=http.serve_forever,
            kwargs={"poll_interval": _POLL_INTERVAL_S},
            name="metrics-http",
            daemon=True,
        )
        self._thread.start()

    async def stop(self) -> None:
        """Stop answering and close the socket; does nothing if not running.

        Waits (off the loop) for the serving thread; requests in flight keep being
        answered meanwhile, because the loop stays free to run their callbacks.
        """
        http, thread = self._http, self._thread
        if http is None or thread is None:
            return
        self._http = self._thread = None
        await asyncio.to_thread(http.shutdown)
        http.server_close()
        await asyncio.to_thread(thread.join)

    async def __aenter__(self) -> MetricsServer:
        """Start the server."""
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Stop the server."""
        await self.stop()

    def _metrics_body(self) -> bytes:
        """The `/metrics` body; called from the server's thread."""
        try:
            return self._on_loop(self.metrics.render)
        except TimeoutError:
            _log().warning("metrics_refresh_skipped", reason="event loop did not answer")
            return self.metrics.render(refresh=False)

    def _health_body(self) -> tuple[bool, str]:
        """Whether healthy, and the `/healthz` body; called from the server's thread."""
        try:
            ok, reasons = self._on_loop(self.health.check)
        except TimeoutError:
            ok = False
            reasons = [f"event loop did not answer within {self.loop_timeout_s:g} s"]
            heartbeat = self.health.heartbeat_problem()
            if heartbeat is not None:
                reasons.append(heartbeat)
        lines = ["ok"] if ok else reasons
        lines += [f"degraded: {reason}" for reason in self.health.degraded()]
        return ok, "".join(f"{line}\n" for line in lines)

    def _on_loop(self, call: Callable[[], _T]) -> _T:
        """Run `call` on the event loop and wait for its result, from another thread.

        Raises:
            TimeoutError: if the loop did not run it within `loop_timeout_s` (it is
                then skipped), or the loop is closed.
        """
        result: concurrent.futures.Future[_T] = concurrent.futures.Future()

        def run() -> None:
            if not result.set_running_or_notify_cancel():
                return  # the waiting thread gave up
            try:
                result.set_result(call())
            except Exception as error:
                result.set_exception(error)

        loop = self._loop
        if loop is None:
            raise TimeoutError("no event loop")
        try:
            loop.call_soon_threadsafe(run)
        except RuntimeError as error:  # the loop is closed
            raise TimeoutError("event loop closed") from error
        try:
            return result.result(timeout=self.loop_timeout_s)
        except TimeoutError:
            result.cancel()
            raise


class _HTTPServer(socketserver.TCPServer):
    """The stdlib's TCP server with bounded connections, bound as this project binds.

    `serve_forever` runs in the server's thread: it accepts connections and waits,
    with one selector, for each to send something; a connection with bytes to read
    goes to the worker pool, which reads the request (socket timeout:
    `idle_timeout_s`) and answers. Connections beyond `max_connections` are closed
    at once, idle ones after `idle_timeout_s`.
    """

    allow_reuse_port = False  # never share a port with a stale server
    request_queue_size = 128
    """The listen backlog (the stdlib's 5 drops connections of a burst, which the
    client then retries only after a second)."""

    def __init__(self, address: tuple[str, int], owner: MetricsServer) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.owner = owner
        self._workers = ThreadPoolExecutor(MAX_WORKERS, thread_name_prefix="metrics-http")
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        """Every connection accepted and not closed yet (guarded by `_lock`)."""
        self._stop = threading.Event()
        self._stopped = threading.Event()
        self._refusals = LogLimiter(60.0)
        super().__init__(address, _Handler)
        self.socket.setblocking(False)

    @override
    def server_bind(self) -> None:
        # `HTTPServer.server_bind` also resolves the host's FQDN, a DNS lookup that can
        # stall start-up on a site without DNS; the name is only used in CGI variables.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    @override
    def serve_forever(self, poll_interval: float = _POLL_INTERVAL_S) -> None:
        waiting: dict[socket.socket, tuple[float, Any]] = {}
        """Connections that have sent nothing yet: their deadline and address."""
        try:
            with selectors.DefaultSelector() as selector:
                selector.register(self.socket, selectors.EVENT_READ)
                while not self._stop.is_set():
                    for key, _events in selector.select(poll_interval):
                        if key.fileobj is self.socket:
                            while self._accept(selector, waiting):
                                pass
                            continue
                        connection = key.fileobj
                        assert isinstance(connection, socket.socket)
                        selector.unregister(connection)
                        _deadline, client = waiting.pop(connection)
                        self._workers.submit(self._answer, connection, client)
                    now = time.monotonic()
                    for connection, (deadline, _client) in list(waiting.items()):
                        if now >= deadline:
                            selector.unregister(connection)
                            del waiting[connection]
                            self._close(connection)
        finally:
            for connection in waiting:
                self._close(connection)
            self._stopped.set()

    def _accept(self, selector: selectors.BaseSelector, waiting: dict[socket.socket, Any]) -> bool:
        """Take a new connection; when `max_connections` are open, make room or refuse.

        Room is made by closing the connection that has been idle longest: idle ones
        cost the attacker nothing to open again, and a probe or a scrape sends its
        request at once, so a flood of idle connections cannot keep `/healthz` from
        answering. Only when every open connection is being answered is the new one
        refused. Returns whether there was a connection to take.
        """
        try:
            connection, client = self.socket.accept()
        except OSError:  # none left (EAGAIN), or gone before we took it
            return False
        with self._lock:
            full = len(self._open) >= self.owner.max_connections
        if full and waiting:
            oldest = next(iter(waiting))
            selector.unregister(oldest)
            del waiting[oldest]
            self._close(oldest)
            full = False
        if full:
            connection.close()
        else:
            with self._lock:
                self._open.add(connection)
            waiting[connection] = (time.monotonic() + self.owner.idle_timeout_s, client)
            selector.register(connection, selectors.EVENT_READ)
        if len(self._open) >= self.owner.max_connections:
            not_logged = self._refusals.admit("full")
            if not_logged is not None:
                _log().warning(
                    "metrics_connections_at_limit",
                    max_connections=self.owner.max_connections,
                    action="refused" if full else "closed the longest idle one",
                    times_not_logged=not_logged,
                )
        return True

    def _answer(self, connection: socket.socket, client: Any) -> None:
        """Read and answer one request (in a worker); always close the connection."""
        try:
            connection.setblocking(True)
            connection.settimeout(self.owner.idle_timeout_s)
            self.finish_request(connection, client)
        except Exception:
            # A client that went away mid-answer, or timed out: nothing to tell anyone.
            pass
        finally:
            self._close(connection)

    def _close(self, connection: socket.socket) -> None:
        with self._lock:
            self._open.discard(connection)
        self.shutdown_request(connection)

    @override
    def shutdown(self) -> None:
        """Stop `serve_forever`, wait for it, then for the requests being answered.

        Requests queued but not started are not answered: their connections close.
        """
        self._stop.set()
        self._stopped.wait()
        self._workers.shutdown(wait=True, cancel_futures=True)
        with self._lock:
            left = list(self._open)
        for connection in left:
            self._close(connection)


class _Handler(BaseHTTPRequestHandler):
    """Answers one request; everything that reads state goes through the owner."""

    server: _HTTPServer

    def do_GET(self) -> None:
        """Serve `/metrics`, `/healthz`, or 404."""
        owner = self.server.owner
        path = urlsplit(self.path).path
        if path == "/metrics":
            self._reply(200, CONTENT_TYPE_LATEST, owner._metrics_body())
        elif path == "/healthz":
            ok, text = owner._health_body()
            self._reply(200 if ok else 503, "text/plain; charset=utf-8", text.encode())
        else:
            self._reply(404, "text/plain; charset=utf-8", b"not found: try /metrics or /healthz\n")

    def _reply(self, status: int, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    @override
    def log_message(self, format: str, *args: Any) -> None:
        # The stdlib writes every request to stderr; a scrape every 15 s is not news.
        pass
