"""Send pacing in batches per second, converging just under mParticle's quota.

mParticle meters a workspace in **batches per second** (about 270/s by default),
shared by every process of a service, and answers 429 with ``Retry-After`` above it;
each 2xx carries ``X-mp-rate-limit-percentage-used``, how much of the workspace's
allowance is spent. Each process's :class:`Pacer` reacts to those signals alone, and
the processes still settle at fair shares just under the quota (AIMD, as TCP does):

* **Token bucket in batches.** Once the rate is known, a request of *n* batches
  spends *n* tokens; tokens come back at :attr:`Pacer.rate` per second and may go
  into debt, so a full request is never split and the average rate holds. Before any
  sign of pressure there is no rate: nothing waits (the fast path).
* **Gate.** A 429 (or a 503 with ``Retry-After``) closes a gate shared by every
  sender of the process until the time asked for (or
  :attr:`PacingPolicy.throttle_pause`).
* **Multiplicative decrease** of the rate on a 429 (:attr:`~PacingPolicy.throttle_factor`)
  or on a usage at or above :attr:`~PacingPolicy.high_usage`
  (:attr:`~PacingPolicy.usage_factor`), at most once per
  :attr:`~PacingPolicy.decrease_interval`. The first decrease starts from the rate
  mParticle accepted over the last second (if it accepted nothing yet: from the
  throttled request's batches per second, times the factor, not from what an unpaced
  process happened to send: one process starting at ten times the others' rate took
  ten seconds to come back to its share).
* **Additive increase** by :attr:`~PacingPolicy.increase` batches/s per second while
  the usage stays below :attr:`~PacingPolicy.hold_usage` and the pacer is what holds
  requests back (a process with little traffic does not inflate its rate).

Every process sees the same usage and the same 429s, so they decrease together by the
same factor and increase by the same step: their rates converge to equal shares.
Requests carry at most :attr:`~PacingPolicy.burst` (30 ms) of the rate: small requests
drain the workspace's bucket in small steps, so the usage each process hears is less
its own last request's doing, 429s are rarer, and shares stay closer.

A known quota can be declared (``batches_per_second``): pacing starts at that rate and
never exceeds it. While mParticle accepts at least
:attr:`~PacingPolicy.declared_share` of it from this process (over the last second,
and not within a second of a pause), the declaration *holds*: a high usage is this
process's own doing and changes nothing, and a 429 is a momentary shortage of the
workspace's bucket: the gate pauses as asked, the rate drops by
:attr:`~PacingPolicy.declared_factor` and climbs back to the declared rate at
:attr:`~PacingPolicy.declared_recovery` of it per second (a 429 costs about its pause,
instead of a halving regained at ``increase`` per second: 2-3 s of the quota). When
the declaration does not hold (several processes each declared the whole workspace,
say, and each gets a quarter), the pacer reacts as to a learned quota under the
declared ceiling, which keeps 429s rare and nothing fails. Declare each process's
share, or share one bucket: a :class:`QuotaGate` (``RedisQuota`` in
``mparticle_dest.streams``) is awaited before every request.

The pacer is synchronous apart from :meth:`Pacer.acquire` and :meth:`Pacer.admit`,
takes an injectable clock, and needs no lock: it runs on one event loop and never
awaits while updating its state.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Final, Protocol

import anyio
from attrs import field, frozen, validators

from .._option_checks import not_bool, number
from .retry import parse_retry_after

__all__ = ["Pacer", "PacingPolicy", "QuotaGate"]

USAGE_HEADER: Final = "x-mp-rate-limit-percentage-used"
RETRY_AFTER_HEADER: Final = "retry-after"

# Sent and accepted rates are measured over this sliding window (seconds)...
_WINDOW: Final = 1.0
# ...or over the time since the oldest entry in it, when shorter (but not below this):
# right after a start the traffic has not filled the window yet.
_MIN_SPAN: Final = 0.1

_factor = [not_bool, validators.gt(0.0), validators.le(1.0)]


class QuotaGate(Protocol):
    """A batch quota shared beyond one process (e.g. a token bucket in Redis).

    The pacer awaits :meth:`acquire` before each request, after its own pacing; the
    default (``None``) is the in-process pacer alone.
    """

    async def acquire(self, batches: int) -> None:
        """Return once ``batches`` batches may be sent (wait for the shared quota)."""
        ...


@frozen(kw_only=True)
class PacingPolicy:
    """Tuning of the adaptive pacing (AIMD on batches per second); the defaults suit
    mParticle's limits.

    Attributes:
        high_usage: ``X-mp-rate-limit-percentage-used`` at or above which the rate
            is lowered (percent).
        hold_usage: Usage at or above which the rate stops growing (percent).
        throttle_factor: Rate multiplier on a 429 (multiplicative decrease).
        usage_factor: Rate multiplier on a high usage header (a gentler decrease).
        increase: Additive increase, in batches per second gained per second while
            the pacer holds requests back and usage stays below ``hold_usage``. The
            same for every process, which is what makes their shares converge.
        min_rate: The rate never drops below this many batches per second.
        burst: Seconds of the rate the pacer may send at once after a lull.
        throttle_pause: How long the gate closes on a 429 without ``Retry-After`` (s).
        max_pause: Cap on the gate for any ``Retry-After`` (s).
        decrease_interval: At most one decrease per this many seconds, so the answers
            to requests already in flight count once.
        declared_share: Under a declared quota, the share of it mParticle must have
            accepted over the last second for the declaration to hold: then a high
            usage is expected and a 429 is a momentary shortage (below it, the
            process reacts as to a learned quota: the workspace gives it less).
        declared_factor: Rate multiplier on a 429 while the declaration holds.
        declared_recovery: While the declaration holds, the share of the declared
            rate regained per second (back from a 429's decrease in about half a
            second with the default 0.2 and ``declared_factor`` 0.9).
    """

    high_usage: float = field(
        default=80.0, converter=number, validator=[not_bool, validators.gt(0.0)]
    )
    hold_usage: float = field(
        default=80.0, converter=number, validator=[not_bool, validators.ge(0.0)]
    )
    throttle_factor: float = field(default=0.5, converter=number, validator=_factor)
    usage_factor: float = field(default=0.6, converter=number, validator=_factor)
    increase: float = field(
        default=20.0, converter=number, validator=[not_bool, validators.gt(0.0)]
    )
    min_rate: float = field(default=1.0, converter=number, validator=[not_bool, validators.gt(0.0)])
    burst: float = field(default=0.03, converter=number, validator=[not_bool, validators.gt(0.0)])
    throttle_pause: float = field(
        default=1.0, converter=number, validator=[not_bool, validators.ge(0.0)]
    )
    max_pause: float = field(
        default=60.0, converter=number, validator=[not_bool, validators.ge(0.0)]
    )
    decrease_interval: float = field(
        default=0.25, converter=number, validator=[not_bool, validators.ge(0.0)]
    )
    declared_share: float = field(default=0.75, converter=number, validator=_factor)
    declared_factor: float = field(default=0.9, converter=number, validator=_factor)
    declared_recovery: float = field(
        default=0.2, converter=number, validator=[not_bool, validators.gt(0.0)]
    )

    def __attrs_post_init__(self) -> None:
        if self.hold_usage > self.high_usage:
            raise ValueError(
                f"hold_usage ({self.hold_usage}) must be ≤ high_usage ({self.high_usage})"
            )


class Pacer:
    """Send gate and batch-rate limiter shared by the concurrent requests of one destination.

    The engine asks :meth:`delay` before taking a request, :meth:`charge`\\ s its
    batches and awaits :meth:`admit`; a retry awaits :meth:`acquire` (the three in
    one). Every response goes to :meth:`on_response`.

    Args:
        policy: The tuning (defaults: :class:`PacingPolicy`).
        batches_per_second: A known quota: pacing starts at this rate and never
            exceeds it (``None``: learned from the responses).
        quota: A :class:`QuotaGate` awaited before every request (``None``: none).
        clock: Monotonic clock in seconds (tests inject a fake one).
    """

    __slots__ = (
        "_accepted",
        "_accepted_count",
        "_ceiling",
        "_clock",
        "_gate",
        "_last_decrease",
        "_last_sample",
        "_limited_at",
        "_policy",
        "_probing",
        "_quota",
        "_rate",
        "_sent",
        "_sent_count",
        "_stamp",
        "_tokens",
    )

    def __init__(
        self,
        policy: PacingPolicy | None = None,
        *,
        batches_per_second: float | None = None,
        quota: QuotaGate | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._policy = policy if policy is not None else PacingPolicy()
        self._clock = clock
        self._quota = quota
        self._gate = -math.inf  # no send starts before this time
        self._rate: float | None = None  # batches/s; None = unpaced (fast path)
        self._ceiling = math.inf
        self._tokens = 0.0
        self._stamp = clock()
        self._last_decrease = -math.inf
        self._last_sample = self._stamp  # time of the last 2xx answer
        self._limited_at = -math.inf  # last time the rate held a request back
        self._probing = False  # slow start: from the first rate to the first decrease
        # (time, batches) of recent sends and of recent accepted batches
        self._sent: deque[tuple[float, int]] = deque()
        self._sent_count = 0
        self._accepted: deque[tuple[float, int]] = deque()
        self._accepted_count = 0
        if batches_per_second is not None:
            if not (math.isfinite(batches_per_second) and batches_per_second > 0):
                raise ValueError(f"batches_per_second must be > 0, got {batches_per_second!r}")
            self._ceiling = float(batches_per_second)
            self._start(self._ceiling, self._stamp)

    @property
    def policy(self) -> PacingPolicy:
        """The pacing policy."""
        return self._policy

    @property
    def rate(self) -> float | None:
        """Current allowed rate in batches per second, or ``None`` while unpaced."""
        return self._rate

    def limited(self, within: float = _WINDOW) -> bool:
        """Whether the rate (the quota), not the network, held a request back lately."""
        return self._clock() - self._limited_at <= within

    def request_budget(self) -> int | None:
        """Most batches one request should carry now (``None``: no limit, unpaced).

        ``burst`` seconds of the rate: a process with a small share sends small
        requests often rather than a full one rarely, so it hears the usage header as
        often as the others (fair shares) and its sends stay smooth.
        """
        rate = self._rate
        if rate is None:
            return None
        budget = int(rate * self._policy.burst)
        return budget if budget > 1 else 1

    def gate_remaining(self) -> float:
        """Seconds until the shared gate opens (``0.0`` when open)."""
        return max(self._gate - self._clock(), 0.0)

    def observed_rate(self) -> float:
        """Batches per second sent over the last second (or since the first send)."""
        now = self._clock()
        self._sent_count = _trim(self._sent, self._sent_count, now)
        return _rate_of(self._sent, self._sent_count, now)

    def delay(self) -> float:
        """Seconds before a request may start: the gate, and the batch rate's debt."""
        now = self._clock()
        wait = self._gate - now
        rate = self._rate
        if rate is not None:
            tokens = self._tokens + (now - self._stamp) * rate
            cap = rate * self._policy.burst
            self._tokens = tokens if tokens < cap else cap
            self._stamp = now
            if tokens < 0.0:
                self._limited_at = now
                debt = -tokens / rate
                if debt > wait:
                    wait = debt
        return wait if wait > 0.0 else 0.0

    def charge(self, cost: int) -> None:
        """Spend ``cost`` batches of the rate (a request of that many is about to start)."""
        now = self._clock()
        if (
            now - self._last_sample > _WINDOW
            and now - self._limited_at > _WINDOW
            and now - self._gate > _WINDOW
        ):
            # After a lull (for a second no answer, and neither the rate nor a 429 held
            # a request back: nothing to send), the next answer speaks for the time since
            # this request left: a high usage then lowers the rate for that time, not
            # for the lull (e.g. young batches held back, a quiet night).
            self._last_sample = now
        self._sent.append((now, cost))
        self._sent_count = _trim(self._sent, self._sent_count + cost, now)
        if self._rate is not None:
            self.delay()  # refill up to now first
            self._tokens -= cost

    async def admit(self, cost: int) -> None:
        """Wait for the plugged-in :class:`QuotaGate`, if any (after :meth:`charge`)."""
        if self._quota is not None:
            await self._quota.acquire(cost)

    async def acquire(self, cost: int = 1) -> None:
        """Wait until a send of ``cost`` batches may start, and book it."""
        delay = self.delay()
        while delay > 0.0:
            await anyio.sleep(delay)
            # Another sender may have been throttled or have spent the rate meanwhile.
            delay = self.delay()
        self.charge(cost)
        await self.admit(cost)

    def on_response(self, status: int, headers: Mapping[str, str], batches: int = 0) -> None:
        """Adapt to one HTTP response.

        Args:
            status: The HTTP status code.
            headers: The response headers (looked up by lower-case name, as
                ``httpx.Headers`` allows; a plain dict must use lower-case keys).
            batches: Batches the request carried (counted as accepted on a 2xx).
        """
        now = self._clock()
        policy = self._policy
        if status == 429 or (status == 503 and RETRY_AFTER_HEADER in headers):
            holds = status == 429 and self._declared_holds(now)
            pause = parse_retry_after(headers.get(RETRY_AFTER_HEADER))
            if pause is None:
                pause = policy.throttle_pause
            self._gate = max(self._gate, now + min(pause, policy.max_pause))
            if status == 429:
                factor = policy.declared_factor if holds else policy.throttle_factor
                self._decrease(now, factor, batches)
            return
        if not 200 <= status < 300:
            return
        if batches:
            self._accepted.append((now, batches))
            self._accepted_count = _trim(self._accepted, self._accepted_count + batches, now)
        # The time this answer speaks for: since the previous one (at most a second).
        span = min(max(now - self._last_sample, 0.0), _WINDOW)
        self._last_sample = now
        usage = _parse_usage(headers.get(USAGE_HEADER))
        if self._ceiling < math.inf and (
            self._declared_holds(now) or now - self._limited_at > _WINDOW
        ):
            # The declared rate is what this process gets: a high usage is its own
            # doing, expected, and no reason to slow down (nor is it while the rate holds
            # nothing back). Recover from a 429's decrease.
            self._increase(now, span)
        elif usage is not None and usage >= policy.high_usage:
            if self._rate is None:
                self._decrease(now, policy.usage_factor)
            else:
                # In proportion to the time the usage stayed high, not to how many
                # answers said so: every process sharing the workspace lives through the
                # same high usage, so they all slow down by the same factor (fair shares)
                # however often each one happens to hear about it.
                interval = max(policy.decrease_interval, 1e-3)
                self._scale(policy.usage_factor ** (min(span, interval) / interval))
        elif usage is None or usage < policy.hold_usage:
            self._increase(now, span)

    def _declared_holds(self, now: float) -> bool:
        """Whether mParticle accepts (nearly) the declared rate from this process.

        If not, the declaration overstates this process's share (several processes
        each declared the whole workspace, say): it then paces as a learned quota
        would, under the declared ceiling, which keeps 429s rare and shares fair.
        """
        ceiling = self._ceiling
        if ceiling == math.inf or now - self._gate <= _WINDOW:
            return False  # a pause was asked for within the last second
        # Accepted since the first request of the last second *left* (an answer comes a
        # round trip later): at the start of a backlog the first answers already count.
        self._sent_count = _trim(self._sent, self._sent_count, now)
        self._accepted_count = _trim(self._accepted, self._accepted_count, now)
        if not self._sent:
            return False
        span = min(max(now - self._sent[0][0], _MIN_SPAN), _WINDOW)
        return self._accepted_count >= self._policy.declared_share * ceiling * span

    def _start(self, rate: float, now: float) -> None:
        self._rate = rate
        self._tokens = 0.0
        self._stamp = now
        self._probing = True

    def _decrease(self, now: float, factor: float, batches: int = 0) -> None:
        if now - self._last_decrease < self._policy.decrease_interval:
            return
        self._last_decrease = now
        if self._rate is None:
            # What mParticle let through over the last second is this process's
            # share, give or take the burst its bucket allowed at first: start there.
            count = self._accepted_count = _trim(self._accepted, self._accepted_count, now)
            if count:
                start = count / _WINDOW
            else:
                # Nothing got through yet: what this process sent is no measure of its
                # share (unpaced, it may have sent ten times the quota), but the quota
                # would not take this request's batches at once: about that per second.
                start = min(self.observed_rate(), batches or math.inf) * factor
            self._start(min(max(start, self._policy.min_rate), self._ceiling), now)
            return
        self._scale(factor)

    def _scale(self, factor: float) -> None:
        rate = self._rate
        assert rate is not None
        self.delay()  # tokens refilled at the old rate up to now
        self._rate = max(rate * factor, self._policy.min_rate)
        self._probing = False

    def _increase(self, now: float, span: float) -> None:
        rate = self._rate
        if rate is None or now - self._limited_at > _WINDOW:
            return  # unpaced, or the rate held nothing back: growing it would mean nothing
        self.delay()  # tokens refilled at the old rate up to now
        if self._declared_holds(now):
            # Back to the declared rate fast: a 429 there was a momentary shortage.
            rate += self._ceiling * self._policy.declared_recovery * span
        elif self._probing:
            # Until the first decrease after pacing started, the rate doubles per second
            # (slow start): the first estimate may be far below this process's share.
            rate *= 1.0 + span
        else:
            rate += self._policy.increase * span
        self._rate = min(rate, self._ceiling)

    def __repr__(self) -> str:
        rate = "unpaced" if self._rate is None else f"{self._rate:.1f} batches/s"
        return f"<Pacer {rate} gate={self.gate_remaining():.2f}s>"


def _trim(window: deque[tuple[float, int]], count: int, now: float) -> int:
    horizon = now - _WINDOW
    while window and window[0][0] <= horizon:
        count -= window.popleft()[1]
    return count


def _rate_of(window: deque[tuple[float, int]], count: int, now: float) -> float:
    if not window:
        return 0.0
    span = min(max(now - window[0][0], _MIN_SPAN), _WINDOW)
    return count / span


def _parse_usage(value: str | None) -> float | None:
    """Read ``X-mp-rate-limit-percentage-used`` (a percentage, possibly with ``%``)."""
    if value is None:
        return None
    try:
        usage = float(value.strip().rstrip("%"))
    except ValueError:
        return None
    return usage if math.isfinite(usage) else None
