"""The controller's TOML configuration, validated into typed objects.

Every problem names the file, the key path, what was expected and what was found,
and unknown keys are errors with a "did you mean" suggestion — all problems are
listed at once. Files and drop-in directories are read by `files.py` (`files.load`,
the one entry point from a path); which settings apply live and which need a restart
is decided in `changes.py`.

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
levels = { grpc = "warning", "edge_controller.controller" = "debug" }

[metrics]
listen = "127.0.0.1:9464"          # /metrics and /healthz; "" turns the endpoint off

[http]
listen = "127.0.0.1:8080"          # the web console and its JSON API; "" turns it off
tls_cert = "console.pem"           # with tls_key: HTTPS (cookies then Secure)
tls_key = "console.key"
users_file = "console-users.json"  # `edge-controller user add NAME --role ROLE`
history_file = "history.sqlite3"   # the last 24 h (default: $STATE_DIRECTORY/…)

[supervision]
restart_initial = 1                # s before a crashed actor's first restart; doubles
restart_max = 60                   # s; longest wait between restarts
restart_limit = 5                  # restarts in a row before the process exits (1)
healthy_after = 300                # s of running without a crash that resets the count

[[use_cases]]
kind = "KIND"                      # a kind of `use_cases/registry.py`
name = "main"                      # identity across live edits (default: KIND_INDEX)
dispatch_types = ["TYPE"]          # default: the kind's
priority = 0                       # higher wins shared components
# ... and the kind's own keys (`use_cases/KIND/config.py`)
```

The use cases are plug-ins (`framework/use_case.py`): the kinds, their keys and
their default dispatch types come from `use_cases/registry.py`, and a use case may
own a top-level table of its own; nothing here names one.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

from edge_controller.common.key_specs import KeySpec, SectionSpec, seconds_key
from edge_controller.common.secret_files import read_api_key
from edge_controller.common.tls_files import tls_file_problems
from edge_controller.common.toml_reader import Reader, checked, integer, join, number, string
from edge_controller.common.toml_reader import power as read_power
from edge_controller.framework.use_case import ConfigPlace, GridConfig, UseCase, UseCaseConfig
from edge_controller.microgrid.recovery import RecoveryConfig
from edge_controller.power.meter_limits import MeterLimit
from edge_controller.servers.common.serving import ListenAddressError, parse_listen
from edge_controller.use_cases import registry

KEY_ENVIRONMENT_VARIABLE = "EDGE_CONTROLLER_DISPATCH_KEY"
KEY_CREDENTIAL = "dispatch-key"
"""The credential name under systemd's `$CREDENTIALS_DIRECTORY` (`LoadCredential=`)."""
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
DEFAULT_METRICS_LISTEN = "127.0.0.1:9464"
DEFAULT_HTTP_LISTEN = "127.0.0.1:8080"
DEFAULT_USERS_FILE = "console-users.json"
HISTORY_FILE_NAME = "console-history.sqlite3"


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
    """Log levels: a default and per-logger overrides (`grpc`, `edge_controller.controller`)."""

    level: str = "info"
    levels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class MetricsConfig:
    """Where the Prometheus `/metrics` and `/healthz` endpoint listens (None: off)."""

    listen: str | None = DEFAULT_METRICS_LISTEN


@dataclass(frozen=True, slots=True)
class HttpConfig:
    """The web console and its JSON API (`console/`), served by the daemon."""

    listen: str | None = DEFAULT_HTTP_LISTEN
    tls_cert: Path | None = None
    tls_key: Path | None = None
    users_file: Path = Path(DEFAULT_USERS_FILE)
    history_file: Path | None = None
    """None: the history is kept in memory only (lost on restart)."""
    history_interval: timedelta = timedelta(seconds=5)

    @property
    def beyond_loopback(self) -> bool:
        """Whether `listen` reaches further than this host (worth a warning)."""
        if self.listen is None:
            return False
        host = parse_listen(self.listen)[0].removeprefix("[").removesuffix("]")
        return not (host.startswith("127.") or host in ("localhost", "::1"))


