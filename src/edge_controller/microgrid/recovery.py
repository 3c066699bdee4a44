"""Component state recovery: a pure state machine per battery or inverter.

A component that falls into ERROR or STANDBY no longer follows power commands; a
controller that only sees its set-power calls fail loses it for good. This machine
watches the state telemetry reports (`ComponentState`) and tells the actor what to
do next — the actor sends the RPCs (AckComponentError, StartComponent) and logs::

    IN_SERVICE --ERROR/STANDBY--> take out --> WAITING
    WAITING    --attempt due, ERROR-->   ack error --> ACKNOWLEDGING
    WAITING    --attempt due, STANDBY--> start     --> STARTING
    ACKNOWLEDGING --STANDBY/OFF--> start --> STARTING
    STARTING / ACKNOWLEDGING --working--> put back --> IN_SERVICE
    a failed RPC, a relapse into ERROR, or no progress within `response_timeout`
        --> WAITING for the backoff, or give up after `max_attempts` --> GAVE_UP

- **Attempts and backoff.** An attempt is one recovery sequence (ack then start, or
  start alone). The first runs at once; after the n-th attempt fails the next waits
  `initial_backoff × 2^(n-1)`, at most `max_backoff`. After `max_attempts` failures
  the machine gives up (`GIVE_UP` once, then nothing): the component stays out of
  distribution until it reports a working state by itself (someone fixed it), which
  puts it back and clears the count.
- **Flapping.** The attempt count is cleared only once the component has been back
  in service for `stable_after`; one that faults again right after each restart
  keeps climbing the backoff and is given up, instead of being restarted forever.
- **Not ours to start.** OFF, UNAVAILABLE and the SWITCHING states take a component
  out (it does not follow commands) but trigger no command: it was stopped on purpose
  or is on its way somewhere. OFF right after our own acknowledgement is ours: the
  machine starts it.
- **UNKNOWN** (no state reported) changes nothing: staleness and failed commands are
  judged by the distributor.
- **Disabled** (`enabled=False`): every call answers `NONE` and the component stays
  in distribution — the behaviour without this feature.

Driving it (the actor): on every telemetry update, and whenever `next_check_at` has
passed, call `observe`; act on the action; if it was not `NONE`, call `observe` again
with the same state (a take-out is followed at once by the first attempt; each call
moves the machine, so this ends after at most three steps). Report a failed RPC with
`command_failed`. Pure: no I/O, time passed in.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from edge_controller.microgrid.telemetry import ComponentState


class RecoveryAction(StrEnum):
    """What the actor should do now."""

    NONE = "none"
    """Nothing."""
    TAKE_OUT = "take_out"
    """Take the component (its batteries) out of distribution."""
    ACK_ERROR = "ack_error"
    """Send AckComponentError."""
    START = "start"
    """Send StartComponent."""
    PUT_BACK = "put_back"
    """Put the component back into distribution: it works again."""
    GIVE_UP = "give_up"
    """Stop trying (log it): the component stays out until it works by itself."""


class RecoveryPhase(StrEnum):
    """Where the machine stands for one component."""

    IN_SERVICE = "in_service"
    """In distribution (working, or no state known)."""
    WAITING = "waiting"
    """Out; the next attempt is due at `next_check_at`."""
    ACKNOWLEDGING = "acknowledging"
    """Out; the error was acknowledged, waiting for it to clear."""
    STARTING = "starting"
    """Out; start was sent, waiting for a working state."""
    HELD = "held"
    """Out; OFF, UNAVAILABLE or switching: waiting without commands."""
    GAVE_UP = "gave_up"
    """Out; no more attempts until the component works by itself."""


_OUT_WITHOUT_COMMANDS = frozenset(
    {
        ComponentState.OFF,
        ComponentState.UNAVAILABLE,
        ComponentState.SWITCHING_ON,
        ComponentState.SWITCHING_OFF,
    }
)


@dataclass(frozen=True, slots=True)
class RecoveryConfig:
    """How hard to try (durations are wall-clock; all must be > 0).

    `response_timeout` is how long a sent command may take to show in the state
    telemetry before the attempt counts as failed; `stable_after` how long a
    recovered component must stay in service before its attempt count is cleared.
    """

    enabled: bool = True
    initial_backoff: timedelta = timedelta(seconds=2)
    max_backoff: timedelta = timedelta(seconds=60)
    max_attempts: int = 5
    response_timeout: timedelta = timedelta(seconds=10)
    stable_after: timedelta = timedelta(seconds=60)

    def __post_init__(self) -> None:
        """Reject settings that would spin or never try.

        Raises:
            ValueError: a duration ≤ 0, `max_backoff` < `initial_backoff`, or
                `max_attempts` < 1.
        """
        for name in ("initial_backoff", "max_backoff", "response_timeout", "stable_after"):
            value: timedelta = getattr(self, name)
            if value <= timedelta(0):
                raise ValueError(f"{name} must be > 0, got {value}")
        if self.max_backoff < self.initial_backoff:
            raise ValueError(
                f"max_backoff ({self.max_backoff}) must be >= initial_backoff "
                f"({self.initial_backoff})"
            )
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, got {self.max_attempts}")

    def backoff(self, attempts: int) -> timedelta:
        """Return the wait after the `attempts`-th attempt failed (1, 2, ...)."""
        doubled = self.initial_backoff * (1 << min(max(attempts - 1, 0), 32))
        return min(doubled, self.max_backoff)


@dataclass(frozen=True, slots=True)
class RecoveryDecision:
    """One step of the machine: the action and the state it leaves behind.

    `attempt` counts the attempts made (since the component was last stable);
    `next_check_at` is when to call `observe` again even without new telemetry
    (backoff end, response timeout), `None` if only telemetry can move it;
    `in_distribution` whether the distributor may use the component.
    """

    component_id: int
    action: RecoveryAction
    phase: RecoveryPhase
    attempt: int
    next_check_at: datetime | None
    in_distribution: bool


class ComponentRecovery:
    """The recovery state machine of one component (see the module docstring)."""

    def __init__(self, component_id: int, config: RecoveryConfig | None = None) -> None:
        """Start in service, with no attempts made."""
        self.component_id = component_id
        self.config = config if config is not None else RecoveryConfig()
        self._phase = RecoveryPhase.IN_SERVICE
        self._attempts = 0
        self._due: datetime | None = None  # next attempt (WAITING) or response deadline
        self._back_since: datetime | None = None

    @property
    def phase(self) -> RecoveryPhase:
        """Where the machine stands."""
        return self._phase

    @property
    def attempts(self) -> int:
        """Attempts made since the component was last stable in service."""
        return self._attempts

    @property
    def in_distribution(self) -> bool:
        """Whether the distributor may use the component."""
        return self._phase is RecoveryPhase.IN_SERVICE

    @property
    def next_check_at(self) -> datetime | None:
        """When the machine needs a call even without new telemetry (`None`: never)."""
        return self._due if self._phase in _TIMED_PHASES else None

    def _decision(
        self, action: RecoveryAction = RecoveryAction.NONE, *, telemetry_only: bool = False
    ) -> RecoveryDecision:
        return RecoveryDecision(
            self.component_id,
            action,
            self._phase,
            self._attempts,
            None if telemetry_only else self.next_check_at,
            self.in_distribution,
        )

    def observe(self, state: ComponentState, now: datetime) -> RecoveryDecision:
        """Feed the component's latest reported state at `now`; return what to do."""
        if not self.config.enabled:
            return self._decision()
        if state.is_working and self._phase is not RecoveryPhase.IN_SERVICE:
            return self._put_back(now)
        match self._phase:
            case RecoveryPhase.IN_SERVICE:
                return self._in_service(state, now)
            case RecoveryPhase.WAITING:
                return self._waiting(state, now)
            case RecoveryPhase.ACKNOWLEDGING:
                if state in (ComponentState.STANDBY, ComponentState.OFF):
                    return self._send(RecoveryAction.START, now, new_attempt=False)
                return self._await_response(now)
            case RecoveryPhase.STARTING:
                if state is ComponentState.ERROR:
                    return self._failed(now)
                return self._await_response(now)
            case RecoveryPhase.HELD:
                if state in (ComponentState.ERROR, ComponentState.STANDBY):
                    self._phase, self._due = RecoveryPhase.WAITING, self._first_attempt_at(now)
                    return self._waiting(state, now)
                return self._decision()
            case RecoveryPhase.GAVE_UP:
                return self._decision()

    def command_failed(self, now: datetime) -> RecoveryDecision:
        """Report that the ack or start RPC just sent failed (refused, timed out).

        Counts as a failed attempt: back to waiting with a longer backoff, or giving
        up. Ignored outside ACKNOWLEDGING/STARTING (a late report).
        """
        if not self.config.enabled or self._phase not in (
            RecoveryPhase.ACKNOWLEDGING,
            RecoveryPhase.STARTING,
        ):
            return self._decision()
        return self._failed(now)

    # ------------------------------------------------------------- transitions

    def _in_service(self, state: ComponentState, now: datetime) -> RecoveryDecision:
        if self._back_since is not None and now - self._back_since >= self.config.stable_after:
            self._attempts = 0
            self._back_since = None
        if state in (ComponentState.ERROR, ComponentState.STANDBY):
            self._phase, self._due = RecoveryPhase.WAITING, self._first_attempt_at(now)
            return self._decision(RecoveryAction.TAKE_OUT)
        if state in _OUT_WITHOUT_COMMANDS:
            self._phase = RecoveryPhase.HELD
            return self._decision(RecoveryAction.TAKE_OUT)
        return self._decision()

    def _first_attempt_at(self, now: datetime) -> datetime:
        """At once, unless earlier attempts (a flapping component) still count."""
        return now if self._attempts == 0 else now + self.config.backoff(self._attempts)

    def _waiting(self, state: ComponentState, now: datetime) -> RecoveryDecision:
        if state in _OUT_WITHOUT_COMMANDS:
            self._phase = RecoveryPhase.HELD
            return self._decision()
        if self._due is not None and now < self._due:
            return self._decision()
        if self._attempts >= self.config.max_attempts:
            return self._give_up()
        if state is ComponentState.ERROR:
            return self._send(RecoveryAction.ACK_ERROR, now, new_attempt=True)
        if state is ComponentState.STANDBY:
            return self._send(RecoveryAction.START, now, new_attempt=True)
        return self._decision(telemetry_only=True)  # UNKNOWN: wait for a state to act on

    def _send(
        self, action: RecoveryAction, now: datetime, *, new_attempt: bool
    ) -> RecoveryDecision:
        if new_attempt:
            self._attempts += 1
        self._phase = (
            RecoveryPhase.ACKNOWLEDGING
            if action is RecoveryAction.ACK_ERROR
            else RecoveryPhase.STARTING
        )
        self._due = now + self.config.response_timeout
        return self._decision(action)

    def _await_response(self, now: datetime) -> RecoveryDecision:
        if self._due is not None and now >= self._due:
            return self._failed(now)
        return self._decision()

    def _failed(self, now: datetime) -> RecoveryDecision:
        if self._attempts >= self.config.max_attempts:
            return self._give_up()
        self._phase = RecoveryPhase.WAITING
        self._due = now + self.config.backoff(self._attempts)
        return self._decision()

    def _give_up(self) -> RecoveryDecision:
        self._phase, self._due = RecoveryPhase.GAVE_UP, None
        return self._decision(RecoveryAction.GIVE_UP)

    def _put_back(self, now: datetime) -> RecoveryDecision:
        if self._phase is RecoveryPhase.GAVE_UP:  # fixed from outside: a fresh start
            self._attempts = 0
        self._phase, self._due = RecoveryPhase.IN_SERVICE, None
        self._back_since = now if self._attempts else None
        return self._decision(RecoveryAction.PUT_BACK)


