"""The last known dispatches, kept on disk for a restart without the dispatch service.

The controller saves every dispatch it knows whenever one is created, updated or
deleted. If it later starts while the dispatch service is unreachable, it runs the
known schedule from this file (and says so) until the service answers again.
The file holds the dispatches as the API's own protobuf messages (base64 in JSON), so
every field round-trips exactly; writes go to a temporary file that replaces the old
one atomically.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from frequenz.api.dispatch.v1 import dispatch_pb2
from frequenz.client.dispatch.types import Dispatch as ClientDispatch
from frequenz.dispatch import Dispatch

FORMAT_VERSION = 1


class DispatchCacheError(ValueError):
    """A cache file that cannot be read back (it is then ignored, not trusted)."""


@dataclass(frozen=True, slots=True)
class CachedSchedule:
    """What the cache held: the dispatches and when they were saved."""

    saved_at: datetime
    dispatches: tuple[Dispatch, ...]


def save(path: Path, dispatches: Iterable[ClientDispatch], now: datetime | None = None) -> None:
    """Replace the cache with `dispatches`, atomically (write, fsync, rename)."""
    document = {
        "version": FORMAT_VERSION,
        "saved_at": (now or datetime.now(UTC)).isoformat(),
        "dispatches": [
            base64.b64encode(d.to_protobuf().SerializeToString()).decode("ascii")
            for d in dispatches
        ],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    with temporary.open("w", encoding="utf-8") as file:
        json.dump(document, file)
        file.flush()
        os.fsync(file.fileno())
    temporary.replace(path)


def load(path: Path) -> CachedSchedule | None:
    """Read the cache; None when there is none.

    Raises:
        DispatchCacheError: the file exists but is not a cache this version wrote.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as error:
        raise DispatchCacheError(f"{path}: cannot read: {error.strerror}") from error
    try:
        document = json.loads(text)
        if document.get("version") != FORMAT_VERSION:
            raise DispatchCacheError(
                f"{path}: version {document.get('version')!r}, expected {FORMAT_VERSION}"
            )
        saved_at = datetime.fromisoformat(document["saved_at"])
        dispatches = []
        for encoded in document["dispatches"]:
            message = dispatch_pb2.Dispatch.FromString(base64.b64decode(encoded))
            dispatches.append(Dispatch(ClientDispatch.from_protobuf(message)))
    except DispatchCacheError:
        raise
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise DispatchCacheError(f"{path}: not a dispatch cache: {error}") from error
    return CachedSchedule(saved_at, tuple(dispatches))
