"""Site processes for the benchmarks that run the real command-line programs.

`sdk_side_by_side.py` and `fleet.py` start `edge-controller sim`, `edge-controller
dispatch-server` and `edge-controller run` as processes of their own, so that each
one's CPU and memory can be read from /proc apart from the benchmark's, and read what
happened from outside: the simulator's command log (JSON lines) and the controller's
JSON log. Only 127.0.0.1 and free ports (port 0) are used.

- `toml_text`: a small TOML writer for the documents the benchmarks build (site files,
  controller configs): `tomllib` only reads.
- `ProcessStats`: CPU seconds (utime + stime, all threads) and resident memory of a pid.
- `Child`: a started program; `start_simulator`, `start_dispatch_server` and
  `start_controller` start the three with their output where the benchmark reads it.
- `CommandLogTail`: the accepted commands appended to a command log since last read.
- `LogTail`: the controller's JSON log events since last read.
- `http_status`: one GET on loopback (the controller's /healthz).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import signal
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CLI = ROOT / ".venv" / "bin" / "edge-controller"
LISTEN = "127.0.0.1:0"
STARTUP_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 10.0
_TICKS_PER_S = os.sysconf("SC_CLK_TCK")
_PAGE_KB = os.sysconf("SC_PAGE_SIZE") / 1024


# ---------------------------------------------------------------- TOML


def _toml_key(key: str) -> str:
    bare = key.replace("_", "").replace("-", "").isalnum() and key.isascii()
    return key if bare else json.dumps(key)


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"no TOML form for the non-finite float {value!r}")
        text = repr(value)
        return text if any(c in text for c in ".en") else text + ".0"
    if isinstance(value, str):
        return json.dumps(value)  # JSON's escapes are TOML basic-string escapes
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        items = ", ".join(f"{_toml_key(str(k))} = {_toml_value(v)}" for k, v in value.items())
        return "{" + items + "}"
    raise TypeError(f"no TOML form for {value!r}")


def toml_text(document: Mapping[str, Any]) -> str:
    """Render `document` as TOML: top-level values, then tables, then arrays of tables.

    Enough for site files and controller configs: a table's own values are written
    inline (a nested table becomes an inline table); a top-level list whose items are
    all tables becomes an array of tables (`[[components]]`).

    Raises:
        TypeError: a value with no TOML form (None, an object).
        ValueError: a non-finite float.
    """
    lines: list[str] = []
    tables: list[tuple[str, Mapping[str, Any]]] = []
    arrays: list[tuple[str, Sequence[Mapping[str, Any]]]] = []
    for name, value in document.items():
        if isinstance(value, Mapping):
            tables.append((name, value))
        elif isinstance(value, list) and value and all(isinstance(v, Mapping) for v in value):
            arrays.append((name, value))
        else:
            lines.append(f"{_toml_key(name)} = {_toml_value(value)}")
    for name, table in tables:
        lines.append(f"\n[{_toml_key(name)}]")
        lines.extend(f"{_toml_key(str(k))} = {_toml_value(v)}" for k, v in table.items())
    for name, items in arrays:
        for item in items:
            lines.append(f"\n[[{_toml_key(name)}]]")
            lines.extend(f"{_toml_key(str(k))} = {_toml_value(v)}" for k, v in item.items())
    return "\n".join(lines).lstrip("\n") + "\n"


# ---------------------------------------------------------------- /proc


@dataclass(frozen=True, slots=True)
class ProcessStats:
    """A process's CPU seconds (user + system, all threads) and memory, from /proc."""

    cpu_s: float
    rss_mb: float
    peak_rss_mb: float
    """VmHWM: the most resident memory the process has had."""

    @classmethod
    def of(cls, pid: int) -> ProcessStats:
        """Read them now.

        Raises:
            FileNotFoundError / ProcessLookupError: the process is gone.
        """
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii")
        fields = stat[stat.rindex(")") + 2 :].split()
        cpu_s = (int(fields[11]) + int(fields[12])) / _TICKS_PER_S  # utime + stime
        rss_mb = int(fields[21]) * _PAGE_KB / 1024
        peak_mb = rss_mb
        for line in Path(f"/proc/{pid}/status").read_text(encoding="ascii").splitlines():
            if line.startswith("VmHWM:"):
                peak_mb = int(line.split()[1]) / 1024
        return cls(cpu_s, rss_mb, peak_mb)


