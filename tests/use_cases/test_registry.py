"""The registry drives the configuration and the controller graph: a use case is one
registry line.

A fake use case, registered the way a new folder is (its name added to
`registry.FOLDERS`), is parsed with its own keys, shown in the reference, built by the
controller and driven by its own dispatch type on the simulated site — without a line
of `config/` or `controller/` knowing it. The registry imports the folders by name,
which the import rules cannot see: the folders defining `USE_CASE` and `FOLDERS` are
compared here, and a bad entry stops the start naming its folder.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from frequenz.channels import Receiver, Sender
from frequenz.dispatch import Dispatch
from frequenz.quantities import Power

from edge_controller import use_cases
from edge_controller.common.key_specs import KeySpec, SectionSpec
from edge_controller.common.toml_reader import Reader, checked, number
from edge_controller.config.reference import reference_markdown
from edge_controller.config.schema import ConfigError, parse_config
from edge_controller.dispatching.payload import parse_power
from edge_controller.dispatching.schedule import running_now
from edge_controller.framework.messages import PowerRequest
from edge_controller.framework.supervision import SupervisedActor
from edge_controller.framework.use_case import (
    UseCaseActors,
    UseCaseConfig,
    UseCaseContext,
)
from edge_controller.servers.sim.site import SiteSpec
from edge_controller.use_cases import registry
from tests.harness import power_reaches, site_running
from tests.test_config import ENV, GOOD

FAKE_TYPE = "HALF_POWER"


@dataclass(frozen=True, slots=True)
class HalfOptions:
    """The fake's options: the share of a dispatch's power it holds."""

    share: float


class HalfPowerActor(SupervisedActor):
    """Holds `share` of a running dispatch's `power_w` on one inverter's batteries."""

    def __init__(
        self,
        dispatches: Receiver[Dispatch],
        requests: Sender[PowerRequest],
        batteries: frozenset[int],
        share: float,
        name: str,
    ) -> None:
        super().__init__(name=name)
        self._dispatches = dispatches
        self._requests = requests
        self._batteries = batteries
        self._share = share
        self.running: dict[int, float] = {}

    @property
    def running_dispatches(self) -> Mapping[int, float]:
        return dict(self.running)

    @property
    def driving(self) -> Mapping[frozenset[int], float]:
        return {self._batteries: sum(self.running.values())} if self.running else {}

    @property
    def counts(self) -> Mapping[str, int]:
        return {"running": len(self.running)}

    async def _run(self) -> None:
        async for dispatch in self._dispatches:
            if running_now(dispatch):
                watts = self._share * parse_power(
                    int(dispatch.id), "power_w", dispatch.payload["power_w"]
                )
                self.running[int(dispatch.id)] = watts
            else:
                self.running.pop(int(dispatch.id), None)
            power = Power.from_watts(sum(self.running.values()))
            await self._requests.send(PowerRequest(self.name, power, self._batteries))


class HalfPower:
    """A use case no `config/` or `controller/` module knows."""

    kind = "half_power"
    default_dispatch_types: tuple[str, ...] = (FAKE_TYPE,)
    keys = SectionSpec(
        "use_cases",
        "The extra keys of a `half_power` use case.",
        live=True,
        array=True,
        heading='[[use_cases]] kind = "half_power"',
        keys=(
            KeySpec(
                "share",
                "a number 0-1",
                "The share of the dispatch's power held.",
                default=0.5,
                convert=checked(number, lambda v: 0 <= v <= 1),
            ),
        ),
    )

    def parse(self, reader: Reader, item: Mapping[str, Any], path: str) -> object:
        share = self.keys.read(reader, item, "share", path)
        return HalfOptions(0.5 if share is None else share)

    def build(self, context: UseCaseContext, config: UseCaseConfig) -> UseCaseActors:
        assert isinstance(config.options, HalfOptions)
        pairs = context.site.pairs
        first = pairs.inverter_ids[0]
        actor = HalfPowerActor(
            context.dispatches,
            context.requests,
            frozenset(pairs.batteries_of(first)),
            config.options.share,
            context.name,
        )
        return UseCaseActors((actor,), status=actor)


HALF_POWER = HalfPower()


def folder(monkeypatch: pytest.MonkeyPatch, name: str, **names: object) -> None:
    """A use-case folder `use_cases/<name>/` whose `__init__.py` holds `names`."""
    package = ModuleType(f"{use_cases.__name__}.{name}")
    for key, value in names.items():
        setattr(package, key, value)
    monkeypatch.setitem(sys.modules, package.__name__, package)


@pytest.fixture
def registered(monkeypatch: pytest.MonkeyPatch) -> None:
    """The one registry line a new use case adds: its folder's name in `FOLDERS`."""
    folder(monkeypatch, "half_power", USE_CASE=HALF_POWER)
    monkeypatch.setattr(registry, "FOLDERS", (*registry.FOLDERS, "half_power"))
    monkeypatch.setattr(registry, "USE_CASES", registry.load_all(registry.FOLDERS))


