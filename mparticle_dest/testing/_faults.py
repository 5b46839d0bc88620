"""Fault injection for the fake server: scripted or seeded-random plans, and a rate limit.

A :class:`FaultPlan` decides, for each authenticated request to an events path in
arrival order, which :class:`Fault` applies. Faulted requests are never recorded as
received batches: the client is expected to retry them.
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from typing import Literal

from attrs import frozen

__all__ = ["Fault", "FaultKind", "FaultPlan", "TokenBucket"]

FaultKind = Literal[
    "ok",
    "rate_limited",
    "server_error",
    "slow",
    "drop",
    "stall",
    "bad_request",
    "error",
    "huge_body",
    "drip",
]
"""What a :class:`Fault` does to the request it applies to."""


@frozen
class Fault:
    """What the server does with one request. Build with the class methods.

    Attributes:
        kind: The fault name (also what :attr:`RecordedRequest.fault` shows).
        status: The status answered (``None`` for ``drop``/``stall``; ``slow`` answers
            whatever normal processing answers).
        retry_after: ``Retry-After`` seconds sent with a 429, or ``None`` to omit it.
        delay: Seconds to wait before answering (``slow``), or between two body
            bytes (``drip``).
        message: The error message of ``bad_request`` and ``error``.
        percentage_used: Value of ``X-mp-rate-limit-percentage-used`` on a 2xx (``ok``).
        size: Body bytes of ``huge_body`` (``None``: endless).
    """

    kind: FaultKind
    status: int | None = None
    retry_after: float | None = None
    delay: float = 0.0
    message: str = ""
    percentage_used: int | None = None
    size: int | None = None

    @classmethod
    def ok(cls, *, percentage_used: int | None = None) -> Fault:
        """Process the request normally.

        Args:
            percentage_used: When given, a 2xx answer carries
                ``X-mp-rate-limit-percentage-used: <value>``.
        """
        return cls("ok", percentage_used=percentage_used)

    @classmethod
    def rate_limited(cls, retry_after: float | None = None) -> Fault:
        """Answer 429 with ``X-mp-rate-limit-exceeded: true``.

        Args:
            retry_after: Seconds for the ``Retry-After`` header; ``None`` omits it.
        """
        return cls("rate_limited", status=429, retry_after=retry_after)

    @classmethod
    def server_error(cls, status: int = 503) -> Fault:
        """Answer a 5xx (500, 502, 503 or 504).

        Raises:
            ValueError: ``status`` is not a 5xx.
        """
        if not 500 <= status <= 599:
            raise ValueError(f"server_error needs a 5xx status, got {status}")
        return cls("server_error", status=status)

    @classmethod
    def slow(cls, seconds: float) -> Fault:
        """Wait ``seconds`` (interrupted when the server stops), then process normally."""
        return cls("slow", delay=seconds)

    @classmethod
    def drop(cls) -> Fault:
        """Read the request, then close the connection without any response."""
        return cls("drop")

    @classmethod
    def stall(cls) -> Fault:
        """Never answer: hold the connection open until the client gives up or the server stops."""
        return cls("stall")

    @classmethod
    def bad_request(cls, message: str = "Bad request (injected)") -> Fault:
        """Answer 400 with mParticle's error body carrying ``message``."""
        return cls("bad_request", status=400, message=message)

    @classmethod
    def error(cls, status: int, message: str) -> Fault:
        """Answer ``status`` (a 4xx or 5xx) with mParticle's error body carrying ``message``.

        Raises:
            ValueError: ``status`` is not a 4xx or 5xx.
        """
        if not 400 <= status <= 599:
            raise ValueError(f"error needs a 4xx or 5xx status, got {status}")
        return cls("error", status=status, message=message)

    @classmethod
    def huge_body(cls, size: int | None = None, *, status: int = 202) -> Fault:
        """Answer ``status`` with a body of ``size`` bytes (spaces), or an endless one.

        The body is written as fast as the client reads it, until it is complete, the
        client closes the connection or the server stops; the request is recorded
        then, with :attr:`RecordedRequest.response_bytes` telling how many body bytes
        the server managed to write (a client that reads only the start of a body
        leaves most of it unwritten). ``size=None`` sends a chunked body that never ends.

        Raises:
            ValueError: ``size`` is negative or ``status`` is not 200-599.
        """
        if size is not None and size < 0:
            raise ValueError(f"huge_body needs a size >= 0, got {size}")
        if not 200 <= status <= 599:
            raise ValueError(f"huge_body needs a status from 200 to 599, got {status}")
        return cls("huge_body", status=status, size=size)

    @classmethod
    def drip(cls, interval: float = 0.5, *, status: int = 202) -> Fault:
        """Answer ``status`` and the headers at once, then one body byte per ``interval`` s.

        The chunked body never ends: the request stays open until the client closes
        the connection or the server stops (then it is recorded, with
        :attr:`RecordedRequest.response_bytes` the bytes dripped). A client that
        only limits each read (a read timeout) never gives up on it.

        Raises:
            ValueError: ``interval`` is not positive or ``status`` is not 200-599.
        """
        if not interval > 0:
            raise ValueError(f"drip needs an interval > 0, got {interval}")
        if not 200 <= status <= 599:
            raise ValueError(f"drip needs a status from 200 to 599, got {status}")
        return cls("drip", status=status, delay=interval)


