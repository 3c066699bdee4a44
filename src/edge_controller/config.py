"""The controller's TOML configuration, validated into typed objects.

Every problem names the file, the key path, what was expected and what was found,
and unknown keys are errors with a "did you mean" suggestion — all problems are
listed at once. Files and drop-in directories are read by `config_files`; which
settings apply live and which need a restart is decided in `config_changes`.

Why our own validator and not the SDK's `ConfigManager` + marshmallow schemas: its
base schema only *warns* on unknown keys, reports one schema at a time, and knows
nothing of our key-file/credential rules; `toml_reader.Reader` (shared with the
simulator's site files) lists every problem with its path and a suggestion.

```toml
[microgrid]
url = "grpc://127.0.0.1:50051?ssl=false"
id = 1                             # the site's microgrid id (default for dispatch.microgrid_id)
stale_after = 10                   # s; older telemetry counts as missing

[dispatch]
url = "grpc://127.0.0.1:50052?ssl=false"
microgrid_id = 1                   # default: microgrid.id
key_file = "dispatch.key"          # relative to this file; else $CREDENTIALS_DIRECTORY/dispatch-key
                                   # (systemd LoadCredential=), else EDGE_CONTROLLER_DISPATCH_KEY
startup_timeout = 15               # s
cache_file = "dispatch-cache.json" # last known dispatches (default: $STATE_DIRECTORY/…)
reconnect_interval = 10            # s; retry while running from the cache

[power_distribution]
algorithm = "soc_balancing"        # or "proportional"
request_timeout = 5                # s per inverter command
keepalive_interval = 15            # s; targets are re-sent this often
command_lifetime = 60              # s; 10-900
resolutions = { 10 = 88 }          # W per inverter id (default 1 W)
blocking_initial = 1               # s a failed battery is left out; doubles per failure
blocking_max = 30                  # s; the longest it is left out

[controls]
mode = "control"                   # or "observe": plan and log, command nothing
excluded_batteries = []            # ids never used (released to 0 W when added)
power_limit = "1 MW"               # |sum of all battery targets| never exceeds this

[logging]
level = "info"
levels = { grpc = "warning", "edge_controller.actors" = "debug" }

[metrics]
listen = "127.0.0.1:9464"          # /metrics and /healthz; "" turns the endpoint off

[supervision]
restart_initial = 1                # s before a crashed actor's first restart; doubles
restart_max = 60                   # s; longest wait between restarts
restart_limit = 5                  # restarts in a row before the process exits (1)
healthy_after = 300                # s of running without a crash that resets the count

[[use_cases]]
kind = "battery_power"
name = "battery_power"             # identity across live edits (default: kind_index)
dispatch_types = ["BATTERY_POWER"]
```
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

from edge_controller.config_market_bid import MarketBidConfig, parse_market_bid
from edge_controller.config_secret import read_api_key
from edge_controller.microgrid.recovery import RecoveryConfig
from edge_controller.power.meter_limits import MeterLimit
from edge_controller.serving import ListenAddressError, parse_listen
from edge_controller.toml_reader import Reader, checked, integer, join, number, string
from edge_controller.toml_reader import power as read_power

KEY_ENVIRONMENT_VARIABLE = "EDGE_CONTROLLER_DISPATCH_KEY"
KEY_CREDENTIAL = "dispatch-key"
"""The credential name under systemd's `$CREDENTIALS_DIRECTORY` (`LoadCredential=`)."""
USE_CASE_KINDS = ("battery_power", "peak_shaving")
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
DEFAULT_METRICS_LISTEN = "127.0.0.1:9464"


@dataclass(frozen=True, slots=True)
class MicrogridConfig:
    """Where the Microgrid API is and how old telemetry may be."""

    url: str
    stale_after: timedelta = timedelta(seconds=10)
    id: int | None = None


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
    blocking_initial: timedelta = timedelta(seconds=1)
    blocking_max: timedelta = timedelta(seconds=30)


