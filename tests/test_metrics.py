from __future__ import annotations

import asyncio
import socket
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import get_args

import pytest
from prometheus_client import CONTENT_TYPE_LATEST

from edge_controller.daemon.metrics import (
    RESULT_KIND_OF,
    RESULT_KINDS,
    Health,
    Metrics,
    MetricsServer,
    UseCaseSample,
)
from edge_controller.framework.messages import Result
from edge_controller.servers.common.serving import ListenAddressError

# Never a proxy from the environment, even for loopback.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass
class Response:
    status: int
    content_type: str
    body: str


def get(url: str) -> Response:
    try:
        with _OPENER.open(url, timeout=5) as response:
            return Response(
                response.status, response.headers["Content-Type"], response.read().decode()
            )
    except urllib.error.HTTPError as error:
        with error:
            return Response(error.code, error.headers["Content-Type"], error.read().decode())


async def fetch(server: MetricsServer, path: str) -> Response:
    return await asyncio.to_thread(get, f"http://{server.address}{path}")


class FakeMonotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Site:
    metrics: Metrics
    health: Health
    clock: FakeMonotonic
    server: MetricsServer
    fresh: list[bool]


@pytest.fixture
async def site() -> AsyncIterator[Site]:
    clock = FakeMonotonic()
    fresh = [True]
    metrics = Metrics(version="1.2.3")
    health = Health(lambda: fresh[0], monotonic=clock)
    async with MetricsServer("127.0.0.1:0", metrics, health) as server:
        yield Site(metrics, health, clock, server, fresh)


def healthy(site: Site) -> None:
    site.health.graph_running = True
    site.health.beat()


# --- /metrics ------------------------------------------------------------------------


async def test_metrics_serves_battery_samples_in_the_text_format(site: Site) -> None:
    site.metrics.set_battery(11, soc_pct=42.0, power_w=-3000.5, lower_w=-5000.0, upper_w=4000.0)
    site.metrics.set_battery_status(11, "working")
    site.metrics.set_grid_power(12_500.0)
    site.metrics.set_dispatches_running(2)
    site.metrics.set_mode("observe")

    response = await fetch(site.server, "/metrics")

    assert response.status == 200
    assert response.content_type == CONTENT_TYPE_LATEST
    lines = response.body.splitlines()
    for line in [
        'edge_controller_battery_soc_percent{battery="11"} 42.0',
        'edge_controller_battery_power_watts{battery="11"} -3000.5',
        'edge_controller_battery_power_lower_bound_watts{battery="11"} -5000.0',
        'edge_controller_battery_power_upper_bound_watts{battery="11"} 4000.0',
        'edge_controller_battery_status{battery="11",status="working"} 1.0',
        'edge_controller_battery_status{battery="11",status="uncertain"} 0.0',
        'edge_controller_battery_status{battery="11",status="blocked"} 0.0',
        "edge_controller_grid_power_watts 12500.0",
        "edge_controller_dispatches_running 2.0",
        'edge_controller_mode{mode="control"} 0.0',
        'edge_controller_mode{mode="observe"} 1.0',
        'edge_controller_info{version="1.2.3"} 1.0',
    ]:
        assert line in lines


async def test_status_moves_the_one_to_the_new_status(site: Site) -> None:
    site.metrics.set_battery_status(11, "working")
    site.metrics.set_battery_status(11, "blocked")

    lines = (await fetch(site.server, "/metrics")).body.splitlines()

    assert 'edge_controller_battery_status{battery="11",status="working"} 0.0' in lines
    assert 'edge_controller_battery_status{battery="11",status="blocked"} 1.0' in lines


@pytest.mark.parametrize("missing", [None, float("nan")])
async def test_a_missing_reading_exports_no_sample(site: Site, missing: float | None) -> None:
    site.metrics.set_battery(11, soc_pct=42.0, power_w=100.0, lower_w=-1.0, upper_w=1.0)
    site.metrics.set_battery(11, soc_pct=missing, power_w=100.0, lower_w=-1.0, upper_w=1.0)
    site.metrics.set_battery(12, soc_pct=50.0, power_w=missing, lower_w=-1.0, upper_w=1.0)
    site.metrics.set_grid_power(missing)

    body = (await fetch(site.server, "/metrics")).body

    assert 'edge_controller_battery_soc_percent{battery="11"}' not in body
    assert 'edge_controller_battery_soc_percent{battery="12"} 50.0' in body
    assert 'edge_controller_battery_power_watts{battery="11"} 100.0' in body
    assert 'edge_controller_battery_power_watts{battery="12"}' not in body
    assert "\nedge_controller_grid_power_watts " not in body
    assert "NaN" not in body


