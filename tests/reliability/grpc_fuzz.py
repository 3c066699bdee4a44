"""Random requests for our own gRPC servers, sent over a raw channel.

Three kinds of request body per method: random bytes (mostly not protobuf at all),
random *valid* messages of the method's request type (every field drawn from edge
values: extreme integers, NaN/inf, long and odd strings, undefined enum numbers,
out-of-range timestamps, nested structs), and such messages with bytes flipped or cut.
Bodies go out unserialised (`request_serializer=None`), so nothing on the client side
filters them.

The integer 1 is never drawn: the running controller's microgrid and dispatch ids are
1, and a random *valid* "delete dispatch 1" would test the fuzzer, not the server.
"""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import grpc
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import DecodeError, Message
from google.protobuf.message_factory import GetMessageClass

F = FieldDescriptor
_INT_EDGES = {
    F.TYPE_INT32: (-(2**31), 2**31 - 1),
    F.TYPE_SINT32: (-(2**31), 2**31 - 1),
    F.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    F.TYPE_INT64: (-(2**63), 2**63 - 1),
    F.TYPE_SINT64: (-(2**63), 2**63 - 1),
    F.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    F.TYPE_UINT32: (0, 2**32 - 1),
    F.TYPE_FIXED32: (0, 2**32 - 1),
    F.TYPE_UINT64: (0, 2**64 - 1),
    F.TYPE_FIXED64: (0, 2**64 - 1),
}
_FLOATS = [0.0, -0.0, math.nan, math.inf, -math.inf, 1e308, -1e308, 5e-324, 1e-9, -40_000.0]
_STRINGS = ["", " ", "BATTERY_POWER", "\x00", "é" * 3, "🔋", "x" * 10_000, "' OR 1=1 --", "\n\t"]


@dataclass(frozen=True, slots=True)
class Method:
    """One RPC of a service: its path, request type and whether it streams replies."""

    path: str
    request: type[Message]
    server_streaming: bool

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]


def methods(module: ModuleType, service: str) -> list[Method]:
    """Every method of `service` in the generated `*_pb2` module."""
    descriptor = module.DESCRIPTOR.services_by_name[service]
    return [
        Method(
            f"/{descriptor.full_name}/{m.name}",
            GetMessageClass(m.input_type),
            m.server_streaming,
        )
        for m in descriptor.methods
    ]


def _integer(rng: random.Random, field_type: int) -> int:
    low, high = _INT_EDGES[field_type]
    value = rng.choice([low, high, 0, rng.randint(low, high), rng.choice([2, 3, 4, 5, 7, 100])])
    return value if value != 1 else 0


def _scalar(rng: random.Random, field: FieldDescriptor) -> Any:
    if field.type in _INT_EDGES:
        return _integer(rng, field.type)
    if field.type in (F.TYPE_DOUBLE, F.TYPE_FLOAT):
        return rng.choice([*_FLOATS, rng.uniform(-1e7, 1e7)])
    if field.type == F.TYPE_BOOL:
        return rng.random() < 0.5
    if field.type == F.TYPE_STRING:
        if rng.random() < 0.5:
            return rng.choice(_STRINGS)
        return "".join(chr(rng.randint(1, 0xD7FF)) for _ in range(rng.randint(0, 40)))
    if field.type == F.TYPE_BYTES:
        return rng.randbytes(rng.randint(0, 64))
    if field.type == F.TYPE_ENUM:
        assert field.enum_type is not None
        defined = [v.number for v in field.enum_type.values]
        return rng.choice([*defined, -1, 9999, 2**31 - 1])
    raise AssertionError(f"unexpected field type {field.type}")


def fill(message: Message, rng: random.Random, depth: int = 0) -> Message:
    """Set a random selection of `message`'s fields to random values (in place)."""
    fields: list[FieldDescriptor] = list(message.DESCRIPTOR.fields)  # type: ignore[arg-type]
    for field in fields:
        if rng.random() < 0.35:
            continue
        try:
            _set(message, field, rng, depth)
        except (TypeError, ValueError, OverflowError):
            continue  # the Python API refuses the value: skip the field
    return message