@dataclass(frozen=True, slots=True)
class SupervisionConfig:
    """How crashed actors are restarted before the process gives up (see `supervision`)."""

    restart_initial: timedelta = timedelta(seconds=1)
    restart_max: timedelta = timedelta(seconds=60)
    restart_limit: int = 5
    healthy_after: timedelta = timedelta(minutes=5)


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
    http: HttpConfig = HttpConfig()
    supervision: SupervisionConfig = SupervisionConfig()
    grid: GridConfig = field(default_factory=GridConfig)
    recovery: RecoveryConfig = field(default_factory=RecoveryConfig)
    sections: tuple[UseCaseConfig, ...] = ()
    """The use cases configured by a top-level table of their own (a `SectionUseCase`),
    in registry order, each when its table is there; applied at start only."""

    def section(self, name: str) -> UseCaseConfig | None:
        """The use case configured by the top-level table `name`, if the table is there."""
        return next((u for u in self.sections if u.name == name), None)


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


def _one_of(*choices: str) -> Callable[[object], str | None]:
    return lambda raw: raw if isinstance(raw, str) and raw in choices else None


def _int_within(low: int, high: int) -> Callable[[object], int | None]:
    return lambda raw: v if (v := integer(raw)) is not None and low <= v <= high else None


def _ids(raw: object) -> frozenset[int] | None:
    if isinstance(raw, list) and all(_positive_int(i) is not None for i in raw):
        return frozenset(raw)
    return None


def _level(raw: object) -> str | None:
    return raw.lower() if isinstance(raw, str) and raw.lower() in LOG_LEVELS else None


def _dispatch_types(raw: object) -> tuple[str, ...] | None:
    if isinstance(raw, list) and raw and all(isinstance(t, str) and t for t in raw):
        return tuple(raw)
    return None


def _use_case_name(raw: object) -> str | None:
    return raw if isinstance(raw, str) and raw.replace("_", "").isalnum() else None


_NON_NEGATIVE_POWER = checked(read_power, lambda w: w >= 0)
_POWER_LIMIT_EXPECTED = "a power >= 0 (W, or with a unit like '800 kW')"
_PEAK_POWER_EXPECTED = "a power >= 0 (W, or with a unit like '50 kW')"
_PERCENT = checked(number, lambda v: 0 <= v <= 100)
_LEVELS_EXPECTED = f"one of {list(LOG_LEVELS)}"


def _power_limit(key: str, meaning: str) -> KeySpec:
    return KeySpec(
        key,
        _POWER_LIMIT_EXPECTED,
        meaning,
        unit="W",
        default=None,
        default_text="no limit",
        convert=_NON_NEGATIVE_POWER,
    )