@dataclass(frozen=True, slots=True)
class ControlsConfig:
    """What the operator allows the controller to do; all of it applies live."""

    mode: Literal["control", "observe"] = "control"
    """`observe` plans and logs but commands nothing (commissioning)."""
    excluded_batteries: frozenset[int] = frozenset()
    """Never used; released to 0 W when excluded while running."""
    power_limit_w: float | None = None
    """The sum of |target| over all running battery targets stays within this."""


@dataclass(frozen=True, slots=True)
class LoggingConfig:
    """Log levels: a default and per-logger overrides (`grpc`, `edge_controller.actors`)."""

    level: str = "info"
    levels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class MetricsConfig:
    """Where the Prometheus `/metrics` and `/healthz` endpoint listens (None: off)."""

    listen: str | None = DEFAULT_METRICS_LISTEN


@dataclass(frozen=True, slots=True)
class SupervisionConfig:
    """How crashed actors are restarted before the process gives up (see `supervision`)."""

    restart_initial: timedelta = timedelta(seconds=1)
    restart_max: timedelta = timedelta(seconds=60)
    restart_limit: int = 5
    healthy_after: timedelta = timedelta(minutes=5)


@dataclass(frozen=True, slots=True)
class PeakShavingOptions:
    """Settings of a `peak_shaving` use case (W, %); see `power/peak_shaving.py`."""

    threshold_w: float | None = None
    """Keep grid import at or below this; None: only while a PEAK_SHAVING dispatch runs."""
    recharge_margin_w: float = 0.0
    max_recharge_w: float | None = None
    export_limit_w: float | None = None
    soc_min_pct: float = 0.0
    soc_max_pct: float = 100.0


@dataclass(frozen=True, slots=True)
class UseCaseConfig:
    """One use-case actor and the dispatch types it acts on."""

    kind: str
    dispatch_types: tuple[str, ...]
    name: str = ""
    """Identity across live edits: a changed entry with the same name is replaced."""
    priority: int = 0
    """Higher wins when use cases want the same batteries (`power/priority.py`)."""
    batteries: frozenset[int] = frozenset()
    """The batteries a self-driven use case (peak shaving) uses; empty: all."""
    peak_shaving: PeakShavingOptions | None = None


@dataclass(frozen=True, slots=True)
class GridConfig:
    """The grid connection's limits, enforced between the use cases and the distributor."""

    max_import_w: float | None = None
    max_export_w: float | None = None
    safe_power_w: float = 0.0
    """Every battery target while the grid meter's data is stale or missing."""
    stale_after: timedelta = timedelta(seconds=3)
    meters: tuple[MeterLimit, ...] = ()
    """Meters inside the site with limits of their own (`[[grid.meters]]`), enforced
    by the distributor on the inverters below each (`power.meter_limits`)."""


@dataclass(frozen=True, slots=True)
class ControllerConfig:
    """The whole configuration."""

    source: str
    microgrid: MicrogridConfig
    dispatch: DispatchConfig
    power_distribution: PowerDistributionConfig
    use_cases: tuple[UseCaseConfig, ...]
    controls: ControlsConfig = ControlsConfig()
    logging: LoggingConfig = LoggingConfig()
    metrics: MetricsConfig = MetricsConfig()
    supervision: SupervisionConfig = SupervisionConfig()
    grid: GridConfig = GridConfig()
    recovery: RecoveryConfig = field(default_factory=RecoveryConfig)
    market_bid: MarketBidConfig | None = None
    """The market-bid actor, when the `[market_bid]` section is there."""


class ConfigError(ValueError):
    """A configuration that cannot be used, one line per problem."""

    def __init__(
        self, source: str, problems: list[str], locate: Callable[[str], str] | None = None
    ) -> None:
        """Keep every problem; each line starts with the file that holds the key.

        `locate` maps a problem's key path to the file that set it (drop-ins); without
        it, every line names `source`.
        """
        self.source = source
        self.problems = problems
        self.lines = [f"{locate(problem) if locate else source}: {problem}" for problem in problems]
        super().__init__("\n".join(self.lines))


