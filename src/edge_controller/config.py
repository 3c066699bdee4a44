"""The controller's TOML configuration, validated into typed objects.

A first, static version: read once at start-up (live edits, drop-ins and systemd
credentials come with the daemon issue). Every problem names the file, the key path,
what was expected and what was found, and unknown keys are errors with a "did you
mean" suggestion — all problems are listed at once.

```toml
[microgrid]
url = "grpc://127.0.0.1:50051?ssl=false"
stale_after = 10                   # s; older telemetry counts as missing

[dispatch]
url = "grpc://127.0.0.1:50052?ssl=false"
microgrid_id = 1
key_file = "dispatch.key"          # relative to this file; or set EDGE_CONTROLLER_DISPATCH_KEY
startup_timeout = 15               # s
cache_file = "dispatch-cache.json" # last known dispatches (default: $STATE_DIRECTORY/…)
reconnect_interval = 10            # s; retry while running from the cache

[power_distribution]
algorithm = "soc_balancing"        # or "proportional"
request_timeout = 5                # s per inverter command
keepalive_interval = 15            # s; targets are re-sent this often
command_lifetime = 60              # s; 10-900
resolutions = { 10 = 88 }          # W per inverter id (default 1 W)

[[use_cases]]
kind = "battery_power"
dispatch_types = ["BATTERY_POWER"]
```
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

from edge_controller.toml_reader import Reader, checked, integer, join, number, string
from edge_controller.toml_reader import power as read_power

KEY_ENVIRONMENT_VARIABLE = "EDGE_CONTROLLER_DISPATCH_KEY"
USE_CASE_KINDS = ("battery_power",)


@dataclass(frozen=True, slots=True)
class MicrogridConfig:
    """Where the Microgrid API is and how old telemetry may be."""

    url: str
    stale_after: timedelta = timedelta(seconds=10)


@dataclass(frozen=True, slots=True)
class DispatchConfig:
    """Where the Dispatch API is, for which microgrid, with which key."""

    url: str
    microgrid_id: int
    auth_key: str = field(repr=False)
    startup_timeout: timedelta = timedelta(seconds=15)
    cache_file: Path | None = None
    """Where the last known dispatches are kept (None: no cache)."""
    reconnect_interval: timedelta = timedelta(seconds=10)
    """How often to retry an unreachable dispatch service while running from the cache."""
    reconcile_first: timedelta = timedelta(seconds=5)
    """When the first check for dispatches the stream missed runs, after connecting."""
    reconcile_interval: timedelta = timedelta(minutes=5)
    """How often that check repeats."""


@dataclass(frozen=True, slots=True)
class PowerDistributionConfig:
    """Settings of the PowerDistributingActor."""

    algorithm: Literal["soc_balancing", "proportional"] = "soc_balancing"
    request_timeout: timedelta = timedelta(seconds=5)
    keepalive_interval: timedelta = timedelta(seconds=15)
    command_lifetime: timedelta = timedelta(seconds=60)
    resolutions_w: Mapping[int, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class UseCaseConfig:
    """One use-case actor and the dispatch types it acts on."""

    kind: str
    dispatch_types: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ControllerConfig:
    """The whole configuration."""

    source: str
    microgrid: MicrogridConfig
    dispatch: DispatchConfig
    power_distribution: PowerDistributionConfig
    use_cases: tuple[UseCaseConfig, ...]


class ConfigError(ValueError):
    """A configuration that cannot be used, one line per problem."""

    def __init__(self, source: str, problems: list[str]) -> None:
        """Keep every problem; each line starts with the file name."""
        self.source = source
        self.problems = problems
        super().__init__("\n".join(f"{source}: {problem}" for problem in problems))


def _seconds(low: float, high: float) -> Any:
    return checked(number, lambda v: low <= v <= high)


def _url(raw: object) -> str | None:
    text = string(raw)
    return text if text is not None and text.startswith("grpc://") else None


def parse_config(
    document: Mapping[str, Any],
    source: str = "<config>",
    *,
    base_dir: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> ControllerConfig:
    """Validate a parsed TOML document.

    Raises:
        ConfigError: listing every problem.
    """
    reader = Reader()
    environ = os.environ if environ is None else environ
    reader.unknown_keys(document, {"microgrid", "dispatch", "power_distribution", "use_cases"}, "")
    micro = reader.table(document, "microgrid", "")
    reader.unknown_keys(micro, {"url", "stale_after"}, "microgrid")
    micro_url = reader.value(micro, "url", "microgrid", _url, "a grpc://HOST:PORT URL")
    stale = reader.value(
        micro, "stale_after", "microgrid", _seconds(0.1, 3600), "seconds 0.1-3600", default=10.0
    )

    dispatch = reader.table(document, "dispatch", "")
    reader.unknown_keys(
        dispatch,
        {
            "url",
            "microgrid_id",
            "key_file",
            "startup_timeout",
            "cache_file",
            "reconnect_interval",
            "reconcile_first",
            "reconcile_interval",
        },
        "dispatch",
    )
    dispatch_url = reader.value(dispatch, "url", "dispatch", _url, "a grpc://HOST:PORT URL")
    microgrid_id = reader.value(
        dispatch,
        "microgrid_id",
        "dispatch",
        lambda r: v if (v := integer(r)) is not None and v > 0 else None,
        "an integer id > 0",
    )
    startup = reader.value(
        dispatch, "startup_timeout", "dispatch", _seconds(1, 600), "seconds 1-600", default=15.0
    )
    key = _read_key(reader, dispatch, base_dir, environ)
    reconnect = reader.value(
        dispatch,
        "reconnect_interval",
        "dispatch",
        _seconds(1, 3600),
        "seconds 1-3600",
        default=10.0,
    )
    cache_file = _cache_file(reader, dispatch, base_dir, environ)
    reconcile_first = reader.value(
        dispatch, "reconcile_first", "dispatch", _seconds(0.1, 600), "seconds 0.1-600", default=5.0
    )
    reconcile_interval = reader.value(
        dispatch,
        "reconcile_interval",
        "dispatch",
        _seconds(1, 86400),
        "seconds 1-86400",
        default=300.0,
    )

    power = reader.table(document, "power_distribution", "")
    reader.unknown_keys(
        power,
        {"algorithm", "request_timeout", "keepalive_interval", "command_lifetime", "resolutions"},
        "power_distribution",
    )
    section = "power_distribution"
    algorithm = reader.value(
        power,
        "algorithm",
        section,
        lambda r: r if r in ("soc_balancing", "proportional") else None,
        "'soc_balancing' or 'proportional'",
        default="soc_balancing",
    )
    timeout = reader.value(
        power, "request_timeout", section, _seconds(0.05, 60), "seconds 0.05-60", default=5.0
    )
    lifetime = reader.value(
        power, "command_lifetime", section, _seconds(10, 900), "seconds 10-900", default=60.0
    )
    keepalive = reader.value(
        power, "keepalive_interval", section, _seconds(1, 890), "seconds 1-890", default=15.0
    )
    if keepalive is not None and lifetime is not None and keepalive >= lifetime:
        reader.fail(
            join(section, "keepalive_interval"),
            f"less than command_lifetime ({lifetime:g} s)",
            keepalive,
        )
    resolutions = _resolutions(reader, power)

    use_cases = _use_cases(reader, document.get("use_cases", []))
    if reader.problems:
        raise ConfigError(source, reader.problems)
    # Every None above recorded a problem, so none is left here.
    assert micro_url is not None
    assert stale is not None
    assert dispatch_url is not None
    assert microgrid_id is not None
    assert startup is not None
    assert key is not None
    assert algorithm is not None
    assert timeout is not None
    assert lifetime is not None
    assert keepalive is not None
    assert reconnect is not None
    assert reconcile_first is not None
    assert reconcile_interval is not None
    return ControllerConfig(
        source=source,
        microgrid=MicrogridConfig(micro_url, timedelta(seconds=stale)),
        dispatch=DispatchConfig(
            dispatch_url,
            microgrid_id,
            key,
            timedelta(seconds=startup),
            cache_file,
            timedelta(seconds=reconnect),
            timedelta(seconds=reconcile_first),
            timedelta(seconds=reconcile_interval),
        ),
        power_distribution=PowerDistributionConfig(
            algorithm=algorithm,  # type: ignore[arg-type]
            request_timeout=timedelta(seconds=timeout),
            keepalive_interval=timedelta(seconds=keepalive),
            command_lifetime=timedelta(seconds=lifetime),
            resolutions_w=resolutions,
        ),
        use_cases=use_cases,
    )


def _read_key(
    reader: Reader, dispatch: Mapping[str, Any], base_dir: Path | None, environ: Mapping[str, str]
) -> str | None:
    key_file = dispatch.get("key_file")
    if key_file is None:
        key = environ.get(KEY_ENVIRONMENT_VARIABLE, "").strip()
        if not key:
            reader.problems.append(
                f"dispatch.key_file: missing; expected a file holding the API key (or set "
                f"{KEY_ENVIRONMENT_VARIABLE})"
            )
            return None
        return key
    if not isinstance(key_file, str) or not key_file:
        reader.fail("dispatch.key_file", "a file path", key_file)
        return None
    path = Path(key_file)
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    try:
        key = path.read_text(encoding="utf-8").strip()
    except OSError as error:
        reader.problems.append(f"dispatch.key_file: cannot read {str(path)!r}: {error.strerror}")
        return None
    if not key:
        reader.problems.append(f"dispatch.key_file: {str(path)!r} is empty; expected the API key")
        return None
    return key


def _cache_file(
    reader: Reader, dispatch: Mapping[str, Any], base_dir: Path | None, environ: Mapping[str, str]
) -> Path | None:
    """The configured cache file, else one in systemd's `$STATE_DIRECTORY`, else none."""
    raw = dispatch.get("cache_file")
    if raw is None:
        state = environ.get("STATE_DIRECTORY", "").split(":")[0]
        return Path(state) / "dispatch-cache.json" if state else None
    if not isinstance(raw, str) or not raw:
        reader.fail("dispatch.cache_file", "a file path", raw)
        return None
    path = Path(raw)
    return base_dir / path if not path.is_absolute() and base_dir is not None else path


