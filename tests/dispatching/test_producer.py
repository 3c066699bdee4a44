"""The producer side: `DispatchProducer` and `edge-controller dispatch`, against our server.

Everything talks to a real `DispatchServer` on 127.0.0.1 with a temporary SQLite file;
the command line runs as operators run it, as a process (started without blocking the
event loop the server runs on).
"""

from __future__ import annotations

import argparse
import math
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from frequenz.client.dispatch.types import TargetIds

from edge_controller.dispatching.producer import (
    DispatchProducer,
    DispatchProducerError,
    DispatchSummary,
)
from edge_controller.servers.dispatch.server import DispatchServer
from edge_controller.tools.dispatch_command import (
    duration_text,
    parse_batteries,
    parse_duration,
    parse_power,
    parse_start,
    read_key,
)
from tests.harness import run_cli

KEY = "producer-key-4711"


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[DispatchServer]:
    async with DispatchServer(
        tmp_path / "dispatches.db",
        "127.0.0.1:0",
        keys=frozenset({KEY}),
        microgrid_ids=frozenset({1}),
    ) as running:
        yield running


@pytest.fixture
async def producer(server: DispatchServer) -> AsyncIterator[DispatchProducer]:
    async with DispatchProducer(server.url, 1, KEY) as made:
        yield made


def whole_seconds_ahead(seconds: int) -> datetime:
    return datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=seconds)


# ---------------------------------------------------------------- the helper


async def test_create_list_and_delete_through_the_helper(
    producer: DispatchProducer, server: DispatchServer
) -> None:
    start = whole_seconds_ahead(60)
    first = await producer.create_battery_power(-40_000, [21, 11], start, timedelta(minutes=15))
    second = await producer.create_battery_power(
        5_000.5, None, "NOW", None, dry_run=True, dispatch_type="MARKET_BID"
    )
    assert (first, second) == (1, 2)

    listed = await producer.list()
    assert listed[0] == DispatchSummary(
        id=first,
        type="BATTERY_POWER",
        start=start,
        duration=timedelta(minutes=15),
        target="ids:11,21",
        payload={"power_w": -40_000.0},
        active=True,
        dry_run=False,
    )
    now_started = listed[1]
    assert (now_started.id, now_started.type, now_started.target) == (
        second,
        "MARKET_BID",
        "categories:BATTERY",
    )
    assert now_started.duration is None
    assert now_started.dry_run
    assert now_started.payload == {"power_w": 5_000.5}
    assert now_started.start <= datetime.now(UTC)

    await producer.delete(first)
    assert [s.id for s in await producer.list()] == [second]
    with pytest.raises(DispatchProducerError) as caught:
        await producer.delete(first)
    assert caught.value.code == "NOT_FOUND"
    assert str(caught.value) == f"NOT_FOUND: dispatch {first} not found in microgrid 1"
    assert len(server.service) == 1


async def test_a_dispatch_power_is_changed_in_place(producer: DispatchProducer) -> None:
    made = await producer.create_battery_power(-40_000, [11], "NOW", timedelta(minutes=15))
    updated = await producer.set_battery_power(made, -55_000.0)
    assert (updated.id, updated.payload) == (made, {"power_w": -55_000.0})
    (listed,) = await producer.list()
    assert (listed.id, listed.payload, listed.target) == (made, {"power_w": -55_000.0}, "ids:11")
    with pytest.raises(ValueError, match="power"):
        await producer.set_battery_power(made, math.nan)
    with pytest.raises(DispatchProducerError) as caught:
        await producer.set_battery_power(made + 1, 1_000.0)
    assert caught.value.code == "NOT_FOUND"


async def test_get_and_update_through_the_helper(producer: DispatchProducer) -> None:
    start = whole_seconds_ahead(120)
    made = await producer.create_battery_power(-40_000, [11], start, timedelta(minutes=15))
    got = await producer.get(made)
    assert (got.id, got.start, got.end_time) == (made, start, start + timedelta(minutes=15))
    assert got.schedule is not None
    assert (got.schedule.state, got.schedule.next_start) == ("pending", start)
    later = start + timedelta(minutes=5)
    updated = await producer.update(
        made,
        payload={"power_w": -10_000.0, "note": "kept as given"},
        target=TargetIds(11, 21),
        start=later,
        duration=None,
        active=False,
    )
    assert (updated.start, updated.duration, updated.target, updated.active) == (
        later,
        None,
        "ids:11,21",
        False,
    )
    assert updated.payload == {"power_w": -10_000.0, "note": "kept as given"}
    assert updated.schedule is not None
    assert updated.schedule.state == "inactive"
    assert await producer.get(made) == updated
    with pytest.raises(ValueError, match=r"^update: nothing to change"):
        await producer.update(made)
    with pytest.raises(ValueError, match=r"^duration: expected a whole number"):
        await producer.update(made, duration=timedelta(seconds=1.5))
    with pytest.raises(DispatchProducerError) as caught:
        await producer.get(made + 1)
    assert caught.value.code == "NOT_FOUND"


