import asyncio

import pytest

from edge_controller.framework.supervision import (
    ActorGaveUpError,
    RestartPolicy,
    RestartTracker,
    SupervisedActor,
)


def test_waits_double_up_to_the_maximum_with_bounded_jitter() -> None:
    policy = RestartPolicy(initial_s=1, max_s=8, limit=10, jitter=0.2)
    assert [policy.delay_s(n, 0.5) for n in range(1, 7)] == [1, 2, 4, 8, 8, 8]
    assert policy.delay_s(3, 0.0) == pytest.approx(4 * 0.8)
    assert policy.delay_s(3, 0.999999) == pytest.approx(4 * 1.2, rel=1e-5)


def test_crashes_in_a_row_give_up_past_the_limit_and_a_healthy_run_resets() -> None:
    tracker = RestartTracker(RestartPolicy(initial_s=1, max_s=60, limit=3, healthy_after_s=300))
    assert tracker.crashed(ran_for_s=1, draw=0.5) == 1
    assert tracker.crashed(ran_for_s=1, draw=0.5) == 2
    assert tracker.crashed(ran_for_s=1, draw=0.5) == 4
    # A long healthy run: the next crash starts from the first wait again.
    assert tracker.crashed(ran_for_s=301, draw=0.5) == 1
    assert tracker.crashed(ran_for_s=1, draw=0.5) == 2
    assert tracker.crashed(ran_for_s=1, draw=0.5) == 4
    assert tracker.crashed(ran_for_s=1, draw=0.5) is None


class Crashing(SupervisedActor):
    def __init__(self, crashes: int) -> None:
        super().__init__(name="crashing")
        self.crashes_left = crashes
        self.runs: list[float] = []

    async def _run(self) -> None:
        self.runs.append(asyncio.get_running_loop().time())
        if self.crashes_left > 0:
            self.crashes_left -= 1
            raise RuntimeError("boom")
        await asyncio.Event().wait()


async def test_an_actor_that_raises_is_restarted_with_growing_waits() -> None:
    actor = Crashing(crashes=3)
    restarts: list[tuple[str, float]] = []
    actor.supervise(
        RestartPolicy(initial_s=0.01, max_s=0.04, limit=5, jitter=0.0),
        on_restart=lambda name, wait_s: restarts.append((name, wait_s)),
    )
    actor.start()
    async with asyncio.timeout(5):
        while len(actor.runs) < 4:
            await asyncio.sleep(0.01)
    await actor.stop()
    assert restarts == [("crashing", 0.01), ("crashing", 0.02), ("crashing", 0.04)]
    assert actor.is_running is False


async def test_past_the_limit_the_actor_gives_up_and_says_so() -> None:
    actor = Crashing(crashes=100)
    gave_up: list[str] = []
    actor.supervise(
        RestartPolicy(initial_s=0.01, max_s=0.01, limit=2, jitter=0.0),
        on_give_up=lambda name, error: gave_up.append(f"{name}: {error}"),
    )
    actor.start()
    with pytest.raises(BaseExceptionGroup) as caught:
        await asyncio.wait_for(actor.wait(), 5)
    assert caught.group_contains(ActorGaveUpError, match="crashed 3 times in a row")
    assert gave_up == ["crashing: boom"]
    assert len(actor.runs) == 3
