"""What changed between two configurations, and whether it can apply live.

The daemon re-reads its files on every edit and on SIGHUP; this module decides, as
pure data, what that edit means. Settings the running graph can take without a
restart (limits, timeouts, algorithm, log levels, restart policy, use-case actors)
apply live; the rest (where the APIs are, which microgrid, the key, the metrics
address) is logged as needing a restart and keeps its old value until then — a
half-applied reconnection is worse than an explicit restart.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from edge_controller.config.schema import (
    CONFIG_SECTIONS,
    CORE_SECTION_NAMES,
    ControllerConfig,
)
from edge_controller.framework.use_case import UseCaseConfig

# From each section's spec (`live`); [[use_cases]] are compared by name below, the
# tables use cases own (`ControllerConfig.sections`) need a restart, and nested
# tables ([[grid.meters]]) count as part of their parent section.
LIVE_SECTIONS = tuple(
    s.name for s in CONFIG_SECTIONS if s.live and not s.array and s.name in CORE_SECTION_NAMES
)
RESTART_SECTIONS = tuple(
    s.name for s in CONFIG_SECTIONS if not s.live and not s.array and s.name in CORE_SECTION_NAMES
)


@dataclass(frozen=True, slots=True)
class ConfigChanges:
    """Key paths that changed, split by how they apply."""

    live: tuple[str, ...] = ()
    restart_needed: tuple[str, ...] = ()
    use_cases_added: tuple[str, ...] = ()
    use_cases_removed: tuple[str, ...] = ()
    use_cases_changed: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        """Nothing changed at all."""
        return not (
            self.live
            or self.restart_needed
            or self.use_cases_added
            or self.use_cases_removed
            or self.use_cases_changed
        )


def _fields(section: str, old: object, new: object) -> list[str]:
    """The changed keys of `section`: its dataclass fields, else the section whole."""
    if old is None or new is None or type(old) is not type(new):
        return [] if old is new else [section]
    if not dataclasses.is_dataclass(old):
        return [] if old == new else [section]
    return [
        f"{section}.{f.name}"
        for f in dataclasses.fields(old)
        if getattr(old, f.name) != getattr(new, f.name)
    ]


def config_changes(old: ControllerConfig, new: ControllerConfig) -> ConfigChanges:
    """Compare two validated configurations section by section."""
    live = [p for s in LIVE_SECTIONS for p in _fields(s, getattr(old, s), getattr(new, s))]
    restart = [p for s in RESTART_SECTIONS for p in _fields(s, getattr(old, s), getattr(new, s))]
    old_owned = {u.name: u.options for u in old.sections}
    new_owned = {u.name: u.options for u in new.sections}
    for name in dict.fromkeys([*old_owned, *new_owned]):
        restart.extend(_fields(name, old_owned.get(name), new_owned.get(name)))
    before = {u.name: u for u in old.use_cases}
    after = {u.name: u for u in new.use_cases}
    return ConfigChanges(
        live=tuple(live),
        restart_needed=tuple(restart),
        use_cases_added=tuple(n for n in after if n not in before),
        use_cases_removed=tuple(n for n in before if n not in after),
        use_cases_changed=tuple(n for n in after if n in before and after[n] != before[n]),
    )


def in_force(old: ControllerConfig, new: ControllerConfig) -> ControllerConfig:
    """The configuration that runs after `new` is applied: restart-only parts stay old."""
    return dataclasses.replace(
        new,
        sections=old.sections,
        **{section: getattr(old, section) for section in RESTART_SECTIONS},
    )


def use_case_names(use_cases: tuple[UseCaseConfig, ...]) -> list[str]:
    """The names, in order (for logs)."""
    return [u.name for u in use_cases]
