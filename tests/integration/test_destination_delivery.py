"""Destination against the fake server: batching, packing, order, outcomes, stats (issue 4)."""

from __future__ import annotations

import json

import anyio
import pytest
from support.engine import (
    FAST_RETRY,
    event,
    ids_by_user,
    interleaved,
    make_config,
    pushed_by_user,
)

from mparticle_dest import InvalidEventError
from mparticle_dest._destination.destination import Destination
from mparticle_dest._destination.stats import Stats
from mparticle_dest._mparticle.constants import (
    MAX_BATCH_BYTES,
    MAX_BATCHES_PER_REQUEST,
    MAX_REQUEST_BYTES,
)
from mparticle_dest.testing import FakeMparticle

pytestmark = pytest.mark.anyio


def assert_accounted(stats: Stats) -> None:
    """Every pushed event is counted exactly once (the Stats invariant)."""
    assert stats.pushed == (
        stats.invalid
        + stats.skipped_total
        + stats.dropped
        + stats.refused
        + stats.delivered_events
        + stats.failed_events
        + stats.buffered
    )


async def test_2000_events_of_50_users_arrive_once_in_order_in_few_bulk_requests() -> None:
    events = interleaved(users=50, per_user=40)
    async with FakeMparticle() as server:
        async with Destination(make_config(server, age=50), base_url=server.url) as dest:
            for e in events:
                await dest.push(e)
        stats = dest.stats
        requests = server.requests

    # every batch carries one user's events
    for batch in server.batches:
        user = batch.user_identities["customer_id"]
        assert {e["data"]["source_message_id"].split("-")[0] for e in batch.events} == {user}
    # requests within mParticle's limits, and far fewer than events
    assert all(r.path == "/v2/bulkevents" for r in requests)
    for request in requests:
        assert len(request.body) <= MAX_REQUEST_BYTES
        assert len(json.loads(request.body)) <= MAX_BATCHES_PER_REQUEST
    assert all(b.size <= MAX_BATCH_BYTES for b in server.batches)
    assert len(requests) <= 20
    # exactly once, in order per user
    received = ids_by_user(server.events)
    assert received == pushed_by_user(events)
    assert server.event_count == 2000
    assert stats.delivered_events == 2000 and stats.failed_events == 0
    assert stats.requests == len(requests)
    assert stats.batches == stats.delivered_batches == len(server.batches)
    assert stats.buffered == 0
    assert_accounted(stats)


async def test_a_receipt_resolves_to_the_delivered_outcome() -> None:
    async with FakeMparticle() as server:
        async with Destination(make_config(server), base_url=server.url) as dest:
            receipt = await dest.push(event("u1", 1))
            assert not receipt.done()
            assert receipt.outcome is None
            outcome = await receipt
        assert outcome.delivered
        assert outcome.status == "delivered"
        assert outcome.event_id == "u1-00001"
        assert outcome.attempts == 1
        assert outcome.http_status == 202
        assert outcome.raise_for_failure() is outcome
        assert receipt.outcome == outcome


async def test_flush_delivers_everything_buffered_before_returning() -> None:
    async with FakeMparticle() as server:
        # An age of one minute: nothing leaves on its own during the test.
        async with Destination(make_config(server, age=60_000), base_url=server.url) as dest:
            receipts = [await dest.push(event(f"u{i % 3}", i)) for i in range(30)]
            await anyio.sleep(0.05)
            assert server.event_count == 0  # not due: nothing was sent
            await dest.flush()
            assert server.event_count == 30
            assert all(r.done() for r in receipts)
            assert dest.stats.buffered == 0
            await dest.flush()  # nothing buffered: returns at once
        assert server.event_count == 30


