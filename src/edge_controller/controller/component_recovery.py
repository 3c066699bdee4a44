"""ComponentRecoveryActor: brings batteries and inverters back from ERROR and STANDBY.

Every `tick` it feeds each battery's and inverter's reported state to
`microgrid.recovery.RecoveryTracker` and carries out what it decides: take the
battery out of distribution (the PowerDistributingActor then plans without it), send
AckComponentError and StartComponent (through the Microgrid API's generated stubs —
client 0.18 does not wrap them) with backoff and a retry limit, and put it back once
it reports a working state. Every step is logged (`recovery_step`). A battery is out
when it or its inverter is out, since they only work together.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Protocol

import structlog
from frequenz.channels.timer import SkipMissedAndDrift
from frequenz.client.microgrid import ApiClientError

from edge_controller.common.clock import Clock, WallClock
from edge_controller.common.compat import Timer
from edge_controller.framework.supervision import SupervisedActor
from edge_controller.microgrid.graph import BatteryPairs
from edge_controller.microgrid.recovery import RecoveryAction, RecoveryConfig, RecoveryTracker
from edge_controller.microgrid.telemetry import ComponentState, TelemetryCache


class RecoveryAccess(Protocol):
    """What the actor needs from the microgrid connection."""

    @property
    def pairs(self) -> BatteryPairs:
        """Batteries behind each inverter."""
        ...

    @property
    def cache(self) -> TelemetryCache:
        """Latest telemetry per component."""
        ...

    async def ack_error(self, component_id: int, *, timeout_s: float = 5.0) -> None:
        """AckElectricalComponentError."""
        ...

    async def start_component(self, component_id: int, *, timeout_s: float = 5.0) -> None:
        """StartElectricalComponent."""
        ...


class ComponentRecoveryActor(SupervisedActor):
    """Recovers components; see the module docstring."""

    def __init__(
        self,
        microgrid: RecoveryAccess,
        out_of_service: Callable[[frozenset[int]], None],
        *,
        config: RecoveryConfig | None = None,
        clock: Clock | None = None,
        tick: timedelta = timedelta(seconds=1),
        command_timeout: timedelta = timedelta(seconds=5),
        name: str = "component_recovery",
    ) -> None:
        """`out_of_service(batteries)` is told the batteries to leave out (distributor)."""
        super().__init__(name=name)
        self._microgrid = microgrid
        self._out_of_service = out_of_service
        self._tracker = RecoveryTracker(config)
        self._clock: Clock = clock or WallClock()
        self._tick = tick
        self._timeout_s = command_timeout.total_seconds()
        self._out: frozenset[int] = frozenset()
        self.steps: list[tuple[int, str]] = []
        """(component, action) in order, for metrics and tests."""
        self._log = structlog.get_logger(__name__).bind(actor=name)

    def reconfigure(self, config: RecoveryConfig) -> None:
        """Take new settings (live edit); components keep their progress so far."""
        self._tracker.reconfigure(config)
        if not config.enabled and self._out:
            # Switched off: nothing is held out of distribution on its account any more.
            self._out = frozenset()
            self._out_of_service(self._out)

    async def _run(self) -> None:
        timer = Timer(self._tick, SkipMissedAndDrift())
        try:
            async for _ in timer:
                await self.check()
        finally:
            timer.close()

    async def check(self) -> None:
        """Observe every battery and inverter once and act on the decisions."""
        pairs = self._microgrid.pairs
        cache = self._microgrid.cache
        for inverter_id in pairs.inverter_ids:
            reading = cache.last_inverter(inverter_id)
            await self._observe(inverter_id, reading.state if reading else ComponentState.UNKNOWN)
            for battery_id in pairs.batteries_of(inverter_id):
                battery = cache.last_battery(battery_id)
                await self._observe(
                    battery_id, battery.state if battery else ComponentState.UNKNOWN
                )
        out_components = self._tracker.out_of_distribution()
        out = frozenset(
            b
            for b in pairs.battery_ids
            if b in out_components or pairs.inverter_of(b) in out_components
        )
        if out != self._out:
            self._out = out
            self._out_of_service(out)

    async def _observe(self, component_id: int, state: ComponentState) -> None:
        for _ in range(4):  # each call moves the machine; it settles within three
            decision = self._tracker.observe(component_id, state, self._clock.now())
            if decision.action is RecoveryAction.NONE:
                return
            self.steps.append((component_id, decision.action.value))
            self._log.warning(
                "recovery_step",
                component=component_id,
                state=state.value,
                action=decision.action.value,
                attempt=decision.attempt,
                next_check_at=decision.next_check_at.isoformat()
                if decision.next_check_at
                else None,
            )
            command: Callable[..., Awaitable[None]] | None = None
            if decision.action is RecoveryAction.ACK_ERROR:
                command = self._microgrid.ack_error
            elif decision.action is RecoveryAction.START:
                command = self._microgrid.start_component
            if command is None:
                continue
            try:
                await command(component_id, timeout_s=self._timeout_s)
            except (ApiClientError, TimeoutError, OSError) as error:
                self._log.warning(
                    "recovery_command_failed",
                    component=component_id,
                    action=decision.action.value,
                    error=repr(error),
                )
                self._tracker.command_failed(component_id, self._clock.now())
            return
