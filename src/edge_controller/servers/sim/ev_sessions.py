"""EV charging sessions at a simulated charger: a car arrives, charges, leaves.

A charger with sessions is *plugged* only while a car is there. Each car comes with
an energy need (Wh) and may have a power limit of its own (its on-board charger):
it takes the commanded power, clamped to that limit, and leaves when it has what it
needs or at its departure time, whichever comes first::

    arrive 0 s        full at ~2.7 h (30 kWh at 11 kW)      next car arrives 4 h
    |==== 11 kW ======|                                      |=== ...
    plugged           unplugged: bounds 0..0, 0 W            plugged again

Cars come from the site file, either as a fixed schedule (`sessions`) or drawn at
random (`arrivals`): after each departure the next car arrives an exponentially
distributed gap later, with an energy need, a stay and a power limit drawn
uniformly from the given spans. The draw is seeded by the table's `seed` and the
charger's id, so a run is repeatable and two chargers with the same table still see
different cars.

Times are seconds of *simulation* time since the simulation's start (the physics
clock that `--speed` scales), so a demo at high speed sees cars come and go.

Pure: no clock, no I/O. `EvPlug` is the mutable state of one charger, advanced by the
model's physics step; `car_power_w` is the physics of one sub-step.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from edge_controller.common.toml_reader import (
    Reader,
    checked,
    energy,
    integer,
    join,
    number,
    power,
)
from edge_controller.power.bounds import Range

FULL_WH = 1e-6
"""A car within this much of its need counts as full (float rounding of the integral)."""


@dataclass(frozen=True, slots=True)
class EvSession:
    """One car's visit to a charger (seconds of simulation time, W, Wh)."""

    arrive_s: float
    leave_s: float
    """When the car leaves at the latest; `inf`: only when full."""
    energy_wh: float
    """What the car needs; it leaves once it has it."""
    max_power_w: float = math.inf
    """The car's own limit (its on-board charger); `inf`: the charger's limit."""


@dataclass(frozen=True, slots=True)
class EvArrivals:
    """Random cars: after each departure the next arrives `mean_gap_s` later on average."""

    seed: int
    mean_gap_s: float
    energy_wh: Range
    stay_s: Range
    max_power_w: Range | None = None
    """The cars' own power limits; `None`: every car takes what the charger gives."""


@dataclass(frozen=True, slots=True)
class EvCar:
    """The car plugged in now, and how far it got."""

    session: EvSession
    charged_wh: float

    @property
    def needed_wh(self) -> float:
        """What it still needs before it leaves."""
        return max(0.0, self.session.energy_wh - self.charged_wh)


def car_power_w(commanded_w: float, car_max_w: float, needed_wh: float, dt_h: float) -> float:
    """The power a plugged car takes over a sub-step of `dt_h` hours.

    The commanded power (W, + charges; a negative command takes nothing: a charger
    does not discharge), clamped to the car's own limit and to what brings it to its
    need by the end of the sub-step, so a car never takes more energy than it needs.
    With `dt_h` 0 (settling without time passing) only the limits apply.
    """
    taken = min(max(commanded_w, 0.0), car_max_w)
    if dt_h > 0:
        taken = min(taken, needed_wh / dt_h)
    return max(taken, 0.0)


def _drawn(rng: random.Random, span: Range) -> float:
    return span.lower if span.lower == span.upper else rng.uniform(span.lower, span.upper)


def _random_sessions(arrivals: EvArrivals, charger_id: int) -> Callable[[float], EvSession]:
    """A source of random cars: called with the time the charger became free."""
    rng = random.Random(f"ev-arrivals/{arrivals.seed}/{charger_id}")

    def next_after(free_s: float) -> EvSession:
        arrive = free_s + rng.expovariate(1.0 / arrivals.mean_gap_s)
        need = _drawn(rng, arrivals.energy_wh)
        stay = _drawn(rng, arrivals.stay_s)
        limit = math.inf if arrivals.max_power_w is None else _drawn(rng, arrivals.max_power_w)
        return EvSession(arrive, arrive + stay, need, limit)

    return next_after


def _scheduled(sessions: tuple[EvSession, ...]) -> Callable[[float], EvSession | None]:
    queue: Iterator[EvSession] = iter(sessions)
    return lambda _free_s: next(queue, None)


