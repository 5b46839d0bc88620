"""``Relay``: entries delivered, acknowledged only when final, dead letters, skips."""

from __future__ import annotations

import orjson
import pytest
from helpers import make_relay, produce, redis_call, running, status, wait_for, walker
from support.engine import make_config

from mparticle_dest._event import DECODED_WALK_FREE_BYTES, MAX_DEPTH
from mparticle_dest.streams import Keys, connect, replay
from mparticle_dest.testing import FakeMparticle

pytestmark = pytest.mark.anyio


async def test_relay_delivers_every_entry_then_acknowledges_and_deletes_it(redis_url):
    events = [walker(f"u{u}", n) for n in range(20) for u in range(5)]
    with FakeMparticle() as server:
        relay = make_relay(make_config(server), redis_url, server.url)
        async with running(relay):
            await produce(redis_url, events)

            async def all_acknowledged() -> bool:
                s = await status(redis_url)
                return s.length == 0 and s.pending == 0

            await wait_for(all_acknowledged)
        assert sorted(e.source_message_id for e in server.events) == sorted(e["id"] for e in events)
        # Each user's events arrive in push order.
        for u in range(5):
            got = [e.source_message_id for e in server.events_for("customer_id", f"u{u}")]
            assert got == [f"u{u}-{n:05d}" for n in range(20)]
    stats = relay.stats
    assert (stats.read, stats.delivered, stats.dead_lettered) == (100, 100, 0)
    assert await redis_call(redis_url, "HLEN", "s:ledger") == 0  # records cleared with the ack
    assert await redis_call(redis_url, "KEYS", "s:batch:*") == []


async def test_skipped_events_are_acknowledged_and_counted(redis_url):
    config_mapping = {"page": {"hidden": {"ignore": True}}}
    with FakeMparticle() as server:
        relay = make_relay(make_config(server, mapping=config_mapping), redis_url, server.url)
        async with running(relay):
            await produce(redis_url, [walker("u", 0, "page hidden"), walker("u", 1)])

            async def done() -> bool:
                return (await status(redis_url)).length == 0

            await wait_for(done)
        assert [e.source_message_id for e in server.events] == ["u-00001"]
    assert (relay.stats.skipped, relay.stats.delivered) == (1, 1)


async def test_a_rejected_batch_is_dead_lettered_with_its_reason_and_replay_delivers_it(redis_url):
    def poisoned(batch) -> bool:
        return batch["user_identities"].get("customer_id") == "bad"

    events = [walker("good", n) for n in range(5)] + [walker("bad", n) for n in range(3)]
    with FakeMparticle(reject_batch=poisoned) as server:
        relay = make_relay(make_config(server), redis_url, server.url)
        # One batch per request: the rejection hits the poisoned batch alone.
        async with running(relay):
            await produce(redis_url, events)

            async def settled() -> bool:
                s = await status(redis_url)
                return s.length == 0 and s.dead_letters == 1

            await wait_for(settled)
        delivered = {e.source_message_id for e in server.events}
        assert delivered == {f"good-{n:05d}" for n in range(5)}
        ((_, letter),) = await redis_call(redis_url, "XRANGE", "s:dead", "-", "+")
        assert letter[b"reason"] == b"rejected"
        assert letter[b"status"] == b"400"
        assert b"reject_batch" in letter[b"error"]
        body = orjson.loads(letter[b"body"])
        assert body["user_identities"]["customer_id"] == "bad"
        assert body["source_request_id"] == letter[b"source_request_id"].decode()
        assert [e["id"] for e in orjson.loads(letter[b"events"])] == [
            f"bad-{n:05d}" for n in range(3)
        ]
        assert relay.stats.dead_lettered == 3

        # The fix: mParticle accepts it now; replay moves the events back to the stream.
        server.set_reject_batch(None)
        client = connect(redis_url)
        try:
            assert await replay(client, Keys.of("s")) == (1, 3)
        finally:
            await client.aclose()
        relay = make_relay(make_config(server), redis_url, server.url)
        async with running(relay):

            async def replayed() -> bool:
                s = await status(redis_url)
                return s.length == 0 and s.dead_letters == 0 and len(server.events) == 8

            await wait_for(replayed)
        assert sorted(e.source_message_id for e in server.events) == sorted(e["id"] for e in events)


