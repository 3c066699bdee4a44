"""Library noise quieted at the one place logging is configured.

(`edge_controller.common.logging`)
"""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest

from edge_controller.common.logging import (
    DUPLICATE_CID_PREFIX,
    STREAM_NOISE,
    KnownDuplicatePrefixFilter,
    StreamNoiseFilter,
    quiet_libraries,
)

STREAMING = "frequenz.client.base.streaming"
TELEMETRY_STREAM = "microgrid-client-7f5ab17620d0-component-data-11--1106988390230831978"


def _record(message: str, *args: object, level: int = logging.INFO) -> logging.LogRecord:
    return logging.LogRecord(STREAMING, level, __file__, 1, message, args, None)


def _retrying(stream: str) -> logging.LogRecord:
    return _record(
        "%s: connection ended, retrying %s in %0.3f seconds. %s.",
        stream,
        "(3/∞)",
        0.5,
        "Error: <AioRpcError ...>",
        level=logging.WARNING,
    )


def test_only_the_known_duplicate_prefix_warning_is_dropped() -> None:
    drop = KnownDuplicatePrefixFilter()
    known = logging.LogRecord(
        "frequenz.core.id",
        logging.WARNING,
        __file__,
        1,
        "Prefix '%s' is already registered. ID prefixes must be unique.",
        ("CID",),
        None,
    )
    other = logging.LogRecord(
        "frequenz.core.id",
        logging.WARNING,
        __file__,
        1,
        "Prefix '%s' is already registered. ID prefixes must be unique.",
        ("MID",),
        None,
    )
    assert known.getMessage() == DUPLICATE_CID_PREFIX
    assert not drop.filter(known)
    assert drop.filter(other)


def test_no_command_prints_the_duplicate_prefix_warning(tmp_path: Path) -> None:
    # `run` imports the whole controller (both id classes) before it reads the config.
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from edge_controller.tools.cli import main; sys.exit(main(sys.argv[1:]))",
            "run",
            "--config",
            str(tmp_path / "missing.toml"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert "already registered" not in done.stderr
    assert "already registered" not in done.stdout


def test_stream_start_and_stop_lines_are_lowered_to_debug() -> None:
    quiet = StreamNoiseFilter()
    logger = logging.getLogger(STREAMING)
    old_level = logger.level
    try:
        logger.setLevel(logging.INFO)
        for line in ("starting to stream", "stopping the stream"):
            record = _record(f"%s: {line}", TELEMETRY_STREAM)
            assert not quiet.filter(record)
            assert record.levelno == logging.DEBUG
        logger.setLevel(logging.DEBUG)  # still there for who asks for it
        assert quiet.filter(_record("%s: starting to stream", "StreamMicrogridDispatches"))
    finally:
        logger.setLevel(old_level)


def test_a_streams_retries_are_lowered_only_while_someone_reports_them() -> None:
    quiet = StreamNoiseFilter()
    quiet.reported_elsewhere(TELEMETRY_STREAM)
    assert not any(quiet.filter(_retrying(TELEMETRY_STREAM)) for _ in range(50))
    assert quiet.filter(_retrying("StreamMicrogridDispatches"))  # only that stream
    quiet.no_longer_reported(TELEMETRY_STREAM)  # e.g. its events are gone: say it
    record = _retrying(TELEMETRY_STREAM)
    assert quiet.filter(record)
    assert record.levelno == logging.WARNING


def test_other_streams_retries_show_once_per_interval_with_a_count() -> None:
    now = [100.0]
    quiet = StreamNoiseFilter(retry_log_interval_s=10.0, monotonic=lambda: now[0])
    passed = []
    for _ in range(41):  # 20 s of attempts every 0.5 s
        record = _retrying("StreamMicrogridDispatches")
        if quiet.filter(record):
            passed.append(record.getMessage())
        now[0] += 0.5
    assert len(passed) == 3  # at 0 s, 10 s, 20 s
    assert "left out" not in passed[0]
    assert passed[1].endswith("(19 retry lines left out since the last one)")
    assert passed[2].endswith("(19 retry lines left out since the last one)")
    other = _record("%s: error transforming message: %s", "s", "m", level=logging.ERROR)
    assert quiet.filter(other)  # anything else is left alone


def test_the_library_loggers_carry_the_filters(caplog: pytest.LogCaptureFixture) -> None:
    quiet_libraries()
    quiet_libraries()  # idempotent
    streaming = logging.getLogger(STREAMING)
    assert [f for f in streaming.filters if isinstance(f, StreamNoiseFilter)] == [STREAM_NOISE]
    STREAM_NOISE.reported_elsewhere(TELEMETRY_STREAM)
    with caplog.at_level(logging.INFO):
        logging.getLogger("frequenz.core.id").warning(
            "Prefix '%s' is already registered. ID prefixes must be unique.", "CID"
        )
        streaming.info("%s: starting to stream", TELEMETRY_STREAM)
        streaming.warning(
            "%s: connection ended, retrying %s in %0.3f seconds. %s.",
            TELEMETRY_STREAM,
            "(1/∞)",
            0.5,
            "Error: x",
        )
    STREAM_NOISE.no_longer_reported(TELEMETRY_STREAM)
    assert caplog.records == []
