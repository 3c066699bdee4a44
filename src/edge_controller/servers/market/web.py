"""The market's REST API and dashboard: seed 001's `/api/` over a running `MarketExchange`.

| method and path | role | what |
| --- | --- | --- |
| `GET /`, `/static/*` | — | the dashboard (it asks for a login) |
| `POST /api/login`, `POST /api/logout` | — | session cookie + CSRF token (`console.auth`) |
| `GET /api/me` | viewer | who am I, my role |
| `GET /api/members` | viewer | consumers, prosumers, managers |
| `GET /api/members/{id}` | viewer | one member |
| `POST /api/members` | manager | add a consumer group or a prosumer (201) |
| `PUT /api/members/{id}` | manager | change a member (and a prosumer's `owner`) |
| `DELETE /api/members/{id}` | manager | remove a consumer group or a prosumer |
| `GET /api/control/{id}` | viewer | the manager's or a prosumer's controls |
| `PUT`/`POST /api/control/{id}` | prosumer | its own prosumers'; the manager: any, coal too |
| `GET /api/price` | viewer | price now, total demand and production; the next period |
| `GET /api/summary/{id}` | viewer | a prosumer now: battery, power, where it consumes from |
| `GET /api/history?hours=H` | viewer | the cleared periods of the last H ≤ 48 h |
| `GET /api/overview` | viewer | all the dashboard shows, in one answer |

Roles `viewer < prosumer < manager` (`servers.common.users.MARKET_ROLES`), in a users
file like the console's (`edge-controller user add NAME --market --role manager
--users-file F`).
A prosumer user may change the controls of the prosumers whose `owner` is its name.
Changes apply to the next periods to clear (a period whose gate has closed keeps its
price), are saved to the members database when there is one, and are audited in the
log (`console_audit`, with the user).

"Now" is the period in delivery on the market's clock: its cleared record, or — before
the market has cleared it (just opened) — what the current members would clear.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Final

import structlog
from aiohttp import web

from edge_controller.servers.common.auth import Auth, audit, current_user
from edge_controller.servers.common.http_shell import HttpShell
from edge_controller.servers.common.users import MARKET_ROLES
from edge_controller.servers.market.clearing import PeriodRecord, clear_period
from edge_controller.servers.market.exchange import MarketExchange
from edge_controller.servers.market.member_store import MemberStore, MemberStoreError
from edge_controller.servers.market.members import (
    MemberNotFoundError,
    add_member,
    apply_controls,
    change_member,
    controls_json,
    find,
    flow_json,
    member_json,
    members_json,
    prosumer_flows,
    remove_member,
)
from edge_controller.servers.market.model import CoalPlant, MarketSpec, ProsumerSpec, situation
from edge_controller.trading.periods import period_floor

_LOG = structlog.get_logger("edge_controller.servers.market")

STATIC_DIR: Final = Path(__file__).parent / "static"
MAX_HISTORY_HOURS: Final = 48


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def record_json(record: PeriodRecord, *, cleared: bool) -> dict[str, Any]:
    """A period's outcome: price, totals, coal and CO₂ (MW averages over the period)."""
    return {
        "period_start": record.start.isoformat(),
        "cleared": cleared,
        "price": float(record.price),
        "demand_mw": round(record.demand_mw, 4),
        "production_mw": round(record.production_mw, 4),
        "coal_mw": round(record.coal_mw, 4),
        "reserve_mw": round(record.reserve_mw, 4),
        "wind_speed_m_s": round(record.wind_speed_m_s, 2),
        "carbon_kg": round(record.carbon_kg, 1),
        # the seed's names
        "stats": {
            "totalDemand": round(record.demand_mw, 4),
            "totalProduction": round(record.production_mw, 4),
        },
    }


