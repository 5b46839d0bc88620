"""Many users in the host's process: what the buffer asks of the garbage collector.

A service may hold one open batch per user for seconds. Every object the collector
tracks that lives that long is promoted to the oldest generation, and enough of them
trigger a full collection: a pause of the whole heap in the host's event loop.
"""

from __future__ import annotations

import gc

import pytest
from support.engine import event, make_config
from support.imports import loaded_by_import

from mparticle_dest import Destination
from mparticle_dest.testing import FakeMparticle, Fault, FaultPlan


@pytest.mark.anyio
async def test_buffered_events_of_many_users_leave_no_tracked_object_per_batch() -> None:
    users, per_user = 3000, 2
    async with FakeMparticle(faults=FaultPlan.always(Fault.stall())) as server:
        async with Destination(
            make_config(server, age=600_000),  # nothing becomes eligible: all stays open
            base_url=server.url,
            max_buffered_events=users * per_user + 100,
            close_timeout=0.2,
        ) as dest:
            for n in range(20):  # imports and caches first
                await dest.push(event(f"warm-{n}", 0))
            gc.collect()
            before = len(gc.get_objects())
            for n in range(per_user):
                for u in range(users):
                    await dest.push(event(f"user-{u}", n))  # the receipts are dropped
            gc.collect()
            added = len(gc.get_objects()) - before
            assert dest.stats.buffered == users * per_user + 20
    # The open batches hold their keys, events, ids and outcomes as bytes, strings,
    # numbers and untracked dicts: no tracked object per batch, only the tables' own.
    assert added / users < 0.05


def test_import_leaves_the_cli_and_its_dependencies_out() -> None:
    # A service imports the library, not the command line: rich, click and trio (an
    # optional backend) stay out of its process and of every full collection.
    assert loaded_by_import("rich", "click", "trio", prefix="mparticle_dest._cli") == []