async def test_a_batch_leaves_when_it_reaches_its_size() -> None:
    async with FakeMparticle() as server:
        async with Destination(
            make_config(server, size=5, age=60_000), base_url=server.url
        ) as dest:
            receipts = [await dest.push(event("u1", i)) for i in range(12)]
            for receipt in receipts[:10]:
                assert (await receipt).delivered
            assert server.event_count == 10
            assert not receipts[10].done()
        assert [len(b.events) for b in server.batches] == [5, 5, 2]


async def test_an_eligible_batch_keeps_growing_until_it_leaves() -> None:
    # Seal late: events pushed after the batch became eligible (age 0: at once), before
    # a sender took it, ride in it (one quota token for all), never in batches of their own.
    async with FakeMparticle() as server:
        async with Destination(make_config(server, age=0), base_url=server.url) as dest:
            receipts = [await dest.push(event("u1", i)) for i in range(12)]
            for receipt in receipts:
                assert (await receipt).delivered
        assert [len(b.events) for b in server.batches] == [12]


async def test_a_rule_batch_age_zero_sends_that_users_batch_now() -> None:
    mapping = {"order": {"complete": {"batch": {"age": 0}}}}
    async with FakeMparticle() as server:
        config = make_config(server, age=60_000, mapping=mapping)
        async with Destination(config, base_url=server.url) as dest:
            waiting = await dest.push(event("u1", 1))
            await dest.push(event("u2", 1))
            order = await dest.push(event("u2", 2, name="order complete"))
            outcome = await order
            assert outcome.delivered
            # u2's earlier event went with the order; u1's batch is not due yet
            assert [e.source_message_id for e in server.events] == ["u2-00001", "u2-00002"]
            assert not waiting.done()
        assert server.event_count == 3


async def test_invalid_events_raise_at_once_and_never_affect_others() -> None:
    async with FakeMparticle() as server:
        async with Destination(make_config(server), base_url=server.url) as dest:
            good = await dest.push(event("u1", 1))
            with pytest.raises(InvalidEventError) as info:
                await dest.push({"name": "nospace", "user": {"id": "u1"}})
            assert info.value.field == "name"
            with pytest.raises(InvalidEventError):
                await dest.push({"name": "page view", "data": {"bad": object()}})
            with pytest.raises(InvalidEventError):
                await dest.push("not an event")  # type: ignore[arg-type]
            also_good = await dest.push(event("u1", 2))
            assert (await good).delivered and (await also_good).delivered
        stats = dest.stats
        assert stats.invalid == 3
        assert stats.delivered_events == 2
        assert_accounted(stats)


async def test_skipped_events_are_counted_by_reason() -> None:
    mapping = {
        "debug": {"*": {"ignore": True}},
        "newsletter": {"signup": {"consent": {"marketing": True}}},
    }
    async with FakeMparticle() as server:
        config = make_config(server, mapping=mapping)
        async with Destination(config, base_url=server.url) as dest:
            ignored = await dest.push(event("u1", 1, name="debug ping"))
            refused = await dest.push(
                event("u1", 2, name="newsletter signup", consent={"marketing": False})
            )
            granted = await dest.push(
                event("u1", 3, name="newsletter signup", consent={"marketing": True})
            )
            assert ignored.done() and refused.done()
            assert (await ignored).status == "skipped"
            assert (await ignored).reason == "ignore"
            assert (await refused).reason == "consent"
            assert (await granted).delivered
        stats = dest.stats
        assert dict(stats.skipped) == {"ignore": 1, "consent": 1}
        assert stats.skipped_total == 2
        assert [e.source_message_id for e in server.events] == ["u1-00003"]
        assert_accounted(stats)


async def test_user_attributes_merge_last_write_wins_within_a_batch() -> None:
    config = {
        "settings": {
            "userIdentities": {"customer_id": "user.id"},
            "userAttributes": {"map": {"plan": "globals.plan"}},
        },
        "batch": {"age": 60_000},
    }
    async with FakeMparticle() as server:
        config["settings"].update(server.settings)
        async with Destination(config, base_url=server.url) as dest:
            await dest.push(event("u1", 1, globals={"plan": "free"}))
            await dest.push(event("u1", 2, globals={"plan": "pro"}))
            await dest.flush()
        (batch,) = server.batches
        assert batch.user_attributes == {"plan": "pro"}
        assert batch.source_request_id == "u1-00001"


