"""Hold a dispatched power on a set of batteries (`BATTERY_POWER` dispatches).

The plug-in (`USE_CASE`): no keys of its own beyond the common `[[use_cases]]` ones;
`decide.py` reads a dispatch into the batteries and the watts it asks and makes one
request per running dispatch, `actor.py` keeps them in force; the PowerManagingActor
decides which of overlapping dispatches drives.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from edge_controller.common.key_specs import SectionSpec
from edge_controller.common.toml_reader import Reader
from edge_controller.framework.use_case import UseCaseActors, UseCaseConfig, UseCaseContext

KIND = "battery_power"


class BatteryPower:
    """The `battery_power` kind: each running dispatch's power held on its batteries."""

    kind = KIND
    default_dispatch_types: tuple[str, ...] = ("BATTERY_POWER",)
    keys = SectionSpec(
        "use_cases",
        "A `battery_power` use case has no keys of its own.",
        live=True,
        array=True,
        heading=f'[[use_cases]] kind = "{KIND}"',
        keys=(),
    )

    def parse(self, reader: Reader, item: Mapping[str, Any], path: str) -> object:
        """No options: every key it reads is a common `[[use_cases]]` one."""
        return None

    def build(self, context: UseCaseContext, config: UseCaseConfig) -> UseCaseActors:
        """One BatteryPowerActor over every battery of the site, by inverter group."""
        from edge_controller.use_cases.battery_power.actor import BatteryPowerActor

        actor = BatteryPowerActor(
            context.dispatches,
            context.requests,
            context.results,
            pairs=context.site.pairs,
            namespace=context.name,
            request_timeout=context.request_timeout,
            priority=context.priority,
            name=context.name,
        )
        return UseCaseActors((actor,), status=actor)


USE_CASE = BatteryPower()
