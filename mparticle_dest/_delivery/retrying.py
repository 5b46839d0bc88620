"""The tenacity side of :class:`~.retry.RetryPolicy`, imported on first use.

Kept apart so that ``import mparticle_dest`` does not import tenacity: only a request
that needs a retry (or a caller of ``RetryPolicy.stop``/``wait``) does.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from tenacity import RetryCallState, stop_after_attempt, stop_before_delay, wait_random_exponential
from tenacity.stop import stop_base
from tenacity.wait import wait_base

if TYPE_CHECKING:
    from .retry import RetryPolicy

__all__ = ["RetryAfterOrJitter", "stop_for"]


def stop_for(policy: RetryPolicy, started: float | None) -> stop_base:
    """The stop condition of one request's budget (see ``RetryPolicy.stop``)."""
    elapsed = (
        stop_before_delay(policy.max_elapsed)
        if started is None
        else _StopBeforeDelaySince(started, policy.max_elapsed)
    )
    return stop_after_attempt(policy.max_attempts) | elapsed


class _StopBeforeDelaySince(stop_base):
    """``stop_before_delay`` counted from a given start instead of the retrier's own."""

    def __init__(self, started: float, max_delay: float) -> None:
        self._started = started
        self._max_delay = max_delay

    def __call__(self, retry_state: RetryCallState) -> bool:
        now = retry_state.outcome_timestamp or time.monotonic()
        return now - self._started + retry_state.upcoming_sleep >= self._max_delay


class RetryAfterOrJitter(wait_base):
    """Wait what the last attempt's result asks for (``.retry_after``), else full jitter.

    The retried value is a result, not an exception (see ``_delivery``), so the
    server's ``Retry-After`` travels on it as a ``retry_after`` attribute.
    """

    def __init__(self, policy: RetryPolicy) -> None:
        self._policy = policy
        self._jitter = wait_random_exponential(
            multiplier=policy.initial_backoff, max=policy.max_backoff
        )

    def __call__(self, retry_state: RetryCallState) -> float:
        outcome = retry_state.outcome
        if outcome is not None and not outcome.failed:
            requested = getattr(outcome.result(), "retry_after", None)
            if isinstance(requested, (int, float)):
                return self._policy.retry_after_wait(float(requested))
        return float(self._jitter(retry_state))