class EvPlug:
    """What is plugged into one charger, moved along by the model's physics.

    Not thread-safe: the model owns it.
    """

    def __init__(
        self,
        charger_id: int,
        sessions: tuple[EvSession, ...] | None = None,
        arrivals: EvArrivals | None = None,
    ) -> None:
        """Take a fixed schedule (in arrival order, not overlapping) or random arrivals."""
        self._next: Callable[[float], EvSession | None] = (
            _random_sessions(arrivals, charger_id)
            if arrivals is not None
            else _scheduled(sessions or ())
        )
        self._pending = self._next(0.0)
        self._car: EvCar | None = None
        self.visits = 0
        """Cars that have arrived so far."""

    @property
    def car(self) -> EvCar | None:
        """The car plugged in now (`None`: unplugged)."""
        return self._car

    def limit_w(self, charger_max_w: float) -> float:
        """The most the charger can give now: 0 W unplugged, else the lower limit."""
        if self._car is None:
            return 0.0
        return min(charger_max_w, self._car.session.max_power_w)

    def advance(self, elapsed_s: float) -> bool:
        """Let cars leave and arrive up to `elapsed_s`; tell whether a car left.

        A car whose whole visit fell between two calls (a leap of hours) never plugs
        in; the next car's arrival is counted from its departure.
        """
        left = False
        while True:
            car = self._car
            if car is not None:
                if elapsed_s < car.session.leave_s:
                    return left
                self._unplug(car.session.leave_s)
                left = True
                continue
            pending = self._pending
            if pending is None or elapsed_s < pending.arrive_s:
                return left
            if elapsed_s >= pending.leave_s:
                self._pending = self._next(pending.leave_s)
                continue
            self._car = EvCar(pending, 0.0)
            self.visits += 1
            self._pending = None

    def charge(self, power_w: float, dt_h: float, end_s: float) -> tuple[float, bool]:
        """Give the plugged car `power_w` over the sub-step of `dt_h` hours to `end_s`.

        The car charges until it is full or its departure time, whichever comes first
        within the sub-step, so energy is booked to the second whatever the sub-step.
        Returns the power it took, averaged over the sub-step (W; 0 unplugged, see
        `car_power_w`), and whether it is now full and left. Call `advance(end_s)`
        afterwards for the departures and arrivals at the end of the sub-step.
        """
        car = self._car
        if car is None:
            return 0.0, False
        present_h = dt_h
        if dt_h > 0:
            start_s = end_s - dt_h * 3600
            present_h = min(dt_h, max(0.0, (car.session.leave_s - start_s) / 3600))
        rate = car_power_w(power_w, car.session.max_power_w, car.needed_wh, present_h)
        charged = car.charged_wh + rate * present_h
        self._car = EvCar(car.session, charged)
        taken = rate if present_h == dt_h else rate * present_h / dt_h
        if car.session.energy_wh - charged <= FULL_WH:
            self._unplug(end_s)
            return taken, True
        return taken, False

    def _unplug(self, at_s: float) -> None:
        self._car = None
        if self._pending is None:
            self._pending = self._next(at_s)


# ---------------------------------------------------------------- site file

SESSION_KEYS = frozenset({"arrive", "leave", "energy", "max_power"})
"""The keys of one `sessions` entry of an `ev_charger`."""
ARRIVALS_KEYS = frozenset({"seed", "mean_gap", "energy", "stay", "max_power"})
"""The keys of an `ev_charger`'s `arrivals` table."""

_SECONDS = checked(number, lambda v: v >= 0)
_POSITIVE_ENERGY = checked(energy, lambda v: v > 0)
_POSITIVE_POWER = checked(power, lambda v: v > 0)
_POSITIVE_SECONDS = checked(number, lambda v: v > 0)


def _span(convert: Callable[[object], float | None]) -> Callable[[object], Range | None]:
    """Read one value (a fixed span) or `[lower, upper]` with lower <= upper."""

    def read(raw: object) -> Range | None:
        if isinstance(raw, list):
            if len(raw) != 2:
                return None
            lower, upper = convert(raw[0]), convert(raw[1])
            if lower is None or upper is None or lower > upper:
                return None
            return Range(lower, upper)
        single = convert(raw)
        return None if single is None else Range(single, single)

    return read


