"""Who may talk to our servers: API keys, and TLS on every gRPC server and client.

- The dispatch service refuses every method — unary and streaming — without a key or
  with a wrong one (UNAUTHENTICATED, before any servicer code runs), through the raw
  channel and through the real client; the controller's `connect_dispatcher` says so
  at once (`DispatchAuthError`), not after its start-up timeout.
- The simulator, like a Microgrid API endpoint on a site's LAN, has no authentication:
  any client may command it. Documented here so it is a decision, not an accident.
- TLS: certificates made in the test (`trustme`, an IP SAN for 127.0.0.1). The
  simulator and the dispatch service serve TLS when given a `ServerTls` (constructor)
  or `--tls-cert FILE --tls-key FILE` (command line); the controller's real clients
  connect from config with `?ssl=true&ssl_root_certificates_path=CA.pem` and run a
  dispatch end to end; a plain-text client and a client that does not trust the CA
  are refused.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import grpc
import pytest
import trustme
from frequenz.api.dispatch.v1 import dispatch_pb2
from frequenz.api.microgrid.v1alpha18 import microgrid_pb2
from frequenz.client.dispatch import DispatchApiClient
from frequenz.client.dispatch.types import TargetIds
from frequenz.client.microgrid import MicrogridApiClient, ServiceUnavailable
from google.protobuf import empty_pb2, json_format

from edge_controller.config.schema import parse_config
from edge_controller.controller.dispatch_broadcasting import (
    DispatchAuthError,
    DispatchServiceUnreachableError,
    connect_dispatcher,
)
from edge_controller.controller.graph import Controller
from edge_controller.servers.common.serving import ServerTls
from edge_controller.servers.dispatch.server import DispatchServer
from edge_controller.servers.sim.server import SimulatorServer
from edge_controller.servers.sim.site import SiteSpec
from tests.conftest import EXAMPLE_SITE
from tests.harness import KEY, MICROGRID, power_reaches, stream_connected
from tests.reliability import grpc_fuzz


@pytest.fixture
async def dispatch(tmp_path: Path) -> AsyncIterator[DispatchServer]:
    async with DispatchServer(tmp_path / "dispatches.db", keys=frozenset({KEY})) as server:
        yield server


# ------------------------------------------------------------------ keys


@pytest.mark.parametrize("metadata", [(), (("key", "wrong-key"),), (("authorization", KEY),)])
async def test_every_dispatch_method_refuses_a_missing_or_wrong_key(
    dispatch: DispatchServer, metadata: tuple[tuple[str, str], ...]
) -> None:
    methods = grpc_fuzz.methods(dispatch_pb2, "MicrogridDispatchService")
    assert len(methods) == 6
    # ParseDict, not m.request(microgrid_id=1): types-protobuf's Message takes no keywords.
    requests = [
        (m, json_format.ParseDict({"microgrid_id": 1}, m.request()).SerializeToString())
        for m in methods
    ]
    async with grpc.aio.insecure_channel(dispatch.address) as channel:
        outcomes = await grpc_fuzz.call_all(channel, requests, metadata=metadata)
    assert {o.method.name: o.code for o in outcomes} == {
        m.name: grpc.StatusCode.UNAUTHENTICATED for m in methods
    }
    assert len(dispatch.service) == 0  # nothing was created behind the refusal


async def test_the_real_client_with_a_wrong_key_is_refused(dispatch: DispatchServer) -> None:
    client = DispatchApiClient(server_url=dispatch.url, auth_key="wrong-key")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await _list_dispatches(client)
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_a_wrong_key_at_start_up_is_reported_as_a_wrong_key(
    dispatch: DispatchServer,
) -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(DispatchAuthError) as caught:
        await connect_dispatcher(dispatch.url, 1, "wrong-key", timeout_s=10)
    assert loop.time() - started < 2  # at once, not after the start-up timeout
    assert str(caught.value) == (
        f"dispatch service at {dispatch.url} refused the API key (UNAUTHENTICATED): "
        "check dispatch.key_file"
    )
    # The controller treats it as an unreachable service (it may run from its cache).
    assert isinstance(caught.value, DispatchServiceUnreachableError)


async def test_a_plain_server_without_ssl_false_is_reported_with_the_hint(
    dispatch: DispatchServer,
) -> None:
    url = f"grpc://{dispatch.address}"  # TLS by default: the plain server never answers
    with pytest.raises(DispatchServiceUnreachableError) as caught:
        await connect_dispatcher(url, 1, KEY, timeout_s=1)
    assert not isinstance(caught.value, DispatchAuthError)
    assert str(caught.value) == (
        f"dispatch service at {url} did not answer within 1 s "
        "(a plain local server needs '?ssl=false')"
    )


async def test_the_right_key_connects(dispatch: DispatchServer) -> None:
    dispatcher = await connect_dispatcher(dispatch.url, 1, KEY, timeout_s=5)
    await dispatcher.stop()


async def test_the_simulator_has_no_authentication(example_site: SiteSpec) -> None:
    async with (
        SimulatorServer(example_site) as sim,
        grpc.aio.insecure_channel(sim.address) as channel,
    ):
        stub = channel.unary_unary(
            "/frequenz.api.microgrid.v1alpha18.Microgrid/GetMicrogrid",
            request_serializer=empty_pb2.Empty.SerializeToString,
            response_deserializer=microgrid_pb2.GetMicrogridResponse.FromString,
        )
        reply = await stub(empty_pb2.Empty(), timeout=5)  # no key, no credentials
    assert reply.microgrid.id == 1


# ------------------------------------------------------------------ TLS


class Pki:
    """A test CA and a server certificate for 127.0.0.1, as files and as `ServerTls`."""

    def __init__(self, directory: Path) -> None:
        self.ca = trustme.CA()
        issued = self.ca.issue_cert("127.0.0.1", "localhost")
        self.ca_file = directory / "ca.pem"
        self.cert_file = directory / "server.pem"
        self.key_file = directory / "server.key"
        self.ca.cert_pem.write_to_path(str(self.ca_file))
        issued.private_key_pem.write_to_path(str(self.key_file))
        self.cert_file.write_bytes(b"".join(blob.bytes() for blob in issued.cert_chain_pems))
        self.tls = ServerTls.from_files(self.cert_file, self.key_file)

    def url(self, address: str) -> str:
        return f"grpc://{address}?ssl=true&ssl_root_certificates_path={self.ca_file}"


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return Pki(tmp_path)


async def test_both_servers_and_the_controller_run_a_dispatch_over_tls(
    example_site: SiteSpec, tmp_path: Path, pki: Pki
) -> None:
    async with (
        SimulatorServer(example_site, tls=pki.tls) as sim,
        DispatchServer(tmp_path / "dispatches.db", keys=frozenset({KEY}), tls=pki.tls) as dispatch,
    ):
        assert sim.url.endswith("?ssl=true")
        config = parse_config(
            {
                "microgrid": {"url": pki.url(sim.address)},
                "dispatch": {"url": pki.url(dispatch.address), "microgrid_id": 1},
                "use_cases": [{"kind": "battery_power"}],
            },
            environ={"EDGE_CONTROLLER_DISPATCH_KEY": KEY},
        )
        async with Controller(config) as controller:
            await stream_connected(dispatch, 10)
            client = DispatchApiClient(server_url=pki.url(dispatch.address), auth_key=KEY)
            await client.create(
                microgrid_id=MICROGRID,
                type="BATTERY_POWER",
                start_time="NOW",
                duration=timedelta(minutes=5),
                target=TargetIds(21),
                payload={"power_w": -30_000.0},
            )
            await power_reaches(sim, 20, -30_000, 10)
            assert controller.running


async def _list_dispatches(client: DispatchApiClient) -> None:
    async with asyncio.timeout(5):
        async for _ in client.list(microgrid_id=MICROGRID):
            pass


async def _list_components(client: MicrogridApiClient) -> None:
    async with asyncio.timeout(5):
        await client.list_components()


async def test_plain_and_untrusting_clients_are_refused_by_tls_servers(
    example_site: SiteSpec, tmp_path: Path, pki: Pki
) -> None:
    async with (
        SimulatorServer(example_site, tls=pki.tls) as sim,
        DispatchServer(tmp_path / "dispatches.db", keys=frozenset({KEY}), tls=pki.tls) as dispatch,
    ):
        for url in (f"grpc://{sim.address}?ssl=false", f"grpc://{sim.address}?ssl=true"):
            client = MicrogridApiClient(url)
            try:
                with pytest.raises(ServiceUnavailable):
                    await _list_components(client)
            finally:
                await client.__aexit__(None, None, None)
        for url in (f"grpc://{dispatch.address}?ssl=false", f"grpc://{dispatch.address}?ssl=true"):
            plain = DispatchApiClient(server_url=url, auth_key=KEY, connect=True)
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await _list_dispatches(plain)
            assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
        # The trusting client gets through.
        trusting = MicrogridApiClient(pki.url(sim.address))
        try:
            assert len(list(await trusting.list_components())) == len(example_site.components)
        finally:
            await trusting.__aexit__(None, None, None)


async def _first_line(process: asyncio.subprocess.Process) -> str:
    assert process.stdout is not None
    return (await asyncio.wait_for(process.stdout.readline(), 20)).decode().strip()


@pytest.mark.parametrize("command", ["sim", "dispatch-server"])
async def test_the_command_line_serves_tls_with_tls_cert_and_tls_key(
    tmp_path: Path, pki: Pki, command: str
) -> None:
    keys = tmp_path / "keys"
    keys.write_text(KEY + "\n")
    args = {
        "sim": ["sim", "--site", str(EXAMPLE_SITE)],
        "dispatch-server": [
            "dispatch-server",
            "--db",
            str(tmp_path / "d.db"),
            "--keys-file",
            str(keys),
        ],
    }[command]
    tls = ["--tls-cert", str(pki.cert_file), "--tls-key", str(pki.key_file)]
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "edge_controller.tools.cli",
        "--log-level",
        "warning",
        *args,
        "--listen",
        "127.0.0.1:0",
        *tls,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        line = await _first_line(process)
        assert line.startswith("listening address=127.0.0.1:")
        address = line.removeprefix("listening address=")
        if command == "sim":
            client = MicrogridApiClient(pki.url(address))
            try:
                assert list(await client.list_components())
            finally:
                await client.__aexit__(None, None, None)
        else:
            dispatches = DispatchApiClient(server_url=pki.url(address), auth_key=KEY)
            async for page in dispatches.list(microgrid_id=MICROGRID):
                assert list(page) == []
    finally:
        process.terminate()
        assert await asyncio.wait_for(process.wait(), 10) == 0


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--tls-cert", "CERT"], "--tls-cert needs --tls-key as well"),
        (["--tls-key", "KEY"], "--tls-key needs --tls-cert as well"),
        (["--tls-cert", "missing.pem", "--tls-key", "KEY"], "--tls-cert: cannot read"),
        (["--tls-cert", "CERT", "--tls-key", "CERT"], "holds no PEM private key"),
    ],
)
@pytest.mark.parametrize("command", ["sim", "dispatch-server"])
async def test_bad_tls_flags_exit_2_naming_the_flag(
    tmp_path: Path, pki: Pki, command: str, flags: list[str], message: str
) -> None:
    replaced = [
        {"CERT": str(pki.cert_file), "KEY": str(pki.key_file)}.get(f, str(tmp_path / f))
        if not f.startswith("--")
        else f
        for f in flags
    ]
    args = {
        "sim": ["sim", "--site", str(EXAMPLE_SITE)],
        "dispatch-server": ["dispatch-server", "--db", str(tmp_path / "d.db"), "--no-auth"],
    }[command]
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "edge_controller.tools.cli",
        *args,
        *replaced,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(process.communicate(), 20)
    assert process.returncode == 2
    assert message in err.decode()
