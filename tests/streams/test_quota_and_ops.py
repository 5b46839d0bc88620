"""The shared token bucket, ``relay status`` and ``relay replay-dead``."""

from __future__ import annotations

import json

import anyio
import pytest
from click.testing import CliRunner
from helpers import make_relay, produce, redis_call, running, status, wait_for, walker
from support.engine import make_config

from mparticle_dest import Destination
from mparticle_dest._cli.main import cli
from mparticle_dest.streams import Keys, RedisQuota, connect
from mparticle_dest.streams._scripts import TAKE_TOKENS
from mparticle_dest.testing import FakeMparticle

pytestmark = pytest.mark.anyio


async def test_the_bucket_reserves_tokens_in_arrival_order_across_clients(redis_url):
    first, second = connect(redis_url), connect(redis_url)
    try:
        # 100 batches/s, burst 10: the burst goes at once, then each batch costs 10 ms.
        assert await TAKE_TOKENS(first, ["q"], [100, 10, 10]) == 0
        wait_a = await TAKE_TOKENS(second, ["q"], [100, 10, 5])
        wait_b = await TAKE_TOKENS(first, ["q"], [100, 10, 5])
    finally:
        await first.aclose()
        await second.aclose()
    # Reservations queue up: the second caller waits for the first one's tokens too.
    assert 30 <= wait_a <= 50
    assert 80 <= wait_b <= 100


async def test_destinations_opting_in_share_one_bucket(redis_url):
    quota = RedisQuota(redis_url, batches_per_second=1000, burst=1000, key="ws")
    with FakeMparticle() as server:
        async with Destination(make_config(server), base_url=server.url, quota_gate=quota) as d:
            for user in range(7):
                await d.push(walker(f"u{user}", 0))
            await d.flush()
    await quota.aclose()
    tokens = float(await redis_call(redis_url, "HGET", "ws", "tokens"))
    assert len(server.batches) == 7
    assert 993 <= tokens < 1000  # 7 taken, a few ms of refill at most


async def test_relays_take_their_batches_from_the_shared_bucket(redis_url):
    with FakeMparticle() as server:
        relay = make_relay(
            make_config(server), redis_url, server.url, batches_per_second=5000, quota_key="ws"
        )
        async with running(relay):
            await produce(redis_url, [walker(f"u{u}", 0) for u in range(12)])

            async def done() -> bool:
                return (await status(redis_url)).length == 0

            await wait_for(done)
    assert await redis_call(redis_url, "EXISTS", "ws") == 1
    assert len(server.batches) == 12


def test_status_shows_length_pending_per_consumer_lag_and_dead_letters(sync_redis):
    url, r = sync_redis
    for n in range(3):
        r.xadd("s", {"e": json.dumps(walker("u", n))})
    r.xgroup_create("s", "mparticle-relays", "0")
    r.xreadgroup("mparticle-relays", "c1", {"s": ">"}, count=2)
    r.xadd("s:dead", {"reason": "rejected", "events": "[]"})
    result = CliRunner().invoke(cli, ["relay", "status", "--redis", url, "--stream", "s", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["length"] == 3 and report["pending"] == 2 and report["dead_letters"] == 1
    ((consumer),) = report["consumers"]
    assert (consumer["name"], consumer["pending"]) == ("c1", 2)
    assert report["lag_seconds"] >= 0
    text = CliRunner().invoke(cli, ["relay", "status", "--redis", url, "--stream", "s"])
    assert "3 undelivered" in text.output and "c1: 2 pending" in text.output


def test_replay_dead_appends_the_events_back_to_the_stream(sync_redis):
    url, r = sync_redis
    events = [walker("u", 0), walker("u", 1)]
    r.xadd("s:dead", {"reason": "rejected", "events": json.dumps(events)})
    result = CliRunner().invoke(cli, ["relay", "replay-dead", "--redis", url, "--stream", "s"])
    assert result.exit_code == 0, result.output
    assert "replayed 1 dead letters: 2 events" in result.output
    replayed = r.xrange("s")
    assert [json.loads(f[b"e"])["id"] for _, f in replayed] == ["u-00000", "u-00001"]
    assert r.xlen("s:dead") == 0


def test_relay_without_config_is_a_usage_error():
    result = CliRunner().invoke(cli, ["relay"])
    assert result.exit_code == 2
    assert "--config is required" in result.output


async def test_lease_renewal_resets_the_idle_time_of_every_entry_still_owned(redis_url):
    from mparticle_dest.streams._scripts import KEEP_LEASES

    for _ in range(5):
        await redis_call(redis_url, "XADD", "s", "*", "e", b"{}")
    await redis_call(redis_url, "XGROUP", "CREATE", "s", "g", "0")
    read = await redis_call(redis_url, "XREADGROUP", "GROUP", "g", "me", "STREAMS", "s", ">")
    ids = [i.decode() for i, _ in read[0][1]]
    await redis_call(redis_url, "XCLAIM", "s", "g", "other", 0, ids[4])  # lost to another
    await anyio.sleep(0.2)
    client = connect(redis_url)
    try:
        lost = await KEEP_LEASES(client, ["s"], ["g", "me", *ids])
        pending = await client.xpending_range("s", "g", min="-", max="+", count=10, idle=150)
    finally:
        await client.aclose()
    assert [x.decode() for x in lost] == [ids[4]]
    # Every entry still owned was renewed; only the one another consumer holds is idle.
    assert [p["consumer"] for p in pending] == [b"other"]


async def test_a_batch_is_recorded_only_while_the_relay_owns_all_its_entries(redis_url):
    from mparticle_dest.streams._ledger import LeaseLostError, Ledger, RecordedBatch

    for _ in range(3):
        await redis_call(redis_url, "XADD", "s", "*", "e", b"{}")
    await redis_call(redis_url, "XGROUP", "CREATE", "s", "g", "0")
    read = await redis_call(redis_url, "XREADGROUP", "GROUP", "g", "me", "STREAMS", "s", ">")
    ids = tuple(i for i, _ in read[0][1])
    client = connect(redis_url)
    try:
        ledger = Ledger(client, Keys.of("s"), ttl=60)
        first = RecordedBatch(source_request_id="r1", body=b"{}", event_count=2, entries=ids[:2])
        await ledger.record([first], group="g", consumer="me")
        # I stalled; another relay claimed the third entry: its batch must not be sent.
        await client.execute_command("XCLAIM", "s", "g", "other", 0, ids[2])
        second = RecordedBatch(source_request_id="r2", body=b"{}", event_count=1, entries=ids[2:])
        with pytest.raises(LeaseLostError) as lost:
            await ledger.record([second], group="g", consumer="me")
        index = await client.execute_command("HGETALL", "s:ledger")
    finally:
        await client.aclose()
    assert lost.value.entries == [ids[2].decode()]
    assert {k: v.decode() for k, v in index.items()} == {ids[0]: "r1", ids[1]: "r1"}
    assert await redis_call(redis_url, "EXISTS", "s:batch:r2") == 0
