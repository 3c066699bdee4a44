"""Keep the grid connection's import under a limit with the batteries.

The plug-in (`USE_CASE`): its keys and options in `config.py`, the pure decision in
`decide.py`, the actor that reads the grid meter and asks for power in `actor.py`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from edge_controller.common.toml_reader import Reader
from edge_controller.framework.use_case import UseCaseActors, UseCaseConfig, UseCaseContext
from edge_controller.use_cases.peak_shaving.config import (
    KEYS,
    KIND,
    PeakShavingOptions,
    parse_options,
)


class PeakShaving:
    """The `peak_shaving` kind: discharge a battery set when the import passes a threshold."""

    kind = KIND
    default_dispatch_types: tuple[str, ...] = ("PEAK_SHAVING",)
    keys = KEYS

    def parse(self, reader: Reader, item: Mapping[str, Any], path: str) -> object:
        """Its threshold, margins and SoC window (`config.parse_options`)."""
        return parse_options(reader, item, path)

    def build(self, context: UseCaseContext, config: UseCaseConfig) -> UseCaseActors:
        """One PeakShavingActor on the configured batteries, widened to whole inverters."""
        from edge_controller.use_cases.peak_shaving.actor import PeakShavingActor

        options = config.options
        assert isinstance(options, PeakShavingOptions), "parsed by PeakShaving.parse"
        pairs = context.site.pairs
        wanted = config.batteries or frozenset(pairs.battery_ids)
        actor = PeakShavingActor(
            context.dispatches,
            context.requests,
            context.results,
            context.site,
            options=options,
            batteries=frozenset().union(
                *(pairs.batteries_of(pairs.inverter_of(b)) for b in wanted)
            ),
            priority=context.priority,
            grid=context.grid,
            clock=context.clock,
            request_timeout=context.request_timeout,
            name=context.name,
        )
        return UseCaseActors((actor,), status=actor)


USE_CASE = PeakShaving()