async def test_removed_battery_has_no_series(site: Site) -> None:
    site.metrics.set_battery(11, soc_pct=42.0, power_w=0.0, lower_w=-1.0, upper_w=1.0)
    site.metrics.set_battery_status(11, "uncertain")
    site.metrics.remove_battery(11)
    site.metrics.remove_battery(99)  # unknown: nothing to do

    body = (await fetch(site.server, "/metrics")).body

    assert 'battery="11"' not in body


async def test_command_latency_histogram_counts_into_buckets(site: Site) -> None:
    site.metrics.observe_command(0.002, ok=True)
    site.metrics.observe_command(0.3, ok=True)
    site.metrics.observe_command(7.0, ok=False)

    lines = (await fetch(site.server, "/metrics")).body.splitlines()

    name = "edge_controller_command_latency_seconds"
    for line in [
        f'{name}_bucket{{le="0.001",outcome="ok"}} 0.0',
        f'{name}_bucket{{le="0.0025",outcome="ok"}} 1.0',
        f'{name}_bucket{{le="0.25",outcome="ok"}} 1.0',
        f'{name}_bucket{{le="0.5",outcome="ok"}} 2.0',
        f'{name}_bucket{{le="5.0",outcome="ok"}} 2.0',
        f'{name}_bucket{{le="+Inf",outcome="ok"}} 2.0',
        f'{name}_count{{outcome="ok"}} 2.0',
        f'{name}_sum{{outcome="ok"}} 0.302',
        f'{name}_bucket{{le="5.0",outcome="error"}} 0.0',
        f'{name}_bucket{{le="+Inf",outcome="error"}} 1.0',
        f'{name}_sum{{outcome="error"}} 7.0',
    ]:
        assert line in lines


async def test_counters_count_results_restarts_and_reloads(site: Site) -> None:
    site.metrics.count_result("success", "battery_power")
    site.metrics.count_result("success", "battery_power")
    site.metrics.count_result("out_of_bounds", "battery_power")
    site.metrics.count_result("success", "peak_shaving")
    site.metrics.count_restart("PowerDistributingActor")
    site.metrics.count_reload(applied=False)

    lines = (await fetch(site.server, "/metrics")).body.splitlines()

    for line in [
        'edge_controller_power_results_total{kind="success",namespace="battery_power"} 2.0',
        'edge_controller_power_results_total{kind="out_of_bounds",namespace="battery_power"} 1.0',
        'edge_controller_power_results_total{kind="success",namespace="peak_shaving"} 1.0',
        'edge_controller_actor_restarts_total{actor="PowerDistributingActor"} 1.0',
        'edge_controller_config_reloads_total{outcome="applied"} 0.0',
        'edge_controller_config_reloads_total{outcome="rejected"} 1.0',
    ]:
        assert line in lines
    assert "_created" not in "\n".join(lines)


async def test_each_use_case_reports_its_dispatches_and_events(site: Site) -> None:
    site.metrics.set_use_cases(
        [
            UseCaseSample("main", "battery_power", 2, {"started": 3, "stopped": 1}),
            UseCaseSample("peak", "peak_shaving", 0, {"requests": 7}),
        ]
    )
    lines = (await fetch(site.server, "/metrics")).body.splitlines()
    main = 'kind="battery_power",use_case="main"'
    peak = 'kind="peak_shaving",use_case="peak"'
    for line in [
        f"edge_controller_use_case_dispatches_running{{{main}}} 2.0",
        f"edge_controller_use_case_dispatches_running{{{peak}}} 0.0",
        f'edge_controller_use_case_events_total{{event="started",{main}}} 3.0',
        f'edge_controller_use_case_events_total{{event="stopped",{main}}} 1.0',
        f'edge_controller_use_case_events_total{{event="requests",{peak}}} 7.0',
    ]:
        assert line in lines

    # A use case removed by a live edit leaves no series behind.
    site.metrics.set_use_cases([UseCaseSample("main", "battery_power", 0, {"started": 3})])
    body = (await fetch(site.server, "/metrics")).body
    assert 'use_case="peak"' not in body
    assert f"edge_controller_use_case_dispatches_running{{{main}}} 0.0" in body


