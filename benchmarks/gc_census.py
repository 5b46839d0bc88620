"""``python -m benchmarks.gc_census USERS EVENTS``: what the collector tracks per buffered event.

Pushes ``EVENTS`` events of ``USERS`` users to a sink that holds every request
unanswered (as the ``users`` memory pass does), then counts the objects the garbage
collector tracks (``gc.get_objects()``) by type, against the count before the pushes.
"""

from __future__ import annotations

import collections
import gc
import sys

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


def main(argv: list[str]) -> int:
    """``python -m benchmarks.gc_census USERS EVENTS``."""
    users, events = (int(a) for a in argv) if len(argv) == 2 else (20_000, 200_000)
    anyio.run(census, users, events)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
