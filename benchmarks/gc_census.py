"""``python -m benchmarks.gc_census USERS EVENTS``: what the collector tracks per buffered event.

Pushes ``EVENTS`` events of ``USERS`` users to a sink that holds every request
unanswered (as the ``users`` memory pass does), then counts the objects the garbage
collector tracks (``gc.get_objects()``) by type, against the count before the pushes.

``python -m benchmarks.gc_census promotions [SECONDS]``: the loop benchmark's traffic
(20,000 users, 10,000 events/s, a sink without a limit) in this process; at the start of
every generation-1 collection, the tracked objects of the two young generations, by type:
those still alive at its end are promoted to the oldest generation, whose growth triggers
full collections (tuples the collection will untrack are left out).
"""

from __future__ import annotations

import collections
import gc
import sys
import time

import anyio
import anyio.lowlevel

from .scenario import scenario_config
from .server_proc import StalledServer
from .traffic import Traffic


async def census(users: int, events: int) -> None:
    """Print the tracked objects the buffered events added, by type."""
    from mparticle_dest import Destination

    traffic = Traffic(users, seed=5)
    warm = Traffic(users, seed=6, id_prefix=1)
    with StalledServer() as server:
        dest = Destination(
            scenario_config(100, 1_000),
            base_url=server.url,
            max_buffered_events=events + 1_000,
            close_timeout=600.0,
        )
        async with dest:
            for k in range(64):  # imports, caches and the connection pool first
                await dest.push(warm.event(k))
            await anyio.sleep(0.05)
            gc.collect()
            before = collections.Counter(type(o).__name__ for o in gc.get_objects())
            for k in range(events):
                await dest.push(traffic.event(k))
                if k % 100 == 0:
                    await anyio.lowlevel.checkpoint()
            await anyio.sleep(0.2)
            gc.collect()
            added = collections.Counter(type(o).__name__ for o in gc.get_objects()) - before
            total = sum(added.values())
            print(f"{users:,} users, {events:,} events buffered: {total:,} tracked objects added")
            print(f"({total / events:.3f} per event)")
            for name, n in added.most_common(8):
                print(f"  {name:<28} {n:>9,}  {n / events:.3f} per event")
            server.release()


def _untrackable(obj: object) -> bool:
    """Whether a collection untracks ``obj`` (a tuple of untracked items) or it is not tracked."""
    if not gc.is_tracked(obj):
        return True
    return type(obj) is tuple and all(_untrackable(item) for item in obj)


async def promotions(seconds: float) -> None:
    """Print what the generation-1 collections found in the young generations, by type."""
    from mparticle_dest import Destination

    from . import procs
    from .traffic import produce

    seen: collections.Counter[str] = collections.Counter()
    full: list[float] = []
    young = [0]

    def on_gc(phase: str, info: dict[str, object]) -> None:
        if phase != "start":
            return
        if info["generation"] == 1:
            young[0] += 1
            for generation in (0, 1):
                for obj in gc.get_objects(generation):
                    if not (type(obj) is tuple and _untrackable(obj)):
                        seen[type(obj).__name__] += 1
        elif info["generation"] == 2:
            full.append(time.perf_counter())

    with procs.metered_sink(None) as sink:
        async with Destination(scenario_config(100, 1_000), base_url=sink.url) as dest:
            await anyio.sleep(0.1)
            gc.callbacks.append(on_gc)
            try:
                t0 = time.perf_counter()
                await produce(dest.push, Traffic(20_000, seed=7), rate=10_000, duration=seconds)
            finally:
                gc.callbacks.remove(on_gc)
    total = sum(seen.values())
    print(f"{seconds:g} s of 10,000 events/s of 20,000 users: {young[0]} generation-1 collections")
    print(f"found {total:,} tracked objects in the young generations ({total / seconds:,.0f}/s)")
    print("full collections at", ", ".join(f"{t - t0:.2f} s" for t in full) or "none")
    for name, n in seen.most_common(8):
        print(f"  {name:<28} {n:>9,}")


def main(argv: list[str]) -> int:
    """``python -m benchmarks.gc_census USERS EVENTS`` or ``... promotions [SECONDS]``."""
    if argv[:1] == ["promotions"]:
        anyio.run(promotions, float(argv[1]) if len(argv) > 1 else 5.0)
        return 0
    users, events = (int(a) for a in argv) if len(argv) == 2 else (20_000, 200_000)
    anyio.run(census, users, events)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
