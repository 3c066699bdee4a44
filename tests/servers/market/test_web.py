"""The market's REST API against a real market server: every endpoint × role, the
controls applied to the next period, persistence across a restart, the command's flags.

Roles viewer < prosumer < manager; no login is 401, a role below the endpoint's 403.
The clock is manual: `site.advance(minutes)` clears what falls due.
"""

from __future__ import annotations

import argparse
import json
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from edge_controller.servers.common.users import MARKET_ROLES
from edge_controller.servers.market.command import add_market_server_parser, run_market_server
from tests.console.helpers import PASSWORD
from tests.servers.market.web_helpers import market_running

Body = Callable[[str], Any]
"""The request body for a caller of a given role (each gets its own new member)."""


def _new_consumer(role: str) -> dict[str, Any]:
    return {"kind": "consumer", "id": f"flats {role}", "peak_demand_kw": 250}


ENDPOINTS: list[tuple[str, str, Body | None, str, int]] = [
    ("GET", "/api/me", None, "viewer", 200),
    ("GET", "/api/members", None, "viewer", 200),
    ("GET", "/api/members/households", None, "viewer", 200),
    ("POST", "/api/members", _new_consumer, "manager", 201),
    ("PUT", "/api/members/households", lambda _r: {"peak_demand_kw": 2100}, "manager", 200),
    ("DELETE", "/api/members/businesses", None, "manager", 200),
    ("GET", "/api/control/coal plant", None, "viewer", 200),
    ("GET", "/api/control/wind homes", None, "viewer", 200),
    ("PUT", "/api/control/coal plant", lambda _r: {"ratio": 0.8}, "manager", 200),
    ("POST", "/api/control/coal plant", lambda _r: {"status": True}, "manager", 200),
    ("PUT", "/api/control/wind homes", lambda _r: {"input_ratio": 0.7}, "prosumer", 200),
    ("GET", "/api/price", None, "viewer", 200),
    ("GET", "/api/summary/wind homes", None, "viewer", 200),
    ("GET", "/api/history?hours=24", None, "viewer", 200),
    ("GET", "/api/overview", None, "viewer", 200),
]


@pytest.mark.parametrize(
    ("method", "path", "body", "least", "ok"),
    ENDPOINTS,
    ids=[f"{m} {p}" for m, p, *_ in ENDPOINTS],
)
async def test_every_endpoint_answers_401_without_login_403_below_its_role_else_ok(
    tmp_path: Path, method: str, path: str, body: Body | None, least: str, ok: int
) -> None:
    async with market_running(tmp_path) as site:
        async with site.client() as nobody:
            status, _ = await nobody.call(method, path, body("nobody") if body else None)
            assert status == 401
        for role in MARKET_ROLES:
            allowed = MARKET_ROLES.index(role) >= MARKET_ROLES.index(least)
            async with site.client(role) as client:
                if method == "DELETE" and allowed:  # each allowed caller removes its own
                    async with site.client("manager") as manager:
                        created, _ = await manager.call("POST", "/api/members", _new_consumer(role))
                        assert created == 201
                    path = f"/api/members/flats {role}"
                status, answer = await client.call(method, path, body(role) if body else None)
            assert status == (ok if allowed else 403), f"{role}: {answer}"


async def test_an_unsafe_call_on_a_session_without_the_csrf_header_is_refused(
    tmp_path: Path,
) -> None:
    async with market_running(tmp_path) as site, site.client("manager") as client:
        client.csrf = ""
        status, answer = await client.call("PUT", "/api/control/coal plant", {"ratio": 0.5})
        assert (status, answer["error"]) == (403, "missing or wrong X-CSRF-Token header")
        assert site.server.exchange.spec.manager.ratio == 1.0


async def test_a_prosumer_changes_only_its_own_prosumers_and_never_the_coal_plant(
    tmp_path: Path,
) -> None:
    async with market_running(tmp_path) as site:
        async with site.client("neighbour") as neighbour:
            status, answer = await neighbour.call(
                "PUT", "/api/control/wind homes", {"status": False}
            )
            assert status == 403
            assert answer["error"] == "'wind homes' is not yours (its owner changes it)"
        async with site.client("prosumer") as owner:
            status, _ = await owner.call("PUT", "/api/control/coal plant", {"ratio": 0.1})
            assert status == 403
            status, answer = await owner.call(
                "PUT", "/api/control/wind homes", {"output_ratio": 0.5, "status": False}
            )
            assert status == 200
            assert answer == {
                "input_ratio": 0.5,
                "output_ratio": 0.5,
                "status": False,
                "from_period": site.server.exchange.next_clearing.isoformat(),
            }
        prosumer = site.server.exchange.spec.prosumers[0]
        assert (prosumer.output_ratio, prosumer.status) == (0.5, False)