class MarketWeb:
    """The HTTP face of one running market (see the module docstring).

    ```python
    web = MarketWeb(exchange, "127.0.0.1:0", users_file=Path("users.json"), store=store)
    await web.start()        # BindError when the address cannot be bound
    web.url                  # http://127.0.0.1:PORT/
    await web.stop()
    ```
    """

    def __init__(
        self,
        exchange: MarketExchange,
        listen: str,
        *,
        users_file: Path,
        store: MemberStore | None = None,
        owners: dict[str, str] | None = None,
        tls: ssl.SSLContext | None = None,
        on_change: Callable[[MarketSpec], None] | None = None,
    ) -> None:
        """Prepare; nothing is bound before `start`.

        Raises:
            ListenAddressError: `listen` is not HOST:PORT.
        """
        self.exchange = exchange
        self.store = store
        self.owners: dict[str, str] = dict(owners or {})
        self._on_change = on_change
        self.auth = Auth(
            users_file,
            secure=tls is not None,
            roles=MARKET_ROLES,
            add_user_hint="edge-controller user add NAME --market --role manager --users-file FILE",
        )
        self.app = self._build_app()
        self.shell = HttpShell(self.app, listen, tls=tls, source="--http-listen")

    @property
    def url(self) -> str:
        """The dashboard's URL (after `start`)."""
        return self.shell.url

    async def start(self) -> None:
        """Bind and serve.

        Raises:
            BindError: the address cannot be bound.
        """
        await self.shell.start()
        _LOG.info("market_http_listening", url=self.url, users=len(self.auth.users))

    async def stop(self) -> None:
        """Stop serving."""
        await self.shell.stop()

    # ------------------------------------------------------------- routes

    def _build_app(self) -> web.Application:
        app = self.auth.page_app(STATIC_DIR)
        need = self.auth.require
        app.router.add_get("/api/members", need("viewer", self.list_members))
        app.router.add_post("/api/members", need("manager", self.add))
        app.router.add_get("/api/members/{id}", need("viewer", self.get_member))
        app.router.add_put("/api/members/{id}", need("manager", self.change))
        app.router.add_delete("/api/members/{id}", need("manager", self.remove))
        app.router.add_get("/api/control/{id}", need("viewer", self.get_control))
        app.router.add_put("/api/control/{id}", need("prosumer", self.put_control))
        app.router.add_post("/api/control/{id}", need("prosumer", self.put_control))
        app.router.add_get("/api/price", need("viewer", self.price))
        app.router.add_get("/api/summary/{id}", need("viewer", self.summary))
        app.router.add_get("/api/history", need("viewer", self.history))
        app.router.add_get("/api/overview", need("viewer", self.overview))
        return app

    # ------------------------------------------------------------- the market now

    @property
    def spec(self) -> MarketSpec:
        """The members in force (for the next period to clear)."""
        return self.exchange.spec

    def _now_period(self) -> tuple[datetime, PeriodRecord, bool]:
        exchange = self.exchange
        start = period_floor(exchange.now, self.spec.rules.period)
        record = exchange.records.get(start)
        if record is not None:
            return start, record, True
        return start, self._preview(start), False

    def _preview(self, start: datetime) -> PeriodRecord:
        """What the members in force would clear for `start`, without participants' orders."""
        spec = self.spec
        period = situation(spec, self.exchange.state, start, self.exchange.weather)
        return clear_period(spec, period, []).record

    def _price_json(self) -> dict[str, Any]:
        _start, record, cleared = self._now_period()
        now = record_json(record, cleared=cleared)
        next_start = self.exchange.next_clearing
        return {
            **now,
            "now": self.exchange.now.isoformat(),
            "next": record_json(self._preview(next_start), cleared=False),
            "next_gate_closure": self.exchange.next_gate_closure.isoformat(),
        }

    def _flows(self) -> list[dict[str, Any]]:
        start, _record, cleared = self._now_period()
        inputs = self.exchange.inputs(start) if cleared else None
        spec, state = inputs if inputs is not None else (self.spec, self.exchange.state)
        flows = prosumer_flows(spec, state, start, self.exchange.weather)
        controls = {p.name: controls_json(p) for p in self.spec.prosumers}  # in force
        return [
            {**flow_json(f), "owner": self.owners.get(f.id), "controls": controls.get(f.id)}
            for f in flows
        ]

    async def price(self, _request: web.Request) -> web.StreamResponse:
        """Price now with total demand and production (`stats`), and the next period's."""
        return web.json_response(self._price_json())

    async def summary(self, request: web.Request) -> web.StreamResponse:
        """One prosumer now: produced, consumed, battery, bought, sold, and its source."""
        member_id = request.match_info["id"]
        for flow in self._flows():
            if flow["id"] == member_id:
                return web.json_response(flow)
        try:
            find(self.spec, member_id)
        except MemberNotFoundError as error:
            return _error(404, str(error))
        return _error(400, f"id: {member_id!r} is not a prosumer")

    def _history(self, hours: float) -> list[dict[str, Any]]:
        since = self.exchange.now - timedelta(hours=hours)
        return [
            record_json(r, cleared=True)
            for start, r in sorted(self.exchange.records.items())
            if start >= since
        ]

    async def history(self, request: web.Request) -> web.StreamResponse:
        """The cleared periods of the last `hours` (default 24, at most 48), oldest first."""
        try:
            hours = float(request.query.get("hours", "24"))
            if not 0 < hours <= MAX_HISTORY_HOURS:
                raise ValueError
        except ValueError:
            return _error(400, f"hours: expected a number in (0, {MAX_HISTORY_HOURS}]")
        response = web.json_response({"periods": self._history(hours)})
        response.enable_compression()
        return response

    async def overview(self, request: web.Request) -> web.StreamResponse:
        """Price now and next, the day's periods, the prosumers now, the manager."""
        user = current_user(request)
        response = web.json_response(
            {
                "price": self._price_json(),
                "periods": self._history(24),
                "prosumers": self._flows(),
                "manager": member_json(self.spec.manager),
                "consumers": [member_json(c) for c in self.spec.consumers],
                "you": {"name": user.name, "role": user.role},
            }
        )
        response.enable_compression()
        return response

    # ------------------------------------------------------------- members

    async def list_members(self, _request: web.Request) -> web.StreamResponse:
        """Every member by kind."""
        return web.json_response(members_json(self.spec, self.owners))

    async def get_member(self, request: web.Request) -> web.StreamResponse:
        """One member."""
        member_id = request.match_info["id"]
        try:
            member = find(self.spec, member_id)
        except MemberNotFoundError as error:
            return _error(404, str(error))
        return web.json_response(member_json(member, self.owners.get(member_id)))

    def _commit(self, spec: MarketSpec, owners: dict[str, str]) -> web.Response | None:
        """Save, then put in force; a 500 answer when the database refuses."""
        if self.store is not None:
            try:
                self.store.save(spec, owners)
            except MemberStoreError as error:
                _LOG.error("market_members_not_saved", error=str(error))
                return _error(500, str(error))
        self.exchange.change_members(spec)
        self.owners = owners
        if self._on_change is not None:
            self._on_change(spec)
        return None

    async def add(self, request: web.Request) -> web.StreamResponse:
        """Add a consumer group or a prosumer (`kind`, `id`, fields; see `members`)."""
        try:
            body = await _json_object(request)
            spec = add_member(self.spec, body)
            owner = _owner(body)
        except ValueError as error:
            return _error(400, str(error))
        member_id = str(body["id"])
        owners = {**self.owners, **({member_id: owner} if owner else {})}
        failed = self._commit(spec, owners)
        if failed is not None:
            return failed
        audit(request, "market_member_added", member=member_id, kind=body.get("kind"))
        return web.json_response(member_json(find(spec, member_id), owner), status=201)

    async def change(self, request: web.Request) -> web.StreamResponse:
        """Change a member's fields (those given), and a prosumer's `owner`."""
        member_id = request.match_info["id"]
        try:
            body = await _json_object(request)
            fields = {k: v for k, v in body.items() if k != "owner"}
            spec = change_member(self.spec, member_id, fields) if fields else self.spec
            owner = _owner(body)
            if "owner" in body and not isinstance(find(spec, member_id), ProsumerSpec):
                raise ValueError("owner: only a prosumer has an owner")
        except MemberNotFoundError as error:
            return _error(404, str(error))
        except ValueError as error:
            return _error(400, str(error))
        owners = dict(self.owners)
        if "owner" in body:
            owners.pop(member_id, None)
            if owner:
                owners[member_id] = owner
        failed = self._commit(spec, owners)
        if failed is not None:
            return failed
        audit(request, "market_member_changed", member=member_id, changes=sorted(body))
        return web.json_response(member_json(find(spec, member_id), owners.get(member_id)))

    async def remove(self, request: web.Request) -> web.StreamResponse:
        """Remove a consumer group or a prosumer."""
        member_id = request.match_info["id"]
        try:
            spec = remove_member(self.spec, member_id)
        except MemberNotFoundError as error:
            return _error(404, str(error))
        except ValueError as error:
            return _error(400, str(error))
        owners = {k: v for k, v in self.owners.items() if k != member_id}
        failed = self._commit(spec, owners)
        if failed is not None:
            return failed
        audit(request, "market_member_removed", member=member_id)
        return web.json_response({"removed": member_id})

    # ------------------------------------------------------------- controls

    async def get_control(self, request: web.Request) -> web.StreamResponse:
        """The seed's controls of the manager or of a prosumer."""
        member_id = request.match_info["id"]
        try:
            return web.json_response(controls_json(find(self.spec, member_id)))
        except MemberNotFoundError as error:
            return _error(404, str(error))
        except ValueError as error:
            return _error(400, str(error))

    async def put_control(self, request: web.Request) -> web.StreamResponse:
        """Change controls; they apply from the next period to clear."""
        member_id = request.match_info["id"]
        user = current_user(request)
        try:
            member = find(self.spec, member_id)
        except MemberNotFoundError as error:
            return _error(404, str(error))
        if user.role != "manager":
            if isinstance(member, CoalPlant):
                return _error(403, "needs the role manager: the coal plant is the manager's")
            if self.owners.get(member_id) != user.name:
                return _error(403, f"{member_id!r} is not yours (its owner changes it)")
        try:
            body = await _json_object(request)
            before = controls_json(member)
            spec = apply_controls(self.spec, member_id, body)
        except ValueError as error:
            return _error(400, str(error))
        failed = self._commit(spec, self.owners)
        if failed is not None:
            return failed
        after = controls_json(find(spec, member_id))
        audit(request, "market_controls_changed", member=member_id, before=before, after=after)
        return web.json_response({**after, "from_period": self.exchange.next_clearing.isoformat()})


def _owner(body: dict[str, Any]) -> str | None:
    owner = body.get("owner")
    if owner is not None and (not isinstance(owner, str) or len(owner) > 64):
        raise ValueError(f"owner: expected a user name or null, got {owner!r}")
    return owner or None


async def _json_object(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except json.JSONDecodeError:
        raise ValueError("expected a JSON object") from None
    if not isinstance(body, dict):
        raise ValueError("expected a JSON object")
    return body


__all__ = ["MAX_HISTORY_HOURS", "MarketWeb", "record_json"]
