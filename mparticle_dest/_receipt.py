"""Outcomes of pushed events: :class:`Receipt`, :class:`Outcome` and the per-batch holder.

Every event accepted by ``push`` belongs to exactly one batch, and every batch
has one :class:`BatchOutcome` shared by all its events. A receipt is a tiny
object (the holder plus the event id), so receipts cost almost nothing when
nobody awaits them: the anyio ``Event`` a waiter needs is created lazily, only
when someone actually waits on an unresolved batch.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any, Literal

import anyio
from attrs import frozen

from ._exceptions import DeliveryError, MparticleDestError

__all__ = ["BatchOutcome", "Outcome", "OutcomeStatus", "Receipt"]

OutcomeStatus = Literal["delivered", "failed", "dropped", "skipped"]


@frozen
class Outcome:
    """The final outcome of one pushed event.

    Attributes:
        status: ``"delivered"`` (mParticle accepted the batch), ``"failed"`` (the
            batch was given up on and passed to ``on_error``), ``"dropped"`` (the
            buffer was full under the ``"drop"`` policy) or ``"skipped"`` (the
            mapping skipped the event; see ``reason``).
        event_id: The walkerOS event id (``source_message_id`` at mParticle).
        reason: Why the event was not delivered: ``"consent"``, ``"ignore"`` or
            ``"silent"`` for skipped events, ``"buffer_full"`` for dropped ones, and for failed ones
            ``"rejected"``, ``"authentication"``, ``"retry_budget"`` or ``"closed"``
            (still buffered when the close timeout ran out). ``None`` when delivered.
        error: The :class:`~mparticle_dest.DeliveryError` of a failed event, else ``None``.
        attempts: HTTP attempts that carried the event's batch.
        http_status: The last HTTP status seen for the batch, if any.
    """

    status: OutcomeStatus
    event_id: str | None
    reason: str | None = None
    error: MparticleDestError | None = None
    attempts: int = 0
    http_status: int | None = None

    @property
    def delivered(self) -> bool:
        """Whether mParticle accepted the event."""
        return self.status == "delivered"

    def raise_for_failure(self) -> Outcome:
        """Return ``self`` when delivered, skipped or dropped; raise the error of a failed event.

        Raises:
            DeliveryError: The event's delivery failed.
        """
        if self.status == "failed" and self.error is not None:
            raise self.error
        return self


class BatchOutcome:
    """The outcome shared by every event of one batch; resolved exactly once."""

    __slots__ = ("_waiter", "attempts", "error", "http_status", "reason", "status")

    def __init__(self) -> None:
        self.status: OutcomeStatus | None = None
        self.reason: str | None = None
        self.error: MparticleDestError | None = None
        self.attempts = 0
        self.http_status: int | None = None
        self._waiter: anyio.Event | None = None

    @property
    def resolved(self) -> bool:
        """Whether the outcome is final."""
        return self.status is not None

    def resolve(
        self,
        status: OutcomeStatus,
        attempts: int = 0,
        http_status: int | None = None,
        *,
        reason: str | None = None,
        error: MparticleDestError | None = None,
    ) -> bool:
        """Record the final outcome and wake the waiters.

        ``attempts`` and ``http_status`` may be passed by position (the engine resolves
        every delivered batch this way, without keyword parsing).

        Returns:
            ``False`` (and changes nothing) when the outcome was already final.
        """
        if self.status is not None:
            return False
        self.status = status
        self.reason = reason
        self.error = error
        self.attempts = attempts
        self.http_status = http_status
        if self._waiter is not None:
            self._waiter.set()
        return True

    def fail(self, error: DeliveryError, reason: str, *, attempts: int = 0) -> bool:
        """Shorthand for resolving as failed with ``error``."""
        return self.resolve(
            "failed", reason=reason, error=error, attempts=attempts, http_status=error.status
        )

    async def wait(self) -> None:
        """Wait until the outcome is final."""
        if self.status is not None:
            return
        if self._waiter is None:
            self._waiter = anyio.Event()
        await self._waiter.wait()

    def outcome_for(self, event_id: str | None) -> Outcome:
        """The :class:`Outcome` of one event of this batch (the batch must be resolved)."""
        assert self.status is not None
        return Outcome(
            self.status,
            event_id,
            reason=self.reason,
            error=self.error,
            attempts=self.attempts,
            http_status=self.http_status,
        )


class Receipt:
    """Handle on the final outcome of one pushed event.

    ``push`` returns it as soon as the event is buffered. Await it (``outcome =
    await receipt``) to wait for the final :class:`Outcome`; ignoring it costs
    nothing. A receipt always resolves: delivered, failed (after the retry
    budget, on a rejection or an authentication error, or at close), dropped
    or skipped.
    """

    __slots__ = ("_holder", "event_id")

    def __init__(self, holder: BatchOutcome, event_id: str | None) -> None:
        self._holder = holder
        self.event_id = event_id

    @classmethod
    def resolved(cls, event_id: str | None, status: OutcomeStatus, reason: str) -> Receipt:
        """A receipt that is final at once (skipped or dropped events)."""
        holder = BatchOutcome()
        holder.resolve(status, reason=reason)
        return cls(holder, event_id)

    def done(self) -> bool:
        """Whether the outcome is final."""
        return self._holder.resolved

    @property
    def outcome(self) -> Outcome | None:
        """The final outcome, or ``None`` while the event is still on its way."""
        if not self._holder.resolved:
            return None
        return self._holder.outcome_for(self.event_id)

    async def wait(self) -> Outcome:
        """Wait for and return the final outcome (never raises for delivery failures)."""
        await self._holder.wait()
        return self._holder.outcome_for(self.event_id)

    def __await__(self) -> Generator[Any, None, Outcome]:
        return self.wait().__await__()

    def __repr__(self) -> str:
        state = self._holder.status or "pending"
        return f"<Receipt event_id={self.event_id!r} {state}>"
