"""`edge-controller demo`: the whole chain on the embedded default site, for a minute.

It starts, all on free loopback ports, the simulator (Microgrid API), the local
Dispatch API service (a temporary database and key) and the controller graph
(DispatchBroadcasting → BatteryPowerActor → PowerDistributingActor). It then creates
a short dispatch schedule through the real `frequenz-client-dispatch` client —
discharge, rest, charge, rest, plus one dispatch with a malformed payload that the
controller rejects while the others run — prints the grid power and each battery's
power and SoC every few seconds (the fullest batteries discharge first), and ends
with a summary.

The schedule itself is pure (`phase_at`); this module is the shell around it.
"""

from __future__ import annotations

import asyncio
import math
import secrets
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path

from frequenz.client.common.microgrid import MicrogridId
from frequenz.client.dispatch import DispatchApiClient
from frequenz.client.dispatch.types import TargetIds

from edge_controller.app import Controller
from edge_controller.config import KEY_ENVIRONMENT_VARIABLE, parse_config
from edge_controller.dispatch_service.server import DispatchServer
from edge_controller.microgrid.connection import MicrogridConnection
from edge_controller.sim.server import SimulatorServer
from edge_controller.sim.site import InverterSpec, SiteSpec, load_site

REPORT_S = 5.0
DISPATCH_TYPE = "BATTERY_POWER"


@dataclass(frozen=True, slots=True)
class Phase:
    """One dispatch of the built-in schedule: a target for all batteries."""

    name: str
    from_fraction: float
    """Starts at this fraction of the demo's duration."""
    until_fraction: float
    """Ends at this fraction of the demo's duration."""
    power_kw: float
    """Passive sign convention: − discharges, + charges, 0 rests."""


SCHEDULE = (
    Phase("discharge", 0.0, 0.30, -600.0),
    Phase("rest", 0.30, 0.45, 0.0),
    Phase("charge", 0.45, 0.80, 500.0),
    Phase("rest", 0.80, 1.0, 0.0),
)


def phase_at(elapsed_fraction: float) -> Phase:
    """Return the phase in force at `elapsed_fraction` (0–1) of the demo."""
    for phase in SCHEDULE:
        if elapsed_fraction < phase.until_fraction:
            return phase
    return SCHEDULE[-1]


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
        str(c.id): c.details.resolution_w
        for c in site.components
        if isinstance(c.details, InverterSpec)
    }
    key = secrets.token_hex(16)
    with tempfile.TemporaryDirectory(prefix="edge-controller-demo-") as state:
        async with (
            SimulatorServer(site, "127.0.0.1:0", speed=speed) as sim,
            DispatchServer(Path(state) / "dispatches.db", keys=frozenset({key})) as dispatch,
        ):
            print(f"listening address={sim.address}", flush=True)
            print(
                f"demo: site {site.microgrid.name!r} ({len(site.components)} components), "
                f"physics x{speed:g}, {duration_s:g} s\n"
                f"  simulator (Microgrid API) {sim.url}\n"
                f"  dispatch service          {dispatch.url}\n"
                "  controller: dispatches -> BatteryPowerActor -> PowerDistributingActor\n"
                f"  send your own while it runs (demo-only key {key}):\n"
                f"    dispatch-cli --url '{dispatch.url}' --auth-key {key} create "
                f"{site.microgrid.id} BATTERY_POWER 31 'in 5 seconds' 30s "
                """-p '{"power_w": -50000}'""",
                flush=True,
            )
            config = parse_config(
                {
                    "microgrid": {"url": sim.url},
                    "dispatch": {"url": dispatch.url, "microgrid_id": site.microgrid.id},
                    "power_distribution": {"resolutions": resolutions},
                    "use_cases": [{"kind": "battery_power", "dispatch_types": [DISPATCH_TYPE]}],
                },
                "demo",
                environ={KEY_ENVIRONMENT_VARIABLE: key},
            )
            async with Controller(config) as controller:
                client = DispatchApiClient(server_url=dispatch.url, auth_key=key)
                await _drive(sim, controller, client, site.microgrid.id, duration_s)
    return 0


async def _drive(
    sim: SimulatorServer,
    controller: Controller,
    client: DispatchApiClient,
    microgrid_id: int,
    duration_s: float,
) -> None:
    batteries = sorted(controller.connection.pairs.battery_ids)
    soc_start = {b: sim.model.soc_pct(b) for b in batteries}
    started = datetime.now(UTC)
    created = 0
    for phase in SCHEDULE:
        if phase.power_kw == 0.0:
            continue
        begin = started + timedelta(seconds=math.ceil(phase.from_fraction * duration_s) + 1)
        length = max(1, round((phase.until_fraction - phase.from_fraction) * duration_s))
        dispatch = await client.create(
            microgrid_id=MicrogridId(microgrid_id),
            type=DISPATCH_TYPE,
            start_time=begin,
            duration=timedelta(seconds=length),
            target=TargetIds(*batteries),
            payload={"power_w": f"{phase.power_kw:g} kW"},
        )
        created += 1
        print(
            f"  dispatch {int(dispatch.id)}: {phase.name} {phase.power_kw:+.0f} kW on batteries "
            f"{batteries} at +{(begin - started).total_seconds():.0f}s for {length} s"
        )
    bad = await client.create(
        microgrid_id=MicrogridId(microgrid_id),
        type=DISPATCH_TYPE,
        start_time="NOW",
        duration=timedelta(seconds=max(1, round(duration_s / 2))),
        target=TargetIds(batteries[0]),
        payload={"power_w": "a lot"},
    )
    created += 1
    print(f"  dispatch {int(bad.id)}: payload power_w='a lot' (to be rejected)")
    clock = time.monotonic()
    next_report = 0.0
    while (elapsed := time.monotonic() - clock) < duration_s:
        if elapsed >= next_report:
            next_report = elapsed + REPORT_S
            _report(elapsed, phase_at(elapsed / duration_s), sim, controller.connection)
        await asyncio.sleep(0.1)
    _summary(duration_s, created, controller, soc_start, sim)


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
    duration_s: float,
    created: int,
    controller: Controller,
    soc_start: dict[int, float],
    sim: SimulatorServer,
) -> None:
    violations = sim.command_log.violations()
    soc_end = {b: sim.model.soc_pct(b) for b in soc_start}
    counts: dict[str, int] = {}
    for use_case in controller.use_cases:
        for what, count in use_case.counts.items():
            counts[what] = counts.get(what, 0) + count
    print("\nsummary")
    print(f"  ran {duration_s:g} s; {created} dispatches created")
    print("  battery power use case: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    for battery_id in sorted(soc_start):
        name = sim.model.spec(battery_id).name
        start, end = soc_start[battery_id], soc_end[battery_id]
        print(f"  {name}: SoC {start:.2f}% -> {end:.2f}% ({end - start:+.2f})")
    print(
        f"  SoC spread {_spread(list(soc_start.values())):.2f} pp -> "
        f"{_spread(list(soc_end.values())):.2f} pp"
    )
    print(
        f"  simulator: {sim.command_log.total} accepted commands logged, "
        f"{len(violations)} outside their bounds"
    )


__all__ = ["SCHEDULE", "Phase", "phase_at", "run_demo"]
