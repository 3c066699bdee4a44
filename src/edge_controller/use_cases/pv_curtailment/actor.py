"""PvCurtailmentActor: keeps the export in bounds — batteries first — and limits the PV.

Every `tick` it reads the grid meter, the PV inverters and the batteries
(`site_reading.read_site`) and asks `decide` for two things:

- **The batteries' charge.** A surplus that would export beyond the limit is asked of
  its batteries first: one request for all of them, `power = ask` (W) with the bounds
  `[ask, +inf)` and `hold=False` — lower priorities may charge more, never less, and
  a higher priority (a held dispatch, peak shaving's bounds) still wins. The ask rises
  at once and falls by the deadband; once the surplus is gone it is withdrawn (0 W,
  no bounds). If the batteries do not follow within the reaction time, `decide`
  counts only their measured power and the PV is curtailed for the rest
  (`batteries_not_following`, logged once).
- **The PV's production limit**: a running `PV_CURTAILMENT` dispatch's
  (`{"max_production_w": 50000}` or `{"max_production_pct": 60}`; the tightest of
  several) and the export guard's (curtail what the batteries cannot take), the
  tighter winning. One request for all its PV inverters whenever the limit changes:
  `power = −allowed` (W) with the bounds `[−allowed, 0]` — a lower-priority use case
  may curtail more, never less — or a withdraw (0 W, no bounds) when the limit is
  lifted, after which the distributor lets every inverter produce in full again. The
  distributor shares the limit between the inverters in proportion to their rating.

A dispatch with a bad payload or a target that is not its PV inverters is rejected
with a log naming the dispatch and the field, and counted (`rejected`); a dry-run
dispatch is logged and limits nothing. A running dispatch updated to a bad payload or
switched to a dry run stops limiting, as if it had ended (`UseCaseActor`'s rule for
every use case: its author changed it, so its old limit is no longer what anyone
asks).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime, timedelta

import structlog
from frequenz.channels import Receiver, Sender
from frequenz.client.dispatch.types import TargetIds
from frequenz.dispatch import Dispatch
from typing_extensions import override

from edge_controller.common.clock import Clock, WallClock
from edge_controller.dispatching.payload import PayloadError
from edge_controller.framework.messages import PowerRequest, Result, TargetKind
from edge_controller.framework.use_case import GridConfig, SiteView
from edge_controller.framework.use_case_actor import UseCaseActor
from edge_controller.power.bounds import Range
from edge_controller.use_cases.pv_curtailment.config import PvCurtailmentOptions
from edge_controller.use_cases.pv_curtailment.decide import (
    NOT_CURTAILED,
    BatteriesOverruled,
    Curtailment,
    CurtailmentReason,
    CurtailmentSettings,
    decide,
)
from edge_controller.use_cases.pv_curtailment.payload import (
    ProductionLimit,
    parse_pv_curtailment,
)
from edge_controller.use_cases.pv_curtailment.site_reading import read_site


class PvCurtailmentActor(UseCaseActor[ProductionLimit]):
    """Limits a set of PV inverters' production; see the module docstring.

    Each running dispatch is kept as its production limit (W or % of the rating).
    """

    def __init__(
        self,
        dispatches: Receiver[Dispatch],
        requests: Sender[PowerRequest],
        results: Receiver[Result],
        site: SiteView,
        *,
        options: PvCurtailmentOptions,
        inverters: frozenset[int],
        batteries: frozenset[int],
        grid: GridConfig | None = None,
        priority: int = 0,
        clock: Clock | None = None,
        request_timeout: timedelta = timedelta(seconds=5),
        name: str = "pv_curtailment",
    ) -> None:
        """Wire the use case: `inverters` are limited together, `batteries` charge first.

        Raises:
            ValueError: settings `decide` cannot use (a negative limit or margin).
        """
        super().__init__(
            dispatches,
            requests,
            results,
            tick=options.tick,
            priority=priority,
            request_timeout=request_timeout,
            name=name,
        )
        grid = grid or GridConfig()
        self._site = site
        self._inverters = inverters
        self._batteries = batteries
        self._stale_after = grid.stale_after
        self._settings = CurtailmentSettings(
            export_limit_w=(
                grid.max_export_w if options.export_limit_w is None else options.export_limit_w
            ),
            lift_margin_w=options.lift_margin_w,
            deadband_w=options.deadband_w,
            lift_rate_w_per_s=options.lift_rate_w_per_s,
        )
        self._clock: Clock = clock or WallClock()
        self._rated_w = math.inf
        self._decision: Curtailment = NOT_CURTAILED
        self._decided_at: datetime | None = None
        self._sent_w: float | None = None
        self._battery_sent_w = 0.0

    @property
    def reason(self) -> CurtailmentReason:
        """Why the PV is limited now (`NONE`: it is not)."""
        return self._decision.reason

    @property
    def allowed_w(self) -> float | None:
        """The production its PV inverters may give together now (W), None: no limit."""
        return self._sent_w

    @property
    def battery_ask_w(self) -> float:
        """The charge it asks of its batteries now (W ≥ 0; 0 W: no request)."""
        return self._battery_sent_w

    @property
    def batteries_counted(self) -> bool:
        """Whether the batteries' headroom counts (False: they did not follow its ask)."""
        return self._decision.batteries_counted

    @property
    def driving(self) -> Mapping[frozenset[int], float]:
        """The PV inverters while limited (−allowed, W), the batteries while asked (W)."""
        driving: dict[frozenset[int], float] = {}
        if self._sent_w is not None:
            driving[self._inverters] = -self._sent_w
        if self._battery_sent_w > 0:
            driving[self._batteries] = self._battery_sent_w
        return driving

    @property
    def running_dispatches(self) -> Mapping[int, float]:
        """PV_CURTAILMENT dispatches running now, with their limits (W).

        NaN for a percentage while the PV's rating is unknown (it limits nothing then).
        """
        return {
            i: math.nan if (w := limit.as_watts(self._rated_w)) is None else w
            for i, limit in self._running.items()
        }

    @override
    def _read(self, dispatch: Dispatch, log: structlog.stdlib.BoundLogger) -> ProductionLimit:
        self._check_target(dispatch)
        limit = parse_pv_curtailment(int(dispatch.id), dispatch.payload)
        log.info(
            "dispatch_running",
            max_production_w=limit.watts,
            pct=limit.percent,
            dry_run=dispatch.dry_run,
        )
        return limit

    def _check_target(self, dispatch: Dispatch) -> None:
        """A dispatch that names components must name exactly the PV inverters it limits.

        Raises:
            PayloadError: (field `target`) it names others, or only some of them: the
                limit is for all of them together.
        """
        target = dispatch.target
        if isinstance(target, TargetIds):
            named = frozenset(int(i) for i in target)
            if named != self._inverters:
                raise PayloadError(
                    int(dispatch.id),
                    "target",
                    f"names {sorted(named)}; this use case limits the PV inverters "
                    f"{sorted(self._inverters)} together (name them all, or a category)",
                )

    def _dispatch_limit_w(self) -> float | None:
        """The tightest running dispatch's limit (W); a % of an unknown rating limits nothing."""
        watts = [limit.as_watts(self._rated_w) for limit in self._running.values()]
        return min((w for w in watts if w is not None), default=None)

    @override
    async def _step(self) -> None:
        now = self._clock.now()
        site = self._site
        reading = read_site(
            site.pairs,
            site.cache,
            site.grid_meter_id,
            inverters=self._inverters,
            batteries=self._batteries,
            now=now,
            stale_after=self._stale_after,
        )
        self._rated_w = reading.pv_rated_w
        elapsed = 0.0 if self._decided_at is None else (now - self._decided_at).total_seconds()
        decision = decide(
            self._settings,
            reading,
            self._decision,
            dispatch_limit_w=self._dispatch_limit_w(),
            elapsed_s=elapsed,
            overruled=self._batteries_overruled(),
        )
        if decision.reason is not self._decision.reason:
            self._log.info(
                "pv_curtailment_reason",
                reason=decision.reason.value,
                allowed_w=decision.allowed_w,
                needed_w=None if math.isnan(decision.needed_w) else decision.needed_w,
                grid_w=reading.grid_w,
                pv_w=reading.pv_w,
                battery_w=reading.battery_w,
                battery_headroom_w=reading.battery_headroom_w,
            )
        if decision.batteries_counted != self._decision.batteries_counted:
            if decision.batteries_counted:
                self._log.info("batteries_following", battery_w=reading.battery_w)
            else:
                self._log.warning(
                    "batteries_not_following",
                    battery_ask_w=self._decision.battery_ask_w,
                    battery_w=reading.battery_w,
                    short_s=decision.battery_short_s,
                )
        self._decision = decision
        self._decided_at = now
        await self._send_battery_ask(decision.battery_ask_w)
        await self._send(decision.allowed_w)

    def _batteries_overruled(self) -> BatteriesOverruled | None:
        """The manager's word on the batteries' ask, if a higher priority overrules it."""
        if self._battery_sent_w <= 0:
            return None
        word = self.overruled(TargetKind.BATTERIES, self._batteries)
        if word is None:
            return None
        allowed = word.allowed
        return BatteriesOverruled(
            None if allowed is None else allowed.nearest(self._battery_sent_w)
        )

    async def _send_battery_ask(self, ask_w: float) -> None:
        """Ask the batteries to charge at least `ask_w`; 0 W withdraws the ask.

        Sent before the PV's limit: a limit that rises in the same step is then
        already matched by the charge that takes it.
        """
        if ask_w == self._battery_sent_w:
            return
        if (ask_w > 0) != (self._battery_sent_w > 0):
            self._log.info(
                "battery_ask" if ask_w > 0 else "battery_ask_withdrawn",
                batteries=sorted(self._batteries),
                ask_w=ask_w,
            )
        self._battery_sent_w = ask_w
        if ask_w == 0:
            self._forget_overruled(TargetKind.BATTERIES, self._batteries)
        self._count("battery_requests")
        await self._requests.send(
            self._power_request(
                ask_w,
                self._batteries,
                hold=False,
                bounds=Range(ask_w, math.inf) if ask_w > 0 else None,
                target=TargetKind.BATTERIES,
            )
        )

    async def _send(self, allowed_w: float | None) -> None:
        if allowed_w == self._sent_w:
            return
        self._sent_w = allowed_w
        self._count("requests")
        if allowed_w is None:
            self._log.info("pv_limit_lifted", inverters=sorted(self._inverters))
            await self._requests.send(
                self._power_request(
                    0.0, self._inverters, hold=False, target=TargetKind.PV_INVERTERS
                )
            )
            return
        await self._requests.send(
            self._power_request(
                -allowed_w,
                self._inverters,
                hold=False,
                bounds=Range(-allowed_w, 0.0),
                target=TargetKind.PV_INVERTERS,
            )
        )
