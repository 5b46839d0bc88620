"""Scale-out and durability on Redis Streams: producers append, relays deliver.

Services push events to a Redis stream with :class:`EventStream`; relay processes
(:class:`Relay`, or ``mparticle-dest relay``) read it as one consumer group and deliver
to mParticle, acknowledging each entry only once its batch's outcome is final. Batch
composition is recorded before the first attempt, so a relay taking over a crashed
one's entries resends the identical batches (mParticle de-duplicates them by
``source_request_id``). :class:`RedisQuota` shares one batches-per-second budget across
every process. Runs on asyncio; needs ``pip install 'mparticle-dest[redis]'``.
"""

from ._redis import Keys, connect
from .producer import EventStream, ProducerStats
from .quota import DEFAULT_QUOTA_KEY, RedisQuota
from .relay import DEAD_LETTER_REASONS, Relay, RelayStats
from .status import ConsumerStatus, StreamStatus, replay, stream_status
from .sync_producer import SyncEventStream

__all__ = [
    "DEAD_LETTER_REASONS",
    "DEFAULT_QUOTA_KEY",
    "ConsumerStatus",
    "EventStream",
    "Keys",
    "ProducerStats",
    "RedisQuota",
    "Relay",
    "RelayStats",
    "StreamStatus",
    "SyncEventStream",
    "connect",
    "replay",
    "stream_status",
]
