"""Watching the faults file while the simulator runs.

The file is polled (inode, size and mtime, as `config_watch.py` polls the
controller's configuration: an editor's save-by-rename counts, and no dependency is
needed), every `interval_s` (0.2 s by default: a stat per poll costs nothing, and a
test bench wants faults to switch promptly). A change is read once the file stopped
changing for one poll, so a save in several writes is not read half-way. A good file
replaces the faults that came from the file (`FaultBook.replace_source`); a bad one
is logged (`faults_file_rejected`, each problem naming the file and the key) and the
last good set stays in force. A removed file means no faults from the file.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import structlog

from edge_controller.servers.sim.faults import FaultBook
from edge_controller.servers.sim.faults_file import (
    FaultSet,
    FaultsFileError,
    describe,
    diff_faults,
    read_faults,
)
from edge_controller.servers.sim.site import SiteSpec

_LOG = structlog.get_logger("edge_controller.servers.sim")
SOURCE = "file"
"""The fault book's name for the faults that come from the faults file."""
DEFAULT_INTERVAL_S = 0.2

Fingerprint = tuple[int, int, int]


def _fingerprint(path: Path) -> Fingerprint:
    try:
        stat = path.stat()
    except OSError:
        return (-1, -1, -1)
    return (stat.st_ino, stat.st_size, stat.st_mtime_ns)


class FaultsFileWatcher:
    """Keeps the fault book's "file" faults equal to what the faults file lists.

    `load()` reads the file once (at start: a bad file is bad input, raised); `run()`
    polls until cancelled. `applied` and `rejected` count the reads that changed the
    faults in force and the reads refused.
    """

    def __init__(
        self,
        path: Path,
        site: SiteSpec,
        book: FaultBook,
        *,
        interval_s: float = DEFAULT_INTERVAL_S,
    ) -> None:
        """Watch `path` for `site`'s faults; nothing is read before `load` or `run`."""
        self.path = path
        self._site = site
        self._book = book
        self._interval_s = interval_s
        self._seen: Fingerprint = (-2, -2, -2)
        self.applied = 0
        self.rejected = 0

    def load(self) -> None:
        """Read the file now and put its faults in force.

        Raises:
            FaultsFileError: the file is bad (nothing changes in the book).
        """
        self._seen = _fingerprint(self.path)
        self._apply(read_faults(self.path, self._site), reason="start")

    async def run(self) -> None:
        """Poll the file until cancelled."""
        while True:
            await asyncio.sleep(self._interval_s)
            now = _fingerprint(self.path)
            if now == self._seen:
                continue
            await asyncio.sleep(self._interval_s)  # let a save in several writes finish
            if _fingerprint(self.path) != now:
                continue
            self._seen = now
            self.check()

    def check(self) -> None:
        """Read the file and apply it, or log why not (the faults in force stay)."""
        kept = len(self._book.of_source(SOURCE))
        try:
            faults = read_faults(self.path, self._site)
        except FaultsFileError as error:
            self.rejected += 1
            _LOG.error(
                "faults_file_rejected",
                problems=error.lines,
                kept=f"the last good set ({kept} faults)",
            )
            return
        except Exception as error:  # a validator bug must not end the watching for good
            self.rejected += 1
            _LOG.exception("faults_file_read_failed", file=str(self.path), error=repr(error))
            return
        self._apply(faults, reason="edit")

    def _apply(self, faults: FaultSet, *, reason: str) -> None:
        diff = diff_faults(tuple(self._book.of_source(SOURCE)), faults)
        self._book.replace_source(SOURCE, faults)
        if diff.empty and reason != "start":
            return
        self.applied += 1
        _LOG.info(
            "faults_file_applied",
            file=str(self.path),
            reason=reason,
            added=[describe(f) for f in diff.added],
            removed=[describe(f) for f in diff.removed],
            in_force=len(faults),
        )
