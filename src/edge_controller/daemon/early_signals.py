"""SIGHUP from the first instant of `edge-controller run`: remembered, never fatal.

SIGHUP's default action ends the process. The daemon handles it on its event loop
(re-read the configuration), but that handler exists only once the heavy imports
(the Frequenz stack, gRPC, numpy), the configuration and the metrics server are done:
about a second after start, more on a slow machine. A `systemctl reload` (or a
`kill -HUP` by a script that edited the file) in that second killed the daemon.

`EarlySighup.install()` runs first thing in the command line's `run`, before anything
slow: it only counts the signals (a Python signal handler runs between bytecodes, so
it must not log or take locks). The daemon, once its own handler replaces this one,
logs what was counted and re-reads the configuration once, so an edit made just
before the signal is not missed. Standard library only, so importing it costs
nothing.
"""

from __future__ import annotations

import signal
from types import FrameType


class EarlySighup:
    """Counts the SIGHUPs that arrive before the daemon can act on them."""

    def __init__(self) -> None:
        """Count nothing yet; `install` starts counting."""
        self.received = 0

    @classmethod
    def install(cls) -> EarlySighup:
        """Handle SIGHUP from now on by counting it; return the counter."""
        early = cls()
        signal.signal(signal.SIGHUP, early._on_signal)
        return early

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.received += 1


__all__ = ["EarlySighup"]
