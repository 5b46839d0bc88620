"""``Destination(send=False)``: a dry run through the real pipeline; per-request DEBUG logs."""

from __future__ import annotations

import json
import logging

import anyio
import pytest

from mparticle_dest import Destination, InvalidEventError, SyncDestination
from mparticle_dest.testing import FakeMparticle

SECRET = "dry-run-s3cr3t"


def config(server: FakeMparticle | None = None) -> dict[str, object]:
    settings = server.settings if server is not None else {"apiKey": "k", "apiSecret": SECRET}
    return {
        "settings": {**settings, "userIdentities": {"customer_id": "user.id"}},
        "mapping": {"order": {"complete": {"ignore": True}}},
        "batch": {"size": 3},
    }


def event(i: int, user: int) -> dict[str, object]:
    return {"name": "page view", "id": f"ev-{i}", "user": {"id": f"user-{user}"}}


def balanced(stats) -> bool:
    return stats.pushed == (
        stats.invalid
        + stats.skipped_total
        + stats.dropped
        + stats.refused
        + stats.delivered_events
        + stats.failed_events
        + stats.buffered
    )


def test_send_false_maps_batches_counts_and_sends_nothing(server: FakeMparticle) -> None:
    async def main():
        async with Destination(config(server), base_url=server.url, send=False) as dest:
            receipts = [await dest.push(event(i, i % 2)) for i in range(8)]
            skipped = await dest.push({"name": "order complete", "user": {"id": "u"}})
            with pytest.raises(InvalidEventError):
                await dest.push({"name": "pageview"})
            await dest.flush()
            outcomes = [await r for r in receipts]
            return outcomes, await skipped, dest.stats

    outcomes, ignored, stats = anyio.run(main)

    assert {(o.status, o.reason) for o in outcomes} == {("skipped", "dry_run")}
    assert [o.event_id for o in outcomes] == [f"ev-{i}" for i in range(8)]
    assert (ignored.status, ignored.reason) == ("skipped", "ignore")
    assert server.requests == []  # nothing reached the server
    assert stats.requests == stats.bytes_sent == stats.delivered_events == 0
    assert stats.skipped == {"dry_run": 8, "ignore": 1}
    assert stats.batches == 4  # two users, batches of at most 3 events: 3+1, 3+1
    assert stats.invalid == 1 and stats.buffered == 0
    assert balanced(stats)


def test_send_callable_receives_each_batch_body() -> None:
    bodies: list[bytes] = []

    async def main():
        async with Destination(config(), send=bodies.append) as dest:
            for i in range(5):
                await dest.push(event(i, 7))
        return dest.stats

    stats = anyio.run(main)

    batches = [json.loads(b) for b in bodies]
    assert [len(b["events"]) for b in batches] == [3, 2]
    assert {b["user_identities"]["customer_id"] for b in batches} == {"user-7"}
    assert [e["data"]["source_message_id"] for b in batches for e in b["events"]] == [
        f"ev-{i}" for i in range(5)
    ]
    assert stats.skipped == {"dry_run": 5} and balanced(stats)


def test_sync_destination_dry_run_resolves_receipts_as_skipped() -> None:
    with SyncDestination(config(), send=False) as dest:
        receipt = dest.push(event(1, 1))
    assert (receipt.result(5).status, receipt.result(5).reason) == ("skipped", "dry_run")


def test_an_async_batch_callback_is_refused() -> None:
    async def show(body: bytes) -> None:  # pragma: no cover - never called
        pass

    with pytest.raises(TypeError, match="send must be a plain"):
        Destination(config(), send=show)
    with pytest.raises(TypeError, match="send must be True, False or a sync callable"):
        Destination(config(), send=None)  # type: ignore[arg-type]


def test_every_request_is_logged_at_debug_without_secrets(
    server: FakeMparticle, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="mparticle_dest.delivery")
    settings = {**server.settings}

    async def main():
        async with Destination(config(server), base_url=server.url) as dest:
            for i in range(4):
                await dest.push(event(i, i % 2))

    anyio.run(main)

    lines = [r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG]
    assert lines, "no DEBUG line per request"
    assert all(line.startswith("POST /v2/bulkevents: HTTP 202 (") for line in lines), lines
    assert sum(int(line.split(" batches, ")[1].split(" events")[0]) for line in lines) == 4
    assert all(" s)" in line and " bytes, " in line for line in lines)
    for secret in (settings["apiKey"], settings["apiSecret"]):
        assert secret not in caplog.text
