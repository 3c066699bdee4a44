"""The market's members as the REST API shows them, and the changes it may make (pure).

The seed's `/api/` speaks of members (consumer groups, prosumers, the manager) and of
controls (the manager's coal-plant `ratio` and `status`; a prosumer's `input_ratio`,
`output_ratio` and `status`). This module turns `model` members into JSON and back,
validates every change (each problem named by its key), carries the batteries'
energy over when the members change, and tells where a prosumer consumes from.

```
members_json(spec)                 -> {"consumers": [...], "prosumers": [...], "managers": [...]}
add_member(spec, body)             -> new MarketSpec       (ValueError names the key)
change_member(spec, id, body)      -> new MarketSpec
apply_controls(spec, id, body)     -> new MarketSpec
carry_state(old, state, new)       -> MarketState for the new members
prosumer_flows(spec, state, start, weather) -> one ProsumerFlow per prosumer entry
```

A member's id is its name (unique in the market). Powers are **kW** and energies
**kWh** in this JSON (a house's figures are kW-sized), the model's MW/MWh inside;
the market's totals (`/api/price`) stay in MW like the period records.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Final, Literal

from edge_controller.servers.market.model import (
    BatterySpec,
    CoalPlant,
    ConsumerGroup,
    DailyProfile,
    MarketSpec,
    MarketState,
    ProsumerSpec,
    Weather,
    default_market,
    situation,
)

KW_PER_MW: Final = 1000.0
_NAME_CHARS: Final = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 _.-")
MemberKind = Literal["consumer", "prosumer", "manager"]
Source = Literal["turbines", "battery", "market", "battery+market", "off"]


class MemberNotFoundError(KeyError):
    """No member has this id."""

    def __init__(self, member_id: str) -> None:
        """Name the id that was asked for."""
        super().__init__(member_id)
        self.member_id = member_id

    def __str__(self) -> str:
        """`no member 'x'`."""
        return f"no member {self.member_id!r}"


# ---------------------------------------------------------------------- to JSON


def _kw(mw: float) -> float:
    return round(mw * KW_PER_MW, 6)


def consumer_json(consumer: ConsumerGroup) -> dict[str, Any]:
    """A consumer group: peak demand and the 24 hourly factors."""
    return {
        "id": consumer.name,
        "kind": "consumer",
        "peak_demand_kw": _kw(consumer.peak_demand_mw),
        "profile": list(consumer.profile.hourly),
    }


def prosumer_json(prosumer: ProsumerSpec, owner: str | None = None) -> dict[str, Any]:
    """A prosumer entry (`count` identical houses): turbines, batteries, controls."""
    return {
        "id": prosumer.name,
        "kind": "prosumer",
        "count": prosumer.count,
        "turbines_kw": [_kw(t) for t in prosumer.turbines_mw],
        "peak_demand_kw": _kw(prosumer.peak_demand_mw),
        "profile": list(prosumer.profile.hourly),
        "batteries": [
            {
                "capacity_kwh": _kw(b.capacity_mwh),
                "max_charge_kw": _kw(b.max_charge_mw),
                "max_output_kw": _kw(b.max_output_mw),
                "initial_kwh": _kw(b.initial_mwh),
            }
            for b in prosumer.batteries
        ],
        "input_ratio": prosumer.input_ratio,
        "output_ratio": prosumer.output_ratio,
        "status": prosumer.status,
        "owner": owner,
    }


def manager_json(manager: CoalPlant) -> dict[str, Any]:
    """The manager's coal plant: size, controls, cost curve and carbon intensity."""
    return {
        "id": manager.name,
        "kind": "manager",
        "max_production_kw": _kw(manager.max_production_mw),
        "ratio": manager.ratio,
        "status": manager.status,
        "carbon_intensity_kg_per_mwh": manager.carbon_intensity_kg_per_mwh,
        "marginal_cost": float(manager.marginal_cost),
        "full_load_cost": float(manager.full_load_cost),
    }


