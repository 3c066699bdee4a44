from datetime import timedelta

from frequenz.client.microgrid import Lifetime
from frequenz.client.microgrid.component import (
    ComponentConnection,
)

from edge_controller.microgrid.from_client import graph_inputs
from tests.conftest import NOON, component_id


def test_graph_inputs_drop_connections_not_operational_now() -> None:
    ended = Lifetime(start=NOON - timedelta(days=2), end=NOON - timedelta(days=1))
    connections = [
        ComponentConnection(source=component_id(1), destination=component_id(2)),
        ComponentConnection(
            source=component_id(2), destination=component_id(3), operational_lifetime=ended
        ),
    ]
    _, links = graph_inputs([], connections, NOON)
    assert links == [(1, 2)]
