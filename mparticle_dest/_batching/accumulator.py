"""Per-user batch accumulator: pure, synchronous, with an injected clock.

:class:`SealedBatch` is the unit the engine hands to the deliverer: the batch's
complete JSON, assembled once from the stored event bytes, so a retry resends
identical bytes (and the same ``source_request_id``).
"""

from __future__ import annotations

import heapq
import itertools
import sys
from collections import OrderedDict, deque
from collections.abc import Callable, Hashable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from attrs import frozen

from .._exceptions import LimitExceededError
from .._mparticle import MAX_BATCH_BYTES, MAX_USER_ATTRIBUTES
from .._receipt import BatchOutcome, Receipt
from .._wire import batch_size, encode_joined_batch, user_attributes_fragment

if TYPE_CHECKING:
    from .._payload import BatchKey

__all__ = ["Accumulator", "BatchLimits", "SealedBatch"]


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
        eligible_at: When the batch became eligible to leave (its age or size was
            reached, or a hard limit sealed it); the scheduler's latency bound counts
            from here, also when a throttled batch goes back in line.
        opened: When its first (oldest) event was added, on the accumulator's clock.
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
        "eligible_at",
        "event_count",
        "key",
        "opened",
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
        eligible_at: float = 0.0,
        opened: float = 0.0,
    ) -> None:
        self.key = key
        self.body = body
        self.event_count = event_count
        self.source_request_id = source_request_id
        self.seq = seq
        self.outcome = outcome if outcome is not None else BatchOutcome()
        self.eligible_at = eligible_at
        self.opened = opened
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


# mParticle's batch limit (128 KB) is the hard ceiling; an event count and the age are tunable.
DEFAULT_BATCH_AGE = 2.0  # seconds; fewer, fuller batches spare the ≈270 batches/s limit
_INF = float("inf")
# Remembered source_request_ids (for uniqueness): bounded so a long-lived process stays small.
_SRID_MEMORY = 65_536
# What add() returns when it sealed nothing (never mutated).
_NONE_SEALED: list[SealedBatch] = []
# Receipts of the fast path are made without running Receipt.__init__ (a Python call).
_new_receipt = object.__new__
# A sealed batch's events (never appended to: a sealed batch takes no event).
_NO_EVENTS = bytearray()
# An open batch's size limit when none is set: an int, so the hot path skips a None test.
_NO_SIZE_LIMIT = sys.maxsize


class BatchHint(Protocol):
    """Batch flush options as configured (``_config.BatchOptions``); times in milliseconds."""

    @property
    def size(self) -> int | None: ...

    @property
    def age(self) -> float | None: ...

    @property
    def wait(self) -> float | None: ...


class BuiltEventLike(Protocol):
    """What the accumulator reads from ``_payload.BuiltEvent``."""

    @property
    def key(self) -> BatchKey: ...

    @property
    def body(self) -> bytes: ...

    @property
    def event_id(self) -> str: ...

    @property
    def source_request_id(self) -> str: ...

    @property
    def user_attributes(self) -> Mapping[str, Any] | None: ...

    @property
    def batch(self) -> BatchHint | None: ...


@frozen(kw_only=True)
class BatchLimits:
    """When an open batch becomes eligible to leave, and the hard limits that seal it.

    Attributes:
        size: Seal the batch when it holds this many events (``None``: no count
            limit; only mParticle's byte and attribute limits seal a batch).
        age: Eligible when the oldest event is this many seconds old.
        wait: Optional debounce: eligible when no event was added for this many seconds.
        max_bytes: Never let a batch's JSON exceed this (mParticle: 128 KB).
        max_user_attributes: Seal before merged ``user_attributes`` would exceed this.
    """

    size: int | None = None
    age: float = DEFAULT_BATCH_AGE
    wait: float | None = None
    max_bytes: int = MAX_BATCH_BYTES
    max_user_attributes: int = MAX_USER_ATTRIBUTES

    def override(self, hint: BatchHint | None) -> BatchLimits:
        """These limits with the set fields of ``hint`` (milliseconds) applied."""
        if hint is None:
            return self
        size, age, wait = hint.size, hint.age, hint.wait
        if size is None and age is None and wait is None:
            return self
        return BatchLimits(
            size=self.size if size is None else max(int(size), 1),
            age=self.age if age is None else max(float(age), 0.0) / 1000.0,
            wait=self.wait if wait is None else max(float(wait), 0.0) / 1000.0,
            max_bytes=self.max_bytes,
            max_user_attributes=self.max_user_attributes,
        )


