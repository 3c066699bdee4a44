"""The dispatch service under load: list pages, creates with many readers, create rate.

`edge-controller dispatch-server` runs as a child process (its own CPU, SQLite in a
temporary directory, API keys on); the clients are raw gRPC stubs in this process.
Three figures, each against the goal of issue 16:

1. **A page of 100 out of 10 000 dispatches** (goal p99 ≤ 20 ms): 10 000 dispatches
   are created first (through the API, 50 clients), then every page of the newest-first
   list is fetched by its token, 3 times over, plus pages of a filtered list
   (a target id and a query); latency per call, p99.
2. **A create with 1 000 stream readers** (goal p99 ≤ 50 ms): 1 000 streams on 20
   channels follow the microgrid; 100 creates one after the other, each timed from
   request to response, the next sent once every reader has received the previous.
3. **Creates per second from 50 clients** (goal ≥ 500/s): 50 concurrent clients
   (5 channels) create for 3 s; successful creates over the elapsed time.

    .venv/bin/python benchmarks/dispatch_service_load.py [DISPATCHES] [--only creates]

The last line is machine-readable:

    list_page_p99_ms_10k=<float> create_p99_ms_1000_streams=<float> creates_per_s=<float>

`--only pages|creates|rate` runs one part (seconds instead of minutes, for profiling
one figure) and prints only its figure on the last line; `creates` and `rate` then
start from an empty database.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
from frequenz.api.common.v1alpha8.pagination.pagination_params_pb2 import PaginationParams
from frequenz.api.dispatch.v1 import dispatch_pb2 as pb
from frequenz.api.dispatch.v1 import dispatch_pb2_grpc as pb_grpc
from google.protobuf.struct_pb2 import Struct

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.site_processes import start_dispatch_server
from edge_controller.servers.dispatch.convert import timestamp

KEY = "load-benchmark-key"
METADATA = (("key", KEY),)
MICROGRID = 1
READERS = 1000
CLIENTS = 50
RATE_SECONDS = 3.0


def _p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]


def _request(index: int) -> pb.CreateMicrogridDispatchRequest:
    payload = Struct()
    payload.update({"power_w": -40_000.0 - index})
    start = datetime.now(UTC) + timedelta(hours=1, minutes=index % 600)
    return pb.CreateMicrogridDispatchRequest(
        microgrid_id=MICROGRID,
        dispatch_data=pb.DispatchData(
            type=("DISCHARGE", "CHARGE", "PEAK_SHAVING")[index % 3],
            start_time=timestamp(start),
            duration=900,
            target=pb.TargetComponents(
                component_ids=pb.TargetComponents.IdSet(ids=[index % 40, 100 + index % 7])
            ),
            is_active=True,
            payload=payload,
        ),
    )


async def _create_many(stubs: list[pb_grpc.MicrogridDispatchServiceAsyncStub], count: int) -> None:
    queue = iter(range(count))

    async def client(stub: pb_grpc.MicrogridDispatchServiceAsyncStub) -> None:
        for index in queue:
            await stub.CreateMicrogridDispatch(_request(index), metadata=METADATA, timeout=30)

    await asyncio.gather(*(client(stubs[i % len(stubs)]) for i in range(CLIENTS)))


async def _list_pages(stub: pb_grpc.MicrogridDispatchServiceAsyncStub) -> list[float]:
    durations = []
    filters = [
        pb.DispatchFilter(),
        pb.DispatchFilter(
            targets=[pb.TargetComponents(component_ids=pb.TargetComponents.IdSet(ids=[3]))],
            queries=["charge"],
        ),
    ]
    for repeat in range(3):
        for dispatch_filter in filters if repeat == 0 else filters[:1]:
            token = ""
            while True:
                params = PaginationParams(page_token=token) if token else PaginationParams()
                began = time.perf_counter()
                page = await stub.ListMicrogridDispatches(
                    pb.ListMicrogridDispatchesRequest(
                        microgrid_id=MICROGRID, filter=dispatch_filter, pagination_params=params
                    ),
                    metadata=METADATA,
                    timeout=30,
                )
                durations.append(time.perf_counter() - began)
                token = page.pagination_info.next_page_token
                if not token:
                    break
    return durations


async def _creates_with_readers(address: str) -> list[float]:
    channels = [grpc.aio.insecure_channel(address) for _ in range(20)]
    streams = [
        pb_grpc.MicrogridDispatchServiceStub(channels[i % 20]).StreamMicrogridDispatches(
            pb.StreamMicrogridDispatchesRequest(microgrid_id=MICROGRID), metadata=METADATA
        )
        for i in range(READERS)
    ]
    # The creator has a connection of its own, as a controller's operator would: on a
    # readers' connection its answer would queue behind their 50 stream messages.
    creator = grpc.aio.insecure_channel(address)
    stub = pb_grpc.MicrogridDispatchServiceStub(creator)
    try:
        # A stream shows nothing before its first message: give the server time to
        # register all of them, then check with one create that every reader gets it.
        await asyncio.sleep(2.0)
        await stub.CreateMicrogridDispatch(_request(0), metadata=METADATA, timeout=30)
        async with asyncio.timeout(30):
            await asyncio.gather(*(s.read() for s in streams))
        durations = []
        for index in range(100):
            began = time.perf_counter()
            await stub.CreateMicrogridDispatch(_request(index), metadata=METADATA, timeout=30)
            durations.append(time.perf_counter() - began)
            await asyncio.gather(*(s.read() for s in streams))
        return durations
    finally:
        for stream in streams:
            stream.cancel()
        for channel in [*channels, creator]:
            await channel.close()


async def _create_rate(address: str) -> float:
    channels = [grpc.aio.insecure_channel(address) for _ in range(5)]
    stubs = [pb_grpc.MicrogridDispatchServiceStub(c) for c in channels]
    done = 0
    deadline = time.perf_counter() + RATE_SECONDS

    async def client(stub: pb_grpc.MicrogridDispatchServiceAsyncStub, first: int) -> None:
        nonlocal done
        index = first
        while time.perf_counter() < deadline:
            await stub.CreateMicrogridDispatch(_request(index), metadata=METADATA, timeout=30)
            done += 1
            index += CLIENTS

    began = time.perf_counter()
    await asyncio.gather(*(client(stubs[i % 5], i) for i in range(CLIENTS)))
    elapsed = time.perf_counter() - began
    for channel in channels:
        await channel.close()
    return done / elapsed


async def main(dispatches: int, only: str | None) -> None:
    figures: list[str] = []
    with tempfile.TemporaryDirectory() as directory:
        folder = Path(directory)
        keys = folder / "keys"
        keys.write_text(KEY + "\n")
        keys.chmod(0o600)
        server, url = await start_dispatch_server(
            "dispatch-server", folder / "dispatches.sqlite", keys, folder / "server.log"
        )
        address = url.removeprefix("grpc://").removesuffix("?ssl=false")
        try:
            if only in (None, "pages"):
                channels = [grpc.aio.insecure_channel(address) for _ in range(5)]
                stubs = [pb_grpc.MicrogridDispatchServiceStub(c) for c in channels]
                began = time.perf_counter()
                await _create_many(stubs, dispatches)
                print(f"created {dispatches} dispatches in {time.perf_counter() - began:.1f} s")
                pages = await _list_pages(stubs[0])
                for channel in channels:
                    await channel.close()
                list_p99 = _p99(pages) * 1000
                print(
                    f"list pages of 100: {len(pages)} calls, median "
                    f"{statistics.median(pages) * 1000:.1f} ms, p99 {list_p99:.1f} ms (goal <= 20)"
                )
                figures.append(f"list_page_p99_ms_10k={list_p99:.1f}")
            if only in (None, "creates"):
                creates = await _creates_with_readers(address)
                create_p99 = _p99(creates) * 1000
                print(
                    f"create with {READERS} readers: median "
                    f"{statistics.median(creates) * 1000:.1f} ms, p99 {create_p99:.1f} ms "
                    "(goal <= 50)"
                )
                figures.append(f"create_p99_ms_1000_streams={create_p99:.1f}")
            if only in (None, "rate"):
                rate = await _create_rate(address)
                print(f"creates from {CLIENTS} clients: {rate:.0f}/s (goal >= 500)")
                figures.append(f"creates_per_s={rate:.0f}")
        finally:
            await server.stop()
    print(" ".join(figures))


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "dispatches", nargs="?", type=int, default=10_000, help="dispatches for the list pages"
    )
    parser.add_argument(
        "--only", choices=("pages", "creates", "rate"), help="run one part, print its figure"
    )
    return parser.parse_args()


if __name__ == "__main__":
    arguments = _arguments()
    asyncio.run(main(arguments.dispatches, arguments.only))