async def test_bad_input_names_the_key(tmp_path: Path) -> None:
    async with market_running(tmp_path) as site, site.client("manager") as manager:
        assert await manager.call("PUT", "/api/control/coal plant", {"ratio": 1.5}) == (
            400,
            {"error": "ratio: expected 0..1, got 1.5"},
        )
        assert await manager.call("PUT", "/api/control/households", {"ratio": 1}) == (
            400,
            {"error": "id: 'households' is a consumer group; it has no controls"},
        )
        status, answer = await manager.call("POST", "/api/members", {"kind": "plant", "id": "x"})
        assert status == 400
        assert answer["error"] == "kind: expected 'consumer' or 'prosumer', got 'plant'"
        status, answer = await manager.call(
            "POST", "/api/members", {"kind": "consumer", "id": "households"}
        )
        assert (status, answer["error"]) == (400, "id: a member 'households' exists already")
        assert (await manager.call("GET", "/api/members/nobody"))[0] == 404
        status, answer = await manager.call(
            "POST",
            "/api/members",
            {"kind": "prosumer", "id": "p", "batteries": [{"capacity_kwh": 5, "initial_kwh": 9}]},
        )
        assert (status, answer["error"]) == (400, "batteries[0].initial_kwh: expected 0..5, got 9")


async def test_lowering_the_coal_ratio_raises_the_next_periods_price_not_the_cleared_one(
    tmp_path: Path,
) -> None:
    async with market_running(tmp_path) as site, site.client("manager") as manager:
        site.advance(20)  # 06:20: the period 06:15 is in delivery and cleared
        _, before = await manager.call("GET", "/api/price")
        assert before["cleared"] is True
        status, _ = await manager.call("PUT", "/api/control/coal plant", {"ratio": 0.3})
        assert status == 200
        _, after = await manager.call("GET", "/api/price")
        assert after["price"] == before["price"]  # the period in delivery keeps its price
        assert after["next"]["price"] > before["next"]["price"]
        site.advance(15)
        _, later = await manager.call("GET", "/api/price")
        assert later["period_start"] == after["next"]["period_start"]
        assert later["price"] == after["next"]["price"] == 500.0  # beyond the coal: scarcity
        assert later["stats"]["totalDemand"] == later["demand_mw"] > 0
        _, history = await manager.call("GET", "/api/history?hours=1")
        assert [p["price"] for p in history["periods"]][-2:] == [before["price"], 500.0]


async def test_a_prosumer_summary_says_where_it_consumes_from(tmp_path: Path) -> None:
    async with market_running(tmp_path) as site, site.client("viewer") as viewer:
        site.advance(20)
        status, summary = await viewer.call("GET", "/api/summary/wind homes")
        assert status == 200
        assert summary["source"] == "turbines"  # 08:00 local, 6 m/s: the turbines cover it
        assert summary["owner"] == "prosumer"
        async with site.client("manager") as manager:  # no wind from now on
            await manager.call("PUT", "/api/members/wind homes", {"turbines_kw": [0]})
        site.advance(15)
        _, summary = await viewer.call("GET", "/api/summary/wind homes")
        assert summary["source"] == "battery"
        assert summary["battery_kw"] < 0
        assert summary["soc_pct"] > 0
        async with site.client("manager") as manager:  # an empty battery
            await manager.call(
                "PUT",
                "/api/members/wind homes",
                {"batteries": [{"capacity_kwh": 0.1, "initial_kwh": 0}]},
            )
        site.advance(30)
        _, summary = await viewer.call("GET", "/api/summary/wind homes")
        assert summary["source"] == "market"
        assert (await viewer.call("GET", "/api/summary/households"))[0] == 400