def _seconds(low: float, high: float) -> Any:
    return checked(number, lambda v: low <= v <= high)


SECTIONS = (
    "microgrid",
    "dispatch",
    "power_distribution",
    "controls",
    "logging",
    "metrics",
    "supervision",
    "grid",
    "recovery",
    "market_bid",
    "use_cases",
)


def _positive_int(raw: object) -> int | None:
    value = integer(raw)
    return value if value is not None and 0 < value <= MAX_ID else None


_URL_EXPECTED = (
    "a grpc://HOST:PORT URL (port 1-65535; options ssl=true|false, "
    "ssl_root_certificates_path=FILE, ...)"
)
_URL_OPTIONS = {
    "ssl": ("true", "false", "1", "0", "yes", "no", "on", "off"),
    "ssl_root_certificates_path": None,
    "ssl_private_key_path": None,
    "ssl_certificate_chain_path": None,
    "keep_alive": ("true", "false", "1", "0", "yes", "no", "on", "off"),
    "keep_alive_interval_s": None,
    "keep_alive_timeout_s": None,
}
MAX_ID = 2**63 - 1
"""Ids travel as uint64 in the APIs; stay within what every client can hold."""


def _url(raw: object) -> str | None:
    """A `grpc://HOST:PORT[?options]` URL the Frequenz clients can open, or None."""
    text = string(raw)
    if text is None or not text.startswith("grpc://"):
        return None
    try:
        parsed = urlsplit(text)
        port = parsed.port
        options = parse_qs(parsed.query, keep_blank_values=True, strict_parsing=False)
    except ValueError:
        return None
    if not parsed.hostname or port is None or not 0 < port < 65536 or parsed.path not in ("", "/"):
        return None
    for name, values in options.items():
        if name not in _URL_OPTIONS or len(values) != 1:
            return None
        allowed = _URL_OPTIONS[name]
        if allowed is not None and values[0].lower() not in allowed:
            return None
    return text


