"""The console's HTTP server: routes, roles, the history sampler and the live stream.

| method and path | role | what |
| --- | --- | --- |
| `GET /`, `/static/*` | — | the page and its assets (the page asks for a login) |
| `POST /api/login`, `POST /api/logout` | — | session cookie + CSRF token (`auth`) |
| `GET /api/me` | guest | who am I, my role |
| `GET /api/site` | guest | batteries, inverters, meters, flow, controls (`site`) |
| `GET /api/dispatches` | guest | every dispatch: state, next start, use case |
| `POST /api/dispatches` | owner | create (201) |
| `PATCH /api/dispatches/{id}` | owner | change power, active, duration, start |
| `DELETE /api/dispatches/{id}` | owner | delete |
| `GET /api/controls` | guest | controls in force and the console's drop-in |
| `PUT /api/controls` | installer | write the drop-in; 400 with the validator's message |
| `GET /api/history?hours=H&step=S` | guest | samples of the last H ≤ 24 h |
| `GET /api/events?limit=N` | guest | recent warnings and errors of the log |
| `GET /api/stream` | guest | Server-Sent Events: `site` every `STREAM_INTERVAL_S` |
| `GET/POST /api/users`, `DELETE /api/users/{name}` | admin | list, add, remove users |

Every change is audited in the log (`console_audit`, with the user). 401 without a
login, 403 below the role. The console only reads the controller's public state;
it changes things through the same doors an operator has: the Dispatch API and the
configuration files.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import structlog
from aiohttp import web

from edge_controller.common.event_ring import EVENTS, EventRing
from edge_controller.common.waiting import cancel_and_wait, wait_event
from edge_controller.config.schema import HttpConfig
from edge_controller.daemon.console.controls import ControlsError, ControlsWriter
from edge_controller.daemon.console.history import HistorySample, HistoryStore
from edge_controller.daemon.console.site import site_snapshot
from edge_controller.dispatching.producer import (
    DispatchProducer,
    DispatchProducerError,
    DispatchSummary,
    battery_power_payload,
    battery_target,
)
from edge_controller.servers.common.auth import Auth, audit, current_user
from edge_controller.servers.common.http_shell import HttpShell, ssl_context
from edge_controller.servers.common.users import UsersFileError

if TYPE_CHECKING:
    from edge_controller.controller.graph import Controller

_LOG = structlog.get_logger(__name__)

STATIC_DIR: Final = Path(__file__).parent / "static"
STREAM_INTERVAL_S: Final = 1.0
"""The live stream pushes the site this often, never faster (the issue: ≥ 1 s)."""
CONTROLS_APPLY_TIMEOUT_S: Final = 5.0
_ERROR_STATUS: Final = {
    "NOT_FOUND": 404,
    "INVALID_ARGUMENT": 400,
    "FAILED_PRECONDITION": 409,
    "PERMISSION_DENIED": 502,
    "UNAUTHENTICATED": 502,
}


def _error(status: int, message: str, **extra: Any) -> web.Response:
    return web.json_response({"error": message, **extra}, status=status)


def dispatch_json(
    summary: DispatchSummary, controller: Controller, running: Mapping[str, set[int]]
) -> dict[str, Any]:
    """A dispatch as the API shows it, with the use cases that take its type."""
    schedule = summary.schedule
    return {
        "id": summary.id,
        "type": summary.type,
        "start": summary.start.isoformat(),
        "duration_s": summary.duration.total_seconds() if summary.duration else None,
        "end": summary.end_time.isoformat() if summary.end_time else None,
        "target": summary.target,
        "payload": summary.payload,
        "active": summary.active,
        "dry_run": summary.dry_run,
        "state": str(schedule.state) if schedule else None,
        "next_start": schedule.next_start.isoformat() if schedule and schedule.next_start else None,
        "use_cases": [
            u.name for u in controller.config.use_cases if summary.type in u.dispatch_types
        ],
        "running_in": sorted(name for name, ids in running.items() if summary.id in ids),
    }


class Console:
    """The web console of one running controller (see the module docstring).

    ```python
    console = Console(controller, config.http, config_path=path, reload=watcher.reload)
    await console.start()     # BindError when http.listen cannot be bound
    ...
    await console.stop()
    ```
    """

    def __init__(
        self,
        controller: Controller,
        settings: HttpConfig,
        *,
        config_path: Path,
        drop_ins: Path | None = None,
        environ: Mapping[str, str] | None = None,
        reload: Callable[[], None] | None = None,
        events: EventRing = EVENTS,
        stream_interval_s: float = STREAM_INTERVAL_S,
    ) -> None:
        """Prepare; nothing is bound or opened before `start`."""
        assert settings.listen is not None, "the console is off (http.listen = '')"
        self.controller = controller
        self.settings = settings
        self.events = events
        self.stream_interval_s = max(stream_interval_s, STREAM_INTERVAL_S)
        self._reload = reload
        tls = (
            ssl_context(settings.tls_cert, settings.tls_key)
            if settings.tls_cert is not None and settings.tls_key is not None
            else None
        )
        self.auth = Auth(settings.users_file, secure=tls is not None)
        self.controls = ControlsWriter(
            config_path, drop_ins=drop_ins, environ=environ, check=controller.check_against_site
        )
        self.history: HistoryStore | None = None
        self._producer: DispatchProducer | None = None
        self._closing = asyncio.Event()
        self._sampler: asyncio.Task[None] | None = None
        self.app = self._build_app()
        self.shell = HttpShell(self.app, settings.listen, tls=tls)

    @property
    def url(self) -> str:
        """The console's base URL (after `start`)."""
        return self.shell.url

    # ------------------------------------------------------------- life

    async def start(self) -> None:
        """Open the history, bind, start sampling.

        Raises:
            BindError: `http.listen` cannot be bound.
        """
        self.history = HistoryStore(
            self.settings.history_file, interval=self.settings.history_interval
        )
        try:
            await self.shell.start()
        except BaseException:
            self.history.close()
            raise
        self._sampler = asyncio.create_task(self._sample_forever(), name="console_history")
        if self.settings.beyond_loopback:
            _LOG.warning(
                "console_beyond_loopback",
                address=self.shell.address,
                tls=self.settings.tls_cert is not None,
                hint="anyone who can reach this address can try to log in",
            )
        _LOG.info("console_listening", url=self.url, users=len(self.auth.users))

    async def stop(self) -> None:
        """End the live streams, stop serving, close the history and the client."""
        self._closing.set()
        if self._sampler is not None:
            await cancel_and_wait(self._sampler)
        await self.shell.stop()
        if self.history is not None:
            self.history.close()
        if self._producer is not None:
            with contextlib.suppress(Exception):
                await self._producer.close()

    # ------------------------------------------------------------- routes

    def _build_app(self) -> web.Application:
        app = self.auth.page_app(STATIC_DIR)
        need = self.auth.require
        app.router.add_get("/api/site", need("guest", self.get_site))
        app.router.add_get("/api/dispatches", need("guest", self.list_dispatches))
        app.router.add_post("/api/dispatches", need("owner", self.create_dispatch))
        app.router.add_patch("/api/dispatches/{id}", need("owner", self.update_dispatch))
        app.router.add_delete("/api/dispatches/{id}", need("owner", self.delete_dispatch))
        app.router.add_get("/api/controls", need("guest", self.get_controls))
        app.router.add_put("/api/controls", need("installer", self.put_controls))
        app.router.add_get("/api/history", need("guest", self.get_history))
        app.router.add_get("/api/events", need("guest", self.get_events))
        app.router.add_get("/api/stream", need("guest", self.stream))
        app.router.add_get("/api/users", need("admin", self.list_users))
        app.router.add_post("/api/users", need("admin", self.add_user))
        app.router.add_delete("/api/users/{name}", need("admin", self.remove_user))
        return app

    # ------------------------------------------------------------- site, history, events

    async def get_site(self, _request: web.Request) -> web.StreamResponse:
        """The site now."""
        return web.json_response(site_snapshot(self.controller))

    async def get_history(self, request: web.Request) -> web.StreamResponse:
        """Samples of the last `hours` (≤ 24, default 24), at most one per `step` s."""
        try:
            hours = float(request.query.get("hours", "24"))
            step = float(request.query.get("step", "0"))
            if not (0 < hours <= 24 and 0 <= step <= 3600):
                raise ValueError
        except ValueError:
            return _error(400, "expected hours in (0, 24] and step in [0, 3600] seconds")
        assert self.history is not None
        start = datetime.now(UTC) - timedelta(hours=hours)
        samples = self.history.since(start, step=timedelta(seconds=step) if step else None)
        response = web.json_response(
            {
                "interval_s": self.settings.history_interval.total_seconds(),
                "samples": [s.to_json() for s in samples],
            }
        )
        response.enable_compression()  # ~250 B per sample as JSON, a tenth gzipped
        return response

    async def get_events(self, request: web.Request) -> web.StreamResponse:
        """The newest warnings and errors of the log, newest first."""
        try:
            limit = max(1, min(200, int(request.query.get("limit", "50"))))
        except ValueError:
            return _error(400, "limit: expected an integer")
        return web.json_response({"events": self.events.recent(limit)})

    def sample(self) -> HistorySample:
        """The site now, as one history sample."""
        snapshot = site_snapshot(self.controller)
        flow = snapshot.get("flow", {})
        return HistorySample(
            datetime.now(UTC),
            flow.get("battery_w"),
            flow.get("grid_w"),
            {b["id"]: (b["soc_pct"], b["power_w"]) for b in snapshot.get("batteries", [])},
        )

    async def _sample_forever(self) -> None:
        interval = self.settings.history_interval.total_seconds()
        while True:
            try:
                if self.controller.running and self.history is not None:
                    self.history.add(self.sample())
            except Exception as error:  # a full disk must not end the sampling for good
                _LOG.warning("console_history_failed", error=repr(error))
            await asyncio.sleep(interval)

    async def stream(self, request: web.Request) -> web.StreamResponse:
        """Server-Sent Events: the site (`event: site`) every `stream_interval_s`."""
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-cache",
                "X-Accel-Buffering": "no",
            }
        )
        await response.prepare(request)
        try:
            while not self._closing.is_set():
                data = json.dumps(site_snapshot(self.controller), separators=(",", ":"))
                await response.write(f"event: site\ndata: {data}\n\n".encode())
                await wait_event(self._closing, self.stream_interval_s)
        except (ConnectionResetError, ConnectionError):
            pass
        return response

    # ------------------------------------------------------------- dispatches

    def _dispatches(self) -> DispatchProducer:
        if self._producer is None:
            settings = self.controller.config.dispatch
            self._producer = DispatchProducer(
                settings.url, settings.microgrid_id, settings.auth_key
            )
        return self._producer

    def _running(self) -> dict[str, set[int]]:
        return {u.name: set(u.running_dispatches) for u in self.controller.use_cases}

    async def list_dispatches(self, _request: web.Request) -> web.StreamResponse:
        """Every dispatch of the microgrid, with its state and use case."""
        try:
            found = await self._dispatches().list()
        except DispatchProducerError as error:
            return _producer_error(error)
        running = self._running()
        return web.json_response(
            {"dispatches": [dispatch_json(s, self.controller, running) for s in found]}
        )

    async def create_dispatch(self, request: web.Request) -> web.StreamResponse:
        """Create a battery-power dispatch (201).

        Body: `{"power_w", "batteries", "start", "duration_s", "type", "dry_run"}`;
        start "NOW" or an ISO time, batteries null for all, duration null: indefinite.
        """
        try:
            body = await _json_object(request)
            power_w = body["power_w"]
            batteries = body.get("batteries")
            start = _start(body.get("start", "NOW"))
            duration = _duration(body.get("duration_s", 900))
            dispatch_type = str(body.get("type", "BATTERY_POWER"))
            dry_run = bool(body.get("dry_run", False))
            created = await self._dispatches().create(
                dispatch_type,
                battery_power_payload(power_w),
                battery_target(batteries),
                start,
                duration,
                dry_run=dry_run,
            )
        except KeyError as error:
            return _error(400, f"{error.args[0]}: missing")
        except ValueError as error:
            return _error(400, str(error))
        except DispatchProducerError as error:
            return _producer_error(error)
        audit(
            request,
            "dispatch_created",
            dispatch=created.id,
            type=created.type,
            power_w=power_w,
            target=created.target,
        )
        return web.json_response(
            dispatch_json(created, self.controller, self._running()), status=201
        )

    async def update_dispatch(self, request: web.Request) -> web.StreamResponse:
        """Change a dispatch: any of `power_w`, `active`, `duration_s`, `start`, `batteries`."""
        try:
            dispatch_id = int(request.match_info["id"])
            body = await _json_object(request)
            unknown = set(body) - {"power_w", "active", "duration_s", "start", "batteries"}
            if unknown:
                raise ValueError(f"unknown keys {sorted(unknown)}")
            start = _start(body["start"]) if "start" in body else None
            updated = await self._dispatches().update(
                dispatch_id,
                payload=battery_power_payload(body["power_w"]) if "power_w" in body else None,
                target=battery_target(body["batteries"]) if "batteries" in body else None,
                start=None if start == "NOW" else start,
                duration=_duration(body["duration_s"]) if "duration_s" in body else "KEEP",
                active=bool(body["active"]) if "active" in body else None,
            )
        except ValueError as error:
            return _error(400, str(error))
        except DispatchProducerError as error:
            return _producer_error(error)
        audit(request, "dispatch_updated", dispatch=dispatch_id, changes=sorted(body))
        return web.json_response(dispatch_json(updated, self.controller, self._running()))

    async def delete_dispatch(self, request: web.Request) -> web.StreamResponse:
        """Delete a dispatch (a running one stops at once)."""
        try:
            dispatch_id = int(request.match_info["id"])
            await self._dispatches().delete(dispatch_id)
        except ValueError as error:
            return _error(400, str(error))
        except DispatchProducerError as error:
            return _producer_error(error)
        audit(request, "dispatch_deleted", dispatch=dispatch_id)
        return web.json_response({"deleted": dispatch_id})

    # ------------------------------------------------------------- controls

    def _controls_now(self) -> dict[str, Any]:
        controls = self.controller.config.controls
        return {
            "mode": controls.mode,
            "excluded_batteries": sorted(controls.excluded_batteries),
            "power_limit_w": controls.power_limit_w,
        }

    async def get_controls(self, _request: web.Request) -> web.StreamResponse:
        """The controls in force, and what the console's drop-in sets."""
        return web.json_response(
            {
                "effective": self._controls_now(),
                "drop_in": {"path": str(self.controls.path), "sets": self.controls.current()},
            }
        )

    async def put_controls(self, request: web.Request) -> web.StreamResponse:
        """Write the controls drop-in; wait (≤ 5 s) until the controller runs with it."""
        try:
            body = await _json_object(request)
            text, config = self.controls.prepare(body, user=current_user(request).name)
        except ValueError as error:
            problems = error.problems if isinstance(error, ControlsError) else [str(error)]
            return _error(400, "; ".join(problems), problems=problems)
        before = self._controls_now()
        try:
            self.controls.write(text)
        except OSError as error:
            return _error(500, f"cannot write {self.controls.path}: {error.strerror}")
        audit(request, "controls_changed", before=before, asked=body, file=str(self.controls.path))
        if self._reload is not None:
            self._reload()
        applied = False
        try:
            async with asyncio.timeout(CONTROLS_APPLY_TIMEOUT_S):
                while self.controller.config.controls != config.controls:  # noqa: ASYNC110
                    await asyncio.sleep(0.05)
                applied = True
        except TimeoutError:
            pass
        return web.json_response({"effective": self._controls_now(), "applied": applied})

    # ------------------------------------------------------------- users

    async def list_users(self, _request: web.Request) -> web.StreamResponse:
        """Names, roles and token ids (never hashes)."""
        return web.json_response(
            {
                "users": [
                    {"name": u.name, "role": u.role, "tokens": sorted(u.tokens)}
                    for u in self.auth.users.all()
                ],
                "roles": list(self.auth.roles),
            }
        )

    async def add_user(self, request: web.Request) -> web.StreamResponse:
        """Add a user (or replace one with `"replace": true`): `{name, role, password}`."""
        try:
            body = await _json_object(request)
            users = self.auth.users
            user = users.add(
                str(body["name"]),
                str(body["role"]),
                str(body["password"]),
                replace=bool(body.get("replace", False)),
            )
            users.save()
        except KeyError as error:
            return _error(400, f"{error.args[0]}: missing")
        except UsersFileError as error:
            return _error(500, str(error))
        except ValueError as error:
            return _error(400, str(error))
        self.auth.changed_users()
        self.auth.end_sessions_of(user.name)
        audit(request, "user_added", name=user.name, new_role=user.role)
        return web.json_response({"name": user.name, "role": user.role}, status=201)

    async def remove_user(self, request: web.Request) -> web.StreamResponse:
        """Remove a user and end their sessions."""
        name = request.match_info["name"]
        users = self.auth.users
        if users.get(name) is None:
            return _error(404, f"no user {name!r}")
        if name == current_user(request).name:
            return _error(400, "you cannot remove yourself")
        users.remove(name)
        try:
            users.save()
        except UsersFileError as error:
            return _error(500, str(error))
        self.auth.changed_users()
        self.auth.end_sessions_of(name)
        audit(request, "user_removed", name=name)
        return web.json_response({"removed": name})