def _resolutions(reader: Reader, power: Mapping[str, Any]) -> dict[int, float]:
    raw = power.get("resolutions", {})
    path = "power_distribution.resolutions"
    if not isinstance(raw, dict):
        reader.fail(path, "a table of inverter id = watts", raw)
        return {}
    resolutions: dict[int, float] = {}
    for key, value in raw.items():
        if not key.isdigit() or int(key) <= 0:
            reader.fail(join(path, key), "an inverter id (integer > 0) as key", key)
            continue
        watts = read_power(value)
        if watts is None or watts <= 0:
            reader.fail(join(path, key), "a resolution > 0 (W, or with a unit)", value)
            continue
        resolutions[int(key)] = watts
    return resolutions


def _use_cases(reader: Reader, raw: object) -> tuple[UseCaseConfig, ...]:
    if not isinstance(raw, list) or not raw:
        reader.fail("use_cases", "at least one [[use_cases]] table", raw)
        return ()
    found: list[UseCaseConfig] = []
    for index, item in enumerate(raw):
        path = f"use_cases[{index}]"
        if not isinstance(item, dict):
            reader.fail(path, "a table", item)
            continue
        reader.unknown_keys(item, {"kind", "dispatch_types"}, path)
        kind = reader.value(
            item,
            "kind",
            path,
            lambda r: r if r in USE_CASE_KINDS else None,
            f"one of {list(USE_CASE_KINDS)}",
        )
        types = reader.value(
            item,
            "dispatch_types",
            path,
            lambda r: (
                tuple(r)
                if isinstance(r, list) and r and all(isinstance(t, str) and t for t in r)
                else None
            ),
            "a non-empty list of dispatch type names",
            default=("BATTERY_POWER",),
        )
        if kind is not None and types is not None:
            found.append(UseCaseConfig(kind, types))
    return tuple(found)


def load_config(path: Path, environ: Mapping[str, str] | None = None) -> ControllerConfig:
    """Read and validate a configuration file.

    Raises:
        ConfigError: the file is missing, not TOML, or invalid.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(str(path), [f"cannot read the file: {error.strerror}"]) from error
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(path.name, [f"not valid TOML: {error}"]) from error
    return parse_config(document, path.name, base_dir=path.parent, environ=environ)