# ---------------------------------------------------------------- processes


class Child:
    """A program the benchmark started: its process, its name, and how to stop it."""

    def __init__(self, name: str, process: asyncio.subprocess.Process, log_path: Path) -> None:
        self.name = name
        self.process = process
        self.log_path = log_path
        """Where its stderr goes (the controller's JSON log)."""
        self.started_at = time.time()

    @property
    def pid(self) -> int:
        return self.process.pid

    def stats(self) -> ProcessStats | None:
        """Its CPU and memory now (None once it has exited)."""
        try:
            return ProcessStats.of(self.pid)
        except (FileNotFoundError, ProcessLookupError):
            return None

    async def first_line(self, prefix: str, timeout_s: float = STARTUP_TIMEOUT_S) -> str:
        """Return the rest of the first stdout line that starts with `prefix`.

        Raises:
            RuntimeError: it exited, or said nothing of the kind within `timeout_s`.
        """
        assert self.process.stdout is not None
        try:
            async with asyncio.timeout(timeout_s):
                while line := await self.process.stdout.readline():
                    text = line.decode(errors="replace").strip()
                    if text.startswith(prefix):
                        return text[len(prefix) :]
        except TimeoutError:
            raise RuntimeError(
                f"{self.name}: no {prefix!r} line within {timeout_s:g} s; see {self.log_path}"
            ) from None
        raise RuntimeError(f"{self.name} exited before {prefix!r}: {self.tail_of_log()}")

    def tail_of_log(self, lines: int = 5) -> str:
        with contextlib.suppress(OSError):
            return " | ".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return "(no log)"

    async def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> int | None:
        """SIGTERM, wait up to `timeout_s`, then SIGKILL; return its exit code."""
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGTERM)
            try:
                async with asyncio.timeout(timeout_s):
                    await self.process.wait()
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    self.process.kill()
                await self.process.wait()
        return self.process.returncode


async def _spawn(
    name: str, argv: Sequence[str], log_path: Path, *, stdin: bool = False, cwd: Path = ROOT
) -> Child:
    with log_path.open("ab") as log:
        process = await asyncio.create_subprocess_exec(
            *argv,
            cwd=cwd,
            stdin=asyncio.subprocess.PIPE if stdin else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=log,
        )
    return Child(name, process, log_path)


async def start_simulator(
    name: str,
    site_path: Path,
    command_log: Path,
    log_path: Path,
    *,
    log_level: str = "warning",
) -> tuple[Child, str]:
    """Start `edge-controller sim` on a free port; return it and its `grpc://` URL.

    At `warning` (the default here) the simulator does not log each accepted command:
    the command log file has them, and the simulator's CPU is spent on serving.
    """
    argv = [str(CLI), "--log-level", log_level, "--log-format", "json", "sim"]
    argv += ["--site", str(site_path), "--listen", LISTEN, "--command-log", str(command_log)]
    child = await _spawn(name, argv, log_path)
    address = await child.first_line("listening address=")
    return child, f"grpc://{address}?ssl=false"


async def start_dispatch_server(
    name: str, db: Path, keys_file: Path, log_path: Path
) -> tuple[Child, str]:
    """Start `edge-controller dispatch-server` on a free port; return it and its URL."""
    argv = [str(CLI), "--log-format", "json", "dispatch-server", "--listen", LISTEN]
    argv += ["--db", str(db), "--keys-file", str(keys_file)]
    child = await _spawn(name, argv, log_path)
    address = await child.first_line("listening address=")
    return child, f"grpc://{address}?ssl=false"


