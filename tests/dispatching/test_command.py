"""`edge-controller dispatch`: the power check, get, update and the state in the list.

The simulator (the example site: batteries 11, 21, 31, 41 with ±250, ±300, ±200,
±250 kW) and the dispatch service run on free loopback ports (`servers` in
tests/conftest.py); the command line runs as operators run it, as a process.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from frequenz.client.dispatch.types import TargetIds

from edge_controller.dispatching.producer import DispatchProducer
from edge_controller.servers.dispatch.model import (
    DispatchData,
    Frequency,
    Recurrence,
    Target,
    TargetKind,
)
from edge_controller.servers.dispatch.server import DispatchServer
from edge_controller.servers.sim.server import SimulatorServer
from edge_controller.tools.cli import build_parser
from edge_controller.tools.dispatch_command import PowerCheckError, check_power, target_batteries
from tests.harness import KEY, run_cli

Servers = tuple[SimulatorServer, DispatchServer]


async def cli(dispatch: DispatchServer, *args: str, **env: str) -> tuple[int, str, str]:
    """`edge-controller dispatch --url URL ARGS` against `dispatch`, with the key."""
    return await run_cli(
        "dispatch",
        "--url",
        dispatch.url,
        *args,
        env={"EDGE_CONTROLLER_DISPATCH_KEY": KEY, **env},
    )


def error_line(err: str) -> str:
    """The command's own message (the one line that names the command)."""
    lines = [line for line in err.splitlines() if line.startswith("edge-controller dispatch")]
    assert len(lines) == 1, err
    return lines[0]


# ---------------------------------------------------------------- the power check


async def test_five_gigawatts_is_refused_naming_the_batteries_and_what_they_can_do(
    servers: Servers,
) -> None:
    sim, dispatch = servers
    code, out, err = await cli(dispatch, "create", "--power", "-5 GW", "--microgrid-url", sim.url)
    assert (code, out) == (2, ""), err
    assert error_line(err) == (
        "edge-controller dispatch create: --power: -5 GW is beyond what every battery "
        "(11, 21, 31, 41) can do together: -1 MW .. +1 MW (11: -250 kW .. +250 kW, "
        "21: -300 kW .. +300 kW, 31: -200 kW .. +200 kW, 41: -250 kW .. +250 kW; "
        f"rated bounds from the microgrid API at {sim.url}); pass --force to send it anyway"
    )
    assert len(dispatch.service) == 0


async def test_a_power_within_the_targets_passes_and_the_environment_names_the_site(
    servers: Servers,
) -> None:
    sim, dispatch = servers
    code, out, err = await cli(
        dispatch,
        "create",
        "--power=-450kW",
        "--batteries",
        "11,31",
        EDGE_CONTROLLER_MICROGRID_URL=sim.url,
    )
    assert code == 0, err
    assert out.startswith("created id=1 type=BATTERY_POWER ")
    code, _, err = await cli(
        dispatch,
        "create",
        "--power=-451kW",
        "--batteries",
        "11,31",
        EDGE_CONTROLLER_MICROGRID_URL=sim.url,
    )
    assert code == 2
    assert "-451 kW is beyond what batteries 11, 31 can do together: -450 kW .. +450 kW" in err
    code, _, err = await cli(
        dispatch, "create", "--power=-1kW", "--batteries", "11,99", "--microgrid-url", sim.url
    )
    assert code == 2
    assert error_line(err) == (
        "edge-controller dispatch create: --power: battery 99 not found at the site (its "
        f"batteries: 11, 21, 31, 41; rated bounds from the microgrid API at {sim.url})"
    )  # no "pass --force": forcing a battery that does not exist helps no one
    assert len(dispatch.service) == 1


async def test_a_site_rating_checks_without_a_microgrid_api(servers: Servers) -> None:
    _, dispatch = servers
    code, _, err = await cli(dispatch, "create", "--power", "-600 kW", "--site-rating", "500 kW")
    assert code == 2
    assert error_line(err) == (
        "edge-controller dispatch create: --power: -600 kW is beyond the site rating: "
        "-500 kW .. +500 kW (--site-rating 500 kW); pass --force to send it anyway"
    )
    code, _, err = await cli(
        dispatch, "create", "--power", "+500 kW", EDGE_CONTROLLER_SITE_RATING="500 kW"
    )
    assert code == 0, err
    code, _, err = await cli(
        dispatch, "create", "--power", "+5 kW", EDGE_CONTROLLER_SITE_RATING="lots"
    )
    assert code == 2
    assert "$EDGE_CONTROLLER_SITE_RATING: expected a power with a unit" in err
    code, _, err = await cli(dispatch, "create", "--power", "1 kW", "--site-rating", "0 W")
    assert code == 2
    assert "argument --site-rating: expected a rating > 0 with a unit" in err


