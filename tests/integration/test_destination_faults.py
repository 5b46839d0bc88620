"""Destination under faults: 429/5xx/dropped connections, a poisoned batch, 401, a dead server."""

from __future__ import annotations

import logging
import socket

import anyio
import pytest
from support.engine import (
    FAST_PACING,
    FAST_RETRY,
    event,
    first_occurrences,
    ids_by_user,
    interleaved,
    make_config,
    pushed_by_user,
)

from mparticle_dest import AuthenticationError, DeliveryError, RejectedError
from mparticle_dest._delivery.retry import RetryPolicy
from mparticle_dest._destination.destination import Destination
from mparticle_dest._destination.options import FailedBatch
from mparticle_dest.testing import FakeMparticle, Fault, FaultPlan

pytestmark = pytest.mark.anyio


def faults_30_percent(seed: int) -> FaultPlan:
    return FaultPlan.random(
        seed=seed,
        rates={
            Fault.rate_limited(0): 0.06,
            Fault.rate_limited(1): 0.03,
            Fault.rate_limited(None): 0.03,
            Fault.server_error(503): 0.06,
            Fault.server_error(500): 0.06,
            Fault.drop(): 0.06,
        },
    )


@pytest.mark.parametrize("seed", [1, 2])
async def test_every_event_arrives_in_order_despite_30_percent_faults(seed: int) -> None:
    events = interleaved(users=10, per_user=60)
    async with FakeMparticle(faults=faults_30_percent(seed)) as server:
        async with Destination(
            make_config(server, size=2, age=10),
            base_url=server.url,
            retry=FAST_RETRY,
            pacing=FAST_PACING,
            linger=0.0,  # every eligible batch leaves at once: many requests
        ) as dest:
            receipts = []
            for wave in range(30):  # spread over time: many requests, faults among them
                for e in events[wave * 20 : (wave + 1) * 20]:  # two per user: eligible now
                    receipts.append(await dest.push(e))
                await anyio.sleep(0.01)
        stats = dest.stats
        faults = server.stats.faults

    assert len(server.requests) >= 20  # many requests: faults among them
    assert sum(faults.values()) >= 5, faults  # the plan really hit this run
    assert all(r.outcome is not None and r.outcome.delivered for r in receipts)
    received = ids_by_user(server.events)
    pushed = pushed_by_user(events)
    # at least once, and each user's order kept (first arrivals in push order)
    assert {user: first_occurrences(ids) for user, ids in received.items()} == pushed
    duplicates = server.event_count - len(events)
    assert 0 <= duplicates <= stats.duplicates_suspected
    if faults.get("drop", 0) or faults.get("server_error", 0):
        assert stats.duplicates_suspected > 0  # ambiguous attempts are reported
    assert stats.delivered_events == len(events)
    assert stats.failed_events == 0
    # An error is retried within its request; a 429 sends its batches back in line.
    assert stats.retries + stats.throttled >= sum(faults.values())
    assert stats.throttled == faults.get("rate_limited", 0)


async def test_a_poisoned_batch_fails_alone_with_the_servers_message() -> None:
    failed: list[FailedBatch] = []
    poisoned = {"u003", "u007"}
    async with FakeMparticle(
        reject_batch=lambda batch: batch["user_identities"]["customer_id"] in poisoned
    ) as server:
        async with Destination(
            make_config(server, age=20),
            base_url=server.url,
            retry=FAST_RETRY,
            on_error=failed.append,
        ) as dest:
            receipts = {}
            for e in interleaved(users=10, per_user=3):
                receipts[e["id"]] = await dest.push(e)
    outcomes = {eid: r.outcome for eid, r in receipts.items()}
    for eid, outcome in outcomes.items():
        assert outcome is not None
        if eid.split("-")[0] in poisoned:
            assert outcome.status == "failed"
            assert outcome.reason == "rejected"
            assert isinstance(outcome.error, RejectedError)
            assert outcome.error.status == 400
            assert outcome.error.server_message  # the server's text reached the outcome
            with pytest.raises(RejectedError):
                outcome.raise_for_failure()
        else:
            assert outcome.delivered, eid
    delivered_users = {e.user_identities["customer_id"] for e in server.events}
    assert delivered_users == {f"u{u:03d}" for u in range(10)} - poisoned
    assert server.event_count == 24
    assert sorted(f.source_request_id for f in failed) == ["u003-00000", "u007-00000"]
    assert all(f.reason == "rejected" and f.event_count == 3 for f in failed)
    assert all(b'"customer_id":"u00' in f.body for f in failed)
    stats = dest.stats
    assert (stats.failed_events, stats.failed_batches, stats.delivered_events) == (6, 2, 24)


