"""Backpressure: the buffered-event cap and its wait / drop / raise policies (issue 4 §7)."""

from __future__ import annotations

import gc
import logging
import tracemalloc

import anyio
import pytest
from support.engine import FAST_RETRY, event, make_config

from mparticle_dest import BufferFullError
from mparticle_dest._destination.destination import Destination
from mparticle_dest._receipt import Receipt
from mparticle_dest.testing import FakeMparticle, Fault, FaultPlan

pytestmark = pytest.mark.anyio

STALL = FaultPlan.always(Fault.stall())


def stalled_destination(server: FakeMparticle, **options: object) -> Destination:
    return Destination(
        make_config(server, age=5),
        base_url=server.url,
        retry=FAST_RETRY,
        close_timeout=0.3,
        **options,  # type: ignore[arg-type]
    )


async def fill(dest: Destination, n: int, user: str = "u1") -> list[Receipt]:
    return [await dest.push(event(user, i)) for i in range(n)]


async def test_wait_policy_blocks_push_until_room_then_accepts() -> None:
    # The first request is slow: the cap is reached while it is in flight.
    async with FakeMparticle(faults=FaultPlan.script([Fault.slow(0.4)])) as server:
        async with Destination(
            make_config(server, age=5), base_url=server.url, max_buffered_events=10
        ) as dest:
            await fill(dest, 10)
            accepted: list[Receipt] = []

            async def late_push() -> None:
                accepted.append(await dest.push(event("u2", 1)))

            async with anyio.create_task_group() as tg:
                tg.start_soon(late_push)
                await anyio.sleep(0.15)
                assert accepted == []  # still waiting for room
                assert dest.stats.buffered == 10
            assert (await accepted[0]).delivered
        assert server.event_count == 11
        assert dest.stats.refused == 0 and dest.stats.dropped == 0


async def test_a_cancelled_waiting_push_accepts_nothing() -> None:
    async with FakeMparticle(faults=STALL) as server:
        async with stalled_destination(server, max_buffered_events=10) as dest:
            receipts = await fill(dest, 10)
            with anyio.move_on_after(0.1) as scope:
                await dest.push(event("u2", 1))
            assert scope.cancelled_caught
            stats = dest.stats
            assert (stats.buffered, stats.refused, stats.accepted) == (10, 1, 10)
        report = await dest.aclose()
    assert report.undelivered == 10  # the stalled server never answered
    assert all(r.outcome is not None and r.outcome.reason == "closed" for r in receipts)


async def test_wait_policy_with_full_timeout_raises_buffer_full() -> None:
    async with FakeMparticle(faults=STALL) as server:
        async with stalled_destination(server, max_buffered_events=10, full_timeout=0.05) as dest:
            await fill(dest, 10)
            with pytest.raises(BufferFullError, match=r"after waiting 0\.05 s"):
                await dest.push(event("u2", 1))
            assert dest.stats.refused == 1


async def test_raise_policy_refuses_at_once() -> None:
    async with FakeMparticle(faults=STALL) as server:
        async with stalled_destination(server, max_buffered_events=10, full_policy="raise") as dest:
            await fill(dest, 10)
            for i in range(3):
                with pytest.raises(BufferFullError, match="10 events are buffered"):
                    await dest.push(event("u2", i))
            stats = dest.stats
            assert (stats.refused, stats.buffered) == (3, 10)


async def test_drop_policy_drops_new_events_counted_and_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="mparticle_dest")
    async with FakeMparticle(faults=STALL) as server:
        async with stalled_destination(server, max_buffered_events=10, full_policy="drop") as dest:
            kept = await fill(dest, 10)
            dropped = [await dest.push(event("u2", i)) for i in range(50)]
            stats = dest.stats
        report = await dest.aclose()
    assert (stats.dropped, stats.buffered, stats.accepted) == (50, 10, 10)
    for receipt in dropped:
        outcome = receipt.outcome
        assert outcome is not None
        assert (outcome.status, outcome.reason) == ("dropped", "buffer_full")
    assert report.undelivered == 10
    assert all(r.outcome is not None and r.outcome.reason == "closed" for r in kept)
    drops_logged = [r for r in caplog.records if "dropping new events" in r.getMessage()]
    assert len(drops_logged) == 1


async def test_memory_stays_bounded_under_a_stalled_server() -> None:
    cap = 100
    async with FakeMparticle(faults=STALL) as server:
        async with stalled_destination(server, max_buffered_events=cap, full_policy="drop") as dest:
            await fill(dest, cap)
            await anyio.sleep(0.05)  # the batches are sealed and in flight (stalled)
            gc.collect()
            tracemalloc.start()
            try:
                await fill(dest, 500, user="warmup")
                gc.collect()
                baseline = tracemalloc.get_traced_memory()[0]
                for i in range(3):
                    await fill(dest, 1000, user=f"u{i}")
                    assert dest.stats.buffered <= cap
                gc.collect()
                grown = tracemalloc.get_traced_memory()[0] - baseline
            finally:
                tracemalloc.stop()
            assert dest.stats.dropped == 3_500
    # 3,000 retained events would take megabytes; a bounded buffer keeps growth tiny.
    assert grown < 256 * 1024, grown


async def test_buffered_open_batches_are_sent_when_the_buffer_fills() -> None:
    # A one-minute age: without the cap, nothing would leave before the flush.
    async with FakeMparticle() as server:
        async with Destination(
            make_config(server, age=60_000), base_url=server.url, max_buffered_events=20
        ) as dest:
            for i in range(60):
                await dest.push(event(f"u{i % 7}", i))
            assert server.event_count >= 40  # room was made by sending waiting batches
        assert server.event_count == 60


async def test_a_full_buffer_sends_the_oldest_batches_and_lets_the_others_grow() -> None:
    # 30 users and room for 60 events: sealing every open batch whenever the buffer
    # fills would cut each user's batch at 2 events (300 batches for 600 events).
    async with FakeMparticle() as server:
        async with Destination(
            make_config(server, age=60_000), base_url=server.url, max_buffered_events=60
        ) as dest:
            for i in range(600):
                await dest.push(event(f"u{i % 30}", i))
        assert server.event_count == 600
        assert dest.stats.batches < 250, dest.stats.batches
