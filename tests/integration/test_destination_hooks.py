"""The engine's hooks for relays: ``before_send``, ``quota_gate`` and ``resend``."""

from __future__ import annotations

from collections.abc import Sequence

import anyio
import pytest
from support.engine import FAST_PACING, FAST_RETRY, event, make_config

from mparticle_dest import Destination
from mparticle_dest._batching import SealedBatch
from mparticle_dest.testing import FakeMparticle, Fault, FaultPlan

pytestmark = pytest.mark.anyio


async def test_before_send_sees_each_batch_once_before_its_first_attempt():
    seen: list[tuple[str, bytes, int]] = []
    requests_at_hook: list[int] = []

    with FakeMparticle(faults=FaultPlan.script([Fault.server_error(503)])) as server:

        async def before_send(batches: Sequence[SealedBatch]) -> None:
            requests_at_hook.append(len(server.requests))
            seen.extend((b.source_request_id, b.body, b.event_count) for b in batches)

        config = make_config(server, age=10_000)
        async with Destination(
            config,
            base_url=server.url,
            retry=FAST_RETRY,
            pacing=FAST_PACING,
            before_send=before_send,
        ) as dest:
            for n in range(3):
                await dest.push(event("alice", n))
            await dest.push(event("bob", 0))
            await dest.flush()
        # One request, retried once after the 503: the hook ran once, before both.
        assert requests_at_hook == [0]
        assert len(server.requests) == 2
        assert sorted(srid for srid, _, _ in seen) == sorted(
            b.source_request_id for b in server.batches
        )
        assert sum(count for _, _, count in seen) == 4


async def test_a_failing_before_send_keeps_the_batch_off_the_wire():
    async def before_send(batches: Sequence[SealedBatch]) -> None:
        raise ConnectionError("ledger unavailable")

    with FakeMparticle() as server:
        async with Destination(
            make_config(server), base_url=server.url, before_send=before_send
        ) as dest:
            receipt = await dest.push(event("alice", 0))
            await dest.flush()
        outcome = await receipt
        assert (outcome.status, outcome.reason) == ("failed", "error")
        assert server.requests == []


async def test_quota_gate_is_acquired_for_every_batch_before_its_request():
    acquired: list[int] = []

    class Gate:
        async def acquire(self, batches: int) -> None:
            acquired.append(batches)

    with FakeMparticle() as server:
        async with Destination(
            make_config(server, age=10_000), base_url=server.url, quota_gate=Gate()
        ) as dest:
            for user in ("a", "b", "c"):
                await dest.push(event(user, 0))
            await dest.flush()
            await dest.push(event("d", 0))
            await dest.flush()
        assert sum(acquired) == len(server.batches) == 4
        assert len(acquired) == len(server.requests)


async def test_resend_delivers_the_identical_bytes_and_mparticle_ingests_them_once():
    bodies: list[SealedBatch] = []

    async def before_send(batches: Sequence[SealedBatch]) -> None:
        bodies.extend(batches)

    with FakeMparticle() as server:
        async with Destination(
            make_config(server), base_url=server.url, before_send=before_send
        ) as dest:
            await dest.push(event("alice", 0))
            await dest.push(event("alice", 1))
            await dest.flush()
            (sent,) = bodies
            receipt = await dest.resend(
                sent.body, source_request_id=sent.source_request_id, event_count=2
            )
            with anyio.fail_after(10):
                outcome = await receipt
        assert outcome.status == "delivered"
        assert server.requests[-1].body == b"[" + sent.body + b"]"
        assert len(bodies) == 2  # the resend passed the hook too (it decides what to record)
        assert server.stats.events == 2
        assert server.stats.deduplicated_batches == 1