_TIMED_PHASES = frozenset(
    {RecoveryPhase.WAITING, RecoveryPhase.ACKNOWLEDGING, RecoveryPhase.STARTING}
)


class RecoveryTracker:
    """`ComponentRecovery` for many components, created on first sight."""

    def __init__(self, config: RecoveryConfig | None = None) -> None:
        """Use `config` for every component."""
        self.config = config if config is not None else RecoveryConfig()
        self._machines: dict[int, ComponentRecovery] = {}

    def reconfigure(self, config: RecoveryConfig) -> None:
        """Use new settings from now on; components keep their phase and attempts."""
        self.config = config
        for machine in self._machines.values():
            machine.config = config

    def _machine(self, component_id: int) -> ComponentRecovery:
        machine = self._machines.get(component_id)
        if machine is None:
            machine = self._machines[component_id] = ComponentRecovery(component_id, self.config)
        return machine

    def observe(self, component_id: int, state: ComponentState, now: datetime) -> RecoveryDecision:
        """Feed one component's state; see `ComponentRecovery.observe`."""
        return self._machine(component_id).observe(state, now)

    def command_failed(self, component_id: int, now: datetime) -> RecoveryDecision:
        """Report a failed ack/start RPC; see `ComponentRecovery.command_failed`."""
        return self._machine(component_id).command_failed(now)

    def out_of_distribution(self, component_ids: Iterable[int] | None = None) -> frozenset[int]:
        """Return the components (of `component_ids`, or all seen) taken out."""
        ids = self._machines if component_ids is None else component_ids
        return frozenset(
            cid
            for cid in ids
            if (m := self._machines.get(cid)) is not None and not m.in_distribution
        )

    def next_check_at(self) -> datetime | None:
        """Return the earliest time a component needs a call without new telemetry."""
        times = [due for m in self._machines.values() if (due := m.next_check_at) is not None]
        return min(times, default=None)
