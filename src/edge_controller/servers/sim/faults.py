"""Fault windows: which fault is active on which component, now.

The site file gives windows in seconds after the simulator starts; tests add and
remove faults at run time through the same book (the in-process handle), so faults
come and go while clients are connected; a watched faults file (`faults_file.py`)
replaces its own set (`replace_source`) on every change, leaving the others alone.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from edge_controller.servers.sim.fault_spec import FaultKind, FaultSpec


@dataclass(frozen=True, slots=True)
class ActiveWindow:
    """A fault pinned to absolute times: active in `[start, until)`."""

    spec: FaultSpec
    start: datetime
    until: datetime | None
    source: str = "site"
    """Where it came from: "site" (the site file), "inject" (in-process), "file"."""

    def active_at(self, now: datetime) -> bool:
        """Tell whether the fault is in effect at `now`."""
        return self.start <= now and (self.until is None or now < self.until)


class FaultBook:
    """The faults of one simulator run; safe to change from another thread."""

    def __init__(self, origin: datetime, specs: Iterable[FaultSpec] = ()) -> None:
        """Pin the site file's relative windows to `origin` (the server's start)."""
        self._origin = origin
        self._lock = threading.Lock()
        self._windows: list[ActiveWindow] = [self._pin(spec) for spec in specs]

    @property
    def origin(self) -> datetime:
        """The instant the windows count from (the simulator's start)."""
        return self._origin

    def _pin(self, spec: FaultSpec, source: str = "site") -> ActiveWindow:
        start = self._origin + timedelta(seconds=spec.start_s)
        until = (
            None if spec.until_s == float("inf") else self._origin + timedelta(seconds=spec.until_s)
        )
        return ActiveWindow(spec, start, until, source)

    def replace_source(self, source: str, specs: Iterable[FaultSpec]) -> None:
        """Make `specs` (windows relative to the origin) the faults of `source`.

        The faults of other sources stay as they are.
        """
        pinned = [self._pin(spec, source) for spec in specs]
        with self._lock:
            self._windows = [w for w in self._windows if w.source != source] + pinned

    def of_source(self, source: str) -> list[FaultSpec]:
        """Return the faults that `source` put in the book (in force or not)."""
        with self._lock:
            return [w.spec for w in self._windows if w.source == source]

    def inject(
        self,
        component_id: int,
        kind: FaultKind,
        *,
        now: datetime,
        duration: timedelta | None = None,
        **params: object,
    ) -> ActiveWindow:
        """Start a fault at `now`, for `duration` (default: until cleared).

        `params` are the fault's options as in the site file (`delay_s`, `status`,
        `error_code`, `metrics`).
        """
        spec = replace(FaultSpec(component_id=component_id, kind=kind), **params)  # type: ignore[arg-type]
        window = ActiveWindow(spec, now, None if duration is None else now + duration, "inject")
        with self._lock:
            self._windows.append(window)
        return window

    def clear(self, component_id: int | None = None, kind: FaultKind | None = None) -> int:
        """Remove faults (all, or those of one component and/or kind); return how many."""
        with self._lock:
            keep = [
                w
                for w in self._windows
                if not (
                    (component_id is None or w.spec.component_id == component_id)
                    and (kind is None or w.spec.kind is kind)
                )
            ]
            removed = len(self._windows) - len(keep)
            self._windows = keep
        return removed

    def active(
        self, now: datetime, component_id: int | None = None, kind: FaultKind | None = None
    ) -> list[FaultSpec]:
        """Return the faults in effect at `now`, optionally of one component and kind."""
        if not self._windows:  # the common case, checked per component per tick
            return []
        with self._lock:
            windows = list(self._windows)
        return [
            w.spec
            for w in windows
            if w.active_at(now)
            and (component_id is None or w.spec.component_id == component_id)
            and (kind is None or w.spec.kind is kind)
        ]

    def first(self, now: datetime, component_id: int, kind: FaultKind) -> FaultSpec | None:
        """Return one fault of `kind` in effect on the component at `now`, if any."""
        found = self.active(now, component_id, kind)
        return found[0] if found else None
