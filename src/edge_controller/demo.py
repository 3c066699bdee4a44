"""`edge-controller demo`: the embedded default site, driven end to end for a minute.

It starts the simulator on a free loopback port and runs the controller's own pieces
against it over the wire — the `MicrogridConnection` (real `frequenz-client-microgrid`
client) and the `PowerDistributingActor` — with a short built-in schedule of site
targets (discharge, rest, charge, rest). It prints the grid power and each battery's
power and SoC every few seconds, so the balancing is visible (fullest batteries
discharge first), shows one request refused as out of bounds, and ends with a
summary. Later issues replace the built-in schedule with dispatches.

The schedule itself is pure (`phase_at`); this module is the shell around it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from frequenz.channels import BroadcastChannel, BroadcastSender, Receiver
from frequenz.quantities import Power

from edge_controller.actors.power_distributing import PowerDistributingActor
from edge_controller.messages import OutOfBounds, PowerRequest, Result
from edge_controller.microgrid.connection import MicrogridConnection
from edge_controller.sim.server import SimulatorServer
from edge_controller.sim.site import InverterSpec, SiteSpec, load_site

REPORT_S = 5.0
NAMESPACE = "demo"


@dataclass(frozen=True, slots=True)
class Phase:
    """One step of the built-in schedule: a site target for all batteries."""

    name: str
    until_fraction: float
    """Ends at this fraction of the demo's duration."""
    power_kw: float
    """Passive sign convention: − discharges, + charges, 0 rests."""


SCHEDULE = (
    Phase("discharge", 0.30, -600.0),
    Phase("rest", 0.45, 0.0),
    Phase("charge", 0.80, 500.0),
    Phase("rest", 1.0, 0.0),
)


def phase_at(elapsed_fraction: float) -> Phase:
    """Return the phase in force at `elapsed_fraction` (0–1) of the demo."""
    for phase in SCHEDULE:
        if elapsed_fraction < phase.until_fraction:
            return phase
    return SCHEDULE[-1]


@dataclass
class _Tally:
    results: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def add(self, result: Result) -> None:
        kind = type(result).__name__
        self.results[kind] = self.results.get(kind, 0) + 1


def _site(site_path: Path | None) -> SiteSpec:
    if site_path is not None:
        return load_site(site_path)
    resource = resources.files("edge_controller.sim") / "sites" / "sim-site.toml"
    with resources.as_file(resource) as path:
        return load_site(path)


async def run_demo(site_path: Path | None, duration_s: float, speed: float) -> int:
    """Run the demo; return the exit code (0 when it ran to the end)."""
    site = _site(site_path)
    resolutions = {
        c.id: c.details.resolution_w for c in site.components if isinstance(c.details, InverterSpec)
    }
    async with SimulatorServer(site, "127.0.0.1:0", speed=speed) as server:
        print(f"listening address={server.address}", flush=True)
        print(
            f"demo: site {site.microgrid.name!r} ({len(site.components)} components), "
            f"physics x{speed:g}, {duration_s:g} s; targets go through the "
            "PowerDistributingActor",
            flush=True,
        )
        async with MicrogridConnection(server.url) as connection:
            sender, receiver = BroadcastChannel[PowerRequest](name="demo_requests")
            actor = PowerDistributingActor(receiver, connection, resolutions_w=resolutions)
            results = actor.new_result_receiver(NAMESPACE)
            actor.start()
            try:
                await _drive(server, connection, sender, results, duration_s)
            finally:
                await actor.stop()
    return 0


