"""Destination under mParticle's batch quota, against the fake server's rate limit.

The fake meters batches per second with a token bucket and answers 429 with
``Retry-After`` above it, ``X-mp-rate-limit-percentage-used`` on 2xx.
"""

from __future__ import annotations

import logging

import anyio
import anyio.lowlevel
import pytest
from support.engine import event, ids_by_user, make_config

from mparticle_dest import RetryPolicy
from mparticle_dest._destination.destination import Destination
from mparticle_dest.testing import FakeMparticle, Fault, FaultPlan

pytestmark = pytest.mark.anyio

NO_RETRY = RetryPolicy(max_attempts=1)  # a 429 must not need any retry budget


async def test_429s_never_fail_an_accepted_event_while_the_destination_is_open() -> None:
    # No retry budget at all, and the first requests answered 429: throttling is "not
    # yet", so every event is still delivered, in order.
    throttle = FaultPlan.script([Fault.rate_limited(0.05)] * 4)
    async with FakeMparticle(faults=throttle) as server:
        async with Destination(
            make_config(server, age=0),
            base_url=server.url,
            retry=NO_RETRY,
            linger=0.0,
            close_timeout=30,
        ) as dest:
            receipts = []
            for wave in range(6):  # several requests, so the quota answers some with 429
                for user in range(10):
                    receipts.append(await dest.push(event(f"u{user}", wave)))
                await anyio.sleep(0.05)
            outcomes = [await r for r in receipts]
        stats = dest.stats
    assert stats.throttled == 4
    assert all(o.delivered for o in outcomes)
    assert stats.failed_events == 0 and stats.delivered_events == 60
    assert dest.stats.send_rate is not None  # the pacer learnt a rate from the 429s
    for user, got in ids_by_user(server.events).items():
        assert got == sorted(got), user  # each user's order kept across the 429s


async def test_a_declared_quota_paces_from_the_start_without_a_429() -> None:
    async with FakeMparticle(rate_limit=30, rate_limit_burst=10) as server:
        async with Destination(
            make_config(server, age=0),
            base_url=server.url,
            batches_per_second=20,
            linger=0.0,
        ) as dest:
            for wave in range(4):
                for user in range(10):
                    await dest.push(event(f"u{user}", wave))
                await anyio.sleep(0.02)
            await dest.flush()
            rate = dest.stats.send_rate
            assert rate is not None and rate <= 20  # never above the declared quota
    assert server.event_count == 40
    assert dest.stats.throttled == 0


async def test_a_full_buffer_behind_the_quota_is_reported_at_push_and_in_stats(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="mparticle_dest")
    async with FakeMparticle() as server:
        async with Destination(
            make_config(server, age=0),
            base_url=server.url,
            batches_per_second=10,  # the quota, not the network, is the bottleneck
            max_buffered_events=20,
            full_policy="drop",
            close_timeout=30,
        ) as dest:
            for user in range(20):
                await dest.push(event(f"u{user}", 0))
            await anyio.sleep(0.3)  # the senders meet the quota
            assert dest.stats.quota_limited
            for user in range(20, 40):
                await dest.push(event(f"u{user}", 0))  # full: dropped
            assert dest.stats.dropped > 0
    warnings = [r.getMessage() for r in caplog.records if "quota" in r.getMessage()]
    assert len(warnings) == 1  # rate-limited, not one per push
    assert "max_buffered_events" in warnings[0]


async def test_closing_with_many_open_batches_gives_the_loop_turns() -> None:
    # 3,000 open batches still there when the close timeout runs out: sealing and
    # failing them happens in slices, with the host's other tasks running in between.
    ticks = 0
    seen: list[int] = []

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await anyio.lowlevel.checkpoint()

    async with FakeMparticle(faults=FaultPlan.always(Fault.stall())) as server:
        dest = Destination(
            make_config(server, age=60_000),
            base_url=server.url,
            close_timeout=0.2,
            request_timeout=5,
            on_error=lambda failed: seen.append(ticks),
        )
        async with anyio.create_task_group() as tg:
            tg.start_soon(ticker)
            async with dest:
                for user in range(3000):
                    await dest.push(event(f"u{user}", 0))
            tg.cancel_scope.cancel()
    assert len(seen) == 3000 and dest.stats.undelivered_at_close == 3000
    # The ticker ran between the slices (one step would show a single value; trio may
    # run the two tasks in either order within one of its batches, hence the margin).
    assert len(set(seen)) >= 4