def parse_config(
    document: Mapping[str, Any],
    source: str = "<config>",
    *,
    base_dir: Path | None = None,
    environ: Mapping[str, str] | None = None,
    locate: Callable[[str], str] | None = None,
) -> ControllerConfig:
    """Validate a parsed TOML document.

    Raises:
        ConfigError: listing every problem.
    """
    reader = Reader()
    environ = os.environ if environ is None else environ
    reader.unknown_keys(document, set(SECTIONS), "")
    micro = reader.table(document, "microgrid", "")
    reader.unknown_keys(micro, {"url", "id", "stale_after"}, "microgrid")
    micro_url = reader.value(micro, "url", "microgrid", _url, _URL_EXPECTED)
    micro_id = reader.value(micro, "id", "microgrid", _positive_int, "an integer id > 0", None)
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
    dispatch_url = reader.value(dispatch, "url", "dispatch", _url, _URL_EXPECTED)
    microgrid_id = reader.value(
        dispatch,
        "microgrid_id",
        "dispatch",
        _positive_int,
        "an integer id > 0 (or set microgrid.id)",
        **({} if micro_id is None else {"default": micro_id}),
    )
    if micro_id is not None and microgrid_id is not None and micro_id != microgrid_id:
        reader.fail("dispatch.microgrid_id", f"microgrid.id ({micro_id})", microgrid_id)
    startup = reader.value(
        dispatch, "startup_timeout", "dispatch", _seconds(1, 600), "seconds 1-600", default=15.0
    )
    key = read_api_key(
        reader,
        dispatch,
        "dispatch",
        base_dir,
        environ,
        credential=KEY_CREDENTIAL,
        variable=KEY_ENVIRONMENT_VARIABLE,
    )
    if dispatch_url is not None and (tls := tls_problem(dispatch_url)) is not None:
        reader.problems.append(f"dispatch.url: {tls}, got {dispatch_url!r}")
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
        {
            "algorithm",
            "request_timeout",
            "keepalive_interval",
            "command_lifetime",
            "resolutions",
            "blocking_initial",
            "blocking_max",
        },
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
    blocking_initial = reader.value(
        power, "blocking_initial", section, _seconds(0.1, 600), "seconds 0.1-600", default=1.0
    )
    blocking_max = reader.value(
        power, "blocking_max", section, _seconds(0.1, 3600), "seconds 0.1-3600", default=30.0
    )
    if (
        blocking_initial is not None
        and blocking_max is not None
        and blocking_max < blocking_initial
    ):
        reader.fail(
            join(section, "blocking_max"),
            f"at least blocking_initial ({blocking_initial:g} s)",
            blocking_max,
        )

    use_cases = _use_cases(reader, document.get("use_cases", []))
    controls = _controls(reader, reader.table(document, "controls", ""))
    logging_config = _logging(reader, reader.table(document, "logging", ""))
    metrics = _metrics(reader, reader.table(document, "metrics", ""))
    supervision = _supervision(reader, reader.table(document, "supervision", ""))
    grid = _grid(reader, reader.table(document, "grid", ""))
    recovery = _recovery(reader, reader.table(document, "recovery", ""))
    market_bid = None
    if "market_bid" in document:
        market_bid = parse_market_bid(
            reader, reader.table(document, "market_bid", ""), base_dir, environ
        )
    if reader.problems:
        raise ConfigError(source, reader.problems, locate)
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
        microgrid=MicrogridConfig(micro_url, timedelta(seconds=stale), micro_id),
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
            blocking_initial=timedelta(seconds=blocking_initial or 1.0),
            blocking_max=timedelta(seconds=blocking_max or 30.0),
        ),
        use_cases=use_cases,
        controls=controls,
        logging=logging_config,
        metrics=metrics,
        supervision=supervision,
        grid=grid,
        recovery=recovery,
        market_bid=market_bid,
    )


_LOOPBACK_HOSTS = ("127.", "localhost", "[::1]", "::1")


def tls_problem(url: str) -> str | None:
    """Why a Dispatch API URL's TLS setting cannot work, or None.

    The Dispatch client defaults to TLS and, against a plain server, never connects
    while only logging. A loopback host is almost always the plain local service, so
    a loopback URL must say `ssl=false` or name its own certificates.
    """
    try:
        parsed = urlsplit(url)
        host = parsed.hostname or ""
        query = parse_qs(parsed.query)
    except ValueError:
        return None  # the URL itself is reported as unusable
    if not any(host.startswith(prefix) or host == prefix for prefix in _LOOPBACK_HOSTS):
        return None
    if "ssl" in query or "ssl_root_certificates_path" in query:
        return None
    return (
        "a loopback URL with TLS left on (the default); a plain local server needs "
        "'?ssl=false', a TLS one '?ssl_root_certificates_path=CA.pem'"
    )


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
        if not (key.isascii() and key.isdigit() and len(key) <= 19) or int(key) <= 0:
            shown = key if len(key) <= 40 else f"{key[:20]}..."
            reader.fail(join(path, shown), "an inverter id (integer > 0) as key", key)
            continue
        watts = read_power(value)
        if watts is None or watts <= 0:
            reader.fail(join(path, key), "a resolution > 0 (W, or with a unit)", value)
            continue
        resolutions[int(key)] = watts
    return resolutions


