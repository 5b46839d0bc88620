"""``Relay``: reads a Redis stream in a consumer group and delivers it to mParticle.

Runs on asyncio (redis-py's asyncio client); a trio program runs relays as separate
processes (``mparticle-dest relay``). Each entry is acknowledged only when its
receipt is final::

    XREADGROUP ─ Destination.push ─ batch sealed ─ before_send: ledger record ─ POST
       delivered ────────── XACK + XDEL (+ ledger cleared), one transaction
       rejected / 401 / 403 ─ XADD dead letter + XACK + XDEL, one transaction
       skipped (consent...) ─ XACK + XDEL at once
       retries exhausted, close timeout, Redis errors ─ left pending: reclaimed later

Reclaim: at start and every ``claim_idle / 3`` seconds, ``XAUTOCLAIM`` takes entries
idle for ``claim_idle`` (a crashed relay's, or this relay's own given-up ones). One
recorded with a batch in the ledger is delivered by resending that batch byte for byte
(same ``source_request_id``: mParticle ingests it once); one not recorded was never
sent and is pushed like a new entry. A live relay renews the lease on the entries it
holds at the same pace, so nobody claims entries it is still delivering.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

import anyio
import orjson
from attrs import define, frozen
from redis.exceptions import RedisError

from .._batching import SealedBatch
from .._config import DestinationConfig
from .._destination import Destination, QuotaGate, Stats, take_decoded_events
from .._event import DECODED_WALK_FREE_BYTES
from .._exceptions import InvalidEventError
from .._receipt import Outcome, Receipt, outcome_of
from . import _deadletters
from ._ledger import LeaseLostError, Ledger, RecordedBatch
from ._redis import Client, Keys, call, connect, ensure_group, text
from ._scripts import CLAIM, KEEP_LEASES
from .quota import DEFAULT_QUOTA_KEY, RedisQuota

__all__ = ["Relay", "RelayStats"]

logger = logging.getLogger("mparticle_dest.streams")

#: Failure reasons that no retry can fix: the batch goes to the dead-letter stream.
DEAD_LETTER_REASONS = frozenset({"rejected", "authentication"})
_LEASE_CHUNK = 500


@frozen(kw_only=True)
class RelayStats:
    """Counters of one relay (entries are stream entries, one event each).

    Attributes:
        read: Entries read as new (``XREADGROUP``).
        reclaimed: Entries claimed from idle consumers (``XAUTOCLAIM``).
        resent_batches: Recorded batches resent byte for byte after a reclaim.
        delivered: Entries acknowledged after mParticle accepted their batch.
        skipped: Entries acknowledged because the mapping skips their event.
        dead_lettered: Entries moved to the dead-letter stream.
        left_pending: Entries whose batch was given up for now (retries exhausted,
            close timeout, a Redis error): pending, to be reclaimed.
        leases_lost: Entries another relay claimed while this one held them (it
            stalled past ``claim_idle``). A batch holding such an entry is not sent
            (fenced when it is recorded): the other relay delivers the entry, and the
            batch's other entries are reclaimed.
        destination: The delivering destination's stats.
    """

    read: int
    reclaimed: int
    resent_batches: int
    delivered: int
    skipped: int
    dead_lettered: int
    left_pending: int
    leases_lost: int
    destination: Stats | None


@define
class _Counters:
    read: int = 0
    reclaimed: int = 0
    resent_batches: int = 0
    delivered: int = 0
    skipped: int = 0
    dead_lettered: int = 0
    left_pending: int = 0
    leases_lost: int = 0


class _Tracked:
    """A batch on its way: a receipt of it, its entries (ids as Redis sends them), its
    ledger record once written, and whether a finisher watches it (from its first
    attempt on)."""

    __slots__ = ("body", "entries", "receipt", "srid", "watched")

    def __init__(
        self, receipt: Receipt, entries: list[bytes], srid: str | None = None, body: bytes = b""
    ) -> None:
        self.receipt = receipt
        self.entries = entries
        self.srid = srid
        self.body = body  # the engine's own bytes object: no copy
        self.watched = srid is not None  # a resent batch: watched from its resend on


def _batch_of(receipt: Receipt) -> int:
    """The batch an event's receipt belongs to: the identity of the outcome object its
    batch's events share (kept alive by the ``_Tracked`` holding the receipt)."""
    return id(outcome_of(receipt))


def _raw_reply(response: Any, **_options: Any) -> Any:
    return response