MICROGRID = SectionSpec(
    "microgrid",
    "Where the Microgrid API is (the site's inverters, batteries and meters).",
    live=False,
    keys=(
        KeySpec(
            "url",
            _URL_EXPECTED,
            "The Microgrid API; a plain local server needs `?ssl=false`.",
            convert=_url,
        ),
        KeySpec(
            "id",
            "an integer id > 0",
            "This site's microgrid id; the default of `dispatch.microgrid_id`.",
            default=None,
            default_text="none",
            convert=_positive_int,
        ),
        seconds_key("stale_after", 0.1, 3600, 10.0, "Telemetry older than this counts as missing."),
    ),
)
DISPATCH = SectionSpec(
    "dispatch",
    "Where the Dispatch API is (the cloud or the local service), for which microgrid, "
    "with which key.",
    live=False,
    keys=(
        KeySpec(
            "url",
            _URL_EXPECTED,
            "The Dispatch API; a loopback URL must say `ssl=false` or name its certificates.",
            convert=_url,
        ),
        KeySpec(
            "microgrid_id",
            "an integer id > 0 (or set microgrid.id)",
            "The microgrid whose dispatches run here; must equal `microgrid.id` if both are set.",
            default_text="`microgrid.id`",
            convert=_positive_int,
        ),
        KeySpec(
            "key_file",
            "a file path",
            "File holding the API key, relative to the config file; the key is never logged.",
            default_text=(
                f"`$CREDENTIALS_DIRECTORY/{KEY_CREDENTIAL}` (systemd `LoadCredential=`), "
                f"else `${KEY_ENVIRONMENT_VARIABLE}`"
            ),
        ),
        seconds_key(
            "startup_timeout",
            1,
            600,
            15.0,
            "Start-up stops with an error naming the URL if the service does not answer "
            "(and there is no cache).",
        ),
        KeySpec(
            "cache_file",
            "a file path",
            "The last known dispatches, run from here while the service is unreachable.",
            default_text="`$STATE_DIRECTORY/dispatch-cache.json` under systemd, else no cache",
        ),
        seconds_key(
            "reconnect_interval",
            1,
            3600,
            10.0,
            "How often an unreachable service is retried while running from the cache.",
        ),
        seconds_key(
            "reconcile_first",
            0.1,
            600,
            5.0,
            "After connecting, when the first check for dispatches the stream missed runs.",
        ),
        seconds_key("reconcile_interval", 1, 86400, 300.0, "How often that check repeats."),
    ),
)
POWER_DISTRIBUTION = SectionSpec(
    "power_distribution",
    "The PowerDistributingActor: how a target is split over batteries and sent.",
    live=True,
    keys=(
        KeySpec(
            "algorithm",
            "'soc_balancing' or 'proportional'",
            "SoC balancing (water-filling) or the Frequenz SDK's proportional scheme.",
            default="soc_balancing",
            convert=_one_of("soc_balancing", "proportional"),
        ),
        seconds_key(
            "request_timeout",
            0.05,
            60,
            5.0,
            "Per inverter command; a timeout blocks its battery (see blocking_*).",
        ),
        seconds_key(
            "keepalive_interval",
            1,
            890,
            15.0,
            "Targets are re-planned and re-sent this often; less than command_lifetime.",
        ),
        seconds_key(
            "command_lifetime",
            10,
            900,
            60.0,
            "How long the API holds a command before the inverter returns to 0 W.",
        ),
        KeySpec(
            "resolutions",
            "a table of inverter id = resolution > 0 (W, or with a unit)",
            "Per inverter id: its power step; commands are floored to a multiple of it.",
            unit="W",
            default_text="1 W for every inverter",
        ),
        seconds_key(
            "blocking_initial",
            0.1,
            600,
            1.0,
            "A failed battery is left out this long; doubles per repeated failure.",
        ),
        seconds_key(
            "blocking_max",
            0.1,
            3600,
            30.0,
            "The longest a failed battery is left out; at least blocking_initial.",
        ),
    ),
)
CONTROLS = SectionSpec(
    "controls",
    "What the operator allows the controller to do.",
    live=True,
    keys=(
        KeySpec(
            "mode",
            "'control' or 'observe'",
            "`observe` plans and logs every decision but commands nothing (commissioning).",
            default="control",
            convert=_one_of("control", "observe"),
        ),
        KeySpec(
            "excluded_batteries",
            "a list of battery ids (integers > 0)",
            "Batteries never used; released to 0 W when excluded while running.",
            default=frozenset(),
            default_text="`[]`",
            convert=_ids,
        ),
        KeySpec(
            "power_limit",
            "a power >= 0 (W, or with a unit like '500 kW')",
            "The sum of |target| over all running battery targets stays within this.",
            unit="W",
            default=None,
            default_text="no limit",
            convert=_NON_NEGATIVE_POWER,
        ),
    ),
)
LOGGING = SectionSpec(
    "logging",
    "Log levels (the `--log-level` flag overrides `level`).",
    live=True,
    keys=(
        KeySpec("level", _LEVELS_EXPECTED, "The default level.", default="info", convert=_level),
        KeySpec(
            "levels",
            "a table of logger name = level",
            "Per-logger levels, e.g. "
            '`{ grpc = "warning", "edge_controller.controller" = "debug" }`.',
            default_text="`{}`",
        ),
    ),
)
METRICS = SectionSpec(
    "metrics",
    "The Prometheus endpoint: `GET /metrics` and `GET /healthz`.",
    live=False,
    keys=(
        KeySpec(
            "listen",
            "HOST:PORT (e.g. '127.0.0.1:9464'), or '' for off",
            "Where the endpoint listens; an empty string turns it off.",
            default=DEFAULT_METRICS_LISTEN,
        ),
    ),
)
HTTP = SectionSpec(
    "http",
    "The web console and its JSON API under `/api/` (users, roles, live updates); "
    "a warning is logged when it listens beyond loopback.",
    live=False,
    keys=(
        KeySpec(
            "listen",
            "HOST:PORT (e.g. '127.0.0.1:8080'), or '' for off",
            "Where the console listens; a port that cannot be bound is logged, the "
            "controller runs on without it.",
            default=DEFAULT_HTTP_LISTEN,
        ),
        KeySpec(
            "tls_cert",
            "a PEM certificate file (with tls_key)",
            "Serve HTTPS with this certificate chain, relative to the config file.",
            default=None,
            default_text="none: plain HTTP",
        ),
        KeySpec(
            "tls_key",
            "a PEM private key file (with tls_cert)",
            "The certificate's private key, relative to the config file.",
            default=None,
            default_text="none",
        ),
        KeySpec(
            "users_file",
            "a file path",
            "Users, roles, scrypt password hashes and API token hashes "
            "(`edge-controller user add`), relative to the config file.",
            default_text=f"`{DEFAULT_USERS_FILE}` beside the config file",
        ),
        KeySpec(
            "history_file",
            "a file path",
            "SQLite store of the last 24 h (site, grid, each battery), kept across restarts.",
            default_text=f"`$STATE_DIRECTORY/{HISTORY_FILE_NAME}` under systemd, "
            "else in memory only",
        ),
        seconds_key(
            "history_interval",
            1,
            10,
            5.0,
            "One history sample this often (the API promises at least one per 10 s).",
        ),
    ),
)
SUPERVISION = SectionSpec(
    "supervision",
    "How crashed actors are restarted before the process gives up (exit 1).",
    live=True,
    keys=(
        seconds_key(
            "restart_initial",
            0.01,
            600,
            1.0,
            "Wait before a crashed actor's first restart; doubles per crash (±20 % jitter).",
        ),
        seconds_key(
            "restart_max",
            0.01,
            3600,
            60.0,
            "The longest wait between restarts; at least restart_initial.",
        ),
        KeySpec(
            "restart_limit",
            "an integer 0-1000",
            "Crashes in a row after which the batteries are released and the process exits 1.",
            default=5,
            convert=_int_within(0, 1000),
        ),
        seconds_key(
            "healthy_after",
            1,
            86400,
            300.0,
            "A run this long without a crash resets the count.",
        ),
    ),
)
GRID = SectionSpec(
    "grid",
    "Limits at the grid connection point, enforced between the use cases and the distributor.",
    live=True,
    keys=(
        _power_limit("max_import", "Predicted grid import never exceeds this."),
        _power_limit("max_export", "Predicted grid export never exceeds this."),
        KeySpec(
            "safe_power",
            "a power (W)",
            "Every battery target while the grid meter's data is stale or missing.",
            unit="W",
            default=0.0,
            convert=read_power,
        ),
        seconds_key(
            "stale_after",
            0.5,
            600,
            3.0,
            "Grid (and feeder) meter data older than this counts as missing.",
        ),
        KeySpec(
            "meters",
            "a list of [[grid.meters]] tables",
            "Meters inside the site with limits of their own; see `[[grid.meters]]`.",
            default_text="`[]`",
        ),
    ),
)
GRID_METERS = SectionSpec(
    "grid.meters",
    "A meter inside the site (a feeder, a tenant's connection) with its own limits, "
    "enforced on the battery inverters below it; at least one limit; ids unique.",
    live=True,
    array=True,
    keys=(
        KeySpec(
            "id",
            "a meter's component id > 0",
            "The meter's component id; it must have battery inverters below it.",
            convert=_positive_int,
        ),
        _power_limit("max_import", "Import through this meter never exceeds this."),
        _power_limit("max_export", "Export through this meter never exceeds this."),
    ),
)
RECOVERY = SectionSpec(
    "recovery",
    "Batteries and inverters in ERROR or STANDBY: taken out, acknowledged, started, put back.",
    live=True,
    keys=(
        KeySpec(
            "enabled",
            "true or false",
            "Recover components (false: they stay in distribution, as without this feature).",
            default=True,
            convert=lambda r: r if isinstance(r, bool) else None,
        ),
        seconds_key(
            "initial_backoff",
            0.1,
            600,
            2.0,
            "Wait after a failed attempt; doubles per failure.",
        ),
        seconds_key(
            "max_backoff",
            0.1,
            3600,
            60.0,
            "The longest wait between attempts; at least initial_backoff.",
        ),
        KeySpec(
            "max_attempts",
            "an integer 1-100",
            "Failed attempts after which recovery gives up on a component.",
            default=5,
            convert=_int_within(1, 100),
        ),
    ),
)


