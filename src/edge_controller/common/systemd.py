r"""Talking to systemd: readiness, status lines, reloads and the watchdog.

Under a `Type=notify` unit systemd passes the path of a datagram socket in
`NOTIFY_SOCKET`; the daemon sends it newline-separated `KEY=VALUE` lines (the
`sd_notify(3)` protocol):

    edge-controller                           systemd (PID 1)
      READY=1\nSTATUS=running            ─▶   unit "active", status line shown
      WATCHDOG=1 (every WatchdogSec/2)   ─▶   watchdog timer re-armed
      RELOADING=1\nMONOTONIC_USEC=…      ─▶   unit "reloading" until the next READY=1
      STOPPING=1                         ─▶   unit "deactivating"

It lives in `common/` because both kinds of long-running process use it: the
controller daemon (`daemon/run.py`) and every server command (`servers.common.shell`).

Why our own few lines instead of `python-systemd` or `sdnotify`: the protocol is one
`sendto()` per message, and the stdlib keeps the daemon installable with pip alone on
a site controller without libsystemd headers.

Outside systemd (no `NOTIFY_SOCKET`) every call is a no-op that returns at once, so
the same code runs in tests, in `make demo` and on a terminal. Sending never raises: a
notification is worth less than the controller that sends it, so a failure (the socket
is gone, PID 1 is re-executing) is logged once and the controller carries on.

The environment variables are read, never unset (unlike `sd_notify()` with
`unset_environment`): children the controller may start inherit them harmlessly,
because the unit's `NotifyAccess=main` makes systemd ignore messages from any other
PID, and `WATCHDOG_PID` tells a child that the watchdog is not its own.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Callable, Mapping
from datetime import timedelta
from types import TracebackType
from typing import Final

import structlog

SEND_TIMEOUT: Final = 1.0
"""Seconds a notification may wait for room in systemd's socket buffer.

