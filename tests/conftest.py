"""Shared fixtures: the example site, a manual clock, a simulator on a free port, a busy
port and TLS files."""

from __future__ import annotations

import socket
import warnings
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import NamedTuple

import pytest
import trustme
from frequenz.client.base.retry import LinearBackoff
from frequenz.client.microgrid import MicrogridApiClient

from edge_controller.common.clock import ManualClock
from edge_controller.servers.dispatch.server import DispatchServer
from edge_controller.servers.sim.server import SimulatorServer
from edge_controller.servers.sim.site import SiteSpec, load_site
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


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A loopback port this test listens on, so any server of ours finds it taken."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield holder.getsockname()[1]


class ServerTlsFiles(NamedTuple):
    """PEM files in the test's `tmp_path`: a certificate for 127.0.0.1 and its key, and
    the key of another certificate of the same CA (a key that does not match)."""

    cert: Path
    key: Path
    other_key: Path


@pytest.fixture
def server_tls_files(tmp_path: Path) -> ServerTlsFiles:
    ca = trustme.CA()
    ours, other = ca.issue_cert("127.0.0.1"), ca.issue_cert("127.0.0.1")
    cert, key, other_key = tmp_path / "s.pem", tmp_path / "s.key", tmp_path / "o.key"
    ours.cert_chain_pems[0].write_to_path(str(cert))
    ours.private_key_pem.write_to_path(str(key))
    other.private_key_pem.write_to_path(str(other_key))
    return ServerTlsFiles(cert, key, other_key)
