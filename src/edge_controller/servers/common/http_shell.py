"""An aiohttp application served on the running event loop: bind, TLS, stop.

```python
shell = HttpShell(app, "127.0.0.1:0", tls=ServerTls.from_files(cert, key))
await shell.start()          # BindError (source "http.listen") when the port is taken
print(shell.url)             # https://127.0.0.1:PORT/
await shell.stop()
```

Shared by every HTTP face of the project (the console; the market's API can reuse it).
Security headers on every answer: a strict Content-Security-Policy (own scripts and
styles only), no framing, no sniffing, no referrer.
"""

from __future__ import annotations

import ssl
from pathlib import Path

from aiohttp import web

from edge_controller.servers.common.serving import BindError, parse_listen

SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


async def _security_headers(_request: web.Request, response: web.StreamResponse) -> None:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)


def ssl_context(certificate: Path, key: Path) -> ssl.SSLContext:
    """A server TLS context (TLS 1.2 or newer) for a PEM chain and its key."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(certificate, key)
    return context


class HttpShell:
    """Serve `app` on `listen` (`HOST:PORT`, port 0 picks one) from the current loop."""

    def __init__(
        self,
        app: web.Application,
        listen: str,
        *,
        tls: ssl.SSLContext | None = None,
        source: str = "http.listen",
        shutdown_timeout_s: float = 1.0,
    ) -> None:
        """Prepare; nothing is bound before `start`.

        Raises:
            ListenAddressError: `listen` is not HOST:PORT.
        """
        host, self._port = parse_listen(listen)
        self._host = host.removeprefix("[").removesuffix("]")
        self._listen = listen
        self._source = source
        self._tls = tls
        self._shutdown_timeout_s = shutdown_timeout_s
        app.on_response_prepare.append(_security_headers)
        self._runner = web.AppRunner(
            app, access_log=None, handle_signals=False, shutdown_timeout=shutdown_timeout_s
        )
        self._address: str | None = None

    @property
    def address(self) -> str:
        """`HOST:PORT` bound (the real port when 0 was asked for).

        Raises:
            RuntimeError: before `start`.
        """
        if self._address is None:
            raise RuntimeError("HttpShell.address: not started")
        return self._address

    @property
    def url(self) -> str:
        """The base URL, `http(s)://HOST:PORT/`."""
        return f"{'https' if self._tls else 'http'}://{self.address}/"

    async def start(self) -> None:
        """Bind and serve.

        Raises:
            BindError: the address cannot be bound; names `source`, the address, why.
        """
        await self._runner.setup()
        site = web.TCPSite(
            self._runner,
            self._host,
            self._port,
            ssl_context=self._tls,
            reuse_address=False,
        )
        try:
            await site.start()
        except OSError as error:
            await self._runner.cleanup()
            raise BindError.from_os_error(self._listen, error, source=self._source) from error
        host, port = self._runner.addresses[0][:2]
        self._address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    async def stop(self) -> None:
        """Stop serving and close the socket."""
        await self._runner.cleanup()
