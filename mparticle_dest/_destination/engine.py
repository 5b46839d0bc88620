"""The delivery engine behind ``Destination``: admission, the quota, senders, outcomes.

:class:`Engine` owns the accumulator and the scheduler, the buffer and its wait, a
fixed set of ``max_in_flight`` sender tasks, the pacer, and the accounting of every
accepted event until its outcome is final (which frees room in the buffer). It talks
to HTTP through a :class:`~mparticle_dest._delivery.Sender` (the ``Deliverer``; tests
plug in others). It runs on one event loop without locks: everything that touches
its state runs between two awaits, so no other task can interleave.

Each sender loops: wait until the scheduler has a request ready (full, or its oldest
eligible batch lingered) and the pacer lets it go, take it (this is when its batches
are sealed), send it, settle the outcome. A 429 is not an outcome: its batches go back
to the front of the line and the pacer slows down.
"""

from __future__ import annotations

import itertools
import logging
import math
import time
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING

import anyio
from anyio.abc import TaskStatus

from .._batching import Accumulator, Scheduler, SealedBatch
from .._delivery import Pacer
from .._exceptions import BufferFullError, DeliveryError
from .._receipt import (
    BatchOutcome,
    Receipt,
    fail_outcome,
    outcome_is_final,
    resolve_delivered,
    wait_outcome,
)
from .options import DeliveryOptions, FailedBatch
from .stats import Counters, Stats

if TYPE_CHECKING:
    from .._delivery import BatchResult, Sender

__all__ = ["Engine"]

logger = logging.getLogger("mparticle_dest")

_INF = math.inf
# Open batches made eligible per step of a flush or close (then the loop gets a turn).
_SLICE_EVENTS = 1_000
# Batches sealed and failed per step when the close timeout runs out.
_SLICE_BATCHES = 250
# At most one "the quota is the bottleneck" warning per this many seconds.
_QUOTA_WARNING_EVERY = 60.0


