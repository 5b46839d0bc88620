"""Metrics against ``dest.stats`` after a run against the fake server with faults."""

from __future__ import annotations

import base64
from collections import Counter

import anyio
import attrs
import pytest
from support.engine import FAST_PACING, FAST_RETRY, event, make_config
from support.otel import Otel, matching, points, total

from mparticle_dest import InvalidEventError, Stats, SyncDestination
from mparticle_dest._destination.destination import Destination
from mparticle_dest.testing import FakeMparticle, Fault, FaultPlan

pytestmark = pytest.mark.anyio

POISONED = "u-bad"
MAPPING = {
    "debug": {"*": {"ignore": True}},
    "newsletter": {"signup": {"consent": {"marketing": True}}},
}
# Each Stats counter and the metric (and attributes) that reports it.
OUTCOME = "mparticle.outcome"
METRIC_OF: dict[str, tuple[str, dict[str, str]]] = {
    "pushed": ("mparticle.events.pushed", {}),
    "mapped": ("mparticle.events.mapped", {}),
    "accepted": ("mparticle.events.accepted", {}),
    "invalid": ("mparticle.events.outcomes", {OUTCOME: "invalid"}),
    "dropped": ("mparticle.events.outcomes", {OUTCOME: "dropped"}),
    "refused": ("mparticle.events.outcomes", {OUTCOME: "refused"}),
    "delivered_events": ("mparticle.events.outcomes", {OUTCOME: "delivered"}),
    "failed_events": ("mparticle.events.outcomes", {OUTCOME: "failed"}),
    "batches": ("mparticle.batches.sealed", {}),
    "delivered_batches": ("mparticle.batches.outcomes", {OUTCOME: "delivered"}),
    "failed_batches": ("mparticle.batches.outcomes", {OUTCOME: "failed"}),
    "requests": ("mparticle.requests.sent", {}),
    "retries": ("mparticle.requests.retried", {}),
    "bytes_sent": ("mparticle.requests.body.size", {}),
    "throttled": ("mparticle.requests.throttled", {}),
    "undelivered_at_close": ("mparticle.events.undelivered_at_close", {}),
    "duplicates_suspected": ("mparticle.events.duplicates_suspected", {}),
    "buffered": ("mparticle.buffer.events", {}),
    "in_flight_requests": ("mparticle.requests.in_flight", {}),
}
# The pacing figures of dest.stats, as gauges (none while unpaced; a bool as 0 or 1).
GAUGE_OF = {"send_rate": "mparticle.pacing.rate", "quota_limited": "mparticle.quota.limited"}


async def run_with_faults(otel: Otel, server: FakeMparticle) -> Stats:
    """A 500 then success, a 429 with Retry-After, a 400-rejected batch, an invalid
    event and two skipped ones; ends with the destination closed."""
    config = make_config(server, size=3, age=60_000, mapping=MAPPING)
    async with Destination(
        config,
        base_url=server.url,
        retry=FAST_RETRY,
        # After the 429 the rate must still let one request carry two batches (the
        # first rate after a 429 with nothing accepted is that request's one batch/s).
        pacing=attrs.evolve(FAST_PACING, min_rate=100.0),
        max_in_flight=1,
        telemetry=otel.telemetry(name="checkout"),
    ) as dest:
        for n in range(3):  # one batch: 500, 429 (Retry-After), then 202
            await dest.push(event("u-ok", n))
        await dest.flush()
        for n in range(3):  # one request of two batches: 400, split, one rejected
            await dest.push(event(POISONED, n))
            await dest.push(event("u-two", n))
        with pytest.raises(InvalidEventError):
            await dest.push({"name": "no-space", "user": {"id": "u-ok"}})
        await dest.push(event("u-ok", 10, name="debug view"))
        await dest.push(event("u-ok", 11, name="newsletter signup", consent={"marketing": False}))
        await dest.push(event("u-ok", 12))  # open at close: sealed and sent by the close
    return dest.stats


def faulty_server() -> FakeMparticle:
    plan = FaultPlan.script(
        [Fault.server_error(500), Fault.rate_limited(0.05), Fault.ok(percentage_used=42)]
    )
    return FakeMparticle(
        faults=plan,
        reject_batch=lambda batch: batch["user_identities"]["customer_id"] == POISONED,
    )


async def test_every_stats_counter_has_a_metric_equal_to_it_at_close(otel: Otel) -> None:
    async with faulty_server() as server:
        stats = await run_with_faults(otel, server)
    data = otel.collect()

    # The run hit what it meant to: retries, a 429, a rejection, an invalid and skipped events.
    # (The 500 is retried by the request; the 429 sends its batch back in line.)
    assert stats.retries == 1 and stats.throttled == 1
    assert (stats.failed_batches, stats.failed_events, stats.invalid) == (1, 3, 1)
    assert dict(stats.skipped) == {"ignore": 1, "consent": 1}
    counters = {f.name for f in attrs.fields(Stats)} - {"skipped"} - set(GAUGE_OF)
    assert counters == set(METRIC_OF), "a Stats counter without a metric"
    for field, (metric, attributes) in METRIC_OF.items():
        assert total(data, metric, attributes) == getattr(stats, field), field
    for field, metric in GAUGE_OF.items():
        assert total(data, metric) == getattr(stats, field), field  # False == 0
    for reason, count in stats.skipped.items():
        skipped = {OUTCOME: "skipped", "mparticle.reason": reason}
        assert total(data, "mparticle.events.outcomes", skipped) == count, reason
    failed = {OUTCOME: "failed", "mparticle.reason": "rejected"}
    assert total(data, "mparticle.events.outcomes", failed) == 3
    # The destination's attributes are on every point.
    for point in points(data, "mparticle.events.pushed"):
        assert point.attributes == {
            "mparticle.pod": "us1",
            "mparticle.environment": "production",
            "mparticle.destination.name": "checkout",
        }