async def start_controller(name: str, config_path: Path, log_path: Path) -> Child:
    """Start `edge-controller run --config FILE`, its JSON log (stderr) into `log_path`.

    Returns at once; `LogTail(log_path).wait_for("controller_started")` tells when it
    is running, `metrics_listening`'s `address` where its /healthz is.
    """
    argv = [str(CLI), "--log-format", "json", "run", "--config", str(config_path)]
    return await _spawn(name, argv, log_path)


async def start_python_module(name: str, module: str, args: Sequence[str], log_path: Path) -> Child:
    """Start `python -m module args...` from the repository root, stdin a pipe."""
    return await _spawn(name, [sys.executable, "-m", module, *args], log_path, stdin=True)


async def stop_all(children: Sequence[Child]) -> None:
    """Stop every child (concurrently), swallowing nothing but a gone process."""
    await asyncio.gather(*(child.stop() for child in children))


# ---------------------------------------------------------------- logs read from outside


def _epoch(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


@dataclass(frozen=True, slots=True)
class Accepted:
    """An accepted active-power command from the simulator's command log."""

    at: float
    """When the simulator accepted it (its wall clock, as `time.time()`)."""
    component_id: int
    requested_w: float


class LineTail:
    """Complete lines appended to a file since the last read (`lines()`)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = 0
        self._partial = b""

    def lines(self) -> list[bytes]:
        try:
            with self.path.open("rb") as file:
                file.seek(self._offset)
                data = file.read()
        except FileNotFoundError:
            return []
        self._offset += len(data)
        data = self._partial + data
        *complete, self._partial = data.split(b"\n")
        return [line for line in complete if line.strip()]


class CommandLogTail(LineTail):
    """The accepted active-power commands appended to a command log since last read."""

    def read(self) -> list[Accepted]:
        accepted = []
        for line in self.lines():
            record = json.loads(line)
            if record.get("outcome", "accepted") != "accepted" or record["reactive"]:
                continue
            accepted.append(
                Accepted(_epoch(record["at"]), int(record["component_id"]), record["requested_w"])
            )
        return accepted


class LogTail(LineTail):
    """A JSON log's events since last read; non-JSON lines are kept as `raw` events."""

    def read(self) -> list[dict[str, Any]]:
        events = []
        for line in self.lines():
            try:
                event = json.loads(line)
            except ValueError:
                event = {"event": "raw", "text": line.decode(errors="replace")}
            if not isinstance(event, dict):
                event = {"event": "raw", "text": str(event)}
            events.append(event)
        return events

    async def wait_for(
        self, event_name: str, child: Child, timeout_s: float = STARTUP_TIMEOUT_S
    ) -> dict[str, Any]:
        """Poll until `event_name` is logged; return that event.

        Raises:
            RuntimeError: the process exited first, or the event did not come in time.
        """
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for event in self.read():
                if event.get("event") == event_name:
                    return event
            if child.process.returncode is not None:
                raise RuntimeError(
                    f"{child.name} exited ({child.process.returncode}) before "
                    f"{event_name}: {child.tail_of_log()}"
                )
            await asyncio.sleep(0.05)
        raise RuntimeError(f"{child.name}: no {event_name} within {timeout_s:g} s")


async def http_status(address: str, path: str, timeout_s: float = 1.0) -> int | None:
    """GET http://address/path; return the status code, or None (refused, timed out)."""
    host, _, port = address.rpartition(":")
    writer = None
    try:
        async with asyncio.timeout(timeout_s):
            reader, writer = await asyncio.open_connection(host, int(port))
            writer.write(f"GET {path} HTTP/1.0\r\nHost: {address}\r\n\r\n".encode())
            await writer.drain()
            status_line = await reader.readline()
            await reader.read()
        return int(status_line.split()[1])
    except (OSError, TimeoutError, ValueError, IndexError):
        return None
    finally:
        if writer is not None:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


# ---------------------------------------------------------------- figures


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile (with fewer than 100 values, p99 is the maximum)."""
    ordered = sorted(v for v in values if not math.isnan(v))
    if not ordered:
        return math.nan
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]
