"""Who is asking, and may they: sessions, CSRF, API tokens, login rate limit, roles.

```python
auth = Auth(users_file, secure=tls is not None)
app = auth.page_app(static_dir)            # /, /static/, login, logout, me; the middleware
app.router.add_get("/api/site", auth.require("guest", site_handler))
```

- **Sessions**: `POST /api/login` with `{"name", "password"}` sets the cookie `session`
  (HttpOnly, SameSite=Strict, Path=/, Secure under TLS; random 32 bytes, kept in
  memory: a restart logs everyone out) and a `csrf` cookie the page's script reads.
  Sessions end after `SESSION_IDLE_S` without a request and `SESSION_MAX_S` after login.
- **CSRF** (double submit, bound to the session): an unsafe request (POST, PUT, PATCH,
  DELETE) on a session must carry the header `X-CSRF-Token` equal to the session's
  token (the `csrf` cookie); otherwise 403. SameSite=Strict alone already keeps other
  sites' forms out; the token also covers older browsers and sibling subdomains.
- **API tokens** for scripts: `Authorization: Bearer TOKEN` (`edge-controller user
  token NAME` makes one); no cookie, no CSRF token needed.
- **Rate limit**: `LOGIN_FAILURES` failed logins of one client address within
  `LOGIN_WINDOW_S` refuse further attempts (429, `Retry-After`) until the window has
  passed; a success clears the count. A wrong bearer token counts as a failure too.
- **Roles** (`users.ROLES`): `require(role, handler)` answers 401 without a user,
  403 with a role below `role`.
- **Audit**: `audit(request, action, **fields)` logs `console_audit` with the user,
  role and client address; every handler that changes something calls it.

The users file is re-read when it changes on disk (checked at most once a second).
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import structlog
from aiohttp import web

from edge_controller.servers.common.users import ROLES, User, Users, UsersFileError

_LOG = structlog.get_logger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

SESSION_COOKIE: Final = "session"
CSRF_COOKIE: Final = "csrf"
CSRF_HEADER: Final = "X-CSRF-Token"
SESSION_IDLE_S: Final = 8 * 3600.0
SESSION_MAX_S: Final = 7 * 24 * 3600.0
LOGIN_FAILURES: Final = 5
LOGIN_WINDOW_S: Final = 300.0
_UNSAFE: Final = frozenset({"POST", "PUT", "PATCH", "DELETE"})


@dataclass(slots=True)
class Session:
    """One logged-in browser."""

    user: str
    csrf: str
    created: float
    seen: float


USER: Final = web.RequestKey("user", User)
"""The request's user (absent: nobody logged in)."""
SESSION: Final = web.RequestKey("session", Session)
"""The request's session (absent: a token, or nobody)."""
VIA: Final = web.RequestKey("via", str)
"""How the user was recognised: "session" or "token"."""


class LoginLimiter:
    """Failed logins per client address; pure (time passed in)."""

    def __init__(self, failures: int = LOGIN_FAILURES, window_s: float = LOGIN_WINDOW_S) -> None:
        """Allow `failures` failures per `window_s` per client."""
        self.failures = failures
        self.window_s = window_s
        self._failed: dict[str, deque[float]] = {}

    def retry_after(self, client: str, now: float) -> float:
        """Seconds until `client` may try again; 0: now."""
        failed = self._failed.get(client)
        if failed is None:
            return 0.0
        while failed and failed[0] <= now - self.window_s:
            failed.popleft()
        if not failed:
            del self._failed[client]
            return 0.0
        if len(failed) < self.failures:
            return 0.0
        return failed[0] + self.window_s - now

    def failed(self, client: str, now: float) -> None:
        """Count a failure."""
        if len(self._failed) > 10_000:  # bounded memory under a spray of addresses
            self._failed.clear()
        self._failed.setdefault(client, deque(maxlen=self.failures)).append(now)

    def succeeded(self, client: str) -> None:
        """Forget `client`'s failures."""
        self._failed.pop(client, None)