async def test_an_entry_that_is_not_a_valid_event_is_dead_lettered_as_invalid(redis_url):
    await redis_call(redis_url, "XADD", "s", "*", "e", b'{"name": "nospace"}')
    await redis_call(redis_url, "XADD", "s", "*", "other", b"x")
    with FakeMparticle() as server:
        relay = make_relay(make_config(server), redis_url, server.url)
        async with running(relay):

            async def settled() -> bool:
                return (await status(redis_url)).dead_letters == 2

            await wait_for(settled)
    letters = await redis_call(redis_url, "XRANGE", "s:dead", "-", "+")
    assert [f[b"reason"] for _, f in letters] == [b"invalid", b"invalid"]
    assert (await status(redis_url)).length == 0


async def test_batches_given_up_for_now_stay_pending_and_are_reclaimed(redis_url):
    from mparticle_dest import RetryPolicy
    from mparticle_dest.testing import Fault, FaultPlan

    events = [walker("u", n) for n in range(4)]
    # Every attempt answered 503 until the plan is replaced: the retry budget runs out.
    with FakeMparticle(faults=FaultPlan.always(Fault.server_error(503))) as server:
        relay = make_relay(
            make_config(server),
            redis_url,
            server.url,
            claim_idle=0.3,
            retry=RetryPolicy(max_attempts=2, initial_backoff=0.01, max_backoff=0.01),
        )
        async with running(relay):
            await produce(redis_url, events)

            async def given_up() -> bool:
                return relay.stats.left_pending >= 4

            await wait_for(given_up)
            assert (await status(redis_url)).pending == 4  # not acknowledged: pending
            server.set_faults(None)

            async def delivered() -> bool:
                return (await status(redis_url)).length == 0

            await wait_for(delivered)
        assert sorted(e.source_message_id for e in server.events) == [e["id"] for e in events]
        assert relay.stats.resent_batches >= 1  # the recorded batch, byte for byte
        assert server.stats.repeated_events == 0


async def test_batches_never_sent_by_the_close_timeout_are_counted_and_stay_pending(redis_url):
    from mparticle_dest.testing import Fault, FaultPlan

    # The first request is held by the server; until it is answered no other leaves, so
    # the later user's batch never reaches an attempt before the close timeout.
    with FakeMparticle(faults=FaultPlan.always(Fault.stall())) as server:
        relay = make_relay(make_config(server), redis_url, server.url, close_timeout=0.3)
        try:
            async with running(relay):
                await produce(redis_url, [walker("first", n) for n in range(3)])

                async def held() -> bool:
                    return server.held > 0

                await wait_for(held)
                await produce(redis_url, [walker("later", n) for n in range(4)])

                async def read() -> bool:
                    return relay.stats.read == 7

                await wait_for(read)
        finally:
            server.release_stalled()
    stats = relay.stats
    assert (stats.delivered, stats.left_pending, stats.dead_lettered) == (0, 7, 0)
    assert stats.destination is not None
    assert stats.destination.undelivered_at_close == 7
    assert (await status(redis_url)).pending == 7  # for another relay to reclaim


async def test_an_entry_too_large_for_the_decoded_check_is_validated_in_full(redis_url):
    # Past the validation's container budget a value nested too deep is refused, as
    # Destination.push refuses it; a small valid entry beside it is delivered.
    deep: object = 0
    for _ in range(MAX_DEPTH + 1):
        deep = [deep]
    wide = [[] for _ in range(DECODED_WALK_FREE_BYTES // 2)]
    complete = {"entity": "page", "action": "view", "timestamp": 1700000000000}  # as produced
    big = {**walker("big", 0), **complete, "x": {"wide": wide, "deep": deep}}
    await redis_call(redis_url, "XADD", "s", "*", "e", orjson.dumps(big))
    await redis_call(redis_url, "XADD", "s", "*", "e", orjson.dumps(walker("small", 0)))
    with FakeMparticle() as server:
        relay = make_relay(make_config(server), redis_url, server.url)
        async with running(relay):

            async def settled() -> bool:
                s = await status(redis_url)
                return s.length == 0 and s.dead_letters == 1

            await wait_for(settled)
        assert [e.source_message_id for e in server.events] == ["small-00000"]
    ((_, letter),) = await redis_call(redis_url, "XRANGE", "s:dead", "-", "+")
    assert letter[b"reason"] == b"invalid"
    assert b"nested deeper than 100 levels" in letter[b"error"]
