"""Case 7: random requests to our own servers while a controller runs a dispatch.

1. Every method of the simulator (Microgrid API v1alpha18 and v1) and of the dispatch
   service (with the API key) gets random bytes, random valid messages and damaged
   ones (`grpc_fuzz`) — over 1 000 calls, 64 at a time. Each must be answered with a
   status: never INTERNAL (an exception in our code), never an UNKNOWN other than
   grpcio's own "DecodeError" for a body that is not protobuf (it refuses those
   before our code runs), never silence — except a stream that was validly opened
   and has nothing to say yet. A NaN or infinite number in a dispatch payload (valid
   in a protobuf Struct, not in JSON) is INVALID_ARGUMENT naming the field.
2. 300 dispatches with random payloads go through the real `frequenz-client-dispatch`
   client to battery 41: the controller rejects the bad ones (logged, counted), runs
   the good ones, and does not crash.
3. Afterwards both servers still serve, and the good dispatch on battery 21 still
   runs at its power.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
from frequenz.api.dispatch.v1 import dispatch_pb2
from frequenz.api.microgrid.v1 import microgrid_pb2 as v1_pb2
from frequenz.api.microgrid.v1alpha18 import microgrid_pb2 as v1alpha18_pb2
from frequenz.client.dispatch.types import DispatchId, TargetIds
from frequenz.client.microgrid import MicrogridApiClient

from edge_controller.servers.sim.site import SiteSpec
from tests.harness import KEY, MICROGRID
from tests.patience import CALL_TIMEOUT_S
from tests.reliability import grpc_fuzz
from tests.reliability.helpers import assert_no_violations, near, reliable_site, until

SEED = 20261123
EACH = 12
"""Per method: 12 random, 24 valid, 24 damaged bodies; 32 methods: 1 920 calls."""
PAYLOADS = 300
GOOD_W = -60_000.0


def _random_json(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.randrange(8 if depth < 2 else 5)
    if kind == 0:
        return None
    if kind == 1:
        return rng.choice([True, False])
    if kind == 2:
        return rng.choice([0, -1, -40_000, 2**53, -(10**30), 10**300, rng.randint(-(10**6), 0)])
    if kind == 3:
        # NaN and inf: the dispatch service refuses them (INVALID_ARGUMENT).
        return rng.choice(
            [-0.0, 5e-324, 1e308, -1e-300, math.nan, -math.inf, rng.uniform(-1e6, 1e6)]
        )
    if kind == 4:
        return rng.choice(
            ["-40 kW", "40kW", "-1 MW", "lots", "", "1e999 W", "-5 kWh", "NaN W", "x" * 60_000]
        )
    if kind == 5:
        return [_random_json(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    return {
        rng.choice(["power_w", "powr_w", "", "é", "a.b"]): _random_json(rng, depth + 1)
        for _ in range(rng.randint(0, 3))
    }


def _random_payload(rng: random.Random) -> dict[str, Any]:
    roll = rng.random()
    if roll < 0.6:
        return {"power_w": _random_json(rng)}
    if roll < 0.8:
        return {"power_w": rng.uniform(-200_000, 0), _random_json(rng, 2) or "extra": 1}
    value = _random_json(rng, 1)
    return value if isinstance(value, dict) else {}


async def test_random_requests_are_answered_and_the_controller_keeps_its_dispatch(
    example_site: SiteSpec, tmp_path: Path
) -> None:
    rng = random.Random(SEED)
    async with reliable_site(example_site, tmp_path) as site:
        await site.create(GOOD_W, (21,))
        await until(lambda: near(site.sim.model.ac_power_w(20), GOOD_W), "the good dispatch runs")

        # 1. Raw gRPC.
        sim_methods = grpc_fuzz.methods(v1alpha18_pb2, "Microgrid") + grpc_fuzz.methods(
            v1_pb2, "Microgrid"
        )
        dispatch_methods = grpc_fuzz.methods(dispatch_pb2, "MicrogridDispatchService")
        outcomes: list[grpc_fuzz.Outcome] = []
        async with (
            grpc.aio.insecure_channel(site.sim.address) as sim_channel,
            grpc.aio.insecure_channel(site.dispatch.address) as dispatch_channel,
        ):
            sim_requests = [
                (m, body) for m in sim_methods for body in grpc_fuzz.bodies(m, rng, EACH)
            ]
            outcomes += await grpc_fuzz.call_all(
                sim_channel, sim_requests, timeout_s=CALL_TIMEOUT_S
            )
            dispatch_requests = [
                (m, body) for m in dispatch_methods for body in grpc_fuzz.bodies(m, rng, EACH)
            ]
            outcomes += await grpc_fuzz.call_all(
                dispatch_channel,
                dispatch_requests,
                metadata=[("key", KEY)],
                timeout_s=CALL_TIMEOUT_S,
            )
        assert len(outcomes) >= 1000
        problems = [f"{o}: {why}" for o in outcomes if (why := o.problem()) is not None]
        assert problems == []
        codes = Counter(o.code.name for o in outcomes)
        assert codes["INVALID_ARGUMENT"] + codes["NOT_FOUND"] > 100, codes  # reached our code

        # 2. Random payloads through the real dispatch client.
        sent = refused_by_client = 0
        refused_by_service: list[grpc.StatusCode] = []
        for _ in range(PAYLOADS):
            try:
                await site.client.create(
                    microgrid_id=MICROGRID,
                    type="BATTERY_POWER",
                    start_time="NOW",
                    duration=timedelta(minutes=5),
                    target=TargetIds(41),
                    payload=_random_payload(rng),
                )
            except grpc.aio.AioRpcError as error:  # refused by the service (e.g. > 50 KiB)
                refused_by_service.append(error.code())
            except (ValueError, TypeError):
                refused_by_client += 1  # the client cannot encode it: never sent
                continue
            sent += 1
        assert sent >= PAYLOADS // 2
        assert set(refused_by_service) <= {grpc.StatusCode.INVALID_ARGUMENT}
        await until(lambda: site.counts().get("rejected", 0) > 20, "bad payloads rejected", 10)

        # 3. Both servers still serve; the good dispatch still runs; nothing crashed.
        micro = MicrogridApiClient(site.sim.url)
        try:
            assert len(list(await micro.list_components())) == len(example_site.components)
        finally:
            await micro.__aexit__(None, None, None)
        await site.create(-10_000.0, (31,))
        await until(lambda: near(site.sim.model.ac_power_w(30), -10_000), "a new dispatch runs")
        await until(lambda: near(site.sim.model.ac_power_w(20), GOOD_W), "the good one runs", 3)
        assert_no_violations(site.sim)
        site.assert_alive()


@pytest.mark.parametrize("number", [math.nan, math.inf, -math.inf])
async def test_a_non_finite_payload_number_is_invalid_argument(
    example_site: SiteSpec, tmp_path: Path, number: float
) -> None:
    async with reliable_site(example_site, tmp_path) as site:
        with pytest.raises(grpc.aio.AioRpcError) as created:
            await site.create(number, (41,))
        assert created.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert created.value.details() == f"payload.power_w: expected a finite number, got {number}"

        dispatch_id = await site.create(-10_000.0, (41,))
        with pytest.raises(grpc.aio.AioRpcError) as updated:
            await site.client.update(
                microgrid_id=MICROGRID,
                dispatch_id=DispatchId(dispatch_id),
                new_fields={"payload": {"power_w": -1.0, "limits": [0.0, {"max_w": number}]}},
            )
        assert updated.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert updated.value.details() == (
            f"update.payload.limits[1].max_w: expected a finite number, got {number}"
        )
        site.assert_alive()
