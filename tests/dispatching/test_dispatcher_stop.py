"""Stopping the dispatch library leaves no stream task behind to fail later."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from edge_controller.common.compat import stop_dispatcher
from edge_controller.controller.dispatch_broadcasting import connect_dispatcher
from edge_controller.servers.dispatch.server import DispatchServer
from tests.harness import KEY


async def test_a_stopped_dispatcher_leaves_no_stream_task_running(tmp_path: Path) -> None:
    loop = asyncio.get_running_loop()
    unhandled: list[dict[str, Any]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _, context: unhandled.append(context))
    try:
        async with DispatchServer(tmp_path / "d.db", keys=frozenset({KEY})) as server:
            dispatcher = await connect_dispatcher(server.url, 1, KEY, timeout_s=5)
            streams = dict(getattr(dispatcher.client, "_streams", {}))
            assert streams, "frequenz-client-dispatch moved its streams: see stop_dispatcher"
            assert all(hasattr(s, "_task") for s in streams.values()), "see stop_dispatcher"
            await stop_dispatcher(dispatcher)
            # Before, the stream task lived on and its next retry (after ~3 s) died on
            # the closed client: "Task exception was never retrieved ... ClientNotConnected".
            assert not any(stream.is_running for stream in streams.values())
            await asyncio.sleep(0.3)
    finally:
        loop.set_exception_handler(previous)
    assert [c.get("message") for c in unhandled] == []
