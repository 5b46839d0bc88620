"""Adaptive send pacing shared by every concurrent sender (SPEC §7).

mParticle limits a workspace to a number of batches per second, shared by every
replica of a service. Each replica's :class:`Pacer` reacts to the server's
signals so that, together, they settle under that limit instead of trading 429s:

* **Gate.** A 429 (or a 503 with ``Retry-After``) closes a shared gate until the
  requested time (or :attr:`PacingPolicy.throttle_pause`): every sender of the
  replica waits, not just the one that was told to.
* **AIMD rate.** Pacing is off until the first sign of pressure (the fast path:
  no sleep, no lock). Then the send rate, in batches per second, starts at the
  rate just observed and is multiplied by :attr:`~PacingPolicy.throttle_factor`
  on a 429, or by :attr:`~PacingPolicy.usage_factor` when
  ``X-mp-rate-limit-percentage-used`` reaches :attr:`~PacingPolicy.high_usage`
  (at most one decrease per :attr:`~PacingPolicy.decrease_interval`, so a burst
  of answers to requests already in flight counts once). While the header stays
  below :attr:`~PacingPolicy.hold_usage`, successes raise the rate additively,
  by :attr:`~PacingPolicy.recovery` × the starting rate per second, and pacing
  switches off again once the starting rate is reached. The rate never drops below
  :attr:`~PacingPolicy.min_rate` nor :attr:`~PacingPolicy.min_fraction` × the starting
  rate, so 429s that slowing down cannot cure (a blip) never make a destination crawl.

The pacer is synchronous apart from :meth:`Pacer.acquire`, takes an injectable
clock, and needs no lock: it runs on one event loop and never awaits while
updating its state.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Final

import anyio
from attrs import field, frozen, validators

from .._option_checks import not_bool, number
from .retry import parse_retry_after

__all__ = ["Pacer", "PacingPolicy"]

USAGE_HEADER: Final = "x-mp-rate-limit-percentage-used"
RETRY_AFTER_HEADER: Final = "retry-after"

# The observed send rate is measured over this sliding window (seconds)...
_WINDOW: Final = 1.0
# ...or over the time since the oldest send in it, when shorter (but not below this):
# right after a start the traffic has not filled the window yet, and dividing by the
# whole window would take a burst for a trickle and pace far too hard.
_MIN_SPAN: Final = 0.1

_factor = [not_bool, validators.gt(0.0), validators.le(1.0)]


@frozen(kw_only=True)
class PacingPolicy:
    """Tuning of the adaptive pacing (AIMD); the defaults suit mParticle's limits.

    Attributes:
        high_usage: ``X-mp-rate-limit-percentage-used`` at or above which the rate
            is lowered (percent).
        hold_usage: Usage at or above which the rate stops growing (percent).
        throttle_factor: Rate multiplier on a 429 (multiplicative decrease).
        usage_factor: Rate multiplier on a high usage header (a gentler decrease).
        recovery: Additive increase per second without pressure, as a fraction of
            the rate observed when pacing started.
        min_rate: The rate never drops below this many batches per second.
        min_fraction: Nor below this fraction of the rate observed when pacing
            started: isolated 429s (a blip, not a limit) slow a busy destination
            down at most this much, while a 4× overload is still absorbed by pacing
            alone; beyond that, the ``Retry-After`` gate does the rest.
        throttle_pause: How long the gate closes on a 429 without ``Retry-After`` (s).
        max_pause: Cap on the gate for any ``Retry-After`` (s).
        decrease_interval: At most one decrease per this many seconds.
    """

    high_usage: float = field(
        default=80.0, converter=number, validator=[not_bool, validators.gt(0.0)]
    )
    hold_usage: float = field(
        default=60.0, converter=number, validator=[not_bool, validators.ge(0.0)]
    )
    throttle_factor: float = field(default=0.5, converter=number, validator=_factor)
    usage_factor: float = field(default=0.85, converter=number, validator=_factor)
    recovery: float = field(
        default=0.05, converter=number, validator=[not_bool, validators.gt(0.0)]
    )
    min_rate: float = field(
        default=10.0, converter=number, validator=[not_bool, validators.gt(0.0)]
    )
    min_fraction: float = field(default=0.25, converter=number, validator=_factor)
    throttle_pause: float = field(
        default=1.0, converter=number, validator=[not_bool, validators.ge(0.0)]
    )
    max_pause: float = field(
        default=60.0, converter=number, validator=[not_bool, validators.ge(0.0)]
    )
    decrease_interval: float = field(
        default=1.0, converter=number, validator=[not_bool, validators.ge(0.0)]
    )

    def __attrs_post_init__(self) -> None:
        if self.hold_usage > self.high_usage:
            raise ValueError(
                f"hold_usage ({self.hold_usage}) must be ≤ high_usage ({self.high_usage})"
            )


class Pacer:
    """Send gate and AIMD rate limiter shared by the concurrent requests of one destination.

    Call :meth:`acquire` (with the number of batches about to be sent) before every
    HTTP attempt, and :meth:`on_response` with every response's status and headers.

    Args:
        policy: The tuning (defaults: :class:`PacingPolicy`).
        clock: Monotonic clock in seconds (tests inject a fake one).
    """

    __slots__ = (
        "_ceiling",
        "_clock",
        "_floor",
        "_gate",
        "_last_decrease",
        "_last_increase",
        "_next_slot",
        "_policy",
        "_rate",
        "_recent",
        "_recent_cost",
        "_step",
    )

    def __init__(
        self, policy: PacingPolicy | None = None, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._policy = policy if policy is not None else PacingPolicy()
        self._clock = clock
        self._gate = -math.inf  # no send starts before this time
        self._rate: float | None = None  # batches/s; None = unpaced (fast path)
        self._ceiling = 0.0  # observed rate when pacing started; reaching it again ends pacing
        self._floor = 0.0
        self._step = 0.0  # additive increase per second
        self._next_slot = -math.inf
        self._last_decrease = -math.inf
        self._last_increase = -math.inf
        # (start time, batches) of recent sends, to know the rate before the first decrease
        self._recent: deque[tuple[float, int]] = deque()
        self._recent_cost = 0

    @property
    def policy(self) -> PacingPolicy:
        """The pacing policy."""
        return self._policy

    @property
    def rate(self) -> float | None:
        """Current allowed rate in batches per second, or ``None`` while unpaced."""
        return self._rate

    def gate_remaining(self) -> float:
        """Seconds until the shared gate opens (``0.0`` when open)."""
        return max(self._gate - self._clock(), 0.0)

    def observed_rate(self) -> float:
        """Batches per second started over the last second (or since the first send)."""
        now = self._clock()
        self._trim(now)
        if not self._recent:
            return 0.0
        span = min(max(now - self._recent[0][0], _MIN_SPAN), _WINDOW)
        return self._recent_cost / span

    def reserve(self, cost: int = 1) -> float:
        """Book a send of ``cost`` batches; return how many seconds to wait before it.

        This is :meth:`acquire` without the sleep: the slot is taken at once.
        """
        now = self._clock()
        self._recent.append((now, cost))
        self._recent_cost += cost
        self._trim(now)
        start = max(now, self._gate)
        if self._rate is not None:
            start = max(start, self._next_slot)
            self._next_slot = start + cost / self._rate
        return start - now

    async def acquire(self, cost: int = 1) -> None:
        """Wait until a send of ``cost`` batches may start (returns at once when unpaced)."""
        delay = self.reserve(cost)
        while delay > 0.0:
            await anyio.sleep(delay)
            # Another sender may have been throttled while we slept: honour the new gate.
            delay = self.gate_remaining()

    def on_response(self, status: int, headers: Mapping[str, str]) -> None:
        """Adapt to one HTTP response.

        Args:
            status: The HTTP status code.
            headers: The response headers (looked up by lower-case name, as
                ``httpx.Headers`` allows; a plain dict must use lower-case keys).
        """
        now = self._clock()
        policy = self._policy
        if status == 429 or (status == 503 and RETRY_AFTER_HEADER in headers):
            pause = parse_retry_after(headers.get(RETRY_AFTER_HEADER))
            if pause is None:
                pause = policy.throttle_pause
            self._gate = max(self._gate, now + min(pause, policy.max_pause))
            if status == 429:
                self._decrease(now, policy.throttle_factor)
            return
        if not 200 <= status < 300:
            return
        usage = _parse_usage(headers.get(USAGE_HEADER))
        if usage is not None and usage >= policy.high_usage:
            self._decrease(now, policy.usage_factor)
        elif usage is not None and usage >= policy.hold_usage:
            if self._rate is not None:
                self._last_increase = now  # hold: the time spent here does not count
        else:
            self._increase(now)

    def _trim(self, now: float) -> None:
        horizon = now - _WINDOW
        recent = self._recent
        while recent and recent[0][0] <= horizon:
            self._recent_cost -= recent.popleft()[1]

    def _decrease(self, now: float, factor: float) -> None:
        if now - self._last_decrease < self._policy.decrease_interval:
            return
        self._last_decrease = now
        self._last_increase = now
        if self._rate is None:
            observed = max(self.observed_rate(), self._policy.min_rate)
            self._ceiling = observed
            self._floor = max(self._policy.min_rate, self._policy.min_fraction * observed)
            self._step = self._policy.recovery * observed
            self._rate = observed
            self._next_slot = now
        self._rate = max(self._rate * factor, self._floor)

    def _increase(self, now: float) -> None:
        if self._rate is None:
            return
        elapsed = max(now - self._last_increase, 0.0)
        self._last_increase = now
        self._rate += self._step * elapsed
        if self._rate >= self._ceiling:
            self._rate = None  # recovered: back to the unpaced fast path

    def __repr__(self) -> str:
        rate = "unpaced" if self._rate is None else f"{self._rate:.1f} batches/s"
        return f"<Pacer {rate} gate={self.gate_remaining():.2f}s>"


def _parse_usage(value: str | None) -> float | None:
    """Read ``X-mp-rate-limit-percentage-used`` (a percentage, possibly with ``%``)."""
    if value is None:
        return None
    try:
        usage = float(value.strip().rstrip("%"))
    except ValueError:
        return None
    return usage if math.isfinite(usage) else None
