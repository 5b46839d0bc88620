"""The measured runs, each executed in a fresh child process (see :mod:`benchmarks.child`).

Modes:
    ``batched``: the library's :class:`~mparticle_dest.Destination` as configured by
        the scenario (per-user batches packed into bulk requests).
    ``per-event``: the same Destination with batches of one event and one batch per
        request: the walkerOS delivery strategy through the same code.
    ``baseline``: :class:`benchmarks.baseline_minimal.MinimalClient`.
"""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from time import perf_counter_ns
from typing import Any, Protocol

import anyio
import httpx

from .baseline_minimal import MinimalClient
from .measure import Clock, peak_rss_bytes, percentiles_us, rss_bytes
from .scenario import ScenarioParams, generate_events, iter_events, scenario_config
from .server_proc import StalledServer

MODES = ("batched", "per-event", "baseline")

#: Buffer cap of the memory pass: far above any N, so every push is accepted.
HUGE_BUFFER = 10**9


class _Pusher(Protocol):
    async def push(self, event: dict[str, Any]) -> Any: ...


@dataclass
class _Counts:
    """What a mode reports about its own deliveries (cross-checked with the server)."""

    requests: int = 0
    body_bytes: int = 0
    delivered: int = 0


#: Close timeout of the library modes: long enough to deliver everything whatever the
#: mode (one request per event takes seconds), so every run delivers every event.
CLOSE_TIMEOUT = 600.0


def destination_options(mode: str, params: ScenarioParams) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(config, keyword options)`` of the library Destination for ``mode``.

    The per-event mode is batches of one event, one batch per request
    (``max_batches_per_request=1``): one HTTP request per event, as walkerOS sends.
    """
    options: dict[str, Any] = {"close_timeout": CLOSE_TIMEOUT}
    if mode == "per-event":
        options["max_batches_per_request"] = 1
        return scenario_config(1, params.batch_age), options
    return scenario_config(params.batch_size, params.batch_age), options


@asynccontextmanager
async def open_mode(
    mode: str, params: ScenarioParams, url: str, *, max_buffered: int | None = None
) -> AsyncIterator[tuple[_Pusher, _Counts]]:
    """Open the client of ``mode``; leaving the block delivers everything and closes it.

    ``_Counts`` is filled once the block has been left.
    """
    counts = _Counts()
    if mode == "baseline":
        async with httpx.AsyncClient() as http:

            async def on_response(events: int, response: httpx.Response) -> None:
                counts.requests += 1
                counts.body_bytes += len(response.request.content)
                counts.delivered += events

            batch_size = params.batch_size if max_buffered is None else max_buffered
            if batch_size <= 0:
                raise ValueError("the baseline needs a batch size (it has no byte limit per batch)")
            client = MinimalClient(url, http, batch_size=batch_size, on_response=on_response)
            yield client, counts
            await client.aclose()
        return
    from mparticle_dest._destination.destination import Destination

    config, options = destination_options(mode, params)
    if max_buffered is not None:
        options["max_buffered_events"] = max_buffered
    dest = Destination(config, base_url=url, **options)
    async with dest:
        yield dest, counts
    stats = dest.stats
    counts.requests = stats.requests
    counts.body_bytes = stats.bytes_sent
    counts.delivered = stats.delivered_events


async def throughput(mode: str, params: ScenarioParams, url: str) -> dict[str, Any]:
    """Push the scenario's events and deliver them; time and count everything.

    The clock starts right before the first push and stops once the client has
    delivered everything and closed; the events are generated before it starts.
    """
    events = generate_events(
        params.events, params.users, seed=params.seed, extra_data_fields=params.extra_data_fields
    )
    latencies = [0] * len(events)
    clock = Clock()
    async with open_mode(mode, params, url) as (client, counts):
        clock.start()
        push = client.push
        for i, event in enumerate(events):
            t0 = perf_counter_ns()
            await push(event)
            latencies[i] = perf_counter_ns() - t0
    clock.stop()
    n = len(events)
    return {
        "mode": mode,
        "events": n,
        "delivered": counts.delivered,
        "requests": counts.requests,
        "body_bytes": counts.body_bytes,
        "wall_s": clock.wall_s,
        "cpu_s": clock.cpu_s,
        "events_per_s": n / clock.wall_s,
        "cpu_us_per_event": clock.cpu_s / n * 1e6,
        "requests_per_event": counts.requests / n,
        "bytes_per_event": counts.body_bytes / n,
        "push_us": percentiles_us(latencies),
        "peak_rss": peak_rss_bytes(),
    }


async def buffered_memory(mode: str, params: ScenarioParams) -> dict[str, Any]:
    """Resident bytes per buffered event: push N events to a server that never answers.

    Events are generated lazily so that only what the client keeps stays resident.
    Once measured, the server is released and everything must still be delivered.
    """
    with StalledServer() as server:
        async with open_mode(mode, params, server.url, max_buffered=HUGE_BUFFER) as (
            client,
            counts,
        ):
            # Warm up imports, caches and the connection pool before the baseline reading.
            warm = iter_events(64, params.users, seed=params.seed + 1)
            for event in warm:
                await client.push(event)
            await anyio.sleep(0.05)
            gc.collect()
            before = rss_bytes()
            n = 0
            for event in _events(params):
                await client.push(event)
                n += 1
            # Let the engine seal, pack and hand requests to the stalled server.
            await anyio.sleep(0.2)
            gc.collect()
            after = rss_bytes()
            server.release()
    return {
        "mode": mode,
        "events": n,
        "delivered": counts.delivered - 64,
        "rss_before": before,
        "rss_after": after,
        "bytes_per_buffered_event": (after - before) / n,
        "peak_rss": peak_rss_bytes(),
    }


def _events(params: ScenarioParams) -> Iterator[dict[str, Any]]:
    return iter_events(
        params.events, params.users, seed=params.seed, extra_data_fields=params.extra_data_fields
    )
