"""The operator's web console: a JSON API under `/api/`, live updates, one page.

```
  browser / script ── HTTP(S) ──▶ ConsoleServer (aiohttp, on the daemon's event loop)
                                   │ auth: users file (scrypt), session cookie + CSRF,
                                   │       bearer tokens, login rate limit, roles
                                   ├▶ SiteReader: the Controller's public state → JSON
                                   ├▶ DispatchProducer → Dispatch API (create/update/delete)
                                   ├▶ ControlsWriter: a drop-in file → the config watcher
                                   ├▶ HistoryStore (SQLite, 24 h, pruned)
                                   └▶ EventRing (warnings and errors from the log)
```

Reusable pieces for other HTTP faces (the market's dashboard): `users` (roles and
password hashes), `auth` (sessions, CSRF, tokens, rate limit as aiohttp middleware),
`http_shell` (start/stop/TLS/static assets). Import the submodules: this module
stays light (the command line imports `users` without aiohttp).
"""
