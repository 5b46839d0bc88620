"""``EventStream``: services append events to a Redis stream instead of delivering them.

``push`` validates and completes the event exactly as ``Destination.push`` does (the
same :class:`~mparticle_dest.InvalidEventError`; ``id`` and ``timestamp`` filled once,
here, so every later delivery of the entry carries the same ones), then appends it
with one round trip. Delivery is the relays' job (:mod:`mparticle_dest.streams.relay`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from types import TracebackType
from typing import Any

import anyio
import orjson
from attrs import define, frozen

from .._config import DestinationConfig
from .._destination import FullPolicy
from .._event import prepare_event
from .._exceptions import BufferFullError, DestinationClosedError, InvalidEventError
from .._payload import EventBuilder, Skipped
from ._redis import Client, Keys, call, connect, text
from ._scripts import ADD_BOUNDED

__all__ = ["EventStream", "ProducerStats"]

logger = logging.getLogger("mparticle_dest.streams")

# While the stream is at its bound under "wait": poll its length, backing off to this.
_MAX_POLL = 0.1


@frozen(kw_only=True)
class ProducerStats:
    """Counters of one :class:`EventStream`.

    Attributes:
        pushed: Calls to ``push``.
        added: Events appended to the stream.
        invalid: Events refused by validation (``InvalidEventError``).
        skipped: Events the mapping skips (consent, ignore), not appended; only with
            ``config``.
        dropped: Events dropped at the length bound (``"drop"``).
        refused: Events refused at the bound (``"raise"``, or ``full_timeout`` passed).
        waits: Pushes that waited for room at the bound (``"wait"``).
    """

    pushed: int
    added: int
    invalid: int
    skipped: int
    dropped: int
    refused: int
    waits: int


@define
class Counters:
    pushed: int = 0
    added: int = 0
    invalid: int = 0
    skipped: int = 0
    dropped: int = 0
    refused: int = 0
    waits: int = 0


def encode_event(
    event: Mapping[str, Any], builder: EventBuilder | None, counters: Counters
) -> bytes | None:
    """The entry payload: the event validated and completed as ``Destination.push`` does
    (``None``: the mapping skips it). Counts the push and its refusal or skip."""
    counters.pushed += 1
    try:
        prepared = prepare_event(event)
        if builder is not None and isinstance(builder.build(prepared), Skipped):
            counters.skipped += 1
            return None
        return orjson.dumps(prepared)
    except InvalidEventError:
        counters.invalid += 1
        raise
    except TypeError as exc:  # a str subclass key orjson refuses, say
        counters.invalid += 1
        raise InvalidEventError(f"event: not serializable ({exc})", field=None) from None


def snapshot(c: Counters) -> ProducerStats:
    return ProducerStats(
        pushed=c.pushed,
        added=c.added,
        invalid=c.invalid,
        skipped=c.skipped,
        dropped=c.dropped,
        refused=c.refused,
        waits=c.waits,
    )


class EventStream:
    """Appends walkerOS events to a Redis stream, for relays to deliver to mParticle.

    Use it as an async context manager (asyncio; redis-py's asyncio client)::

        async with EventStream("redis://localhost:6379/0", stream="mparticle") as stream:
            await stream.push({"name": "page view", "user": {"id": "u1"}})

    Args:
        redis_url: The Redis server (``redis://``, ``rediss://``, ``unix://``).
        stream: The stream key the relays read.
        max_len: Most undelivered entries the stream may hold (``None``: no bound).
            Relays delete delivered entries, so the length counts undelivered ones;
            at the bound nothing is trimmed, the full policy applies to the new event.
        full_policy: At the bound, ``"wait"`` for room (default), ``"drop"`` the event
            (counted) or ``"raise"`` :class:`~mparticle_dest.BufferFullError`.
        full_timeout: With ``"wait"``, raise ``BufferFullError`` after this many seconds.
        config: Optional destination config: events the mapping would reject raise
            at ``push`` and events it skips (consent, ignore) are not appended.
        client: A redis-py asyncio client you own (not closed here) instead of ``redis_url``.
    """

    def __init__(
        self,
        redis_url: str | None = None,
        *,
        stream: str,
        max_len: int | None = None,
        full_policy: FullPolicy = "wait",
        full_timeout: float | None = None,
        config: DestinationConfig | Mapping[str, Any] | None = None,
        client: Client | None = None,
    ) -> None:
        if (redis_url is None) == (client is None):
            raise ValueError("pass exactly one of redis_url and client")
        if max_len is not None and max_len < 1:
            raise ValueError(f"max_len must be >= 1, got {max_len!r}")
        if full_policy not in ("wait", "drop", "raise"):
            raise ValueError(f"full_policy must be wait, drop or raise, got {full_policy!r}")
        self.keys = Keys.of(stream)
        self.max_len = max_len
        self.full_policy = full_policy
        self.full_timeout = full_timeout
        self._builder = (
            EventBuilder.from_config(DestinationConfig.coerce(config))
            if config is not None
            else None
        )
        self._url = redis_url
        self._client = client
        self._owned: Client | None = None
        self._open = False
        self._counters = Counters()

    def __repr__(self) -> str:
        return f"<EventStream stream={self.keys.stream!r} {'open' if self._open else 'closed'}>"

    async def __aenter__(self) -> EventStream:
        if self._client is None:
            assert self._url is not None
            self._client = self._owned = connect(self._url)
        self._open = True
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection this stream opened (a caller's client stays open)."""
        self._open = False
        owned, self._owned = self._owned, None
        if owned is not None:
            self._client = None
            await owned.aclose()

    @property
    def stats(self) -> ProducerStats:
        return snapshot(self._counters)

    async def push(self, event: Mapping[str, Any]) -> str | None:
        """Validate, complete and append one event.

        Returns:
            The stream entry id, or ``None`` when the event was skipped by the mapping
            or dropped at the bound.

        Raises:
            InvalidEventError: As ``Destination.push``.
            BufferFullError: At the bound with ``"raise"``, or after ``full_timeout``.
            DestinationClosedError: The stream is not open.
            redis.exceptions.RedisError: Redis could not be reached.
        """
        client = self._client
        if not self._open or client is None:
            raise DestinationClosedError("the EventStream is not open: use `async with`")
        counters = self._counters
        payload = encode_event(event, self._builder, counters)
        if payload is None:
            return None
        stream = self.keys.stream
        if self.max_len is None:
            entry = await call(client, "XADD", stream, "*", "e", payload)
            counters.added += 1
            return text(entry)
        entry = await ADD_BOUNDED(client, [stream], [self.max_len, payload])
        if entry is None:
            entry = await self._at_bound(client, payload)
            if entry is None:
                return None
        counters.added += 1
        return text(entry)

    async def _at_bound(self, client: Client, payload: bytes) -> bytes | None:
        counters = self._counters
        if self.full_policy == "drop":
            counters.dropped += 1
            return None
        if self.full_policy == "raise":
            counters.refused += 1
            raise BufferFullError(f"the stream holds {self.max_len} undelivered events (max_len)")
        counters.waits += 1
        deadline = None if self.full_timeout is None else time.monotonic() + self.full_timeout
        pause = 0.005
        while True:
            if deadline is not None and time.monotonic() >= deadline:
                counters.refused += 1
                raise BufferFullError(
                    f"no room in the stream ({self.max_len} events) after waiting"
                    f" {self.full_timeout} s"
                )
            left = None if deadline is None else max(deadline - time.monotonic(), 0.0)
            await anyio.sleep(pause if left is None else min(pause, left))
            pause = min(pause * 2, _MAX_POLL)
            entry: bytes | None = await ADD_BOUNDED(
                client, [self.keys.stream], [self.max_len, payload]
            )
            if entry is not None:
                return entry
