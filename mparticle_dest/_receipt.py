"""Outcomes of pushed events: :class:`Receipt`, :class:`Outcome` and the per-batch holder.

Every event accepted by ``push`` belongs to exactly one batch, and every batch
has one :data:`BatchOutcome` (a plain dict) shared by all its events. A receipt is
a tiny object (the outcome plus the event id), so receipts cost almost nothing when
nobody awaits them: the anyio ``Event`` a waiter needs is created lazily, only
when someone actually waits on an unresolved batch.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any, Literal

import anyio
from attrs import frozen

from ._exceptions import DeliveryError, MparticleDestError

__all__ = [
    "BatchOutcome",
    "Outcome",
    "OutcomeStatus",
    "Receipt",
    "fail_outcome",
    "new_outcome",
    "outcome_for",
    "outcome_is_final",
    "resolve_delivered",
    "resolve_outcome",
    "wait_outcome",
]

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


#: The outcome shared by every event of one batch: a plain ``dict``, resolved exactly once.
#:
#: Empty while the batch is on its way; resolving stores the final outcome in it (and
#: sets the waiters' event, if someone waits). A plain dict because a service holds
#: one per open batch, often for seconds, and the garbage collector leaves an exact dict
#: of strings and numbers untracked: a class instance would be tracked, promoted to the
#: oldest generation, and trigger full collections. Use the functions below on it.
BatchOutcome = dict[str, Any]

# Keys of a batch outcome. Its values stay strings and numbers (an exception only for a
# failed batch), so the dict stays untracked after it is resolved too: it may be alive,
# held by its sealed batch, when the interpreter runs a collection.
_STATUS = "status"  # present once final
_REASON = "reason"
_ERROR = "error"
_ATTEMPTS = "attempts"
_HTTP_STATUS = "http_status"
_WAITER = "waiter"  # the anyio.Event of those waiting (made when someone waits)


def new_outcome() -> BatchOutcome:
    """A pending batch outcome (an empty dict: untracked by the garbage collector)."""
    return {}


def resolve_outcome(
    outcome: BatchOutcome,
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
    if _STATUS in outcome:
        return False
    outcome[_STATUS] = status
    if attempts:
        outcome[_ATTEMPTS] = attempts
    if http_status is not None:
        outcome[_HTTP_STATUS] = http_status
    if reason is not None:
        outcome[_REASON] = reason
    if error is not None:
        outcome[_ERROR] = error
    waiter = outcome.pop(_WAITER, None)
    if waiter is not None:
        waiter.set()
    return True


# The fields of a delivered outcome, by (attempts, HTTP status): most batches of a run
# share one or two, so resolving one is a single dict update.
_DELIVERED: dict[tuple[int, int | None], dict[str, Any]] = {}
_DELIVERED_KINDS = 64  # bounded: attempts and statuses vary little


def resolve_delivered(outcome: BatchOutcome, attempts: int, http_status: int | None) -> bool:
    """``resolve_outcome(outcome, "delivered", attempts, http_status)`` (the engine calls
    it for every delivered batch)."""
    if outcome:  # final already, or someone waits: the general path
        return resolve_outcome(outcome, "delivered", attempts, http_status)
    fields = _DELIVERED.get((attempts, http_status))
    if fields is None:
        fields = {}
        resolve_outcome(fields, "delivered", attempts, http_status)
        if len(_DELIVERED) < _DELIVERED_KINDS:
            _DELIVERED[attempts, http_status] = fields
    outcome.update(fields)
    return True


def fail_outcome(
    outcome: BatchOutcome, error: DeliveryError, reason: str, *, attempts: int = 0
) -> bool:
    """Shorthand for resolving as failed with ``error``."""
    return resolve_outcome(outcome, "failed", attempts, error.status, reason=reason, error=error)


def outcome_is_final(outcome: BatchOutcome) -> bool:
    """Whether the outcome is final."""
    return _STATUS in outcome


async def wait_outcome(outcome: BatchOutcome) -> None:
    """Wait until the outcome is final."""
    if _STATUS in outcome:
        return
    waiter = outcome.get(_WAITER)
    if waiter is None:
        waiter = outcome[_WAITER] = anyio.Event()
    await waiter.wait()


def outcome_for(outcome: BatchOutcome, event_id: str | None) -> Outcome:
    """The :class:`Outcome` of one event of the batch (the outcome must be final)."""
    get = outcome.get
    return Outcome(
        outcome[_STATUS],
        event_id,
        reason=get(_REASON),
        error=get(_ERROR),
        attempts=get(_ATTEMPTS, 0),
        http_status=get(_HTTP_STATUS),
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
        holder = new_outcome()
        resolve_outcome(holder, status, reason=reason)
        return cls(holder, event_id)

    def done(self) -> bool:
        """Whether the outcome is final."""
        return _STATUS in self._holder

    @property
    def outcome(self) -> Outcome | None:
        """The final outcome, or ``None`` while the event is still on its way."""
        if _STATUS not in self._holder:
            return None
        return outcome_for(self._holder, self.event_id)

    async def wait(self) -> Outcome:
        """Wait for and return the final outcome (never raises for delivery failures)."""
        await wait_outcome(self._holder)
        return outcome_for(self._holder, self.event_id)

    def __await__(self) -> Generator[Any, None, Outcome]:
        return self.wait().__await__()

    def __repr__(self) -> str:
        state = self._holder.get(_STATUS, "pending")
        return f"<Receipt event_id={self.event_id!r} {state}>"
