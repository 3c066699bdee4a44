"""Keep the export within its limit, batteries first; limit the PV for a dispatch.

A surplus beyond the export limit is asked of the batteries (they charge it); what
they cannot take — full, out of service, or held by a higher-priority use case, as
their measured power tells — is curtailed, shared between the PV inverters by rating.

The plug-in (`USE_CASE`): its keys and options in `config.py`, the dispatch's payload
in `payload.py`, the pure decision in `decide.py`, what it reads of the site in
`site_reading.py`, the actor that sends the batteries' ask and the PV's limit in
`actor.py`.
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
from edge_controller.use_cases.pv_curtailment.config import (
    KEYS,
    KIND,
    PvCurtailmentOptions,
    parse_options,
)


class PvCurtailment:
    """The `pv_curtailment` kind: the batteries' charge for a surplus, and a PV limit.

    The limit is the tighter of a dispatch's and the export guard's.
    """

    kind = KIND
    default_dispatch_types: tuple[str, ...] = ("PV_CURTAILMENT",)
    keys = KEYS

    def parse(self, reader: Reader, item: Mapping[str, Any], path: str) -> object:
        """Its PV inverters, export limit, margins and lift rate (`config.parse_options`)."""
        return parse_options(reader, item, path)

    def build(self, context: UseCaseContext, config: UseCaseConfig) -> UseCaseActors:
        """One PvCurtailmentActor on the configured PV inverters and batteries (default: all).

        Raises:
            ValueError: `inverters` names a component that is not a PV inverter of the
                site, or the site has none.
        """
        from edge_controller.use_cases.pv_curtailment.actor import PvCurtailmentActor

        options = config.options
        assert isinstance(options, PvCurtailmentOptions), "parsed by PvCurtailment.parse"
        site = context.site
        inverters = configured_or_all(
            context.name, options.inverters, site.pv_inverters, key="inverters", what="PV inverter"
        )
        actor = PvCurtailmentActor(
            context.dispatches,
            context.requests,
            context.results,
            site,
            options=options,
            inverters=inverters,
            batteries=config.batteries or frozenset(site.pairs.battery_ids),
            grid=context.grid,
            priority=context.priority,
            clock=context.clock,
            request_timeout=context.request_timeout,
            name=context.name,
        )
        return UseCaseActors((actor,), status=actor)


USE_CASE = PvCurtailment()
