"""What a use case is to the rest of the controller: a plug-in, found in one registry.

A use case is one folder under `use_cases/` whose `__init__.py` holds one module-level
object that meets `UseCase`; `use_cases/registry.py` lists those objects. The
configuration (`config/`) and the controller graph (`controller/graph.py`) loop over
the registry and name no use case, so adding one is its folder, one registry line and
its tests:

```python
class EvCharging:
    kind = "ev_charging"                        # [[use_cases]] kind = "ev_charging"
    default_dispatch_types = ("EV_CHARGING",)
    keys = SectionSpec("use_cases", "...", live=True, array=True, keys=(...),
                       heading='[[use_cases]] kind = "ev_charging"')

    def parse(self, reader, item, path):        # its extra keys → its options
        return EvChargingOptions(...)            # every problem via reader.fail(...)

    def build(self, context, config):           # options in config.options
        actor = EvChargingActor(context.dispatches, context.requests, ...)
        return UseCaseActors((actor,), status=actor)

USE_CASE = EvCharging()
```

The graph builds a `UseCaseContext` per configured use case — what it may use: its
dispatches, the power pipeline's request sender and result receiver, a view of the
site, the grid limits, the clock — and runs the `UseCaseActors` it gets back. The
daemon, `/metrics`, the console and the demo read a running use case only through
its `UseCaseStatus`.

A use case that is configured by a top-level table of its own rather than by a
`[[use_cases]]` entry (the market bidder's `[market_bid]`) also meets
`SectionUseCase`. The types every use case shares with the configuration
(`UseCaseConfig`, `GridConfig`) live here, below both `config/` and `use_cases/`: a
use case imports `framework` and `common`, never `config` or `controller`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from frequenz.channels import Receiver, Sender
from frequenz.dispatch import Dispatch

from edge_controller.common.clock import Clock
from edge_controller.common.key_specs import SectionSpec
from edge_controller.common.toml_reader import Reader
from edge_controller.framework.messages import PowerRequest, Result
from edge_controller.framework.supervision import SupervisedActor
from edge_controller.microgrid.graph import BatteryPairs
from edge_controller.microgrid.telemetry import TelemetryCache
from edge_controller.power.meter_limits import MeterLimit


@dataclass(frozen=True, slots=True)
class UseCaseConfig:
    """One configured use case: which kind, which dispatches, and its own options.

    `options` is what the kind's `UseCase.parse` returned for the entry (None for a
    kind without extra keys); only that kind's code looks inside.
    """

    kind: str
    dispatch_types: tuple[str, ...]
    name: str = ""
    """Identity across live edits: a changed entry with the same name is replaced."""
    priority: int = 0
    """Higher wins when use cases want the same components (`power/priority.py`)."""
    batteries: frozenset[int] = frozenset()
    """The batteries a self-driven use case (peak shaving) uses; empty: all."""
    options: object = None
    """The kind's own parsed options (`UseCase.parse`)."""


@dataclass(frozen=True, slots=True)
class GridConfig:
    """The grid connection's limits, enforced between the use cases and the distributor.

    Read by the PowerManagingActor's grid guard and by the use cases that keep the
    grid within bounds themselves (peak shaving, PV curtailment); powers in W, passive
    sign convention (+ import, − export at the grid connection).
    """

    max_import_w: float | None = None
    max_export_w: float | None = None
    safe_power_w: float = 0.0
    """Every battery target while the grid meter's data is stale or missing."""
    stale_after: timedelta = timedelta(seconds=3)
    meters: tuple[MeterLimit, ...] = ()
    """Meters inside the site with limits of their own (`[[grid.meters]]`), enforced
    by the distributor on the inverters below each (`power.meter_limits`)."""


@dataclass(frozen=True, slots=True)
class SiteView:
    """The site as a use case may see it: what can be commanded and what is measured.

    The references are the connection's own, read at each decision (the cache fills
    as telemetry arrives). Component ids only; powers come from `cache`.
    """

    pairs: BatteryPairs
    """Each usable battery inverter with its batteries."""
    cache: TelemetryCache
    grid_meter_id: int | None
    ev_chargers: tuple[int, ...] = ()
    """The EV chargers the site has (commanded with `TargetKind.EV_CHARGERS`)."""
    pv_inverters: tuple[int, ...] = ()
    """The PV inverters the site has (limited with `TargetKind.PV_INVERTERS`)."""