def members_json(spec: MarketSpec, owners: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Every member, by kind (the seed's simulator `/api/members` shape)."""
    owners = owners or {}
    return {
        "consumers": [consumer_json(c) for c in spec.consumers],
        "prosumers": [prosumer_json(p, owners.get(p.name)) for p in spec.prosumers],
        "managers": [manager_json(spec.manager)],
    }


def find(spec: MarketSpec, member_id: str) -> ConsumerGroup | ProsumerSpec | CoalPlant:
    """The member called `member_id`.

    Raises:
        MemberNotFoundError: none is.
    """
    if spec.manager.name == member_id:
        return spec.manager
    for consumer in spec.consumers:
        if consumer.name == member_id:
            return consumer
    for prosumer in spec.prosumers:
        if prosumer.name == member_id:
            return prosumer
    raise MemberNotFoundError(member_id)


def kind_of(member: ConsumerGroup | ProsumerSpec | CoalPlant) -> MemberKind:
    """The member's kind: consumer, prosumer or manager."""
    if isinstance(member, ConsumerGroup):
        return "consumer"
    if isinstance(member, ProsumerSpec):
        return "prosumer"
    return "manager"


def member_json(
    member: ConsumerGroup | ProsumerSpec | CoalPlant, owner: str | None = None
) -> dict[str, Any]:
    """One member as JSON, whatever its kind."""
    if isinstance(member, ConsumerGroup):
        return consumer_json(member)
    if isinstance(member, ProsumerSpec):
        return prosumer_json(member, owner)
    return manager_json(member)


# ---------------------------------------------------------------------- from JSON


class _Fields:
    """Reads a JSON object's fields, collecting a problem per bad key."""

    def __init__(self, body: Mapping[str, Any], allowed: set[str]) -> None:
        self.body = body
        self.problems: list[str] = []
        unknown = sorted(set(body) - allowed)
        if unknown:
            self.problems.append(f"unknown keys {unknown}; expected some of {sorted(allowed)}")

    def number(
        self, key: str, default: float, *, low: float = 0.0, high: float = math.inf
    ) -> float:
        raw = self.body.get(key, default)
        if isinstance(raw, bool) or not isinstance(raw, int | float) or not math.isfinite(raw):
            self.problems.append(f"{key}: expected a number, got {raw!r}")
            return default
        if not low <= raw <= high:
            self.problems.append(f"{key}: expected {low:g}..{high:g}, got {raw!r}")
            return default
        return float(raw)

    def integer(self, key: str, default: int, *, low: int = 1, high: int = 1_000_000) -> int:
        raw = self.body.get(key, default)
        if isinstance(raw, bool) or not isinstance(raw, int) or not low <= raw <= high:
            self.problems.append(f"{key}: expected a whole number {low}..{high}, got {raw!r}")
            return default
        return raw

    def flag(self, key: str, default: bool) -> bool:
        raw = self.body.get(key, default)
        if not isinstance(raw, bool):
            self.problems.append(f"{key}: expected true or false, got {raw!r}")
            return default
        return raw

    def profile(self, key: str, default: DailyProfile) -> DailyProfile:
        raw = self.body.get(key)
        if raw is None:
            return default
        if (
            not isinstance(raw, list)
            or len(raw) != 24
            or not all(
                isinstance(v, int | float) and not isinstance(v, bool) and 0 <= v <= 1 for v in raw
            )
        ):
            self.problems.append(f"{key}: expected 24 hourly factors 0..1, got {raw!r}")
            return default
        return DailyProfile(tuple(float(v) for v in raw))

    def name(self, key: str, default: str | None) -> str:
        raw = self.body.get(key, default)
        if (
            not isinstance(raw, str)
            or not raw.strip()
            or len(raw) > 64
            or not set(raw) <= (_NAME_CHARS)
        ):
            self.problems.append(
                f"{key}: expected 1-64 characters of letters, digits, space, '_', '.', '-', "
                f"got {raw!r}"
            )
            return default or "?"
        return raw

    def done(self) -> None:
        if self.problems:
            raise ValueError("; ".join(self.problems))


_CONSUMER_KEYS: Final = {"id", "kind", "peak_demand_kw", "profile"}
_PROSUMER_KEYS: Final = {
    "id",
    "kind",
    "count",
    "turbines_kw",
    "peak_demand_kw",
    "profile",
    "batteries",
    "input_ratio",
    "output_ratio",
    "status",
    "owner",
}
_MANAGER_KEYS: Final = {
    "id",
    "kind",
    "max_production_kw",
    "ratio",
    "status",
    "carbon_intensity_kg_per_mwh",
    "marginal_cost",
    "full_load_cost",
}
_DEFAULT_PROFILE: Final = default_market().consumers[0].profile


def consumer_from(body: Mapping[str, Any], base: ConsumerGroup | None = None) -> ConsumerGroup:
    """A consumer group from JSON; missing keys keep `base`'s values (or defaults).

    Raises:
        ValueError: naming every bad key.
    """
    fields = _Fields(body, _CONSUMER_KEYS)
    name = base.name if base else fields.name("id", None)
    peak = fields.number(
        "peak_demand_kw", base.peak_demand_mw * KW_PER_MW if base else 100.0, high=1e6
    )
    profile = fields.profile("profile", base.profile if base else _DEFAULT_PROFILE)
    fields.done()
    return ConsumerGroup(name, peak / KW_PER_MW, profile)


def _batteries(fields: _Fields, base: tuple[BatterySpec, ...]) -> tuple[BatterySpec, ...]:
    raw = fields.body.get("batteries")
    if raw is None:
        return base
    if not isinstance(raw, list) or len(raw) > 100:
        fields.problems.append(f"batteries: expected a list of batteries, got {raw!r}")
        return base
    found = []
    keys = {"capacity_kwh", "max_charge_kw", "max_output_kw", "initial_kwh"}
    for index, item in enumerate(raw):
        if not isinstance(item, dict):
            fields.problems.append(f"batteries[{index}]: expected an object, got {item!r}")
            continue
        battery = _Fields(item, keys)
        capacity = battery.number("capacity_kwh", 13.5, high=1e6)
        charge = battery.number("max_charge_kw", 5.0, high=1e6)
        output = battery.number("max_output_kw", 5.0, high=1e6)
        initial = battery.number("initial_kwh", capacity / 2, high=capacity)
        fields.problems.extend(f"batteries[{index}].{p}" for p in battery.problems)
        found.append(
            BatterySpec(
                capacity / KW_PER_MW, charge / KW_PER_MW, output / KW_PER_MW, initial / KW_PER_MW
            )
        )
    return tuple(found)


def _turbines(fields: _Fields, base: tuple[float, ...]) -> tuple[float, ...]:
    raw = fields.body.get("turbines_kw")
    if raw is None:
        return base
    if (
        not isinstance(raw, list)
        or len(raw) > 100
        or not all(
            isinstance(v, int | float) and not isinstance(v, bool) and 0 <= v <= 1e5 for v in raw
        )
    ):
        fields.problems.append(f"turbines_kw: expected rated powers 0..100000 kW, got {raw!r}")
        return base
    return tuple(float(v) / KW_PER_MW for v in raw)


def prosumer_from(body: Mapping[str, Any], base: ProsumerSpec | None = None) -> ProsumerSpec:
    """A prosumer entry from JSON; missing keys keep `base`'s values (or defaults).

    `owner` is not part of the model (the caller keeps it).

    Raises:
        ValueError: naming every bad key.
    """
    fields = _Fields(body, _PROSUMER_KEYS)
    name = base.name if base else fields.name("id", None)
    prosumer = ProsumerSpec(
        name=name,
        count=fields.integer("count", base.count if base else 1),
        turbines_mw=_turbines(fields, base.turbines_mw if base else (0.025,)),
        peak_demand_mw=fields.number(
            "peak_demand_kw", base.peak_demand_mw * KW_PER_MW if base else 3.0, high=1e5
        )
        / KW_PER_MW,
        profile=fields.profile("profile", base.profile if base else _DEFAULT_PROFILE),
        batteries=_batteries(
            fields, base.batteries if base else (BatterySpec(0.0135, 0.005, 0.005, 0.00675),)
        ),
        input_ratio=fields.number("input_ratio", base.input_ratio if base else 0.5, high=1.0),
        output_ratio=fields.number("output_ratio", base.output_ratio if base else 1.0, high=1.0),
        status=fields.flag("status", base.status if base else True),
    )
    if "owner" in body and body["owner"] is not None and not isinstance(body["owner"], str):
        fields.problems.append(f"owner: expected a user name or null, got {body['owner']!r}")
    fields.done()
    return prosumer


def _price(fields: _Fields, key: str, default: Decimal) -> Decimal:
    value = fields.number(key, float(default), low=-9999, high=9999)
    try:
        return Decimal(str(value)).quantize(Decimal("0.01"))
    except InvalidOperation:  # pragma: no cover - a finite float always converts
        return default


def manager_from(body: Mapping[str, Any], base: CoalPlant) -> CoalPlant:
    """The coal plant with the JSON's changes (there is one manager; it is never added).

    Raises:
        ValueError: naming every bad key, or a full-load cost below the marginal cost.
    """
    fields = _Fields(body, _MANAGER_KEYS)
    plant = CoalPlant(
        name=base.name,
        max_production_mw=fields.number(
            "max_production_kw", base.max_production_mw * KW_PER_MW, high=1e7
        )
        / KW_PER_MW,
        ratio=fields.number("ratio", base.ratio, high=1.0),
        status=fields.flag("status", base.status),
        carbon_intensity_kg_per_mwh=fields.number(
            "carbon_intensity_kg_per_mwh", base.carbon_intensity_kg_per_mwh, high=1e4
        ),
        marginal_cost=_price(fields, "marginal_cost", base.marginal_cost),
        full_load_cost=_price(fields, "full_load_cost", base.full_load_cost),
    )
    if plant.full_load_cost < plant.marginal_cost:
        fields.problems.append(
            f"full_load_cost: expected >= marginal_cost ({plant.marginal_cost}), "
            f"got {plant.full_load_cost}"
        )
    fields.done()
    return plant


# ---------------------------------------------------------------------- changes


def _taken(spec: MarketSpec) -> set[str]:
    return {spec.manager.name, *(c.name for c in spec.consumers), *(p.name for p in spec.prosumers)}


def add_member(spec: MarketSpec, body: Mapping[str, Any]) -> MarketSpec:
    """`spec` with one more consumer group or prosumer (`body["kind"]`).

    Raises:
        ValueError: an unknown kind, a taken id, or bad fields.
    """
    kind = body.get("kind")
    member_id = body.get("id")
    if isinstance(member_id, str) and member_id in _taken(spec):
        raise ValueError(f"id: a member {member_id!r} exists already")
    if kind == "consumer":
        return replace(spec, consumers=(*spec.consumers, consumer_from(body)))
    if kind == "prosumer":
        return replace(spec, prosumers=(*spec.prosumers, prosumer_from(body)))
    raise ValueError(f"kind: expected 'consumer' or 'prosumer', got {kind!r}")


def _check_same(body: Mapping[str, Any], member_id: str, kind: MemberKind) -> None:
    if "id" in body and body["id"] != member_id:
        raise ValueError(f"id: a member keeps its id ({member_id!r}), got {body['id']!r}")
    if "kind" in body and body["kind"] != kind:
        raise ValueError(f"kind: a member keeps its kind ({kind!r}), got {body['kind']!r}")


def change_member(spec: MarketSpec, member_id: str, body: Mapping[str, Any]) -> MarketSpec:
    """`spec` with one member's fields changed (the keys given; the others kept).

    Raises:
        MemberNotFoundError: no such member.
        ValueError: bad fields, or a try to change the id or the kind.
    """
    member = find(spec, member_id)
    kind = kind_of(member)
    _check_same(body, member_id, kind)
    if isinstance(member, ConsumerGroup):
        changed = consumer_from(body, member)
        consumers = tuple(changed if c.name == member_id else c for c in spec.consumers)
        return replace(spec, consumers=consumers)
    if isinstance(member, ProsumerSpec):
        prosumer = prosumer_from(body, member)
        prosumers = tuple(prosumer if p.name == member_id else p for p in spec.prosumers)
        return replace(spec, prosumers=prosumers)
    return replace(spec, manager=manager_from(body, member))


def remove_member(spec: MarketSpec, member_id: str) -> MarketSpec:
    """`spec` without a consumer group or prosumer.

    Raises:
        MemberNotFoundError: no such member.
        ValueError: the manager (the market needs its coal plant).
    """
    member = find(spec, member_id)
    if isinstance(member, CoalPlant):
        raise ValueError("id: the manager's coal plant cannot be removed; switch it off")
    return replace(
        spec,
        consumers=tuple(c for c in spec.consumers if c.name != member_id),
        prosumers=tuple(p for p in spec.prosumers if p.name != member_id),
    )


MANAGER_CONTROLS: Final = ("ratio", "status")
PROSUMER_CONTROLS: Final = ("input_ratio", "output_ratio", "status")


def controls_json(member: ConsumerGroup | ProsumerSpec | CoalPlant) -> dict[str, Any]:
    """The seed's `/api/control/{id}`: the manager's or a prosumer's controls.

    Raises:
        ValueError: a consumer group (it has none).
    """
    if isinstance(member, CoalPlant):
        return {"ratio": member.ratio, "status": member.status}
    if isinstance(member, ProsumerSpec):
        return {
            "input_ratio": member.input_ratio,
            "output_ratio": member.output_ratio,
            "status": member.status,
        }
    raise ValueError(f"id: {member.name!r} is a consumer group; it has no controls")


def apply_controls(spec: MarketSpec, member_id: str, body: Mapping[str, Any]) -> MarketSpec:
    """`spec` with the controls of the manager or a prosumer changed.

    Raises:
        MemberNotFoundError: no such member.
        ValueError: a consumer group, a key that is not a control, or a bad value.
    """
    member = find(spec, member_id)
    allowed = MANAGER_CONTROLS if isinstance(member, CoalPlant) else PROSUMER_CONTROLS
    controls_json(member)  # a consumer group has none
    unknown = sorted(set(body) - set(allowed))
    if unknown or not body:
        raise ValueError(f"expected some of {list(allowed)}, got {sorted(body)}")
    return change_member(spec, member_id, body)


def carry_state(old: MarketSpec, state: MarketState, new: MarketSpec) -> MarketState:
    """The batteries for `new` members: each kept prosumer keeps its energy (≤ capacity).

    A new prosumer starts with its batteries' initial energy.
    """
    before = {p.name: e for p, e in zip(old.prosumers, state.battery_mwh, strict=True)}
    return MarketState(
        tuple(
            min(p.capacity_mwh, before.get(p.name, sum(b.initial_mwh for b in p.batteries)))
            for p in new.prosumers
        )
    )


# ---------------------------------------------------------------------- where from


@dataclass(frozen=True, slots=True)
class ProsumerFlow:
    """One house of a prosumer entry in one period (kW; + charges the battery).

    `source` says where the house's consumption comes from: its own `turbines`
    (enough wind), its `battery`, the `market`, `battery+market`, or `off` (no load).
    """

    id: str
    count: int
    produced_kw: float
    consumed_kw: float
    battery_kw: float
    """+ charging, − discharging (passive sign convention)."""
    bought_kw: float
    sold_kw: float
    battery_kwh: float
    """Stored at the period's start."""
    capacity_kwh: float
    source: Source

    @property
    def soc_pct(self) -> float | None:
        """The battery's state of charge at the period's start (None: no battery)."""
        return 100 * self.battery_kwh / self.capacity_kwh if self.capacity_kwh > 0 else None


def prosumer_flows(
    spec: MarketSpec, state: MarketState, start: datetime, weather: Weather
) -> list[ProsumerFlow]:
    """Each prosumer entry's house in the period starting at `start` (`model.situation`)."""
    flows = []
    for prosumer, energy in zip(spec.prosumers, state.battery_mwh, strict=True):
        alone = replace(spec, consumers=(), prosumers=(replace(prosumer, count=1),))
        period = situation(alone, MarketState((energy,)), start, weather)
        discharge, bought = period.battery_discharge_mw, period.shortfall_mw
        source: Source
        if period.prosumer_load_mw <= 0:
            source = "off"
        elif discharge > 0 and bought > 1e-9:
            source = "battery+market"
        elif discharge > 0:
            source = "battery"
        elif bought > 1e-9:
            source = "market"
        else:
            source = "turbines"
        flows.append(
            ProsumerFlow(
                id=prosumer.name,
                count=prosumer.count,
                produced_kw=_kw(period.turbine_mw),
                consumed_kw=_kw(period.prosumer_load_mw),
                battery_kw=_kw(period.battery_charge_mw - discharge),
                bought_kw=_kw(bought),
                sold_kw=_kw(period.surplus_mw),
                battery_kwh=_kw(energy),
                capacity_kwh=_kw(prosumer.capacity_mwh),
                source=source,
            )
        )
    return flows


def flow_json(flow: ProsumerFlow) -> dict[str, Any]:
    """A `ProsumerFlow` as JSON."""
    soc = flow.soc_pct
    return {
        "id": flow.id,
        "count": flow.count,
        "produced_kw": round(flow.produced_kw, 3),
        "consumed_kw": round(flow.consumed_kw, 3),
        "battery_kw": round(flow.battery_kw, 3),
        "bought_kw": round(flow.bought_kw, 3),
        "sold_kw": round(flow.sold_kw, 3),
        "battery_kwh": round(flow.battery_kwh, 3),
        "capacity_kwh": round(flow.capacity_kwh, 3),
        "soc_pct": None if soc is None else round(soc, 1),
        "source": flow.source,
    }


def spec_members(
    spec: MarketSpec,
    consumers: Sequence[ConsumerGroup],
    prosumers: Sequence[ProsumerSpec],
    manager: CoalPlant,
) -> MarketSpec:
    """`spec` (rules, pricing, weather) with these members."""
    return replace(spec, consumers=tuple(consumers), prosumers=tuple(prosumers), manager=manager)


__all__ = [
    "MANAGER_CONTROLS",
    "PROSUMER_CONTROLS",
    "MemberNotFoundError",
    "ProsumerFlow",
    "add_member",
    "apply_controls",
    "carry_state",
    "change_member",
    "consumer_from",
    "controls_json",
    "find",
    "flow_json",
    "kind_of",
    "manager_from",
    "member_json",
    "members_json",
    "prosumer_flows",
    "prosumer_from",
    "remove_member",
    "spec_members",
]
