"""A virtual-clock simulation of mParticle's batch quota and of processes sharing it.

The processes run the library's own pure parts: ``Accumulator`` + ``Scheduler`` (what
leaves, when) and ``Pacer`` (the batch rate), exactly as the engine drives them:
ask the scheduler when a request is ready, ask the pacer for its delay, take, charge,
send; on the answer, ``on_response`` then ``release`` (a 429 puts the batches back).
The server is the fake server's own ``TokenBucket`` on the virtual clock, answering
429 with ``Retry-After`` (whole seconds, as the fake does) and
``X-mp-rate-limit-percentage-used`` on 2xx. Time advances in fixed ticks.
"""

from __future__ import annotations

import heapq
import json
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from mparticle_dest._batching import Accumulator, BatchLimits, Scheduler, SealedBatch
from mparticle_dest._delivery.pacing import Pacer, PacingPolicy
from mparticle_dest._payload.builder import BatchKey
from mparticle_dest.testing._faults import TokenBucket
from support.built import Built


class VirtualClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Quota:
    """mParticle's workspace quota: batches per second, 429 + Retry-After above it."""

    def __init__(
        self,
        clock: VirtualClock,
        rate: float,
        burst: float | None = None,
        *,
        usage: str = "bucket",
    ) -> None:
        """``usage``: what ``X-mp-rate-limit-percentage-used`` reports, ``"bucket"`` (how
        full the bucket is, the fake's default) or ``"window"`` (batches of the last
        second ÷ the rate)."""
        self.bucket = TokenBucket(rate, burst, clock=clock)
        self._usage = (
            self.bucket.window_percentage_used if usage == "window" else self.bucket.percentage_used
        )
        self.requests = 0
        self.throttled = 0
        self.batches = 0
        self.accepted: list[tuple[float, int]] = []  # (time, batches) of each 2xx
        self._clock = clock

    def answer(self, batches: int) -> tuple[int, dict[str, str]]:
        self.requests += 1
        wait = self.bucket.take(batches)
        if wait is not None:
            self.throttled += 1
            return 429, {"retry-after": str(max(1, math.ceil(wait)))}
        self.batches += batches
        self.accepted.append((self._clock.now, batches))
        return 202, {"x-mp-rate-limit-percentage-used": str(self._usage())}

    def drain(self) -> None:
        """Another client takes every token left (a momentary shortage of the quota)."""
        while self.bucket.take(1) is None:
            pass


