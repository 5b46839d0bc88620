"""Helpers of the Redis Streams tests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
from support.engine import FAST_PACING, FAST_RETRY

from mparticle_dest.streams import EventStream, Relay, connect, stream_status
from mparticle_dest.streams import Keys as Keys


def walker(user: str, n: int, name: str = "page view") -> dict[str, Any]:
    return {"name": name, "id": f"{user}-{n:05d}", "user": {"id": user}, "data": {"n": n}}


async def produce(url: str, events: list[dict[str, Any]], stream: str = "s") -> None:
    async with EventStream(url, stream=stream) as producer:
        for event in events:
            await producer.push(event)


async def wait_for(predicate: Callable[[], Any], limit: float = 20.0) -> None:
    """Poll ``predicate`` (it reads Redis or another process: nothing to wait on)."""
    with anyio.fail_after(limit):
        while not await predicate():  # noqa: ASYNC110
            await anyio.sleep(0.02)


@asynccontextmanager
async def running(relay: Relay) -> AsyncIterator[Relay]:
    """Run ``relay`` in the background; stop and drain it when the block ends."""
    async with anyio.create_task_group() as tg:
        tg.start_soon(relay.run)
        try:
            yield relay
        finally:
            relay.stop()


def make_relay(config: dict[str, Any], url: str, base_url: str, **options: Any) -> Relay:
    options.setdefault("retry", FAST_RETRY)
    options.setdefault("pacing", FAST_PACING)
    options.setdefault("consumer", "r1")
    return Relay(config, url, stream="s", base_url=base_url, **options)


async def status(url: str, group: str = "mparticle-relays") -> Any:
    client = connect(url)
    try:
        return await stream_status(client, Keys.of("s"), group)
    finally:
        await client.aclose()


async def redis_call(url: str, *args: Any) -> Any:
    client = connect(url)
    try:
        return await client.execute_command(*args)
    finally:
        await client.aclose()
