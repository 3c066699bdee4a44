"""Shared fixtures: the example site, a manual clock, and a simulator on a free port."""

from __future__ import annotations

import warnings
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from frequenz.client.base.retry import LinearBackoff
from frequenz.client.microgrid import MicrogridApiClient

from edge_controller.clock import ManualClock
from edge_controller.dispatch_service.server import DispatchServer
from edge_controller.sim.server import SimulatorServer
from edge_controller.sim.site import SiteSpec, load_site
from tests.harness import KEY, Site, running_site
from tests.properties import register_profiles

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_SITE = ROOT / "config" / "sim-site.toml"
LARGE_SITE = ROOT / "config" / "sim-site-large.toml"
NOON = datetime(2026, 6, 21, 12, 0, tzinfo=UTC)

# CI (`.ci/run` sets HYPOTHESIS_PROFILE=ci) tries the same examples on every run, so a
# property fails there every time or never; locally the search stays random and finds
# the counterexamples, which then become `@example`s. Sizes: tests/properties.py.
register_profiles()


with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from frequenz.client.common.microgrid.components import ComponentId


def component_id(value: int) -> ComponentId:
    """Build the (deprecated) ComponentId that client 0.18 still takes, quietly."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return ComponentId(value)


@pytest.fixture
def example_site() -> SiteSpec:
    return load_site(EXAMPLE_SITE)


@pytest.fixture
async def servers(
    example_site: SiteSpec, tmp_path: Path
) -> AsyncIterator[tuple[SimulatorServer, DispatchServer]]:
    """The simulator and the dispatch service (key `tests.harness.KEY`), no controller."""
    async with (
        SimulatorServer(example_site) as sim,
        DispatchServer(tmp_path / "dispatches.db", keys=frozenset({KEY})) as dispatch,
    ):
        yield sim, dispatch


@pytest.fixture
async def site(example_site: SiteSpec, tmp_path: Path) -> AsyncIterator[Site]:
    """The whole chain running: simulator, dispatch service, controller, client."""
    async for running in running_site(example_site, tmp_path):
        yield running


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(NOON)


@pytest.fixture
async def sim_server(example_site: SiteSpec, clock: ManualClock) -> AsyncIterator[SimulatorServer]:
    async with SimulatorServer(example_site, "127.0.0.1:0", clock=clock) as server:
        yield server


@pytest.fixture
async def client(sim_server: SimulatorServer) -> AsyncIterator[MicrogridApiClient]:
    api = MicrogridApiClient(sim_server.url, retry_strategy=LinearBackoff(interval=0.1, limit=50))
    try:
        yield api
    finally:
        await api.__aexit__(None, None, None)
