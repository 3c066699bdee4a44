"""What the reliability cases share: a whole site with recording hooks, and watchers.

`reliable_site(...)` starts the real parts on loopback — the simulator, our Dispatch
API service, the controller graph — with settings that make faults show fast (short
request timeout, short keep-alive and blocking times) and records, with event-loop
times, every result the distributor publishes, every inverter command it sends and
every actor restart. `PowerWatch` samples the simulated inverters' AC power every few
milliseconds, so a test can say "never beyond the target" about the whole run rather
than about the moments it happened to look.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import random
import sys
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from frequenz.client.dispatch import DispatchApiClient
from frequenz.client.dispatch.types import TargetIds

from edge_controller.config.schema import parse_config
from edge_controller.controller.graph import Controller, ControllerHooks
from edge_controller.framework.messages import Result
from edge_controller.servers.dispatch.server import DispatchServer
from edge_controller.servers.sim.fault_spec import FaultKind
from edge_controller.servers.sim.server import SimulatorServer
from edge_controller.servers.sim.site import SiteSpec
from tests import patience
from tests.daemon.test_daemon_process import Logs, Notifications
from tests.harness import KEY, MICROGRID, stream_connected
from tests.patience import PATIENCE_S

BATTERIES = (11, 21, 31, 41)
INVERTERS = (10, 20, 30, 40)
RESOLUTIONS = {"10": 88, "20": 100, "30": 50, "40": 88}
USE_CASE = "main"
"""The name (and result namespace) of the one battery_power use case."""

FAST: dict[str, dict[str, Any]] = {
    "power_distribution": {
        "request_timeout": 0.5,
        "keepalive_interval": 1,
        "blocking_initial": 0.5,
        "blocking_max": 2,
    },
    "microgrid": {"stale_after": 1.5},
}
"""Settings under which a fault shows within a second or two."""


def merged(base: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """`base` with `extra` merged table by table (like the config's drop-ins)."""
    result = {k: dict(v) if isinstance(v, dict) else v for k, v in base.items()}
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = {**result[key], **value}
        else:
            result[key] = value
    return result


@dataclass
class Recorder:
    """What the controller's hooks saw, stamped with the event loop's time."""

    results: list[tuple[float, Result]] = field(default_factory=list)
    commands: list[tuple[float, float, bool]] = field(default_factory=list)
    """(end time, seconds it took, ok) per inverter command."""
    restarts: list[str] = field(default_factory=list)

    def hooks(self) -> ControllerHooks:
        loop = asyncio.get_running_loop()
        return ControllerHooks(
            on_command=lambda seconds, ok: self.commands.append((loop.time(), seconds, ok)),
            on_result=lambda result: self.results.append((loop.time(), result)),
            on_restart=lambda actor, _wait: self.restarts.append(actor),
        )

    def of_kind(self, kind: type, since: float = 0.0) -> list[tuple[float, Any]]:
        return [(t, r) for t, r in self.results if isinstance(r, kind) and t >= since]


@dataclass
class ReliableSite:
    """A running site: servers, controller, the real dispatch client, the recorder."""

    sim: SimulatorServer
    dispatch: DispatchServer
    client: DispatchApiClient
    controller: Controller
    recorder: Recorder
    config: dict[str, Any]

    def power(self, *inverters: int) -> float:
        return math.fsum(self.sim.model.ac_power_w(i) for i in inverters or INVERTERS)

    def fault(
        self, component_id: int, kind: FaultKind, duration_s: float | None = None, **params: object
    ) -> None:
        """Start a fault now on the simulator's clock (until cleared, or for a while)."""
        self.sim.faults.inject(
            component_id,
            kind,
            now=self.sim.service.clock.now(),
            duration=None if duration_s is None else timedelta(seconds=duration_s),
            **params,
        )

    async def create(
        self, watts: float, batteries: Iterable[int], *, duration_s: float = 300.0
    ) -> int:
        """A BATTERY_POWER dispatch on `batteries` that starts now."""
        created = await self.client.create(
            microgrid_id=MICROGRID,
            type="BATTERY_POWER",
            start_time="NOW",
            duration=timedelta(seconds=duration_s),
            target=TargetIds(*batteries),
            payload={"power_w": watts},
        )
        return int(created.id)

    def counts(self) -> dict[str, int]:
        """The BatteryPowerActor's counters (started, requests, rejected, results ...)."""
        return dict(self.controller.use_cases[0].counts)

    def assert_alive(self) -> None:
        """The controller runs, no actor crashed, none gave up."""
        assert self.controller.running
        assert not self.controller.failed.done()
        assert self.recorder.restarts == []


async def until(condition: Callable[[], bool], what: str, timeout_s: float = PATIENCE_S) -> float:
    """Poll `condition` every 20 ms; return the loop time it became true."""
    await patience.until(condition, what, timeout_s=timeout_s)
    return asyncio.get_running_loop().time()


def near(value: float, expected: float, tolerance: float = 500.0) -> bool:
    return abs(value - expected) <= tolerance


@contextlib.asynccontextmanager
async def reliable_site(
    site: SiteSpec,
    tmp_path: Path,
    settings: Mapping[str, Any] | None = None,
    *,
    speed: float = 1.0,
) -> AsyncIterator[ReliableSite]:
    """Simulator + dispatch service + controller (FAST settings merged with `settings`)."""
    async with (
        SimulatorServer(site, speed=speed) as sim,
        DispatchServer(tmp_path / "dispatches.db", keys=frozenset({KEY})) as dispatch,
    ):
        document = merged(
            {
                "microgrid": {"url": sim.url},
                "dispatch": {"url": dispatch.url, "microgrid_id": 1, "startup_timeout": 10},
                "power_distribution": {"resolutions": RESOLUTIONS},
                "supervision": {"restart_initial": 0.05, "restart_max": 0.2},
                "use_cases": [{"kind": "battery_power", "name": USE_CASE}],
            },
            FAST,
        )
        document = merged(document, settings or {})
        config = parse_config(document, environ={"EDGE_CONTROLLER_DISPATCH_KEY": KEY})
        recorder = Recorder()
        client = DispatchApiClient(server_url=dispatch.url, auth_key=KEY)
        async with Controller(config, hooks=recorder.hooks()) as controller:
            await stream_connected(dispatch, 10)
            yield ReliableSite(sim, dispatch, client, controller, recorder, document)


class PowerWatch:
    """Samples the battery inverters' AC power every `period_s` until stopped.

    `worst_over(target_w)` is how far the sum ever went beyond the target (in the
    target's direction), `over_for(target_w, tolerance)` how long in a row at most.
    """

    def __init__(self, sim: SimulatorServer, period_s: float = 0.005) -> None:
        self._sim = sim
        self._period_s = period_s
        self.samples: list[tuple[float, dict[int, float]]] = []
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> PowerWatch:
        self._task = asyncio.create_task(self._sample())
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _sample(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            model = self._sim.model
            self.samples.append((loop.time(), {i: model.ac_power_w(i) for i in INVERTERS}))
            await asyncio.sleep(self._period_s)

    def sums(self, since: float = 0.0) -> list[tuple[float, float]]:
        return [(t, math.fsum(p.values())) for t, p in self.samples if t >= since]

    def worst_over(self, target_w: float, since: float = 0.0) -> float:
        """The largest excess of |sum| over |target| in W (≤ 0: never beyond)."""
        direction = math.copysign(1.0, target_w)
        return max((direction * s - abs(target_w) for _, s in self.sums(since)), default=-math.inf)

    def longest_over(self, target_w: float, tolerance_w: float, since: float = 0.0) -> float:
        """The longest run of samples beyond |target| + tolerance, in seconds.

        A run of one sample counts as one period: commands to several inverters go
        out together but land a few milliseconds apart, and a sample can fall in
        between (see the suite's README).
        """
        direction = math.copysign(1.0, target_w)
        longest, began = 0.0, None
        for t, total in self.sums(since):
            if direction * total - abs(target_w) > tolerance_w:
                began = t if began is None else began
                longest = max(longest, t - began + self._period_s)
            else:
                began = None
        return longest


def utc_now() -> datetime:
    return datetime.now(UTC)


def assert_no_violations(sim: SimulatorServer) -> None:
    violations = sim.command_log.violations()
    assert violations == [], f"{len(violations)} accepted commands outside their bounds"


class DaemonProcess:
    """`edge-controller run` as a child process, the way systemd runs it.

    JSON logs are read from stderr as they come (`logs`), systemd notifications from a
    fake `NOTIFY_SOCKET` (`notify`).
    """

    def __init__(self, config: Path, tmp_path: Path, name: str = "daemon") -> None:
        self.config = config
        self._socket_path = tmp_path / f"{name}.sock"
        self.process: asyncio.subprocess.Process | None = None
        self.logs: Logs | None = None
        self.notify: Notifications | None = None

    async def start(self, *, ready_timeout_s: float = 20.0) -> DaemonProcess:
        self._socket_path.unlink(missing_ok=True)
        self.notify = Notifications(self._socket_path)
        environ = dict(os.environ)
        environ.update(NOTIFY_SOCKET=str(self._socket_path), JOURNAL_STREAM="")
        environ.pop("WATCHDOG_USEC", None)
        environ.pop("WATCHDOG_PID", None)
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "edge_controller.tools.cli",
            "--log-format",
            "json",
            "run",
            "--config",
            str(self.config),
            stderr=asyncio.subprocess.PIPE,
            env=environ,
        )
        assert self.process.stderr is not None
        self.logs = Logs(self.process.stderr)
        await self.notify.wait_for("READY=1", ready_timeout_s)
        return self

    async def signal(self, signum: int, timeout_s: float = 10.0) -> int:
        """Send `signum` and wait for the exit code."""
        assert self.process is not None
        self.process.send_signal(signum)
        return await asyncio.wait_for(self.process.wait(), timeout_s)

    async def close(self) -> None:
        """Kill the process if it still runs (a failed test must not leave it)."""
        if self.process is not None and self.process.returncode is None:
            self.process.kill()
            await self.process.wait()
        if self.notify is not None:
            self.notify.socket.close()


def write_daemon_config(
    tmp_path: Path, sim_url: str, dispatch_url: str, extra: str = "", name: str = "controller"
) -> Path:
    """A controller config for a daemon process (metrics off, fast settings)."""
    (tmp_path / "key").write_text(KEY)
    path = tmp_path / f"{name}.toml"
    path.write_text(
        f'[microgrid]\nurl = "{sim_url}"\nid = 1\nstale_after = 1.5\n'
        f'[dispatch]\nurl = "{dispatch_url}"\nkey_file = "key"\n'
        '[metrics]\nlisten = ""\n'
        '[http]\nlisten = ""\n'
        "[power_distribution]\nrequest_timeout = 0.5\nkeepalive_interval = 1\n"
        f"resolutions = {{ 10 = 88, 20 = 100, 30 = 50, 40 = 88 }}\n{extra}"
        '[[use_cases]]\nkind = "battery_power"\nname = "main"\n'
    )
    return path


STORM_KINDS = (
    FaultKind.DELAY,
    FaultKind.UNRESPONSIVE,
    FaultKind.RPC_ERROR,
    FaultKind.ERROR,
    FaultKind.NAN_METRICS,
    FaultKind.NO_TELEMETRY,
    FaultKind.DROP_STREAM,
)


class FaultStorm:
    """Seeded random faults that come and go on the battery inverters and batteries.

    Every `gap` a fault starts on a random component for a random while (0.3-2.5 s);
    the kinds come in shuffled rounds of all seven, so a short storm still has each.
    Control faults (delay, unresponsive, RPC errors, a latched ERROR) go on inverters,
    telemetry faults on either. A latched ERROR is acknowledged after its window, as
    an operator would: the controller itself does not acknowledge errors.
    """

    def __init__(self, sim: SimulatorServer, rng: random.Random) -> None:
        self._sim = sim
        self._rng = rng
        self.injected: list[tuple[int, FaultKind, float]] = []
        self._latched: list[tuple[int, float]] = []
        self._round: list[FaultKind] = []

    async def run(self, duration_s: float, gap_s: tuple[float, float] = (0.2, 0.7)) -> None:
        loop = asyncio.get_running_loop()
        end = loop.time() + duration_s
        while loop.time() < end:
            self._inject_one(loop.time())
            self._acknowledge(loop.time())
            await asyncio.sleep(self._rng.uniform(*gap_s))
        self.clear()

    def _inject_one(self, now_s: float) -> None:
        rng = self._rng
        if not self._round:
            self._round = list(STORM_KINDS)
            rng.shuffle(self._round)
        kind = self._round.pop()
        control = kind in (FaultKind.DELAY, FaultKind.UNRESPONSIVE, FaultKind.RPC_ERROR)
        pool = INVERTERS if control or kind is FaultKind.ERROR else INVERTERS + BATTERIES
        component = rng.choice(pool)
        duration = rng.uniform(0.3, 2.5)
        params: dict[str, object] = {}
        if kind is FaultKind.DELAY:
            params["delay_s"] = rng.uniform(0.05, 0.8)
        elif kind is FaultKind.RPC_ERROR:
            params["status"] = rng.choice(["UNAVAILABLE", "INTERNAL", "RESOURCE_EXHAUSTED"])
        elif kind is FaultKind.ERROR:
            params["error_code"] = rng.choice(["OVERTEMPERATURE", "UNKNOWN"])
            self._latched.append((component, now_s + duration + 0.1))
        self._sim.faults.inject(
            component,
            kind,
            now=self._sim.service.clock.now(),
            duration=timedelta(seconds=duration),
            **params,
        )
        self.injected.append((component, kind, duration))

    def _acknowledge(self, now_s: float, *, all_of_them: bool = False) -> None:
        keep = []
        for component, after in self._latched:
            if not all_of_them and now_s < after:
                keep.append((component, after))
                continue
            with contextlib.suppress(Exception):  # not in ERROR any more, or fault still on
                self._sim.model.acknowledge_error(component, self._sim.service.clock.now())
        self._latched = keep

    def clear(self) -> None:
        """End every fault now and acknowledge what is latched."""
        self._sim.faults.clear()
        self._acknowledge(0.0, all_of_them=True)
