"""Traffic of the regime benchmarks: many users' events, offered at a steady rate.

:class:`Traffic` makes walkerOS `product view` events of the scenario's shape
(:mod:`benchmarks.scenario`) for any number of users at about a microsecond each:
the product, context and consent objects are shared between events (``push`` never
mutates an event), and only the user, id and timestamp are built per event. So the
generation costs little beside the library, and 200,000 users need no table.

:func:`produce` offers events at a fixed rate for a fixed time, as a service's
request handlers would, and measures how long ``push`` held the producer.
"""

from __future__ import annotations

import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from time import perf_counter
from typing import Any

import anyio

from .scenario import BASE_TIMESTAMP, _catalogue

#: A push taking longer than this waited for room in the buffer (or stalled on the loop).
BLOCKED_PUSH_S = 0.001

#: How often the producer wakes to push the events that have come due.
PRODUCER_TICK_S = 0.005

_CONTEXT = {"shopping": ["detail", 0]}
_GLOBALS = {"pagegroup": "shop"}
_CONSENT = ({"functional": True, "marketing": False}, {"functional": True, "marketing": True})


class Traffic:
    """Events of ``users`` users chosen uniformly at random, reproducibly.

    Args:
        users: Distinct users.
        seed: Seed of the user choice and the catalogue.
        id_prefix: Four hex digits that start every event id, so that several
            producers (processes) never make the same id.
    """

    def __init__(self, users: int, *, seed: int = 13, id_prefix: int = 0) -> None:
        if users < 1:
            raise ValueError("users must be >= 1")
        rng = random.Random(seed)
        self.users = users
        self._products = [{**p, "quantity": 1} for p in _catalogue(rng)]
        self._rng = rng
        self._prefix = f"{id_prefix & 0xFFFF:04x}"

    def event(self, k: int) -> dict[str, Any]:
        """The ``k``-th event (``k`` also makes its id and timestamp)."""
        u = self._rng.randrange(self.users)
        return {
            "name": "product view",
            "data": self._products[k % len(self._products)],
            "context": _CONTEXT,
            "globals": _GLOBALS,
            "user": {"id": f"user-{u:06d}", "email": f"user{u}@example.com", "session": f"s-{u}"},
            "consent": _CONSENT[u % 3 != 0],
            "id": f"{self._prefix}{k:012x}",
            "trigger": "load",
            "entity": "product",
            "action": "view",
            "timestamp": BASE_TIMESTAMP + k * 7,
            "timing": 1.5,
            "source": {"type": "express", "platform": "server", "count": k + 1},
        }


@dataclass
class Produced:
    """What :func:`produce` offered and what ``push`` took.

    Attributes:
        offered: Events that came due over the run (rate × duration).
        pushed: Events ``push`` returned from (accepted, dropped or refused alike).
        in_push_s: Wall time spent inside ``push``.
        blocked_s: Wall time of the pushes longer than :data:`BLOCKED_PUSH_S`.
        wall_s: Length of the run (from the first push until the producer stopped).
        started: ``time.monotonic()`` at the first push (comparable across processes).
    """

    offered: int = 0
    pushed: int = 0
    in_push_s: float = 0.0
    blocked_s: float = 0.0
    wall_s: float = 0.0
    started: float = 0.0


async def produce(
    push: Callable[[dict[str, Any]], Awaitable[Any]],
    traffic: Traffic,
    *,
    rate: float,
    duration: float,
) -> Produced:
    """Offer ``rate`` events per second for ``duration`` seconds to ``push``.

    Every :data:`PRODUCER_TICK_S` the producer pushes the events that have come due
    since the start, one ``await push(event)`` after another, then sleeps to the next
    tick. When ``push`` holds it (a full buffer with the ``wait`` policy, or a slow
    client), the events due pile up as *offered*, not *pushed*: the run never
    lasts longer than ``duration`` to catch up.
    """
    out = Produced(offered=int(rate * duration), started=time.monotonic())
    start = perf_counter()
    end = start + duration
    k = 0
    while True:
        now = perf_counter()
        if now >= end:
            break
        due = min(out.offered, int((now - start) * rate) + 1)
        while k < due:
            event = traffic.event(k)
            t0 = perf_counter()
            await push(event)
            t1 = perf_counter()
            spent = t1 - t0
            out.in_push_s += spent
            if spent > BLOCKED_PUSH_S:
                out.blocked_s += spent
            k += 1
            if t1 >= end:
                break
        await anyio.sleep(max(0.0, min(PRODUCER_TICK_S, end - perf_counter())))
    out.pushed = k
    out.wall_s = perf_counter() - start
    return out
