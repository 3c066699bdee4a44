"""Case 6: bad configuration, generated and edited live.

1. 1 200 generated bad configurations (`bad_configs.generate`, seeded): wrong types,
   missing keys, out-of-range values, broken relations, unknown keys and enum values,
   broken TOML, bytes that are not UTF-8, files of several megabytes, damage in a
   drop-in. Each goes through `config_files.load` (the daemon's path) and must end in a
   `ConfigError` whose every line names a file and a key path (or says "not valid
   TOML" / "cannot read") — never another exception, never an acceptance.
2. Inputs that showed bugs are kept apart, each as a strict xfail naming the bug.
3. A running daemon (a process) gets a handful of real edits of its watched file:
   each bad one is logged as `config_rejected`, the power limit in force stays in
   force, nothing crashes; a good edit afterwards still applies.
"""

from __future__ import annotations

import asyncio
import signal
import tomllib
from collections import Counter
from pathlib import Path

import pytest

from edge_controller.config.files import load
from edge_controller.config.schema import SECTIONS, ConfigError
from edge_controller.servers.dispatch.server import DispatchServer
from edge_controller.servers.sim.server import SimulatorServer
from edge_controller.servers.sim.site import SiteSpec
from tests.harness import KEY, create_now, power_reaches, stream_connected
from tests.reliability.bad_configs import BASE, KEY_FILE_TEXT, BadConfig, generate, to_toml
from tests.reliability.helpers import DaemonProcess, write_daemon_config

COUNT = 1200
LONGEST_LINE = 2000
"""Characters: a problem line is for people (and journald), not a dump of the value."""


def _config_dir(tmp_path: Path) -> tuple[Path, Path]:
    directory = tmp_path / "etc"
    directory.mkdir()
    (directory / "dispatch.key").write_text(KEY_FILE_TEXT)
    (directory / "empty.key").write_text("")
    drop_ins = directory / "ctl.toml.d"
    drop_ins.mkdir()
    return directory / "ctl.toml", drop_ins


def _write(case: BadConfig, main: Path, drop_ins: Path) -> None:
    main.write_bytes(case.main)
    for old in drop_ins.iterdir():
        old.unlink()
    for name, text in case.drop_ins.items():
        (drop_ins / name).write_bytes(text)


def _line_problem(error: ConfigError, case: BadConfig, main: Path) -> str | None:
    """Why `error` is not precise enough for `case`, or None."""
    files = {main.name, str(main), *(f"ctl.toml.d/{name}" for name in case.drop_ins)}
    roots = set(SECTIONS) | case.top_level
    if not error.lines:
        return "no problem listed"
    for line in error.lines:
        file, _, problem = line.partition(": ")
        if file not in files:
            return f"names no file: {line[:200]!r}"
        if problem.startswith(("not valid TOML: ", "cannot read: ")):
            continue
        path = problem.split(": ", 1)[0]
        if not any(path == k or path.startswith((f"{k}.", f"{k}[")) for k in roots):
            return f"names no key path: {line[:200]!r}"
    if case.blamed and not any(
        line.startswith(f"ctl.toml.d/{case.blamed}: ") for line in error.lines
    ):
        return f"does not name the drop-in {case.blamed}: {error.lines[:3]}"
    return None


def test_the_base_document_is_good_and_round_trips(tmp_path: Path) -> None:
    main, _ = _config_dir(tmp_path)
    assert tomllib.loads(to_toml(BASE)) == BASE
    main.write_text(to_toml(BASE))
    config = load(main, environ={})
    assert config.controls.power_limit_w == 500_000
    assert config.dispatch.auth_key == KEY_FILE_TEXT.strip()


