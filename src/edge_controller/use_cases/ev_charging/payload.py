"""An EV_CHARGING dispatch's payload, read with an error that names each bad field.

Two shapes, each with optional limits per car (W, or quantity strings like "11 kW")::

    {"chargers": {"81": 11000, "82": "7.4 kW"}}          power per charger
    {"budget_w": "30 kW"}                                  shared by the target's chargers
    {"budget_w": 30000, "min_w": 4140, "max_w": 11000,     every car within 4.14-11 kW,
     "sessions": {"82": {"max_w": 3700}}}                  the car at charger 82 at most 3.7 kW

The keys of `chargers` and `sessions` are charger ids (strings in the protobuf
`Struct` a payload travels in). What the chargers then get is `decide`'s business.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from frequenz.client.common.microgrid.electrical_components import ElectricalComponentCategory
from frequenz.client.dispatch.types import TargetCategories, TargetIds
from frequenz.dispatch import Dispatch

from edge_controller.dispatching.payload import PayloadError, parse_power


@dataclass(frozen=True, slots=True)
class SessionLimits:
    """The power a car may charge with (W): at least `min_w` if at all, at most `max_w`."""

    min_w: float | None = None
    max_w: float | None = None


@dataclass(frozen=True, slots=True)
class EvChargingPayload:
    """What an EV_CHARGING dispatch asks: power per charger, or a shared budget.

    Exactly one of `chargers_w` and `budget_w` is set. `limits` applies to every car,
    `sessions` to the car at one charger (its own keys win over `limits`).
    """

    chargers_w: Mapping[int, float] | None = None
    budget_w: float | None = None
    limits: SessionLimits = SessionLimits()
    sessions: Mapping[int, SessionLimits] = field(default_factory=dict)

    def session_limits(self, charger_id: int) -> SessionLimits:
        """The limits of the car at `charger_id`: its own, else the dispatch's."""
        own = self.sessions.get(charger_id, SessionLimits())
        return SessionLimits(
            self.limits.min_w if own.min_w is None else own.min_w,
            self.limits.max_w if own.max_w is None else own.max_w,
        )


PAYLOAD_KEYS = frozenset({"chargers", "budget_w", "min_w", "max_w", "sessions"})
SESSION_KEYS = frozenset({"min_w", "max_w"})


def _non_negative(dispatch_id: int, field_name: str, raw: object) -> float:
    value = parse_power(dispatch_id, field_name, raw)
    if value < 0:
        raise PayloadError(
            dispatch_id, field_name, f"expected a power >= 0 (a charger only charges), got {raw!r}"
        )
    return value


def _charger_id(dispatch_id: int, field_name: str, key: object) -> int:
    """A charger id as a Struct key: a string of digits ("81"); an int is taken too."""
    if isinstance(key, int) and not isinstance(key, bool) and key > 0:
        return key
    if isinstance(key, str) and key.strip().isdigit() and int(key) > 0:
        return int(key)
    raise PayloadError(
        dispatch_id, f"{field_name}.{key}", "expected a charger id (an integer > 0) as the key"
    )


def _limits(dispatch_id: int, prefix: str, raw: Mapping[str, object]) -> SessionLimits:
    unknown = sorted(set(raw) - SESSION_KEYS)
    if unknown:
        raise PayloadError(
            dispatch_id, f"{prefix}{unknown[0]}", f"unknown key; expected {sorted(SESSION_KEYS)}"
        )
    min_w = _non_negative(dispatch_id, f"{prefix}min_w", raw["min_w"]) if "min_w" in raw else None
    max_w = _non_negative(dispatch_id, f"{prefix}max_w", raw["max_w"]) if "max_w" in raw else None
    if min_w is not None and max_w is not None and min_w > max_w:
        raise PayloadError(
            dispatch_id, f"{prefix}min_w", f"expected at most max_w ({max_w:g} W), got {min_w:g}"
        )
    return SessionLimits(min_w, max_w)


