"""An mParticle outage: producers keep pushing, the stream grows, relays hold a bounded
share of it, and everything is delivered after recovery (scaled from 30 s to 3 s)."""

from __future__ import annotations

import json
import sys

import anyio
import pytest
from helpers import status, wait_for
from procs import relay_proc, write_config

from mparticle_dest.streams import EventStream
from mparticle_dest.testing import FakeMparticle, Fault, FaultPlan

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.skipif(sys.platform == "win32", reason="uses SIGTERM"),
    pytest.mark.timeout(180),
]

CAP = 300  # --max-buffered-events of each relay
READ = 200  # entries per XREADGROUP (the relay's default)


async def test_outage_grows_the_stream_not_the_relays_and_recovery_delivers_everything(
    redis_url, tmp_path
):
    total = 3_000
    config = write_config(tmp_path, age_ms=50, size=20)
    with FakeMparticle(record=False, faults=FaultPlan.always(Fault.server_error(503))) as server:
        extra = ("--max-buffered-events", str(CAP), "--claim-idle", "4")
        relays = [relay_proc(config, redis_url, server.url, f"r{i}", *extra) for i in range(2)]
        try:
            async with EventStream(redis_url, stream="s", max_len=100_000) as producer:
                with anyio.fail_after(60):
                    for n in range(total):
                        await producer.push(
                            {"name": "page view", "id": f"e{n}", "user": {"id": f"u{n % 200}"}}
                        )
            assert producer.stats.added == total and producer.stats.waits == 0

            async def relays_full() -> bool:
                consumers = (await status(redis_url)).consumers
                return sum(c.pending for c in consumers) >= 2 * CAP

            await wait_for(relays_full, 30)
            await anyio.sleep(3)  # the outage goes on
            during = await status(redis_url)
            assert during.length == total  # nothing delivered, nothing lost
            for consumer in during.consumers:  # each relay holds a bounded share
                assert consumer.pending <= CAP + READ, during
            assert server.stats.events == 0

            server.set_faults(None)  # mParticle is back

            async def delivered() -> bool:
                return (await status(redis_url)).length == 0

            await wait_for(delivered, 90)
            outputs = [json.loads(relay.stop()) for relay in relays]
        finally:
            for relay in relays:
                if relay.popen.poll() is None:
                    relay.kill()
        stats = server.stats
        assert stats.events == total and stats.repeated_events == 0
        assert (
            sum(o["delivered"] for o in outputs) + sum(o["resent_batches"] > 0 for o in outputs)
            >= 1
        )
        assert (await status(redis_url)).dead_letters == 0
