"""What a BATTERY_POWER dispatch asks: the watts, and the batteries that carry them.

The actor's one decision per dispatch, pure: the payload (`{"power_w": -40000}` or
`"-40 kW"`, read by `payload.parse_battery_power`) and the target (battery
ids, or the battery category for every battery of the site) become a
`BatteryPowerTarget`. Batteries that share an inverter move together: a dispatch that
names one of them drives the whole group (`widened` says so, for a log line), so
which dispatch owns which battery (`dispatching.ownership.assign`) never splits an
inverter. Which of the running dispatches drives a battery is the actor's next step.

Powers in W, passive sign convention: + charges, − discharges.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from frequenz.client.common.microgrid.electrical_components import ElectricalComponentCategory
from frequenz.client.dispatch.types import Dispatch, TargetCategories, TargetIds

from edge_controller.use_cases.battery_power.payload import parse_battery_power


class TargetError(ValueError):
    """A dispatch target that names no usable battery."""


@dataclass(frozen=True, slots=True)
class BatteryPowerTarget:
    """One dispatch, read: hold `power_w` on `batteries` (whole inverter groups)."""

    power_w: float
    batteries: frozenset[int]
    widened: bool
    """The target named only part of an inverter's batteries; the rest were added."""


def target_batteries(dispatch: Dispatch, site_batteries: frozenset[int]) -> frozenset[int]:
    """Resolve a dispatch's target to battery ids: ids as given, or the battery category.

    Raises:
        TargetError: unknown ids, a category other than batteries, or nothing left.
    """
    target = dispatch.target
    if isinstance(target, TargetIds):
        unknown = sorted(set(target) - site_batteries)
        if unknown:
            raise TargetError(
                f"dispatch {int(dispatch.id)}: target: {unknown} are not batteries of this "
                f"site; batteries: {sorted(site_batteries)}"
            )
        batteries = frozenset(int(i) for i in target)
    elif isinstance(target, TargetCategories):
        categories = {t.category2 for t in target}
        if categories != {ElectricalComponentCategory.BATTERY}:
            raise TargetError(
                f"dispatch {int(dispatch.id)}: target: expected the battery category, got "
                f"{sorted(c.name for c in categories)}"
            )
        batteries = site_batteries
    else:  # pragma: no cover - the client knows no other target kind
        raise TargetError(f"dispatch {int(dispatch.id)}: target: unsupported {target!r}")
    if not batteries:
        raise TargetError(f"dispatch {int(dispatch.id)}: target: names no battery")
    return batteries


def whole_groups(batteries: frozenset[int], groups: Mapping[int, frozenset[int]]) -> frozenset[int]:
    """`batteries` with every battery that shares an inverter with one of them."""
    return frozenset().union(*(groups.get(b, frozenset({b})) for b in batteries))


def read_dispatch(
    dispatch: Dispatch,
    site_batteries: frozenset[int],
    groups: Mapping[int, frozenset[int]],
) -> BatteryPowerTarget:
    """What a running BATTERY_POWER dispatch asks, on whole inverter groups.

    The actor and the scenario (`tools/scenario`) both read their dispatches here: the
    client's `Dispatch` is what both hold (the actor's `frequenz.dispatch.Dispatch` is
    one).

    Raises:
        PayloadError: the payload, naming the dispatch and the field.
        TargetError: the target, naming the dispatch and the ids.
    """
    payload = parse_battery_power(int(dispatch.id), dispatch.payload)
    named = target_batteries(dispatch, site_batteries)
    batteries = whole_groups(named, groups)
    return BatteryPowerTarget(payload.power_w, batteries, widened=batteries != named)
