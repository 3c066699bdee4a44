"""Stopping an actor in a test even when its timer swallows the cancellation.

frequenz-channels 1.12.0's `Timer.ready()` cancels its own helper tasks after each
wake-up with ``try: await task / except CancelledError: pass``: a cancellation of the
actor that lands in that one loop iteration is swallowed, the actor ticks on and its
`stop()` never returns (reproduced 200 times out of 200 by cancelling in that window).
A test that polls at its actor's tick hits the window often. `stop` cancels again
until the actor is done, so such a test reports what it asserts, not a hang at
teardown.

`common.compat.Timer` works around the bug; an actor that ticks on it stops with a
plain `await actor.stop()`. Only the PowerManagingActor still ticks on the library's
`Timer`: delete this module when it moves to `compat.Timer`.
"""

from __future__ import annotations

import asyncio

from frequenz.sdk.actor import Actor

GIVE_UP_S = 10.0


async def stop(actor: Actor) -> None:
    """Stop `actor`, cancelling it again for as long as a cancellation is swallowed."""
    async with asyncio.timeout(GIVE_UP_S):
        while actor.tasks:
            actor.cancel()
            done, _ = await asyncio.wait(actor.tasks, timeout=0.2)
            if len(done) == len(actor.tasks):
                break
    await actor.stop()  # collects the tasks' outcome: raises what they raised