def use_cases_section(use_cases: tuple[UseCase, ...]) -> SectionSpec:
    """`[[use_cases]]`: the keys every entry has; the kinds and defaults from `use_cases`."""
    kinds = registry.entry_kinds(use_cases)
    defaults = "; ".join(
        f"{kind}: `{list(u.default_dispatch_types)!r}`".replace("'", '"')
        for kind, u in kinds.items()
    )
    return SectionSpec(
        "use_cases",
        "The use-case actors (at least one); the list is replaced whole by a drop-in. "
        "Added, removed (their components released) or replaced live, by name.",
        live=True,
        array=True,
        keys=(
            KeySpec(
                "kind",
                f"one of {list(kinds)}",
                "Which use case; its own keys, if any, are listed under its heading below.",
                convert=_one_of(*kinds),
            ),
            KeySpec(
                "name",
                "a name of letters, digits and '_'",
                "Identity across live edits: a changed entry with the same name is replaced.",
                default=None,
                default_text="`KIND_INDEX`",
                convert=_use_case_name,
            ),
            KeySpec(
                "dispatch_types",
                "a non-empty list of dispatch type names",
                "The dispatch types this use case acts on.",
                default_text=f"the kind's ({defaults})",
                convert=_dispatch_types,
            ),
            KeySpec(
                "priority",
                "an integer -1000..1000 (higher wins)",
                "Higher wins when use cases want the same components.",
                default=0,
                convert=_int_within(-1000, 1000),
            ),
            KeySpec(
                "batteries",
                "a list of battery ids (empty: all)",
                "The batteries a self-driven use case (peak shaving) uses.",
                default=frozenset(),
                default_text="all",
                convert=_ids,
            ),
        ),
    )