async def test_5000_events_are_all_delivered_when_the_context_is_left_at_once() -> None:
    events = interleaved(users=100, per_user=50)
    async with FakeMparticle() as server:
        async with Destination(
            make_config(server, age=60_000), base_url=server.url, retry=FAST_RETRY
        ) as dest:
            for e in events:
                await dest.push(e)
        assert server.event_count == 5000  # delivered before the context exit returned
        report = await dest.aclose()  # idempotent: the report of the exit
        assert report.delivered == 5000
        assert report.failed == report.undelivered == 0
        assert report.ok and not report.timed_out
        assert ids_by_user(server.events) == pushed_by_user(events)


async def test_historical_posts_to_the_historical_endpoint_and_needs_timestamps() -> None:
    async with FakeMparticle() as server:
        async with Destination(make_config(server), base_url=server.url, historical=True) as dest:
            receipt = await dest.push(event("u1", 1))
            untimed = {k: v for k, v in event("u1", 2).items() if k != "timestamp"}
            with pytest.raises(InvalidEventError, match="timestamp") as info:
                await dest.push(untimed)
            assert info.value.field == "timestamp"
            assert (await receipt).delivered
        assert {r.path for r in server.requests} == {"/v2/bulkevents/historical"}
        assert [e.source_message_id for e in server.events] == ["u1-00001"]
        assert dest.stats.invalid == 1


async def test_one_batch_per_request_gives_walkeros_one_request_per_event() -> None:
    events = interleaved(users=3, per_user=4)
    async with FakeMparticle() as server:
        config = make_config(server, size=1)
        async with Destination(config, base_url=server.url, max_batches_per_request=1) as dest:
            for e in events:
                await dest.push(e)
        requests = server.requests

    assert len(requests) == len(events)
    assert all(len(json.loads(r.body)) == 1 for r in requests)
    assert ids_by_user(server.events) == pushed_by_user(events)


def test_max_batches_per_request_is_bounded_by_mparticles_limit() -> None:
    for bad in (0, MAX_BATCHES_PER_REQUEST + 1):
        with pytest.raises(ValueError, match="max_batches_per_request"):
            Destination(make_config(), max_batches_per_request=bad)


async def test_mparticle_sdk_batch_fields_reach_the_fake_server_one_batch_per_value() -> None:
    # mpid, device_info, application_info and the data plan are batch-level (#17): the
    # fake server checks them with its own schema (and the run audit with the official file).
    async with FakeMparticle() as server:
        config = make_config(server, age=20)
        config["settings"].update(
            mpid="user.mpid",
            deviceInfo={
                "map": {"platform": {"value": "web"}, "http_header_user_agent": "globals.ua"}
            },
            applicationInfo={"value": {"application_name": "shop", "os": "MobileWeb"}},
            dataPlan={"planId": "web_plan", "planVersion": 2},
        )
        async with Destination(config, base_url=server.url) as dest:
            for n, ua in enumerate(["A", "A", "B"]):
                pushed = {**event("u1", n), "globals": {"ua": ua}}
                pushed["user"] = {"id": "u1", "mpid": "7"}
                await dest.push(pushed)
        batches = server.batches
    assert [len(b.events) for b in batches] == [2, 1]
    for batch, ua in zip(batches, ["A", "B"], strict=True):
        assert batch.body["mpid"] == 7
        assert batch.body["device_info"] == {"platform": "web", "http_header_user_agent": ua}
        assert batch.body["application_info"] == {"application_name": "shop", "os": "MobileWeb"}
        assert batch.body["context"] == {"data_plan": {"plan_id": "web_plan", "plan_version": 2}}
