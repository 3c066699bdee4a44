"""Noticing configuration edits while the daemon runs.

The files are polled (`config_files.fingerprint`: inode, size and mtime of the main
file and of every drop-in, so an editor's save-by-rename, a new drop-in and a
removed one all count) and re-read at once on `reload()` (SIGHUP). Polling rather
than inotify: it sees a drop-in directory created after start, survives the
directory being replaced, and costs one `stat` per file per second — the SDK's
`ConfigManager` (watchfiles) misses both new drop-ins and SIGHUP.

An edit is read only once the files stopped changing for one poll, so a save in
several writes is not rejected half-way. A file that fails validation is reported
through `on_rejected` and nothing else happens: the last good configuration keeps
running.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path

import structlog

from edge_controller.common.waiting import wait_event
from edge_controller.config.files import Fingerprint, fingerprint, load
from edge_controller.config.schema import ConfigError, ControllerConfig

_LOG = structlog.get_logger(__name__)


class ConfigWatcher:
    """Calls `on_config` with each new valid configuration, `on_rejected` on a bad one."""

    def __init__(
        self,
        path: Path,
        *,
        on_config: Callable[[ControllerConfig], Awaitable[None]],
        on_rejected: Callable[[ConfigError], None],
        drop_ins: Path | None = None,
        environ: Mapping[str, str] | None = None,
        interval_s: float = 1.0,
    ) -> None:
        """Watch `path` (and its drop-ins); nothing happens before `run`."""
        self._path = path
        self._drop_ins = drop_ins
        self._environ = environ
        self._on_config = on_config
        self._on_rejected = on_rejected
        self._interval_s = interval_s
        self._seen: Fingerprint = fingerprint(path, drop_ins)
        self._forced = asyncio.Event()

    def reload(self) -> None:
        """Re-read the files now, changed or not (SIGHUP)."""
        self._forced.set()

    async def run(self) -> None:
        """Poll until cancelled."""
        while True:
            await wait_event(self._forced, self._interval_s)
            forced = self._forced.is_set()
            self._forced.clear()
            now = fingerprint(self._path, self._drop_ins)
            if now == self._seen and not forced:
                continue
            if not forced:
                # Let a save in several writes finish before reading it.
                await asyncio.sleep(self._interval_s / 4)
                if fingerprint(self._path, self._drop_ins) != now:
                    continue
            self._seen = now
            await self.check(reason="signal" if forced else "edit")

    async def check(self, reason: str = "edit") -> None:
        """Read the files and hand the result on (one attempt, no retry)."""
        _LOG.info("config_reading", file=str(self._path), reason=reason)
        try:
            config = load(self._path, environ=self._environ, drop_ins=self._drop_ins)
        except ConfigError as error:
            self._on_rejected(error)
            return
        except Exception as error:  # a validator bug must not end live edits for good
            _LOG.exception("config_read_failed", file=str(self._path))
            self._on_rejected(ConfigError(self._path.name, [f"cannot be read: {error!r}"]))
            return
        await self._on_config(config)
