"""One CLIENT span per HTTP attempt, in the HTTP client conventions."""

from __future__ import annotations

import attrs
import pytest
from opentelemetry.trace import SpanKind, StatusCode
from support.engine import FAST_PACING, FAST_RETRY, event, make_config
from support.otel import Otel

from mparticle_dest import Telemetry
from mparticle_dest._destination.destination import Destination
from mparticle_dest.testing import FakeMparticle, Fault, FaultPlan

pytestmark = pytest.mark.anyio


async def test_a_retried_request_gives_one_span_per_attempt(otel: Otel) -> None:
    plan = FaultPlan.script([Fault.server_error(500), Fault.rate_limited(0.01), Fault.drop()])
    async with FakeMparticle(faults=plan) as server:
        async with Destination(
            make_config(server, size=2, age=60_000),
            base_url=server.url,
            retry=FAST_RETRY,
            # After the 429 a request must still carry both batches (a first rate set
            # with nothing accepted is the throttled request's batches per second).
            pacing=attrs.evolve(FAST_PACING, min_rate=100.0),
            telemetry=otel.telemetry(name="web"),
        ) as dest:
            for n in range(4):
                await dest.push(event(f"u{n % 2}", n))  # two users, two batches of 2
            await dest.flush()
        url = f"{server.url}/v2/bulkevents"
    stats = dest.stats
    spans = sorted(otel.spans(), key=lambda s: s.start_time or 0)

    assert len(spans) == stats.requests == 4
    # A 429 ends its request (the batches go back in line); a new request starts at 0.
    for n, (resend, span) in enumerate(zip([0, 1, 0, 1], spans, strict=True)):
        attributes = dict(span.attributes or {})
        assert span.name == "POST"
        assert span.kind is SpanKind.CLIENT
        assert span.parent is None  # a root: no caller's trace owns a shared request
        assert attributes.pop("http.request.resend_count", 0) == resend
        assert attributes.pop("http.request.body.size") == stats.bytes_sent // 4
        outcome = {
            k: attributes.pop(k)
            for k in ("http.response.status_code", "error.type")
            if k in attributes
        }
        assert attributes == {
            "http.request.method": "POST",
            "url.full": url,
            "server.address": "127.0.0.1",
            "server.port": int(url.split(":")[2].split("/")[0]),
            "mparticle.batches": 2,
            "mparticle.events": 4,
            "mparticle.pod": "us1",
            "mparticle.environment": "production",
            "mparticle.destination.name": "web",
        }
        expected = [
            {"http.response.status_code": 500, "error.type": "500"},
            {"http.response.status_code": 429, "error.type": "429"},
            {"error.type": "httpx.RemoteProtocolError"},
            {"http.response.status_code": 202},
        ][n]
        assert outcome == expected
        ok = "error.type" not in expected
        assert span.status.status_code is (StatusCode.UNSET if ok else StatusCode.ERROR)


async def test_spans_off_metrics_on(otel: Otel) -> None:
    async with FakeMparticle() as server:
        async with Destination(
            make_config(server, size=1),
            base_url=server.url,
            telemetry=Telemetry(
                meter_provider=otel.meter_provider,
                tracer_provider=otel.tracer_provider,
                traces=False,
            ),
        ) as dest:
            await dest.push(event("u", 1))
    assert otel.spans() == ()
    assert dest.stats.requests == 1
    names = {
        m.name
        for rm in otel.collect().resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
    }
    assert "http.client.request.duration" in names


async def test_an_attempt_cancelled_by_the_close_timeout_still_ends_its_span(otel: Otel) -> None:
    async with FakeMparticle(faults=FaultPlan.always(Fault.stall())) as server:
        async with Destination(
            make_config(server, size=1),
            base_url=server.url,
            close_timeout=0.2,
            telemetry=otel.telemetry(),
        ) as dest:
            await dest.push(event("u", 1))
    assert dest.stats.failed_events == 1  # failed with reason "closed"
    (span,) = otel.spans()
    assert span.status.status_code is StatusCode.ERROR
    assert "Cancel" in str((span.attributes or {})["error.type"])
    assert "http.response.status_code" not in (span.attributes or {})
    data = otel.collect()
    (duration,) = [
        p
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
        if m.name == "http.client.request.duration"
        for p in m.data.data_points
    ]
    assert duration.count == 1


async def test_an_attempt_without_an_answer_in_time_ends_as_a_timeout(otel: Otel) -> None:
    plan = FaultPlan.script([Fault.stall()])
    async with FakeMparticle(faults=plan) as server:
        async with Destination(
            make_config(server, size=1),
            base_url=server.url,
            retry=FAST_RETRY,
            request_timeout=0.2,
            telemetry=otel.telemetry(),
        ) as dest:
            await dest.push(event("u", 1))
    assert dest.stats.delivered_events == 1
    first, retry = sorted(otel.spans(), key=lambda s: s.start_time or 0)
    assert (first.attributes or {})["error.type"] == "TimeoutError"
    assert first.status.status_code is StatusCode.ERROR
    assert (retry.attributes or {})["http.response.status_code"] == 202
