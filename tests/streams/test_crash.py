"""Crashes with real processes: ``kill -9`` of relays, resends de-duplicated by mParticle.

The fake server, the relays and the producers each run in their own process; a relay is
killed with SIGKILL (no cleanup of any kind). Sizes are scaled down from the issue's
100,000 events (``benchmarks/scale_out.py`` runs the full size).
"""

from __future__ import annotations

import json
import random
import sys

import anyio
import pytest
from helpers import redis_call, status, wait_for
from procs import FakeServerProc, producer_proc, relay_proc, write_config

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.skipif(sys.platform == "win32", reason="uses SIGKILL"),
    pytest.mark.timeout(180),
]


async def test_a_relay_killed_after_sending_is_taken_over_and_its_batch_ingested_once(
    redis_url, tmp_path
):
    """The batch reached mParticle but was never acknowledged: the next relay resends
    the identical bytes, and mParticle's de-duplication answers 202 without ingesting."""
    config = write_config(tmp_path, age_ms=50)
    server = FakeServerProc("--stall")  # holds every request until released
    try:
        a = relay_proc(config, redis_url, server.url, "a", "--claim-idle", "1")
        events = [
            {"name": "page view", "id": f"e{n}", "user": {"id": f"u{n % 3}"}} for n in range(30)
        ]
        client_url = redis_url
        for event in events:
            await redis_call(client_url, "XADD", "s", "*", "e", json.dumps(event))

        async def held() -> bool:
            return (
                server.stats()["requests"] == 0
                and len(await redis_call(redis_url, "KEYS", "s:batch:*")) > 0
            )

        await wait_for(held)
        await anyio.sleep(0.3)  # the request is on the wire, held by the server
        a.kill()
        server.command("release")  # the held request is ingested; nobody acknowledges it

        async def ingested() -> bool:
            return bool(server.stats()["events"] == 30)

        await wait_for(ingested)
        assert (await status(redis_url)).pending == 30  # delivered, but not acknowledged

        b = relay_proc(config, redis_url, server.url, "b", "--claim-idle", "1")

        async def settled() -> bool:
            return (await status(redis_url)).length == 0

        await wait_for(settled, 30)
        stats_b = json.loads(b.stop())
        fake = server.stats()
        assert fake["events"] == 30 and fake["repeated_events"] == 0
        assert fake["deduplicated_events"] == 30
        assert stats_b["resent_batches"] >= 1
        assert stats_b["reclaimed"] >= 1
    finally:
        server.stop()


async def test_kill_9_of_relays_twice_loses_nothing_and_ingests_every_event_once(
    redis_url, tmp_path
):
    total = 6_000
    rng = random.Random()
    seed = rng.randrange(1 << 30)
    rng.seed(seed)
    config = write_config(tmp_path, age_ms=100, size=40)
    server = FakeServerProc()
    relays = {}
    try:
        claim = ("--claim-idle", "3", "--close-timeout", "10")
        for name in ("r1", "r2", "r3"):
            relays[name] = relay_proc(config, redis_url, server.url, name, *claim)
        producers = [
            producer_proc(redis_url, "p1", total // 2, 750),
            producer_proc(redis_url, "p2", total // 2, 750),
        ]
        killed = []
        holding: list[str] = []

        async def some_relay_holds_entries() -> bool:
            consumers = (await status(redis_url)).consumers
            holding[:] = [c.name for c in consumers if c.pending and c.name in relays]
            return bool(holding)

        for round_ in range(2):
            # A random moment while the victim holds entries (read, not acknowledged).
            await wait_for(some_relay_holds_entries, 60)
            await anyio.sleep(rng.uniform(0.0, 0.5))
            victim = rng.choice(sorted(holding))
            relays.pop(victim).kill()
            killed.append(victim)
            name = f"{victim}-restarted-{round_}"
            relays[name] = relay_proc(config, redis_url, server.url, name, *claim)
        for producer in producers:
            assert json.loads(producer.wait())["added"] == total // 2

        async def all_ingested() -> bool:
            s = await status(redis_url)
            return s.length == 0 and server.stats()["events"] >= total

        await wait_for(all_ingested, 120)
        outputs = [json.loads(relay.stop()) for relay in relays.values()]
        fake = server.stats()
        note = f"seed {seed}, killed {killed}, fake {fake}, relays {outputs}"
        assert fake["events"] == total, note  # every event, none lost...
        assert fake["repeated_events"] == 0, note  # ...each ingested once
        assert (await status(redis_url)).dead_letters == 0, note
        assert await redis_call(redis_url, "HLEN", "s:ledger") == 0, note
    finally:
        for relay in relays.values():
            if relay.popen.poll() is None:
                relay.kill()
        server.stop()
