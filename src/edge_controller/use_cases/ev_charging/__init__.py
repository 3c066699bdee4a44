"""EV charging: `EV_CHARGING` dispatches held on the site's EV chargers.

The plug-in (`USE_CASE`): its keys and options in `config.py`; a dispatch's payload
(power per charger, or a budget shared by the cars plugged in) read in `payload.py`;
the pure decision — each charger's power from the payload and what each can take
now — in `decide.py`; the actor that takes it again whenever a car arrives or leaves,
and sends one request per charger, in `actor.py`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from edge_controller.common.toml_reader import Reader
from edge_controller.framework.use_case import (
    UseCaseActors,
    UseCaseConfig,
    UseCaseContext,
    configured_or_all,
)
from edge_controller.use_cases.ev_charging.config import (
    KEYS,
    KIND,
    EvChargingOptions,
    parse_options,
)


class EvCharging:
    """The `ev_charging` kind: power per charger, or a budget shared by the cars there."""

    kind = KIND
    default_dispatch_types: tuple[str, ...] = ("EV_CHARGING",)
    keys = KEYS

    def parse(self, reader: Reader, item: Mapping[str, Any], path: str) -> object:
        """Its chargers, minimum power per car and tick (`config.parse_options`)."""
        return parse_options(reader, item, path)

    def build(self, context: UseCaseContext, config: UseCaseConfig) -> UseCaseActors:
        """One EvChargingActor over the configured chargers (all of the site's by default).

        Raises:
            ValueError: a configured charger the site does not have as an EV charger,
                or a site without EV chargers: the entry cannot do what it says.
        """
        from edge_controller.use_cases.ev_charging.actor import EvChargingActor

        options = config.options
        assert isinstance(options, EvChargingOptions), "parsed by EvCharging.parse"
        chargers = configured_or_all(
            context.name,
            options.chargers,
            context.site.ev_chargers,
            key="chargers",
            what="EV charger",
        )
        actor = EvChargingActor(
            context.dispatches,
            context.requests,
            context.results,
            context.site,
            chargers=chargers,
            grid=context.grid,
            min_power_w=options.min_power_w,
            tick=options.tick,
            priority=context.priority,
            clock=context.clock,
            request_timeout=context.request_timeout,
            name=context.name,
        )
        return UseCaseActors((actor,), status=actor)


USE_CASE = EvCharging()