_CORE_SECTIONS: tuple[SectionSpec, ...] = (
    MICROGRID,
    DISPATCH,
    POWER_DISTRIBUTION,
    CONTROLS,
    LOGGING,
    METRICS,
    HTTP,
    SUPERVISION,
    GRID,
    GRID_METERS,
    RECOVERY,
)
"""The tables of the controller itself (each a field of `ControllerConfig`)."""
CORE_SECTION_NAMES = tuple(s.name for s in _CORE_SECTIONS if "." not in s.name)


def config_sections(use_cases: tuple[UseCase, ...]) -> tuple[SectionSpec, ...]:
    """Every table of the controller config with these use cases, in the reference's order.

    The controller's own tables, the top-level tables use cases own,
    `[[use_cases]]`, then each kind's extra keys (kinds without any are left out).
    """
    owned = tuple(u.section for u in registry.section_owners(use_cases).values())
    kinds = registry.entry_kinds(use_cases).values()
    return (
        *_CORE_SECTIONS,
        *owned,
        use_cases_section(use_cases),
        *(u.keys for u in kinds if u.keys.keys),
    )


CONFIG_SECTIONS: tuple[SectionSpec, ...] = config_sections(registry.USE_CASES)
"""Every table of the controller config, in the order of the reference."""

SECTIONS = tuple(dict.fromkeys(s.name for s in CONFIG_SECTIONS if "." not in s.name))
"""The top-level tables."""


def parse_config(
    document: Mapping[str, Any],
    source: str = "<config>",
    *,
    base_dir: Path | None = None,
    environ: Mapping[str, str] | None = None,
    locate: Callable[[str], str] | None = None,
) -> ControllerConfig:
    """Validate a parsed TOML document.

    Every table is read by its own function; each records its problems on the one
    `Reader` and returns None (or a default) where a value is missing, so every
    problem of the file is listed at once.

    Raises:
        ConfigError: listing every problem.
    """
    reader = Reader()
    environ = os.environ if environ is None else environ
    owned = registry.section_owners(registry.USE_CASES)
    reader.unknown_keys(document, {*CORE_SECTION_NAMES, "use_cases", *owned}, "")
    microgrid = _microgrid(reader, reader.table(document, "microgrid", ""))
    dispatch = _dispatch(
        reader,
        reader.table(document, "dispatch", ""),
        None if microgrid is None else microgrid.id,
        base_dir,
        environ,
    )
    power_distribution = _power_distribution(
        reader, reader.table(document, "power_distribution", "")
    )
    use_cases = registry.USE_CASES
    entries = _use_cases(reader, document.get("use_cases", []), use_cases)
    controls = _controls(reader, reader.table(document, "controls", ""))
    logging_config = _logging(reader, reader.table(document, "logging", ""))
    metrics = _metrics(reader, reader.table(document, "metrics", ""))
    http = _http(reader, reader.table(document, "http", ""), base_dir, environ)
    supervision = _supervision(reader, reader.table(document, "supervision", ""))
    grid = _grid(reader, reader.table(document, "grid", ""))
    recovery = _recovery(reader, reader.table(document, "recovery", ""))
    sections = _owned_sections(reader, document, use_cases, ConfigPlace(base_dir, environ))
    if reader.problems:
        raise ConfigError(source, reader.problems, locate)
    # Every None above recorded a problem, so none is left here.
    assert microgrid is not None
    assert dispatch is not None
    assert power_distribution is not None
    return ControllerConfig(
        source=source,
        microgrid=microgrid,
        dispatch=dispatch,
        power_distribution=power_distribution,
        use_cases=entries,
        controls=controls,
        logging=logging_config,
        metrics=metrics,
        http=http,
        supervision=supervision,
        grid=grid,
        recovery=recovery,
        sections=sections,
    )