async def test_the_general_create_returns_the_stored_dispatch(producer: DispatchProducer) -> None:
    created = await producer.create(
        "MARKET_BID",
        {"price_eur_mwh": 93.5, "area": "10YDE-EON------1"},
        TargetIds(11),
        whole_seconds_ahead(120),
        timedelta(minutes=15),
    )
    assert created.type == "MARKET_BID"
    assert created.payload == {"price_eur_mwh": 93.5, "area": "10YDE-EON------1"}
    assert await producer.list() == [created]


async def test_the_service_rounds_a_start_to_the_nearest_second(
    producer: DispatchProducer,
) -> None:
    start = whole_seconds_ahead(60)
    await producer.create_battery_power(1_000, [11], start + timedelta(seconds=0.7), None)
    [stored] = await producer.list()
    assert stored.start == start + timedelta(seconds=1)


async def test_a_refused_create_shows_the_status_code_and_the_servers_message(
    producer: DispatchProducer,
) -> None:
    with pytest.raises(DispatchProducerError) as caught:
        await producer.create_battery_power(
            -40_000, [11], datetime(9500, 1, 1, tzinfo=UTC), timedelta(minutes=5)
        )
    assert caught.value.code == "INVALID_ARGUMENT"
    assert str(caught.value) == (
        "INVALID_ARGUMENT: start_time: expected a time before 9000-01-01T00:00:00Z, "
        "got 9500-01-01T00:00:00Z"
    )
    with pytest.raises(DispatchProducerError, match=r"^INVALID_ARGUMENT: payload: \d+ bytes"):
        await producer.create("BIG", {"blob": "x" * 60_000}, TargetIds(11), "NOW", None)


async def test_refusals_for_the_key_and_the_microgrid(server: DispatchServer) -> None:
    async with DispatchProducer(server.url, 1, "not-the-key") as wrong_key:
        with pytest.raises(DispatchProducerError) as caught:
            await wrong_key.list()
    assert str(caught.value) == "UNAUTHENTICATED: invalid API key"
    assert "not-the-key" not in repr(wrong_key)
    async with DispatchProducer(server.url, 2, KEY) as other_microgrid:
        with pytest.raises(DispatchProducerError, match=r"^NOT_FOUND: microgrid 2 is not served"):
            await other_microgrid.create_battery_power(1_000, [11], "NOW", None)


async def test_an_unreachable_service_is_unavailable() -> None:
    async with DispatchProducer("grpc://127.0.0.1:1?ssl=false", 1, KEY) as nowhere:
        with pytest.raises(DispatchProducerError) as caught:
            await nowhere.list()
    assert caught.value.code == "UNAVAILABLE"
    assert str(caught.value).startswith("UNAVAILABLE: ")


@pytest.mark.parametrize(
    ("power_w", "batteries", "start", "duration", "message"),
    [
        (math.nan, [11], "NOW", None, "power_w: expected a finite power in W, got nan"),
        (math.inf, [11], "NOW", None, "power_w: expected a finite power in W, got inf"),
        (1.0, [], "NOW", None, "batteries: empty; pass None to target every battery"),
        (1.0, [11, 0], "NOW", None, "batteries: expected battery ids > 0, got [0]"),
        (1.0, [11], "SOON", None, "start: expected 'NOW' or a timezone-aware datetime"),
        (
            1.0,
            [11],
            datetime(2030, 1, 1),
            None,
            "start: expected a timezone-aware datetime, got 2030-01-01T00:00:00 without a zone",
        ),
        (
            1.0,
            [11],
            datetime(2020, 1, 1, tzinfo=UTC),
            None,
            "start: 2020-01-01T00:00:00+00:00 is not in the future",
        ),
        (
            1.0,
            [11],
            "NOW",
            timedelta(0),
            "duration: expected a whole number of seconds > 0, or None (indefinite), got 0 s",
        ),
        (1.0, [11], "NOW", timedelta(seconds=-5), "duration: expected a whole number"),
        (
            1.0,
            [11],
            "NOW",
            timedelta(seconds=1.5),
            "duration: expected a whole number of seconds > 0, or None (indefinite), got 1.5 s",
        ),
    ],
)
async def test_bad_arguments_are_refused_before_anything_is_sent(
    producer: DispatchProducer,
    server: DispatchServer,
    power_w: float,
    batteries: list[int],
    start: datetime | str,
    duration: timedelta | None,
    message: str,
) -> None:
    with pytest.raises(ValueError, match="^" + re.escape(message)):
        await producer.create_battery_power(power_w, batteries, start, duration)  # type: ignore[arg-type]
    assert len(server.service) == 0


