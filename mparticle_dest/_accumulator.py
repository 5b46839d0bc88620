"""Per-user batch accumulator (SPEC §6): pure, synchronous, with an injected clock.

:class:`SealedBatch` is the unit the engine hands to the deliverer: the batch's
complete JSON, assembled once from the stored event bytes, so a retry resends
identical bytes (and the same ``source_request_id``).
"""

from __future__ import annotations

from collections.abc import Hashable

from ._receipt import BatchOutcome

__all__ = ["SealedBatch"]


class SealedBatch:
    """One closed mParticle batch, ready to be packed into a request.

    Attributes:
        key: The batch key (one user ⇒ one key); at most one request in flight
            carries a given key, which keeps each user's order.
        body: The complete batch JSON (``_wire.encode_batch``); never changes.
        event_count: Number of events in ``body``.
        source_request_id: The batch's ``source_request_id`` (already inside ``body``).
        outcome: The outcome shared by the batch's events; the engine resolves it.
        seq: Sealing order (monotonic per accumulator); lower seals first.
        attempts: HTTP attempts that carried this batch. The deliverer increments it
            once per attempt.
        ambiguous_attempts: Attempts whose result is unknown (timeout or dropped
            connection after the request may have reached the server). The
            deliverer increments it; when such a batch is sent again, its events
            may reach mParticle twice (counted as suspected duplicates).
    """

    __slots__ = (
        "ambiguous_attempts",
        "attempts",
        "body",
        "event_count",
        "key",
        "outcome",
        "seq",
        "source_request_id",
    )

    def __init__(
        self,
        *,
        key: Hashable,
        body: bytes,
        event_count: int,
        source_request_id: str,
        seq: int,
        outcome: BatchOutcome | None = None,
    ) -> None:
        self.key = key
        self.body = body
        self.event_count = event_count
        self.source_request_id = source_request_id
        self.seq = seq
        self.outcome = outcome if outcome is not None else BatchOutcome()
        self.attempts = 0
        self.ambiguous_attempts = 0

    @property
    def size(self) -> int:
        """Length of ``body`` in bytes."""
        return len(self.body)

    def __repr__(self) -> str:
        return (
            f"<SealedBatch seq={self.seq} events={self.event_count} bytes={len(self.body)}"
            f" source_request_id={self.source_request_id!r}>"
        )