class _OpenBatch(BatchOutcome):
    """A batch still accepting events (internal to the accumulator).

    Few objects the garbage collector tracks per batch, because a service may hold one
    per user for minutes and every full collection walks them all: the batch is its own
    outcome (the receipts and the sealed batch share it), its events are one
    ``bytearray`` of comma-separated JSON (not tracked), the rest numbers, strings and,
    only when some event carried them, the merged ``user_attributes``.
    """

    __slots__ = (
        "age_deadline",
        "count",
        "deadline",
        "debounce",
        "eligible_at",
        "events",
        "id",
        "in_fifo",
        "key",
        "opened",
        "size",
        "size_limit",
        "source_request_id",
        "ua_fragment",
        "user_attributes",
    )

    def __init__(self, key: BatchKey, batch_id: int, source_request_id: str, opened: float) -> None:
        super().__init__()
        self.key = key
        self.id = batch_id
        self.source_request_id = source_request_id
        self.opened = opened  # when the first event came
        self.events = bytearray()  # the events' JSON, comma-separated
        self.count = 0  # events in the batch
        self.size = 0  # exact length of the batch JSON with the events so far
        self.user_attributes: dict[str, Any] | None = None
        self.ua_fragment = b""
        self.age_deadline = _INF
        self.deadline = _INF  # min(age_deadline, last event + wait); in the heap when finite
        self.size_limit = _NO_SIZE_LIMIT
        self.debounce: float | None = None  # the ``wait`` limit
        self.eligible_at = _INF  # when it became eligible to leave (_INF: not yet)
        self.in_fifo = False  # its deadline entry is in the FIFO, not the heap


