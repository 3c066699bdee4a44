"""The EV chargers and PV inverters the controller commands one by one, and their rating."""

import math

import pytest
from frequenz.client.microgrid import MicrogridApiClient

from edge_controller.microgrid.direct import DirectComponents, RatedComponent, direct_components
from edge_controller.microgrid.from_client import graph_inputs, rated_active_power
from edge_controller.microgrid.graph import ComponentRole, GraphComponent, pair_batteries
from tests.conftest import NOON


def test_chargers_and_pv_inverters_are_found_sorted_with_their_ratings() -> None:
    components = [
        GraphComponent(81, ComponentRole.EV_CHARGER),
        GraphComponent(50, ComponentRole.PV_INVERTER),
        GraphComponent(80, ComponentRole.EV_CHARGER),
        GraphComponent(10, ComponentRole.BATTERY_INVERTER),
        GraphComponent(51, ComponentRole.PV_INVERTER),
    ]
    found = direct_components(
        components, {50: (-350_000.0, 0.0), 80: (0.0, 22_000.0), 51: (None, math.nan)}
    )
    assert found.ev_charger_ids == (80, 81)
    assert found.pv_inverter_ids == (50, 51)
    assert found.rated(50).rated_magnitude_w == 350_000.0
    assert found.rated(80).rated_magnitude_w == 22_000.0
    # an end the metadata does not carry (or a NaN one) is unknown, never unlimited
    assert found.rated(51) == RatedComponent(51, None, None)
    assert found.rated(51).rated_magnitude_w is None
    assert found.rated(81) == RatedComponent(81)
    with pytest.raises(KeyError):
        found.rated(10)


def test_a_site_without_them_has_none() -> None:
    assert direct_components([GraphComponent(10, ComponentRole.BATTERY_INVERTER)]) == (
        DirectComponents()
    )


async def test_the_simulator_lists_its_pv_inverter_and_ev_charger_with_ratings(
    client: MicrogridApiClient,
) -> None:
    components = list(await client.list_components())
    connections = list(await client.list_connections())
    nodes, links = graph_inputs(components, connections, NOON)
    found = direct_components(nodes, rated_active_power(components))
    assert found.pv_inverters == (RatedComponent(50, -350_000.0, 0.0),)
    assert found.ev_chargers == (RatedComponent(80, 0.0, 22_000.0),)
    # not in the battery pairing, and no reason to leave a battery out
    pairs = pair_batteries(nodes, links)
    assert pairs.inverter_ids == (10, 20, 30, 40)
    assert pairs.left_out == ()
