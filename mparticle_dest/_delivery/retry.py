"""Retry budget and backoff maths, independent of HTTP (reference: ``docs/retries.md``).

:class:`RetryPolicy` holds the user-tunable numbers; :func:`parse_retry_after`
reads a ``Retry-After`` header (delay-seconds or HTTP-date). The tenacity wiring
lives in ``deliverer`` (and ``retrying``, imported on first use: tenacity is not
needed by ``import mparticle_dest``), which builds one fresh retrier per retried
request from the policy's :meth:`~RetryPolicy.stop` and :meth:`~RetryPolicy.wait`.
"""

from __future__ import annotations

import math
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING

from attrs import field, frozen, validators

if TYPE_CHECKING:
    from tenacity.stop import stop_base
    from tenacity.wait import wait_base

from .._option_checks import not_bool, number

__all__ = ["RetryPolicy", "parse_retry_after"]

_positive = validators.gt(0.0)
_non_negative = validators.ge(0.0)


def _finite(_inst: object, attribute: object, value: float) -> None:
    not_bool(_inst, attribute, value)
    if not math.isfinite(value):
        raise ValueError(f"{getattr(attribute, 'name', 'value')} must be finite, got {value!r}")


@frozen(kw_only=True)
class RetryPolicy:
    """How long and how often one request is retried (429, 5xx, timeouts, connection errors).

    Each bulk request gets its own budget: it is retried until ``max_attempts``
    attempts were made or until the next wait would end more than ``max_elapsed``
    seconds after its first attempt, whichever comes first. Then its batches
    fail with :class:`~mparticle_dest.RetryBudgetExhaustedError`.

    Without a ``Retry-After`` header the wait before retry *n* (1-based) is drawn
    uniformly from ``[0, min(max_backoff, initial_backoff * 2 ** (n - 1))]``
    ("full jitter"), so many replicas retrying at once spread out. With a
    ``Retry-After`` header (429 or 503) the wait is exactly what the server asked
    for, capped at ``max_retry_after``; a request is never retried earlier than
    asked unless the cap applies.

    Attributes:
        max_attempts: Attempts per request, the first one included (≥ 1; 1 = no retry).
        max_elapsed: Seconds from the first attempt after which no retry starts.
        initial_backoff: Upper bound of the first jittered wait, in seconds.
        max_backoff: Upper bound of any jittered wait, in seconds.
        max_retry_after: Cap on a server-requested ``Retry-After`` wait, in seconds
            (guards against absurd values; a wait past ``max_elapsed`` ends the
            retries anyway).
    """

    max_attempts: int = field(
        default=8, validator=[not_bool, validators.instance_of(int), validators.ge(1)]
    )
    max_elapsed: float = field(default=60.0, converter=number, validator=[_finite, _positive])
    initial_backoff: float = field(
        default=0.5, converter=number, validator=[_finite, _non_negative]
    )
    max_backoff: float = field(default=30.0, converter=number, validator=[_finite, _non_negative])
    max_retry_after: float = field(
        default=60.0, converter=number, validator=[_finite, _non_negative]
    )

    def __attrs_post_init__(self) -> None:
        if self.max_backoff < self.initial_backoff:
            raise ValueError(
                f"max_backoff ({self.max_backoff}) must be ≥ initial_backoff"
                f" ({self.initial_backoff})"
            )

    def retry_after_wait(self, retry_after: float) -> float:
        """Seconds to wait for a parsed ``Retry-After`` value (capped at ``max_retry_after``)."""
        return min(max(retry_after, 0.0), self.max_retry_after)

    def stop(self, *, started: float | None = None) -> stop_base:
        """A fresh tenacity stop condition for one request's budget.

        Args:
            started: ``time.monotonic()`` when the request's first attempt began, if
                it ran before the retrier (the delivery's fast path); default: the
                retrier's own start.
        """
        from .retrying import stop_for

        return stop_for(self, started)

    def wait(self) -> wait_base:
        """A fresh tenacity wait: the server's ``Retry-After`` if any, else full jitter."""
        from .retrying import RetryAfterOrJitter

        return RetryAfterOrJitter(self)


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Read a ``Retry-After`` header value as seconds to wait.

    Args:
        value: The header value: delay-seconds (``"120"``; a decimal such as
            ``"1.5"`` is accepted) or an HTTP-date (``"Wed, 21 Oct 2015 07:28:00 GMT"``).
        now: The current time for HTTP-dates (default: the system clock, UTC).

    Returns:
        Seconds (≥ 0; a date in the past gives ``0.0``), or ``None`` when the header
        is absent or unreadable (negative, not a number nor a date, NaN, infinite),
        in which case the caller falls back to its own backoff.
    """
    if value is None:
        return None
    text = value.strip()
    if not text or len(text) > 64:
        return None
    try:
        seconds = float(text)
    except ValueError:
        pass  # not a number: maybe an HTTP-date
    else:
        return seconds if math.isfinite(seconds) and seconds >= 0.0 else None
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # RFC 9110 dates are GMT; treat a naive one as UTC
        when = when.replace(tzinfo=timezone.utc)
    reference = now if now is not None else datetime.now(timezone.utc)
    return max((when - reference).total_seconds(), 0.0)
