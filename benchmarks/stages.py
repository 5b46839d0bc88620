"""Where the client CPU goes: each pipeline stage timed alone, plus a cProfile of a full run.

The instrumented pass runs the library's own stage functions over the scenario's
events, one stage at a time (all events through a stage, then the next), and
charges each stage the process CPU it took:

- ``validate``: ``_event.prepare_event`` (what push runs: no copy of a complete event);
- ``encode``: ``_wire.encode_json`` (orjson) of the mParticle event dict (the decoded
  bodies the builder produced, so the same shapes are encoded);
- ``map+build``: ``EventBuilder.build`` minus the two stages above (the mapping,
  the mParticle dict, identities, batch key, limits), derived. They are one stage
  because for a plain rule, as here, they are one generated function
  (``_payload_fast``); the general path runs ``compiled_mapping.resolve`` then the
  plan, and the same subtraction covers it;
- ``accumulate``: ``Accumulator.add`` with the scenario's batch size, then every
  open batch made eligible (as a flush does);
- ``pack``: ``Scheduler`` request selection, sealing (batch bytes assembled from
  the stored event bytes) and ``_wire.encode_bulk``;
- ``send``: ``Deliverer.send`` of every request, one after another, to the fake
  server (httpx, headers, response handling; the server's CPU is its own).

The cProfile then covers a whole batched ``Destination`` run (push to close) on
the same events, listing the functions with the most own time.
"""

from __future__ import annotations

import cProfile
import json
import pstats
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from .scenario import API_KEY, API_SECRET, ScenarioParams, generate_events, scenario_config

STAGES = ("validate", "map+build", "encode", "accumulate", "pack", "send")

T = TypeVar("T")

# Age of the instrumented accumulator: nothing seals on age during the pass.
_NEVER = 1e9


def _cpu(fn: Callable[[], T]) -> tuple[T, float]:
    t0 = time.process_time()
    out = fn()
    return out, time.process_time() - t0


async def stage_breakdown(params: ScenarioParams, url: str, *, profile_top: int) -> dict[str, Any]:
    """Time every stage over ``params.events`` events and profile a full batched run.

    Returns:
        ``{"events", "us_per_event": {stage: µs}, "cpu_s": {stage: s}, "requests",
        "profile": [{"function", "calls", "tottime", "cumtime"}, ...]}``.
    """
    from mparticle_dest._batching.accumulator import Accumulator, BatchLimits
    from mparticle_dest._batching.scheduler import Scheduler
    from mparticle_dest._config.model import DestinationConfig
    from mparticle_dest._delivery.deliverer import Deliverer, make_client
    from mparticle_dest._event import prepare_event
    from mparticle_dest._mparticle.constants import BULK_PATH
    from mparticle_dest._payload.builder import BuiltEvent, EventBuilder
    from mparticle_dest._wire import basic_auth_header, encode_bulk, encode_json, endpoint

    events = generate_events(
        params.events, params.users, seed=params.seed, extra_data_fields=params.extra_data_fields
    )
    config = DestinationConfig.from_dict(scenario_config(params.batch_size, params.batch_age))
    builder = EventBuilder.from_config(config)
    cpu: dict[str, float] = {}

    _, cpu["validate"] = _cpu(lambda: [prepare_event(e) for e in events])
    built_all, build_total = _cpu(lambda: [builder.build(e) for e in events])
    built = [b for b in built_all if isinstance(b, BuiltEvent)]
    dicts = [json.loads(b.body) for b in built]
    _, cpu["encode"] = _cpu(lambda: [encode_json(d) for d in dicts])
    cpu["map+build"] = max(0.0, build_total - cpu["validate"] - cpu["encode"])

    acc = Accumulator(BatchLimits(size=params.batch_size or None, age=_NEVER))
    scheduler = Scheduler(acc)

    def accumulate() -> list[Any]:
        sealed = []
        for i, b in enumerate(built):
            for batch in acc.add(b, float(i))[1]:
                scheduler.add_sealed(batch)
                sealed.append(batch)
        acc.due(0.0, until=_NEVER)  # every open batch eligible, as a flush does
        return sealed

    _, cpu["accumulate"] = _cpu(accumulate)

    def pack() -> list[tuple[list[Any], bytes]]:
        scheduler.urgent += 1
        requests = []
        while group := scheduler.take(0.0):  # seals the open batches it takes
            requests.append((group, encode_bulk([b.body for b in group])))
            scheduler.release(group)
        return requests

    requests, cpu["pack"] = _cpu(pack)

    async with make_client() as client:
        deliverer = Deliverer(
            client,
            url=endpoint("us1", url, BULK_PATH),
            auth_header=basic_auth_header(API_KEY, API_SECRET),
        )
        t0 = time.process_time()
        for group, _ in requests:
            results = await deliverer.send(group)
            if not all(r.delivered for r in results):
                raise RuntimeError("the fake server refused a batch during the stage pass")
        cpu["send"] = time.process_time() - t0

    n = len(events)
    return {
        "events": n,
        "requests": len(requests),
        "cpu_s": {s: cpu[s] for s in STAGES},
        "us_per_event": {s: cpu[s] / n * 1e6 for s in STAGES},
        "profile": await _profile_run(params, url, events, profile_top),
    }


async def _profile_run(
    params: ScenarioParams, url: str, events: list[dict[str, Any]], top: int
) -> list[dict[str, Any]]:
    """cProfile of a batched Destination run (push to close), top ``top`` by own time."""
    from mparticle_dest._destination.destination import Destination

    config = scenario_config(params.batch_size, params.batch_age)
    profiler = cProfile.Profile()
    async with Destination(config, base_url=url) as dest:
        profiler.enable()
        for event in events:
            await dest.push(event)
    profiler.disable()
    stats = pstats.Stats(profiler)
    rows = []
    # pstats keys: (file, line, function) -> (primitive calls, calls, tottime, cumtime, callers)
    for (file, line, func), (_, calls, tottime, cumtime, _) in stats.stats.items():  # type: ignore[attr-defined]
        rows.append(
            {
                "function": f"{_short(file)}:{line}({func})",
                "calls": calls,
                "tottime": tottime,
                "cumtime": cumtime,
            }
        )
    rows.sort(key=lambda r: r["tottime"], reverse=True)
    return rows[:top]


def _short(file: str) -> str:
    """``.../site-packages/httpx/_client.py`` → ``httpx/_client.py``."""
    parts = Path(file).parts
    for anchor in ("site-packages", "mparticle_dest", "lib"):
        if anchor in parts:
            i = len(parts) - 1 - parts[::-1].index(anchor)
            keep = parts[i + 1 :] if anchor != "mparticle_dest" else parts[i:]
            if keep:
                return "/".join(keep)
    return file