def test_generated_bad_configs_are_all_rejected_with_file_and_key(tmp_path: Path) -> None:
    main, drop_ins = _config_dir(tmp_path)
    kinds: Counter[str] = Counter()
    crashed: list[str] = []
    accepted: list[str] = []
    imprecise: list[str] = []
    longest = 0
    for index, case in enumerate(generate(COUNT)):
        kinds[case.kind] += 1
        _write(case, main, drop_ins)
        try:
            load(main, environ=case.environ)
        except ConfigError as error:
            longest = max(longest, *(len(line) for line in error.lines))
            if (why := _line_problem(error, case, main)) is not None:
                imprecise.append(f"#{index} {case.kind}: {why}")
        except Exception as error:
            crashed.append(f"#{index} {case.kind}: {error!r}"[:300])
        else:
            accepted.append(f"#{index} {case.kind}: {case.main[:300]!r}")
    assert sum(kinds.values()) == COUNT
    assert len(kinds) >= 10, kinds  # every kind of damage was generated
    assert crashed == []
    assert accepted == []
    assert imprecise == []
    del longest  # see test_a_huge_bad_value_is_shown_abbreviated


# ------------------------------------------------------------------ regressions

CRASHED_BEFORE = {
    # Inputs that once crashed the validator (the reason each did), kept as regressions.
    "resolution_key_superscript_digit": (
        '[power_distribution]\nresolutions = { "²" = 88 }\n',
        "config.py _resolutions: '²'.isdigit() is True but int('²') raises ValueError",
    ),
    "resolution_key_of_5000_digits": (
        f'[power_distribution]\nresolutions = {{ "{"1" * 5000}" = 88 }}\n',
        "config.py _resolutions: int() of a 5000-digit key raises ValueError "
        "(Python's int max_str_digits)",
    ),
    "key_file_with_nul": (
        '[dispatch]\nkey_file = "a\\u0000b"\n',
        "config.py _read_key: Path.read_text raises ValueError (embedded null byte); "
        "only OSError is caught",
    ),
    "key_file_not_utf8": (
        '[dispatch]\nkey_file = "binary.key"\n',
        "config.py _read_key: a key file that is not UTF-8 raises UnicodeDecodeError; "
        "only OSError is caught",
    ),
    "dispatch_url_unclosed_ipv6": (
        '[dispatch]\nurl = "grpc://[::1"\n',
        "config.py tls_problem: urlsplit raises ValueError('Invalid IPv6 URL')",
    ),
    "deeply_nested_array": (
        "x = " + "[" * 5000 + "]" * 5000 + "\n",
        "config_files.load: tomllib raises RecursionError on deep nesting; only "
        "TOMLDecodeError is caught",
    ),
    "deeply_nested_table": (
        "[" + ".".join(["a"] * 3000) + "]\nx = 1\n",
        "config_files.merge/_copy recurse once per table level: RecursionError",
    ),
}
ACCEPTED_BEFORE = {
    # Values the validator once accepted although the clients cannot use them.
    "microgrid_url_port_not_a_number": (
        '[microgrid]\nurl = "grpc://127.0.0.1:x?ssl=false"\n',
        "config.py _url only checks the grpc:// prefix: the client raises ValueError at start",
    ),
    "microgrid_url_unknown_query": (
        '[microgrid]\nurl = "grpc://127.0.0.1:1?ssl=flase"\n',
        "config.py _url: an unreadable ssl value or unknown query parameter passes; the "
        "client raises ValueError at start (and the daemon exits with a traceback)",
    ),
    "dispatch_microgrid_id_beyond_uint64": (
        "[microgrid]\nid = 18446744073709551616\n[dispatch]\nmicrogrid_id = 18446744073709551616\n",
        "config.py _positive_int has no upper bound: the API's uint64 ids overflow at run time",
    ),
}


def _with_override(tmp_path: Path, override: str) -> Path:
    main, drop_ins = _config_dir(tmp_path)
    (main.parent / "binary.key").write_bytes(b"\xff\xfe\x00key")
    main.write_text(to_toml(BASE))
    (drop_ins / "90-bug.toml").write_text(override)
    return main


@pytest.mark.parametrize(
    "override",
    [pytest.param(override, id=name) for name, (override, _was_a_crash) in CRASHED_BEFORE.items()],
)
def test_inputs_that_crashed_the_validator_are_rejected(tmp_path: Path, override: str) -> None:
    main = _with_override(tmp_path, override)
    with pytest.raises(ConfigError) as caught:
        load(main, environ={})
    assert all(len(line) <= LONGEST_LINE for line in caught.value.lines)


