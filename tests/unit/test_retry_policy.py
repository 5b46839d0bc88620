"""RetryPolicy and Retry-After maths: parsing, caps, full jitter, the budget stop."""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import pytest
from tenacity import AsyncRetrying, RetryCallState

from mparticle_dest._delivery.retry import RetryPolicy, parse_retry_after

NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=timezone.utc)


class _Result:
    """Stands for the delivery attempt result the wait reads ``retry_after`` from."""

    def __init__(self, retry_after: float | None) -> None:
        self.retry_after = retry_after


def _state(
    attempt: int, *, retry_after: float | None = None, elapsed: float = 0.0
) -> RetryCallState:
    state = RetryCallState(retry_object=AsyncRetrying(), fn=None, args=(), kwargs={})
    state.attempt_number = attempt
    state.start_time = 100.0
    state.set_result(_Result(retry_after))
    state.outcome_timestamp = 100.0 + elapsed
    return state


@pytest.mark.parametrize(
    ("header", "seconds"),
    [("0", 0.0), ("1", 1.0), (" 120 ", 120.0), ("1.5", 1.5), ("86400000", 86_400_000.0)],
)
def test_retry_after_delay_seconds_are_read(header: str, seconds: float) -> None:
    assert parse_retry_after(header) == seconds


def test_retry_after_http_date_gives_the_seconds_until_then() -> None:
    header = format_datetime(NOW + timedelta(seconds=30), usegmt=True)
    assert parse_retry_after(header, now=NOW) == pytest.approx(30.0)


def test_retry_after_date_in_the_past_means_now() -> None:
    header = format_datetime(NOW - timedelta(hours=1), usegmt=True)
    assert parse_retry_after(header, now=NOW) == 0.0


@pytest.mark.parametrize(
    "header", [None, "", "   ", "soon", "-5", "-0.5", "nan", "inf", "1,5", "Wed, 99 Foo", "9" * 80]
)
def test_unreadable_retry_after_falls_back_to_backoff(header: str | None) -> None:
    assert parse_retry_after(header) is None


def test_huge_retry_after_is_capped() -> None:
    policy = RetryPolicy(max_retry_after=60.0)
    wait = policy.wait()
    assert wait(_state(1, retry_after=86_400_000.0)) == 60.0
    assert wait(_state(1, retry_after=2.5)) == 2.5
    assert wait(_state(1, retry_after=0.0)) == 0.0


def test_backoff_is_full_jitter_within_the_exponential_window() -> None:
    policy = RetryPolicy(initial_backoff=0.5, max_backoff=4.0)
    wait = policy.wait()
    for attempt, ceiling in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (5, 4.0), (200, 4.0)]:
        samples = [wait(_state(attempt)) for _ in range(300)]
        assert all(0.0 <= s <= ceiling for s in samples)
        # Uniform over the window: spread over it, not a fixed value.
        assert max(samples) > 0.8 * ceiling
        assert min(samples) < 0.2 * ceiling


def test_zero_backoff_retries_at_once() -> None:
    wait = RetryPolicy(initial_backoff=0.0, max_backoff=0.0).wait()
    assert wait(_state(3)) == 0.0


def test_stop_after_max_attempts() -> None:
    stop = RetryPolicy(max_attempts=3, max_elapsed=1000.0).stop()
    assert not stop(_state(2))
    assert stop(_state(3))


def test_stop_before_a_wait_would_end_past_the_budget() -> None:
    stop = RetryPolicy(max_attempts=100, max_elapsed=10.0).stop()
    fits = _state(2, elapsed=7.0)
    fits.upcoming_sleep = 2.5
    assert not stop(fits)
    too_late = _state(2, elapsed=7.0)
    too_late.upcoming_sleep = 3.0
    assert stop(too_late)


def test_time_budget_counts_from_the_first_attempt_when_given() -> None:
    # The delivery's fast path makes attempt 1 before building the retrier: the budget
    # must still count that attempt's time (here 6 s before the retrier's own start).
    stop = RetryPolicy(max_attempts=100, max_elapsed=10.0).stop(started=94.0)
    fits = _state(1, elapsed=1.0)  # 7 s after the first attempt began
    fits.upcoming_sleep = 2.5
    assert not stop(fits)
    too_late = _state(1, elapsed=1.0)
    too_late.upcoming_sleep = 3.0
    assert stop(too_late)
    assert RetryPolicy(max_attempts=2, max_elapsed=1000.0).stop(started=94.0)(_state(2))


def test_defaults_are_documented_values() -> None:
    policy = RetryPolicy()
    assert (
        policy.max_attempts,
        policy.max_elapsed,
        policy.initial_backoff,
        policy.max_backoff,
        policy.max_retry_after,
    ) == (8, 60.0, 0.5, 30.0, 60.0)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_attempts": 0},
        {"max_elapsed": 0},
        {"max_elapsed": math.inf},
        {"initial_backoff": -1},
        {"max_backoff": math.nan},
        {"initial_backoff": 5, "max_backoff": 1},
        {"max_retry_after": -1},
    ],
)
def test_invalid_policy_is_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises((ValueError, TypeError)):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]