class Auth:
    """The users, sessions and checks of one HTTP face (see the module docstring)."""

    def __init__(
        self,
        users_file: Path,
        *,
        secure: bool,
        roles: tuple[str, ...] = ROLES,
        add_user_hint: str = "edge-controller user add NAME --role admin --users-file FILE",
        limiter: LoginLimiter | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        """Read users from `users_file`; `secure`: cookies only over HTTPS.

        `roles` (least first) and `add_user_hint` (logged when the file has no users)
        let another face (the market) use its own roles.
        """
        self.users_file = users_file
        self.secure = secure
        self.roles = roles
        self.add_user_hint = add_user_hint
        self.limiter = limiter or LoginLimiter()
        self._monotonic = monotonic
        self._sessions: dict[str, Session] = {}
        self._users = Users(users_file, roles=roles)
        self._users_stamp: tuple[int, int] | None = None
        self._checked_at = -1e9
        self.reload_users()

    # ------------------------------------------------------------- users

    def reload_users(self) -> Users:
        """Re-read the users file if it changed (at most once a second); the users."""
        now = self._monotonic()
        if now - self._checked_at < 1.0:
            return self._users
        self._checked_at = now
        try:
            stat = self.users_file.stat()
            stamp: tuple[int, int] | None = (stat.st_mtime_ns, stat.st_size)
        except OSError:
            stamp = None
        if stamp == self._users_stamp and self._users_stamp is not None:
            return self._users
        try:
            self._users = Users.load(self.users_file, self.roles)
        except UsersFileError as error:
            _LOG.error("users_file_unusable", problem=str(error))
            return self._users
        self._users_stamp = stamp
        if not len(self._users):
            _LOG.warning(
                "console_has_no_users",
                users_file=str(self.users_file),
                hint=self.add_user_hint,
            )
        return self._users

    @property
    def users(self) -> Users:
        """The users as last read."""
        return self.reload_users()

    def changed_users(self) -> None:
        """The caller saved `users`: take its stamp so it is not re-read needlessly."""
        self._checked_at = -1e9

    # ------------------------------------------------------------- the middleware

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Find the user (bearer token, else session cookie); check CSRF on a session."""
        header = request.headers.get("Authorization", "")
        if header.startswith("Bearer "):
            client = _client(request)
            wait = self.limiter.retry_after(client, self._monotonic())
            if wait > 0:
                return _too_many(wait)
            user = self.users.by_token(header.removeprefix("Bearer ").strip())
            if user is None:
                self.limiter.failed(client, self._monotonic())
                return _error(401, "unknown API token")
            request[USER] = user
            request[VIA] = "token"
            return await handler(request)
        session = self._session(request.cookies.get(SESSION_COOKIE, ""))
        if session is not None:
            user = self.users.get(session.user)
            if user is None:  # removed from the file meanwhile
                self._sessions.pop(request.cookies.get(SESSION_COOKIE, ""), None)
            else:
                if request.method in _UNSAFE and not secrets.compare_digest(
                    request.headers.get(CSRF_HEADER, ""), session.csrf
                ):
                    return _error(403, f"missing or wrong {CSRF_HEADER} header")
                request[USER] = user
                request[SESSION] = session
                request[VIA] = "session"
        return await handler(request)

    def _session(self, session_id: str) -> Session | None:
        session = self._sessions.get(session_id) if session_id else None
        if session is None:
            return None
        now = self._monotonic()
        if now - session.seen > SESSION_IDLE_S or now - session.created > SESSION_MAX_S:
            del self._sessions[session_id]
            return None
        session.seen = now
        return session

    # ------------------------------------------------------------- roles

    def require(self, role: str, handler: Handler) -> Handler:
        """`handler`, answering 401 without a user and 403 below `role` instead."""
        if role not in self.roles:
            raise ValueError(f"unknown role {role!r}; roles: {list(self.roles)}")

        async def checked(request: web.Request) -> web.StreamResponse:
            user = request.get(USER)
            if user is None:
                return _error(401, "log in first")
            if not self.users.at_least(user.role, role):
                return _error(403, f"needs the role {role} or above; you are {user.role}")
            return await handler(request)

        return checked

    # ------------------------------------------------------------- login

    def page_app(self, static_dir: Path) -> web.Application:
        """An application for one page behind this login, to add its API routes to.

        `/` is `static_dir/index.html` (never cached: it logs in through the API),
        `/static/` the rest of `static_dir`; `POST /api/login`, `POST /api/logout`,
        `GET /api/me`; every route passes this login's middleware; bodies up to 64 KiB.
        """
        app = web.Application(middlewares=[self.middleware], client_max_size=64 * 1024)
        app.router.add_post("/api/login", self.login)
        app.router.add_post("/api/logout", self.logout)
        app.router.add_get("/api/me", self.require(self.roles[0], self.me))

        async def index(_request: web.Request) -> web.StreamResponse:
            return web.FileResponse(
                static_dir / "index.html", headers={"Cache-Control": "no-cache"}
            )

        app.router.add_get("/", index)
        app.router.add_static("/static/", static_dir, append_version=False)
        return app

    async def login(self, request: web.Request) -> web.StreamResponse:
        """Check a name and password; start a session (cookies) or refuse."""
        client = _client(request)
        wait = self.limiter.retry_after(client, self._monotonic())
        if wait > 0:
            _LOG.warning("console_login_rate_limited", client=client, retry_after_s=round(wait))
            return _too_many(wait)
        try:
            body = await request.json()
            name = str(body["name"])
            password = str(body["password"])
        except (ValueError, KeyError, TypeError):
            return _error(400, 'expected JSON {"name": ..., "password": ...}')
        users = self.users
        # scrypt takes tens of ms: off the event loop that runs the controller.
        user = await asyncio.get_running_loop().run_in_executor(
            None, users.authenticate, name, password
        )
        if user is None:
            self.limiter.failed(client, self._monotonic())
            _LOG.warning("console_login_failed", user=name[:64], client=client)
            return _error(401, "unknown name or wrong password")
        self.limiter.succeeded(client)
        session_id = secrets.token_urlsafe(32)
        now = self._monotonic()
        session = Session(user.name, secrets.token_urlsafe(24), now, now)
        if len(self._sessions) > 10_000:
            oldest = min(self._sessions, key=lambda s: self._sessions[s].seen)
            del self._sessions[oldest]
        self._sessions[session_id] = session
        _LOG.info("console_login", user=user.name, role=user.role, client=client)
        response = web.json_response({"name": user.name, "role": user.role, "csrf": session.csrf})
        response.set_cookie(
            SESSION_COOKIE,
            session_id,
            httponly=True,
            samesite="Strict",
            secure=self.secure,
            path="/",
            max_age=int(SESSION_MAX_S),
        )
        response.set_cookie(
            CSRF_COOKIE,
            session.csrf,
            httponly=False,
            samesite="Strict",
            secure=self.secure,
            path="/",
            max_age=int(SESSION_MAX_S),
        )
        return response

    async def logout(self, request: web.Request) -> web.StreamResponse:
        """End the session (if any); clear the cookies."""
        session_id = request.cookies.get(SESSION_COOKIE, "")
        session = self._sessions.get(session_id)
        if session is not None:
            if not secrets.compare_digest(request.headers.get(CSRF_HEADER, ""), session.csrf):
                return _error(403, f"missing or wrong {CSRF_HEADER} header")
            del self._sessions[session_id]
            _LOG.info("console_logout", user=session.user, client=_client(request))
        response = web.json_response({"logged_out": True})
        response.del_cookie(SESSION_COOKIE, path="/")
        response.del_cookie(CSRF_COOKIE, path="/")
        return response

    async def me(self, request: web.Request) -> web.StreamResponse:
        """Who is logged in: name, role, and the roles (least first)."""
        user = current_user(request)
        session = request.get(SESSION)
        return web.json_response(
            {
                "name": user.name,
                "role": user.role,
                "roles": list(self.roles),
                "csrf": session.csrf if session is not None else None,
            }
        )

    def end_sessions_of(self, name: str) -> None:
        """Log `name` out everywhere (removed user, changed role)."""
        for session_id in [s for s, v in self._sessions.items() if v.user == name]:
            del self._sessions[session_id]


def _client(request: web.Request) -> str:
    return request.remote or "unknown"


def current_user(request: web.Request) -> User:
    """The user of a request that passed `require`."""
    return request[USER]


def audit(request: web.Request, action: str, **fields: Any) -> None:
    """Log a change made through the HTTP face, with who made it (`console_audit`)."""
    user = request.get(USER)
    _LOG.info(
        "console_audit",
        action=action,
        user=user.name if user else None,
        role=user.role if user else None,
        via=request.get(VIA),
        client=_client(request),
        **fields,
    )


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def _too_many(wait_s: float) -> web.Response:
    response = _error(429, f"too many failed logins; try again in {int(wait_s) + 1} s")
    response.headers["Retry-After"] = str(int(wait_s) + 1)
    return response
