"""What a request came to, per batch, and what the engine needs from a sender.

Kept apart from ``deliverer`` (httpx, tenacity) so the engine, the dry-run sender and
tests can use these types without paying for the HTTP stack's import.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple, Protocol

from attrs import define

from .._batching import SealedBatch
from .._exceptions import (
    AuthenticationError,
    DeliveryError,
    RejectedError,
    RetryBudgetExhaustedError,
)

__all__ = ["BatchResult", "DeliveryCounters", "Sender"]


@define(slots=True)
class DeliveryCounters:
    """Counters of one :class:`Deliverer`, read by the destination's stats.

    Attributes:
        requests: HTTP attempts made (a retry and each half of a split count).
        retries: Attempts that repeated an earlier failed attempt.
        bytes_sent: Request body bytes of all attempts.
        throttled: 429 responses.

    A batch delivered after an ambiguous attempt (timeout, dropped connection or 5xx
    after the request was sent) counts its ``ambiguous_attempts``: mParticle may hold
    it twice (it de-duplicates on ``source_request_id``).
    """

    requests: int = 0
    retries: int = 0
    bytes_sent: int = 0
    throttled: int = 0


class _BatchResultFields(NamedTuple):
    batch: SealedBatch
    status: int | None
    attempts: int
    error: DeliveryError | None = None
    throttled: bool = False


class BatchResult(_BatchResultFields):
    """The delivery result of one batch of a :meth:`Deliverer.send` call.

    An immutable named tuple: one is made per batch of every request, so it is built
    in C rather than by a Python ``__init__``.

    Attributes:
        batch: The batch.
        status: The last HTTP status seen for it (``None`` if no response came).
        attempts: HTTP attempts that carried it (cumulative, ``batch.attempts``).
        error: ``None`` when delivered (or throttled), else why it failed.
        throttled: mParticle answered 429 ("not yet"): neither delivered nor failed;
            the caller sends the batch again later (``Deliverer(scheduled=True)`` only).
    """

    __slots__ = ()

    @property
    def delivered(self) -> bool:
        """Whether mParticle accepted the batch."""
        return self.error is None and not self.throttled

    @property
    def reason(self) -> str | None:
        """``None`` when delivered, else ``"authentication"``, ``"rejected"``,
        ``"retry_budget"`` or ``"error"`` (a transport error a retry cannot fix)."""
        error = self.error
        if error is None:
            return None
        if isinstance(error, AuthenticationError):
            return "authentication"
        if isinstance(error, RejectedError):
            return "rejected"
        if isinstance(error, RetryBudgetExhaustedError):
            return "retry_budget"
        return "error"


class Sender(Protocol):
    """What the engine needs from the HTTP side: :class:`Deliverer`, or a test double.

    Attributes:
        counters: The HTTP counters the destination's stats show.
    """

    counters: DeliveryCounters

    async def send(self, batches: Sequence[SealedBatch]) -> list[BatchResult]:
        """Deliver ``batches`` as one request; one result per batch, in order. Never
        raises for an HTTP or network outcome."""
        ...
