"""The Redis side shared by producer, relay and operations: client, key names, scripts.

Every command goes through ``execute_command`` (typed ``Any`` in redis-py's asyncio
client, whose command methods are typed for its sync and async clients at once);
replies are read where they are used.
"""

from __future__ import annotations

import hashlib
from typing import Any

from attrs import frozen

try:
    import redis.asyncio as aioredis
    from redis.asyncio.client import Pipeline
    from redis.exceptions import NoScriptError, ResponseError
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "mparticle_dest.streams needs redis-py: pip install 'mparticle-dest[redis]'"
    ) from exc

__all__ = [
    "Client",
    "Keys",
    "Pipeline",
    "ResponseError",
    "Script",
    "call",
    "connect",
    "ensure_group",
    "entry_ms",
    "text",
]

Client = aioredis.Redis


#: Connections one client opens at most; more concurrent commands wait for a free one.
MAX_CONNECTIONS = 16


def connect(url: str, *, max_connections: int = MAX_CONNECTIONS) -> Client:
    """A client for ``url`` (``redis://``, ``rediss://``, ``unix://``); replies as bytes.

    Its pool blocks (rather than fails) when all its connections are busy: a relay
    settles many batches at once after an outage.
    """
    pool = aioredis.BlockingConnectionPool.from_url(
        url, max_connections=max_connections, timeout=None
    )
    return aioredis.Redis.from_pool(pool)


async def call(client: Client, *args: Any) -> Any:
    """Run one command and return its reply (parsed by redis-py as for the named command)."""
    return await client.execute_command(*args)  # type: ignore[no-untyped-call]


def text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def entry_ms(entry_id: bytes | str) -> int:
    """The creation time (ms since the epoch) written in a stream entry id."""
    return int(text(entry_id).partition("-")[0])


@frozen
class Keys:
    """The keys of one stream: the entries, its dead letters and its batch ledger.

    Attributes:
        stream: The stream of events (one entry per event, field ``e``).
        dead: The dead-letter stream (one entry per batch or event that failed for good).
        ledger: Hash: entry id → ``source_request_id`` of the batch recorded with it.
    """

    stream: str
    dead: str
    ledger: str

    @classmethod
    def of(cls, stream: str, dead: str | None = None) -> Keys:
        return cls(stream, dead or f"{stream}:dead", f"{stream}:ledger")

    @property
    def batch_prefix(self) -> str:
        return f"{self.stream}:batch:"

    def batch(self, source_request_id: str) -> str:
        """The ledger record of one batch: body, event count, entry ids (expires)."""
        return self.batch_prefix + source_request_id


async def ensure_group(client: Client, keys: Keys, group: str) -> None:
    """Create the consumer group (and the stream) if missing; an existing one is kept."""
    try:
        await call(client, "XGROUP", "CREATE", keys.stream, group, "0", "MKSTREAM")
    except ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


class Script:
    """A Lua script run with ``EVALSHA`` (loaded on first use, again after a flush)."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest()

    async def __call__(self, client: Client, keys: list[str], args: list[Any]) -> Any:
        try:
            return await call(client, "EVALSHA", self.sha, len(keys), *keys, *args)
        except NoScriptError:
            return await call(client, "EVAL", self.source, len(keys), *keys, *args)
