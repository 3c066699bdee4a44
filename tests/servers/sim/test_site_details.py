from typing import Any

import pytest

from edge_controller.common.toml_reader import Reader
from edge_controller.servers.sim.site_details import (
    DETAIL_PARSERS,
    KIND_KEYS,
    BatterySpec,
    ComponentKind,
    EvChargerSpec,
    GridSpec,
    InverterSpec,
    LoadSpec,
    MeterSpec,
    PrechargerSpec,
    PvSpec,
    RelaySpec,
    WindSpec,
)

# The least a table of each kind needs, and what it reads into.
SMALLEST: dict[ComponentKind, tuple[dict[str, Any], type]] = {
    ComponentKind.GRID: ({}, GridSpec),
    ComponentKind.METER: ({}, MeterSpec),
    ComponentKind.BATTERY_INVERTER: ({"active_power_bounds": ["-10 kW", "10 kW"]}, InverterSpec),
    ComponentKind.BATTERY: (
        {"capacity": "20 kWh", "initial_soc": 50, "power_bounds": [-10_000, 10_000]},
        BatterySpec,
    ),
    ComponentKind.PV_INVERTER: ({"peak_power": "30 kW"}, PvSpec),
    ComponentKind.WIND_TURBINE: ({"rated_power": "50 kW"}, WindSpec),
    ComponentKind.LOAD: ({"peak_power": "20 kW"}, LoadSpec),
    ComponentKind.EV_CHARGER: ({"max_power": "11 kW"}, EvChargerSpec),
    ComponentKind.RELAY: ({}, RelaySpec),
    ComponentKind.PRECHARGER: ({}, PrechargerSpec),
}


def test_every_kind_a_site_file_accepts_has_a_parser_and_its_keys() -> None:
    assert set(DETAIL_PARSERS) == set(ComponentKind)
    assert set(KIND_KEYS) == set(ComponentKind)


@pytest.mark.parametrize("kind", list(ComponentKind))
def test_each_kind_reads_its_smallest_table_into_its_own_spec(kind: ComponentKind) -> None:
    table, spec_type = SMALLEST[kind]
    reader = Reader()
    details = DETAIL_PARSERS[kind](reader, table, "components[0]")
    assert reader.problems == []
    assert type(details) is spec_type
    assert set(table) <= KIND_KEYS[kind]


@pytest.mark.parametrize("kind", [k for k in ComponentKind if SMALLEST[k][0]])
def test_a_kind_missing_a_key_it_needs_reads_nothing_and_names_the_key(
    kind: ComponentKind,
) -> None:
    table, _spec_type = SMALLEST[kind]
    missing = sorted(table)[0]
    reader = Reader()
    details = DETAIL_PARSERS[kind](
        reader, {k: v for k, v in table.items() if k != missing}, "components[0]"
    )
    assert details is None
    assert any(problem.startswith(f"components[0].{missing}:") for problem in reader.problems)
