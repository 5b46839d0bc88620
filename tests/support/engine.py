"""Helpers for the engine's integration tests (``Destination`` against ``FakeMparticle``)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Any

import anyio

from mparticle_dest._delivery.pacing import PacingPolicy
from mparticle_dest._delivery.retry import RetryPolicy
from mparticle_dest.testing import FakeMparticle, RecordedEvent

# Retries scaled down so fault tests finish in seconds, with budget enough to outlast ~30 %
# faults; Retry-After is honoured up to 1 s. Pacing keeps the shared 429 gate but not the
# rate decrease (a test sends a few hundred batches; an AIMD rate would stretch it to minutes).
FAST_RETRY = RetryPolicy(
    max_attempts=30, max_elapsed=30.0, initial_backoff=0.005, max_backoff=0.05, max_retry_after=1.0
)
FAST_PACING = PacingPolicy(throttle_factor=1.0, throttle_pause=0.01, max_pause=1.0)


def make_config(
    server: FakeMparticle | None = None,
    *,
    size: int | None = None,
    age: int | None = 30,
    mapping: dict[str, Any] | None = None,
    secret: str | None = None,
) -> dict[str, Any]:
    """A walkerOS-style config: ``user.id`` → ``customer_id``, short batch age (ms)."""
    settings: dict[str, Any] = dict(server.settings) if server is not None else {"apiKey": "k"}
    if secret is not None:
        settings["apiSecret"] = secret
    settings.setdefault("apiSecret", "s")
    settings["userIdentities"] = {"customer_id": "user.id"}
    batch = {k: v for k, v in {"size": size, "age": age}.items() if v is not None}
    config: dict[str, Any] = {"settings": settings, "batch": batch}
    if mapping is not None:
        config["mapping"] = mapping
    return config


def event(user: str, n: int, name: str = "page view", **extra: Any) -> dict[str, Any]:
    """A walkerOS event with a deterministic id ``<user>-<n>`` (its source_message_id)."""
    return {
        "name": name,
        "id": f"{user}-{n:05d}",
        "timestamp": 1_700_000_000_000 + n,
        "user": {"id": user},
        "data": {"n": n},
        **extra,
    }


def interleaved(users: int, per_user: int) -> list[dict[str, Any]]:
    """``users × per_user`` events, round-robin over the users."""
    return [event(f"u{u:03d}", n) for n in range(per_user) for u in range(users)]


def ids_by_user(events: Iterable[RecordedEvent]) -> dict[str, list[str]]:
    """Received ``source_message_id``s per ``customer_id``, in arrival order."""
    out: dict[str, list[str]] = {}
    for e in events:
        out.setdefault(str(e.user_identities["customer_id"]), []).append(str(e.source_message_id))
    return out


def pushed_by_user(events: Iterable[dict[str, Any]]) -> dict[str, list[str]]:
    """Pushed event ids per user, in push order."""
    out: dict[str, list[str]] = {}
    for e in events:
        out.setdefault(e["user"]["id"], []).append(e["id"])
    return out


def first_occurrences(ids: list[str]) -> list[str]:
    """``ids`` without repeats, keeping the first occurrence of each."""
    seen: set[str] = set()
    return [i for i in ids if not (i in seen or seen.add(i))]


@asynccontextmanager
async def asgi_lifespan(app: Any) -> AsyncIterator[Any]:
    """Run ``app``'s ASGI lifespan as a server does; yield the app to send requests to.

    Startup runs on entry and shutdown on exit (in a task of the current event loop);
    the yielded ASGI app hands every request the lifespan state, as servers do.
    """
    state: dict[str, Any] = {}
    to_app, app_inbox = anyio.create_memory_object_stream[dict[str, Any]](2)
    to_server, server_inbox = anyio.create_memory_object_stream[dict[str, Any]](2)

    async def run() -> None:
        async with app_inbox, to_server:
            scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": state}
            await app(scope, app_inbox.receive, to_server.send)

    async with anyio.create_task_group() as tg, to_app, server_inbox:
        tg.start_soon(run)
        await to_app.send({"type": "lifespan.startup"})
        message = await server_inbox.receive()
        if message["type"] != "lifespan.startup.complete":
            raise RuntimeError(f"lifespan startup failed: {message}")

        async def with_state(scope: dict[str, Any], receive: Any, send: Any) -> None:
            await app({**scope, "state": dict(state)}, receive, send)

        try:
            yield with_state
        finally:
            await to_app.send({"type": "lifespan.shutdown"})
            message = await server_inbox.receive()
            if message["type"] != "lifespan.shutdown.complete":
                raise RuntimeError(f"lifespan shutdown failed: {message}")