async def _drive(
    server: SimulatorServer,
    connection: MicrogridConnection,
    requests: BroadcastSender[PowerRequest],
    results: Receiver[Result],
    duration_s: float,
) -> None:
    batteries = frozenset(connection.pairs.battery_ids)
    await _wait_for_telemetry(connection, batteries)
    soc_start = {b: server.model.soc_pct(b) for b in batteries}
    tally = _Tally()
    collector = asyncio.create_task(_collect(results, tally))
    started = time.monotonic()
    last_phase: Phase | None = None
    next_report = 0.0
    refusal_shown = False
    phase_start = 0.0
    try:
        while (elapsed := time.monotonic() - started) < duration_s:
            phase = phase_at(elapsed / duration_s)
            if phase is not last_phase:
                last_phase = phase
                phase_start = elapsed
                await _request(requests, phase.power_kw, batteries)
                print(f"  -> request {phase.power_kw:+.0f} kW on batteries {sorted(batteries)}")
            if not refusal_shown and phase.name == "charge" and elapsed > phase_start + 1.0:
                refusal_shown = True
                print("  -> request +5000 kW with adjust_power=False (beyond the bounds)")
                await _request(requests, 5_000.0, batteries, adjust_power=False)
            if elapsed >= next_report:
                next_report = elapsed + REPORT_S
                _report(elapsed, phase, server, connection)
            await asyncio.sleep(0.1)
        await _request(requests, 0.0, batteries)
        await asyncio.sleep(0.5)
    finally:
        collector.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await collector
    _summary(duration_s, tally, soc_start, server)


async def _request(
    requests: BroadcastSender[PowerRequest],
    kw: float,
    batteries: frozenset[int],
    *,
    adjust_power: bool = True,
) -> None:
    await requests.send(
        PowerRequest(NAMESPACE, Power.from_kilowatts(kw), batteries, adjust_power=adjust_power)
    )


async def _collect(results: Receiver[Result], tally: _Tally) -> None:
    async for result in results:
        tally.add(result)
        if isinstance(result, OutOfBounds):
            bounds = result.bounds
            note = (
                f"OutOfBounds for {result.request.power}: the batteries take "
                f"{bounds.inclusion_lower} .. {bounds.inclusion_upper}"
            )
            tally.notes.append(note)
            print(f"  <- {note}")
        elif type(result).__name__ != "Success":
            print(f"  <- {type(result).__name__}: {result}")


async def _wait_for_telemetry(connection: MicrogridConnection, batteries: frozenset[int]) -> None:
    deadline = time.monotonic() + 10.0
    while time.monotonic() < deadline:
        if all(connection.cache.last_battery(b) is not None for b in batteries):
            return
        await asyncio.sleep(0.05)


def _report(
    elapsed: float, phase: Phase, server: SimulatorServer, connection: MicrogridConnection
) -> None:
    model = server.model
    grid = connection.grid_meter_id
    grid_text = f"{model.ac_power_w(grid) / 1000:+8.1f} kW" if grid is not None else "n/a"
    parts = []
    for pair in connection.pairs.pairs:
        soc = sum(model.soc_pct(b) for b in pair.battery_ids) / len(pair.battery_ids)
        power = model.ac_power_w(pair.inverter_id)
        parts.append(
            f"{model.spec(pair.inverter_id).name}: {power / 1000:+7.1f} kW SoC {soc:5.1f}%"
        )
    print(f"t=+{elapsed:4.0f}s {phase.name:<9} grid {grid_text} | " + " | ".join(parts), flush=True)


def _spread(socs: list[float]) -> float:
    return max(socs) - min(socs) if socs else 0.0


def _summary(
    duration_s: float, tally: _Tally, soc_start: dict[int, float], server: SimulatorServer
) -> None:
    violations = server.command_log.violations()
    soc_end = {b: server.model.soc_pct(b) for b in soc_start}
    print("\nsummary")
    counts = ", ".join(f"{kind} {count}" for kind, count in sorted(tally.results.items()))
    print(f"  ran {duration_s:g} s; results: {counts or 'none'}")
    for note in tally.notes:
        print(f"  refused as expected: {note}")
    for battery_id in sorted(soc_start):
        name = server.model.spec(battery_id).name
        start, end = soc_start[battery_id], soc_end[battery_id]
        print(f"  {name}: SoC {start:.2f}% -> {end:.2f}% ({end - start:+.2f})")
    print(
        f"  SoC spread {_spread(list(soc_start.values())):.2f} pp -> "
        f"{_spread(list(soc_end.values())):.2f} pp"
    )
    print(
        f"  simulator: {server.command_log.total} accepted commands logged, "
        f"{len(violations)} outside their bounds"
    )


__all__ = ["SCHEDULE", "Phase", "phase_at", "run_demo"]