def _microgrid(reader: Reader, table: Mapping[str, Any]) -> MicrogridConfig | None:
    reader.unknown_keys(table, MICROGRID.names, "microgrid")
    url = MICROGRID.read(reader, table, "url")
    microgrid_id = MICROGRID.read(reader, table, "id")
    stale = MICROGRID.read(reader, table, "stale_after")
    if url is not None:
        reader.problems.extend(f"microgrid.url: {p}" for p in tls_file_problems(url))
    if url is None or stale is None:
        return None
    return MicrogridConfig(url, timedelta(seconds=stale), microgrid_id)


def _dispatch(
    reader: Reader,
    table: Mapping[str, Any],
    micro_id: int | None,
    base_dir: Path | None,
    environ: Mapping[str, str],
) -> DispatchConfig | None:
    """`[dispatch]`; its `microgrid_id` defaults to `[microgrid] id` and must match it."""
    reader.unknown_keys(table, DISPATCH.names, "dispatch")
    url = DISPATCH.read(reader, table, "url")
    microgrid_id = reader.value(
        table,
        "microgrid_id",
        "dispatch",
        _positive_int,
        DISPATCH["microgrid_id"].expected,
        **({} if micro_id is None else {"default": micro_id}),
    )
    if micro_id is not None and microgrid_id is not None and micro_id != microgrid_id:
        reader.fail("dispatch.microgrid_id", f"microgrid.id ({micro_id})", microgrid_id)
    startup = DISPATCH.read(reader, table, "startup_timeout")
    key = read_api_key(
        reader,
        table,
        "dispatch",
        base_dir,
        environ,
        credential=KEY_CREDENTIAL,
        variable=KEY_ENVIRONMENT_VARIABLE,
    )
    if url is not None and (tls := tls_problem(url)) is not None:
        reader.problems.append(f"dispatch.url: {tls}, got {url!r}")
    reconnect = DISPATCH.read(reader, table, "reconnect_interval")
    cache_file = _cache_file(reader, table, base_dir, environ)
    reconcile_first = DISPATCH.read(reader, table, "reconcile_first")
    reconcile_interval = DISPATCH.read(reader, table, "reconcile_interval")
    if url is not None:
        reader.problems.extend(f"dispatch.url: {p}" for p in tls_file_problems(url))
    if (
        url is None
        or microgrid_id is None
        or startup is None
        or key is None
        or reconnect is None
        or reconcile_first is None
        or reconcile_interval is None
    ):
        return None
    return DispatchConfig(
        url,
        microgrid_id,
        key,
        timedelta(seconds=startup),
        cache_file,
        timedelta(seconds=reconnect),
        timedelta(seconds=reconcile_first),
        timedelta(seconds=reconcile_interval),
    )


