"""Ask the Microgrid API what the site's batteries can do: their rated power bounds.

The shell around `power_check`: one ListElectricalComponents and one
ListElectricalComponentConnections call (no telemetry stream), paired with the
controller's own `microgrid.graph.pair_batteries`, so "which batteries sit behind which
inverter" means here what it means to the controller.

Rated bounds, not the bounds in force: a dispatch may start hours later, when SoC and
temperature have changed; what is checked is what the hardware can ever do. The
controller still keeps every command within the bounds in force when it runs.

Each battery counts with its rated DC power bounds intersected with its inverter's
rated AC active-power bounds; the inverter also caps the sum of its batteries.
"""

from __future__ import annotations

import asyncio
import warnings
from datetime import UTC, datetime

from frequenz.client.base.retry import LinearBackoff
from frequenz.client.microgrid import ApiClientError, MicrogridApiClient
from frequenz.client.microgrid.component import Component
from frequenz.client.microgrid.metrics import Metric
from grpc.aio import AioRpcError

from edge_controller.dispatching.power_check import (
    InverterCapability,
    RatedBounds,
    SiteCapability,
)
from edge_controller.microgrid.from_client import graph_inputs
from edge_controller.microgrid.graph import ComponentGraphError, pair_batteries


class SiteBoundsError(RuntimeError):
    """The Microgrid API did not tell what the batteries can do; names the URL."""


class MicrogridUrlError(SiteBoundsError, ValueError):
    """A URL the Microgrid API client cannot use (bad input, not a failure)."""


def _reason(error: ApiClientError | AioRpcError) -> str:
    """Return "CODE: message" (without the debug string)."""
    grpc_error = getattr(error, "grpc_error", error)
    if isinstance(grpc_error, AioRpcError):
        return f"{grpc_error.code().name}: {grpc_error.details() or '(no message)'}"
    return str(error)


def rated_bounds(component: Component, metric: Metric) -> RatedBounds:
    """A component's rated bounds for `metric`, W; an end it does not report is unknown.

    The client says a missing end means "no bound"; for equipment that is not to be
    believed: the power check refuses what an unknown end would have to allow.
    """
    bounds = component.rated_bounds.get(metric)
    if bounds is None:
        return RatedBounds()
    return RatedBounds(
        None if bounds.lower is None else float(bounds.lower),
        None if bounds.upper is None else float(bounds.upper),
    )


async def fetch_site_capability(
    url: str, *, timeout_s: float = 5.0, now: datetime | None = None
) -> SiteCapability:
    """Return the rated bounds of every battery (and its inverter) at the site at `url`.

    Raises:
        MicrogridUrlError: a URL the client cannot use.
        SiteBoundsError: no answer within `timeout_s`, a refused call, or a graph the
            controller could not drive either.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            client = MicrogridApiClient(url, retry_strategy=LinearBackoff(interval=0.1, limit=0))
    except ValueError as error:
        reason = error.args[0] if error.args else str(error)
        raise MicrogridUrlError(f"--microgrid-url: {reason}, got {url!r}") from None
    try:
        async with asyncio.timeout(timeout_s):
            components = list(await client.list_components())
            connections = list(await client.list_connections())
    except TimeoutError:
        raise SiteBoundsError(
            f"the microgrid API at {url} did not answer within {timeout_s:g} s"
        ) from None
    except (ApiClientError, AioRpcError) as error:
        raise SiteBoundsError(f"the microgrid API at {url} failed: {_reason(error)}") from None
    finally:
        await client.__aexit__(None, None, None)
    nodes, links = graph_inputs(components, connections, now or datetime.now(UTC))
    try:
        pairs = pair_batteries(nodes, links)
    except ComponentGraphError as error:
        problem = str(error).replace("\n", "; ")
        raise SiteBoundsError(f"the microgrid API at {url}: {problem}") from None
    by_id = {int(c.id): c for c in components}
    return SiteCapability(
        source=f"rated bounds from the microgrid API at {url}",
        inverters=tuple(
            InverterCapability(
                inverter_id=pair.inverter_id,
                inverter=rated_bounds(by_id[pair.inverter_id], Metric.AC_POWER_ACTIVE),
                batteries=tuple(
                    (battery_id, rated_bounds(by_id[battery_id], Metric.DC_POWER))
                    for battery_id in pair.battery_ids
                ),
            )
            for pair in pairs.pairs
        ),
    )


__all__ = ["MicrogridUrlError", "SiteBoundsError", "fetch_site_capability", "rated_bounds"]
