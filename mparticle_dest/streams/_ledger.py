"""The batch ledger: how a batch was composed, recorded before its first attempt.

A relay that takes over a crashed relay's pending entries looks them up here: an entry
recorded with a batch is delivered by resending that batch's exact bytes under its
``source_request_id`` (mParticle ingests it once however often it arrives); an entry
not recorded was never sent and is delivered like a new one. A record expires after
``ttl`` (about mParticle's de-duplication window: later, a resend would not be
de-duplicated anyway).

Layout: ``<stream>:batch:<source_request_id>`` is a hash (``b`` body, ``n`` event
count, ``e`` comma-separated entry ids) with an expiry; ``<stream>:ledger`` maps each
entry id to its batch's ``source_request_id``. Writing a record and clearing it (with
the acknowledgement of its entries) are transactions.
"""

from __future__ import annotations

from typing import Any

from attrs import frozen

from ._redis import Client, Keys, call, text
from ._scripts import RECORD

__all__ = ["Ledger", "RecordedBatch"]


class LeaseLostError(RuntimeError):
    """Entries of a batch were claimed by another relay before the batch was recorded:
    it must not be sent (the other relay delivers those entries)."""

    def __init__(self, entries: list[str]) -> None:
        super().__init__(
            f"{len(entries)} entries of the batch were claimed by another relay"
            " (this relay stalled past claim_idle): not sent; its entries are reclaimed"
        )
        self.entries = entries


@frozen
class RecordedBatch:
    """A batch's composition; ``entries`` are stream entry ids as Redis sends them."""

    source_request_id: str
    body: bytes
    event_count: int
    entries: tuple[bytes, ...]


class Ledger:
    def __init__(self, client: Client, keys: Keys, *, ttl: float) -> None:
        self._client = client
        self._keys = keys
        self._ttl_ms = max(int(ttl * 1000), 1)

    async def record(self, batches: list[RecordedBatch], *, group: str, consumer: str) -> None:
        """Record ``batches`` if ``consumer`` still owns all their entries.

        Raises:
            LeaseLostError: Another relay claimed some of the entries (nothing recorded).
        """
        keys = self._keys
        args: list[Any] = [group, consumer, self._ttl_ms, keys.batch_prefix]
        for batch in batches:
            args += (
                batch.source_request_id,
                batch.body,
                batch.event_count,
                b",".join(batch.entries),
            )
        lost = await RECORD(self._client, [keys.stream, keys.ledger], args)
        if lost:
            raise LeaseLostError([text(entry) for entry in lost])

    @staticmethod
    def parse(reply: list[Any]) -> RecordedBatch:
        """A record as the claim script returns it: ``[srid, body, count, entries]``."""
        srid, body, count, entries = reply
        return RecordedBatch(
            source_request_id=text(srid),
            body=bytes(body),
            event_count=int(count),
            entries=tuple(bytes(entries).split(b",")),
        )

    async def forget(self, entries: list[bytes]) -> None:
        """Drop index fields whose batch record expired."""
        if entries:
            await call(self._client, "HDEL", self._keys.ledger, *entries)
