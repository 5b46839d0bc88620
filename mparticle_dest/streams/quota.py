"""``RedisQuota``: one batches-per-second budget shared by every process of a workspace."""

from __future__ import annotations

import anyio

from ._redis import Client, connect
from ._scripts import TAKE_TOKENS

__all__ = ["DEFAULT_QUOTA_KEY", "RedisQuota"]

DEFAULT_QUOTA_KEY = "mparticle_dest:quota"


class RedisQuota:
    """A token bucket in Redis, counted in mParticle batches (one atomic Lua script).

    Pass it as ``quota_gate`` to a :class:`~mparticle_dest.Destination` (relays build
    one from ``batches_per_second``): before each request the engine reserves one
    token per batch and waits until its turn. Every process using the same ``key``
    shares the budget, on top of its own pacing on 429 and on
    ``X-mp-rate-limit-percentage-used``. Set the rate a little under the workspace's
    limit (mParticle meters about 270 batches/s by default).

    Args:
        redis_url: The Redis server; or ``client``, a redis-py asyncio client you own.
        batches_per_second: The shared rate.
        burst: Most batches sendable at once after an idle spell (default: half a
            second's worth, at least one request of 100 batches).
        key: The bucket's key: one per mParticle workspace.
    """

    def __init__(
        self,
        redis_url: str | None = None,
        *,
        batches_per_second: float,
        burst: float | None = None,
        key: str = DEFAULT_QUOTA_KEY,
        client: Client | None = None,
    ) -> None:
        if (redis_url is None) == (client is None):
            raise ValueError("pass exactly one of redis_url and client")
        if not batches_per_second > 0:
            raise ValueError(f"batches_per_second must be > 0, got {batches_per_second!r}")
        self.rate = float(batches_per_second)
        self.burst = float(burst) if burst is not None else max(self.rate / 2, 100.0)
        self.key = key
        self._url = redis_url
        self._client = client
        self._owned: Client | None = None

    def __repr__(self) -> str:
        return f"<RedisQuota key={self.key!r} {self.rate:g} batches/s>"

    async def acquire(self, batches: int) -> None:
        """Reserve ``batches`` tokens and wait until they are due."""
        client = self._client
        if client is None:
            assert self._url is not None
            client = self._client = self._owned = connect(self._url)
        wait_ms = int(await TAKE_TOKENS(client, [self.key], [self.rate, self.burst, batches]))
        if wait_ms > 0:
            await anyio.sleep(wait_ms / 1000)

    async def aclose(self) -> None:
        """Close the connection this quota opened (a caller's client stays open)."""
        owned, self._owned = self._owned, None
        if owned is not None:
            self._client = None
            await owned.aclose()