@pytest.mark.parametrize(
    "override",
    [
        pytest.param(override, id=name)
        for name, (override, _was_accepted) in ACCEPTED_BEFORE.items()
    ],
)
def test_values_the_clients_cannot_use_are_rejected(tmp_path: Path, override: str) -> None:
    main = _with_override(tmp_path, override)
    with pytest.raises(ConfigError):
        load(main, environ={})


def test_a_huge_bad_value_is_shown_abbreviated(tmp_path: Path) -> None:
    main = _with_override(tmp_path, f"[controls]\nexcluded_batteries = {[*range(1, 50_000), -1]}\n")
    with pytest.raises(ConfigError) as caught:
        load(main, environ={})
    assert max(len(line) for line in caught.value.lines) <= LONGEST_LINE


# ------------------------------------------------------------------ live edits

LIMIT_W = 50_000.0


async def test_bad_edits_of_the_watched_file_are_rejected_and_change_nothing(
    example_site: SiteSpec, tmp_path: Path
) -> None:
    async with (
        SimulatorServer(example_site) as sim,
        DispatchServer(tmp_path / "dispatches.db", keys=frozenset({KEY})) as dispatch,
    ):
        limit = f'[controls]\npower_limit = "{LIMIT_W / 1000:g} kW"\n'
        config = write_daemon_config(tmp_path, sim.url, dispatch.url, extra=limit)
        good = config.read_text()
        daemon = await DaemonProcess(config, tmp_path).start()
        assert daemon.logs is not None
        assert daemon.process is not None
        try:
            await stream_connected(dispatch, 20)
            await create_now(dispatch.url, 21, -100_000.0)
            await power_reaches(sim, 20, -LIMIT_W, 10)  # the limit is in force

            edits: list[tuple[str, bytes | None]] = [
                ("broken TOML", good.replace("[controls]", "[controls").encode()),
                ("wrong type", good.replace(f'"{LIMIT_W / 1000:g} kW"', '"lots"').encode()),
                ("unknown key", (good + "power_limt = 5\n").encode()),
                (
                    "out of range",
                    good.replace("keepalive_interval = 1", "keepalive_interval = 0").encode(),
                ),
                ("missing section", good.split("[dispatch]")[0].encode()),
                ("not UTF-8", b"\xff\xfe" + good.encode()),
                ("huge", (good + f'junk = "{"x" * 3_000_000}"\n').encode()),
                ("empty", b""),
                ("deleted", None),
            ]
            for index, (what, content) in enumerate(edits):
                before = len(daemon.logs.events("config_rejected"))
                if content is None:
                    config.unlink()
                else:
                    config.write_bytes(content)
                if index % 2:  # half found by the watcher's poll, half by SIGHUP
                    daemon.process.send_signal(signal.SIGHUP)
                async with asyncio.timeout(5):
                    while len(daemon.logs.events("config_rejected")) <= before:
                        await asyncio.sleep(0.05)
                assert daemon.process.returncode is None, what
                assert sim.model.ac_power_w(20) == pytest.approx(-LIMIT_W, abs=100), what

            # Nothing was applied meanwhile; a good edit still is.
            assert not daemon.logs.events("config_applied")
            config.write_text(good.replace(f'"{LIMIT_W / 1000:g} kW"', '"30 kW"'))
            daemon.process.send_signal(signal.SIGHUP)
            await daemon.logs.wait_for("config_applied", 5)
            await power_reaches(sim, 20, -30_000, 5)
        finally:
            code = (
                await daemon.signal(signal.SIGTERM) if daemon.process.returncode is None else None
            )
            await daemon.close()
        assert code == 0
        assert sim.model.ac_power_w(20) == 0.0
        rejected = daemon.logs.events("config_rejected")
        assert all("problems" in event for event in rejected)