async def test_401_fails_every_receipt_once_without_a_retry_storm(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="mparticle_dest")
    failed: list[FailedBatch] = []
    async with FakeMparticle(api_secret="the-right-secret") as server:
        config = make_config(server, age=10, secret="a-wrong-secret")
        with anyio.fail_after(10):  # a guard against a hang, not a timing assertion
            async with Destination(
                config,
                base_url=server.url,
                retry=FAST_RETRY,
                max_in_flight=2,
                on_error=failed.append,
            ) as dest:
                receipts = [await dest.push(e) for e in interleaved(users=20, per_user=5)]
                first = await receipts[0]
                # pushes after the refusal are accepted and fail without a request
                late = await dest.push(event("late", 1))
                await dest.flush()
        report = await dest.aclose()
        requests = len(server.requests)

    assert requests <= 2  # at most one refused request per sender slot, never retried
    assert isinstance(first.error, AuthenticationError)
    assert first.reason == "authentication"
    for receipt in [*receipts, late]:
        outcome = receipt.outcome
        assert outcome is not None and isinstance(outcome.error, AuthenticationError)
    assert report.failed == 101 and report.delivered == 0 and not report.timed_out
    assert sum(f.event_count for f in failed) == 101
    auth_logs = [r for r in caplog.records if "refused the credentials" in r.getMessage()]
    assert len(auth_logs) == 1
    assert auth_logs[0].levelno == logging.ERROR


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_with_the_server_down_aclose_returns_at_its_timeout_and_reports_undelivered(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="mparticle_dest")
    failed: list[FailedBatch] = []
    dest = Destination(
        make_config(None, age=10),
        base_url=f"http://127.0.0.1:{_closed_port()}",
        close_timeout=0.5,
        retry=RetryPolicy(
            max_attempts=1000, max_elapsed=60.0, initial_backoff=0.01, max_backoff=0.05
        ),
        on_error=failed.append,
    )
    with anyio.fail_after(10):  # a guard against a hang, not a timing assertion
        async with dest:
            receipts = [await dest.push(e) for e in interleaved(users=10, per_user=50)]
    report = await dest.aclose()
    assert report.timed_out
    assert report.undelivered == 500 == report.failed
    assert report.delivered == 0
    assert report.stats.undelivered_at_close == 500
    assert report.stats.buffered == 0
    for receipt in receipts:
        outcome = receipt.outcome
        assert outcome is not None and outcome.reason == "closed"
        assert isinstance(outcome.error, DeliveryError)
    assert sum(f.event_count for f in failed) == 500
    assert {f.reason for f in failed} == {"closed"}
    summary = [r for r in caplog.records if "close timeout ran out" in r.getMessage()]
    assert len(summary) == 1 and "500" in summary[0].getMessage()


async def test_a_server_that_recovers_gets_everything_before_close() -> None:
    plan = FaultPlan.script([Fault.server_error(503)] * 3 + [Fault.drop()] * 2)
    async with FakeMparticle(faults=plan) as server:
        async with Destination(
            make_config(server, age=10), base_url=server.url, retry=FAST_RETRY
        ) as dest:
            receipts = [await dest.push(event("u1", i)) for i in range(10)]
        outcomes = [r.outcome for r in receipts]
    assert all(o is not None and o.delivered for o in outcomes)
    assert [e.source_message_id for e in server.events] == [f"u1-{i:05d}" for i in range(10)]
    assert dest.stats.duplicates_suspected > 0  # 503s and drops are ambiguous
