"""The console's JSON API against a real daemon, simulator and dispatch service.

Every endpoint × role: 401 without a login, 403 below the endpoint's role, 2xx at it.
"""

from __future__ import annotations

import asyncio
import json
import tomllib
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from edge_controller.common.event_ring import EVENTS
from edge_controller.servers.common.users import ROLES, Users
from edge_controller.servers.sim.site import SiteSpec
from tests import patience
from tests.console.helpers import PASSWORD, ConsoleSite, console_running

pytestmark = pytest.mark.timeout(180)

# method, path, the least role, a body, the status at that role
ENDPOINTS: list[tuple[str, str, str, Any, int]] = [
    ("GET", "/api/me", "guest", None, 200),
    ("GET", "/api/site", "guest", None, 200),
    ("GET", "/api/dispatches", "guest", None, 200),
    ("POST", "/api/dispatches", "owner", {"power_w": -10_000, "batteries": [41]}, 201),
    ("PATCH", "/api/dispatches/{id}", "owner", {"power_w": -12_000}, 200),
    ("DELETE", "/api/dispatches/{id}", "owner", None, 200),
    ("GET", "/api/controls", "guest", None, 200),
    ("PUT", "/api/controls", "installer", {"power_limit_w": 900_000}, 200),
    ("GET", "/api/history?hours=1", "guest", None, 200),
    ("GET", "/api/events", "guest", None, 200),
    ("GET", "/api/users", "admin", None, 200),
    ("POST", "/api/users", "admin", {"name": "new", "role": "guest", "password": PASSWORD}, 201),
    ("DELETE", "/api/users/new", "admin", None, 200),
]


@pytest.fixture
async def site(example_site: SiteSpec, tmp_path: Path) -> Any:
    async with console_running(example_site, tmp_path) as running:
        yield running


async def _new_dispatch(site: ConsoleSite) -> int:
    async with site.client("owner") as owner:
        status, body = await owner.call(
            "POST", "/api/dispatches", {"power_w": -5_000, "batteries": [41], "start": "NOW"}
        )
    assert status == 201, body
    return int(body["id"])


async def test_every_endpoint_answers_401_without_login_403_below_its_role_and_2xx_at_it(
    site: ConsoleSite,
) -> None:
    async with site.client() as anonymous:
        for method, path, _, body, _ in ENDPOINTS:
            status, answer = await anonymous.call(method, path.format(id=1), body)
            assert status == 401, (method, path, answer)
    for method, path, least, body, ok in ENDPOINTS:
        below = ROLES[: ROLES.index(least)]
        dispatch_id = await _new_dispatch(site) if "{id}" in path else 0
        for role in below:
            async with site.client(role) as client:
                status, answer = await client.call(method, path.format(id=dispatch_id), body)
                assert status == 403, (role, method, path, answer)
        for role in ROLES[ROLES.index(least) :]:
            if method in ("POST", "DELETE", "PUT", "PATCH") and role != least:
                continue  # one change per endpoint is enough
            async with site.client(role) as client:
                status, answer = await client.call(method, path.format(id=dispatch_id), body)
                assert status == ok, (role, method, path, answer)


async def test_site_shows_each_battery_with_soc_status_and_the_grid_meter(
    site: ConsoleSite,
) -> None:
    async with site.client("guest") as guest:
        status, body = await guest.call("GET", "/api/site")
    assert status == 200
    assert [b["id"] for b in body["batteries"]] == [11, 21, 31, 41]
    for battery in body["batteries"]:
        assert 0 <= battery["soc_pct"] <= 100
        assert battery["status"] == "working", battery
        assert battery["bounds_w"]
    assert [i["id"] for i in body["inverters"]] == [10, 20, 30, 40]
    assert body["meters"][0]["kind"] == "grid"
    assert body["controls"]["mode"] == "control"
    assert body["use_cases"][0]["name"] == "main"


async def test_a_dispatch_created_through_the_api_runs_and_moves_the_battery(
    site: ConsoleSite,
) -> None:
    async with site.client("owner") as owner:
        status, created = await owner.call(
            "POST",
            "/api/dispatches",
            {"power_w": -30_000, "batteries": [21], "start": "NOW", "duration_s": 600},
        )
        assert status == 201, created
        assert created["use_cases"] == ["main"]
        await patience.until(lambda: site.power(20) == pytest.approx(-30_000, abs=100), "runs")
        status, listed = await owner.call("GET", "/api/dispatches")
        mine = next(d for d in listed["dispatches"] if d["id"] == created["id"])
        assert mine["state"] == "running"
        assert mine["running_in"] == ["main"]
        status, _ = await owner.call(
            "PATCH", f"/api/dispatches/{created['id']}", {"power_w": -20_000}
        )
        assert status == 200
        await patience.until(lambda: site.power(20) == pytest.approx(-20_000, abs=100), "updated")
        status, _ = await owner.call("DELETE", f"/api/dispatches/{created['id']}")
        assert status == 200
        await patience.until(lambda: site.power(20) == 0.0, "released")
        status, refused = await owner.call("POST", "/api/dispatches", {"power_w": "much"})
        assert status == 400
        assert "power_w" in refused["error"]


