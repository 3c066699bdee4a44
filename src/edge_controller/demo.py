"""`edge-controller demo`: the embedded default site, driven end to end for a minute.

It starts the simulator on a free loopback port, talks to it with the real
`frequenz-client-microgrid` client — exactly as the controller will — runs a short
built-in power schedule on every battery inverter (discharge, rest, charge, rest),
prints what happens, and ends with a summary. Later issues replace the built-in
schedule with dispatches executed by the controller's actors.

The schedule itself is pure (`schedule_fraction`); this module is the shell around it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from importlib import resources
from pathlib import Path

from frequenz.client.base.retry import LinearBackoff
from frequenz.client.microgrid import ApiClientError, MicrogridApiClient
from frequenz.client.microgrid.component import (
    Battery,
    BatteryInverter,
    Component,
    ComponentConnection,
    GridConnectionPoint,
    Meter,
)
from frequenz.client.microgrid.metrics import Metric

from edge_controller.power.bounds import Range, allows, hull
from edge_controller.sim.model import floor_to_resolution
from edge_controller.sim.server import SimulatorServer
from edge_controller.sim.site import load_site

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from frequenz.client.common.microgrid.components import ComponentId

COMMAND_LIFETIME = timedelta(seconds=15)
"""Commands are renewed every `RESEND_S` and would lapse to 0 W 15 s after the last."""
RESEND_S = 5.0
REPORT_S = 5.0


@dataclass(frozen=True, slots=True)
class Phase:
    """One step of the built-in schedule: a share of each inverter's bound."""

    name: str
    until_fraction: float
    """Ends at this fraction of the demo's duration."""
    power_fraction: float
    """Fraction of the discharge (< 0) or charge (> 0) bound; 0 rests."""


SCHEDULE = (
    Phase("discharge", 0.30, -0.6),
    Phase("rest", 0.45, 0.0),
    Phase("charge", 0.80, 0.5),
    Phase("rest", 1.0, 0.0),
)


def schedule_fraction(elapsed_fraction: float) -> Phase:
    """Return the phase in force at `elapsed_fraction` (0–1) of the demo."""
    for phase in SCHEDULE:
        if elapsed_fraction < phase.until_fraction:
            return phase
    return SCHEDULE[-1]


def target_power(bounds: tuple[Range, ...], fraction: float, resolution_w: float) -> float:
    """Return `fraction` of the discharge or charge bound, floored and allowed.

    A target in an exclusion band, or beyond what the bounds allow, becomes 0 W —
    the demo never asks for something the site would refuse.
    """
    if fraction == 0.0 or not bounds:
        return 0.0
    span = hull(bounds)
    edge = span.lower if fraction < 0 else span.upper
    power = floor_to_resolution(edge * abs(fraction), resolution_w)
    return power if allows(bounds, power) else 0.0


@dataclass
class _Latest:
    soc_pct: dict[int, float] = field(default_factory=dict)
    power_w: dict[int, float] = field(default_factory=dict)
    bounds: dict[int, tuple[Range, ...]] = field(default_factory=dict)


@dataclass
class _Tally:
    sent: int = 0
    accepted: int = 0
    refused: int = 0
    refusals: list[str] = field(default_factory=list)


async def run_demo(site_path: Path | None, duration_s: float, speed: float) -> int:
    """Run the demo; return the exit code (0 when it ran to the end)."""
    if site_path is None:
        resource = resources.files("edge_controller.sim") / "sites" / "sim-site.toml"
        with resources.as_file(resource) as path:
            site = load_site(path)
    else:
        site = load_site(site_path)
    async with SimulatorServer(site, "127.0.0.1:0", speed=speed) as server:
        print(f"listening address={server.address}", flush=True)
        print(
            f"demo: site {site.microgrid.name!r} ({len(site.components)} components), "
            f"physics x{speed:g}, {duration_s:g} s",
            flush=True,
        )
        client = MicrogridApiClient(server.url, retry_strategy=LinearBackoff(interval=0.5))
        try:
            await _drive(client, server, duration_s)
        finally:
            await client.__aexit__(None, None, None)
    return 0


async def _drive(client: MicrogridApiClient, server: SimulatorServer, duration_s: float) -> None:
    components = list(await client.list_components())
    connections = list(await client.list_connections())
    inverters = {c.id: c for c in components if isinstance(c, BatteryInverter)}
    batteries = {c.id: c for c in components if isinstance(c, Battery)}
    battery_of = {
        conn.source: conn.destination for conn in connections if conn.destination in batteries
    }
    grid_meter = _grid_meter(components, connections)
    latest = _Latest()
    watchers = [
        asyncio.create_task(_watch(client, cid, [Metric.BATTERY_SOC_PCT, Metric.DC_POWER], latest))
        for cid in batteries
    ] + [
        asyncio.create_task(_watch(client, cid, [Metric.AC_POWER_ACTIVE], latest))
        for cid in [*inverters, *([grid_meter] if grid_meter is not None else [])]
    ]
    resolution = {
        int(cid): server.model.spec(int(cid)).details.resolution_w  # type: ignore[union-attr]
        for cid in inverters
    }
    await _wait_for(latest, [int(c) for c in batteries], timeout_s=5.0)
    soc_start = dict(latest.soc_pct)
    tally = _Tally()
    started = time.monotonic()
    next_send = next_report = 0.0
    refusal_shown = False
    last_phase: Phase | None = None
    try:
        while (elapsed := time.monotonic() - started) < duration_s:
            phase = schedule_fraction(elapsed / duration_s)
            if elapsed >= next_send or phase is not last_phase:
                last_phase = phase
                next_send = elapsed + RESEND_S
                for cid in inverters:
                    bounds = latest.bounds.get(int(cid), ())
                    power = target_power(bounds, phase.power_fraction, resolution[int(cid)])
                    await _command(client, int(cid), power, tally)
                if not refusal_shown and phase.name == "charge":
                    refusal_shown = True
                    first = int(next(iter(inverters)))
                    over = hull(latest.bounds.get(first, ())).upper * 2 + 1000
                    print(
                        f"  (asking inverter {first} for {over / 1000:.0f} kW, beyond its bounds)"
                    )
                    await _command(client, first, over, tally)
            if elapsed >= next_report:
                next_report = elapsed + REPORT_S
                _report(elapsed, phase, latest, grid_meter, battery_of, inverters)
            await asyncio.sleep(0.2)
        for cid in inverters:
            await _command(client, int(cid), 0.0, tally)
        await asyncio.sleep(0.6)
    finally:
        for watcher in watchers:
            watcher.cancel()
        for watcher in watchers:
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
    _summary(duration_s, tally, soc_start, latest, batteries, server)