class FaultPlan:
    """Decides the fault for each request, in arrival order. Thread-safe.

    Build with :meth:`script`, :meth:`always` or :meth:`random`.
    """

    def __init__(self, next_fault: Callable[[int], Fault], description: str) -> None:
        self._next_fault = next_fault
        self._description = description
        self._lock = threading.Lock()
        self._count = 0

    @classmethod
    def script(cls, faults: Iterable[Fault], *, then: Fault | None = None) -> FaultPlan:
        """Apply ``faults`` to the first requests, one each, then ``then`` (default: ok).

        Args:
            faults: The faults for requests 0, 1, 2, ...
            then: The fault for every request after the script; ``Fault.ok()`` by default.
        """
        script = tuple(faults)
        after = then if then is not None else Fault.ok()
        return cls(
            lambda n: script[n] if n < len(script) else after,
            f"script({len(script)} faults, then {after.kind})",
        )

    @classmethod
    def always(cls, fault: Fault) -> FaultPlan:
        """Apply ``fault`` to every request."""
        return cls(lambda _n: fault, f"always({fault.kind})")

    @classmethod
    def random(cls, *, seed: int, rates: Mapping[Fault, float]) -> FaultPlan:
        """Pick a fault per request with the given probabilities, reproducibly.

        The same ``seed`` and ``rates`` give the same sequence of faults by arrival
        order, so a failing run can be replayed.

        Args:
            seed: Seed of the plan's private random generator.
            rates: Probability of each fault; the rest of the mass is ``Fault.ok()``.

        Raises:
            ValueError: A rate is negative or the rates sum above 1.
        """
        choices = list(rates.items())
        if any(p < 0 for _, p in choices) or sum(p for _, p in choices) > 1 + 1e-9:
            raise ValueError("fault rates must be non-negative and sum to at most 1")
        rng = random.Random(seed)  # noqa: S311 - reproducible test faults, not crypto
        ok = Fault.ok()

        def pick(_n: int) -> Fault:
            roll = rng.random()
            for fault, p in choices:
                if roll < p:
                    return fault
                roll -= p
            return ok

        return cls(pick, f"random(seed={seed})")

    def next(self) -> Fault:
        """Return the fault for the next request."""
        with self._lock:
            n = self._count
            self._count += 1
            return self._next_fault(n)

    def __repr__(self) -> str:
        return f"FaultPlan.{self._description}"


class TokenBucket:
    """A batches-per-second limit: ``rate`` tokens/s, up to ``burst`` tokens. Thread-safe.

    A request needing more tokens than ``burst`` is admitted when the bucket is full
    (the bucket then goes into debt), so large requests are slowed, never starved.
    Usage is reported two ways: :meth:`percentage_used` (how full the bucket is) and
    :meth:`window_percentage_used` (batches admitted over the last second ÷ ``rate``).
    """

    #: The window of :meth:`window_percentage_used`, seconds.
    WINDOW = 1.0

    def __init__(
        self, rate: float, burst: float | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if rate <= 0:
            raise ValueError("rate_limit must be positive")
        self.rate = rate
        self.burst = burst if burst is not None else max(rate, 1.0)
        self._clock = clock
        self._tokens = self.burst
        self._stamp = clock()
        self._lock = threading.Lock()
        self._admitted: deque[tuple[float, int]] = deque()  # (time, batches) in the window
        self._admitted_total = 0

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now
        admitted = self._admitted
        while admitted and admitted[0][0] <= now - self.WINDOW:
            self._admitted_total -= admitted.popleft()[1]

    def take(self, n: int) -> float | None:
        """Take ``n`` tokens; return ``None`` when admitted, else the seconds to wait."""
        with self._lock:
            self._refill()
            need = min(float(n), self.burst)
            if self._tokens >= need:
                self._tokens -= n
                self._admitted.append((self._stamp, n))
                self._admitted_total += n
                return None
            return (need - self._tokens) / self.rate

    def percentage_used(self) -> int:
        """How much of the burst is currently used, 0-100."""
        with self._lock:
            self._refill()
            used = (self.burst - max(self._tokens, 0.0)) / self.burst
            return min(100, max(0, math.ceil(used * 100)))

    def window_percentage_used(self) -> int:
        """Batches admitted over the last second as a percentage of ``rate``, 0-100.

        Unlike :meth:`percentage_used`, it does not depend on the bucket size: with a
        small burst, one large request fills the bucket but uses a fraction of the limit.
        """
        with self._lock:
            self._refill()
            used = self._admitted_total / (self.rate * self.WINDOW)
            return min(100, max(0, math.ceil(used * 100)))
