"""A seeded generator of controller configurations that must all be rejected.

Each `BadConfig` is the text of a main file and of the drop-ins beside it, the kind of
damage done, and the drop-in (if any) that holds it. Every kind is bad by construction
— a wrong type, a missing required key, a value out of its range, an unknown key or
enum value, a broken relation (keep-alive ≥ lifetime), broken TOML syntax, bytes that
are not UTF-8, a huge file — so "every one is rejected" is a fair test, not a guess.

A tiny TOML writer (`to_toml`) turns documents into text; `tomllib` reads the base
document back unchanged (checked by the test).
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import random
import string
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from typing import Any

Document = dict[str, Any]

BASE: Document = {
    "microgrid": {"url": "grpc://127.0.0.1:50051?ssl=false", "id": 1, "stale_after": 10},
    "dispatch": {
        "url": "grpc://127.0.0.1:50052?ssl=false",
        "microgrid_id": 1,
        "key_file": "dispatch.key",
        "startup_timeout": 15,
        "reconnect_interval": 10,
        "reconcile_first": 5,
        "reconcile_interval": 300,
    },
    "power_distribution": {
        "algorithm": "soc_balancing",
        "request_timeout": 5,
        "keepalive_interval": 15,
        "command_lifetime": 60,
        "resolutions": {"10": 88, "20": "100 W"},
        "blocking_initial": 1,
        "blocking_max": 30,
    },
    "controls": {"mode": "control", "excluded_batteries": [31], "power_limit": "500 kW"},
    "logging": {"level": "info", "levels": {"grpc": "warning"}},
    "metrics": {"listen": "127.0.0.1:9464"},
    "supervision": {
        "restart_initial": 1,
        "restart_max": 60,
        "restart_limit": 5,
        "healthy_after": 300,
    },
    "use_cases": [
        {"kind": "battery_power", "name": "main", "dispatch_types": ["BATTERY_POWER"]},
    ],
}
"""A good configuration (given the key file beside it): the starting point of every case.

