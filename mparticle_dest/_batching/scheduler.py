"""Which eligible batches leave in the next request, and when: pure, synchronous, no clock.

mParticle meters a workspace in batches per second, so a batch is the scarce resource.
The accumulator makes a batch *eligible* (its age or size was reached) without sealing
it; the :class:`Scheduler` seals it only when it takes it into a request, so it keeps
growing while it waits for the quota. The policy:

* **When a request leaves.** As soon as it would be full (``max_batches`` eligible
  batches, or their bytes fill ``max_bytes``), when its oldest eligible batch has
  waited ``linger`` seconds, or at once while a flush or the close is waiting
  (:attr:`Scheduler.urgent`) or throttled batches are waiting to go back. The caller
  (the engine) also asks its pacer: the quota decides the rate.
* **Which batches go.** Throttled batches first (they go back to the front of their
  user's line), then batches eligible for ``max_delay`` seconds or more, oldest first
  (the latency bound). When more batches are eligible than a request holds and a quota
  is known (``quota_known``: the quota is the bottleneck), the rest are the ones with the
  most events per quota token among the :data:`SCAN` longest-eligible; otherwise, while
  no quota is known (no token to save), and while a flush or the close waits (every
  batch goes anyway), in the order they became eligible.
* **Tokens are not spent on young batches.** When the quota binds and its rate is
  declared (``quota_rate``), each user's batch leaves about once per *cycle*
  (eligible batches ÷ batches per second) whatever happens, so a batch open for less
  than :data:`HOLD_SHARE` of a cycle (at most ``max_delay``) is held back: in steady
  state no batch is that young when its turn comes, but at the start of a burst the
  first tokens would otherwise go to batches of a few events each, every one of them
  a token that a full batch needs later (and the close sends one batch per user
  anyway). Batches sealed by a limit or throttled, a flush or the close, and a buffer
  three quarters full (``max_events``) are never held. A learned rate does not count:
  tokens one process leaves unused go to the others sharing the workspace, whose
  learned rates grow and keep the lead (decreases are multiplicative).
* **Order per user.** At most one request in flight carries a key (the key is *muted*
  until its request is over, retries included), sealed batches of a key wait in its
  lane in order, and a throttled batch goes back to the front of its lane.

A batch that is not eligible is never added to a request because one is being sent,
and a request is never filled by cutting batches short.
"""

from __future__ import annotations

import itertools
import math
from collections import deque
from collections.abc import Callable, Hashable, Iterable

from .._mparticle import MAX_BATCHES_PER_REQUEST, MAX_REQUEST_BYTES
from .accumulator import Accumulator, SealedBatch

__all__ = ["DEFAULT_LINGER", "DEFAULT_MAX_DELAY", "HOLD_SHARE", "SCAN", "Scheduler"]

#: Seconds a request waits for more eligible batches before it leaves not full.
DEFAULT_LINGER = 0.05
#: Seconds after which an eligible batch goes first, whatever its size (latency bound).
DEFAULT_MAX_DELAY = 10.0
#: Longest-eligible keys among which the fullest batches are picked when the quota binds.
SCAN = 1024
#: Batches in a row that may be passed over for not fitting a request's last bytes.
_MAX_SKIPS = 32
#: Under a binding quota, the share of a cycle a batch must have been open to take a token.
HOLD_SHARE = 0.75
_NEVER = -math.inf  # the opening time of a batch that is never held (sealed, throttled)
#: Keys taken from the eligible table before it may be rebuilt (see Scheduler.take).
_COMPACT_AFTER = 4 * SCAN
_ANY_SIZE = 2**62  # the room of an empty request: its first batch always goes


