"""Conventions every gRPC server of this project shares.

- `--listen HOST:PORT`; port 0 picks a free port (the CLI then prints
  `listening address=HOST:PORT` as its first stdout line);
- gRPC's port sharing is off, so a stale server on the same port makes the new one
  fail instead of silently sharing the port;
- on shutdown, streams end with UNAVAILABLE, never a clean OK, because the Frequenz
  clients resume only streams that fail.
"""

from __future__ import annotations

from typing import Final

SERVER_OPTIONS: Final = [("grpc.so_reuseport", 0)]
"""Never share a port with a stale server."""


class ListenAddressError(ValueError):
    """A `--listen` value that is not a `HOST:PORT` we can bind."""


def parse_listen(listen: str) -> tuple[str, int]:
    """Split `HOST:PORT` (port 0 = any free port).

    Raises:
        ListenAddressError: with what was expected and what was given.
    """
    host, sep, port_text = listen.rpartition(":")
    if not sep or not host or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ListenAddressError(
            f"--listen: expected HOST:PORT with a port 0-65535 (e.g. 127.0.0.1:0), got {listen!r}"
        )
    return host, int(port_text)
