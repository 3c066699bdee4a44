"""What the power check takes from the Microgrid API's component list.

The whole call runs against the simulator in `test_command.py`; here, a component
that reports only one end of its rated bounds (the simulator always reports both).
"""

from __future__ import annotations

from frequenz.client.common.microgrid import MicrogridId
from frequenz.client.common.microgrid.components import ComponentId
from frequenz.client.microgrid.component import BatteryInverter, LiIonBattery
from frequenz.client.microgrid.metrics import Bounds, Metric

from edge_controller.dispatching.power_check import (
    InverterCapability,
    PowerProblem,
    RatedBounds,
    SiteCapability,
    power_problem,
)
from edge_controller.dispatching.site_bounds import rated_bounds


def inverter(bounds: Bounds | None) -> BatteryInverter:
    return BatteryInverter(
        id=ComponentId(10),
        microgrid_id=MicrogridId(1),
        rated_bounds={} if bounds is None else {Metric.AC_POWER_ACTIVE: bounds},
    )


def test_a_missing_end_is_unknown_not_unbounded() -> None:
    assert rated_bounds(inverter(Bounds(lower=-250e3, upper=250e3)), Metric.AC_POWER_ACTIVE) == (
        RatedBounds(-250e3, 250e3)
    )
    assert rated_bounds(inverter(Bounds(upper=250e3)), Metric.AC_POWER_ACTIVE) == RatedBounds(
        None, 250e3
    )
    assert rated_bounds(inverter(Bounds(lower=-250e3)), Metric.AC_POWER_ACTIVE) == RatedBounds(
        -250e3, None
    )
    assert rated_bounds(inverter(None), Metric.AC_POWER_ACTIVE) == RatedBounds()


def test_minus_five_gigawatts_is_refused_when_neither_reports_the_discharge_end() -> None:
    battery = LiIonBattery(
        id=ComponentId(11),
        microgrid_id=MicrogridId(1),
        rated_bounds={Metric.DC_POWER: Bounds(upper=250e3)},
    )
    site = SiteCapability(
        source="rated bounds from the microgrid API at grpc://site",
        inverters=(
            InverterCapability(
                10,
                rated_bounds(inverter(Bounds(upper=250e3)), Metric.AC_POWER_ACTIVE),
                ((11, rated_bounds(battery, Metric.DC_POWER)),),
            ),
        ),
    )
    assert power_problem(-5e9, site, None) == PowerProblem(
        "no rated discharge bound (lower end) known for battery 11 or its inverter 10 "
        "(rated bounds from the microgrid API at grpc://site)",
        forcible=True,
    )