PID 1 reads its notify socket promptly, so this only matters when it is busy; waiting
briefly beats dropping a `READY=1`, whose loss would make systemd time the start out.
"""


def _log() -> structlog.stdlib.BoundLogger:
    # Fetched at call time (only on rare events): a module-level proxy would cache the
    # configuration of its first use (`cache_logger_on_first_use`), which would pin the
    # configuration of whatever ran first, e.g. a test's log capture.
    logger: structlog.stdlib.BoundLogger = structlog.get_logger(__name__)
    return logger


class Notifier:
    """A sender of `sd_notify` messages to systemd; a no-op outside systemd.

    ```python
    notifier = Notifier.from_environment()
    notifier.ready("running 2 use cases")     # after the graph runs
    notifier.status("dispatch service unreachable, running from cache")
    notifier.reloading()                      # on SIGHUP, then ready() when done
    notifier.stopping()                       # on SIGTERM, before releasing batteries
    ```

    Characteristics:
    - One socket, opened on the first message and kept (closed by `close()` or `with`).
    - Each message is one datagram; a newline in a value is replaced by a space, since
      newlines separate the fields of the protocol.
    - A send waits at most `SEND_TIMEOUT`; failures are logged (once until a send
      succeeds again) and reported as `False`, never raised.
    """

    def __init__(
        self, socket_address: str | None, *, watchdog_interval: timedelta | None = None
    ) -> None:
        """Send to `socket_address` (a path, or `@name` in the abstract namespace).

        `socket_address=None` makes every call a no-op. `watchdog_interval` is the
        unit's `WatchdogSec=`; `None` (or no socket) means no watchdog.

        Raises:
            ValueError: if the address is neither an absolute path nor `@name`, or the
                watchdog interval is not positive.
        """
        if socket_address is not None and not socket_address.startswith(("/", "@")):
            raise ValueError(
                f"NOTIFY_SOCKET: expected an absolute path or @name, got {socket_address!r}"
            )
        if socket_address in ("/", "@"):
            raise ValueError(f"NOTIFY_SOCKET: expected a socket name, got {socket_address!r}")
        if watchdog_interval is not None and watchdog_interval <= timedelta(0):
            raise ValueError(f"watchdog interval must be positive, got {watchdog_interval}")
        self._display_address = socket_address
        self._address: str | None = None
        if socket_address is not None:
            # The abstract namespace is spelt with a leading NUL byte in the address.
            abstract = socket_address.startswith("@")
            self._address = "\0" + socket_address[1:] if abstract else socket_address
        self._watchdog_interval = watchdog_interval if socket_address is not None else None
        self._socket: socket.socket | None = None
        self._failing = False

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] = os.environ) -> Notifier:
        """Build the notifier systemd asked for in `environ`.

        Reads `NOTIFY_SOCKET`, `WATCHDOG_USEC` and `WATCHDOG_PID`. The watchdog applies
        only when `WATCHDOG_PID` is unset or names this process: a child that inherited
        the variables must not keep its parent alive. A malformed value is logged and
        ignored (as `sd_notify` and `sd_watchdog_enabled` do) rather than stopping the
        daemon; nothing is unset.
        """
        address = environ.get("NOTIFY_SOCKET") or None
        if address is not None and (not address.startswith(("/", "@")) or len(address) < 2):
            _log().warning("systemd_notify_socket_unsupported", notify_socket=address)
            address = None
        return cls(address, watchdog_interval=_watchdog_interval(environ))

    @property
    def enabled(self) -> bool:
        """Whether messages go anywhere (`NOTIFY_SOCKET` was set)."""
        return self._address is not None

    @property
    def watchdog_interval(self) -> timedelta | None:
        """The unit's `WatchdogSec=` (ping every half of it); `None`: no watchdog."""
        return self._watchdog_interval

    def send(self, *lines: str) -> bool:
        """Send `KEY=VALUE` lines as one datagram; `True` when it was delivered.

        `False` when there is no socket (outside systemd) or the send failed; a failure
        is logged, once until a send succeeds again, so a vanished socket does not
        flood the journal with a line per watchdog ping.
        """
        if self._address is None or not lines:
            return False
        message = "\n".join(line.replace("\n", " ") for line in lines).encode("utf-8")
        try:
            if self._socket is None:
                self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                self._socket.settimeout(SEND_TIMEOUT)
            self._socket.sendto(message, self._address)
        except OSError as error:
            if not self._failing:
                _log().warning(
                    "systemd_notify_failed",
                    notify_socket=self._display_address,
                    message=lines[0],
                    error=str(error),
                )
            self._failing = True
            return False
        if self._failing:
            _log().info("systemd_notify_recovered", notify_socket=self._display_address)
            self._failing = False
        return True

    def notify(self, **fields: object) -> bool:
        """Send `KEY=value` fields, e.g. `notify(READY=1, STATUS="running")`."""
        return self.send(*(f"{key}={value}" for key, value in fields.items()))

    def ready(self, status: str | None = None) -> bool:
        """Tell systemd start-up (or a reload) is complete: `READY=1`, and a status."""
        return self.send("READY=1", *_status_line(status))

    def status(self, text: str) -> bool:
        """Set the one-line status `systemctl status` shows (`STATUS=`)."""
        return self.send(f"STATUS={text}")

    def reloading(self, status: str | None = None) -> bool:
        """Tell systemd a reload started; send `ready()` when it is done.

        `RELOADING=1` carries `MONOTONIC_USEC=` (`CLOCK_MONOTONIC`, µs), which
        `Type=notify-reload` (systemd 253+) needs to tell this reload from an older
        one; plain `Type=notify` accepts it too.
        """
        now_usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        return self.send("RELOADING=1", f"MONOTONIC_USEC={now_usec}", *_status_line(status))

    def stopping(self, status: str | None = None) -> bool:
        """Tell systemd the daemon is shutting down (`STOPPING=1`), so it waits calmly."""
        return self.send("STOPPING=1", *_status_line(status))

    def watchdog(self) -> bool:
        """Re-arm systemd's watchdog (`WATCHDOG=1`); a no-op without a watchdog.

        Call it from the event loop (see `watchdog_pings`), never from a thread of its
        own: a thread would keep pinging while the loop that does the work is stuck.
        """
        if self._watchdog_interval is None:
            return False
        return self.send("WATCHDOG=1")

    def close(self) -> None:
        """Close the socket; a later message opens a new one."""
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    def __enter__(self) -> Notifier:
        """Use the notifier in a `with` block that closes its socket."""
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Close the socket."""
        self.close()

    def __repr__(self) -> str:
        """Show where messages go and the watchdog interval."""
        return (
            f"Notifier(socket_address={self._display_address!r}, "
            f"watchdog_interval={self._watchdog_interval!r})"
        )


async def watchdog_pings(
    notifier: Notifier, heartbeat_ok: Callable[[], bool] | None = None
) -> None:
    """Ping systemd's watchdog every half interval from the event loop, until cancelled.

    Returns at once when the notifier has no watchdog. Run it as a task beside the
    graph: `asyncio.create_task(watchdog_pings(notifier, graph_is_healthy))`.

    Two ways the controller gets restarted by systemd (`Restart=on-failure`) when it
    stops working while still running:
    - the pings come from the event loop, so a loop that is blocked (a synchronous call
      that hangs, a busy loop) stops them;
    - `heartbeat_ok()` is asked before each ping; while it returns `False` (or raises)
      the ping is skipped, so a graph that stopped doing its work is restarted once a
      whole interval passes without one.

    Half the interval leaves room for one late ping, as `sd_watchdog_enabled(3)`
    recommends. The schedule follows the loop's clock, so pings do not drift; after a
    stall the next ping is sent at once.
    """
    interval = notifier.watchdog_interval
    if interval is None:
        return
    period_s = interval.total_seconds() / 2
    loop = asyncio.get_running_loop()
    _log().info("systemd_watchdog_started", interval_s=interval.total_seconds())
    healthy = True
    next_ping = loop.time()
    while True:
        ok, error = _heartbeat(heartbeat_ok)
        if ok:
            notifier.watchdog()
        if ok != healthy:
            # Logged on changes only: a failing check would otherwise log every ping.
            if ok:
                _log().info("systemd_watchdog_resumed")
            else:
                _log().warning(
                    "systemd_watchdog_ping_skipped",
                    reason="heartbeat not ok" if error is None else "heartbeat check raised",
                    exc_info=error,
                )
            healthy = ok
        next_ping = max(next_ping + period_s, loop.time())
        await asyncio.sleep(next_ping - loop.time())


def _heartbeat(heartbeat_ok: Callable[[], bool] | None) -> tuple[bool, Exception | None]:
    """Ask `heartbeat_ok`; an exception counts as not ok instead of ending the pings."""
    if heartbeat_ok is None:
        return True, None
    try:
        return bool(heartbeat_ok()), None
    except Exception as error:
        return False, error


def _status_line(status: str | None) -> tuple[str, ...]:
    return () if status is None else (f"STATUS={status}",)


def _watchdog_interval(environ: Mapping[str, str]) -> timedelta | None:
    """The watchdog interval meant for this process, from `WATCHDOG_USEC`/`WATCHDOG_PID`."""
    usec_text = environ.get("WATCHDOG_USEC")
    if not usec_text:
        return None
    pid_text = environ.get("WATCHDOG_PID")
    if pid_text:
        if not pid_text.isdigit():
            _log().warning("systemd_watchdog_pid_invalid", watchdog_pid=pid_text)
            return None
        if int(pid_text) != os.getpid():
            return None
    if not usec_text.isdigit() or int(usec_text) == 0:
        _log().warning("systemd_watchdog_usec_invalid", watchdog_usec=usec_text)
        return None
    return timedelta(microseconds=int(usec_text))
