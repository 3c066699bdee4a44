"""How long a test waits for what it asserts before it fails.

Tests wait for the condition they assert (a dispatch is running, an order is placed),
polling, never for a fixed time. The limit on that wait only decides how soon a *failing*
test reports: a passing one returns as soon as its condition holds. So the limit is
sized for the slowest machine the suite must pass on — a 2-core CI machine, loaded by
something else, about four times slower than a quiet developer machine — not for speed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping

PATIENCE_S = 30.0
"""The longest a test waits for a condition that a quiet machine meets within seconds."""

CALL_TIMEOUT_S = 10.0
"""A deadline for one gRPC call (or one command) that is expected to succeed."""


async def until(
    condition: Callable[[], bool],
    what: str,
    *,
    timeout_s: float = PATIENCE_S,
    poll_s: float = 0.02,
    tick: Callable[[], object] | None = None,
) -> None:
    """Wait until `condition()` holds, polling every `poll_s`; fail naming `what`.

    `tick`, when given, is called after each look that fails: a simulator on a manual clock
    (`server.service.tick`) publishes nothing unless someone ticks it.
    """
    try:
        async with asyncio.timeout(timeout_s):
            while not condition():
                if tick is not None:
                    tick()
                await asyncio.sleep(poll_s)
    except TimeoutError:
        raise AssertionError(f"not within {timeout_s:g} s: {what}") from None


async def evaluated(counts: Mapping[str, int], times: int = 3, *, what: str = "the actor") -> None:
    """Wait until an actor has decided `times` more times (its `evaluations` count).

    For a check that nothing happened: after `times` evaluations the actor has had
    its chances to act, however slow the machine — a fixed sleep only proves that
    time passed.
    """
    start = counts.get("evaluations", 0)
    await until(
        lambda: counts.get("evaluations", 0) >= start + times,
        f"{what} evaluated {times} more times",
        poll_s=0.005,
    )
