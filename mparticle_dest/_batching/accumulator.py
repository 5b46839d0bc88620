"""Per-user batch accumulator (SPEC §6): pure, synchronous, with an injected clock.

:class:`SealedBatch` is the unit the engine hands to the deliverer: the batch's
complete JSON, assembled once from the stored event bytes, so a retry resends
identical bytes (and the same ``source_request_id``).
"""

from __future__ import annotations

import heapq
import itertools
import sys
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from attrs import frozen

from .._exceptions import LimitExceededError
from .._mparticle import MAX_BATCH_BYTES, MAX_USER_ATTRIBUTES
from .._receipt import BatchOutcome, Receipt
from .._wire import batch_size, encode_batch, user_attributes_fragment

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
        opened: float = 0.0,
    ) -> None:
        self.key = key
        self.body = body
        self.event_count = event_count
        self.source_request_id = source_request_id
        self.seq = seq
        self.outcome = outcome if outcome is not None else BatchOutcome()
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
# Receipts of the fast path are made without running Receipt.__init__ (a Python call).
_new_receipt = object.__new__
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
    """When an open batch is sealed.

    Attributes:
        size: Seal when the batch holds this many events (``None``: only the byte
            and time limits apply).
        age: Seal when the oldest event is this many seconds old.
        wait: Optional debounce: seal when no event was added for this many seconds.
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


class _OpenBatch:
    """A batch still accepting events (internal to the accumulator)."""

    __slots__ = (
        "age_deadline",
        "bodies",
        "deadline",
        "id",
        "key",
        "opened",
        "outcome",
        "size",
        "size_limit",
        "source_request_id",
        "ua_fragment",
        "user_attributes",
        "wait",
    )

    def __init__(self, key: BatchKey, batch_id: int, source_request_id: str, opened: float) -> None:
        self.key = key
        self.id = batch_id
        self.source_request_id = source_request_id
        self.opened = opened  # when the first event came
        self.bodies: list[bytes] = []
        self.size = 0  # exact length of the batch JSON with the events so far
        self.outcome = BatchOutcome()
        self.user_attributes: dict[str, Any] = {}
        self.ua_fragment = b""
        self.age_deadline = _INF
        self.deadline = _INF  # min(age_deadline, last event + wait); in the heap when finite
        self.size_limit = _NO_SIZE_LIMIT
        self.wait: float | None = None


class Accumulator:
    """Collects built events into one open batch per :class:`BatchKey` (SPEC §6).

    Pure and synchronous: callers pass the current time (``anyio.current_time()``
    in the engine, plain floats in tests). Each user's events keep their push
    order: a key has at most one open batch, and batches are sealed in order.

    Args:
        limits: Default limits; an event's rule-level ``batch`` hint overrides them
            for the batch it joins (the strictest value wins within a batch).
    """

    def __init__(self, limits: BatchLimits | None = None) -> None:
        self._limits = limits = limits or BatchLimits()
        self._max_bytes = limits.max_bytes  # read by the fast path of add()
        self._age = limits.age
        # Called with every new deadline an open batch gets (the engine wakes its
        # flusher when it is earlier than the one it sleeps until).
        self.on_deadline: Callable[[float], object] | None = None
        self._open: dict[BatchKey, _OpenBatch] = {}
        # Heap of (deadline, batch id, open batch); entries go stale when a batch is
        # sealed or its deadline moves. Read-only outside: the engine peeks at it.
        self.deadlines: list[tuple[float, int, _OpenBatch]] = []
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

    def add(self, built: BuiltEventLike, now: float) -> tuple[Receipt, list[SealedBatch]]:
        """Append one event to its key's open batch.

        The open batch is sealed *before* the event when the event would push its
        JSON past ``max_bytes`` or its merged user attributes past the limit, and
        the batch holding the event is sealed right away when it reaches its size
        or its deadline has already passed (``{"age": 0}``). O(1): the batch's exact
        byte size is kept up to date, not recomputed.

        Fast path: an event without user attributes or a rule-level ``batch`` hint,
        joining an open batch without a ``wait`` debounce, within its byte limit and
        without moving its age deadline (the clock did not go back), changes only the
        batch's events and size; every other case takes the general path.

        Returns:
            The event's receipt and the batches sealed by this call (0, 1 or 2, oldest first).

        Raises:
            LimitExceededError: The event alone does not fit in a batch (``batch_bytes``);
                nothing is changed.
        """
        ob = self._open.get(built.key)
        if ob is not None and ob.wait is None and built.batch is None and not built.user_attributes:
            body = built.body
            size = ob.size + len(body) + 1  # the event and its comma
            age_deadline = ob.age_deadline
            if size <= self._max_bytes and now + self._age >= age_deadline:
                bodies = ob.bodies
                bodies.append(body)
                ob.size = size
                self._events += 1
                # Receipt(ob.outcome, event_id) without the cost of a Python __init__.
                receipt = _new_receipt(Receipt)
                receipt._holder = ob.outcome
                receipt.event_id = built.event_id
                if len(bodies) >= ob.size_limit or age_deadline <= now:
                    return receipt, [self._seal(ob)]
                return receipt, []
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
                sealed.append(self._seal(ob))
            ob = self._open_batch(key, base, srid, next_suffix, now)
            if new_ua:
                ob.user_attributes = dict(new_ua)
                ob.ua_fragment = ua_fragment
        elif merged is not None:
            assert ob is not None
            ob.user_attributes, ob.ua_fragment, size = merged
        assert ob is not None
        bodies = ob.bodies
        bodies.append(body)
        ob.size = size
        self._events += 1
        receipt = Receipt(ob.outcome, built.event_id)

        hint = built.batch
        limits = self._limits if hint is None else self._limits.override(hint)
        age_deadline = now + limits.age
        if age_deadline < ob.age_deadline:
            ob.age_deadline = age_deadline
        size_limit = limits.size
        if size_limit is not None and size_limit < ob.size_limit:
            ob.size_limit = size_limit
        wait = limits.wait
        if wait is not None and (ob.wait is None or wait < ob.wait):
            ob.wait = wait
        deadline = ob.age_deadline
        if ob.wait is not None and now + ob.wait < deadline:
            deadline = now + ob.wait
        if len(bodies) >= ob.size_limit or deadline <= now:
            sealed.append(self._seal(ob))
        elif deadline != ob.deadline:
            ob.deadline = deadline
            heapq.heappush(self.deadlines, (deadline, ob.id, ob))
            if self.on_deadline is not None:
                self.on_deadline(deadline)
        return receipt, sealed

    def due(self, now: float) -> list[SealedBatch]:
        """Seal and return every open batch whose deadline has passed, oldest deadline first."""
        out: list[SealedBatch] = []
        heap = self.deadlines
        while heap and heap[0][0] <= now:
            deadline, _, ob = heapq.heappop(heap)
            if self._open.get(ob.key) is ob and ob.deadline == deadline:
                out.append(self._seal(ob))
        return out

    def next_deadline(self) -> float | None:
        """The earliest time at which :meth:`due` will return a batch (``None``: no open batch)."""
        heap = self.deadlines
        while heap:
            deadline, _, ob = heap[0]
            if self._open.get(ob.key) is ob and ob.deadline == deadline:
                return deadline
            heapq.heappop(heap)  # stale: the batch was sealed or its deadline moved
        return None

    def open_figures(self) -> tuple[int, float | None]:
        """The bytes of the open batches' JSON, and when the oldest of them got its
        first event (``None``: no open batch); read by telemetry at collection time,
        possibly from another thread (hence the copy)."""
        batches = list(self._open.values())
        # Keys keep the order their batch was opened in: the first is the oldest.
        return sum(ob.size for ob in batches), batches[0].opened if batches else None

    def seal_oldest(self, events: int) -> list[SealedBatch]:
        """Seal open batches in the order they were opened until ``events`` events are
        sealed (or none is left open); a full buffer makes room this way."""
        chosen: list[_OpenBatch] = []
        count = 0
        for ob in self._open.values():
            if count >= events:
                break
            chosen.append(ob)
            count += len(ob.bodies)
        return [self._seal(ob) for ob in chosen]

    def seal_all(self) -> list[SealedBatch]:
        """Seal every open batch (flush and close), in the order they were opened."""
        out = [self._seal(ob) for ob in list(self._open.values())]
        self.deadlines.clear()
        return out

    # -- internals ---------------------------------------------------------------------------

    def _merge(
        self, ob: _OpenBatch, body_len: int, new_ua: Mapping[str, Any]
    ) -> tuple[dict[str, Any], bytes, int] | None:
        """The batch's user attributes, their fragment and its size with the event added;
        ``None`` when the event does not fit (the batch must be sealed first)."""
        ua = {**ob.user_attributes, **new_ua}
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

    def _seal(self, ob: _OpenBatch) -> SealedBatch:
        del self._open[ob.key]
        self._events -= len(ob.bodies)
        body = encode_batch(ob.key, ob.bodies, ob.ua_fragment, ob.source_request_id)
        assert len(body) == ob.size, (len(body), ob.size)  # the O(1) accounting held
        return SealedBatch(
            key=ob.key,
            body=body,
            event_count=len(ob.bodies),
            source_request_id=ob.source_request_id,
            seq=next(self._seqs),
            outcome=ob.outcome,
            opened=ob.opened,
        )