def _controls(reader: Reader, table: Mapping[str, Any]) -> ControlsConfig:
    path = "controls"
    reader.unknown_keys(table, {"mode", "excluded_batteries", "power_limit"}, path)
    mode = reader.value(
        table,
        "mode",
        path,
        lambda r: r if r in ("control", "observe") else None,
        "'control' or 'observe'",
        default="control",
    )
    excluded = reader.value(
        table,
        "excluded_batteries",
        path,
        lambda r: (
            frozenset(r)
            if isinstance(r, list) and all(_positive_int(i) is not None for i in r)
            else None
        ),
        "a list of battery ids (integers > 0)",
        default=frozenset(),
    )
    limit = reader.value(
        table,
        "power_limit",
        path,
        checked(read_power, lambda w: w >= 0),
        "a power >= 0 (W, or with a unit like '500 kW')",
        default=None,
    )
    return ControlsConfig(
        mode="observe" if mode == "observe" else "control",
        excluded_batteries=excluded or frozenset(),
        power_limit_w=limit,
    )


def _level(raw: object) -> str | None:
    return raw.lower() if isinstance(raw, str) and raw.lower() in LOG_LEVELS else None


def _logging(reader: Reader, table: Mapping[str, Any]) -> LoggingConfig:
    path = "logging"
    reader.unknown_keys(table, {"level", "levels"}, path)
    level = reader.value(table, "level", path, _level, f"one of {list(LOG_LEVELS)}", "info")
    raw = table.get("levels", {})
    levels: dict[str, str] = {}
    if not isinstance(raw, dict):
        reader.fail(join(path, "levels"), "a table of logger name = level", raw)
    else:
        for name, value in raw.items():
            found = _level(value)
            if found is None:
                reader.fail(f"{path}.levels.{name}", f"one of {list(LOG_LEVELS)}", value)
            else:
                levels[name] = found
    return LoggingConfig(level or "info", levels)


def _metrics(reader: Reader, table: Mapping[str, Any]) -> MetricsConfig:
    reader.unknown_keys(table, {"listen"}, "metrics")
    raw = table.get("listen", DEFAULT_METRICS_LISTEN)
    if raw == "":
        return MetricsConfig(None)
    try:
        if not isinstance(raw, str):
            raise ListenAddressError(f"expected HOST:PORT, got {raw!r}")
        parse_listen(raw)
    except ListenAddressError:
        reader.fail("metrics.listen", "HOST:PORT (e.g. '127.0.0.1:9464'), or '' for off", raw)
        return MetricsConfig()
    return MetricsConfig(raw)


def _supervision(reader: Reader, table: Mapping[str, Any]) -> SupervisionConfig:
    path = "supervision"
    reader.unknown_keys(
        table, {"restart_initial", "restart_max", "restart_limit", "healthy_after"}, path
    )
    initial = reader.value(
        table, "restart_initial", path, _seconds(0.01, 600), "seconds 0.01-600", default=1.0
    )
    longest = reader.value(
        table, "restart_max", path, _seconds(0.01, 3600), "seconds 0.01-3600", default=60.0
    )
    limit = reader.value(
        table,
        "restart_limit",
        path,
        lambda r: v if (v := integer(r)) is not None and 0 <= v <= 1000 else None,
        "an integer 0-1000",
        default=5,
    )
    healthy = reader.value(
        table, "healthy_after", path, _seconds(1, 86400), "seconds 1-86400", default=300.0
    )
    if initial is not None and longest is not None and longest < initial:
        reader.fail(join(path, "restart_max"), f"at least restart_initial ({initial:g} s)", longest)
    return SupervisionConfig(
        timedelta(seconds=initial or 1.0),
        timedelta(seconds=longest or 60.0),
        5 if limit is None else limit,
        timedelta(seconds=healthy or 300.0),
    )


