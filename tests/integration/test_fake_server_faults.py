"""Fault injection of the fake server: scripted and seeded plans, poisoned batches, rate limit."""

from __future__ import annotations

import threading
import time

import httpx
import pytest

from mparticle_dest.testing import FakeMparticle, Fault, FaultPlan
from mparticle_dest.testing._faults import TokenBucket

AUTH = ("test-key", "test-secret")


def batch(user: str = "user-123", name: str = "product view") -> dict[str, object]:
    return {
        "events": [
            {
                "event_type": "custom_event",
                "data": {"event_name": name, "custom_event_type": "other"},
            }
        ],
        "environment": "production",
        "user_identities": {"customer_id": user},
    }


def wait_until(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


def test_scripted_faults_apply_in_order_then_requests_succeed():
    plan = FaultPlan.script(
        [
            Fault.rate_limited(retry_after=2),
            Fault.rate_limited(),
            Fault.server_error(500),
            Fault.server_error(503),
            Fault.bad_request("nope"),
            Fault.ok(percentage_used=93),
        ]
    )
    with FakeMparticle(faults=plan) as server, httpx.Client(base_url=server.url, auth=AUTH) as c:
        responses = [c.post("/v2/bulkevents", json=[batch()]) for _ in range(7)]
        assert [r.status_code for r in responses] == [429, 429, 500, 503, 400, 202, 202]
        assert responses[0].headers["Retry-After"] == "2"
        assert responses[0].headers["X-mp-rate-limit-exceeded"] == "true"
        assert "Retry-After" not in responses[1].headers
        assert responses[1].headers["X-mp-rate-limit-exceeded"] == "true"
        assert responses[2].json()["errors"][0]["code"] == "INTERNAL_SERVER_ERROR"
        assert responses[4].json() == {"errors": [{"code": "BAD_REQUEST", "message": "nope"}]}
        assert responses[5].headers["X-mp-rate-limit-percentage-used"] == "93"
        assert "X-mp-rate-limit-percentage-used" not in responses[6].headers
        # Faulted requests are requests, never received batches.
        assert len(server.batches) == 2
        assert [r.fault for r in server.requests] == [
            "rate_limited",
            "rate_limited",
            "server_error",
            "server_error",
            "bad_request",
            None,
            None,
        ]
        assert server.stats.faults == {"rate_limited": 2, "server_error": 2, "bad_request": 1}


def test_dropped_connection_gets_no_response_and_is_not_recorded_as_received():
    plan = FaultPlan.script([Fault.drop()])
    with FakeMparticle(faults=plan) as server, httpx.Client(base_url=server.url, auth=AUTH) as c:
        with pytest.raises(httpx.RemoteProtocolError):
            c.post("/v2/events", json=batch())
        assert c.post("/v2/events", json=batch()).status_code == 202
        assert [(r.status, r.fault) for r in server.requests] == [(None, "drop"), (202, None)]
        assert server.stats.by_status == {0: 1, 202: 1}
        assert len(server.batches) == 1


def test_always_plan_and_set_faults_switch_behaviour():
    with FakeMparticle(faults=FaultPlan.always(Fault.server_error(503))) as server:
        with httpx.Client(base_url=server.url, auth=AUTH) as c:
            assert [c.post("/v2/events", json=batch()).status_code for _ in range(3)] == [503] * 3
            server.set_faults(None)
            assert c.post("/v2/events", json=batch()).status_code == 202
            server.set_faults(FaultPlan.script([], then=Fault.rate_limited(retry_after=1)))
            assert c.post("/v2/events", json=batch()).status_code == 429


def test_faults_apply_only_to_authenticated_requests():
    with FakeMparticle(faults=FaultPlan.script([Fault.server_error(500)])) as server:
        with httpx.Client(base_url=server.url) as c:
            assert c.post("/v2/events", json=batch(), auth=("test-key", "bad")).status_code == 403
            assert c.post("/v2/events", json=batch(), auth=AUTH).status_code == 500


def test_slow_response_is_processed_after_the_delay_even_if_the_client_gave_up():
    plan = FaultPlan.script([Fault.slow(0.5), Fault.slow(0.01)])
    with FakeMparticle(faults=plan) as server, httpx.Client(base_url=server.url, auth=AUTH) as c:
        with pytest.raises(httpx.ReadTimeout):
            c.post("/v2/events", json=batch(name="first"), timeout=0.1)
        # The server still accepts it: a timed-out request may have been delivered.
        wait_until(lambda: server.event_count == 1)
        assert c.post("/v2/events", json=batch(name="second")).status_code == 202
        assert [e.name for e in server.events] == ["first", "second"]
        assert server.stats.faults == {"slow": 2}


def test_stalled_requests_never_answer_and_stop_releases_them():
    with FakeMparticle(faults=FaultPlan.always(Fault.stall())) as server:
        with httpx.Client(base_url=server.url, auth=AUTH) as c:
            with pytest.raises(httpx.ReadTimeout):
                c.post("/v2/events", json=batch(), timeout=0.2)
        # Still held after the client gave up; recorded once its outcome is known.
        wait_until(lambda: server.held == 1)
        assert server.requests == [] and server.batches == []
    assert server.held == 0
    assert [(r.status, r.fault) for r in server.requests] == [(None, "stall")]

    # A client still waiting when the server stops sees the connection close.
    failures: list[BaseException] = []

    def waiting_client(url: str) -> None:
        with httpx.Client(base_url=url, auth=AUTH, timeout=30) as c:
            try:
                c.post("/v2/events", json=batch())
            except httpx.TransportError as exc:
                failures.append(exc)

    server = FakeMparticle(faults=FaultPlan.always(Fault.stall())).start()
    thread = threading.Thread(target=waiting_client, args=(server.url,))
    thread.start()
    wait_until(lambda: server.held == 1)
    server.stop()
    thread.join(10)
    assert not thread.is_alive()
    assert len(failures) == 1


def test_release_stalled_answers_the_held_requests_normally():
    with FakeMparticle(faults=FaultPlan.script([Fault.stall(), Fault.stall()])) as server:
        responses: list[int] = []

        def send(name: str) -> None:
            with httpx.Client(base_url=server.url, auth=AUTH, timeout=30) as c:
                responses.append(c.post("/v2/events", json=batch(name=name)).status_code)

        threads = [threading.Thread(target=send, args=(n,)) for n in ("a", "b")]
        for t in threads:
            t.start()
        wait_until(lambda: server.held == 2)
        assert server.event_count == 0
        server.release_stalled()
        for t in threads:
            t.join(10)
        assert responses == [202, 202]
        assert server.held == 0
        assert sorted(e.name for e in server.events) == ["a", "b"]
        assert server.stats.faults == {"stall": 2}


def statuses_with(plan: FaultPlan, n: int = 60) -> list[int | None]:
    with FakeMparticle(faults=plan) as server, httpx.Client(base_url=server.url, auth=AUTH) as c:
        for _ in range(n):
            try:
                c.post("/v2/events", json=batch())
            except httpx.RemoteProtocolError:
                pass
        return [r.status for r in server.requests]


def test_random_plan_is_reproducible_with_a_seed():
    rates = {
        Fault.rate_limited(retry_after=1): 0.2,
        Fault.server_error(503): 0.2,
        Fault.drop(): 0.1,
    }
    first = statuses_with(FaultPlan.random(seed=7, rates=rates))
    assert first == statuses_with(FaultPlan.random(seed=7, rates=rates))
    assert first != statuses_with(FaultPlan.random(seed=8, rates=rates))
    assert {429, 503, None, 202} == set(first)


def test_random_plan_rejects_bad_rates():
    with pytest.raises(ValueError, match="sum to at most 1"):
        FaultPlan.random(seed=1, rates={Fault.drop(): 0.6, Fault.server_error(): 0.6})
    with pytest.raises(ValueError, match="non-negative"):
        FaultPlan.random(seed=1, rates={Fault.drop(): -0.1})
    with pytest.raises(ValueError, match="5xx"):
        Fault.server_error(429)


def test_reject_batch_poisons_one_batch_of_a_bulk_request():
    def poisoned(b):
        return b["user_identities"]["customer_id"] == "poison"

    with FakeMparticle(reject_batch=poisoned) as server:
        with httpx.Client(base_url=server.url, auth=AUTH) as c:
            response = c.post("/v2/bulkevents", json=[batch("a"), batch("poison"), batch("b")])
            assert response.status_code == 400
            assert response.json()["errors"] == [
                {"code": "BAD_REQUEST", "message": "batch 1: batch rejected (reject_batch)"}
            ]
            assert server.batches == []
            assert c.post("/v2/bulkevents", json=[batch("a"), batch("b")]).status_code == 202
            server.set_reject_batch(None)
            assert c.post("/v2/bulkevents", json=[batch("poison")]).status_code == 202
        assert [b.user_identities["customer_id"] for b in server.batches] == ["a", "b", "poison"]


def test_simulated_rate_limit_answers_429_when_the_bucket_is_empty():
    with FakeMparticle(rate_limit=10, rate_limit_burst=10) as server:
        with httpx.Client(base_url=server.url, auth=AUTH) as c:
            ok = c.post("/v2/bulkevents", json=[batch(str(i)) for i in range(10)])
            limited = c.post("/v2/bulkevents", json=[batch(str(i)) for i in range(10)])
        assert ok.status_code == 202
        assert 0 <= int(ok.headers["X-mp-rate-limit-percentage-used"]) <= 100
        assert limited.status_code == 429
        assert limited.headers["X-mp-rate-limit-exceeded"] == "true"
        assert limited.headers["Retry-After"] == "1"
        assert len(server.batches) == 10
        assert server.requests[1].fault == "simulated_rate_limit"


def test_token_bucket_refills_at_its_rate():
    now = [0.0]
    bucket = TokenBucket(rate=100, burst=50, clock=lambda: now[0])
    assert bucket.percentage_used() == 0
    assert bucket.take(30) is None
    assert bucket.percentage_used() == 60
    assert bucket.take(30) == pytest.approx(0.1)  # 20 left, 10 missing at 100/s
    now[0] = 0.1
    assert bucket.take(30) is None
    # A request larger than the burst waits for a full bucket, then goes into debt.
    assert bucket.take(80) == pytest.approx(0.5)
    now[0] = 0.6
    assert bucket.take(80) is None
    assert bucket.percentage_used() == 100
    assert bucket.take(1) == pytest.approx(0.31)


def test_token_bucket_window_usage_counts_the_last_second_of_admitted_batches():
    now = [0.0]
    bucket = TokenBucket(rate=64, burst=16, clock=lambda: now[0])
    for t in (0.0, 0.25):  # exact in binary: the bucket refills exactly
        now[0] = t
        assert bucket.take(16) is None
    # 32 batches in the last second: half the limit, though the small bucket is empty.
    assert (bucket.window_percentage_used(), bucket.percentage_used()) == (50, 100)
    for t in (0.5, 0.75):
        now[0] = t
        assert bucket.take(16) is None
    assert bucket.window_percentage_used() == 100
    now[0] = 1.125  # the batches admitted at t=0.0 have left the window
    assert bucket.window_percentage_used() == 75
    now[0] = 2.0
    assert bucket.window_percentage_used() == 0


def test_simulated_rate_limit_can_report_usage_over_the_last_second():
    with FakeMparticle(rate_limit=100, rate_limit_burst=20, rate_limit_usage="window") as server:
        with httpx.Client(base_url=server.url, auth=AUTH) as c:
            first = c.post("/v2/bulkevents", json=[batch(str(i)) for i in range(20)])
    # 20 batches of a 100/s limit: 20 % (the bucket of 20 is full: "bucket" says 100).
    assert first.status_code == 202
    assert first.headers["X-mp-rate-limit-percentage-used"] == "20"


def test_rate_limit_usage_must_be_bucket_or_window():
    with pytest.raises(ValueError, match="rate_limit_usage"):
        FakeMparticle(rate_limit=100, rate_limit_usage="minute")


def test_error_fault_answers_any_status_with_the_message():
    plan = FaultPlan.script([Fault.error(401, "key revoked"), Fault.error(418, "teapot")])
    with FakeMparticle(faults=plan) as server, httpx.Client(base_url=server.url, auth=AUTH) as c:
        first = c.post("/v2/bulkevents", json=[batch()])
        second = c.post("/v2/bulkevents", json=[batch()])
    assert (first.status_code, first.json()["errors"][0]["message"]) == (401, "key revoked")
    assert second.status_code == 418
    assert [(r.fault, r.error) for r in server.requests] == [
        ("error", "key revoked"),
        ("error", "teapot"),
    ]
    assert server.requests[0].response_bytes == len(first.content)
    with pytest.raises(ValueError, match="4xx or 5xx"):
        Fault.error(302, "no")


def test_huge_body_is_sent_whole_to_a_client_that_reads_it():
    plan = FaultPlan.script([Fault.huge_body(300_000, status=500)])
    with FakeMparticle(faults=plan) as server, httpx.Client(base_url=server.url, auth=AUTH) as c:
        response = c.post("/v2/bulkevents", json=[batch()])
        assert (response.status_code, len(response.content)) == (500, 300_000)
        assert response.content.strip() == b""
        wait_until(lambda: len(server.requests) == 1)
    (request,) = server.requests
    assert (request.fault, request.status, request.response_bytes) == ("huge_body", 500, 300_000)
    assert server.batches == []  # faulted: not received


def test_endless_huge_body_stops_when_the_client_closes():
    plan = FaultPlan.script([Fault.huge_body()])
    with FakeMparticle(faults=plan) as server, httpx.Client(base_url=server.url, auth=AUTH) as c:
        with c.stream("POST", "/v2/bulkevents", json=[batch()]) as response:
            assert response.headers["transfer-encoding"] == "chunked"
            read = 0
            for chunk in response.iter_raw():
                read += len(chunk)
                if read > 1_000_000:
                    break
        wait_until(lambda: len(server.requests) == 1)
    (request,) = server.requests
    assert request.fault == "huge_body"
    assert request.response_bytes is not None and request.response_bytes >= 1_000_000


def test_drip_sends_the_status_then_a_byte_per_interval_until_the_client_leaves():
    plan = FaultPlan.script([Fault.drip(0.01, status=503)])
    with FakeMparticle(faults=plan) as server, httpx.Client(base_url=server.url, auth=AUTH) as c:
        with c.stream("POST", "/v2/bulkevents", json=[batch()]) as response:
            assert response.status_code == 503
            body = b""
            for chunk in response.iter_raw():
                body += chunk
                if len(body) >= 3:
                    break
        assert body == b"   "
        wait_until(lambda: len(server.requests) == 1)
    (request,) = server.requests
    assert (request.fault, request.status) == ("drip", 503)
    assert request.response_bytes is not None and request.response_bytes >= 3


def test_drip_ends_when_the_server_stops():
    server = FakeMparticle(faults=FaultPlan.always(Fault.drip(0.01))).start()
    with httpx.Client(base_url=server.url, auth=AUTH) as c:
        with c.stream("POST", "/v2/bulkevents", json=[batch()]) as response:
            assert response.status_code == 202
            server.stop()
            with pytest.raises(httpx.HTTPError):
                response.read()
    assert [r.fault for r in server.requests] == ["drip"]


@pytest.mark.parametrize(
    "make",
    [
        lambda: Fault.huge_body(-1),
        lambda: Fault.huge_body(10, status=101),
        lambda: Fault.drip(0),
        lambda: Fault.drip(1, status=600),
    ],
)
def test_streamed_faults_refuse_bad_arguments(make):
    with pytest.raises(ValueError):
        make()