def _power_distribution(reader: Reader, table: Mapping[str, Any]) -> PowerDistributionConfig | None:
    """`[power_distribution]`; the keep-alive must come before a command expires."""
    section = "power_distribution"
    reader.unknown_keys(table, POWER_DISTRIBUTION.names, section)
    algorithm = POWER_DISTRIBUTION.read(reader, table, "algorithm")
    timeout = POWER_DISTRIBUTION.read(reader, table, "request_timeout")
    lifetime = POWER_DISTRIBUTION.read(reader, table, "command_lifetime")
    keepalive = POWER_DISTRIBUTION.read(reader, table, "keepalive_interval")
    if keepalive is not None and lifetime is not None and keepalive >= lifetime:
        reader.fail(
            join(section, "keepalive_interval"),
            f"less than command_lifetime ({lifetime:g} s)",
            keepalive,
        )
    resolutions = _resolutions(reader, table)
    blocking_initial = POWER_DISTRIBUTION.read(reader, table, "blocking_initial")
    blocking_max = POWER_DISTRIBUTION.read(reader, table, "blocking_max")
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
    if algorithm is None or timeout is None or lifetime is None or keepalive is None:
        return None
    return PowerDistributionConfig(
        algorithm=algorithm,
        request_timeout=timedelta(seconds=timeout),
        keepalive_interval=timedelta(seconds=keepalive),
        command_lifetime=timedelta(seconds=lifetime),
        resolutions_w=resolutions,
        blocking_initial=timedelta(seconds=blocking_initial or 1.0),
        blocking_max=timedelta(seconds=blocking_max or 30.0),
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
    reader.unknown_keys(table, CONTROLS.names, "controls")
    mode = CONTROLS.read(reader, table, "mode")
    excluded = CONTROLS.read(reader, table, "excluded_batteries")
    limit = CONTROLS.read(reader, table, "power_limit")
    return ControlsConfig(
        mode="observe" if mode == "observe" else "control",
        excluded_batteries=excluded or frozenset(),
        power_limit_w=limit,
    )


def _logging(reader: Reader, table: Mapping[str, Any]) -> LoggingConfig:
    path = "logging"
    reader.unknown_keys(table, LOGGING.names, path)
    level = LOGGING.read(reader, table, "level")
    raw = table.get("levels", {})
    levels: dict[str, str] = {}
    if not isinstance(raw, dict):
        reader.fail(join(path, "levels"), LOGGING["levels"].expected, raw)
    else:
        for name, value in raw.items():
            found = _level(value)
            if found is None:
                reader.fail(f"{path}.levels.{name}", _LEVELS_EXPECTED, value)
            else:
                levels[name] = found
    return LoggingConfig(level or "info", levels)


def _metrics(reader: Reader, table: Mapping[str, Any]) -> MetricsConfig:
    reader.unknown_keys(table, METRICS.names, "metrics")
    raw = table.get("listen", DEFAULT_METRICS_LISTEN)
    if raw == "":
        return MetricsConfig(None)
    try:
        if not isinstance(raw, str):
            raise ListenAddressError(f"expected HOST:PORT, got {raw!r}")
        parse_listen(raw)
    except ListenAddressError:
        reader.fail("metrics.listen", METRICS["listen"].expected, raw)
        return MetricsConfig()
    return MetricsConfig(raw)


def _file(reader: Reader, table: Mapping[str, Any], key: str, base_dir: Path | None) -> Path | None:
    """An optional file path of `[http]`, relative to the config file's directory."""
    raw = table.get(key)
    if raw is None:
        return None
    if not isinstance(raw, str) or not raw:
        reader.fail(f"http.{key}", HTTP[key].expected, raw)
        return None
    path = Path(raw)
    return base_dir / path if not path.is_absolute() and base_dir is not None else path


def _http(
    reader: Reader, table: Mapping[str, Any], base_dir: Path | None, environ: Mapping[str, str]
) -> HttpConfig:
    reader.unknown_keys(table, HTTP.names, "http")
    raw = table.get("listen", DEFAULT_HTTP_LISTEN)
    listen: str | None = None
    if raw != "":
        try:
            if not isinstance(raw, str):
                raise ListenAddressError(f"expected HOST:PORT, got {raw!r}")
            parse_listen(raw)
            listen = raw
        except ListenAddressError:
            reader.fail("http.listen", HTTP["listen"].expected, raw)
    cert = _file(reader, table, "tls_cert", base_dir)
    key = _file(reader, table, "tls_key", base_dir)
    if ("tls_cert" in table) != ("tls_key" in table):
        given, missing = ("tls_cert", "tls_key") if "tls_cert" in table else ("tls_key", "tls_cert")
        reader.problems.append(
            f"http.{given}: needs http.{missing} as well (a certificate and its key)"
        )
    elif cert is not None and key is not None:
        from edge_controller.servers.common.serving import ServerTls, TlsFileError

        try:
            ServerTls.from_files(cert, key)
        except TlsFileError as error:
            message = str(error).replace("--tls-cert", "http.tls_cert")
            reader.problems.append(message.replace("--tls-key", "http.tls_key"))
    users = _file(reader, table, "users_file", base_dir)
    if users is None:
        users = (base_dir or Path()) / DEFAULT_USERS_FILE
    history = _file(reader, table, "history_file", base_dir)
    if history is None and "history_file" not in table:
        state = environ.get("STATE_DIRECTORY", "").split(":")[0]
        history = Path(state) / HISTORY_FILE_NAME if state else None
    interval = HTTP.read(reader, table, "history_interval")
    return HttpConfig(
        listen=listen,
        tls_cert=cert,
        tls_key=key,
        users_file=users,
        history_file=history,
        history_interval=timedelta(seconds=interval or 5.0),
    )


def _supervision(reader: Reader, table: Mapping[str, Any]) -> SupervisionConfig:
    path = "supervision"
    reader.unknown_keys(table, SUPERVISION.names, path)
    initial = SUPERVISION.read(reader, table, "restart_initial")
    longest = SUPERVISION.read(reader, table, "restart_max")
    limit = SUPERVISION.read(reader, table, "restart_limit")
    healthy = SUPERVISION.read(reader, table, "healthy_after")
    if initial is not None and longest is not None and longest < initial:
        reader.fail(join(path, "restart_max"), f"at least restart_initial ({initial:g} s)", longest)
    return SupervisionConfig(
        timedelta(seconds=initial or 1.0),
        timedelta(seconds=longest or 60.0),
        5 if limit is None else limit,
        timedelta(seconds=healthy or 300.0),
    )


def _use_cases(
    reader: Reader, raw: object, use_cases: tuple[UseCase, ...]
) -> tuple[UseCaseConfig, ...]:
    """`[[use_cases]]`: the common keys, then the kind's own (`UseCase.parse`)."""
    if not isinstance(raw, list) or not raw:
        reader.fail("use_cases", "at least one [[use_cases]] table", raw)
        return ()
    spec = use_cases_section(use_cases)
    kinds = registry.entry_kinds(use_cases)
    found: list[UseCaseConfig] = []
    names: set[str] = set()
    for index, item in enumerate(raw):
        path = f"use_cases[{index}]"
        if not isinstance(item, dict):
            reader.fail(path, "a table", item)
            continue
        kind = spec.read(reader, item, "kind", path)
        use_case = kinds.get(kind) if kind is not None else None
        own_keys = use_case.keys.names if use_case is not None else set()
        reader.unknown_keys(item, spec.names | own_keys, path)
        name = spec.read(reader, item, "name", path)
        types = reader.value(
            item,
            "dispatch_types",
            path,
            _dispatch_types,
            spec["dispatch_types"].expected,
            default=use_case.default_dispatch_types if use_case is not None else (),
        )
        priority = spec.read(reader, item, "priority", path)
        batteries = spec.read(reader, item, "batteries", path)
        options = use_case.parse(reader, item, path) if use_case is not None else None
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
                    options=options,
                )
            )
    return tuple(found)


