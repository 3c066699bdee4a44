"""Checking the TLS files a `grpc://` URL names before a client tries to read them.

Shared by the controller's configuration and the use cases that read URLs of their
own (the market bidder's trading and weather APIs): a use case checks its keys
without importing the configuration package.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, urlsplit

_TLS_FILE_OPTIONS = (
    "ssl_root_certificates_path",
    "ssl_certificate_chain_path",
    "ssl_private_key_path",
)


def tls_file_problems(url: str) -> list[str]:
    """Why the TLS files a URL names (CA, client certificate, its key) cannot be used.

    The Frequenz clients read them only when they connect, and a missing one ends
    start-up in a traceback; checked here, the problem names the option and the file,
    and `check-config` reports it too. Paths are taken as the clients take them:
    as given, relative to the working directory.
    """
    try:
        query = parse_qs(urlsplit(url).query)
    except ValueError:
        return []  # the URL itself is reported as unusable
    problems = []
    for option in _TLS_FILE_OPTIONS:
        for name in query.get(option, []):
            try:
                pem = Path(name).read_bytes()
            except OSError as error:
                problems.append(f"{option}: cannot read {name!r}: {error.strerror}")
                continue
            if b"-----BEGIN " not in pem:
                problems.append(f"{option}: {name!r} holds no PEM data")
    return problems