def test_unknown_label_values_are_refused() -> None:
    metrics = Metrics()
    with pytest.raises(ValueError, match="unknown result kind 'sucess'"):
        metrics.count_result("sucess", "battery_power")
    with pytest.raises(ValueError, match="unknown battery status 'broken'"):
        metrics.set_battery_status(11, "broken")
    with pytest.raises(ValueError, match="unknown mode 'auto'"):
        metrics.set_mode("auto")


async def test_refresh_hook_runs_at_each_scrape_on_the_event_loop() -> None:
    loop = asyncio.get_running_loop()
    grid_w = [100.0]
    calls: list[bool] = []

    def refresh(metrics: Metrics) -> None:
        calls.append(asyncio.get_running_loop() is loop)
        metrics.set_grid_power(grid_w[0])

    metrics = Metrics(refresh=refresh)
    async with MetricsServer("127.0.0.1:0", metrics, Health(lambda: True)) as server:
        assert "edge_controller_grid_power_watts 100.0" in (await fetch(server, "/metrics")).body
        grid_w[0] = -250.0
        assert "edge_controller_grid_power_watts -250.0" in (await fetch(server, "/metrics")).body
        await fetch(server, "/healthz")

    assert calls == [True, True]


async def test_a_failing_refresh_hook_still_serves_metrics() -> None:
    def refresh(metrics: Metrics) -> None:
        raise RuntimeError("telemetry cache gone")

    metrics = Metrics(refresh=refresh)
    metrics.set_dispatches_running(3)
    async with MetricsServer("127.0.0.1:0", metrics, Health(lambda: True)) as server:
        response = await fetch(server, "/metrics")

    assert response.status == 200
    assert "edge_controller_dispatches_running 3.0" in response.body


async def test_two_controllers_in_one_process_do_not_clash() -> None:
    first, second = Metrics(), Metrics()
    first.count_restart("a")
    first.set_battery(1, soc_pct=10.0, power_w=None, lower_w=None, upper_w=None)
    second.set_battery(1, soc_pct=90.0, power_w=None, lower_w=None, upper_w=None)

    async with (
        MetricsServer("127.0.0.1:0", first, Health(lambda: True)) as server_1,
        MetricsServer("127.0.0.1:0", second, Health(lambda: True)) as server_2,
    ):
        body_1 = (await fetch(server_1, "/metrics")).body
        body_2 = (await fetch(server_2, "/metrics")).body

    assert server_1.address != server_2.address
    assert 'edge_controller_battery_soc_percent{battery="1"} 10.0' in body_1
    assert 'edge_controller_actor_restarts_total{actor="a"} 1.0' in body_1
    assert 'edge_controller_battery_soc_percent{battery="1"} 90.0' in body_2
    assert "edge_controller_actor_restarts_total{" not in body_2


# --- /healthz ------------------------------------------------------------------------


async def test_healthz_is_ok_while_running_beating_and_fresh(site: Site) -> None:
    healthy(site)
    site.clock.now += 4.9

    response = await fetch(site.server, "/healthz")

    assert (response.status, response.body) == (200, "ok\n")
    assert response.content_type == "text/plain; charset=utf-8"


async def test_healthz_names_each_failing_condition(site: Site) -> None:
    healthy(site)
    site.health.graph_running = False
    response = await fetch(site.server, "/healthz")
    assert (response.status, response.body) == (503, "graph not running\n")

    healthy(site)
    site.clock.now += 7.2
    response = await fetch(site.server, "/healthz")
    assert (response.status, response.body) == (
        503,
        "event loop heartbeat 7.2 s old (limit 5 s)\n",
    )

    healthy(site)
    site.fresh[0] = False
    response = await fetch(site.server, "/healthz")
    assert (response.status, response.body) == (503, "telemetry stale\n")


async def test_healthz_lists_every_reason_at_once(site: Site) -> None:
    site.fresh[0] = False

    response = await fetch(site.server, "/healthz")

    assert response.status == 503
    assert response.body.splitlines() == [
        "graph not running",
        "no event loop heartbeat yet",
        "telemetry stale",
    ]


