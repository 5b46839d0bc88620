"""``SyncEventStream``: the producer for threaded code (Django, Flask, scripts).

The same validation and bound as :class:`~mparticle_dest.streams.EventStream`, on
redis-py's sync client (thread-safe: one instance serves every thread of a process).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from typing import Any

import redis

from .._config import DestinationConfig
from .._destination import FullPolicy
from .._exceptions import BufferFullError, DestinationClosedError
from .._payload import EventBuilder
from ._redis import Keys, text
from ._scripts import ADD_BOUNDED
from .producer import Counters, ProducerStats, encode_event, snapshot

__all__ = ["SyncEventStream"]

_MAX_POLL = 0.1


class SyncEventStream:
    """Appends walkerOS events to a Redis stream from threads; see ``EventStream``.

    Use it as a context manager (or call :meth:`close`)::

        with SyncEventStream("redis://localhost:6379/0", stream="mparticle") as stream:
            stream.push({"name": "page view", "user": {"id": "u1"}})

    Args: as :class:`~mparticle_dest.streams.EventStream`.
    """

    def __init__(
        self,
        redis_url: str,
        *,
        stream: str,
        max_len: int | None = None,
        full_policy: FullPolicy = "wait",
        full_timeout: float | None = None,
        config: DestinationConfig | Mapping[str, Any] | None = None,
    ) -> None:
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
        self._client: redis.Redis | None = redis.Redis.from_url(redis_url)
        self._lock = threading.Lock()
        self._counters = Counters()

    def __enter__(self) -> SyncEventStream:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()

    @property
    def stats(self) -> ProducerStats:
        with self._lock:
            return snapshot(self._counters)

    def push(self, event: Mapping[str, Any]) -> str | None:
        """As ``EventStream.push``, blocking the calling thread at most for the bound."""
        client = self._client
        if client is None:
            raise DestinationClosedError("the SyncEventStream is closed")
        with self._lock:
            payload = encode_event(event, self._builder, self._counters)
        if payload is None:
            return None
        entry = self._add(client, payload)
        if entry is None:
            entry = self._at_bound(client, payload)
            if entry is None:
                return None
        with self._lock:
            self._counters.added += 1
        return text(entry)

    def _add(self, client: redis.Redis, payload: bytes) -> bytes | None:
        stream = self.keys.stream
        if self.max_len is None:
            reply = client.execute_command("XADD", stream, "*", "e", payload)  # type: ignore[no-untyped-call]
        else:
            reply = client.execute_command(  # type: ignore[no-untyped-call]
                "EVAL", ADD_BOUNDED.source, 1, stream, self.max_len, payload
            )
        return reply if isinstance(reply, bytes) else None

    def _at_bound(self, client: redis.Redis, payload: bytes) -> bytes | None:
        counters = self._counters
        if self.full_policy == "drop":
            with self._lock:
                counters.dropped += 1
            return None
        if self.full_policy == "raise":
            with self._lock:
                counters.refused += 1
            raise BufferFullError(f"the stream holds {self.max_len} undelivered events (max_len)")
        with self._lock:
            counters.waits += 1
        deadline = None if self.full_timeout is None else time.monotonic() + self.full_timeout
        pause = 0.005
        while deadline is None or time.monotonic() < deadline:
            left = None if deadline is None else max(deadline - time.monotonic(), 0.0)
            time.sleep(pause if left is None else min(pause, left))
            pause = min(pause * 2, _MAX_POLL)
            entry = self._add(client, payload)
            if entry is not None:
                return entry
        with self._lock:
            counters.refused += 1
        raise BufferFullError(
            f"no room in the stream ({self.max_len} events) after waiting {self.full_timeout} s"
        )
