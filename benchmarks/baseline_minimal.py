"""The hand-written minimal client the library is compared against.

What a Python engineer would write in an afternoon for this one scenario: the
mParticle dicts built by hand (no mapping language), stdlib :mod:`json`, per-user
batches of ``batch_size`` events, and httpx posts of ``/v2/bulkevents`` requests
packed within the API limits (≤ 100 batches, ≤ 256 KB). No retries, no receipts,
no time-based flush: it is a floor for the cost of the work, not a product.

It produces the same batch bytes as the library for the scenario config (the smoke
test checks this), so the two deliver identical work.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from .scenario import API_KEY, API_SECRET

MAX_BATCHES_PER_REQUEST = 100
MAX_REQUEST_BYTES = 256 * 1024

_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def event_body(event: dict[str, Any]) -> dict[str, Any]:
    """The mParticle custom_event for one scenario `product view` event, built by hand."""
    data = event["data"]
    return {
        "event_type": "custom_event",
        "data": {
            "event_name": event["name"],
            "custom_event_type": "other",
            "custom_attributes": {
                "product_id": data["id"],
                "product_name": data["name"],
                "category": data["category"],
                "price": data["price"],
            },
            "timestamp_unixtime_ms": event["timestamp"],
            "source_message_id": event["id"],
        },
    }


def encode_batch(events: list[dict[str, Any]], identities: dict[str, Any]) -> bytes:
    """One user's batch as compact JSON; ``source_request_id`` is the first event's id."""
    return _dumps(
        {
            "events": events,
            "environment": "production",
            "user_identities": identities,
            "source_request_id": events[0]["data"]["source_message_id"],
        }
    ).encode()


class MinimalClient:
    """Per-user batching with inline (awaited) bulk posts.

    Args:
        base_url: the server's scheme + host; ``/v2/bulkevents`` is appended.
        http_client: the httpx client to post with (owned by the caller).
        batch_size: events per user batch before it is sealed.
        on_response: awaited with ``(events_in_request, response)`` after each post.
    """

    def __init__(
        self,
        base_url: str,
        http_client: httpx.AsyncClient,
        *,
        batch_size: int = 100,
        on_response: Callable[[int, httpx.Response], Awaitable[None]] | None = None,
    ) -> None:
        self._url = base_url.rstrip("/") + "/v2/bulkevents"
        self._client = http_client
        self._batch_size = batch_size
        self._on_response = on_response
        token = base64.b64encode(f"{API_KEY}:{API_SECRET}".encode()).decode()
        self._headers = {"Authorization": f"Basic {token}", "Content-Type": "application/json"}
        # user id -> (identities, events of the open batch)
        self._open: dict[str, tuple[dict[str, Any], list[dict[str, Any]]]] = {}
        self._sealed: list[tuple[bytes, int]] = []  # (batch bytes, event count)
        self._sealed_bytes = 0

    async def push(self, event: dict[str, Any]) -> None:
        """Build the event's body and add it to its user's batch; post when a request fills."""
        user = event["user"]
        slot = self._open.get(user["id"])
        if slot is None:
            slot = ({"customer_id": user["id"], "email": user["email"]}, [])
            self._open[user["id"]] = slot
        slot[1].append(event_body(event))
        if len(slot[1]) >= self._batch_size:
            del self._open[user["id"]]
            await self._seal(slot)

    async def aclose(self) -> None:
        """Seal every open batch and post everything left."""
        open_batches, self._open = self._open, {}
        for slot in open_batches.values():
            await self._seal(slot)
        if self._sealed:
            await self._post()

    async def _seal(self, slot: tuple[dict[str, Any], list[dict[str, Any]]]) -> None:
        body = encode_batch(slot[1], slot[0])
        # +1 for the comma (or a bracket) the batch adds to the request body.
        if self._sealed and (
            len(self._sealed) >= MAX_BATCHES_PER_REQUEST
            or self._sealed_bytes + len(body) + 1 + 1 > MAX_REQUEST_BYTES
        ):
            await self._post()
        self._sealed.append((body, len(slot[1])))
        self._sealed_bytes += len(body) + 1

    async def _post(self) -> None:
        batches, self._sealed, self._sealed_bytes = self._sealed, [], 0
        content = b"[" + b",".join(b for b, _ in batches) + b"]"
        response = await self._client.post(self._url, content=content, headers=self._headers)
        response.raise_for_status()
        if self._on_response is not None:
            await self._on_response(sum(n for _, n in batches), response)