def parse_payload(dispatch_id: int, payload: Mapping[str, object]) -> EvChargingPayload:
    """Validate an EV_CHARGING payload (the shapes in the module docstring).

    Unknown keys are refused, so a typo never runs as something else; powers are
    numbers (W) or quantity strings ("11 kW"), never negative.

    Raises:
        PayloadError: naming the dispatch and the field (`chargers.81`,
            `sessions.82.min_w`, ...).
    """
    unknown = sorted(set(payload) - PAYLOAD_KEYS)
    if unknown:
        raise PayloadError(dispatch_id, unknown[0], f"unknown key; expected {sorted(PAYLOAD_KEYS)}")
    if ("chargers" in payload) == ("budget_w" in payload):
        raise PayloadError(
            dispatch_id,
            "budget_w",
            "expected either 'chargers' (power per charger) or 'budget_w' (shared by the "
            "chargers of the target), " + ("not both" if "chargers" in payload else "got neither"),
        )
    chargers_w: dict[int, float] | None = None
    budget_w: float | None = None
    if "chargers" in payload:
        raw = payload["chargers"]
        if not isinstance(raw, Mapping) or not raw:
            raise PayloadError(
                dispatch_id, "chargers", f"expected a table of charger id -> power, got {raw!r}"
            )
        chargers_w = {}
        for key, value in raw.items():
            charger = _charger_id(dispatch_id, "chargers", key)
            chargers_w[charger] = _non_negative(dispatch_id, f"chargers.{key}", value)
    else:
        budget_w = _non_negative(dispatch_id, "budget_w", payload["budget_w"])
    limits = _limits(dispatch_id, "", {k: v for k, v in payload.items() if k in SESSION_KEYS})
    sessions: dict[int, SessionLimits] = {}
    raw_sessions = payload.get("sessions", {})
    if not isinstance(raw_sessions, Mapping):
        raise PayloadError(
            dispatch_id,
            "sessions",
            f"expected a table of charger id -> limits, got {raw_sessions!r}",
        )
    for key, value in raw_sessions.items():
        charger = _charger_id(dispatch_id, "sessions", key)
        if not isinstance(value, Mapping):
            raise PayloadError(
                dispatch_id, f"sessions.{key}", f"expected a table {{min_w, max_w}}, got {value!r}"
            )
        if chargers_w is not None and charger not in chargers_w:
            raise PayloadError(
                dispatch_id, f"sessions.{key}", "expected a charger named in 'chargers'"
            )
        sessions[charger] = _limits(dispatch_id, f"sessions.{key}.", value)
    return EvChargingPayload(chargers_w, budget_w, limits, sessions)


def payload_chargers(
    dispatch_id: int, payload: EvChargingPayload, target: frozenset[int]
) -> frozenset[int]:
    """The chargers a dispatch drives: those it names, which must be in its target.

    A budget is shared by every charger of the target.

    Raises:
        PayloadError: a charger named in `chargers` that the target does not hold.
    """
    if payload.chargers_w is None:
        return target
    outside = sorted(set(payload.chargers_w) - target)
    if outside:
        raise PayloadError(
            dispatch_id,
            f"chargers.{outside[0]}",
            f"expected a charger of the dispatch's target {sorted(target)}",
        )
    return frozenset(payload.chargers_w)


@dataclass(frozen=True, slots=True)
class EvDispatch:
    """One running EV_CHARGING dispatch, read: what it asks, of which chargers."""

    payload: EvChargingPayload
    chargers: frozenset[int]


def target_chargers(dispatch: Dispatch, site_chargers: frozenset[int]) -> frozenset[int]:
    """Resolve a dispatch's target to charger ids: ids as given, or the EV charger category.

    Raises:
        PayloadError: (field `target`) ids that are not this use case's chargers, a
            category other than EV chargers, or no charger at all.
    """
    dispatch_id = int(dispatch.id)
    target = dispatch.target
    if isinstance(target, TargetIds):
        unknown = sorted(set(target) - site_chargers)
        if unknown:
            raise PayloadError(
                dispatch_id,
                "target",
                f"{unknown} are not EV chargers of this use case; chargers: "
                f"{sorted(site_chargers)}",
            )
        chargers = frozenset(int(i) for i in target)
    elif isinstance(target, TargetCategories):
        categories = {t.category2 for t in target}
        if categories != {ElectricalComponentCategory.EV_CHARGER}:
            raise PayloadError(
                dispatch_id,
                "target",
                "expected the EV charger category, got "
                f"{sorted(c.name for c in categories if c is not None)}",
            )
        chargers = site_chargers
    else:  # pragma: no cover - the client knows no other target kind
        raise PayloadError(dispatch_id, "target", f"unsupported {target!r}")
    if not chargers:
        raise PayloadError(dispatch_id, "target", "names no EV charger")
    return chargers


def read_dispatch(dispatch: Dispatch, site_chargers: frozenset[int]) -> EvDispatch:
    """What a running EV_CHARGING dispatch asks of which of `site_chargers`.

    Raises:
        PayloadError: the payload or the target, naming the dispatch and the field.
    """
    payload = parse_payload(int(dispatch.id), dispatch.payload)
    target = target_chargers(dispatch, site_chargers)
    return EvDispatch(payload, payload_chargers(int(dispatch.id), payload, target))