async def _json_object(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except json.JSONDecodeError:
        raise ValueError("expected a JSON object") from None
    if not isinstance(body, dict):
        raise ValueError("expected a JSON object")
    return body


def _start(raw: object) -> Any:
    if raw == "NOW" or raw is None:
        return "NOW"
    if not isinstance(raw, str):
        raise ValueError(f"start: expected 'NOW' or an ISO time with a zone, got {raw!r}")
    try:
        return datetime.fromisoformat(raw)
    except ValueError:
        raise ValueError(f"start: expected 'NOW' or an ISO time with a zone, got {raw!r}") from None


def _duration(raw: object) -> timedelta | None:
    if raw is None:
        return None
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        raise ValueError(f"duration_s: expected whole seconds > 0 or null, got {raw!r}")
    return timedelta(seconds=raw)


def _producer_error(error: DispatchProducerError) -> web.Response:
    status = _ERROR_STATUS.get(error.code or "", 502)
    return _error(status, str(error))


async def start_console(
    controller: Controller,
    settings: HttpConfig,
    *,
    config_path: Path,
    drop_ins: Path | None = None,
    reload: Callable[[], None] | None = None,
) -> Console | None:
    """Start the console for the daemon; None when it is off or cannot bind.

    A console that cannot start is logged (`console_not_started`) and the controller
    runs on without it: the batteries matter more than the web page.
    """
    if settings.listen is None:
        return None
    try:
        console = Console(
            controller, settings, config_path=config_path, drop_ins=drop_ins, reload=reload
        )
        await console.start()
    except Exception as error:
        _LOG.error("console_not_started", error=str(error), listen=settings.listen)
        return None
    return console


DEMO_LISTEN: Final = "127.0.0.1:8080"


@contextlib.asynccontextmanager
async def demo_console(controller: Controller, state: Path) -> AsyncIterator[str]:
    """The console for `edge-controller demo`: yields lines to print (URL and login).

    A fresh users file in `state` with one admin `demo` and a random password; the
    controls drop-in goes to `state/demo.toml.d/` and is applied straight to the
    controller (the demo has no config watcher). 127.0.0.1:8080, else a free port.
    Yields "" when the console cannot start (the demo runs on without it).
    """
    from edge_controller.config.files import load
    from edge_controller.servers.common.serving import BindError
    from edge_controller.servers.common.users import Users

    password = secrets.token_urlsafe(9)
    users = Users(state / "console-users.json")
    users.add("demo", "admin", password)
    users.save()
    path = state / "demo.toml"
    (state / "demo-dispatch.key").write_text(controller.config.dispatch.auth_key, encoding="utf-8")
    (state / "demo-dispatch.key").chmod(0o600)
    path.write_text(_demo_config(controller), encoding="utf-8")
    applying: set[asyncio.Task[object]] = set()

    async def apply() -> None:
        try:
            await controller.apply(load(path))
        except Exception as error:
            _LOG.error("demo_controls_rejected", error=str(error))

    def reload() -> None:
        task = asyncio.get_running_loop().create_task(apply())
        applying.add(task)
        task.add_done_callback(applying.discard)

    console = None
    for listen in (DEMO_LISTEN, "127.0.0.1:0"):
        settings = HttpConfig(
            listen=listen, users_file=state / "console-users.json", history_file=None
        )
        console = Console(controller, settings, config_path=path, reload=reload)
        try:
            await console.start()
            break
        except BindError:
            console = None
    if console is None:
        yield ""
        return
    try:
        yield f"  web console               {console.url}  (log in as demo / {password})\n"
    finally:
        await console.stop()


def _demo_config(controller: Controller) -> str:
    """The demo controller's configuration as TOML (the console's drop-in goes beside)."""
    config = controller.config
    resolutions = ", ".join(
        f"{k} = {v!r}" for k, v in config.power_distribution.resolutions_w.items()
    )
    use_cases = "".join(
        f'[[use_cases]]\nkind = "{u.kind}"\nname = "{u.name}"\n'
        f"dispatch_types = {json.dumps(list(u.dispatch_types))}\n"
        for u in config.use_cases
    )
    return (
        f'[microgrid]\nurl = "{config.microgrid.url}"\n'
        f'[dispatch]\nurl = "{config.dispatch.url}"\n'
        f'microgrid_id = {config.dispatch.microgrid_id}\nkey_file = "demo-dispatch.key"\n'
        f"[power_distribution]\nresolutions = {{ {resolutions} }}\n"
        '[metrics]\nlisten = ""\n[http]\nlisten = ""\n' + use_cases
    )