async def test_controls_are_written_as_a_drop_in_and_applied_live_bad_values_refused(
    site: ConsoleSite,
) -> None:
    async with site.client("installer") as installer:
        status, answer = await installer.call("PUT", "/api/controls", {"mode": "observe"})
        assert status == 200, answer
        assert answer == {
            "effective": {"mode": "observe", "excluded_batteries": [], "power_limit_w": None},
            "applied": True,
        }
        drop_in = site.config_path.parent / "controller.toml.d" / "90-console-controls.toml"
        assert tomllib.loads(drop_in.read_text())["controls"] == {"mode": "observe"}
        assert site.daemon.controller.config.controls.mode == "observe"
        status, refused = await installer.call("PUT", "/api/controls", {"mode": "turbo"})
        assert status == 400
        assert refused["error"] == (
            "controller.toml.d/90-console-controls.toml: controls.mode: expected 'control' "
            "or 'observe', got 'turbo'"
        )
        status, refused = await installer.call("PUT", "/api/controls", {"excluded": [1]})
        assert status == 400
        assert "unknown keys" in refused["error"]
        assert tomllib.loads(drop_in.read_text())["controls"] == {"mode": "observe"}
        status, answer = await installer.call(
            "PUT", "/api/controls", {"mode": "control", "excluded_batteries": [21]}
        )
        assert status == 200, answer
        assert answer["applied"], answer
        assert answer["effective"]["excluded_batteries"] == [21]
        status, refused = await installer.call("PUT", "/api/controls", {"excluded_batteries": [99]})
        assert status == 200  # unknown batteries are a warning of the validator, not an error


async def test_an_unsafe_request_without_the_csrf_header_is_refused(site: ConsoleSite) -> None:
    async with site.client("installer") as installer:
        csrf, installer.csrf = installer.csrf, ""
        status, answer = await installer.call("PUT", "/api/controls", {"mode": "observe"})
        assert status == 403
        assert "X-CSRF-Token" in answer["error"]
        installer.csrf = "wrong"
        status, _ = await installer.call("PUT", "/api/controls", {"mode": "observe"})
        assert status == 403
        installer.csrf = csrf
        status, _ = await installer.call("GET", "/api/site")
        assert status == 200


async def test_the_session_cookie_is_httponly_and_samesite_strict(site: ConsoleSite) -> None:
    async with (
        aiohttp.ClientSession(site.url) as session,
        session.post("/api/login", json={"name": "guest", "password": PASSWORD}) as response,
    ):
        cookie = response.cookies["session"]
    assert cookie["httponly"] is True
    assert cookie["samesite"] == "Strict"
    assert cookie["path"] == "/"
    assert not cookie["secure"]  # plain HTTP here; Secure under TLS


async def test_failed_logins_are_rate_limited_per_client(site: ConsoleSite) -> None:
    async with site.client() as client:
        for _ in range(5):
            response = await client.login("owner", "wrong password")
            assert response.status == 401
        response = await client.login("owner", PASSWORD)
        assert response.status == 429
        assert int(response.headers["Retry-After"]) > 0


async def test_an_api_token_works_without_cookie_or_csrf(site: ConsoleSite) -> None:
    users = Users.load(site.config_path.parent / "users.json")
    token = users.new_token("owner")
    users.save()
    async with aiohttp.ClientSession(site.url) as session:
        headers = {"Authorization": f"Bearer {token}"}
        # The daemon re-reads the users file when it changed, at most once a second;
        # failed attempts meanwhile count towards the rate limit (5), one per 0.3 s.
        async with asyncio.timeout(patience.PATIENCE_S):
            while True:
                async with session.get("/api/site", headers=headers) as response:
                    if response.status == 200:
                        break
                await asyncio.sleep(0.3)
        async with session.post(
            "/api/dispatches", json={"power_w": -1000, "batteries": [11]}, headers=headers
        ) as response:
            assert response.status == 201
        async with session.put(
            "/api/controls", json={"mode": "observe"}, headers=headers
        ) as response:
            assert response.status == 403
        async with session.get("/api/site", headers={"Authorization": "Bearer nope"}) as response:
            assert response.status == 401


async def test_history_samples_the_site_and_events_show_warnings(site: ConsoleSite) -> None:
    async with site.client("guest") as guest:

        async def samples() -> list[Any]:
            _, body = await guest.call("GET", "/api/history?hours=1")
            return list(body["samples"])

        found: list[Any] = []
        async with asyncio.timeout(patience.PATIENCE_S):
            while len(found) < 2:
                found = await samples()
                await asyncio.sleep(0.2)
        assert set(found[-1]["batteries"]) == {"11", "21", "31", "41"}
        assert found[-1]["grid_w"] is not None
        EVENTS.processor(None, "warning", {"event": "test_warning", "level": "warning", "x": 1})
        _, body = await guest.call("GET", "/api/events?limit=5")
        assert body["events"][0]["event"] == "test_warning"
        assert body["events"][0]["x"] == "1"


async def test_the_stream_pushes_the_site_as_server_sent_events(site: ConsoleSite) -> None:
    async with site.client("guest") as guest, guest.session.get("/api/stream") as response:
        assert response.headers["Content-Type"] == "text/event-stream"
        events = []
        async for line in response.content:
            if line.startswith(b"data: "):
                events.append(json.loads(line[6:]))
            if len(events) == 2:
                break
    assert [b["id"] for b in events[0]["batteries"]] == [11, 21, 31, 41]
    assert events[1]["at"] > events[0]["at"]


async def test_the_page_and_its_assets_are_served_without_login(site: ConsoleSite) -> None:
    async with site.client() as anonymous:
        status, page = await anonymous.call("GET", "/")
        assert status == 200
        assert "<title>" in page
        status, _ = await anonymous.call("GET", "/static/app.js")
        assert status == 200