def _set(message: Message, field: FieldDescriptor, rng: random.Random, depth: int) -> None:
    container = getattr(message, field.name)
    entry = field.message_type
    is_message = entry is not None
    if entry is not None and entry.GetOptions().map_entry:
        key_field = entry.fields_by_name["key"]
        value_field = entry.fields_by_name["value"]
        for _ in range(rng.randint(0, 3)):
            key = _scalar(rng, key_field)
            if value_field.type == F.TYPE_MESSAGE:
                if depth < 3:
                    fill(container[key], rng, depth + 1)
            else:
                container[key] = _scalar(rng, value_field)
        return
    if field.is_repeated:
        for _ in range(rng.choice([0, 1, 2, 3, 50])):
            if is_message:
                if depth < 3:
                    fill(container.add(), rng, depth + 1)
            else:
                container.append(_scalar(rng, field))
        return
    if is_message:
        if depth < 3:
            fill(container, rng, depth + 1)
            if not container.ListFields():
                container.SetInParent()
        return
    setattr(message, field.name, _scalar(rng, field))


def bodies(method: Method, rng: random.Random, each: int) -> list[bytes]:
    """`each` random bodies, `2 * each` random valid messages and a damaged copy of each."""
    found = [rng.randbytes(rng.randint(0, 96)) for _ in range(each)]
    valid = [fill(method.request(), rng).SerializeToString() for _ in range(2 * each)]
    found += valid
    for body in valid:
        damaged = bytearray(body or b"\x08")
        for _ in range(rng.randint(1, 4)):
            damaged[rng.randrange(len(damaged))] = rng.randrange(256)
        found.append(bytes(damaged[: rng.randint(1, len(damaged))]))
    return found


def decodes(method: Method, body: bytes) -> bool:
    try:
        method.request.FromString(body)
    except DecodeError:
        return False
    return True


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the server said: a status code (OK for a reply or a first stream message)."""

    method: Method
    body: bytes
    code: grpc.StatusCode
    details: str
    decodable: bool

    def problem(self) -> str | None:
        """Why this answer is not acceptable, or None."""
        if self.code == grpc.StatusCode.INTERNAL:
            return "INTERNAL: an exception escaped the service's own code"
        if self.code == grpc.StatusCode.UNKNOWN and "DecodeError" not in self.details:
            return "UNKNOWN: an exception escaped outside the service's error mapping"
        if self.code == grpc.StatusCode.DEADLINE_EXCEEDED and not (
            self.method.server_streaming and self.decodable
        ):
            return "no answer before the deadline"
        return None

    def __str__(self) -> str:
        return f"{self.method.name} {self.code.name} {self.details[:120]!r} body={self.body[:40]!r}"


async def call(
    channel: grpc.aio.Channel,
    method: Method,
    body: bytes,
    *,
    metadata: Sequence[tuple[str, str]] = (),
    timeout_s: float = 2.0,
) -> Outcome:
    """Send one raw body; a streaming call is read up to its first message."""
    code, details = grpc.StatusCode.OK, ""
    try:
        if method.server_streaming:
            streaming: Any = channel.unary_stream(method.path)  # raw bytes in and out
            stream = streaming(body, timeout=timeout_s, metadata=metadata)
            async for _ in stream:
                break
            stream.cancel()
        else:
            unary: Any = channel.unary_unary(method.path)
            await unary(body, timeout=timeout_s, metadata=metadata)
    except grpc.aio.AioRpcError as error:
        code, details = error.code(), error.details() or ""
    return Outcome(method, body, code, details, decodes(method, body))


async def call_all(
    channel: grpc.aio.Channel,
    requests: Sequence[tuple[Method, bytes]],
    *,
    metadata: Sequence[tuple[str, str]] = (),
    timeout_s: float = 2.0,
    concurrency: int = 64,
) -> list[Outcome]:
    """Send every request, `concurrency` at a time."""
    limit = asyncio.Semaphore(concurrency)

    async def one(method: Method, body: bytes) -> Outcome:
        async with limit:
            return await call(channel, method, body, metadata=metadata, timeout_s=timeout_s)

    return list(await asyncio.gather(*(one(m, b) for m, b in requests)))
