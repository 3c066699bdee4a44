"""The members' JSON, changes, controls, carried batteries and sources (pure)."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from edge_controller.common.clock import ManualClock
from edge_controller.servers.market.exchange import MarketExchange
from edge_controller.servers.market.members import (
    MemberNotFoundError,
    add_member,
    apply_controls,
    carry_state,
    change_member,
    consumer_from,
    manager_from,
    member_json,
    members_json,
    prosumer_flows,
    prosumer_from,
    remove_member,
)
from edge_controller.servers.market.model import (
    MarketState,
    Weather,
    default_market,
    initial_state,
    weather_from_spec,
)
from tests.servers.market.conftest import CALM, NOON

MARKET = default_market()


def test_every_member_reads_back_from_its_own_json() -> None:
    members = members_json(MARKET)
    assert [consumer_from(c) for c in members["consumers"]] == list(MARKET.consumers)
    assert [prosumer_from(p) for p in members["prosumers"]] == list(MARKET.prosumers)
    manager = members["managers"][0]
    assert manager_from(manager, MARKET.manager) == MARKET.manager
    assert manager["max_production_kw"] == 4000


def test_add_change_remove_and_controls_name_what_is_wrong() -> None:
    spec = add_member(MARKET, {"kind": "consumer", "id": "school", "peak_demand_kw": 80})
    assert spec.consumers[-1].peak_demand_mw == pytest.approx(0.08)
    spec = change_member(spec, "school", {"profile": [0.5] * 24})
    assert spec.consumers[-1].profile.at(NOON) == 0.5
    assert remove_member(spec, "school").consumers == MARKET.consumers
    with pytest.raises(ValueError, match="id: a member keeps its id"):
        change_member(spec, "school", {"id": "college"})
    with pytest.raises(ValueError, match=r"profile: expected 24 hourly factors"):
        change_member(spec, "school", {"profile": [2] * 24})
    with pytest.raises(ValueError, match="expected some of \\['ratio', 'status'\\]"):
        apply_controls(spec, "coal plant", {"max_production_kw": 1})
    with pytest.raises(ValueError, match="cannot be removed"):
        remove_member(spec, "coal plant")
    with pytest.raises(MemberNotFoundError):
        apply_controls(spec, "mill", {"ratio": 1})
    plant = apply_controls(spec, "coal plant", {"ratio": 0.25, "status": False}).manager
    assert (plant.ratio, plant.status, plant.available_mw) == (0.25, False, 0.0)


def test_batteries_carry_over_by_name_and_fit_a_smaller_capacity() -> None:
    state = MarketState((0.01,))
    smaller = change_member(MARKET, "wind homes", {"batteries": [{"capacity_kwh": 4}]})
    added = add_member(smaller, {"kind": "prosumer", "id": "new", "batteries": []})
    assert carry_state(MARKET, state, added).battery_mwh == (0.004, 0.0)


def test_a_house_consumes_from_turbines_battery_or_market() -> None:
    windy = weather_from_spec(MARKET)
    flows = prosumer_flows(MARKET, initial_state(MARKET), NOON, windy)
    assert [f.source for f in flows] == ["turbines"]
    assert flows[0].battery_kw > 0  # it stores half of its surplus
    (battery,) = prosumer_flows(MARKET, initial_state(MARKET), NOON, CALM)
    assert battery.source == "battery"
    assert battery.battery_kw == pytest.approx(-battery.consumed_kw)
    (market,) = prosumer_flows(MARKET, MarketState((0.0,)), NOON, CALM)
    assert market.source == "market"
    assert market.bought_kw == pytest.approx(market.consumed_kw)
    no_output = apply_controls(MARKET, "wind homes", {"output_ratio": 0.5})
    (both,) = prosumer_flows(no_output, initial_state(MARKET), NOON, CALM)
    assert both.source == "battery+market"


def test_the_exchange_clears_the_next_period_with_changed_members() -> None:
    clock = ManualClock(NOON)
    exchange = MarketExchange(MARKET, clock=clock, weather=Weather(lambda _t: 0.0, lambda _v: 0))
    clock.advance(timedelta(minutes=15))
    (first,) = exchange.clear_due()
    exchange.change_members(apply_controls(MARKET, "coal plant", {"ratio": 0.2}))
    clock.advance(timedelta(minutes=15))
    (second,) = exchange.clear_due()
    assert first.price < second.price
    assert second.price == MARKET.pricing.scarcity_price
    assert exchange.records[first.start] == first  # a cleared period keeps its outcome
    spec, _state = exchange.inputs(second.start) or (None, None)
    assert spec is not None
    assert spec.manager.ratio == 0.2
    with pytest.raises(ValueError, match="rules cannot change"):
        exchange.change_members(
            replace(MARKET, rules=replace(MARKET.rules, gate_closure=timedelta(0)))
        )


def test_member_json_of_a_prosumer_names_its_owner() -> None:
    assert member_json(MARKET.prosumers[0], "ada")["owner"] == "ada"