def _owned_sections(
    reader: Reader,
    document: Mapping[str, Any],
    use_cases: tuple[UseCase, ...],
    place: ConfigPlace,
) -> tuple[UseCaseConfig, ...]:
    """The use cases whose own top-level table is in `document` (a `SectionUseCase`)."""
    found: list[UseCaseConfig] = []
    for name, owner in registry.section_owners(use_cases).items():
        if name not in document:
            continue
        options = owner.parse_section(reader, reader.table(document, name, ""), place)
        if options is not None:
            found.append(UseCaseConfig(owner.kind, (), name, options=options))
    return tuple(found)


def _grid(reader: Reader, table: Mapping[str, Any]) -> GridConfig:
    reader.unknown_keys(table, GRID.names, "grid")
    max_import = GRID.read(reader, table, "max_import")
    max_export = GRID.read(reader, table, "max_export")
    safe = GRID.read(reader, table, "safe_power")
    stale = GRID.read(reader, table, "stale_after")
    meters = _meter_limits(reader, table.get("meters", []))
    return GridConfig(max_import, max_export, safe or 0.0, timedelta(seconds=stale or 3.0), meters)


def _meter_limits(reader: Reader, raw: object) -> tuple[MeterLimit, ...]:
    """`[[grid.meters]]`: id plus at least one of max_import / max_export, ids unique."""
    if not isinstance(raw, list):
        reader.fail("grid.meters", GRID["meters"].expected, raw)
        return ()
    found: list[MeterLimit] = []
    seen: set[int] = set()
    for index, item in enumerate(raw):
        path = f"grid.meters[{index}]"
        if not isinstance(item, dict):
            reader.fail(path, "a table with id, max_import and/or max_export", item)
            continue
        reader.unknown_keys(item, GRID_METERS.names, path)
        meter_id = GRID_METERS.read(reader, item, "id", path)
        max_import = GRID_METERS.read(reader, item, "max_import", path)
        max_export = GRID_METERS.read(reader, item, "max_export", path)
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
    reader.unknown_keys(table, RECOVERY.names, path)
    enabled = RECOVERY.read(reader, table, "enabled")
    initial = RECOVERY.read(reader, table, "initial_backoff")
    longest = RECOVERY.read(reader, table, "max_backoff")
    attempts = RECOVERY.read(reader, table, "max_attempts")
    if initial is not None and longest is not None and longest < initial:
        reader.fail(join(path, "max_backoff"), f"at least initial_backoff ({initial:g} s)", longest)
    return RecoveryConfig(
        enabled=enabled is not False,
        initial_backoff=timedelta(seconds=initial or 2.0),
        max_backoff=timedelta(seconds=longest or 60.0),
        max_attempts=attempts or 5,
    )
