"""Per-user batch accumulator: pure, synchronous, with an injected clock.

:class:`SealedBatch` is the unit the engine hands to the deliverer: the batch's
complete JSON, assembled once from the stored event bytes, so a retry resends
identical bytes (and the same ``source_request_id``).
"""

from __future__ import annotations

import heapq
import itertools
from array import array
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping
from typing import Any, Protocol

from attrs import frozen

from .._exceptions import LimitExceededError
from .._mparticle import MAX_BATCH_BYTES, MAX_USER_ATTRIBUTES
from .._receipt import BatchOutcome, OutcomeGroup, Receipt, new_outcome
from .._wire import (
    compact_fragments,
    encode_joined_batch,
    encode_joined_batch_id_bytes,
    envelope_length,
    source_request_id_length,
    user_attributes_fragment,
)
from .recent_ids import RecentIds

__all__ = ["Accumulator", "BatchLimits", "SealedBatch"]


class SealedBatch:
    """One closed mParticle batch, ready to be packed into a request.

    Attributes:
        key: The batch key (one user ⇒ one key), for the accumulator's batches as
            :func:`~mparticle_dest._wire.compact_key` bytes; at most one request in
            flight carries a given key, which keeps each user's order.
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
        self.outcome = outcome if outcome is not None else new_outcome()
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
# Each id is remembered until this many later ones were recorded.
_SRID_MEMORY = 65_536
# Batches opened one after the other whose receipts share one OutcomeGroup (an index in
# a bytearray column: at most 256). A group lives as long as one of its batches is open
# or one of their receipts is kept, and with it the outcomes of its sealed batches.
_GROUP = 64
# The largest batch id (ids are 4-byte columns; 0 marks a free slot).
_LAST_ID = 2**32 - 1
# What add() returns when it sealed nothing (never mutated).
_NONE_SEALED: list[SealedBatch] = []
# Receipts of the fast path and sealed batches are made without running their Python
# __init__.
_new_receipt = _new_sealed = object.__new__
# A free slot's events (never appended to).
_NO_EVENTS = b""
# A batch's events stay one bytes object, copied whole for every event, while shorter
# than this: the copy is cheap, and a bytes object is 24 bytes smaller than a bytearray
# (most batches of a service with many users hold two or three events). Longer ones
# grow in their own bytearray.
_SHORT_EVENTS = 1024
# '{"events":[' before the events of a batch.
_EVENTS_OPEN_LEN = len(b'{"events":[')
# What the first event's JSON ends with when its id is the batch's source_request_id:
# '"source_message_id":"' + the id + '"}}' (the builders put the id last).
_SMID = b'"source_message_id":"'
_SMID_END = b'"}}'
# An open batch's size limit when none is set: an int, so the hot path skips a None test
# (the largest a 4-byte column holds; no batch holds that many events).
_NO_SIZE_LIMIT = 2**31 - 1


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
    def compact_key(self) -> bytes:
        """The batch key as :func:`~mparticle_dest._wire.compact_key` bytes."""

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


class Accumulator:
    """Collects built events into one open batch per batch key.

    Pure and synchronous: callers pass the current time (``anyio.current_time()``
    in the engine, plain floats in tests). Each user's events keep their push
    order: a key has at most one open batch, and batches are sealed in order.

    Seal late: reaching the ``batch.age`` deadline (or the ``wait`` debounce) makes a
    batch *eligible* (its key is added to :attr:`eligible`), not sealed; it keeps
    taking its user's events until the scheduler seals it into a request
    (:meth:`seal`). Only limits seal a batch on their own: mParticle's 128 KB of JSON
    and 100 user attributes, and a configured ``batch.size`` (a cap the user asked
    for, e.g. one event per batch); ``add`` returns such batches, eligible at once.

    No object the garbage collector tracks per open batch, because a service may hold
    one per user for seconds or minutes, and every tracked object that lives that long
    is promoted to the oldest generation and brings the next full collection (a pause of
    the whole heap) closer. Open batches are *slots*: row numbers into columns of
    numbers (``array``) and lists of untracked values: the key as compact JSON bytes
    (:func:`~mparticle_dest._wire.compact_key`, also the key of the scheduler's tables),
    the events' JSON (one bytes object of comma-separated events while short, then one
    ``bytearray``) and where its receipts find its outcome (an
    :data:`~mparticle_dest._receipt.OutcomeGroup` shared with the batches opened around
    it, and an index in it; the outcome, an exact dict, is made at seal or when a
    receipt asks first). The ``source_request_id`` is read back from the first event's
    JSON at seal when it is that event's id (the usual case), else kept in a dict by
    slot; a size limit, age deadline or debounce other than the defaults (rule hints)
    is kept in a dict by slot too. Only batches whose events carried user attributes
    keep a tracked object (the merged attributes); a group is tracked once it holds an
    outcome (one per 64 batches). Freed slots are reused.

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
        self._size = _NO_SIZE_LIMIT if limits.size is None else min(limits.size, _NO_SIZE_LIMIT)
        # New batches without a hint take a short path unless every batch has a debounce.
        self._plain_open = limits.wait is None
        # Called with every new deadline an open batch gets, and with the time a batch
        # became eligible (the engine wakes its idle senders when it is earlier than the
        # time they sleep until).
        self.on_deadline: Callable[[float], object] | None = None
        # key (as compact_key bytes: what the scheduler's tables hold too) -> slot, in the
        # order the batches were opened
        self._slots: dict[Hashable, int] = {}
        # One row per slot. A free slot has key None and batch id -1.
        self._keys: list[bytes | None] = []
        self._events: list[bytes | bytearray] = []  # the events' JSON, comma-separated
        self._first_lens = array("i")  # the length of the first event's JSON
        # Where the batch's receipts find its outcome: a group and the index in it. The
        # outcome itself is made at seal (or when a receipt asks first): an open batch
        # whose receipts were dropped costs no dict.
        self._groups: list[OutcomeGroup | None] = []
        self._group_index = bytearray()
        self._group: OutcomeGroup = {}  # the group of the batches opened next
        self._group_left = _GROUP  # indexes it has left
        # Counts and sizes in 4 bytes (a batch is at most mParticle's 128 KB): a column
        # costs its item size per open batch, and a service may hold one per user.
        self._counts = array("i")  # events in the batch
        self._bytes = array("i")  # exact length of the batch JSON with the events so far
        self._opened = array("d")  # when the first event came
        self._deadlines = array("d")  # min(age deadline, last event + wait); _INF: none
        self._eligible_at = array("d")  # when it became eligible to leave; _INF: not yet
        # slot -> (size limit, age deadline, debounce) of the batches whose limits are not
        # the defaults (a rule hint, a clock that stepped back); the others have
        # (default size, opened + age, the configured ``wait`` or _INF): three columns
        # less per open batch.
        self._own_limits: dict[int, tuple[int, float, float]] = {}
        self._wait = _INF if limits.wait is None else limits.wait
        # The batch's id (deadline entries name it, stale once it changes); 0: free. Ids
        # are 4 bytes and wrap after 2**32 - 1 batches: an entry naming a batch that
        # long gone has left its FIFO or heap long before.
        self._ids = array("I")
        self._in_fifo = bytearray()  # its deadline entry is in the FIFO, not the heap
        self._free: list[int] = []
        # slot -> (merged user attributes, their fragment), for batches that have some
        self._ua: dict[int, tuple[dict[str, Any], bytes]] = {}
        # slot -> source_request_id, for batches whose id cannot be read back from their
        # first event at seal (a mapped or suffixed id; most batches take the first
        # event's own id, kept only in its JSON: a string per open batch is 65 bytes).
        self._srids: dict[int, str] = {}
        # Keys with something eligible to leave -> since when, in the order they became
        # eligible. Keys in :attr:`muted` (a request in flight) are left out; the
        # scheduler puts them back when their request is over.
        self.eligible: dict[Hashable, float] = {}
        self.muted: set[Hashable] = set()
        # Deadlines. Most batches get one, their age, in the order they open: those
        # wait in a FIFO of (slot, batch id) in two arrays; the others (rule hints,
        # ``wait``, a deadline that moved or a clock that stepped back) in a heap of
        # (deadline, batch id, slot). Entries go stale when a batch is sealed, becomes
        # eligible or its deadline moves.
        self._fifo_slots = array("i")
        self._fifo_ids = array("I")
        self._fifo_head = 0  # entries before it were taken
        self._fifo_last = -_INF  # the deadline last appended to the FIFO
        self._heap: list[tuple[float, int, int]] = []
        self._next_id = 1
        self._seqs = itertools.count()
        # The source_request_ids recorded last (two batches never share one).
        self._recent_ids = RecentIds(_SRID_MEMORY)
        self._events_total = 0

    @property
    def limits(self) -> BatchLimits:
        """The default limits."""
        return self._limits

    @property
    def open_events(self) -> int:
        """Events in open (not yet sealed) batches."""
        return self._events_total

    @property
    def open_batches(self) -> int:
        """Number of open batches."""
        return len(self._slots)

    def batch_bytes(self, key: Hashable) -> int:
        """The JSON length of the open batch of ``key`` (``-1``: none)."""
        slot = self._slots.get(key)
        return -1 if slot is None else self._bytes[slot]

    def bytes_of(self, keys: Iterable[Hashable], stop: int) -> int:
        """The JSON bytes of the open batches of ``keys``, summed until ``stop`` is reached."""
        slots, sizes = self._slots, self._bytes
        total = 0
        for key in keys:
            slot = slots.get(key)
            if slot is not None:
                total += sizes[slot]
                if total >= stop:
                    break
        return total

    def batch_events_of(self, keys: list[Hashable]) -> list[int]:
        """The events in the open batch of each of ``keys`` (``0``: none), in one call."""
        slots, counts = self._slots, self._counts
        return [0 if (slot := slots.get(key)) is None else counts[slot] for key in keys]

    def batch_opened(self, key: Hashable) -> float | None:
        """When the open batch of ``key`` got its first event (``None``: no open batch)."""
        slot = self._slots.get(key)
        return None if slot is None else self._opened[slot]

    def eligible_since(self, key: Hashable) -> float | None:
        """Since when the open batch of ``key`` is eligible (``None``: no open batch, or
        not eligible yet)."""
        slot = self._slots.get(key)
        if slot is None:
            return None
        since = self._eligible_at[slot]
        return None if since == _INF else since

    def open_figures(self) -> tuple[int, float | None]:
        """The bytes of the open batches' JSON, and when the oldest of them got its
        first event (``None``: no open batch); read by telemetry at collection time,
        possibly from another thread (hence the copy)."""
        slots = list(self._slots.values())
        sizes = self._bytes
        # Keys keep the order their batch was opened in: the first is the oldest.
        return sum(sizes[s] for s in slots), self._opened[slots[0]] if slots else None

    def open_keys(self) -> Iterator[Hashable]:
        """Keys of the open batches, in the order the batches were opened."""
        return iter(self._slots)

    def outcomes(self) -> list[BatchOutcome]:
        """The outcomes of the open batches (what a flush waits for besides sealed ones;
        made now for those that had none)."""
        return [self._outcome(s) for s in self._slots.values()]

    def add(self, built: BuiltEventLike, now: float) -> tuple[Receipt, list[SealedBatch]]:
        """Append one event to its key's open batch.

        The open batch is sealed *before* the event when the event would push its
        JSON past ``max_bytes`` or its merged user attributes past the limit, and the
        batch holding the event is sealed when it reaches its size (sealed batches are
        returned, eligible at once). Otherwise the batch becomes eligible when its
        deadline has passed (``{"age": 0}``: at once). O(1): the batch's exact byte
        size is kept up to date.

        Fast path: an event without user attributes or a rule-level ``batch`` hint,
        joining an open batch with the default limits and no ``wait`` debounce, within its
        byte limit and without moving its age deadline (the clock did not go back),
        changes only the batch's events and size; every other case takes the general
        path.

        Returns:
            The event's receipt and the batches sealed by this call (0, 1 or 2, oldest first).

        Raises:
            LimitExceededError: The event alone does not fit in a batch (``batch_bytes``);
                nothing is changed.
        """
        key = built.compact_key
        slot = self._slots.get(key)
        if slot is not None and built.batch is None and not built.user_attributes:
            # Default limits: the default size, age deadline opened + age, no ``wait``.
            if self._plain_open and slot not in self._own_limits:
                body = built.body
                size = self._bytes[slot] + len(body) + 1  # the event and its comma
                age_deadline = self._opened[slot] + self._age
                if size <= self._max_bytes and now + self._age >= age_deadline:
                    events = self._events[slot]
                    if type(events) is not bytes:
                        events += b","
                        events += body
                    elif len(events) < _SHORT_EVENTS:  # a short batch: still one bytes
                        self._events[slot] = b",".join((events, body))
                    else:  # from now on, the batch's own bytearray
                        events = self._events[slot] = bytearray(events)
                        events += b","
                        events += body
                    counts = self._counts
                    count = counts[slot] = counts[slot] + 1
                    self._bytes[slot] = size
                    self._events_total += 1
                    # self._receipt(slot, built.event_id), inline: every event that joins an
                    # open batch passes here.
                    receipt = _new_receipt(Receipt)
                    receipt._holder = self._groups[slot]  # type: ignore[assignment]
                    receipt._index = self._group_index[slot]
                    receipt.event_id = built.event_id
                    eligible_at = self._eligible_at[slot]
                    if count >= self._size:
                        return receipt, [
                            self._seal(slot, now if eligible_at > now else eligible_at)
                        ]
                    if age_deadline <= now and eligible_at == _INF:
                        self._mark(slot, now)
                    return receipt, _NONE_SEALED
        if slot is None and self._plain_open and built.batch is None and not built.user_attributes:
            return self._open_plain(built, now, key)
        return self._add_general(built, now, key, slot)

    def _receipt(self, slot: int, event_id: str) -> Receipt:
        """A receipt for an event of the open batch in ``slot``, without a Python ``__init__``:
        it finds the batch's outcome through the slot's group and its index there."""
        receipt = _new_receipt(Receipt)
        receipt._holder = self._groups[slot]  # type: ignore[assignment]
        receipt._index = self._group_index[slot]
        receipt.event_id = event_id
        return receipt

    def _open_plain(
        self, built: BuiltEventLike, now: float, key: bytes
    ) -> tuple[Receipt, list[SealedBatch]]:
        """:meth:`_add_general` for an event without user attributes or a rule hint that
        opens a batch, with default limits without ``wait`` (most new batches)."""
        body = built.body
        base = built.source_request_id
        srid = self._recent_ids.choose(base)
        # The envelope's length only: its bytes are made once, when the batch is sealed.
        size = _EVENTS_OPEN_LEN + len(body) + envelope_length(key) + source_request_id_length(srid)
        if size > self._max_bytes:
            return self._add_general(built, now, key, None)  # it refuses the event
        slot = self._open_batch(key, base, srid, now, body, built.event_id)
        self._bytes[slot] = size
        self._events_total += 1
        receipt = self._receipt(slot, built.event_id)
        if self._size <= 1:  # the size asked for: sealed, eligible at once
            return receipt, [self._seal(slot, now)]
        deadline = now + self._age  # the default age deadline: opened + age
        if deadline <= now:
            self._mark(slot, now)
            return receipt, _NONE_SEALED
        self._deadlines[slot] = deadline
        if deadline >= self._fifo_last:
            self._fifo_slots.append(slot)
            self._fifo_ids.append(self._ids[slot])
            self._fifo_last = deadline
            self._in_fifo[slot] = 1
        else:
            heapq.heappush(self._heap, (deadline, self._ids[slot], slot))
        if self.on_deadline is not None:
            self.on_deadline(deadline)
        return receipt, _NONE_SEALED

    def _add_general(
        self, built: BuiltEventLike, now: float, key: bytes, slot: int | None
    ) -> tuple[Receipt, list[SealedBatch]]:
        """:meth:`add` for every case; ``key`` is the event's :func:`compact_key`, ``slot``
        its open batch (``None``: none)."""
        body = built.body
        new_ua = built.user_attributes or None
        sealed: list[SealedBatch] = []
        merged = None
        if slot is None:
            fits = False
        elif new_ua:
            merged = self._merge(slot, len(body), new_ua)
            fits = merged is not None
        else:
            size = self._bytes[slot] + len(body) + 1  # the event and its comma
            fits = size <= self._limits.max_bytes
        fresh = not fits  # the event opens a batch
        if fresh:
            base = built.source_request_id
            srid = self._recent_ids.choose(base)
            ua_fragment = user_attributes_fragment(new_ua)
            size = (
                _EVENTS_OPEN_LEN
                + len(body)
                + envelope_length(key)
                + len(ua_fragment)
                + source_request_id_length(srid)
            )
            if size > self._limits.max_bytes:
                raise LimitExceededError(
                    f"event {built.event_id!r} needs a {size}-byte batch; mParticle accepts"
                    f" at most {self._limits.max_bytes} bytes per batch",
                    limit="batch_bytes",
                )
            if slot is not None:
                # A hard limit: this batch cannot grow, so it is eligible from now on.
                eligible_at = self._eligible_at[slot]
                sealed.append(self._seal(slot, eligible_at if eligible_at < now else now))
            slot = self._open_batch(key, base, srid, now, body, built.event_id)
            if new_ua:
                self._ua[slot] = (dict(new_ua), ua_fragment)
        else:
            assert slot is not None
            if merged is not None:
                ua, fragment, size = merged
                self._ua[slot] = (ua, fragment)
            events = self._events[slot]
            if type(events) is not bytes:
                events += b","
                events += body
            elif len(events) < _SHORT_EVENTS:
                self._events[slot] = b",".join((events, body))
            else:
                events = self._events[slot] = bytearray(events)
                events += b","
                events += body
            self._counts[slot] += 1
        self._bytes[slot] = size
        self._events_total += 1
        receipt = self._receipt(slot, built.event_id)

        # The batch's size limit, age deadline and debounce (_INF: none) so far.
        own = None if fresh else self._own_limits.get(slot)
        if fresh:  # none yet: the event's set them
            size_limit, age_deadline, debounce = _NO_SIZE_LIMIT, _INF, _INF
        elif own is None:  # the defaults
            size_limit, age_deadline, debounce = (
                self._size,
                self._opened[slot] + self._age,
                self._wait,
            )
        else:
            size_limit, age_deadline, debounce = own
        hint = built.batch
        limits = self._limits if hint is None else self._limits.override(hint)
        if limits.size is not None and limits.size < size_limit:
            size_limit = limits.size
        eligible_at = self._eligible_at[slot]
        if self._counts[slot] >= size_limit:  # the size asked for: eligible at once
            sealed.append(self._seal(slot, now if eligible_at > now else eligible_at))
            return receipt, sealed
        if eligible_at != _INF:  # already eligible: it leaves when the scheduler takes it
            self._set_limits(slot, size_limit, age_deadline, debounce)
            return receipt, sealed
        if now + limits.age < age_deadline:
            age_deadline = now + limits.age
        wait = limits.wait
        if wait is not None and wait < debounce:
            debounce = wait
        self._set_limits(slot, size_limit, age_deadline, debounce)
        deadline = age_deadline
        if debounce != _INF and now + debounce < deadline:
            deadline = now + debounce
        if deadline <= now:
            self._mark(slot, now)
        elif deadline != self._deadlines[slot]:
            first = self._deadlines[slot] == _INF
            self._deadlines[slot] = deadline
            if first and deadline >= self._fifo_last:
                self._fifo_slots.append(slot)
                self._fifo_ids.append(self._ids[slot])
                self._fifo_last = deadline
                self._in_fifo[slot] = 1
            else:
                self._in_fifo[slot] = 0
                heapq.heappush(self._heap, (deadline, self._ids[slot], slot))
            if self.on_deadline is not None:
                self.on_deadline(deadline)
        return receipt, sealed

    def _set_limits(self, slot: int, size_limit: int, age_deadline: float, debounce: float) -> None:
        """Keep the batch's limits aside unless they are the defaults."""
        if (
            size_limit == self._size
            and debounce == self._wait
            and age_deadline == self._opened[slot] + self._age
        ):
            self._own_limits.pop(slot, None)
        else:
            self._own_limits[slot] = (size_limit, age_deadline, debounce)

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
        if self._heap:
            marked = 0
            while marked < budget:
                slot = self._next_due(limit)
                if slot < 0:
                    break
                self._mark(slot, now)
                marked += self._counts[slot]
            return marked
        return self._due_fifo(now, limit, budget)

    def _due_fifo(self, now: float, limit: float, budget: float) -> int:
        """:meth:`due` when every deadline waits in the FIFO (no heap entry): one pass
        over its front, and one call of :attr:`on_deadline` for all the batches marked."""
        fifo_slots, fifo_ids, ids = self._fifo_slots, self._fifo_ids, self._ids
        in_fifo, eligible_at, deadlines = self._in_fifo, self._eligible_at, self._deadlines
        counts, keys = self._counts, self._keys
        eligible, muted = self.eligible, self.muted
        head = self._fifo_head
        end = len(fifo_slots)
        marked = 0
        woke = False
        while head < end and marked < budget:
            slot = fifo_slots[head]
            if ids[slot] != fifo_ids[head] or not in_fifo[slot] or eligible_at[slot] != _INF:
                head += 1  # stale: the batch was sealed, marked or its deadline moved
                continue
            if deadlines[slot] > limit:
                break
            head += 1
            # _mark(slot, now), inline
            eligible_at[slot] = now
            deadlines[slot] = _INF
            key = keys[slot]
            if key not in muted and key not in eligible:
                eligible[key] = now
                woke = True
            marked += counts[slot]
        if head >= 4096 and head * 2 >= end:
            del fifo_slots[:head]
            del fifo_ids[:head]
            head = 0
        self._fifo_head = head
        if woke and self.on_deadline is not None:
            self.on_deadline(now)  # something may leave now: wake whoever sleeps
        return marked

    def next_deadline(self) -> float | None:
        """The earliest time at which :meth:`due` will mark a batch (``None``: none will)."""
        fifo_slot, heap = self._drop_stale()
        if fifo_slot >= 0:
            at = self._deadlines[fifo_slot]
            if not heap or at <= heap[0][0]:
                return at
        return heap[0][0] if heap else None

    def _next_due(self, limit: float) -> int:
        """Remove and return the open batch with the earliest deadline, if ≤ ``limit``
        (``-1``: none)."""
        fifo_slot, heap = self._drop_stale()
        if fifo_slot >= 0 and (not heap or self._deadlines[fifo_slot] <= heap[0][0]):
            if self._deadlines[fifo_slot] <= limit:
                self._fifo_pop()
                return fifo_slot
        elif heap and heap[0][0] <= limit:
            return heapq.heappop(heap)[2]
        return -1

    def _fifo_pop(self) -> None:
        head = self._fifo_head = self._fifo_head + 1
        if head >= 4096 and head * 2 >= len(self._fifo_slots):
            del self._fifo_slots[:head]
            del self._fifo_ids[:head]
            self._fifo_head = 0

    def _drop_stale(self) -> tuple[int, list[tuple[float, int, int]]]:
        """Drop the stale entries at the front of the FIFO and the heap; return the slot
        at the front of the FIFO (``-1``: empty) and the heap."""
        fifo_slots, fifo_ids, ids = self._fifo_slots, self._fifo_ids, self._ids
        in_fifo, eligible_at = self._in_fifo, self._eligible_at
        front = -1
        while self._fifo_head < len(fifo_slots):
            slot = fifo_slots[self._fifo_head]
            if (
                ids[slot] == fifo_ids[self._fifo_head]
                and in_fifo[slot]
                and eligible_at[slot] == _INF
            ):
                front = slot
                break
            self._fifo_pop()
        heap, deadlines = self._heap, self._deadlines
        while heap:
            deadline, batch_id, slot = heap[0]
            if ids[slot] == batch_id and deadlines[slot] == deadline and eligible_at[slot] == _INF:
                break
            heapq.heappop(heap)  # stale: the batch was sealed, marked or its deadline moved
        return front, heap

    def seal(self, key: Hashable) -> SealedBatch:
        """Seal the open batch of ``key`` (the scheduler takes it into a request).

        Raises:
            KeyError: ``key`` has no open batch.
        """
        slot = self._slots[key]
        eligible_at = self._eligible_at[slot]
        return self._seal(slot, eligible_at if eligible_at != _INF else 0.0)

    def seal_within(self, key: Hashable, room: int) -> SealedBatch | int:
        """Seal the open batch of ``key`` if its JSON takes at most ``room`` bytes (what
        the scheduler's take does per batch, in one call); else its size in bytes
        (``-1``: ``key`` has no open batch)."""
        slot = self._slots.get(key)
        if slot is None:
            return -1
        size = self._bytes[slot]
        if size > room:
            return size
        eligible_at = self._eligible_at[slot]
        return self._seal(slot, eligible_at if eligible_at != _INF else 0.0)

    def _mark(self, slot: int, now: float) -> None:
        """Make ``slot`` eligible: it no longer seals on its own, the scheduler takes it."""
        self._eligible_at[slot] = now
        self._deadlines[slot] = _INF  # its deadline entry goes stale
        key = self._keys[slot]
        if key not in self.muted and key not in self.eligible:
            self.eligible[key] = now
            if self.on_deadline is not None:
                self.on_deadline(now)  # something may leave now: wake whoever sleeps

    # -- internals ---------------------------------------------------------------------------

    def _merge(
        self, slot: int, body_len: int, new_ua: Mapping[str, Any]
    ) -> tuple[dict[str, Any], bytes, int] | None:
        """The batch's user attributes, their fragment and its size with the event added;
        ``None`` when the event does not fit (the batch must be sealed first)."""
        current = self._ua.get(slot)
        ua = {**current[0], **new_ua} if current is not None else dict(new_ua)
        if len(ua) > self._limits.max_user_attributes:
            return None
        fragment = user_attributes_fragment(ua)
        old = len(current[1]) if current is not None else 0
        size = self._bytes[slot] + body_len + 1 + len(fragment) - old
        if size > self._limits.max_bytes:
            return None
        return ua, fragment, size

    def _open_batch(
        self,
        key: bytes,
        base: str,
        srid: str,
        now: float,
        body: bytes,
        event_id: str,
    ) -> int:
        """A slot for the new batch of ``key`` (its :func:`compact_key`) holding its first
        event, ``body``."""
        self._recent_ids.record(base, srid)
        if self._free:
            slot = self._free.pop()
        else:
            slot = len(self._keys)
            self._keys.append(None)
            self._events.append(_NO_EVENTS)
            self._groups.append(None)
            self._group_index.append(0)
            for column in (self._counts, self._bytes, self._first_lens):
                column.append(0)
            self._ids.append(0)
            for times in (self._opened, self._deadlines, self._eligible_at):
                times.append(_INF)
            self._in_fifo.append(0)
        # Bytes, not the key: a named tuple is always tracked by the collector, and a tuple
        # of tuples stays tracked until its second collection, long enough to be promoted.
        self._slots[key] = slot
        self._keys[slot] = key
        self._events[slot] = body
        self._first_lens[slot] = len(body)
        # An id the JSON escapes never matches: it is kept.
        if srid != event_id or not body.endswith(_SMID + event_id.encode() + _SMID_END):
            self._srids[slot] = srid
        left = self._group_left - 1
        if left < 0:  # the group has no index left: the next batches share a new one
            self._group = {}
            left = _GROUP - 1
        self._group_left = left
        self._groups[slot] = self._group
        self._group_index[slot] = left
        self._counts[slot] = 1
        self._opened[slot] = now
        self._deadlines[slot] = _INF
        self._eligible_at[slot] = _INF
        batch_id = self._next_id
        self._next_id = batch_id + 1 if batch_id < _LAST_ID else 1
        self._ids[slot] = batch_id
        self._in_fifo[slot] = 0
        return slot

    def _outcome(self, slot: int) -> BatchOutcome:
        """The outcome of the open batch in ``slot``, made and stored in its group (where
        its receipts look) if none of them asked for it yet."""
        group = self._groups[slot]
        assert group is not None
        index = self._group_index[slot]
        outcome = group.get(index)
        if outcome is None:
            outcome = group[index] = new_outcome()
        return outcome

    def _seal(self, slot: int, eligible_at: float) -> SealedBatch:
        key = self._keys[slot]
        assert key is not None
        del self._slots[key]
        count = self._counts[slot]
        self._events_total -= count
        events = self._events[slot]
        ua = self._ua.pop(slot, None) if self._ua else None
        fragments = compact_fragments(key)
        srid = self._srids.pop(slot, None) if self._srids else None
        if srid is None:
            # The first event's id, read back from its JSON: the bytes between its quotes
            # are the id as JSON writes it (it holds nothing JSON escapes, or the check at
            # open would have failed), so they go into the batch as they are.
            end = self._first_lens[slot] - len(_SMID_END)
            raw = bytes(events[events.rindex(b'"', 0, end) + 1 : end])
            srid = raw.decode()
            body = encode_joined_batch_id_bytes(
                fragments, events, b"" if ua is None else ua[1], raw
            )
        else:
            body = encode_joined_batch(fragments, events, b"" if ua is None else ua[1], srid)
        assert len(body) == self._bytes[slot], (len(body), self._bytes[slot])  # O(1) accounting
        # SealedBatch(...) without the keyword parsing of a Python __init__ (one per batch).
        batch = _new_sealed(SealedBatch)
        batch.key = key
        batch.body = body
        batch.event_count = count
        batch.source_request_id = srid
        batch.seq = next(self._seqs)
        batch.outcome = self._outcome(slot)
        batch.eligible_at = eligible_at
        batch.opened = self._opened[slot]
        batch.attempts = batch.ambiguous_attempts = 0
        # The slot is free: its deadline entries go stale, its values are let go now.
        self._keys[slot] = None
        self._events[slot] = _NO_EVENTS
        self._groups[slot] = None
        if self._own_limits:
            self._own_limits.pop(slot, None)
        self._ids[slot] = 0
        self._free.append(slot)
        return batch
