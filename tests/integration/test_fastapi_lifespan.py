"""A Destination owned by a FastAPI lifespan: opened at startup, drained at shutdown."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from support.engine import asgi_lifespan, make_config

from mparticle_dest._destination.destination import Destination
from mparticle_dest.testing import FakeMparticle

pytestmark = pytest.mark.anyio


def build_app(config: dict[str, Any], base_url: str) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Destination]]:
        async with Destination(config, base_url=base_url) as dest:
            yield {"dest": dest}

    app = FastAPI(lifespan=lifespan)

    @app.post("/track")
    async def track(request: Request) -> dict[str, Any]:
        dest: Destination = request.state.dest
        receipt = await dest.push(await request.json())
        return {"accepted": receipt.event_id}

    @app.get("/stats")
    async def stats(request: Request) -> dict[str, int]:
        dest: Destination = request.state.dest
        return {"buffered": dest.stats.buffered, "pushed": dest.stats.pushed}

    return app


async def test_events_pushed_by_handlers_are_delivered_by_shutdown() -> None:
    async with FakeMparticle() as server:
        # A one-minute batch age: only the shutdown drain can deliver them.
        app = build_app(make_config(server, age=60_000), server.url)
        async with asgi_lifespan(app) as asgi:
            transport = httpx.ASGITransport(app=asgi)
            async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
                for n in range(20):
                    payload = {"name": "page view", "id": f"req-{n}", "user": {"id": f"u{n % 4}"}}
                    response = await client.post("/track", json=payload)
                    assert response.status_code == 200
                    assert response.json() == {"accepted": f"req-{n}"}
                stats = await client.get("/stats")
                assert stats.json() == {"buffered": 20, "pushed": 20}
            assert server.event_count == 0
        # the lifespan shutdown left the Destination's context: it drained
        assert server.event_count == 20
        assert {e.source_message_id for e in server.events} == {f"req-{n}" for n in range(20)}


async def test_an_invalid_event_is_the_handlers_error_not_the_apps() -> None:
    async with FakeMparticle() as server:
        app = build_app(make_config(server, age=60_000), server.url)
        async with asgi_lifespan(app) as asgi:
            transport = httpx.ASGITransport(app=asgi, raise_app_exceptions=False)
            async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
                bad = await client.post("/track", json={"name": "nospace"})
                assert bad.status_code == 500
                good = await client.post("/track", json={"name": "page view", "id": "ok-1"})
                assert good.status_code == 200
        assert [e.source_message_id for e in server.events] == ["ok-1"]
