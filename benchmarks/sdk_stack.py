"""The Frequenz SDK's own microgrid stack as a peer of our simulator, in a process of its own.

The SDK keeps its microgrid (connection, data pipeline, power actors) in process-wide
singletons, so it runs in its own process: the end-to-end test that the simulator is
accepted unpatched and `benchmarks/sdk_side_by_side.py` both drive it through this
module's small line protocol.

    python -m benchmarks.sdk_stack grpc://127.0.0.1:PORT?ssl=false

stdin, one command per line:
    propose <watts>     the battery pool's target (passive sign: negative discharges)
    exit                stop the stack and leave (so does the end of stdin)
stdout, one JSON object per line:
    {"event": "ready", "batteries": [...], "lower_w": ..., "upper_w": ...}
        once, when the pool's bounds are known (the SDK ignores proposals before)
    {"event": "proposed", "w": ..., "at": <time.time()>}
        right after `propose_power` returned
    {"event": "report", "target_w": ... | null, "at": ...}
        each power report of the pool while a target is proposed
Errors go to stderr (the SDK's own log, at WARNING).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import time
from datetime import timedelta

from frequenz.quantities import Power
from frequenz.sdk import microgrid
from frequenz.sdk.timeseries import ResamplerConfig2

READY_TIMEOUT_S = 60.0
"""How long to wait for the pool's first non-zero bounds before giving up."""


def _emit(**fields: object) -> None:
    print(json.dumps(fields), flush=True)


async def _commands() -> asyncio.Queue[str | None]:
    """Lines of stdin on a queue (None at its end), read without blocking the loop."""
    queue: asyncio.Queue[str | None] = asyncio.Queue()
    loop = asyncio.get_running_loop()

    def read() -> None:
        for line in sys.stdin:
            loop.call_soon_threadsafe(queue.put_nowait, line.strip())
        loop.call_soon_threadsafe(queue.put_nowait, None)

    loop.run_in_executor(None, read)
    return queue


async def run(url: str) -> int:
    """Hold the pool's proposals until stdin says exit; return the exit code."""
    await microgrid.initialize(url, ResamplerConfig2(resampling_period=timedelta(seconds=1)))
    pool = microgrid.new_battery_pool(priority=5)
    reports = pool.power_status.new_receiver()
    try:
        async with asyncio.timeout(READY_TIMEOUT_S):
            async for report in reports:
                bounds = report.bounds
                if bounds is not None and bounds.upper is not None and bounds.upper.as_watts():
                    lower = bounds.lower.as_watts() if bounds.lower is not None else 0.0
                    _emit(
                        event="ready",
                        batteries=sorted(int(b) for b in pool.component_ids),
                        lower_w=lower,
                        upper_w=bounds.upper.as_watts(),
                    )
                    break
    except TimeoutError:
        print(f"the battery pool had no bounds after {READY_TIMEOUT_S:g} s", file=sys.stderr)
        return 1

    async def report_forever() -> None:
        async for report in reports:
            target = report.target_power
            _emit(
                event="report",
                target_w=None if target is None else target.as_watts(),
                at=time.time(),
            )

    reporter = asyncio.create_task(report_forever())
    commands = await _commands()
    try:
        while (line := await commands.get()) is not None and line != "exit":
            match line.split():
                case ["propose", watts]:
                    await pool.propose_power(Power.from_watts(float(watts)))
                    _emit(event="proposed", w=float(watts), at=time.time())
                case _:
                    print(f"unknown command {line!r}", file=sys.stderr)
    finally:
        reporter.cancel()
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url", help="the Microgrid API, grpc://127.0.0.1:PORT?ssl=false")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    # The SDK's stack keeps background tasks that outlive run(); leave without waiting.
    code = asyncio.run(run(args.url))
    sys.stdout.flush()
    raise SystemExit(code)


if __name__ == "__main__":
    main()