async def test_per_attempt_metrics_count_each_request_once(otel: Otel) -> None:
    async with faulty_server() as server:
        stats = await run_with_faults(otel, server)
        answered = Counter(f"{r.status // 100}xx" for r in server.requests)
    data = otel.collect()

    by_class = {
        p.attributes["mparticle.status_class"]: p.value
        for p in points(data, "mparticle.requests.completed")
    }
    # What the server answered: the 500, the 429 and the 400s (whole request, then the
    # poisoned batch alone), the rest 202.
    assert answered["5xx"] == 1 and answered["4xx"] == 3
    assert by_class == answered
    assert sum(by_class.values()) == stats.requests
    durations = points(data, "http.client.request.duration")
    assert sum(p.count for p in durations) == stats.requests
    assert {p.attributes.get("error.type") for p in durations} == {"500", "429", "400", None}
    assert all(p.attributes["http.request.method"] == "POST" for p in durations)
    (wait,) = points(data, "mparticle.requests.retry_after")
    assert (wait.count, wait.sum, wait.attributes["http.response.status_code"]) == (1, 0.05, 429)
    assert total(data, "mparticle.quota.usage") == 42
    (per_batch,) = points(data, "mparticle.batch.events")
    # Each batch counted once, on its first attempt, whatever its retries and splits.
    assert (per_batch.count, per_batch.sum) == (stats.batches, stats.accepted)


async def test_buffer_gauges_read_the_buffered_events(otel: Otel) -> None:
    async with FakeMparticle() as server:
        async with Destination(
            make_config(server, size=100, age=60_000),
            base_url=server.url,
            telemetry=otel.telemetry(),
        ) as dest:
            empty = otel.collect()
            for n in range(4):
                await dest.push(event(f"u{n % 2}", n))
            await anyio.sleep(0.05)
            held = otel.collect()
            assert dest.stats.buffered == 4
    stats = dest.stats
    assert total(empty, "mparticle.buffer.size") == 0
    assert matching(empty, "mparticle.buffer.oldest_age", {}) == []  # nothing buffered
    assert total(held, "mparticle.buffer.events") == 4
    # The two open batches went out at close in one request: "[" a "," b "]".
    assert stats.requests == 1
    assert total(held, "mparticle.buffer.size") == stats.bytes_sent - 3
    assert total(held, "mparticle.buffer.oldest_age") >= 0.05  # the first push's age
    after = otel.collect()
    assert (total(after, "mparticle.buffer.size"), total(after, "mparticle.buffer.events")) == (
        0,
        0,
    )
    assert matching(after, "mparticle.buffer.oldest_age", {}) == []


async def test_no_secret_or_user_data_in_metrics_or_spans(otel: Otel) -> None:
    async with faulty_server() as server:
        await run_with_faults(otel, server)
        key, secret = server.settings["apiKey"], server.settings["apiSecret"]
    exported = otel.collect().to_json() + "".join(s.to_json() for s in otel.spans())
    token = base64.b64encode(f"{key}:{secret}".encode()).decode()
    for forbidden in (key, secret, token, "Authorization", "Basic "):
        assert forbidden not in exported
    for user_data in ("u-ok", POISONED, "u-two", "page view", '"n"'):
        assert user_data not in exported


def test_a_sync_destination_reports_while_its_loop_runs_in_a_thread(otel: Otel) -> None:
    with FakeMparticle() as server:
        with SyncDestination(
            make_config(server, size=100, age=60_000),
            base_url=server.url,
            telemetry=otel.telemetry(name="sync"),
        ) as dest:
            for n in range(5):
                dest.push(event("u", n))
            held = otel.collect()  # read here while the destination's loop thread runs
        stats = dest.stats
    assert total(held, "mparticle.events.pushed") == 5
    assert total(held, "mparticle.buffer.events") == 5
    final = otel.collect()
    assert total(final, "mparticle.events.outcomes", {OUTCOME: "delivered"}) == 5
    assert total(final, "mparticle.requests.sent") == stats.requests == 1


async def test_buffer_gauges_count_a_batch_in_flight(otel: Otel) -> None:
    async with FakeMparticle(faults=FaultPlan.always(Fault.stall())) as server:
        async with Destination(
            make_config(server, size=1),
            base_url=server.url,
            close_timeout=0.2,
            telemetry=otel.telemetry(),
        ) as dest:
            await dest.push(event("u", 1))  # sealed at once, sent, never answered
            with anyio.fail_after(10):  # a guard against a hang, not a timing assertion
                while dest.stats.in_flight_requests == 0:  # noqa: ASYNC110 - no event for it
                    await anyio.sleep(0.01)
            in_flight = otel.collect()
            stats = dest.stats
    assert total(in_flight, "mparticle.requests.in_flight") == 1
    assert total(in_flight, "mparticle.buffer.events") == 1
    assert total(in_flight, "mparticle.buffer.size") == stats.bytes_sent - 2  # "[" batch "]"
    assert total(in_flight, "mparticle.buffer.oldest_age") >= 0.0