async def test_without_a_source_the_power_is_refused_unless_forced(servers: Servers) -> None:
    _, dispatch = servers
    code, _, err = await cli(dispatch, "create", "--power", "-5 GW")
    assert code == 2
    assert error_line(err) == (
        "edge-controller dispatch create: --power: cannot check -5 GW against the site: "
        "give --microgrid-url URL (or $EDGE_CONTROLLER_MICROGRID_URL) or --site-rating "
        "POWER (or $EDGE_CONTROLLER_SITE_RATING), or --force to send it unchecked"
    )
    assert len(dispatch.service) == 0
    code, out, err = await cli(dispatch, "create", "--power", "-5 GW", "--force")
    assert code == 0, err
    assert 'payload={"power_w":-5000000000.0}' in out
    # 0 W is always allowed: it is what a released battery does.
    code, _, err = await cli(dispatch, "create", "--power", "0 W")
    assert code == 0, err


async def test_a_microgrid_api_that_does_not_answer_is_exit_1(servers: Servers) -> None:
    _, dispatch = servers
    nowhere = "grpc://127.0.0.1:1?ssl=false"
    code, _, err = await cli(dispatch, "create", "--power", "-4 kW", "--microgrid-url", nowhere)
    assert code == 1
    line = error_line(err)
    assert line.startswith(
        f"edge-controller dispatch create: --power: cannot check it: the microgrid API at "
        f"{nowhere} failed: UNAVAILABLE: "
    )
    assert line.endswith(
        "(pass --site-rating POWER to check against a rating instead, or --force to send it "
        "unchecked)"
    )
    assert len(dispatch.service) == 0


async def test_the_check_in_process_sources_force_and_a_bad_url() -> None:
    args = build_parser().parse_args(
        ["dispatch", "create", "--power", "-5 GW", "--batteries", "11"]
    )
    with pytest.raises(PowerCheckError) as caught:
        await check_power(args, -5e9, (11,), {})
    assert caught.value.exit_code == 2
    args.force = True
    await check_power(args, -5e9, (11,), {})
    args.force = False
    with pytest.raises(PowerCheckError) as caught:
        await check_power(args, -5e9, (11,), {"EDGE_CONTROLLER_MICROGRID_URL": "http://x"})
    assert caught.value.exit_code == 2
    assert str(caught.value) == (
        "$EDGE_CONTROLLER_MICROGRID_URL: Invalid scheme 'http' in the URI, expected 'grpc', "
        "got 'http://x'"
    )


async def test_a_start_in_the_past_is_named_before_the_site_is_asked(servers: Servers) -> None:
    _, dispatch = servers
    code, _, err = await cli(dispatch, "create", "--power", "-5 GW", "--start", "2020-01-01T00:00Z")
    assert code == 2
    assert "edge-controller dispatch create: --start: 2020-01-01T00:00:00+00:00 is not in" in err
    assert target_batteries("ids:11,21") == (11, 21)
    assert target_batteries("categories:BATTERY") is None


# ---------------------------------------------------------------- get, update, list