Bad names are ones no later version will make good (`no-such-mode`, wrong case,
stray spaces), so the suite keeps meaning what it says as the schema grows."""

KEY_FILE_TEXT = "fuzz-key\n"

# ------------------------------------------------------------------ TOML writer


def _key(name: str) -> str:
    return json.dumps(name)


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        text = repr(value)
        return text if any(c in text for c in ".en") else text + ".0"
    if isinstance(value, str):
        return json.dumps(value)  # \uXXXX escapes are TOML escapes too
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_key(k)} = {_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"no TOML form for {value!r}")


def to_toml(document: Document) -> str:
    """Write `document`: top-level scalars first, then tables, then arrays of tables."""
    lines: list[str] = []
    tables: list[tuple[str, dict[str, Any]]] = []
    arrays: list[tuple[str, list[dict[str, Any]]]] = []
    for name, value in document.items():
        if isinstance(value, dict):
            tables.append((name, value))
        elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            arrays.append((name, value))
        else:
            lines.append(f"{_key(name)} = {_value(value)}")
    for name, table in tables:
        lines.append(f"\n[{_key(name)}]")
        lines.extend(f"{_key(k)} = {_value(v)}" for k, v in table.items())
    for name, items in arrays:
        for item in items:
            lines.append(f"\n[[{_key(name)}]]")
            lines.extend(f"{_key(k)} = {_value(v)}" for k, v in item.items())
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------ the cases


@dataclass(frozen=True)
class BadConfig:
    """One generated configuration: main file, drop-ins, and what is wrong with it."""

    kind: str
    main: bytes
    drop_ins: dict[str, bytes] = field(default_factory=dict)
    blamed: str | None = None
    """The drop-in (`NAME.toml`) that holds the damage, if not the main file."""
    environ: dict[str, str] = field(default_factory=dict)
    top_level: frozenset[str] = frozenset()
    """The top-level keys written (an unknown one is the key path of its problem)."""


STRING_KEYS = [
    ("microgrid", "url"),
    ("dispatch", "url"),
    ("dispatch", "key_file"),
    ("dispatch", "cache_file"),
    ("power_distribution", "algorithm"),
    ("controls", "mode"),
    ("logging", "level"),
    ("metrics", "listen"),
]
NUMBER_KEYS: dict[tuple[str, str], tuple[float, float]] = {
    ("microgrid", "stale_after"): (0.1, 3600),
    ("dispatch", "startup_timeout"): (1, 600),
    ("dispatch", "reconnect_interval"): (1, 3600),
    ("dispatch", "reconcile_first"): (0.1, 600),
    ("dispatch", "reconcile_interval"): (1, 86400),
    ("power_distribution", "request_timeout"): (0.05, 60),
    ("power_distribution", "command_lifetime"): (10, 900),
    ("power_distribution", "keepalive_interval"): (1, 60),  # and < command_lifetime (60)
    ("power_distribution", "blocking_initial"): (0.1, 30),  # <= blocking_max (30)
    ("power_distribution", "blocking_max"): (1, 3600),  # >= blocking_initial (1)
    ("supervision", "restart_initial"): (0.01, 60),  # <= restart_max (60)
    ("supervision", "restart_max"): (1, 3600),  # >= restart_initial (1)
    ("supervision", "healthy_after"): (1, 86400),
}
INTEGER_KEYS: dict[tuple[str, str], tuple[int, int]] = {
    ("microgrid", "id"): (1, 1),  # must equal dispatch.microgrid_id (1)
    ("dispatch", "microgrid_id"): (1, 1),
    ("supervision", "restart_limit"): (0, 1000),
}
POWER_KEYS = [("controls", "power_limit")]
SECTIONS = [k for k in BASE if k != "use_cases"]
REQUIRED = [("microgrid", "url"), ("dispatch", "url")]
BAD_POWER_TEXT = ["lots", "", " ", "5 kWh", "kW", "--5 W", "1e999 kW", "nan W", "-5 kW", "5 kW W"]
BAD_LISTEN = ["localhost", "127.0.0.1", "127.0.0.1:", ":80", "127.0.0.1:65536", "1:²", "h:١٢"]
ODD_KEYS = ["urll", "URL", "stale after", "ключ", "a.b", "x" * 300, "mode ", "0", "\u00e9t\u00e9"]


def _scalar_junk(rng: random.Random) -> Any:
    return rng.choice(
        [
            rng.randint(-(2**63), 2**63 - 1),
            rng.uniform(-1e12, 1e12),
            math.nan,
            math.inf,
            -math.inf,
            rng.choice([True, False]),
            datetime(2026, 1, 1, 12, tzinfo=UTC),
            date(2026, 1, 1),
            time(12, 30),
            [],
            [1, "a"],
            {"nested": 1},
        ]
    )


def _not_string(rng: random.Random) -> Any:
    while isinstance(value := _scalar_junk(rng), str):
        pass
    return value


def _not_number(rng: random.Random) -> Any:
    value = _scalar_junk(rng)
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return rng.choice(["5", "five", "10 s", True, [1], {"s": 1}, math.nan, math.inf])
    return value


def _random_key(rng: random.Random) -> str:
    if rng.random() < 0.5:
        return rng.choice(ODD_KEYS)
    alphabet = string.ascii_letters + string.digits + "_-"
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 20)))


Mutation = Callable[[random.Random, Document], str]


def wrong_type(rng: random.Random, doc: Document) -> str:
    choice = rng.randrange(5)
    if choice == 0:
        section, key = rng.choice(STRING_KEYS)
        doc[section][key] = _not_string(rng)
    elif choice == 1:
        section, key = rng.choice(list(NUMBER_KEYS))
        doc[section][key] = _not_number(rng)
    elif choice == 2:
        section, key = rng.choice(list(INTEGER_KEYS))
        doc[section][key] = rng.choice([1.0, 1.5, "1", True, [1], {"a": 1}, math.nan])
    elif choice == 3:
        section = rng.choice(SECTIONS)
        doc[section] = rng.choice([1, "table", [1, 2], True, 2.5])
    else:
        doc["controls"]["excluded_batteries"] = rng.choice(
            [31, "31", [31, "41"], [31.0], [True], [[31]], {"a": 31}]
        )
    return "wrong_type"


def missing(rng: random.Random, doc: Document, environ: dict[str, str]) -> str:
    choice = rng.randrange(5)
    if choice == 0:
        section, key = rng.choice(REQUIRED)
        del doc[section][key]
    elif choice == 1:
        del doc[rng.choice(["microgrid", "dispatch", "use_cases"])]
    elif choice == 2:
        del doc["microgrid"]["id"]
        del doc["dispatch"]["microgrid_id"]
    elif choice == 3:  # no key anywhere: no key_file, no credential, no variable
        del doc["dispatch"]["key_file"]
        environ.clear()
    else:
        doc["dispatch"]["key_file"] = rng.choice(["missing.key", "", "empty.key", "."])
    return "missing"


def out_of_range(rng: random.Random, doc: Document) -> str:
    choice = rng.randrange(6)
    if choice <= 1:
        (section, key), (low, high) = rng.choice(list(NUMBER_KEYS.items()))
        doc[section][key] = rng.choice(
            [
                low - rng.uniform(1e-6, 1) * max(low, 1e-3),
                high + rng.uniform(1e-3, 1e9),
                -rng.uniform(0, 1e6),
                0 if low > 0 else -1,
            ]
        )
    elif choice == 2:
        (section, key), (low, high) = rng.choice(list(INTEGER_KEYS.items()))
        doc[section][key] = rng.choice([low - rng.randint(1, 2**40), high + rng.randint(1, 2**40)])
    elif choice == 3:
        doc["controls"]["power_limit"] = rng.choice(
            [-1, -1e9, "-5 kW", rng.choice(BAD_POWER_TEXT), math.nan, -math.inf]
        )
    elif choice == 4:
        doc["power_distribution"]["resolutions"] = rng.choice(
            [{"10": 0}, {"10": -88}, {"10": "0 W"}, {"x": 88}, {"-10": 88}, {"0": 88}, {"10": "w"}]
        )
    else:
        doc["controls"]["excluded_batteries"] = rng.choice([[0], [-31], [31, 0], [2.5]])
    return "out_of_range"


def broken_relation(rng: random.Random, doc: Document) -> str:
    pd, sup = doc["power_distribution"], doc["supervision"]
    choice = rng.randrange(4)
    if choice == 0:
        pd["command_lifetime"] = rng.choice([10, 20, 60])
        pd["keepalive_interval"] = pd["command_lifetime"] + rng.choice([0, 1, 100])
    elif choice == 1:
        pd["blocking_initial"], pd["blocking_max"] = 20, rng.uniform(0.1, 19.9)
    elif choice == 2:
        sup["restart_initial"], sup["restart_max"] = 30, rng.uniform(0.01, 29.9)
    else:
        doc["microgrid"]["id"], doc["dispatch"]["microgrid_id"] = 1, rng.randint(2, 2**40)
    return "broken_relation"


def unknown(rng: random.Random, doc: Document) -> str:
    choice = rng.randrange(4)
    if choice == 0:
        doc[_random_key(rng) + "_"] = _scalar_junk(rng) if rng.random() < 0.5 else {"a": 1}
    elif choice == 1:
        section = rng.choice(SECTIONS)
        doc[section][_random_key(rng) + "_"] = _scalar_junk(rng)
    elif choice == 2:
        doc["use_cases"][0][_random_key(rng) + "_"] = 1
    else:
        section, key = rng.choice(STRING_KEYS)
        typo = key[:-1] if len(key) > 3 else key + "x"
        doc[section][typo] = doc[section].pop(key, "x")
    return "unknown_key"


def bad_enum(rng: random.Random, doc: Document) -> str:
    section, key, values = rng.choice(
        [
            ("controls", "mode", ["no-such-mode", "Control", "observe ", "OBSERVE", ""]),
            ("power_distribution", "algorithm", ["no-such-algorithm", "SOC_BALANCING", ""]),
            ("logging", "level", ["no-such-level", "warn", "INFO ", ""]),
        ]
    )
    doc[section][key] = rng.choice(values)
    if rng.random() < 0.3:
        doc["logging"]["levels"] = {"grpc": rng.choice(["loud", 5, True])}
    return "bad_enum"


def bad_use_cases(rng: random.Random, doc: Document) -> str:
    doc["use_cases"] = rng.choice(
        [
            [],
            [1],
            ["battery_power"],
            [{"kind": "no_such_use_case"}],
            [{"kind": "Battery_Power"}],
            [{"name": "no_kind"}],
            [{"kind": "battery_power", "name": "a-b"}],
            [{"kind": "battery_power", "name": "x"}, {"kind": "battery_power", "name": "x"}],
            [{"kind": "battery_power", "dispatch_types": []}],
            [{"kind": "battery_power", "dispatch_types": [""]}],
            [{"kind": "battery_power", "dispatch_types": "BATTERY_POWER"}],
            [{"kind": "battery_power", "dispatch_types": [5]}],
        ]
    )
    return "bad_use_cases"


def bad_url(rng: random.Random, doc: Document) -> str:
    section = rng.choice(["microgrid", "dispatch"])
    doc[section]["url"] = rng.choice(
        [
            "http://127.0.0.1:1",
            "grpc:/127.0.0.1:1",
            "127.0.0.1:1",
            "",
            " ",
            "GRPC://127.0.0.1:1?ssl=false",
        ]
    )
    if rng.random() < 0.5:  # the loopback TLS rule of the dispatch URL
        doc["dispatch"]["url"] = rng.choice(
            ["grpc://127.0.0.1:50052", "grpc://localhost:1", "grpc://[::1]:1"]
        )
    return "bad_url"


def bad_listen(rng: random.Random, doc: Document) -> str:
    doc["metrics"]["listen"] = rng.choice(BAD_LISTEN)
    return "bad_listen"


SIMPLE: list[Mutation] = [
    wrong_type,
    out_of_range,
    broken_relation,
    unknown,
    bad_enum,
    bad_use_cases,
    bad_url,
    bad_listen,
]


def _syntax_damage(rng: random.Random, text: str) -> bytes:
    """Damage good TOML text in a way no TOML reader accepts (or that is not UTF-8)."""
    lines = text.splitlines(keepends=True)
    at = rng.randrange(len(lines) + 1)
    choice = rng.randrange(11)
    if choice == 0:
        lines.insert(at, "[controls\n")
    elif choice == 1:  # a string left open
        quoted = [i for i, line in enumerate(lines) if line.rstrip().endswith('"')]
        i = rng.choice(quoted)
        lines[i] = lines[i].rstrip()[:-1] + "\n"
    elif choice == 2:  # the same key twice in one table
        keyed = [i for i, line in enumerate(lines) if " = " in line and not line.startswith("[")]
        i = rng.choice(keyed)
        lines.insert(i + 1, lines[i])
    elif choice == 3:
        lines.append('\n["microgrid"]\n"x" = 1\n')
    elif choice == 4:
        lines.insert(at, 'bad = "\\q"\n')
    elif choice == 5:
        lines.insert(at, rng.choice(["a b = 1\n", "x =\n", "= 1\n", "}{][=\n", "x = [1,\n"]))
    elif choice == 6:
        lines.insert(at, 'x = "a\x01b"\n')
    elif choice == 7:  # cut inside a quoted value
        cut = rng.choice([m for m in range(len(text)) if text[m] == '"' and text[m - 1] == " "])
        return text[: cut + 1 + rng.randint(0, 3)].encode()
    elif choice == 8:
        return text.encode()[: rng.randrange(len(text))] + rng.choice([b"\xff", b"\xc3", b"\x80"])
    elif choice == 9:
        lines.insert(at, "x = 1\x00\n")
    else:
        lines.insert(at, rng.choice(["[[controls]]\n", "[use_cases]\n"]))
    return "".join(lines).encode()


def _huge(rng: random.Random, doc: Document) -> bytes:
    """A few megabytes that must still be rejected (and read in reasonable time)."""
    choice = rng.randrange(4)
    if choice == 0:
        doc["junk"] = "x" * rng.randint(1_000_000, 3_000_000)
    elif choice == 1:
        doc["controls"]["excluded_batteries"] = [*range(1, 50_000), -1]
    elif choice == 2:
        for index in range(1000):
            doc[f"unknown_{index}"] = index
    else:
        doc["use_cases"] = [{"kind": "battery_power", "name": "same"} for _ in range(5000)]
    return to_toml(doc).encode()


def generate(count: int, seed: int = 7) -> Iterator[BadConfig]:
    """Yield `count` bad configurations, reproducibly for a given `seed`."""
    rng = random.Random(seed)
    for index in range(count):
        doc = copy.deepcopy(BASE)
        environ = {"EDGE_CONTROLLER_DISPATCH_KEY": "fuzz-key"}
        roll = rng.random()
        if index % 150 == 149:
            text = _huge(rng, doc)
            yield BadConfig("huge", text, environ=environ, top_level=frozenset(doc))
            continue
        if roll < 0.15:
            yield BadConfig("syntax", _syntax_damage(rng, to_toml(doc)), environ=environ)
            continue
        if roll < 0.25:
            kind = missing(rng, doc, environ)
        else:
            kind = rng.choice(SIMPLE)(rng, doc)
            while rng.random() < 0.25:  # sometimes several problems at once
                with contextlib.suppress(TypeError, KeyError):  # a section already replaced
                    rng.choice(SIMPLE)(rng, doc)
        controls = doc.get("controls")
        if roll > 0.85 and isinstance(controls, dict) and controls != BASE["controls"]:
            # The damaged table in a drop-in: an error must name that file.
            damaged = {"controls": doc.pop("controls")}
            yield BadConfig(
                kind,
                to_toml(doc).encode(),
                {"50-fuzz.toml": to_toml(damaged).encode()},
                blamed="50-fuzz.toml",
                environ=environ,
                top_level=frozenset(doc) | {"controls"},
            )
            continue
        yield BadConfig(kind, to_toml(doc).encode(), environ=environ, top_level=frozenset(doc))