def configured_or_all(
    name: str, configured: frozenset[int], of_site: Iterable[int], *, key: str, what: str
) -> frozenset[int]:
    """The components a use case entry drives: those it names under `key`, else all of `what`.

    Refused when `build` runs (a config, or a live edit, that cannot do what it says
    is rejected, naming the entry) rather than quietly running on fewer components:
    an entry naming components the site does not have as `what`, or a site without
    any (`what` is singular, e.g. "EV charger").

    Raises:
        ValueError: a configured id the site does not have, or none to drive at all.
    """
    site_has = frozenset(of_site)
    unknown = sorted(configured - site_has)
    if unknown:
        raise ValueError(
            f"use case {name!r}: {key} {unknown} are not {what}s of this site; "
            f"its {what}s: {sorted(site_has)}"
        )
    chosen = configured or site_has
    if not chosen:
        raise ValueError(f"use case {name!r}: the site has no {what}")
    return chosen


@dataclass(frozen=True, slots=True)
class DispatchApiAccess:
    """Where a use case that creates dispatches (the market bidder) writes them."""

    url: str
    microgrid_id: int
    auth_key: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class UseCaseContext:
    """What the controller graph hands a use case to build its actors on.

    `dispatches` carries the dispatches of its `dispatch_types` (every change of their
    running state, from the DispatchBroadcastingActor or the offline schedule);
    `requests` goes to the PowerManagingActor; `results` answers the requests sent
    with `name` as their namespace.
    """

    name: str
    dispatches: Receiver[Dispatch]
    requests: Sender[PowerRequest]
    results: Receiver[Result]
    site: SiteView
    grid: GridConfig
    clock: Clock
    request_timeout: timedelta
    """How long each component command may take (`[power_distribution]`)."""
    priority: int
    dispatch_api: DispatchApiAccess | None = None
    """For a use case that creates dispatches; None in tests that need none."""


@runtime_checkable
class UseCaseStatus(Protocol):
    """What the daemon, `/metrics`, the console and the demo read of a running use case."""

    @property
    def running_dispatches(self) -> Mapping[int, float]:
        """Ids of the dispatches it runs now, each with the figure it asks (W)."""
        ...

    @property
    def driving(self) -> Mapping[frozenset[int], float]:
        """Component sets it holds a target on now, with the watts asked."""
        ...

    @property
    def counts(self) -> Mapping[str, int]:
        """Events since start by name (`started`, `requests`, …), for `/metrics`."""
        ...


class NoStatus:
    """The status of a use case that runs no dispatches and drives nothing itself."""

    @property
    def running_dispatches(self) -> Mapping[int, float]:
        """None: it runs no dispatches."""
        return {}

    @property
    def driving(self) -> Mapping[frozenset[int], float]:
        """None: it holds no target."""
        return {}

    @property
    def counts(self) -> Mapping[str, int]:
        """No events."""
        return {}


@dataclass(frozen=True, slots=True)
class UseCaseActors:
    """What `UseCase.build` returns: the actors to run and the status to read.

    The graph starts and supervises `actors`, stops them when the use case is
    removed or replaced (its proposals are withdrawn then), and awaits `closers`
    (clients the use case opened) after they stopped.
    """

    actors: tuple[SupervisedActor, ...]
    status: UseCaseStatus
    closers: tuple[Callable[[], Awaitable[None]], ...] = ()


@runtime_checkable
class UseCase(Protocol):
    """One kind of use case: its keys, how they are parsed, how its actors are built."""

    kind: str
    """The `[[use_cases]] kind` value, e.g. "ev_charging"."""
    default_dispatch_types: tuple[str, ...]
    """The dispatch types an entry acts on when it names none, e.g. ("EV_CHARGING",)."""
    keys: SectionSpec
    """Its extra keys in a `[[use_cases]]` entry, for the parser and the reference."""

    def parse(self, reader: Reader, item: Mapping[str, Any], path: str) -> object:
        """Read its extra keys out of the entry `item` (at key path `path`).

        Every problem is reported through `reader` (`reader.fail(join(path, key),
        expected, found)`), never raised, so one run lists them all; unknown keys are
        checked by the caller against `keys`. The result becomes
        `UseCaseConfig.options`.
        """
        ...

    def build(self, context: UseCaseContext, config: UseCaseConfig) -> UseCaseActors:
        """Create (not start) the actors of one configured use case."""
        ...


@dataclass(frozen=True, slots=True)
class ConfigPlace:
    """Where a configuration was read: for keys naming files or credentials."""

    base_dir: Path | None
    """The config file's directory (relative paths start there)."""
    environ: Mapping[str, str]
    """The environment (`$CREDENTIALS_DIRECTORY`, key variables)."""


@runtime_checkable
class SectionUseCase(UseCase, Protocol):
    """A use case configured by a top-level table of its own (`[market_bid]`).

    It runs when its table is there, once, named after the table; an edit of the
    table applies at the next start (`section.live` is False). It is not a
    `[[use_cases]]` kind.
    """

    section: SectionSpec

    def parse_section(
        self, reader: Reader, table: Mapping[str, Any], place: ConfigPlace
    ) -> object | None:
        """Read the table; None when it cannot be used (its problems are in `reader`)."""
        ...
