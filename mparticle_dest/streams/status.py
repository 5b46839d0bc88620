"""Operations on a relayed stream: its status, and dead letters replayed."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from attrs import frozen

from ._deadletters import replay
from ._redis import Client, Keys, call, entry_ms, text

__all__ = ["ConsumerStatus", "StreamStatus", "replay", "stream_status"]


@frozen(kw_only=True)
class ConsumerStatus:
    """One relay of the group: its name, entries it holds, seconds since it was seen."""

    name: str
    pending: int
    idle: float


@frozen(kw_only=True)
class StreamStatus:
    """What a stream and its relays look like now.

    Attributes:
        length: Undelivered entries (relays delete delivered ones).
        pending: Entries read by a relay and not yet acknowledged.
        consumers: The group's relays.
        lag: Seconds since the oldest undelivered entry was appended (0 when none).
        dead_letters: Entries in the dead-letter stream.
        group_exists: Whether the consumer group exists yet.
    """

    length: int
    pending: int
    consumers: tuple[ConsumerStatus, ...]
    lag: float
    dead_letters: int
    group_exists: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "length": self.length,
            "pending": self.pending,
            "lag_seconds": round(self.lag, 3),
            "dead_letters": self.dead_letters,
            "group_exists": self.group_exists,
            "consumers": [
                {"name": c.name, "pending": c.pending, "idle_seconds": round(c.idle, 3)}
                for c in self.consumers
            ],
        }


def _field(info: Mapping[Any, Any], name: str) -> Any:
    return info.get(name.encode(), info.get(name))


async def stream_status(client: Client, keys: Keys, group: str) -> StreamStatus:
    length = int(await call(client, "XLEN", keys.stream))
    dead = int(await call(client, "XLEN", keys.dead))
    oldest = await call(client, "XRANGE", keys.stream, "-", "+", "COUNT", 1)
    seconds, micros = await call(client, "TIME")
    now_ms = int(seconds) * 1000 + int(micros) / 1000
    lag = max(now_ms - entry_ms(oldest[0][0]), 0) / 1000 if oldest else 0.0
    pending = 0
    consumers: list[ConsumerStatus] = []
    exists = True
    try:
        for info in await call(client, "XINFO", "CONSUMERS", keys.stream, group):
            count = int(_field(info, "pending"))
            pending += count
            consumers.append(
                ConsumerStatus(
                    name=text(_field(info, "name")),
                    pending=count,
                    idle=int(_field(info, "idle")) / 1000,
                )
            )
    except Exception as exc:  # no stream or no group yet
        if "NOGROUP" not in str(exc) and "no such key" not in str(exc):
            raise
        exists = False
    return StreamStatus(
        length=length,
        pending=pending,
        consumers=tuple(consumers),
        lag=lag,
        dead_letters=dead,
        group_exists=exists,
    )