@dataclass
class Process:
    """One process: its users' traffic, buffer cap, scheduler, pacer and senders."""

    name: str
    clock: VirtualClock
    quota: Quota
    users: int
    events_per_second: float
    cap: int
    age: float = 2.0
    max_in_flight: int = 4
    latency: float = 0.03
    #: Each request's latency varies by up to this much either way (seeded: deterministic).
    jitter: float = 0.0
    pad: int = 200
    policy: PacingPolicy = field(default_factory=PacingPolicy)
    batches_per_second: float | None = None
    max_delay: float = 10.0
    seed_offset: int = 0
    # results
    pushed: int = 0
    blocked_ticks: int = 0
    delivered_events: int = 0
    delivered_batches: int = 0
    requests: int = 0
    throttled: int = 0
    failed: int = 0
    received: dict[str, list[int]] = field(default_factory=dict)
    sent_at: list[tuple[float, int]] = field(default_factory=list)
    # (time accepted, events, seconds since the batch became eligible) per delivered batch
    delivered_log: list[tuple[float, int, float]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.acc = Accumulator(BatchLimits(age=self.age))
        self.pacer = Pacer(
            self.policy, batches_per_second=self.batches_per_second, clock=self.clock
        )
        pacer = self.pacer
        self.scheduler = Scheduler(
            self.acc,
            max_delay=self.max_delay,
            # As the destination wires it: the rate counts only when the quota is declared.
            quota_rate=None if self.batches_per_second is None else (lambda: pacer.rate),
            max_events=self.cap,
            quota_known=lambda: pacer.rate is not None,
        )
        self.buffered = 0
        self.max_buffered = 0
        self.idle = self.max_in_flight
        self.keys = [
            BatchKey("production", (("customer_id", f"{self.name}-u{u}"),))
            for u in range(self.users)
        ]
        self._credit = 0.0
        self._n = 0
        self._inflight: list[tuple[float, int, list[SealedBatch], int, dict[str, str]]] = []
        self._seq = 0
        self._random = random.Random(f"{self.name}-{self.seed_offset}")

    # -- traffic ---------------------------------------------------------------------------

    def offer(self, dt: float, pick_user: Callable[[int], int], factor: float = 1.0) -> None:
        """Offer this tick's events; a full buffer blocks the producer (the wait policy)."""
        self._credit += self.events_per_second * dt * factor
        now = self.clock.now
        while self._credit >= 1.0:
            if self.buffered >= self.cap:
                self.blocked_ticks += 1
                self._credit = min(self._credit, 1.0)  # the producer waits: offered load lost
                return
            self._credit -= 1.0
            n = self._n
            self._n += 1
            user = pick_user(n)
            key = self.keys[user]
            body = b'{"n":%d,"p":"%s"}' % (n, b"x" * self.pad)
            event_id = f"{self.name}-{n}"
            _, sealed = self.acc.add(Built(key, body, event_id, event_id), now)
            for batch in sealed:
                self.scheduler.add_sealed(batch)
            self.buffered += 1
            self.pushed += 1
        self.max_buffered = max(self.max_buffered, self.buffered)

    def flush(self) -> None:
        self.scheduler.urgent += 1
        self.acc.due(self.clock.now, until=math.inf)

    # -- sending ---------------------------------------------------------------------------

    def step(self) -> None:
        now = self.clock.now
        while self._inflight and self._inflight[0][0] <= now:
            _, _, batches, status, headers = heapq.heappop(self._inflight)
            self._answer(batches, status, headers)
        self.acc.due(now)
        while self.idle:
            at = self.scheduler.ready_at(now)
            if at is None or at > now or self.pacer.delay() > 0.0:
                return
            batches = self.scheduler.take(now, self.pacer.request_budget())
            if not batches:
                return
            self.pacer.charge(len(batches))
            self.idle -= 1
            self.requests += 1
            status, headers = self.quota.answer(len(batches))
            self.sent_at.append((now, len(batches)))
            self._seq += 1
            latency = self.latency + self._random.uniform(-self.jitter, self.jitter)
            heapq.heappush(self._inflight, (now + latency, self._seq, batches, status, headers))

    def _answer(self, batches: list[SealedBatch], status: int, headers: dict[str, str]) -> None:
        self.idle += 1
        self.pacer.on_response(status, headers, len(batches))
        if status == 429:
            self.throttled += 1
            self.scheduler.release(batches, throttled=batches)
            return
        for batch in batches:
            self.delivered_log.append(
                (self.clock.now, batch.event_count, self.clock.now - batch.eligible_at)
            )
            self.delivered_batches += 1
            self.delivered_events += batch.event_count
            self.buffered -= batch.event_count
            body = json.loads(batch.body)
            user = body["user_identities"]["customer_id"]
            self.received.setdefault(user, []).extend(e["n"] for e in body["events"])
        self.scheduler.release(batches)

    @property
    def idle_and_empty(self) -> bool:
        return self.buffered == 0 and not self._inflight


def run(
    processes: list[Process],
    *,
    seconds: float,
    tick: float = 0.001,
    pick_user: Callable[[Process, int], int] | None = None,
    shape: Callable[[float], float] = lambda t: 1.0,
    drain: float = 120.0,
) -> None:
    """Run the processes for ``seconds`` of traffic, then flush and drain (bounded).

    ``shape(t)`` scales the offered load at time ``t`` (bursts); ``pick_user(p, n)``
    chooses the user of process ``p``'s ``n``-th event (default: spread evenly).
    """
    clock = processes[0].clock
    steps = round(seconds / tick)
    choose = pick_user or (lambda p, n: (n * 7919) % p.users)
    for _ in range(steps):
        clock.now += tick
        for p in processes:
            p.offer(tick, lambda n, p=p: choose(p, n), shape(clock.now))
            p.step()
    for p in processes:
        p.flush()
    end = clock.now + drain
    while clock.now < end and not all(p.idle_and_empty for p in processes):
        clock.now += tick
        for p in processes:
            p.step()


def quota_used(quota: Quota, start: float, end: float) -> float:
    """Fraction of the quota's batches accepted within [start, end)."""
    accepted = sum(n for t, n in quota.accepted if start <= t < end)
    return accepted / (quota.bucket.rate * (end - start))