async def test_members_added_and_changed_survive_a_restart(tmp_path: Path) -> None:
    async with market_running(tmp_path, owner=None) as site, site.client("manager") as manager:
        await manager.call(
            "POST",
            "/api/members",
            {"kind": "prosumer", "id": "farm", "count": 2, "turbines_kw": [100], "owner": "ada"},
        )
        await manager.call("PUT", "/api/control/coal plant", {"ratio": 0.4, "status": False})
        await manager.call("DELETE", "/api/members/businesses")
        await manager.call("PUT", "/api/members/wind homes", {"owner": "prosumer"})
        _, members = await manager.call("GET", "/api/members")
    async with market_running(tmp_path, owner=None) as site, site.client("viewer") as viewer:
        assert await viewer.call("GET", "/api/members") == (200, members)
        assert [c["id"] for c in members["consumers"]] == ["households"]
        assert [(p["id"], p["owner"]) for p in members["prosumers"]] == [
            ("wind homes", "prosumer"),
            ("farm", "ada"),
        ]
        assert (members["managers"][0]["ratio"], members["managers"][0]["status"]) == (0.4, False)
        assert site.server.exchange.spec.manager.available_mw == 0
    assert (tmp_path / "members.sqlite3").stat().st_mode & 0o777 == 0o600


async def test_the_page_and_its_assets_need_no_login(tmp_path: Path) -> None:
    async with market_running(tmp_path) as site, site.client() as nobody:
        status, page = await nobody.call("GET", "/")
        assert status == 200
        assert "<html" in page
        for asset in ("/static/app.js", "/static/app.css"):
            assert (await nobody.call("GET", asset))[0] == 200


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="edge-controller")
    add_market_server_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(["market-server", *argv])


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("--http-listen", "127.0.0.1:0"), "--users-file: required with --http-listen"),
        (("--http-listen", "nowhere", "--users-file", "u.json"), "--http-listen: expected HOST"),
        (("--users-file", "u.json"), "--users-file and --members-db need --http-listen"),
    ],
)
def test_the_http_flags_refuse_bad_input_with_exit_2(
    argv: tuple[str, ...], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_market_server(parse("--no-auth", *argv)) == 2
    assert message in capsys.readouterr().err


def test_http_is_off_by_default() -> None:
    args = parse("--no-auth")
    assert (args.http_listen, args.users_file, args.members_db) == (None, None, None)


def test_user_add_with_market_roles(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    from edge_controller.tools.cli import main

    path = tmp_path / "users.json"
    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    argv = ["user", "add", "ada", "--market", "--role", "manager", "--users-file", str(path)]
    assert main([*argv, "--password-stdin"]) == 0
    assert json.loads(path.read_text())["users"]["ada"]["role"] == "manager"
    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    console = ["user", "add", "bob", "--role", "manager", "--users-file", str(tmp_path / "c.json")]
    assert main([*console, "--password-stdin"]) == 2  # not a console role


async def test_overview_has_what_the_dashboard_shows(tmp_path: Path) -> None:
    async with market_running(tmp_path) as site, site.client("viewer") as viewer:
        site.advance(120)
        status, overview = await viewer.call("GET", "/api/overview")
    assert status == 200
    assert set(overview) == {"price", "periods", "prosumers", "manager", "consumers", "you"}
    assert len(overview["periods"]) == 8
    assert {"coal_mw", "carbon_kg", "price"} <= set(overview["periods"][0])
    assert overview["prosumers"][0]["id"] == "wind homes"
    assert overview["you"] == {"name": "viewer", "role": "viewer"}


async def test_a_real_run_prints_the_dashboards_url_after_its_address(tmp_path: Path) -> None:
    import asyncio
    import sys

    import aiohttp

    from tests.servers.market.test_command import RUNNER
    from tests.servers.market.web_helpers import write_users

    write_users(tmp_path / "users.json")
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        RUNNER,
        "market-server",
        "--no-auth",
        "--http-listen",
        "127.0.0.1:0",
        "--users-file",
        str(tmp_path / "users.json"),
        "--members-db",
        str(tmp_path / "members.sqlite3"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    assert process.stdout is not None
    try:
        async with asyncio.timeout(20):
            first = (await process.stdout.readline()).decode().strip()
            second = (await process.stdout.readline()).decode().strip()
        assert first.startswith("listening address=127.0.0.1:")
        assert second.startswith("http url=http://127.0.0.1:")
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
            url = second.split("=", 1)[1]
            async with session.get(url + "api/price") as response:
                assert response.status == 401
            async with session.post(
                url + "api/login", json={"name": "viewer", "password": PASSWORD}
            ) as response:
                assert response.status == 200
            async with session.get(url + "api/price") as response:
                assert response.status == 200
                assert (await response.json())["cleared"] is False  # opened just now
        process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(10):
            assert await process.wait() == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert (tmp_path / "members.sqlite3").exists()