def _use_cases(reader: Reader, raw: object) -> tuple[UseCaseConfig, ...]:
    if not isinstance(raw, list) or not raw:
        reader.fail("use_cases", "at least one [[use_cases]] table", raw)
        return ()
    found: list[UseCaseConfig] = []
    names: set[str] = set()
    for index, item in enumerate(raw):
        path = f"use_cases[{index}]"
        if not isinstance(item, dict):
            reader.fail(path, "a table", item)
            continue
        common = {"kind", "name", "dispatch_types", "priority", "batteries"}
        kind_keys = _PEAK_SHAVING_KEYS if item.get("kind") == "peak_shaving" else set()
        reader.unknown_keys(item, common | kind_keys, path)
        name = reader.value(
            item,
            "name",
            path,
            lambda r: r if isinstance(r, str) and r.replace("_", "").isalnum() else None,
            "a name of letters, digits and '_'",
            default=None,
        )
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
            default=("PEAK_SHAVING",) if kind == "peak_shaving" else ("BATTERY_POWER",),
        )
        priority = reader.value(
            item,
            "priority",
            path,
            lambda r: v if (v := integer(r)) is not None and -1000 <= v <= 1000 else None,
            "an integer -1000..1000 (higher wins)",
            default=0,
        )
        batteries = reader.value(
            item,
            "batteries",
            path,
            lambda r: (
                frozenset(r)
                if isinstance(r, list) and all(_positive_int(i) is not None for i in r)
                else None
            ),
            "a list of battery ids (empty: all)",
            default=frozenset(),
        )
        shaving = _peak_shaving(reader, item, path) if kind == "peak_shaving" else None
        if kind is not None and types is not None:
            name = name or f"{kind}_{index}"
            if name in names:
                reader.fail(join(path, "name"), "a name no other use case has", name)
                continue
            names.add(name)
            found.append(
                UseCaseConfig(
                    kind,
                    types,
                    name,
                    priority=priority or 0,
                    batteries=batteries or frozenset(),
                    peak_shaving=shaving,
                )
            )
    return tuple(found)


_PEAK_SHAVING_KEYS = {
    "threshold",
    "recharge_margin",
    "max_recharge",
    "export_limit",
    "soc_min",
    "soc_max",
}


def _peak_shaving(reader: Reader, item: Mapping[str, Any], path: str) -> PeakShavingOptions:
    non_negative = checked(read_power, lambda w: w >= 0)
    expected = "a power >= 0 (W, or with a unit like '50 kW')"
    percent = checked(number, lambda v: 0 <= v <= 100)
    threshold = reader.value(
        item, "threshold", path, read_power, "a power (W, or '600 kW')", default=None
    )
    margin = reader.value(item, "recharge_margin", path, non_negative, expected, default=0.0)
    max_recharge = reader.value(item, "max_recharge", path, non_negative, expected, default=None)
    export_limit = reader.value(item, "export_limit", path, non_negative, expected, default=None)
    soc_min = reader.value(item, "soc_min", path, percent, "a SoC % 0-100", default=0.0)
    soc_max = reader.value(item, "soc_max", path, percent, "a SoC % 0-100", default=100.0)
    if soc_min is not None and soc_max is not None and soc_min >= soc_max:
        reader.fail(join(path, "soc_max"), f"more than soc_min ({soc_min:g})", soc_max)
    if threshold is not None and export_limit is not None and threshold < -export_limit:
        reader.fail(
            join(path, "threshold"), f"at least -export_limit ({-export_limit:g} W)", threshold
        )
    return PeakShavingOptions(
        threshold_w=threshold,
        recharge_margin_w=margin or 0.0,
        max_recharge_w=max_recharge,
        export_limit_w=export_limit,
        soc_min_pct=soc_min or 0.0,
        soc_max_pct=100.0 if soc_max is None else soc_max,
    )


_POWER_LIMIT_EXPECTED = "a power >= 0 (W, or with a unit like '800 kW')"


