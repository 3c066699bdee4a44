"""A Microgrid API outage in the logs: one line per component per interval, not per attempt.

The simulator (manual clock) stops while a `MicrogridConnection` streams from it and a
fresh one starts on the same address. The connection retries every 50 ms; the test
waits for attempts to pile up (conditions, never a fixed time) and counts the lines:
ours (structlog) and the client library's (standard logging, at INFO and up).
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Callable, MutableMapping, Sequence
from datetime import timedelta
from typing import Any

import pytest
import structlog

from edge_controller.common.clock import ManualClock
from edge_controller.microgrid import MicrogridConnection
from edge_controller.servers.sim.server import SimulatorServer
from edge_controller.servers.sim.site import SiteSpec
from tests import patience

COMPONENTS = {11, 21, 31, 41, 10, 20, 30, 40, 50, 80, 2}
"""Every streamed component of the example site: batteries, inverters, the PV inverter,
the EV charger, the grid meter."""
INTERVAL = timedelta(seconds=10)


async def until(condition: Callable[[], bool], what: str, sim: SimulatorServer | None) -> None:
    """Tick `sim` (if running) and poll `condition` every 10 ms, up to the patience."""
    tick = sim.service.tick if sim is not None else None
    await patience.until(condition, what, poll_s=0.01, tick=tick)


async def started(
    connection: MicrogridConnection, clock: ManualClock, sim: SimulatorServer, what: str
) -> None:
    """Start `connection` and wait until every component's first sample arrived."""
    await connection.start()
    cache = connection.cache
    await until(lambda: all(cache.age(c, clock.now()) is not None for c in COMPONENTS), what, sim)


def events(logs: Sequence[MutableMapping[str, Any]], name: str) -> list[MutableMapping[str, Any]]:
    return [e for e in logs if e["event"] == name]


def per_component(logs: Sequence[MutableMapping[str, Any]], name: str) -> dict[int, int]:
    counts: dict[int, int] = {}
    for entry in events(logs, name):
        counts[entry["component_id"]] = counts.get(entry["component_id"], 0) + 1
    return counts


async def test_an_outage_is_one_line_per_component_per_interval_with_a_count(
    example_site: SiteSpec, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    sim = SimulatorServer(example_site, "127.0.0.1:0", clock=clock)
    await sim.start()
    restarted: SimulatorServer | None = None
    with structlog.testing.capture_logs() as logs:
        connection = MicrogridConnection(
            sim.url,
            clock=clock,
            reconnect_interval_s=0.05,
            reconnect_jitter_s=0.0,
            retry_log_interval=INTERVAL,
        )
        try:
            await started(connection, clock, sim, "first telemetry")
            address = sim.address
            await sim.stop(grace_s=0)
            attempts = connection.retry_attempts
            await until(
                lambda: all(attempts.get(c, 0) >= 10 for c in COMPONENTS), "10 attempts", None
            )
            # The clock did not move: one line per component, however many attempts.
            assert per_component(logs, "stream_retrying") == dict.fromkeys(COMPONENTS, 1)
            first = events(logs, "stream_retrying")[0]
            assert first["attempts"] == 1
            assert first["error"].startswith("UNAVAILABLE")

            clock.advance(INTERVAL)
            before = dict(attempts)
            await until(
                lambda: all(attempts[c] > before[c] for c in COMPONENTS),
                "an attempt after the interval",
                None,
            )
            assert per_component(logs, "stream_retrying") == dict.fromkeys(COMPONENTS, 2)
            first_lines = events(logs, "stream_retrying")[: len(COMPONENTS)]
            since = {e["component_id"]: e["since"] for e in first_lines}
            for entry in events(logs, "stream_retrying")[len(COMPONENTS) :]:
                assert entry["attempts"] >= 11
                assert entry["suppressed"] == entry["attempts"] - 2
                assert entry["since"] == since[entry["component_id"]]

            restarted = SimulatorServer(example_site, address, clock=clock)
            await restarted.start()
            await until(
                lambda: per_component(logs, "stream_recovered") == dict.fromkeys(COMPONENTS, 1),
                "every stream recovered",
                restarted,
            )
            for entry in events(logs, "stream_recovered"):
                assert entry["attempts"] == attempts[entry["component_id"]]
        finally:
            await connection.stop()
            if restarted is not None:
                await restarted.stop(grace_s=0)
            else:
                await sim.stop(grace_s=0)
    assert per_component(logs, "stream_retrying") == dict.fromkeys(COMPONENTS, 2)
    library = [
        r
        for r in caplog.records
        if r.name.startswith("frequenz.client") and r.levelno >= logging.INFO
    ]
    assert library == [], [r.getMessage()[:120] for r in library]
    gc.collect()  # a task left with an unretrieved error reports it when collected
    never_retrieved = [r for r in caplog.records if "never retrieved" in r.getMessage()]
    assert never_retrieved == []