def _session(reader: Reader, raw: object, path: str) -> EvSession | None:
    if not isinstance(raw, dict):
        reader.fail(path, "a table {arrive = s, leave = s, energy = Wh, max_power = W}", raw)
        return None
    reader.unknown_keys(raw, set(SESSION_KEYS), path)
    arrive = reader.value(raw, "arrive", path, _SECONDS, "seconds >= 0 after the start")
    leave = reader.value(raw, "leave", path, _SECONDS, "seconds after arrive", default=math.inf)
    need = reader.value(raw, "energy", path, _POSITIVE_ENERGY, "energy > 0 (what the car needs)")
    limit = reader.value(raw, "max_power", path, _POSITIVE_POWER, "power > 0", default=math.inf)
    if arrive is not None and leave is not None and leave <= arrive:
        reader.fail(join(path, "leave"), f"a time after arrive ({arrive:g} s)", raw["leave"])
        return None
    if arrive is None or leave is None or need is None or limit is None:
        return None
    return EvSession(arrive, leave, need, limit)


def _sessions(reader: Reader, raw: object, path: str) -> tuple[EvSession, ...] | None:
    if not isinstance(raw, list):
        reader.fail(path, "an array of sessions [{arrive = s, energy = Wh, ...}, ...]", raw)
        return None
    sessions: list[EvSession] = []
    ok = True
    for index, item in enumerate(raw):
        session = _session(reader, item, f"{path}[{index}]")
        if session is None:
            ok = False
            continue
        if sessions:
            before = sessions[-1]
            if math.isinf(before.leave_s):
                reader.fail(
                    f"{path}[{index - 1}].leave",
                    "a departure time (only the last car may stay until full)",
                    "none",
                )
                ok = False
            elif session.arrive_s < before.leave_s:
                reader.fail(
                    f"{path}[{index}].arrive",
                    f"a time at or after the car before leaves ({before.leave_s:g} s)",
                    item["arrive"],
                )
                ok = False
        sessions.append(session)
    return tuple(sessions) if ok else None


def _arrivals(reader: Reader, raw: object, path: str) -> EvArrivals | None:
    if not isinstance(raw, dict):
        reader.fail(path, "a table {seed, mean_gap, energy, stay, max_power}", raw)
        return None
    reader.unknown_keys(raw, set(ARRIVALS_KEYS), path)
    seed = reader.value(raw, "seed", path, integer, "an integer", default=0)
    gap = reader.value(raw, "mean_gap", path, _POSITIVE_SECONDS, "seconds > 0")
    need = reader.value(
        raw, "energy", path, _span(_POSITIVE_ENERGY), "energy > 0 or [lower, upper] energies"
    )
    stay = reader.value(
        raw, "stay", path, _span(_POSITIVE_SECONDS), "seconds > 0 or [lower, upper] seconds"
    )
    limit = reader.value(
        raw,
        "max_power",
        path,
        _span(_POSITIVE_POWER),
        "power > 0 or [lower, upper] powers",
        default=None,
    )
    if seed is None or gap is None or need is None or stay is None:
        return None
    return EvArrivals(seed, gap, need, stay, limit)


def read_ev_cars(
    reader: Reader, data: Mapping[str, Any], path: str
) -> tuple[tuple[EvSession, ...] | None, EvArrivals | None]:
    """Read an `ev_charger`'s `sessions` or `arrivals` (problems noted in `reader`).

    Neither: the charger has a car plugged in for good (the simulator's behaviour
    before sessions existed). Both: a problem; a charger has one source of cars.
    """
    if "sessions" in data and "arrivals" in data:
        reader.fail(
            join(path, "arrivals"),
            "either sessions (a schedule) or arrivals (random cars), not both",
            data["arrivals"],
        )
        return None, None
    sessions = arrivals = None
    if "sessions" in data:
        sessions = _sessions(reader, data["sessions"], join(path, "sessions"))
    if "arrivals" in data:
        arrivals = _arrivals(reader, data["arrivals"], join(path, "arrivals"))
    return sessions, arrivals