class Engine:
    """Batches on their way, from the first event to their final outcome.

    Args:
        acc: The accumulator (open batches).
        scheduler: What leaves in each request, and when.
        options: The destination's delivery options.
        counters: The destination's counters, updated here.
        pacer: The batch-rate pacer shared by the senders.
        is_open: Whether the destination still accepts events (a push waiting for
            room gives up when it no longer does).
        closed_error: The error for a push refused because the destination closed.
        on_broken: Called once if the background stops on an internal error.
    """

    def __init__(
        self,
        acc: Accumulator,
        scheduler: Scheduler,
        options: DeliveryOptions,
        counters: Counters,
        pacer: Pacer,
        *,
        is_open: Callable[[], bool],
        closed_error: Callable[[], Exception],
        on_broken: Callable[[], object] | None = None,
    ) -> None:
        self.acc = acc
        # Set while a sender sleeps (see _next_request): with none asleep there is no
        # one to wake, and opening or marking a batch calls nothing.
        acc.on_deadline = None
        self.scheduler = scheduler
        self.options = options
        self.counters = counters
        self.pacer = pacer
        self._is_open = is_open
        self._closed_error = closed_error
        self._on_broken = on_broken
        self.cap = options.max_buffered_events
        self.sender: Sender | None = None
        self.buffered = 0  # accepted events whose outcome is not final
        self.in_flight = 0
        self.broken = False  # the background stopped on an internal error
        self._unresolved: dict[int, SealedBatch] = {}  # sealed, not final; by seq
        self._full_warned = False
        self._quota_warned_at = -_INF
        self._wake: anyio.Event | None = None  # set to make idle senders look again
        self._wake_until = _INF  # when the idle senders will look anyway
        self._room: anyio.Event | None = None  # set when buffered events drop below the cap
        self._answered = False  # a first request was settled
        self._first: anyio.Event | None = None  # set then
        self._done: anyio.Event | None = None
        self._scope: anyio.CancelScope | None = None
        # Sealing order of batches handed over already sealed (resend); below the accumulator's.
        self._resent_seqs = itertools.count(-1, -1)

    # -- admission (the push hot path) ------------------------------------------------------

    def queue_sealed(self, sealed: list[SealedBatch]) -> None:
        """Batches a hard limit sealed while ``push`` added an event (``Destination.push``
        adds it to the accumulator and counts it in :attr:`buffered` itself: one call
        less per event): eligible at once."""
        for batch in sealed:
            self._enqueue(batch)
        self._wake_senders()

    async def wait_for_room(self, event_id: str) -> Receipt | None:
        """Apply the full-buffer policy; ``None`` means there is room now.

        A full buffer is never relieved by cutting batches short: when few batches
        are eligible, the oldest open ones become eligible (they keep growing until
        they leave), and ``push`` waits, drops or raises as the policy says.
        """
        counters = self.counters
        self._make_eligible_at_cap()
        self._warn_if_quota_bound()
        policy = self.options.full_policy
        if policy == "drop":
            counters.dropped += 1
            if not self._full_warned:
                self._full_warned = True
                logger.warning(
                    "mparticle_dest buffer full (%d events): dropping new events until"
                    " there is room (counted in stats.dropped)",
                    self.cap,
                )
            return Receipt.resolved(event_id, "dropped", "buffer_full")
        if policy == "raise":
            counters.refused += 1
            raise BufferFullError(f"{self.cap} events are buffered (max_buffered_events)")
        timeout = self.options.full_timeout
        try:
            with anyio.move_on_after(timeout) as scope:
                while self.buffered >= self.cap and self._is_open():
                    if self._room is None:
                        self._room = anyio.Event()
                    await self._room.wait()
        except BaseException:  # cancelled while waiting: the event was not accepted
            counters.refused += 1
            raise
        if not self._is_open():
            counters.refused += 1
            raise self._closed_error()
        if scope.cancelled_caught:
            counters.refused += 1
            raise BufferFullError(
                f"no room in the buffer ({self.cap} events) after waiting {timeout} s"
            )
        return None

    def wake_room(self) -> None:
        """Wake the pushes waiting for room (they look again: room, or closed)."""
        if self._room is not None:
            self._room.set()
            self._room = None

    # -- flush and close ----------------------------------------------------------------------

    async def flush(self) -> None:
        """Make every open batch eligible, send without lingering, and wait until every
        batch accepted so far has its final outcome."""
        if self.broken:  # everything accepted has failed already; nothing runs any more
            return
        scheduler = self.scheduler
        scheduler.urgent += 1
        try:
            waits: list[BatchOutcome] = [b.outcome for b in self._unresolved.values()]
            waits += self.acc.outcomes()
            # In slices, so a close with many users does not hold the loop.
            while self.acc.due(anyio.current_time(), until=_INF, max_events=_SLICE_EVENTS):
                self._wake_senders()
                await anyio.lowlevel.checkpoint()
            self._wake_senders()
            # Latest first: batches leave about in the order they became eligible, so
            # once the last is final most others are too, and the flush wakes a few
            # times instead of once per batch.
            for outcome in reversed(waits):
                if not outcome_is_final(outcome):
                    await wait_outcome(outcome)
        finally:
            scheduler.urgent -= 1

    def held_batches(self) -> list[SealedBatch]:
        """Sealed batches whose outcome is not final: taken by a request, or waiting in
        the scheduler (copies: telemetry reads them from its own thread)."""
        held = {batch.seq: batch for batch in list(self._unresolved.values())}
        for batch in self.scheduler.waiting_batches():
            held.setdefault(batch.seq, batch)
        return list(held.values())

    def stats(self) -> Stats:
        """A snapshot of the counters, the sender's and the pacer's figures included."""
        d = self.sender.counters if self.sender is not None else None
        pacer = self.pacer
        return self.counters.snapshot(
            buffered=self.buffered,
            in_flight_requests=self.in_flight,
            requests=d.requests if d else 0,
            retries=d.retries if d else 0,
            bytes_sent=d.bytes_sent if d else 0,
            throttled=d.throttled if d else 0,
            send_rate=pacer.rate,
            quota_limited=pacer.limited(),
        )

    async def stop(self) -> None:
        """Cancel the senders and wait until they are gone."""
        if self._scope is not None:
            self._scope.cancel()
        if self._done is not None:
            await self._done.wait()

    async def fail_leftovers(self) -> None:
        """After the close timeout: everything not final fails with reason ``closed``.

        In slices, with a checkpoint between them: sealing and failing tens of thousands
        of open batches must not hold the loop.
        """
        for _ in self._fail_leftover_slices():
            await anyio.lowlevel.checkpoint()

    def fail_leftovers_now(self) -> None:
        """:meth:`fail_leftovers` in one step, for a close torn down with its event loop
        (nothing left to do after a normal close)."""
        for _ in self._fail_leftover_slices():
            pass

    def _fail_leftover_slices(self) -> Iterator[None]:
        error = DeliveryError(
            f"not delivered: the close timeout ({self.options.close_timeout:g} s) ran out"
        )
        # In flight or waiting sealed first, then the rest slice by slice.
        batches = sorted(self._unresolved.values(), key=lambda b: b.seq) or self._drain_slice()
        while batches:
            for batch in batches:
                self._unresolved.setdefault(batch.seq, batch)
                self.counters.undelivered_at_close += batch.event_count
                self._fail(batch, error, "closed")
                self._forget(batch)
            yield
            batches = self._drain_slice()

    def fail_all(self, error: DeliveryError) -> None:
        batches = sorted(self._unresolved.values(), key=lambda b: b.seq) or self._drain_slice()
        while batches:
            for batch in batches:
                self._unresolved.setdefault(batch.seq, batch)
                self._fail(batch, error, "error")
                self._forget(batch)
            batches = self._drain_slice()

    def _drain_slice(self) -> list[SealedBatch]:
        """Up to a slice of the batches not taken yet (sealed now if they were open)."""
        out = self.scheduler.drain(_SLICE_BATCHES)
        for batch in out:
            if batch.seq not in self._unresolved:
                self.counters.batches += 1
        return out

    # -- the background -----------------------------------------------------------------------

    async def run(self, *, task_status: TaskStatus[None]) -> None:
        """The background: ``max_in_flight`` senders, until :meth:`stop`."""
        self._done = anyio.Event()
        self._first = anyio.Event()
        try:
            # Shielded: when the task running ``async with`` is cancelled, the close
            # still needs the senders to deliver what is buffered. Only aclose() stops
            # them, by cancelling this scope.
            with anyio.CancelScope(shield=True) as scope:
                self._scope = scope
                async with anyio.create_task_group() as senders:
                    for _ in range(self.options.max_in_flight):
                        senders.start_soon(self._sender_loop)
                    task_status.started()
        except Exception as exc:  # a bug: fail loudly, but never lose a receipt
            logger.exception("mparticle_dest: the delivery engine stopped on an internal error")
            self.broken = True
            if self._on_broken is not None:
                self._on_broken()
            self.fail_all(DeliveryError(f"internal error in the delivery engine: {exc!r}"))
        finally:
            self._done.set()

    async def _sender_loop(self) -> None:
        options, pacer = self.options, self.pacer
        while True:
            batches = await self._next_request()
            sender = self.sender
            assert sender is not None
            results: list[BatchResult] | None
            self.in_flight += 1
            try:
                # (The hooks are awaited only when there are some: no coroutine per request.)
                if options.before_send is not None and not await self._before_send(batches):
                    results = None
                else:
                    if options.quota_gate is not None:
                        await pacer.admit(len(batches))
                    results = await sender.send(batches)
            except Exception:
                logger.exception("mparticle_dest: sending a request failed on an internal error")
                results = None
            finally:
                # On cancellation (close timeout) the batches stay unresolved: the close
                # fails them with reason "closed".
                self.in_flight -= 1
            self._settle(batches, results)

    async def _next_request(self) -> list[SealedBatch]:
        """Wait until a request may leave (ready and paced), then take it."""
        acc, scheduler, pacer = self.acc, self.scheduler, self.pacer
        while True:
            now = anyio.current_time()
            acc.due(now)
            at = scheduler.ready_at(now)
            if at is not None and at <= now and not self._answered and self.in_flight:
                # Until the first answer, one request at a time: it tells the pacer about
                # the quota (and the credentials) before the others take their batches.
                assert self._first is not None
                await self._first.wait()
                continue
            if at is not None and at <= now:
                delay = pacer.delay()
                if delay > 0.0:
                    # The quota holds it back: nothing but time changes that.
                    await anyio.sleep(delay)
                    continue
                batches = scheduler.take(now, pacer.request_budget())
                if batches:
                    pacer.charge(len(batches))
                    unresolved = self._unresolved
                    sealed = 0
                    for batch in batches:
                        if batch.seq not in unresolved:  # sealed just now
                            unresolved[batch.seq] = batch
                            sealed += 1
                    self.counters.batches += sealed
                    return batches
                at = None  # every eligible key is in flight: wait for a release
            deadline = acc.next_deadline()
            if deadline is not None and (at is None or deadline < at):
                at = deadline
            if self._wake is None:
                self._wake = anyio.Event()
                self._wake_until = _INF
                acc.on_deadline = self._deadline_added
            wake = self._wake
            if at is not None and at < self._wake_until:
                self._wake_until = at
            with anyio.move_on_after(None if at is None else max(at - now, 0.0)):
                await wake.wait()

    # -- batches sealed elsewhere, and the hook before a first attempt (relays) -------------

    def admit_sealed(self, body: bytes, *, source_request_id: str, event_count: int) -> Receipt:
        """Take a batch sealed earlier (byte for byte) as one more batch to deliver."""
        batch = SealedBatch(
            key=("resend", source_request_id),
            body=body,
            event_count=event_count,
            source_request_id=source_request_id,
            seq=next(self._resent_seqs),
        )
        self.buffered += event_count
        self._enqueue(batch)
        self._wake_senders()
        return Receipt(batch.outcome, None)

    async def _before_send(self, batches: Sequence[SealedBatch]) -> bool:
        """Await ``options.before_send`` with the batches no attempt has carried yet;
        ``False`` (logged) when it refused: the request is not sent."""
        hook = self.options.before_send
        if hook is None:
            return True
        fresh = [batch for batch in batches if batch.attempts == 0]
        if not fresh:
            return True
        try:
            await hook(fresh)
        except Exception as exc:
            logger.warning(
                "mparticle_dest: a request was not sent: %s (its batches fail with reason 'error')",
                exc,
            )
            return False
        return True

    def _wake_senders(self) -> None:
        wake = self._wake
        if wake is not None:
            self._wake = None
            self._wake_until = _INF
            self.acc.on_deadline = None
            wake.set()

    def _deadline_added(self, deadline: float) -> None:
        """An open batch got a new deadline: wake the idle senders if they sleep past it."""
        if deadline < self._wake_until:
            self._wake_senders()

    def _enqueue(self, batch: SealedBatch) -> None:
        self.counters.batches += 1
        self._unresolved[batch.seq] = batch
        self.scheduler.add_sealed(batch)

    def _make_eligible_at_cap(self) -> None:
        """At the cap with little eligible: the oldest open batches become eligible (not
        sealed) until a quarter of the cap is on its way, so room comes back before
        their age without fragmenting the buffer."""
        scheduler = self.scheduler
        if scheduler.eligible_keys or self.in_flight:
            return
        if self.acc.due(anyio.current_time(), until=_INF, max_events=max(self.cap // 4, 1)):
            self._wake_senders()

    def _warn_if_quota_bound(self) -> None:
        pacer = self.pacer
        if not pacer.limited():
            return
        now = time.monotonic()
        if now - self._quota_warned_at < _QUOTA_WARNING_EVERY:
            return
        self._quota_warned_at = now
        rate = pacer.rate
        logger.warning(
            "mparticle_dest buffer full (%d events) because mParticle's batch quota is the"
            " bottleneck (sending about %s batches/s): push waits (full_policy=%r). Raise"
            " max_buffered_events so each user's batch carries more events (see the"
            " buffer sizing in the delivery docs)",
            self.cap,
            "?" if rate is None else f"{rate:.0f}",
            self.options.full_policy,
        )

    # -- outcomes -----------------------------------------------------------------------------

    def _settle(self, batches: list[SealedBatch], results: list[BatchResult] | None) -> None:
        """Record the outcome of one request and make its keys sendable again."""
        if not self._answered:
            self._answered = True
            assert self._first is not None
            self._first.set()
        throttled: list[SealedBatch] = []
        # Every batch not throttled has its final outcome once handled here (or had it
        # before): _forget() for the whole request, waking the room once at the end
        # (nothing runs in between, so that is the same as after each batch).
        unresolved = self._unresolved
        freed = 0
        if results is None:
            error = DeliveryError("not sent: internal error in the delivery engine (see the log)")
            for batch in batches:
                self._fail(batch, error, "error")
                if unresolved.pop(batch.seq, None) is not None:
                    freed += batch.event_count
        else:
            counters = self.counters
            delivered_events = delivered_batches = 0
            for result in results:
                batch = result.batch
                if result.throttled:
                    throttled.append(batch)  # "not yet": back to the front of the line
                    continue
                failure = result.error
                if failure is None:
                    if resolve_delivered(batch.outcome, result.attempts, result.status):
                        delivered_events += batch.event_count
                        delivered_batches += 1
                        if batch.ambiguous_attempts:  # result.possible_duplicate
                            counters.duplicates_suspected += batch.event_count
                else:
                    if delivered_batches:  # the on_error hook may read the stats
                        counters.delivered_events += delivered_events
                        counters.delivered_batches += delivered_batches
                        delivered_events = delivered_batches = 0
                    self._fail(batch, failure, result.reason or "error")
                if unresolved.pop(batch.seq, None) is not None:
                    freed += batch.event_count
            if delivered_batches:
                counters.delivered_events += delivered_events
                counters.delivered_batches += delivered_batches
        if freed:
            self.buffered -= freed
            if self.buffered < self.cap:
                self._full_warned = False
                self.wake_room()
        self.scheduler.release(batches, throttled)
        self._wake_senders()

    def _fail(self, batch: SealedBatch, error: DeliveryError, reason: str) -> None:
        if not fail_outcome(batch.outcome, error, reason, attempts=batch.attempts):
            return
        counters = self.counters
        counters.failed_events += batch.event_count
        counters.failed_batches += 1
        by_reason = counters.failed_by_reason
        by_reason[reason] = by_reason.get(reason, 0) + batch.event_count
        hook = self.options.on_error
        if hook is None:
            return
        failed = FailedBatch(
            source_request_id=batch.source_request_id,
            event_count=batch.event_count,
            reason=reason,
            error=error,
            attempts=batch.attempts,
            body=batch.body,
        )
        try:
            hook(failed)
        except Exception:
            logger.exception("mparticle_dest: the on_error hook raised (ignored)")

    def _forget(self, batch: SealedBatch) -> None:
        if self._unresolved.pop(batch.seq, None) is None:
            return
        self.buffered -= batch.event_count
        if self.buffered < self.cap:
            self._full_warned = False
            self.wake_room()
