from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from frequenz.client.dispatch.recurrence import Frequency, RecurrenceRule
from frequenz.client.dispatch.types import Dispatch as ClientDispatch
from frequenz.client.dispatch.types import DispatchId, TargetIds
from frequenz.dispatch import Dispatch

from edge_controller.controller.offline_schedule import withdrawn
from edge_controller.dispatching import cache
from edge_controller.dispatching.offline import changes_at

T0 = datetime(2026, 6, 21, 12, 0, tzinfo=UTC)


def dispatch(
    dispatch_id: int, start: datetime, seconds: int, every_minute: bool = False
) -> Dispatch:
    return Dispatch(
        ClientDispatch(
            id=DispatchId(dispatch_id),
            type="BATTERY_POWER",
            start_time=start,
            duration=timedelta(seconds=seconds),
            target=TargetIds(11),
            active=True,
            dry_run=False,
            payload={"power_w": -1000.0},
            recurrence=RecurrenceRule(frequency=Frequency.MINUTELY, interval=1)
            if every_minute
            else RecurrenceRule(),
            create_time=T0,
            update_time=T0,
        )
    )


def test_offline_schedule_starts_and_stops_at_the_occurrence_boundaries() -> None:
    schedule = [dispatch(1, T0, 30), dispatch(2, T0 + timedelta(seconds=50), 20, every_minute=True)]
    changes, running = changes_at(schedule, frozenset(), T0 + timedelta(seconds=1))
    assert [int(d.id) for d in changes.started] == [1]
    changes, running = changes_at(schedule, running, T0 + timedelta(seconds=31))
    assert [int(d.id) for d in changes.stopped] == [1]
    assert running == frozenset()
    # The recurring one runs 50-70 s, then again 110-130 s after T0.
    _, running = changes_at(schedule, running, T0 + timedelta(seconds=55))
    assert running == {2}
    _, running = changes_at(schedule, running, T0 + timedelta(seconds=80))
    assert running == frozenset()
    _, running = changes_at(schedule, running, T0 + timedelta(seconds=111))
    assert running == {2}


def test_cache_round_trips_every_field_and_rejects_foreign_files(tmp_path: Path) -> None:
    path = tmp_path / "state" / "cache.json"
    original = [dispatch(1, T0, 30), dispatch(2, T0, 20, every_minute=True)]
    cache.save(path, original, now=T0)
    loaded = cache.load(path)
    assert loaded is not None
    assert loaded.saved_at == T0
    assert [d.to_protobuf() for d in loaded.dispatches] == [d.to_protobuf() for d in original]
    assert cache.load(tmp_path / "absent.json") is None
    path.write_text("{not json")
    with pytest.raises(cache.DispatchCacheError, match="not a dispatch cache"):
        cache.load(path)


def test_withdrawn_copy_is_deleted_and_not_started() -> None:
    original = dispatch(1, datetime.now(UTC) - timedelta(seconds=5), 60)
    assert original.started
    copy = withdrawn(original)
    assert copy.deleted
    assert not copy.started
    assert int(copy.id) == 1