class Accumulator:
    """Collects built events into one open batch per :class:`BatchKey`.

    Pure and synchronous: callers pass the current time (``anyio.current_time()``
    in the engine, plain floats in tests). Each user's events keep their push
    order: a key has at most one open batch, and batches are sealed in order.

    Seal late: reaching the ``batch.age`` deadline (or the ``wait`` debounce) makes a
    batch *eligible* (its key is added to :attr:`eligible`), not sealed; it keeps
    taking its user's events until the scheduler seals it into a request
    (:meth:`seal`). Only limits seal a batch on their own: mParticle's 128 KB of JSON
    and 100 user attributes, and a configured ``batch.size`` (a cap the user asked
    for, e.g. one event per batch); ``add`` returns such batches, eligible at once.

    Args:
        limits: Default limits; an event's rule-level ``batch`` hint overrides them
            for the batch it joins (the strictest value wins within a batch).
    """

    def __init__(self, limits: BatchLimits | None = None) -> None:
        self._limits = limits = limits or BatchLimits()
        self._max_bytes = limits.max_bytes  # read by the fast path of add()
        self._age = limits.age
        # An event without a hint brings the default size: a batch whose limit an earlier
        # hint set above it takes the general path, which lowers the limit to it.
        self._size = _NO_SIZE_LIMIT if limits.size is None else limits.size
        # Called with every new deadline an open batch gets, and with the time a batch
        # became eligible (the engine wakes its idle senders when it is earlier than the
        # time they sleep until).
        self.on_deadline: Callable[[float], object] | None = None
        self._open: dict[BatchKey, _OpenBatch] = {}
        # Keys with something eligible to leave -> since when, in the order they became
        # eligible. Keys in :attr:`muted` (a request in flight) are left out; the
        # scheduler puts them back when their request is over.
        self.eligible: dict[Hashable, float] = {}
        self.muted: set[Hashable] = set()
        # Deadlines. Most batches get one, their age, in the order they open: those
        # wait in a FIFO (no object per batch); the others (rule hints, ``wait``, a
        # deadline that moved or a clock that stepped back) in a heap of (deadline,
        # batch id, batch). Entries go stale when a batch is sealed, becomes eligible
        # or its deadline moves.
        self._fifo: deque[_OpenBatch] = deque()
        self._fifo_last = -_INF  # the deadline last appended to the FIFO
        self._heap: list[tuple[float, int, _OpenBatch]] = []
        self._batch_ids = itertools.count()
        self._seqs = itertools.count()
        self._srids: OrderedDict[str, int] = OrderedDict()
        self._events = 0

    @property
    def limits(self) -> BatchLimits:
        """The default limits."""
        return self._limits

    @property
    def open_events(self) -> int:
        """Events in open (not yet sealed) batches."""
        return self._events

    @property
    def open_batches(self) -> int:
        """Number of open batches."""
        return len(self._open)

    def get(self, key: Hashable) -> _OpenBatch | None:
        """The open batch of ``key`` (its ``count``, ``size``, ``eligible_at``), if any."""
        return self._open.get(key)  # type: ignore[call-overload, no-any-return]

    def open_figures(self) -> tuple[int, float | None]:
        """The bytes of the open batches' JSON, and when the oldest of them got its
        first event (``None``: no open batch); read by telemetry at collection time,
        possibly from another thread (hence the copy)."""
        batches = list(self._open.values())
        # Keys keep the order their batch was opened in: the first is the oldest.
        return sum(ob.size for ob in batches), batches[0].opened if batches else None

    def open_keys(self) -> Iterator[Hashable]:
        """Keys of the open batches, in the order the batches were opened."""
        return iter(self._open)

    def outcomes(self) -> list[BatchOutcome]:
        """The outcomes of the open batches (what a flush waits for besides sealed ones)."""
        return list(self._open.values())

    def add(self, built: BuiltEventLike, now: float) -> tuple[Receipt, list[SealedBatch]]:
        """Append one event to its key's open batch.

        The open batch is sealed *before* the event when the event would push its
        JSON past ``max_bytes`` or its merged user attributes past the limit, and the
        batch holding the event is sealed when it reaches its size (sealed batches are
        returned, eligible at once). Otherwise the batch becomes eligible when its
        deadline has passed (``{"age": 0}``: at once). O(1): the batch's exact byte
        size is kept up to date.

        Fast path: an event without user attributes or a rule-level ``batch`` hint,
        joining an open batch without a ``wait`` debounce and with a size limit no larger
        than the default, within its byte limit and without moving its age deadline (the
        clock did not go back), changes only the batch's events and size; every other case
        takes the general path.

        Returns:
            The event's receipt and the batches sealed by this call (0, 1 or 2, oldest first).

        Raises:
            LimitExceededError: The event alone does not fit in a batch (``batch_bytes``);
                nothing is changed.
        """
        ob = self._open.get(built.key)
        if (
            ob is not None
            and ob.debounce is None
            and built.batch is None
            and not built.user_attributes
            and ob.size_limit <= self._size
        ):
            body = built.body
            size = ob.size + len(body) + 1  # the event and its comma
            age_deadline = ob.age_deadline
            if size <= self._max_bytes and now + self._age >= age_deadline:
                events = ob.events
                events += b","
                events += body
                count = ob.count = ob.count + 1
                ob.size = size
                self._events += 1
                # Receipt(ob, event_id) without the cost of a Python __init__.
                receipt = _new_receipt(Receipt)
                receipt._holder = ob
                receipt.event_id = built.event_id
                if count >= ob.size_limit:
                    return receipt, [
                        self._seal(ob, now if ob.eligible_at > now else ob.eligible_at)
                    ]
                if age_deadline <= now and ob.eligible_at == _INF:
                    self._mark(ob, now)
                return receipt, _NONE_SEALED
        return self._add_general(built, now, ob)

    def _add_general(
        self, built: BuiltEventLike, now: float, ob: _OpenBatch | None
    ) -> tuple[Receipt, list[SealedBatch]]:
        """:meth:`add` for every case; ``ob`` is the key's open batch (``None``: none)."""
        key = built.key
        body = built.body
        new_ua = built.user_attributes or None
        sealed: list[SealedBatch] = []
        merged = None
        if ob is None:
            fits = False
        elif new_ua:
            merged = self._merge(ob, len(body), new_ua)
            fits = merged is not None
        else:
            size = ob.size + len(body) + 1  # the event and its comma
            fits = size <= self._limits.max_bytes
        if not fits:
            base = built.source_request_id
            srid, next_suffix = self._choose_srid(base)
            ua_fragment = user_attributes_fragment(new_ua)
            size = batch_size(key, len(body), 1, len(ua_fragment), srid)
            if size > self._limits.max_bytes:
                raise LimitExceededError(
                    f"event {built.event_id!r} needs a {size}-byte batch; mParticle accepts"
                    f" at most {self._limits.max_bytes} bytes per batch",
                    limit="batch_bytes",
                )
            if ob is not None:
                # A hard limit: this batch cannot grow, so it is eligible from now on.
                eligible_at = ob.eligible_at if ob.eligible_at < now else now
                sealed.append(self._seal(ob, eligible_at))
            ob = self._open_batch(key, base, srid, next_suffix, now)
            if new_ua:
                ob.user_attributes = dict(new_ua)
                ob.ua_fragment = ua_fragment
        else:
            assert ob is not None
            if merged is not None:
                ob.user_attributes, ob.ua_fragment, size = merged
        events = ob.events
        if ob.count:
            events += b","
        events += body
        ob.count += 1
        ob.size = size
        self._events += 1
        receipt = Receipt(ob, built.event_id)

        hint = built.batch
        limits = self._limits if hint is None else self._limits.override(hint)
        size_limit = limits.size
        if size_limit is not None and size_limit < ob.size_limit:
            ob.size_limit = size_limit
        if ob.count >= ob.size_limit:  # the size asked for: sealed, eligible at once
            sealed.append(self._seal(ob, now if ob.eligible_at > now else ob.eligible_at))
            return receipt, sealed
        if ob.eligible_at != _INF:
            return receipt, sealed  # already eligible: it leaves when the scheduler takes it
        age_deadline = now + limits.age
        if age_deadline < ob.age_deadline:
            ob.age_deadline = age_deadline
        wait = limits.wait
        if wait is not None and (ob.debounce is None or wait < ob.debounce):
            ob.debounce = wait
        deadline = ob.age_deadline
        if ob.debounce is not None and now + ob.debounce < deadline:
            deadline = now + ob.debounce
        if deadline <= now:
            self._mark(ob, now)
        elif deadline != ob.deadline:
            first = ob.deadline == _INF
            ob.deadline = deadline
            if first and deadline >= self._fifo_last:
                self._fifo.append(ob)
                self._fifo_last = deadline
                ob.in_fifo = True
            else:
                ob.in_fifo = False
                heapq.heappush(self._heap, (deadline, ob.id, ob))
            if self.on_deadline is not None:
                self.on_deadline(deadline)
        return receipt, sealed

    def due(self, now: float, *, until: float | None = None, max_events: int | None = None) -> int:
        """Make every open batch whose deadline has passed eligible, earliest deadline first.

        Args:
            now: The current time (the batches' ``eligible_at``).
            until: Mark the batches whose deadline is at or before this instead (a
                flush passes infinity: every open batch).
            max_events: Stop once batches holding this many events were marked (the
                flush and a full buffer work in slices).

        Returns:
            The number of events in the batches marked.
        """
        limit = now if until is None else until
        budget = _INF if max_events is None else max_events
        marked = 0
        while marked < budget:
            ob = self._next_due(limit)
            if ob is None:
                break
            self._mark(ob, now)
            marked += ob.count
        return marked

    def next_deadline(self) -> float | None:
        """The earliest time at which :meth:`due` will mark a batch (``None``: none will)."""
        fifo, heap = self._drop_stale()
        if fifo and (not heap or fifo[0].deadline <= heap[0][0]):
            return fifo[0].deadline
        return heap[0][0] if heap else None

    def _next_due(self, limit: float) -> _OpenBatch | None:
        """Remove and return the open batch with the earliest deadline, if ≤ ``limit``."""
        fifo, heap = self._drop_stale()
        if fifo and (not heap or fifo[0].deadline <= heap[0][0]):
            if fifo[0].deadline <= limit:
                return fifo.popleft()
        elif heap and heap[0][0] <= limit:
            return heapq.heappop(heap)[2]
        return None

    def _drop_stale(self) -> tuple[deque[_OpenBatch], list[tuple[float, int, _OpenBatch]]]:
        """Drop the stale entries at the front of the FIFO and the heap; return both."""
        fifo, heap, open_ = self._fifo, self._heap, self._open
        while fifo:
            ob = fifo[0]
            if ob.in_fifo and ob.eligible_at == _INF and open_.get(ob.key) is ob:
                break
            fifo.popleft()
        while heap:
            deadline, _, ob = heap[0]
            if ob.deadline == deadline and ob.eligible_at == _INF and open_.get(ob.key) is ob:
                break
            heapq.heappop(heap)  # stale: the batch was sealed, marked or its deadline moved
        return fifo, heap

    def seal(self, key: Hashable) -> SealedBatch:
        """Seal the open batch of ``key`` (the scheduler takes it into a request).

        Raises:
            KeyError: ``key`` has no open batch.
        """
        ob = self._open[key]  # type: ignore[index]
        return self._seal(ob, ob.eligible_at if ob.eligible_at != _INF else 0.0)

    def seal_eligible(self) -> list[SealedBatch]:
        """Seal every eligible open batch, in the order they became eligible (for callers
        without a scheduler, such as the CLI's dry run)."""
        out = []
        for key in list(self.eligible):
            del self.eligible[key]
            if key in self._open:
                out.append(self.seal(key))
        return out

    def seal_all(self) -> list[SealedBatch]:
        """Seal every open batch, in the order they were opened (the end of a dry run,
        and what a closed destination could not send)."""
        out = [self._seal(ob, ob.eligible_at) for ob in list(self._open.values())]
        self._fifo.clear()
        self._heap.clear()
        return out

    def _mark(self, ob: _OpenBatch, now: float) -> None:
        """Make ``ob`` eligible: it no longer seals on its own, the scheduler takes it."""
        ob.eligible_at = now
        ob.deadline = _INF  # its heap entry goes stale
        key = ob.key
        if key not in self.muted and key not in self.eligible:
            self.eligible[key] = now
            if self.on_deadline is not None:
                self.on_deadline(now)  # something may leave now: wake whoever sleeps

    # -- internals ---------------------------------------------------------------------------

    def _merge(
        self, ob: _OpenBatch, body_len: int, new_ua: Mapping[str, Any]
    ) -> tuple[dict[str, Any], bytes, int] | None:
        """The batch's user attributes, their fragment and its size with the event added;
        ``None`` when the event does not fit (the batch must be sealed first)."""
        ua = {**ob.user_attributes, **new_ua} if ob.user_attributes else dict(new_ua)
        if len(ua) > self._limits.max_user_attributes:
            return None
        fragment = user_attributes_fragment(ua)
        size = ob.size + body_len + 1 + len(fragment) - len(ob.ua_fragment)
        if size > self._limits.max_bytes:
            return None
        return ua, fragment, size

    def _choose_srid(self, base: str) -> tuple[str, int]:
        """The next batch's ``source_request_id``: ``base`` (the mapped id, else the first
        event's id), suffixed ``-2``, ``-3``... when a recent batch already used it
        (mParticle de-duplicates on it, so two batches must never share one)."""
        suffix = self._srids.get(base)
        if suffix is None:
            return base, 2
        while True:
            candidate = f"{base}-{suffix}"
            suffix += 1
            if candidate not in self._srids:
                return candidate, suffix

    def _open_batch(
        self, key: BatchKey, base: str, srid: str, next_suffix: int, now: float
    ) -> _OpenBatch:
        srids = self._srids
        srids[base] = next_suffix
        srids.move_to_end(base)
        if srid != base:
            srids[srid] = 2
        while len(srids) > _SRID_MEMORY:
            srids.popitem(last=False)
        ob = _OpenBatch(key, next(self._batch_ids), srid, now)
        self._open[key] = ob
        return ob

    def _seal(self, ob: _OpenBatch, eligible_at: float) -> SealedBatch:
        del self._open[ob.key]
        self._events -= ob.count
        body = encode_joined_batch(ob.key, ob.events, ob.ua_fragment, ob.source_request_id)
        # Freed now, not when a stale deadline entry or a kept receipt lets go of the batch.
        ob.events = _NO_EVENTS
        ob.user_attributes = None
        assert len(body) == ob.size, (len(body), ob.size)  # the O(1) accounting held
        return SealedBatch(
            key=ob.key,
            body=body,
            event_count=ob.count,
            source_request_id=ob.source_request_id,
            seq=next(self._seqs),
            outcome=ob,
            eligible_at=eligible_at,
            opened=ob.opened,
        )