def _grid(reader: Reader, table: Mapping[str, Any]) -> GridConfig:
    path = "grid"
    reader.unknown_keys(
        table, {"max_import", "max_export", "safe_power", "stale_after", "meters"}, path
    )
    non_negative = checked(read_power, lambda w: w >= 0)
    expected = _POWER_LIMIT_EXPECTED
    max_import = reader.value(table, "max_import", path, non_negative, expected, default=None)
    max_export = reader.value(table, "max_export", path, non_negative, expected, default=None)
    safe = reader.value(table, "safe_power", path, read_power, "a power (W)", default=0.0)
    stale = reader.value(
        table, "stale_after", path, _seconds(0.5, 600), "seconds 0.5-600", default=3.0
    )
    meters = _meter_limits(reader, table.get("meters", []))
    return GridConfig(max_import, max_export, safe or 0.0, timedelta(seconds=stale or 3.0), meters)


def _meter_limits(reader: Reader, raw: object) -> tuple[MeterLimit, ...]:
    """`[[grid.meters]]`: id plus at least one of max_import / max_export, ids unique."""
    if not isinstance(raw, list):
        reader.fail("grid.meters", "a list of [[grid.meters]] tables", raw)
        return ()
    found: list[MeterLimit] = []
    seen: set[int] = set()
    non_negative = checked(read_power, lambda w: w >= 0)
    for index, item in enumerate(raw):
        path = f"grid.meters[{index}]"
        if not isinstance(item, dict):
            reader.fail(path, "a table with id, max_import and/or max_export", item)
            continue
        reader.unknown_keys(item, {"id", "max_import", "max_export"}, path)
        meter_id = reader.value(item, "id", path, _positive_int, "a meter's component id > 0")
        max_import = reader.value(
            item, "max_import", path, non_negative, _POWER_LIMIT_EXPECTED, default=None
        )
        max_export = reader.value(
            item, "max_export", path, non_negative, _POWER_LIMIT_EXPECTED, default=None
        )
        if meter_id is None:
            continue
        if "max_import" not in item and "max_export" not in item:
            reader.fail(path, "max_import and/or max_export", item)
            continue
        if meter_id in seen:
            reader.fail(join(path, "id"), "an id not listed before in [[grid.meters]]", meter_id)
            continue
        seen.add(meter_id)
        found.append(MeterLimit(meter_id, max_import, max_export))
    return tuple(found)


def _recovery(reader: Reader, table: Mapping[str, Any]) -> RecoveryConfig:
    path = "recovery"
    reader.unknown_keys(table, {"enabled", "initial_backoff", "max_backoff", "max_attempts"}, path)
    enabled = reader.value(
        table, "enabled", path, lambda r: r if isinstance(r, bool) else None, "true or false", True
    )
    initial = reader.value(
        table, "initial_backoff", path, _seconds(0.1, 600), "seconds 0.1-600", default=2.0
    )
    longest = reader.value(
        table, "max_backoff", path, _seconds(0.1, 3600), "seconds 0.1-3600", default=60.0
    )
    attempts = reader.value(
        table,
        "max_attempts",
        path,
        lambda r: v if (v := integer(r)) is not None and 1 <= v <= 100 else None,
        "an integer 1-100",
        default=5,
    )
    if initial is not None and longest is not None and longest < initial:
        reader.fail(join(path, "max_backoff"), f"at least initial_backoff ({initial:g} s)", longest)
    return RecoveryConfig(
        enabled=enabled is not False,
        initial_backoff=timedelta(seconds=initial or 2.0),
        max_backoff=timedelta(seconds=longest or 60.0),
        max_attempts=attempts or 5,
    )


def load_config(
    path: Path, environ: Mapping[str, str] | None = None, drop_ins: Path | None = None
) -> ControllerConfig:
    """Read and validate a configuration file and its drop-in directory.

    See `config_files.load` (kept there: merging files is its own concern).

    Raises:
        ConfigError: a file is missing, not TOML, or the merged result is invalid.
    """
    from edge_controller.config_files import load

    return load(path, environ=environ, drop_ins=drop_ins)