async def test_healthz_answers_503_while_the_event_loop_is_stuck() -> None:
    refreshes: list[int] = []
    metrics = Metrics(refresh=lambda m: refreshes.append(1))
    metrics.set_dispatches_running(1)
    health = Health(lambda: True)
    health.graph_running = True
    health.beat()
    async with MetricsServer("127.0.0.1:0", metrics, health, loop_timeout_s=0.2) as server:
        # Blocking the loop on purpose: the server's thread must answer without it.
        stuck_health = get(f"http://{server.address}/healthz")
        stuck_metrics = get(f"http://{server.address}/metrics")
        server.loop_timeout_s = 5.0  # generous now that the loop is free again
        after = await fetch(server, "/healthz")

    assert (stuck_health.status, stuck_health.body) == (
        503,
        "event loop did not answer within 0.2 s\n",
    )
    assert stuck_metrics.status == 200
    assert "edge_controller_dispatches_running 1.0" in stuck_metrics.body
    assert refreshes == []  # the skipped calls never run late
    assert after.status == 200


def test_health_check_reports_heartbeat_age_against_its_limit() -> None:
    clock = FakeMonotonic()
    health = Health(lambda: True, max_heartbeat_age_s=2.5, monotonic=clock)
    health.graph_running = True
    assert health.check() == (False, ["no event loop heartbeat yet"])

    health.beat()
    clock.now += 2.5
    assert health.check() == (True, [])

    clock.now += 0.25
    assert health.check() == (False, ["event loop heartbeat 2.8 s old (limit 2.5 s)"])


def test_health_check_reports_a_failing_freshness_check() -> None:
    def data_fresh() -> bool:
        raise KeyError("battery 11")

    health = Health(data_fresh, monotonic=FakeMonotonic())
    health.graph_running = True
    health.beat()

    assert health.check() == (False, ["telemetry freshness unknown: KeyError('battery 11')"])


# --- the server ----------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/", "/metricsx", "/healthz/extra", "/favicon.ico"])
async def test_other_paths_are_not_found(site: Site, path: str) -> None:
    response = await fetch(site.server, path)

    assert response.status == 404
    assert "/metrics" in response.body


async def test_a_query_string_does_not_change_the_path(site: Site) -> None:
    healthy(site)

    assert (await fetch(site.server, "/healthz?verbose=1")).status == 200
    assert (await fetch(site.server, "/metrics?x=1")).status == 200


async def test_port_zero_reports_the_bound_port(site: Site) -> None:
    host, _, port = site.server.address.rpartition(":")

    assert host == "127.0.0.1"
    assert int(port) > 0


async def test_a_port_in_use_fails_at_start(site: Site) -> None:
    other = MetricsServer(site.server.address, Metrics(), Health(lambda: True))

    with pytest.raises(OSError):  # noqa: PT011  (errno differs across platforms)
        await other.start()


def test_a_malformed_listen_address_is_refused() -> None:
    with pytest.raises(ListenAddressError, match="HOST:PORT"):
        MetricsServer("9464", Metrics(), Health(lambda: True))


async def test_stop_closes_the_port_and_can_be_repeated() -> None:
    server = MetricsServer("127.0.0.1:0", Metrics(), Health(lambda: True))
    with pytest.raises(RuntimeError, match="not been started"):
        _ = server.address
    await server.start()
    host, _, port = server.address.rpartition(":")
    await server.stop()
    await server.stop()

    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((host, int(port)), timeout=1).close()


@pytest.mark.skipif(not socket.has_ipv6, reason="no IPv6")
async def test_ipv6_loopback_in_brackets() -> None:
    server = MetricsServer("[::1]:0", Metrics(), Health(lambda: True))
    try:
        await server.start()
    except OSError:
        pytest.skip("IPv6 loopback not available")
    try:
        assert server.address.startswith("[::1]:")
        assert (await fetch(server, "/metrics")).status == 200
    finally:
        await server.stop()


def test_every_result_type_is_counted_under_a_kind_of_its_own() -> None:
    # a result type without a kind would stop the actor that publishes it (the counting
    # hook raises): the distributor for its results, the manager for its word
    assert set(RESULT_KIND_OF) == set(get_args(Result))
    assert len(set(RESULT_KINDS)) == len(RESULT_KINDS) == len(RESULT_KIND_OF)