def test_bad_construction_arguments_name_the_argument() -> None:
    with pytest.raises(ValueError, match=r"^url: Invalid scheme 'http'"):
        DispatchProducer("http://127.0.0.1:1", 1, KEY)
    with pytest.raises(ValueError, match=r"^microgrid_id: expected an id > 0, got 0"):
        DispatchProducer("grpc://127.0.0.1:1?ssl=false", 0, KEY)
    with pytest.raises(ValueError, match=r"^auth_key: empty"):
        DispatchProducer("grpc://127.0.0.1:1?ssl=false", 1, "")


# ---------------------------------------------------------------- flag values


@pytest.mark.parametrize(
    ("text", "watts"),
    [("-40 kW", -40_000.0), ("500 W", 500.0), ("1.2MW", 1_200_000.0), ("+0.5 kW", 500.0)],
)
def test_power_flag_values(text: str, watts: float) -> None:
    assert parse_power(text) == pytest.approx(watts)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("-40", "(a unit is required)"),
        ("40 kw", "(unit 'kw'; use W, kW, MW or GW)"),
        ("lots", "got 'lots'"),
        ("1e999 W", "expected a finite power, got '1e999 W'"),
    ],
)
def test_bad_power_flag_values(text: str, problem: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match=re.escape(problem)):
        parse_power(text)


def test_duration_and_start_flag_values() -> None:
    assert parse_duration("15m") == timedelta(minutes=15)
    assert parse_duration("900s") == timedelta(seconds=900)
    assert parse_duration("1h30m") == timedelta(minutes=90)
    assert parse_duration("none") is None
    for bad in ("900", "0s", "15 min", ""):
        with pytest.raises(argparse.ArgumentTypeError, match="expected a duration"):
            parse_duration(bad)
    assert parse_start("NOW") == "NOW"
    assert parse_start("+30s") == timedelta(seconds=30)
    assert parse_start("2026-06-21T14:00:00Z") == datetime(2026, 6, 21, 14, tzinfo=UTC)
    with pytest.raises(argparse.ArgumentTypeError, match="without one"):
        parse_start("2026-06-21T14:00:00")
    with pytest.raises(argparse.ArgumentTypeError, match=r"expected NOW, \+DURATION"):
        parse_start("tomorrow")
    assert parse_batteries("21, 11,21") == (11, 21)
    with pytest.raises(argparse.ArgumentTypeError, match="expected battery ids > 0"):
        parse_batteries("11,,0")
    assert [duration_text(d) for d in (timedelta(seconds=90), timedelta(hours=1), None)] == [
        "1m30s",
        "1h",
        "none",
    ]


