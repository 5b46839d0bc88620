"""Packs sealed batches into bulk requests (SPEC §6): ≤ 100 batches and ≤ 256 KB each.

Pure and synchronous. The packer also keeps each user's order: a key with a
request in flight is *muted* (aiokafka style) and its next batch waits until
that request has finished, retries included. A request therefore never carries
two batches of one key, and batches of one key leave in the order they were sealed.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Hashable, Iterable

from .._mparticle import MAX_BATCHES_PER_REQUEST, MAX_REQUEST_BYTES
from .accumulator import SealedBatch

__all__ = ["Packer"]

#: Batches in a row that may be passed over for not fitting a request's last bytes.
_MAX_SKIPS = 32


class Packer:
    """The queue of sealed batches waiting for a request.

    Args:
        max_batches: Most batches in one request (mParticle: 100).
        max_bytes: Most bytes in one ``/v2/bulkevents`` body (mParticle: 256 KB).
    """

    def __init__(
        self, *, max_batches: int = MAX_BATCHES_PER_REQUEST, max_bytes: int = MAX_REQUEST_BYTES
    ) -> None:
        self.max_batches = max_batches
        self.max_bytes = max_bytes
        # Keys with queued batches and no request in flight, in the order they became ready.
        self._ready: OrderedDict[Hashable, deque[SealedBatch]] = OrderedDict()
        # Keys with a request in flight -> their batches queued behind it.
        self._muted: dict[Hashable, deque[SealedBatch]] = {}
        self._batches = 0
        self._events = 0

    @property
    def queued_batches(self) -> int:
        """Batches waiting for a request (in-flight ones excluded)."""
        return self._batches

    @property
    def queued_events(self) -> int:
        """Events in the queued batches."""
        return self._events

    def has_ready(self) -> bool:
        """Whether :meth:`next_request` would return batches now."""
        return bool(self._ready)

    def add(self, batch: SealedBatch) -> None:
        """Queue a sealed batch behind the earlier batches of its key."""
        key = batch.key
        queue = self._muted.get(key)
        if queue is None:
            queue = self._ready.get(key)
            if queue is None:
                queue = self._ready[key] = deque()
        queue.append(batch)
        self._batches += 1
        self._events += batch.event_count

    def next_request(self) -> list[SealedBatch]:
        """Take the batches for one request and mute their keys.

        Takes the oldest queued batch of each ready key, in the order the keys became
        ready, while the request stays within ``max_batches`` and ``max_bytes``; a
        batch that does not fit the bytes left is skipped for this request and keeps
        its place. After :data:`_MAX_SKIPS` such batches in a row the request goes as
        it is (filling its last bytes is not worth a scan of every ready key). Returns
        ``[]`` when no key is ready.
        """
        taken: list[tuple[Hashable, deque[SealedBatch]]] = []
        ready = self._ready
        # bulk_size() inlined: "[" + batches joined by "," + "]".
        room = self.max_bytes - 2
        total = 0
        skips = 0
        # Only the keys looked at are visited (no copy of every ready key per request).
        for key, queue in ready.items():
            size = len(queue[0].body)
            # The first batch always goes: a batch (≤ 128 KB) fits an empty request.
            if taken and total + size + len(taken) > room:
                skips += 1
                if skips >= _MAX_SKIPS:
                    break
                continue
            skips = 0
            taken.append((key, queue))
            total += size
            if len(taken) >= self.max_batches:
                break
        muted = self._muted
        batches = []
        for key, queue in taken:
            del ready[key]
            muted[key] = queue
            batches.append(queue.popleft())
        self._batches -= len(batches)
        self._events -= sum(b.event_count for b in batches)
        return batches

    def release(self, batches: Iterable[SealedBatch]) -> None:
        """Unmute the keys of a finished request; their next batches become ready."""
        for batch in batches:
            queue = self._muted.pop(batch.key, None)
            if queue:
                self._ready[batch.key] = queue

    def drain(self) -> list[SealedBatch]:
        """Remove and return every queued batch (ready and muted), oldest seal first."""
        out = [b for queue in self._ready.values() for b in queue]
        out.extend(b for queue in self._muted.values() for b in queue)
        for queue in self._muted.values():
            queue.clear()
        self._ready.clear()
        self._batches = 0
        self._events = 0
        out.sort(key=lambda b: b.seq)
        return out