async def test_get_and_update_go_through_the_service(servers: Servers) -> None:
    sim, dispatch = servers
    site = ["--microgrid-url", sim.url]
    code, out, err = await cli(
        dispatch, "create", "--power=-40kW", "--batteries", "31", "--start", "+10m", *site
    )
    assert code == 0, err

    code, out, err = await cli(dispatch, "get", "1")
    assert code == 0, err
    got = re.fullmatch(
        r"id=1 type=BATTERY_POWER start=(\S+) duration=15m target=ids:31 active=yes "
        r'state=pending next_start=(\S+) dry_run=no payload=\{"power_w":-40000\.0\}\n',
        out,
    )
    assert got, out
    assert got.group(1) == got.group(2)

    # Beyond what battery 31 can do: refused before anything is sent.
    code, _, err = await cli(dispatch, "update", "1", "--power=-250kW", *site)
    assert code == 2
    assert "-250 kW is beyond what battery 31 can do: -200 kW .. +200 kW" in err
    # Moving it to batteries that cannot carry its power is refused too.
    code, _, err = await cli(dispatch, "update", "1", "--batteries", "31", "--power=-1MW", *site)
    assert code == 2

    code, out, err = await cli(
        dispatch,
        "update",
        "1",
        "--power=-150kW",
        "--batteries",
        "11,31",
        "--start",
        "NOW",
        "--duration",
        "1h",
        *site,
    )
    assert code == 0, err
    assert re.fullmatch(
        r"updated id=1 type=BATTERY_POWER start=\S+ duration=1h target=ids:11,31 active=yes "
        r'state=running next_start=none dry_run=no payload=\{"power_w":-150000\.0\}\n',
        out,
    ), out

    code, out, err = await cli(dispatch, "update", "1", "--inactive", "--duration", "none")
    assert code == 0, err
    assert " duration=none target=ids:11,31 active=no state=inactive " in out
    async with DispatchProducer(dispatch.url, 1, KEY) as producer:
        stored = await producer.get(1)
    assert (stored.active, stored.duration, stored.payload) == (
        False,
        None,
        {"power_w": -150_000.0},
    )

    code, _, err = await cli(dispatch, "update", "1")
    assert code == 2
    assert "update: nothing to change; give --power, --batteries, --start" in err
    code, _, err = await cli(dispatch, "update", "1", "--active", "--inactive")
    assert code == 2
    assert "not allowed with argument" in err
    code, out, err = await cli(dispatch, "get", "9")
    assert (code, out) == (1, "")
    assert "NOT_FOUND: dispatch 9 not found in microgrid 1" in err
    code, out, err = await cli(dispatch, "update", "9", "--active")
    assert (code, out) == (1, "")
    assert "NOT_FOUND" in err


async def test_the_list_shows_state_and_next_start(servers: Servers) -> None:
    _, dispatch = servers
    now = datetime.now(UTC).replace(microsecond=0)

    def stored(start: datetime, duration_s: int | None, freq: int = 0) -> DispatchData:
        return DispatchData(
            type="BATTERY_POWER",
            start_time=start,
            duration_s=duration_s,
            target=Target(TargetKind.IDS, ids=(31,)),
            is_active=True,
            is_dry_run=False,
            payload={"power_w": -1_000.0},
            recurrence=Recurrence(freq=freq, interval=1 if freq else 0),
        )

    # Straight into the service (the server in this process): the API's clients refuse
    # a start in the past, the service accepts one up to 60 s back.
    for data in (
        stored(now + timedelta(minutes=5), 900),
        stored(now - timedelta(seconds=30), None),
        stored(now - timedelta(seconds=30), 1),  # ended 29 s ago, still "active"
        stored(now - timedelta(seconds=30), 600, Frequency.HOURLY),
    ):
        await dispatch.service.create(1, data)
    code, out, err = await cli(dispatch, "list")
    assert code == 0, err

    def utc(moment: datetime) -> str:
        return moment.isoformat().replace("+00:00", "Z")

    found = [
        re.search(r" active=(\S+) state=(\S+) next_start=(\S+) ", line) for line in out.splitlines()
    ]
    assert [m.groups() for m in found if m] == [
        ("yes", "pending", utc(now + timedelta(minutes=5))),
        ("yes", "running", "none"),
        ("yes", "ended", "none"),
        ("yes", "running", utc(now - timedelta(seconds=30) + timedelta(hours=1))),
    ]


async def test_moving_a_dispatch_checks_the_power_it_holds_even_as_text(servers: Servers) -> None:
    sim, dispatch = servers
    async with DispatchProducer(dispatch.url, 1, KEY) as producer:
        await producer.create(
            "BATTERY_POWER", {"power_w": "-300 kW"}, TargetIds(21), "NOW", timedelta(minutes=5)
        )
    code, _, err = await cli(
        dispatch, "update", "1", "--batteries", "31", "--microgrid-url", sim.url
    )
    assert code == 2
    assert "--power: -300 kW is beyond what battery 31 can do: -200 kW .. +200 kW" in err
    code, out, err = await cli(
        dispatch, "update", "1", "--batteries", "11,31", "--microgrid-url", sim.url
    )
    assert code == 0, err
    assert " target=ids:11,31 " in out
    assert out.endswith(' payload={"power_w":"-300 kW"}\n')