def test_the_key_file_holds_one_key_and_the_key_is_never_in_a_message(tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text(f"# lab key\n\n  {KEY}  \n")
    assert read_key(key_file, {}) == KEY
    assert read_key(None, {"EDGE_CONTROLLER_DISPATCH_KEY": f" {KEY}\n"}) == KEY
    key_file.write_text(f"{KEY}\nsecond-key\n")
    with pytest.raises(ValueError, match="holds 2 keys; expected exactly one") as caught:
        read_key(key_file, {})
    assert KEY not in str(caught.value)
    with pytest.raises(ValueError, match="--key-file: missing; pass --key-file FILE or set"):
        read_key(None, {})


# ---------------------------------------------------------------- the command line


async def test_cli_create_then_list_shows_it_then_delete(
    server: DispatchServer, tmp_path: Path
) -> None:
    key_file = tmp_path / "key"
    key_file.write_text(KEY + "\n")
    options = ["--url", server.url, "--key-file", str(key_file)]
    code, out, err = await run_cli(
        "dispatch",
        *options,
        "create",
        "--power",
        "-40 kW",
        "--batteries",
        "11,21",
        "--start",
        "+1m",
        "--duration",
        "15m",
        "--site-rating",
        "1 MW",
    )
    assert code == 0, err
    created = re.fullmatch(
        r"created id=1 type=BATTERY_POWER start=(\S+)Z duration=15m target=ids:11,21 "
        r"active=yes state=pending next_start=(\S+)Z "
        r'dry_run=no payload=\{"power_w":-40000\.0\}\n',
        out,
    )
    assert created, out

    # Connection options may follow the action too; the key may come from the environment.
    code, out, err = await run_cli(
        "dispatch",
        "create",
        "--url",
        server.url,
        "--power=-1.5MW",
        "--duration",
        "none",
        "--dry-run",
        "--force",
        env={"EDGE_CONTROLLER_DISPATCH_KEY": KEY},
    )
    assert code == 0, err

    code, out, err = await run_cli(
        "dispatch",
        "list",
        env={"EDGE_CONTROLLER_DISPATCH_URL": server.url, "EDGE_CONTROLLER_DISPATCH_KEY": KEY},
    )
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == (
        f"id=1 type=BATTERY_POWER start={created.group(1)}Z duration=15m target=ids:11,21 "
        f"active=yes state=pending next_start={created.group(1)}Z "
        'dry_run=no payload={"power_w":-40000.0}'
    )
    assert re.fullmatch(
        r"id=2 type=BATTERY_POWER start=\S+Z duration=none target=categories:BATTERY "
        r"active=yes state=running next_start=none "
        r'dry_run=yes payload=\{"power_w":-1500000\.0\}',
        lines[1],
    ), lines[1]
    assert len(lines) == 2

    code, out, err = await run_cli("dispatch", *options, "delete", "1")
    assert (code, out) == (0, "deleted id=1\n"), err
    async with DispatchProducer(server.url, 1, KEY) as producer:
        assert [s.id for s in await producer.list()] == [2]


async def test_cli_bad_power_exits_2_naming_the_flag(server: DispatchServer) -> None:
    code, out, err = await run_cli(
        "dispatch",
        "--url",
        server.url,
        "create",
        "--power",
        "-40",
        env={"EDGE_CONTROLLER_DISPATCH_KEY": KEY},
    )
    assert code == 2
    assert out == ""
    assert (
        "argument --power: expected a power with a unit, like '-40 kW' or '500 W', got '-40' "
        "(a unit is required)"
    ) in err
    assert len(server.service) == 0


async def test_cli_input_errors_exit_2_and_service_errors_exit_1(
    server: DispatchServer, tmp_path: Path
) -> None:
    key_file = tmp_path / "key"
    key_file.write_text(KEY)
    options = ["dispatch", "--url", server.url, "--key-file", str(key_file)]

    code, _, err = await run_cli(*options, "create", "--power", "1 kW", "--duration", "900")
    assert code == 2
    assert "argument --duration: expected a duration with units, like 15m" in err

    code, _, err = await run_cli(
        *options, "create", "--power", "1 kW", "--start", "2020-01-01T00:00Z"
    )
    assert code == 2
    assert "edge-controller dispatch create: --start: 2020-01-01T00:00:00+00:00 is not in " in err

    code, _, err = await run_cli("dispatch", "--url", server.url, "list")
    assert code == 2
    assert "--key-file: missing; pass --key-file FILE or set EDGE_CONTROLLER_DISPATCH_KEY" in err

    code, _, err = await run_cli(
        "dispatch", "--url", "http://x", "--key-file", str(key_file), "list"
    )
    assert code == 2
    assert "edge-controller dispatch list: --url: Invalid scheme 'http'" in err

    code, out, err = await run_cli(*options, "delete", "9")
    assert (code, out) == (1, "")
    assert f"edge-controller dispatch delete: {server.url}: NOT_FOUND: dispatch 9 not found" in err

    code, _, err = await run_cli(*options, "--microgrid-id", "5", "list")
    assert code == 1
    assert "NOT_FOUND: microgrid 5 is not served here" in err

    wrong = tmp_path / "wrong"
    wrong.write_text("wrong-key")
    code, _, err = await run_cli("dispatch", "--url", server.url, "--key-file", str(wrong), "list")
    assert code == 1
    assert "UNAUTHENTICATED: invalid API key" in err
    assert "wrong-key" not in err
    assert KEY not in err
