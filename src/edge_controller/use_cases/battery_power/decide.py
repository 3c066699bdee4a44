"""What BATTERY_POWER dispatches ask: the watts, the batteries, and the requests that carry them.

The actor's decisions, pure, shared with the scenario (`tools/scenario`):

- `read_dispatch`: the payload (`{"power_w": -40000}` or `"-40 kW"`, read by
  `payload.parse_battery_power`) and the target (battery ids, or the battery
  category for every battery of the site) become a `BatteryPowerTarget`. Batteries
  that share an inverter move together: a dispatch that names one of them drives the
  whole group (`widened` says so, for a log line). What a battery request may name
  is one rule, the distributor's too: `power.distribute.request_problem` (known
  batteries, whole inverter groups); a target it refuses is a `TargetError` naming the dispatch.
- `dispatch_requests`: one `PowerRequest` per running dispatch that commands (a dry
  run commands nothing), carrying the dispatch's id and creation time. Which of
  several dispatches on the same batteries drives them is not decided here: the
  PowerManagingActor settles every overlap by one rule (the higher priority, then the
  newest dispatch drives shared batteries; an older one keeps the rest, and resumes
  on all of them when the newer ends).

Powers in W, passive sign convention: + charges, − discharges.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from frequenz.client.common.microgrid.electrical_components import ElectricalComponentCategory
from frequenz.client.dispatch.types import Dispatch, TargetCategories, TargetIds
from frequenz.quantities import Power

from edge_controller.framework.messages import PowerRequest
from edge_controller.microgrid.graph import BatteryPairs
from edge_controller.power.bounds import Range
from edge_controller.power.distribute import request_problem
from edge_controller.power.kinds import TargetKind
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


def target_batteries(dispatch: Dispatch, pairs: BatteryPairs) -> frozenset[int]:
    """Resolve a dispatch's target to battery ids: ids as given, or the battery category.

    Raises:
        TargetError: a category other than batteries.
    """
    target = dispatch.target
    if isinstance(target, TargetIds):
        return frozenset(int(i) for i in target)
    if isinstance(target, TargetCategories):
        categories = {t.category2 for t in target}
        if categories != {ElectricalComponentCategory.BATTERY}:
            raise TargetError(
                f"dispatch {int(dispatch.id)}: target: expected the battery category, got "
                f"{sorted(c.name for c in categories)}"
            )
        return frozenset(pairs.battery_ids)
    raise TargetError(  # pragma: no cover - the client knows no other target kind
        f"dispatch {int(dispatch.id)}: target: unsupported {target!r}"
    )


def whole_groups(batteries: frozenset[int], pairs: BatteryPairs) -> frozenset[int]:
    """`batteries` with every battery that shares an inverter with one of them.

    Ids that are no battery of `pairs` stay as they are, for `request_problem` to name.
    """
    known = set(pairs.battery_ids)
    return frozenset().union(
        *(
            frozenset(pairs.batteries_of(pairs.inverter_of(b))) if b in known else {b}
            for b in batteries
        )
    )


def read_dispatch(dispatch: Dispatch, pairs: BatteryPairs) -> BatteryPowerTarget:
    """What a running BATTERY_POWER dispatch asks, on whole inverter groups.

    The actor and the scenario (`tools/scenario`) both read their dispatches here: the
    client's `Dispatch` is what both hold (the actor's `frequenz.dispatch.Dispatch` is
    one).

    Raises:
        PayloadError: the payload, naming the dispatch and the field.
        TargetError: the target, naming the dispatch and the ids.
    """
    payload = parse_battery_power(int(dispatch.id), dispatch.payload)
    named = target_batteries(dispatch, pairs)
    batteries = whole_groups(named, pairs)
    problem = request_problem(TargetKind.BATTERIES, batteries, pairs.as_dict())
    if problem is not None:
        raise TargetError(f"dispatch {int(dispatch.id)}: target: {problem}")
    return BatteryPowerTarget(payload.power_w, batteries, widened=batteries != named)


@dataclass(frozen=True, slots=True)
class RunningBatteryDispatch:
    """A BATTERY_POWER dispatch running now, read."""

    dispatch_id: int
    created: datetime
    target: BatteryPowerTarget
    dry_run: bool = False


HELD_ZERO = Range(0.0, 0.0)
"""The bounds a dispatch of 0 W carries: it holds its batteries at 0 W (over an older
dispatch) rather than withdrawing (a request of 0 W without bounds gives them back)."""


def dispatch_requests(
    running: Iterable[RunningBatteryDispatch],
    *,
    namespace: str,
    priority: int = 0,
    request_timeout: timedelta = timedelta(seconds=5),
) -> dict[int, PowerRequest]:
    """One held request per running dispatch that commands, by dispatch id.

    A dry run commands nothing: it has no request. Each request carries its dispatch
    (`origin`, `created`), so the PowerManagingActor ranks overlapping dispatches —
    the newest drives — and the distributor's result names the dispatch.
    """
    return {
        dispatch.dispatch_id: PowerRequest(
            namespace,
            Power.from_watts(dispatch.target.power_w),
            dispatch.target.batteries,
            request_timeout=request_timeout,
            priority=priority,
            hold=True,
            bounds=HELD_ZERO if dispatch.target.power_w == 0.0 else None,
            origin=dispatch.dispatch_id,
            created=dispatch.created,
        )
        for dispatch in sorted(running, key=lambda d: d.dispatch_id)
        if not dispatch.dry_run
    }