class Scheduler:
    """The line of eligible batches in front of the quota.

    Args:
        acc: The accumulator whose eligible batches are scheduled (it shares its
            ``eligible`` and ``muted`` tables with the scheduler).
        max_batches: Most batches in one request (mParticle: 100).
        max_bytes: Most bytes in one ``/v2/bulkevents`` body (mParticle: 256 KB).
        linger: Seconds a request that is not full waits after its oldest batch
            became eligible.
        max_delay: Seconds after which an eligible batch goes before fuller ones; also
            the longest a batch is held back for being young.
        quota_rate: The declared quota's current rate in batches per second (``None``:
            no declared quota, nothing is held back).
        max_events: The buffer's cap in events: from three quarters of it in open
            batches on, nothing is held back (room matters more then).
        quota_known: Whether a quota is known now (declared, or learned from mParticle's
            answers); while it is not, batches go in the order they became eligible
            (``None``: always known, the fullest go first when more are eligible than
            a request holds).
    """

    def __init__(
        self,
        acc: Accumulator,
        *,
        max_batches: int = MAX_BATCHES_PER_REQUEST,
        max_bytes: int = MAX_REQUEST_BYTES,
        linger: float = DEFAULT_LINGER,
        max_delay: float = DEFAULT_MAX_DELAY,
        quota_rate: Callable[[], float | None] | None = None,
        max_events: int | None = None,
        quota_known: Callable[[], bool] | None = None,
    ) -> None:
        self.acc = acc
        self.max_batches = max_batches
        self.max_bytes = max_bytes
        self.linger = linger
        self.max_delay = max_delay
        self._quota_rate = quota_rate
        self._quota_known = quota_known
        self._max_events = max_events
        self._eligible = acc.eligible
        self._muted = acc.muted
        # Sealed batches waiting, per key, in order: sealed by a hard limit, or throttled
        # and put back. Only keys that have some are in it (few: no container per user).
        self._lanes: dict[Hashable, deque[SealedBatch]] = {}
        # Keys whose throttled batch goes back first, in the order they came back.
        self._front: dict[Hashable, float] = {}
        self._taken = 0  # keys taken from the eligible table since it was last rebuilt
        #: While > 0 (a flush or the close is waiting), requests leave without lingering.
        self.urgent = 0

    @property
    def eligible_keys(self) -> int:
        """Keys with a batch eligible to leave, keys in flight excluded (a throttled key
        may count twice)."""
        return len(self._eligible) + len(self._front)

    def waiting_batches(self) -> list[SealedBatch]:
        """The sealed batches waiting, copied (telemetry reads them from its own thread)."""
        return [batch for lane in list(self._lanes.values()) for batch in list(lane)]

    def add_sealed(self, batch: SealedBatch) -> None:
        """Queue a batch sealed by a hard limit behind the earlier batches of its key."""
        key = batch.key
        lane = self._lanes.get(key)
        if lane is None:
            lane = self._lanes[key] = deque()
        lane.append(batch)
        if key not in self._muted and key not in self._eligible:
            self._eligible[key] = batch.eligible_at

    def ready_at(self, now: float) -> float | None:
        """When the next request should leave (``now`` or earlier: now; ``None``: nothing
        is eligible). The caller's pacer may hold it back further."""
        eligible = self._eligible
        if self._front or (eligible and self.urgent):
            return now
        if not eligible:
            return None
        hold = self.hold()
        if hold:
            return self._ripe_at(now, hold)
        if len(eligible) >= self.max_batches:
            return now
        at = next(iter(eligible.values())) + self.linger
        if at <= now:
            return now
        # Full by bytes before the linger: no reason to wait.
        total = len(eligible) + 1
        if self._lanes:
            for key in eligible:
                total += self._size(key)
        else:
            total += self.acc.bytes_of(eligible, self.max_bytes)
        return now if total >= self.max_bytes else at

    def hold(self) -> float:
        """Seconds a batch must have been open before it takes a quota token (``0.0``:
        none; see the module docstring)."""
        eligible = len(self._eligible)
        if (
            self._quota_rate is None
            or self.urgent
            or eligible <= self.max_batches + _MAX_SKIPS  # the quota does not bind
        ):
            return 0.0
        rate = self._quota_rate()
        if rate is None or rate <= 0.0:
            return 0.0
        if self._max_events is not None and self.acc.open_events * 4 >= self._max_events * 3:
            return 0.0
        cycle = eligible / rate
        return min(self.max_delay, HOLD_SHARE * cycle)

    def take(self, now: float, max_batches: int | None = None) -> list[SealedBatch]:
        """Seal and take the batches of one request and mute their keys.

        Args:
            now: The current time.
            max_batches: Fewer batches than ``self.max_batches`` (the pacer's budget).

        Returns ``[]`` when nothing eligible can go (every such key is in flight).
        """
        out: list[SealedBatch] = []
        room = self.max_bytes - 2  # "[" + batches joined by "," + "]"
        total = 0
        skips = 0
        if max_batches is None or max_batches > self.max_batches:
            max_batches = self.max_batches
        muted, eligible, front, lanes = self._muted, self._eligible, self._front, self._lanes
        seal_within = self.acc.seal_within
        for key in self._candidates(now, max_batches):
            if key in muted:
                continue  # taken already (a key may be both in front and eligible)
            # The first batch always goes: a batch (≤ 128 KB) fits an empty request.
            fits = room - total - len(out) if out else _ANY_SIZE
            lane = lanes.get(key) if lanes else None
            if lane:
                size = len(lane[0].body)
                if size > fits:
                    skips += 1
                    if skips >= _MAX_SKIPS:
                        break
                    continue
                batch = lane.popleft()
                if not lane:
                    del lanes[key]
            else:
                got = seal_within(key, fits)
                if type(got) is int:
                    if got < 0:  # nothing left for this key (its batch was sealed elsewhere)
                        eligible.pop(key, None)
                        front.pop(key, None)
                        continue
                    skips += 1
                    if skips >= _MAX_SKIPS:
                        break
                    continue
                batch = got  # type: ignore[assignment]
                size = len(batch.body)
            skips = 0
            eligible.pop(key, None)
            if front:
                front.pop(key, None)
            muted.add(key)
            out.append(batch)
            total += size
            if len(out) >= max_batches:
                break
        # Keys leave the eligible table from its front, where a dict keeps the holes of
        # deleted keys until it grows again: every look at its first keys (each request's
        # candidates, ready_at) steps over all of them. Rebuilt when the holes outnumber
        # the keys (one copy of the table per as many keys taken).
        self._taken += len(out)
        if self._taken >= _COMPACT_AFTER and self._taken >= len(eligible):
            self._taken = 0
            items = list(eligible.items())
            eligible.clear()
            eligible.update(items)
        return out

    def release(
        self, batches: Iterable[SealedBatch], throttled: Iterable[SealedBatch] = ()
    ) -> None:
        """The request carrying ``batches`` is over: unmute their keys.

        ``throttled`` batches (a subset, answered 429) go back to the front of their
        key's lane and of the line; the keys' next batches become eligible again.
        """
        lanes, front, eligible, muted, acc = (
            self._lanes,
            self._front,
            self._eligible,
            self._muted,
            self.acc,
        )
        for batch in throttled:
            lane = lanes.get(batch.key)
            if lane is None:
                lane = lanes[batch.key] = deque()
            lane.appendleft(batch)
            front[batch.key] = batch.eligible_at
        for batch in batches:
            key = batch.key
            muted.discard(key)
            if key in front or key in eligible:
                continue
            lane = lanes.get(key)
            if lane:
                eligible[key] = lane[0].eligible_at
                continue
            since = acc.eligible_since(key)
            if since is not None:
                eligible[key] = since

    def drain(self, limit: int | None = None) -> list[SealedBatch]:
        """Remove and return batches not taken yet: the sealed ones waiting first, then the
        open ones (sealed now, in the order they were opened); at most ``limit`` (a close
        fails what is left in slices). ``[]`` once nothing is left."""
        budget = math.inf if limit is None else limit
        out: list[SealedBatch] = []
        lanes = self._lanes
        while lanes and len(out) < budget:
            out.extend(lanes.pop(next(iter(lanes))))
        keys = self.acc.open_keys()
        if limit is not None:
            keys = itertools.islice(keys, max(limit - len(out), 0))
        out.extend([self.acc.seal(key) for key in list(keys)])
        if not lanes and not self.acc.open_batches:
            self._front.clear()
            self._eligible.clear()
        out.sort(key=lambda b: b.seq)
        return out

    # -- internals ---------------------------------------------------------------------------

    def _candidates(self, now: float, max_batches: int) -> list[Hashable]:
        """Keys in the order the next request considers them (see the module docstring)."""
        out = list(self._front)
        eligible = self._eligible
        want = max_batches + _MAX_SKIPS
        if len(eligible) <= want:
            out.extend(eligible)
            return out
        if self.urgent or (self._quota_known is not None and not self._quota_known()):
            # A flush or the close sends every batch anyway, and without a quota no token
            # is saved by any order: ranking them would cost a read of SCAN counts per
            # request (at many users, cache misses in a large table) for nothing.
            out.extend(itertools.islice(eligible, want))
            return out
        # The quota binds: more eligible batches than a request holds.
        bound = now - self.max_delay
        overdue = 0
        for key, since in eligible.items():
            if since > bound or overdue >= want:
                break
            out.append(key)
            overdue += 1
        window = list(itertools.islice(eligible, overdue, SCAN))
        hold = self.hold()
        if hold:
            young = now - hold
            window = [key for key in window if self._opened(key) <= young]
        events = self.acc.batch_events_of(window)
        lanes = self._lanes
        if lanes:
            for i, key in enumerate(window):
                lane = lanes.get(key)
                if lane:
                    events[i] = lane[0].event_count
        # The fullest first; a stable sort keeps the longest-eligible first among equals.
        fullest = sorted(range(len(window)), key=events.__getitem__, reverse=True)
        out.extend([window[i] for i in fullest[:want]])
        return out

    def _ripe_at(self, now: float, hold: float) -> float:
        """:meth:`ready_at` while young batches are held: now when the batches old
        enough fill a request, else when the first of them has lingered."""
        batches = 0
        total = 1  # "[" ... "]" and the commas
        first = math.inf
        for key, since in itertools.islice(self._eligible.items(), SCAN):
            ripe = self._opened(key) + hold
            if ripe < since:
                ripe = since
            if ripe < first:
                first = ripe
            if ripe <= now:
                batches += 1
                total += self._size(key) + 1
                if batches >= self.max_batches or total >= self.max_bytes:
                    return now
        at = first + self.linger
        return now if at <= now else at

    def _opened(self, key: Hashable) -> float:
        """When the key's next batch was opened (:data:`_NEVER` for a sealed one)."""
        if self._lanes.get(key):
            return _NEVER
        opened = self.acc.batch_opened(key)
        return _NEVER if opened is None else opened

    def _size(self, key: Hashable) -> int:
        """Bytes of the key's next batch (``-1``: the key has none)."""
        lane = self._lanes.get(key)
        if lane:
            return len(lane[0].body)
        return self.acc.batch_bytes(key)
