"""PeakShavingActor: keeps the site's grid import under a threshold with its batteries.

Every `tick` (0.25 s: a peak is answered well within the 2 s that fast reserves
demand; each decision costs microseconds) it reads the grid meter and its batteries
(`microgrid.site_view`) and asks `decide.decide` (beside it) for a target: discharge
just enough to bring the import down to the threshold, recharge below
`threshold − recharge_margin` without creating a new peak, optionally charge from a
PV surplus that would export more than `export_limit`. The threshold comes from the
config, or from a running `PEAK_SHAVING` dispatch (`{"threshold_w": "600 kW"}`),
which overrides it for its duration; a dispatch whose threshold contradicts the
configured export limit is rejected; a dry-run dispatch is logged and shaves nothing.
A running dispatch updated to a bad payload or switched to a dry run stops, as if it
had ended — the configured threshold is in force again (`UseCaseActor`'s rule for
every use case).
Its requests carry the configured priority; the PowerManagingActor resolves them
against other use cases on the same batteries and enforces the grid limits.

Its requests do not *hold* their power: they carry bounds — "charge no more than
`threshold − import without batteries`" (and, with export shaving, "discharge no
more than the export limit allows") — so a lower-priority dispatch on the same
batteries still runs within them, and a charge that would make a peak is cut to the
threshold. While the grid meter is stale the bound is "no charging". A target within
`deadband_w` of the last one (bounds too) is not re-sent.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import timedelta

import structlog
from frequenz.channels import Receiver, Sender
from frequenz.dispatch import Dispatch
from typing_extensions import override

from edge_controller.common.clock import Clock, WallClock
from edge_controller.framework.messages import PowerRequest, Result
from edge_controller.framework.use_case import GridConfig, SiteView
from edge_controller.framework.use_case_actor import UseCaseActor
from edge_controller.microgrid.site_view import meter_power_w, pool_view
from edge_controller.power.bounds import Range
from edge_controller.use_cases.peak_shaving.config import PeakShavingOptions
from edge_controller.use_cases.peak_shaving.decide import (
    BatteryPool,
    PeakShavingConfig,
    ShavingMode,
    decide,
    parse_peak_shaving,
)


class PeakShavingActor(UseCaseActor[tuple[float, float | None]]):
    """Shaves import peaks with a set of batteries; see the module docstring.

    Each running dispatch is kept as its threshold and recharge margin (W).
    """

    def __init__(
        self,
        dispatches: Receiver[Dispatch],
        requests: Sender[PowerRequest],
        results: Receiver[Result],
        site: SiteView,
        *,
        options: PeakShavingOptions,
        batteries: frozenset[int],
        priority: int = 0,
        grid: GridConfig | None = None,
        clock: Clock | None = None,
        tick: timedelta = timedelta(seconds=0.25),
        deadband_w: float = 500.0,
        request_timeout: timedelta = timedelta(seconds=5),
        name: str = "peak_shaving",
    ) -> None:
        """Wire the use case; `batteries` are whole inverter groups."""
        super().__init__(
            dispatches,
            requests,
            results,
            tick=tick,
            priority=priority,
            request_timeout=request_timeout,
            name=name,
        )
        self._site = site
        self._options = options
        self._batteries = batteries
        self._stale_after = (grid or GridConfig()).stale_after
        self._clock: Clock = clock or WallClock()
        self._deadband_w = deadband_w
        self._last_w = 0.0
        self._last_bounds: Range | None = None
        self.mode = ShavingMode.IDLE

    @property
    def driving(self) -> dict[frozenset[int], float]:
        """The batteries it holds a target on now (empty while idle), with the watts."""
        return {self._batteries: self._last_w} if self._last_w else {}

    @property
    def running_dispatches(self) -> dict[int, float]:
        """PEAK_SHAVING dispatches running now, with their thresholds (W)."""
        return {i: threshold for i, (threshold, _) in self._running.items()}

    @property
    def threshold_w(self) -> float | None:
        """The threshold in force: a running dispatch's, else the configured one."""
        if self._running:
            return self._running[max(self._running)][0]
        return self._options.threshold_w

    @override
    def _read(
        self, dispatch: Dispatch, log: structlog.stdlib.BoundLogger
    ) -> tuple[float, float | None]:
        payload = parse_peak_shaving(int(dispatch.id), dispatch.payload)
        self._shaving_config(payload.threshold_w, payload.recharge_margin_w)
        log.info("dispatch_running", threshold_w=payload.threshold_w, dry_run=dispatch.dry_run)
        return payload.threshold_w, payload.recharge_margin_w

    @override
    def _in_force(self) -> Mapping[str, object]:
        return {"threshold_w": self.threshold_w}

    def _config(self) -> PeakShavingConfig | None:
        threshold = self.threshold_w
        if threshold is None:
            return None
        margin = None
        if self._running:
            margin = self._running[max(self._running)][1]
        return self._shaving_config(threshold, margin)

    def _shaving_config(self, threshold_w: float, margin_w: float | None) -> PeakShavingConfig:
        """The decision's settings with this threshold (and margin).

        Raises:
            ValueError: they contradict the configured ones (e.g. a threshold below the
                export limit); a dispatch asking for that is rejected.
        """
        return PeakShavingConfig(
            threshold_w=threshold_w,
            recharge_margin_w=self._options.recharge_margin_w if margin_w is None else margin_w,
            max_recharge_w=self._options.max_recharge_w,
            export_limit_w=self._options.export_limit_w,
            soc_min_pct=self._options.soc_min_pct,
            soc_max_pct=self._options.soc_max_pct,
        )

    @override
    async def _step(self) -> None:
        config = self._config()
        if config is None:
            await self._request(0.0, ShavingMode.IDLE)
            return
        site = self._site
        now = self._clock.now()
        grid_w = meter_power_w(site.cache, site.grid_meter_id, now, self._stale_after)
        view = pool_view(site.pairs, site.cache, self._batteries)
        reach = view.bounds
        pool = BatteryPool(
            power_w=view.power_w,
            lower_w=reach.lower if reach is not None else 0.0,
            upper_w=reach.upper if reach is not None else 0.0,
            soc_pct=view.soc_pct,
        )
        decision = decide(config, grid_w, pool)
        # While the meter is blind the use case keeps protecting the threshold: no
        # charging at all (a lower-priority charge could make the very peak it cannot
        # see).
        bounds: Range | None = Range(-math.inf, 0.0)
        if grid_w is not None and math.isfinite(view.power_w):
            base = grid_w - view.power_w
            # Lower priorities may do anything that keeps the import at or under the
            # threshold (and the export within its limit, when shaved too).
            upper = config.threshold_w - base
            lower = -math.inf if config.export_limit_w is None else -config.export_limit_w - base
            if lower <= upper:
                bounds = Range(lower, upper)
        if decision.mode is not self.mode:
            self._log.info(
                "peak_shaving_mode",
                mode=decision.mode.value,
                grid_w=grid_w,
                threshold_w=config.threshold_w,
                target_w=decision.target_w,
                shortfall_w=decision.shortfall_w or None,
            )
        await self._request(decision.target_w, decision.mode, bounds)

    async def _request(
        self, target_w: float, mode: ShavingMode, bounds: Range | None = None
    ) -> None:
        self.mode = mode
        if not math.isfinite(target_w):
            target_w = 0.0
        unchanged = abs(target_w - self._last_w) <= self._deadband_w and (
            (target_w == 0.0) == (self._last_w == 0.0)
        )
        last = self._last_bounds
        same_bounds = (bounds is None) == (last is None) and (
            bounds is None
            or last is None
            or (
                _close(bounds.lower, last.lower, self._deadband_w)
                and _close(bounds.upper, last.upper, self._deadband_w)
            )
        )
        if unchanged and same_bounds:
            return
        self._last_w = target_w
        self._last_bounds = bounds
        self._count("requests")
        await self._requests.send(
            self._power_request(target_w, self._batteries, hold=False, bounds=bounds)
        )


def _close(a: float, b: float, tolerance: float) -> bool:
    return a == b or abs(a - b) <= tolerance