def _event_field(fields: Any) -> bytes | None:
    """The ``e`` field of an entry: from a flat list of field, value (as Redis sends it)
    or from a dict (a caller's client parsing ``XREADGROUP`` replies)."""
    if isinstance(fields, dict):
        return fields.get(b"e")
    pairs = fields or []
    for i in range(0, len(pairs) - 1, 2):
        if pairs[i] == b"e":
            return bytes(pairs[i + 1])
    return None


def default_consumer() -> str:
    """``<host>-<pid>``: unique per running relay."""
    return f"{socket.gethostname()}-{os.getpid()}"


class Relay:
    """Delivers a Redis stream's events to mParticle as one consumer of a group.

    Args:
        config: The destination config (dict or :class:`~mparticle_dest.DestinationConfig`).
        redis_url: The Redis server; or ``client``, a redis-py asyncio client you own.
        stream: The stream the producers append to.
        group: The consumer group all relays of the stream share (created if missing).
        consumer: This relay's name in the group (default ``<host>-<pid>``).
        dead_letter_stream: Where failed batches go (default ``<stream>:dead``).
        claim_idle: Seconds an entry must be idle before another relay may claim it;
            longer than any stall of a live relay (leases are renewed every third of it).
        read_count: Entries per ``XREADGROUP``.
        block: Seconds one ``XREADGROUP`` waits for new entries.
        ledger_ttl: Seconds a batch record is kept (mParticle's de-duplication window).
        batches_per_second: A rate shared by every relay through a Redis token bucket
            (:class:`RedisQuota` at ``quota_key``); ``None``: per-process pacing only.
        quota_key: The bucket's key: one per mParticle workspace.
        **destination_options: Keyword options of :class:`~mparticle_dest.Destination`
            (``base_url``, ``max_buffered_events``, ``close_timeout``, ``retry``...);
            the full policy is always ``"wait"`` (a full buffer stops the reading).
    """

    def __init__(
        self,
        config: DestinationConfig | Mapping[str, Any],
        redis_url: str | None = None,
        *,
        stream: str,
        group: str = "mparticle-relays",
        consumer: str | None = None,
        dead_letter_stream: str | None = None,
        claim_idle: float = 60.0,
        read_count: int = 200,
        block: float = 0.5,
        ledger_ttl: float = 24 * 3600.0,
        batches_per_second: float | None = None,
        quota_key: str = DEFAULT_QUOTA_KEY,
        client: Client | None = None,
        **destination_options: Any,
    ) -> None:
        if (redis_url is None) == (client is None):
            raise ValueError("pass exactly one of redis_url and client")
        if not claim_idle > 0:
            raise ValueError(f"claim_idle must be > 0, got {claim_idle!r}")
        for name in ("full_policy", "before_send", "quota_gate"):
            if name in destination_options:
                raise TypeError(f"the relay sets {name} itself")
        self.config = DestinationConfig.coerce(config)
        self.keys = Keys.of(stream, dead_letter_stream)
        self.group = group
        self.consumer = consumer or default_consumer()
        self.claim_idle = float(claim_idle)
        self.read_count = read_count
        self.block_ms = max(int(block * 1000), 1)
        self.ledger_ttl = ledger_ttl
        self.batches_per_second = batches_per_second
        self.quota_key = quota_key
        self._destination_options = destination_options
        self._url = redis_url
        self._client = client
        self._counters = _Counters()
        self._dest: Destination | None = None
        self._tracked: dict[int, _Tracked] = {}  # by _batch_of()
        self._by_srid: dict[str, _Tracked] = {}
        # Entries this relay holds (read or claimed, not settled): their leases are renewed.
        # Entry ids stay the bytes Redis sent: no decoding per entry on the hot path.
        self._held: set[bytes] = set()
        self._acks: list[_Tracked] = []  # delivered, to acknowledge in the next flush
        self._ack_scheduled = False
        self._stopping = False
        self._work: anyio.CancelScope | None = None
        self._finals: Any = None  # the task group of the per-batch finishers

    def __repr__(self) -> str:
        return (
            f"<Relay stream={self.keys.stream!r} group={self.group!r}"
            f" consumer={self.consumer!r} held={len(self._held)}>"
        )

    @property
    def stats(self) -> RelayStats:
        c = self._counters
        return RelayStats(
            read=c.read,
            reclaimed=c.reclaimed,
            resent_batches=c.resent_batches,
            delivered=c.delivered,
            skipped=c.skipped,
            dead_lettered=c.dead_lettered,
            left_pending=c.left_pending,
            leases_lost=c.leases_lost,
            destination=self._dest.stats if self._dest is not None else None,
        )

    def stop(self) -> None:
        """Stop reading and drain (within ``close_timeout``); safe from a signal handler
        installed with ``loop.add_signal_handler``."""
        self._stopping = True
        if self._work is not None:
            self._work.cancel()

    async def run(self) -> RelayStats:
        """Relay until :meth:`stop` (or cancellation), then drain and return the stats.

        What is not final when ``close_timeout`` runs out stays pending for another relay.
        """
        client = self._client
        if client is None:
            client = connect(self._url or "")
            # Entries as Redis sends them (flat field lists), not one dict per entry.
            client.set_response_callback("XREADGROUP", _raw_reply)
        quota: QuotaGate | None = None
        try:
            await ensure_group(client, self.keys, self.group)
            if self.batches_per_second is not None:
                quota = RedisQuota(
                    client=client, batches_per_second=self.batches_per_second, key=self.quota_key
                )
            ledger = Ledger(client, self.keys, ttl=self.ledger_ttl)
            dest = Destination(
                self.config,
                full_policy="wait",
                quota_gate=quota,
                before_send=lambda batches: self._record(client, ledger, batches),
                **self._destination_options,
            )
            # Only the relay pushes to it, and only what orjson.loads just returned.
            take_decoded_events(dest)
            self._dest = dest
            async with dest, anyio.create_task_group() as finals:
                self._finals = finals
                with anyio.CancelScope() as work:
                    self._work = work
                    if self._stopping:
                        work.cancel()
                    async with anyio.create_task_group() as tg:
                        tg.start_soon(self._keep_leases, client)
                        tg.start_soon(self._reclaim, client, ledger, dest)
                        await self._consume(client, dest)
                await dest.aclose()
            self._count_unsent()
            return self.stats
        finally:
            self._work = None
            if self._client is None:
                with anyio.CancelScope(shield=True):
                    await client.aclose()

    # -- reading -----------------------------------------------------------------------

    async def _consume(self, client: Client, dest: Destination) -> None:
        while not self._stopping:
            try:
                await self._consume_once(client, dest)
            except RedisError:  # noqa: PERF203 - once per read, and Redis may come back
                logger.exception("mparticle_dest relay: reading the stream failed; retrying in 1 s")
                await anyio.sleep(1.0)

    async def _consume_once(self, client: Client, dest: Destination) -> None:
        keys = self.keys
        reply = await call(
            client,
            "XREADGROUP",
            "GROUP",
            self.group,
            self.consumer,
            "COUNT",
            self.read_count,
            "BLOCK",
            self.block_ms,
            "STREAMS",
            keys.stream,
            ">",
        )
        if not reply:
            return
        # RESP3 answers a map {stream: entries}, RESP2 a list [[stream, entries]].
        entries = next(iter(reply.values())) if isinstance(reply, dict) else reply[0][1]
        self._counters.read += len(entries)
        self._held.update([entry[0] for entry in entries])
        await self._push_all(client, dest, entries)

    async def _push_all(
        self, client: Client, dest: Destination, entries: Sequence[Sequence[Any]]
    ) -> None:
        """Hand each entry's event to the destination and track it with its batch.

        Every event read runs through this loop: it makes no call per entry beyond
        decoding and pushing (profiled: per-entry helpers cost as much as the ledger).
        The destination checks a decoded event without walking it for values JSON
        cannot carry (decoding rules them out); a larger entry than that covers is
        pushed as a read-only view, which it validates in full, as any mapping.
        """
        push = dest.push
        loads = orjson.loads
        tracked_by = self._tracked
        skipped: list[bytes] = []
        for entry, fields in entries:
            # As the producer writes it: one field, ``e``, the event's JSON.
            if fields.__class__ is list and len(fields) == 2 and fields[0] == b"e":
                payload = fields[1]
            else:
                payload = _event_field(fields)
            try:
                if payload is None:
                    raise InvalidEventError("entry: no event (field 'e')", field=None)
                event = loads(payload)
                if len(payload) >= DECODED_WALK_FREE_BYTES and type(event) is dict:
                    event = MappingProxyType(event)
                receipt = await push(event)
            except (InvalidEventError, orjson.JSONDecodeError) as exc:
                self._held.discard(entry)
                await self._dead_letter(client, [entry], "invalid", None, str(exc), None, b"")
                continue
            if receipt.done():  # skipped by the mapping (the relay never drops)
                self._held.discard(entry)
                skipped.append(entry)
                continue
            batch = id(outcome_of(receipt))  # _batch_of(receipt), inlined
            tracked = tracked_by.get(batch)
            if tracked is None:
                tracked = tracked_by[batch] = _Tracked(receipt, [])
            tracked.entries.append(entry)
        await self._ack_skipped(client, skipped)

    async def _ack_skipped(self, client: Client, entries: list[bytes]) -> None:
        if entries:
            await _deadletters.acknowledge(client, self.keys, self.group, entries)
            self._counters.skipped += len(entries)

    # -- the ledger hook and the outcome of each batch ---------------------------------

    async def _record(self, client: Client, ledger: Ledger, batches: Sequence[SealedBatch]) -> None:
        """Before a request's first attempt (the ``before_send`` hook): record its new
        batches' composition, and watch them until they are final.

        One finisher per request, not one task per batch: a task costs more than the
        ledger record of the batch (profiled); a request's batches settle together.
        """
        records: list[RecordedBatch] = []
        fresh: list[tuple[_Tracked, SealedBatch]] = []
        for batch in batches:
            tracked = self._tracked.get(id(batch.outcome))
            if tracked is None or tracked.watched:
                continue  # a resent batch is recorded and watched already
            tracked.watched = True
            fresh.append((tracked, batch))
            records.append(
                RecordedBatch(
                    source_request_id=batch.source_request_id,
                    body=batch.body,
                    event_count=batch.event_count,
                    entries=tuple(tracked.entries),
                )
            )
        if not records:
            return
        # Also when the record is refused below: those batches then fail, and their
        # finisher leaves the entries pending.
        self._finals.start_soon(self._finish, client, [tracked for tracked, _ in fresh])
        try:
            await ledger.record(records, group=self.group, consumer=self.consumer)
        except LeaseLostError as exc:
            self._counters.leases_lost += len(exc.entries)
            logger.warning("mparticle_dest relay: %s", exc)
            raise
        for tracked, batch in fresh:
            tracked.srid, tracked.body = batch.source_request_id, batch.body
            self._by_srid[batch.source_request_id] = tracked

    async def _finish(self, client: Client, batches: list[_Tracked]) -> None:
        """Settle each batch once final: acknowledge, dead-letter, or leave pending.

        A request's answer makes all its batches final at once, except throttled ones
        (429: sent again later); each wake-up settles every batch final by then.
        """
        while batches:
            await batches[0].receipt.wait()
            waiting = []
            for tracked in batches:
                outcome = tracked.receipt.outcome
                if outcome is None:
                    waiting.append(tracked)
                else:
                    await self._settle(client, outcome, tracked)
            batches = waiting

    async def _settle(self, client: Client, outcome: Outcome, tracked: _Tracked) -> None:
        del self._tracked[_batch_of(tracked.receipt)]
        if tracked.srid is not None:
            self._by_srid.pop(tracked.srid, None)
        entries = tracked.entries
        self._held.difference_update(entries)  # renewed no more: pending ones lapse
        counters = self._counters
        try:
            if outcome.status == "delivered":
                self._acks.append(tracked)
                if not self._ack_scheduled:  # one transaction for what settles together
                    self._ack_scheduled = True
                    self._finals.start_soon(self._flush_acks, client)
            elif outcome.reason in DEAD_LETTER_REASONS:
                await self._dead_letter(
                    client,
                    entries,
                    outcome.reason or "error",
                    outcome.http_status,
                    str(outcome.error),
                    tracked.srid,
                    tracked.body,
                )
            else:
                counters.left_pending += len(entries)
        except Exception:
            logger.exception("mparticle_dest relay: settling %d entries failed", len(entries))
            counters.left_pending += len(entries)

    def _count_unsent(self) -> None:
        """After the close: batches that never reached an attempt stay pending."""
        for tracked in self._tracked.values():
            if not tracked.watched:
                self._counters.left_pending += len(tracked.entries)
        self._tracked.clear()

    async def _flush_acks(self, client: Client) -> None:
        """Acknowledge every batch delivered since the last flush, in one transaction.

        Scheduled by the first batch that settles: a response settles many batches at
        once, and their finishers run before this task does.
        """
        self._ack_scheduled = False
        acks, self._acks = self._acks, []
        entries = [entry for tracked in acks for entry in tracked.entries]
        srids = [tracked.srid for tracked in acks if tracked.srid is not None]
        try:
            await _deadletters.acknowledge(client, self.keys, self.group, entries, srids)
        except Exception:
            logger.exception("mparticle_dest relay: acknowledging %d entries failed", len(entries))
            self._counters.left_pending += len(entries)
        else:
            self._counters.delivered += len(entries)

    async def _dead_letter(
        self,
        client: Client,
        entries: list[bytes],
        reason: str,
        status: int | None,
        error: str,
        srid: str | None,
        body: bytes,
    ) -> None:
        await _deadletters.dead_letter(
            client,
            self.keys,
            self.group,
            entries,
            reason=reason,
            status=status,
            error=error,
            srid=srid,
            body=body,
        )
        self._counters.dead_lettered += len(entries)
        logger.warning(
            "mparticle_dest relay: %d entries dead-lettered (%s, status %s)",
            len(entries),
            reason,
            status,
        )

    # -- reclaim and leases ------------------------------------------------------------

    async def _reclaim(self, client: Client, ledger: Ledger, dest: Destination) -> None:
        """At start, then every third of ``claim_idle``: take over idle entries."""
        while True:
            try:
                await self._claim_all(client, ledger, dest)
            except Exception:
                logger.exception("mparticle_dest relay: reclaiming idle entries failed")
            await anyio.sleep(self.claim_idle / 3)

    async def _claim_all(self, client: Client, ledger: Ledger, dest: Destination) -> None:
        keys = self.keys
        start: bytes | str = "0-0"
        min_idle = int(self.claim_idle * 1000)
        while True:
            next_start, entries, srids, deleted, records = await CLAIM(
                client,
                [keys.stream, keys.ledger],
                [self.group, self.consumer, min_idle, start, self.read_count, keys.batch_prefix],
            )
            if deleted:
                await ledger.forget(deleted)
            recorded = {r.source_request_id: r for r in map(Ledger.parse, records)}
            resend: dict[str, list[bytes]] = {}
            plain: list[tuple[bytes, Any]] = []
            expired: list[bytes] = []
            for (entry, fields), srid in zip(entries, srids, strict=True):
                if entry in self._held:
                    continue  # still ours (a renewal came late)
                self._held.add(entry)
                srid = text(srid)
                if srid in recorded:
                    resend.setdefault(srid, []).append(entry)
                    continue
                if srid:  # the record expired: mParticle would not de-duplicate it any more
                    expired.append(entry)
                plain.append((entry, fields))
            self._counters.reclaimed += len(entries)
            await ledger.forget(expired)
            for srid in resend:
                if srid not in self._by_srid:  # else: this relay is delivering it already
                    await self._resend(client, dest, recorded[srid])
            await self._push_all(client, dest, plain)
            start = next_start
            if text(start) == "0-0":
                return

    async def _resend(self, client: Client, dest: Destination, record: RecordedBatch) -> None:
        receipt = await dest.resend(
            record.body, source_request_id=record.source_request_id, event_count=record.event_count
        )
        # Every entry of the batch is acknowledged with it, also those another relay claimed.
        tracked = _Tracked(receipt, list(record.entries), record.source_request_id, record.body)
        self._tracked[_batch_of(receipt)] = tracked
        self._by_srid[record.source_request_id] = tracked
        self._counters.resent_batches += 1
        self._finals.start_soon(self._finish, client, [tracked])

    async def _keep_leases(self, client: Client) -> None:
        """Every third of ``claim_idle``: reset the idle time of the entries held."""
        while True:
            await anyio.sleep(self.claim_idle / 3)
            held = list(self._held)
            try:
                for i in range(0, len(held), _LEASE_CHUNK):
                    lost = await KEEP_LEASES(
                        client,
                        [self.keys.stream],
                        [self.group, self.consumer, *held[i : i + _LEASE_CHUNK]],
                    )
                    lost = [entry for entry in lost if entry in self._held]
                    if lost:
                        self._counters.leases_lost += len(lost)
                        logger.warning(
                            "mparticle_dest relay: %d entries were claimed by another relay"
                            " while this one held them (stalled past claim_idle?)",
                            len(lost),
                        )
            except Exception:
                logger.exception("mparticle_dest relay: renewing leases failed")
