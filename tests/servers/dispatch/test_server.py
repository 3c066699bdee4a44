"""`DispatchServer` as a part of a bigger process: what it changes in the process."""

from __future__ import annotations

import gc
from pathlib import Path

from edge_controller.servers.dispatch.server import YOUNG_GENERATION_OBJECTS, DispatchServer
from tests.servers.dispatch.conftest import KEY


async def test_only_a_server_that_owns_its_process_fits_the_garbage_collector(
    db_path: Path,
) -> None:
    """The collector is the process's: a test or the demo keeps its own settings."""
    thresholds = gc.get_threshold()
    frozen = gc.get_freeze_count()
    async with DispatchServer(db_path, keys=frozenset({KEY})):
        assert gc.get_threshold() == thresholds
        assert gc.get_freeze_count() == frozen
    try:
        async with DispatchServer(db_path, keys=frozenset({KEY}), owns_process=True):
            assert gc.get_threshold()[0] == YOUNG_GENERATION_OBJECTS
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()