def test_every_use_case_folder_is_registered_and_every_entry_is_one() -> None:
    # The registry imports its folders by name, out of the import rules' sight.
    defining = {
        found.name
        for found in pkgutil.iter_modules(use_cases.__path__)
        if found.ispkg
        and hasattr(importlib.import_module(f"{use_cases.__name__}.{found.name}"), "USE_CASE")
    }
    listed = set(registry.FOLDERS)
    assert not defining - listed, f"not in registry.FOLDERS: {sorted(defining - listed)}"
    assert not listed - defining, f"no use-case folder: {sorted(listed - defining)}"
    assert len(registry.FOLDERS) == len(listed), "a folder listed twice"
    assert [u.kind for u in registry.USE_CASES][:2] == ["battery_power", "peak_shaving"]


class NoBuild:
    """A would-be use case that forgot `build`."""

    kind = "no_build"
    default_dispatch_types: tuple[str, ...] = ()
    keys = HALF_POWER.keys

    def parse(self, reader: Reader, item: Mapping[str, Any], path: str) -> object:
        return None


def test_a_bad_entry_stops_the_start_naming_its_folder(monkeypatch: pytest.MonkeyPatch) -> None:
    folder(monkeypatch, "empty")
    folder(monkeypatch, "no_build", USE_CASE=NoBuild())
    refused = {
        "missing": "no package edge_controller.use_cases.missing",
        "empty": "its __init__.py defines no USE_CASE",
        "no_build": "its USE_CASE is no UseCase: it lacks ['build']",
    }
    for name, problem in refused.items():
        with pytest.raises(registry.RegistryError) as caught:
            registry.load_all(("battery_power", name))
        assert caught.value.folder == name
        assert str(caught.value) == f"use_cases/registry.py: {name!r}: {problem}"
    with pytest.raises(registry.RegistryError, match="kind 'battery_power' is already the kind"):
        registry.load_all(("battery_power", "peak_shaving", "battery_power"))


def test_an_unknown_kind_lists_the_registered_ones() -> None:
    document = {**GOOD, "use_cases": [{"kind": "half_power"}]}
    with pytest.raises(ConfigError) as caught:
        parse_config(document, "ctl.toml", environ=ENV)
    kinds = [u.kind for u in registry.USE_CASES if u.kind in registry.entry_kinds()]
    assert kinds[:2] == ["battery_power", "peak_shaving"]
    assert str(caught.value) == (
        f"ctl.toml: use_cases[0].kind: expected one of {kinds}, got 'half_power'"
    )


def test_a_table_owning_use_case_is_no_use_cases_kind() -> None:
    owners = registry.section_owners()
    assert "market_bid" in owners
    with pytest.raises(ConfigError, match=r"use_cases\[0\]\.kind: expected one of \["):
        parse_config({**GOOD, "use_cases": [{"kind": "market_bid"}]}, environ=ENV)


@pytest.mark.usefixtures("registered")
def test_a_registered_use_case_is_parsed_with_its_own_keys() -> None:
    entries = [{"kind": "half_power", "share": 0.25, "priority": 5}, {"kind": "half_power"}]
    config = parse_config({**GOOD, "use_cases": entries}, environ=ENV)
    first, second = config.use_cases
    assert first == UseCaseConfig(
        "half_power", (FAKE_TYPE,), "half_power_0", priority=5, options=HalfOptions(0.25)
    )
    assert second.options == HalfOptions(0.5)
    bad = [{"kind": "half_power", "share": 2, "shares": 1}]
    with pytest.raises(ConfigError) as caught:
        parse_config({**GOOD, "use_cases": bad}, "ctl.toml", environ=ENV)
    assert str(caught.value).splitlines() == [
        "ctl.toml: use_cases[0].shares: unknown key (did you mean 'share'?); expected one of "
        "['batteries', 'dispatch_types', 'kind', 'name', 'priority', 'share']",
        "ctl.toml: use_cases[0].share: expected a number 0-1, got 2",
    ]
    # Another kind does not accept the fake's key.
    with pytest.raises(ConfigError, match=r"use_cases\[0\]\.share: unknown key"):
        parse_config({**GOOD, "use_cases": [{"kind": "battery_power", "share": 1}]}, environ=ENV)


@pytest.mark.usefixtures("registered")
def test_the_reference_shows_a_registered_use_case() -> None:
    text = reference_markdown()
    assert '## `[[use_cases]] kind = "half_power"`' in text
    assert "| `share` | a number 0-1 | 0.5 |" in text
    assert 'half_power: `["HALF_POWER"]`' in text


@pytest.mark.usefixtures("registered")
async def test_the_controller_builds_and_runs_a_registered_use_case(
    example_site: SiteSpec, tmp_path: Path
) -> None:
    entries = {"use_cases": [{"kind": "half_power", "name": "half", "share": 0.5}]}
    async with site_running(example_site, tmp_path, entries) as site:
        (half,) = site.controller.use_cases
        assert (half.name, half.kind) == ("half", "half_power")
        inverter = site.controller.connection.pairs.inverter_ids[0]
        battery = site.controller.connection.pairs.batteries_of(inverter)[0]
        dispatch_id = await site.create(-20_000, (battery,), type=FAKE_TYPE)
        await power_reaches(site.sim, inverter, -10_000)
        assert half.running_dispatches == {dispatch_id: -10_000.0}
        assert half.counts == {"running": 1}
