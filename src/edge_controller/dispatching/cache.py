"""The last known dispatches, kept on disk for a restart without the dispatch service.

The controller saves every dispatch it knows whenever one is created, updated or
deleted. If it later starts while the dispatch service is unreachable, it runs the
known schedule from this file (and says so) until the service answers again.
The file holds the dispatches as the API's own protobuf messages (base64 in JSON), so
every field round-trips exactly; writes go to a temporary file that replaces the old
one atomically.

Reading never trusts the file: a disk that lost a block, a hand edit, a file some
other program wrote. Whatever is wrong with it (not UTF-8, JSON nested too deep for
the parser, a damaged protobuf message, a field the client library cannot convert)
is one `DispatchCacheError` naming the file and the problem, so the controller says
"cache unusable" and starts without it instead of ending in a traceback.
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
from google.protobuf.message import DecodeError

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
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as error:
        raise DispatchCacheError(f"{path}: cannot read: {error.strerror}") from error
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise DispatchCacheError(
            f"{path}: not UTF-8 text (byte {error.start}): not a dispatch cache"
        ) from None
    try:
        document = json.loads(text)
    except RecursionError:
        raise DispatchCacheError(
            f"{path}: JSON nested too deeply to read: not a dispatch cache"
        ) from None
    except ValueError as error:
        raise DispatchCacheError(f"{path}: not a dispatch cache: not JSON: {error}") from None
    return _schedule(path, document)


def _schedule(path: Path, document: object) -> CachedSchedule:
    """The schedule a parsed cache document holds.

    Raises:
        DispatchCacheError: it is not one this version wrote, or a dispatch in it
            cannot be decoded or converted.
    """
    if not isinstance(document, dict):
        raise DispatchCacheError(
            f"{path}: a JSON {type(document).__name__}, expected an object: not a dispatch cache"
        )
    try:
        if document.get("version") != FORMAT_VERSION:
            raise DispatchCacheError(
                f"{path}: version {document.get('version')!r}, expected {FORMAT_VERSION}"
            )
        saved_at = datetime.fromisoformat(document["saved_at"])
        dispatches = []
        for index, encoded in enumerate(document["dispatches"]):
            try:
                message = dispatch_pb2.Dispatch.FromString(base64.b64decode(encoded, validate=True))
                dispatches.append(Dispatch(ClientDispatch.from_protobuf(message)))
            except DecodeError as error:
                raise DispatchCacheError(
                    f"{path}: dispatch #{index}: not a protobuf Dispatch message: {error}"
                ) from None
            except Exception as error:
                # The client library's conversion of a message that decoded (an enum or
                # a timestamp out of its range...): whatever it raises, the entry is
                # unusable, and so is the cache (a partial schedule is not trusted).
                raise DispatchCacheError(
                    f"{path}: dispatch #{index}: unusable: {type(error).__name__}: {error}"
                ) from None
    except DispatchCacheError:
        raise
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise DispatchCacheError(f"{path}: not a dispatch cache: {error!r}") from None
    return CachedSchedule(saved_at, tuple(dispatches))