def _grid_meter(
    components: Sequence[Component], connections: Sequence[ComponentConnection]
) -> ComponentId | None:
    grid_ids = {c.id for c in components if isinstance(c, GridConnectionPoint)}
    meter_ids = {c.id for c in components if isinstance(c, Meter)}
    for conn in connections:
        if conn.source in grid_ids and conn.destination in meter_ids:
            return conn.destination
    return None


async def _watch(
    client: MicrogridApiClient, cid: ComponentId, metrics: list[Metric], latest: _Latest
) -> None:
    receiver = client.receive_component_data_samples_stream(cid, metrics)
    async for samples in receiver:
        for sample in samples.metric_samples:
            value = sample.as_single_value()
            if value is None:
                continue
            if sample.metric == Metric.BATTERY_SOC_PCT:
                latest.soc_pct[int(cid)] = value
            elif sample.metric in (Metric.DC_POWER, Metric.AC_POWER_ACTIVE):
                latest.power_w[int(cid)] = value
                if sample.metric == Metric.AC_POWER_ACTIVE and sample.bounds:
                    latest.bounds[int(cid)] = tuple(
                        Range(
                            b.lower if b.lower is not None else float("-inf"),
                            b.upper if b.upper is not None else float("inf"),
                        )
                        for b in sample.bounds
                    )


async def _wait_for(latest: _Latest, battery_ids: list[int], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    # Polled: telemetry lands in a plain dict from several watcher tasks.
    while time.monotonic() < deadline and not all(  # noqa: ASYNC110
        b in latest.soc_pct for b in battery_ids
    ):
        await asyncio.sleep(0.05)


async def _command(client: MicrogridApiClient, cid: int, power_w: float, tally: _Tally) -> None:
    tally.sent += 1
    try:
        async with asyncio.timeout(5.0):
            await client.set_component_power_active(
                ComponentId(cid), power_w, request_lifetime=COMMAND_LIFETIME
            )
        tally.accepted += 1
    except (ApiClientError, TimeoutError) as error:
        tally.refused += 1
        grpc_error = getattr(error, "grpc_error", None)
        reason = grpc_error.details() if grpc_error is not None else str(error)
        tally.refusals.append(f"inverter {cid} {power_w / 1000:.1f} kW: {reason}")
        print(f"  refused: inverter {cid} {power_w / 1000:.1f} kW ({type(error).__name__})")


def _report(
    elapsed: float,
    phase: Phase,
    latest: _Latest,
    grid_meter: ComponentId | None,
    battery_of: dict[ComponentId, ComponentId],
    inverters: dict[ComponentId, BatteryInverter],
) -> None:
    grid = latest.power_w.get(int(grid_meter)) if grid_meter is not None else None
    grid_text = f"{grid / 1000:+8.1f} kW" if grid is not None else "     n/a"
    parts = []
    for cid, inverter in inverters.items():
        battery = battery_of.get(cid)
        soc = latest.soc_pct.get(int(battery)) if battery is not None else None
        power = latest.power_w.get(int(cid), 0.0)
        soc_text = f"{soc:5.1f}%" if soc is not None else "  n/a"
        parts.append(f"{inverter.name or cid}: {power / 1000:+7.1f} kW SoC {soc_text}")
    print(
        f"t=+{elapsed:4.0f}s {phase.name:<9} grid {grid_text} | " + " | ".join(parts),
        flush=True,
    )


def _summary(
    duration_s: float,
    tally: _Tally,
    soc_start: dict[int, float],
    latest: _Latest,
    batteries: Mapping[ComponentId, Battery],
    server: SimulatorServer,
) -> None:
    violations = server.command_log.violations()
    print("\nsummary")
    print(
        f"  ran {duration_s:g} s; commands sent {tally.sent}, accepted {tally.accepted}, "
        f"refused {tally.refused}"
    )
    for refusal in tally.refusals:
        print(f"  refused as expected: {refusal}")
    for cid, battery in batteries.items():
        start, end = soc_start.get(int(cid)), latest.soc_pct.get(int(cid))
        if start is not None and end is not None:
            print(f"  {battery.name or cid}: SoC {start:.2f}% -> {end:.2f}% ({end - start:+.2f})")
    print(
        f"  simulator: {server.command_log.total} accepted commands logged, "
        f"{len(violations)} outside their bounds"
    )
