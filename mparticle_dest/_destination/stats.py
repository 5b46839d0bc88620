"""Counters of a destination and the frozen snapshot ``dest.stats`` returns (a public type).

The snapshot's invariant: every pushed event is counted exactly once (see :class:`Stats`).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from attrs import define, field, frozen

__all__ = ["Counters", "Stats"]


@frozen(kw_only=True)
class Stats:
    """A snapshot of a destination's counters (``dest.stats``); events unless named otherwise.

    Every event passed to ``push`` is counted exactly once as ``invalid`` (raised),
    under a ``skipped`` reason, or ``mapped``; every mapped event as ``dropped``,
    ``refused`` or ``accepted``; and every accepted event as ``delivered_events``,
    ``failed_events`` or ``buffered`` (still on its way) — or, in a dry run
    (``send=False``), as ``skipped["dry_run"]`` once its batch is settled. So at any
    time::

        pushed == invalid + skipped_total + dropped + refused
                  + delivered_events + failed_events + buffered

    Attributes:
        pushed: Calls to ``push``.
        mapped: Events mapped and encoded into mParticle events.
        accepted: Events taken into the buffer (receipts pending at first).
        invalid: Events rejected by ``push`` with an ``InvalidEventError``.
        skipped: Events skipped, by reason: by the mapping (``consent``, ``ignore``,
            ``silent``) or by a dry run (``dry_run``: batched, never sent).
        dropped: Events dropped because the buffer was full (``"drop"`` policy).
        refused: Events refused by a ``push`` that raised ``BufferFullError`` or
            ``DestinationClosedError`` (not accepted; the caller still holds them).
        batches: Batches sealed.
        requests: HTTP attempts made (retries and split halves included).
        retries: HTTP attempts that repeated a failed attempt.
        bytes_sent: Request body bytes of all HTTP attempts.
        throttled: 429 responses received.
        delivered_events: Events in batches mParticle accepted.
        delivered_batches: Batches mParticle accepted.
        failed_events: Events of failed batches (each passed to ``on_error``).
        failed_batches: Batches that failed for good (dead-lettered).
        undelivered_at_close: Failed events that were still buffered when the
            close timeout ran out (a subset of ``failed_events``).
        duplicates_suspected: Events delivered after an attempt whose result was
            unknown (timeout, dropped connection, 5xx): mParticle may hold them twice
            (it de-duplicates batches on ``source_request_id``).
        buffered: Events accepted and not yet final (open, queued or in flight).
        in_flight_requests: Requests being sent now.
        send_rate: The pacer's current rate in batches per second (``None`` while
            unpaced: no sign of mParticle's quota yet, and none declared).
        quota_limited: Whether mParticle's batch quota, not the network, held a
            ready request back within the last second. With a full buffer, this
            means each user's batch should carry more events: see the buffer sizing.
    """

    pushed: int = 0
    mapped: int = 0
    accepted: int = 0
    invalid: int = 0
    skipped: Mapping[str, int] = field(factory=dict, hash=False)
    dropped: int = 0
    refused: int = 0
    batches: int = 0
    requests: int = 0
    retries: int = 0
    bytes_sent: int = 0
    throttled: int = 0
    delivered_events: int = 0
    delivered_batches: int = 0
    failed_events: int = 0
    failed_batches: int = 0
    undelivered_at_close: int = 0
    duplicates_suspected: int = 0
    buffered: int = 0
    in_flight_requests: int = 0
    send_rate: float | None = None
    quota_limited: bool = False

    @property
    def skipped_total(self) -> int:
        """Events skipped for any reason."""
        return sum(self.skipped.values())


@define(slots=True)
class Counters:
    """The destination's own mutable counters (HTTP counters live on the deliverer).

    ``failed_by_reason`` splits ``failed_events`` by the reason of each failed batch
    (``FailedBatch.reason``); telemetry reports it.
    """

    pushed: int = 0
    mapped: int = 0
    invalid: int = 0
    skipped: dict[str, int] = field(factory=dict)
    dropped: int = 0
    refused: int = 0
    batches: int = 0
    delivered_events: int = 0
    delivered_batches: int = 0
    failed_events: int = 0
    failed_batches: int = 0
    undelivered_at_close: int = 0
    duplicates_suspected: int = 0
    failed_by_reason: dict[str, int] = field(factory=dict)

    def skip(self, reason: str) -> None:
        """Count one event skipped for ``reason``."""
        self.skipped[reason] = self.skipped.get(reason, 0) + 1

    def snapshot(
        self,
        *,
        buffered: int,
        in_flight_requests: int,
        requests: int,
        retries: int,
        bytes_sent: int,
        throttled: int,
        send_rate: float | None = None,
        quota_limited: bool = False,
    ) -> Stats:
        """A frozen :class:`Stats` with the live figures passed in."""
        return Stats(
            pushed=self.pushed,
            mapped=self.mapped,
            accepted=self.mapped - self.dropped - self.refused,
            invalid=self.invalid,
            skipped=MappingProxyType(dict(self.skipped)),
            dropped=self.dropped,
            refused=self.refused,
            batches=self.batches,
            requests=requests,
            retries=retries,
            bytes_sent=bytes_sent,
            throttled=throttled,
            delivered_events=self.delivered_events,
            delivered_batches=self.delivered_batches,
            failed_events=self.failed_events,
            failed_batches=self.failed_batches,
            undelivered_at_close=self.undelivered_at_close,
            duplicates_suspected=self.duplicates_suspected,
            buffered=buffered,
            in_flight_requests=in_flight_requests,
            send_rate=send_rate,
            quota_limited=quota_limited,
        )
