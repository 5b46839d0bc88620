"""The delivery engine behind ``Destination``: sealed batches → requests → outcomes.

:class:`Engine` owns the accumulator and the packer, the background flusher and
sender tasks, and the accounting of every accepted event until its outcome is final
(which frees room in the buffer). It runs on one event loop without locks:
everything that touches its state runs between two awaits, so no other task can
interleave.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from typing import Protocol

import anyio
from anyio.abc import TaskGroup, TaskStatus

from .._batching import Accumulator, Packer, SealedBatch
from .._delivery import BatchResult, DeliveryCounters
from .._exceptions import DeliveryError
from .options import DeliveryOptions, FailedBatch
from .stats import Counters

__all__ = ["Engine", "Sender"]

logger = logging.getLogger("mparticle_dest")

_INF = math.inf


class Sender(Protocol):
    """What the engine hands requests to: the HTTP ``Deliverer``, or the dry-run sender.

    ``send`` returns one result per batch and never raises for a delivery outcome; a
    batch it already resolved itself (the dry run: ``skipped``) is only forgotten.
    """

    counters: DeliveryCounters

    async def send(self, batches: Sequence[SealedBatch]) -> list[BatchResult]: ...


class Engine:
    """Batches on their way, from sealing to their final outcome.

    Args:
        acc: The accumulator (open batches).
        packer: The queue of sealed batches.
        options: The destination's delivery options.
        counters: The destination's counters, updated here.
        on_broken: Called once if the background stops on an internal error.
    """

    def __init__(
        self,
        acc: Accumulator,
        packer: Packer,
        options: DeliveryOptions,
        counters: Counters,
        *,
        on_broken: Callable[[], object] | None = None,
    ) -> None:
        self.acc = acc
        acc.on_deadline = self.deadline_added
        self._on_broken = on_broken
        self.packer = packer
        self.options = options
        self.counters = counters
        self.cap = options.max_buffered_events
        self.deliverer: Sender | None = None
        self.buffered = 0  # accepted events whose outcome is not final
        self.unresolved: dict[int, SealedBatch] = {}  # sealed, not final; by seq
        self.in_flight = 0
        self.full_warned = False
        self.broken = False  # the background stopped on an internal error
        self.senders: TaskGroup | None = None
        self.wake: anyio.Event | None = None  # set to make the flusher look again
        self.flusher_until = _INF  # when the sleeping flusher will look anyway
        self.room: anyio.Event | None = None  # set when buffered events drop below the cap
        self.done: anyio.Event | None = None
        self._scope: anyio.CancelScope | None = None

    async def stop(self) -> None:
        """Cancel the flusher and the senders and wait until they are gone."""
        if self._scope is not None:
            self._scope.cancel()
        if self.done is not None:
            await self.done.wait()

    def enqueue(self, batch: SealedBatch) -> None:
        self.counters.batches += 1
        self.unresolved[batch.seq] = batch
        self.packer.add(batch)

    def seal_all(self) -> None:
        self._enqueue_all(self.acc.seal_all())

    def make_room(self) -> None:
        """At the buffer cap: get enough of the oldest open batches on their way.

        Keeps at least a quarter of the cap sealed and queued (or in flight), sealing
        the batches opened first: they have waited longest and hold the most events,
        while sealing everything would cut every user's batch short each time the
        buffer fills (many tiny batches when there are many users).
        """
        queued = self.packer.queued_events
        target = max(self.cap // 4, 1)
        if self.acc.open_events and queued < target:
            self._enqueue_all(self.acc.seal_oldest(target - queued))

    def _enqueue_all(self, sealed: list[SealedBatch]) -> None:
        for batch in sealed:
            self.enqueue(batch)
        if sealed:
            self.wake_flusher()

    def wake_flusher(self) -> None:
        # Dropped once set: until the flusher has looked and gone back to sleep (with a
        # fresh event), more pushes have nothing to wake.
        wake = self.wake
        if wake is not None:
            self.wake = None
            wake.set()

    def deadline_added(self, deadline: float) -> None:
        """An open batch got a new deadline: wake the flusher if it sleeps past it."""
        if deadline < self.flusher_until:
            self.wake_flusher()

    def wake_room(self) -> None:
        if self.room is not None:
            self.room.set()
            self.room = None

    async def wait_unresolved(self) -> None:
        """Wait until every batch sealed so far has its final outcome."""
        for batch in list(self.unresolved.values()):
            await batch.outcome.wait()

    async def run(self, *, task_status: TaskStatus[None]) -> None:
        """The background task: flusher and senders, until :meth:`stop`."""
        self.done = anyio.Event()
        try:
            # Shielded: when the task running ``async with`` is cancelled, the close
            # still needs the flusher and senders to deliver what is buffered. Only
            # aclose() stops them, by cancelling this scope.
            with anyio.CancelScope(shield=True) as scope:
                self._scope = scope
                async with anyio.create_task_group() as senders:
                    self.senders = senders
                    task_status.started()
                    await self._flusher()
        except Exception as exc:  # a bug: fail loudly, but never lose a receipt
            logger.exception("mparticle_dest: the delivery engine stopped on an internal error")
            self.broken = True
            if self._on_broken is not None:
                self._on_broken()
            self.fail_all(DeliveryError(f"internal error in the delivery engine: {exc!r}"))
        finally:
            self.senders = None
            self.done.set()

    async def _flusher(self) -> None:
        acc = self.acc
        while True:
            now = anyio.current_time()
            for batch in acc.due(now):
                self.enqueue(batch)
            self._dispatch()
            deadline = acc.next_deadline()
            self.flusher_until = _INF if deadline is None else deadline
            self.wake = wake = anyio.Event()
            with anyio.move_on_after(None if deadline is None else max(deadline - now, 0.0)):
                await wake.wait()

    def _dispatch(self) -> None:
        """Start requests while there is room in flight and a key is ready."""
        packer, senders = self.packer, self.senders
        while self.in_flight < self.options.max_in_flight and packer.has_ready():
            batches = packer.next_request()
            assert senders is not None
            self.in_flight += 1
            senders.start_soon(self._send, batches)

    async def _send(self, batches: list[SealedBatch]) -> None:
        assert self.deliverer is not None
        results: list[BatchResult] | None
        try:
            results = await self.deliverer.send(batches)
        except Exception:
            logger.exception("mparticle_dest: sending a request failed on an internal error")
            results = None
        finally:
            # On cancellation (close timeout) the batches stay unresolved: the close
            # fails them with reason "closed".
            self.in_flight -= 1
        self._settle(batches, results)
        self._dispatch()

    def _settle(self, batches: list[SealedBatch], results: list[BatchResult] | None) -> None:
        """Record the outcome of one request and make its keys sendable again."""
        if results is None:
            error = DeliveryError("not sent: internal error in the delivery engine (see the log)")
            for batch in batches:
                self._fail(batch, error, "error")
        else:
            counters = self.counters
            for result in results:
                batch = result.batch
                if result.error is None:
                    if batch.outcome.resolve("delivered", result.attempts, result.status):
                        counters.delivered_events += batch.event_count
                        counters.delivered_batches += 1
                        if batch.ambiguous_attempts:  # result.possible_duplicate
                            counters.duplicates_suspected += batch.event_count
                else:
                    self._fail(batch, result.error, result.reason or "error")
        # _forget() for the whole request: nothing runs in between, so waking the room
        # once at the end is the same as after each batch.
        unresolved = self.unresolved
        freed = 0
        for batch in batches:
            if unresolved.pop(batch.seq, None) is not None:
                freed += batch.event_count
        if freed:
            self.buffered -= freed
            if self.buffered < self.cap:
                self.full_warned = False
                self.wake_room()
        self.packer.release(batches)

    def _fail(self, batch: SealedBatch, error: DeliveryError, reason: str) -> None:
        if not batch.outcome.fail(error, reason, attempts=batch.attempts):
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
        if self.unresolved.pop(batch.seq, None) is None:
            return
        self.buffered -= batch.event_count
        if self.buffered < self.cap:
            self.full_warned = False
            self.wake_room()

    def fail_leftovers(self) -> None:
        """After the close timeout: everything not final fails with reason ``closed``."""
        self.seal_all()  # pushes that slipped in are impossible, but open batches are not
        leftovers = sorted(self.unresolved.values(), key=lambda b: b.seq)
        if not leftovers:
            return
        self.packer.drain()
        error = DeliveryError(
            f"not delivered: the close timeout ({self.options.close_timeout:g} s) ran out"
        )
        for batch in leftovers:
            self.counters.undelivered_at_close += batch.event_count
            self._fail(batch, error, "closed")
            self._forget(batch)

    def fail_all(self, error: DeliveryError) -> None:
        self.seal_all()
        self.packer.drain()
        for batch in sorted(self.unresolved.values(), key=lambda b: b.seq):
            self._fail(batch, error, "error")
            self._forget(batch)
