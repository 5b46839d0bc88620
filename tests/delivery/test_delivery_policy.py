"""Deliverer against httpx.MockTransport: headers, status policy, retries, splitting, auth."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable
from itertools import combinations

import anyio
import httpx
import pytest

from mparticle_dest import (
    AuthenticationError,
    DeliveryError,
    RejectedError,
    RetryBudgetExhaustedError,
)
from mparticle_dest._batching.accumulator import SealedBatch
from mparticle_dest._delivery import BatchResult, Deliverer, make_client
from mparticle_dest._delivery.pacing import Pacer, PacingPolicy
from mparticle_dest._delivery.retry import RetryPolicy
from mparticle_dest._wire import basic_auth_header, encode_bulk

pytestmark = pytest.mark.anyio

URL = "https://s2s.mparticle.com/v2/bulkevents"
AUTH = basic_auth_header("key", "secret")
TOKEN = "a2V5OnNlY3JldA=="  # base64("key:secret")
FAST = RetryPolicy(initial_backoff=0.001, max_backoff=0.01, max_elapsed=10.0)

Handler = Callable[[httpx.Request], Awaitable[httpx.Response]]


def batch(i: int, *, bad: bool = False) -> SealedBatch:
    body = json.dumps({"events": [{"n": i}], "source_request_id": f"r{i}", "bad": bad})
    return SealedBatch(
        key=("user", i),
        body=body.encode(),
        event_count=1,
        source_request_id=f"r{i}",
        seq=i,
    )


class Recorder:
    """Async MockTransport handler answering from a script; records what it got."""

    def __init__(self, *answers: int | httpx.Response | Exception) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []
        self.times: list[float] = []

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        self.times.append(time.monotonic())
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        if isinstance(answer, int):
            return httpx.Response(answer)
        return answer

    def batches(self, index: int) -> list[str]:
        return [b["source_request_id"] for b in json.loads(self.requests[index].content)]


def rejecting_bad(calls: list[list[str]]) -> Handler:
    """A server answering 400 to any request holding a batch marked bad."""

    async def handler(request: httpx.Request) -> httpx.Response:
        sent = json.loads(request.content)
        calls.append([b["source_request_id"] for b in sent])
        bad = [b["source_request_id"] for b in sent if b["bad"]]
        if bad:
            message = f"batch {bad[0]} is invalid"
            return httpx.Response(
                400, json={"errors": [{"code": "BAD_REQUEST", "message": message}]}
            )
        return httpx.Response(202)

    return handler


#: Whether :func:`deliverer` makes the deliverer the client's owner (each request goes
#: straight to the client's transport) or a caller's client user (``client.send``).
_OWN_CLIENT = False


@pytest.fixture(autouse=True, params=["client.send", "transport"])
def sending_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every policy test runs on both ways a request leaves."""
    monkeypatch.setitem(globals(), "_OWN_CLIENT", request.param == "transport")


def deliverer(
    handler: Handler, *, retry: RetryPolicy = FAST, client: httpx.AsyncClient | None = None
) -> tuple[Deliverer, httpx.AsyncClient]:
    client = client or httpx.AsyncClient(transport=httpx.MockTransport(handler))
    pacer = Pacer(PacingPolicy(throttle_pause=0.0))
    own = _OWN_CLIENT
    d = Deliverer(client, url=URL, auth_header=AUTH, retry=retry, pacer=pacer, own_client=own)
    return d, client


async def test_one_bulk_post_with_exact_headers_and_body() -> None:
    server = Recorder(202)
    sent = [batch(1), batch(2)]
    d, client = deliverer(server)
    async with client:
        results = await d.send(sent)
    assert [r.delivered for r in results] == [True, True]
    assert [r.batch for r in results] == sent
    (request,) = server.requests
    assert request.method == "POST"
    assert str(request.url) == URL
    assert request.headers["Authorization"] == "Basic a2V5OnNlY3JldA=="
    assert request.headers["Content-Type"] == "application/json"
    assert request.content == encode_bulk([b.body for b in sent])
    assert (results[0].status, results[0].attempts, results[0].reason) == (202, 1, None)
    assert d.counters.requests == 1
    assert d.counters.bytes_sent == len(request.content)


async def test_any_2xx_is_delivered() -> None:
    d, client = deliverer(Recorder(200))
    async with client:
        (result,) = await d.send([batch(1)])
    assert result.delivered and result.status == 200


async def test_empty_send_makes_no_request() -> None:
    server = Recorder(202)
    d, client = deliverer(server)
    async with client:
        assert await d.send([]) == []
    assert server.requests == []


async def test_more_than_100_batches_is_a_programming_error() -> None:
    d, client = deliverer(Recorder(202))
    async with client:
        with pytest.raises(ValueError, match="100"):
            await d.send([batch(i) for i in range(101)])


async def test_redirect_is_never_followed_so_auth_never_travels() -> None:
    elsewhere: list[httpx.Request] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host != "s2s.mparticle.com":
            elsewhere.append(request)
            return httpx.Response(202)
        return httpx.Response(307, headers={"Location": "https://collector.example/steal"})

    # Even a caller-owned client that follows redirects by default must not here.
    client = httpx.AsyncClient(transport=httpx.MockTransport(handler), follow_redirects=True)
    d, _ = deliverer(handler, client=client)
    async with client:
        (result,) = await d.send([batch(1)])
    assert elsewhere == []
    assert isinstance(result.error, RejectedError)
    assert result.status == 307
    assert result.attempts == 1


def test_make_client_verifies_tls_and_does_not_follow_redirects() -> None:
    client = make_client(timeout=httpx.Timeout(5.0, connect=2.0), max_connections=4)
    try:
        assert client.follow_redirects is False
        assert client.timeout == httpx.Timeout(5.0, connect=2.0)
        assert client.headers["User-Agent"].startswith("mparticle-dest/")
    finally:
        anyio.run(client.aclose)


async def test_retriable_failures_are_retried_until_delivered() -> None:
    server = Recorder(
        503,
        httpx.Response(429, headers={"Retry-After": "0"}),
        500,
        httpx.ConnectError("refused"),
        408,
        202,
    )
    d, client = deliverer(server)
    async with client:
        (result,) = await d.send([batch(1)])
    assert result.delivered
    assert result.attempts == 6
    assert len(server.requests) == 6
    assert len({r.content for r in server.requests}) == 1  # a retry resends identical bytes
    c = d.counters
    assert (c.requests, c.retries, c.throttled) == (6, 5, 1)


async def test_timeout_after_sending_marks_a_possible_duplicate() -> None:
    server = Recorder(httpx.ReadTimeout("no answer"), 202)
    d, client = deliverer(server)
    async with client:
        (result,) = await d.send([batch(1)])
    assert result.delivered
    assert result.batch.ambiguous_attempts == 1


async def test_connect_error_cannot_duplicate() -> None:
    server = Recorder(httpx.ConnectError("refused"), 429, 202)
    d, client = deliverer(server)
    async with client:
        (result,) = await d.send([batch(1)])
    assert result.delivered
    assert result.batch.ambiguous_attempts == 0


async def test_retry_budget_attempts_exhausted() -> None:
    server = Recorder(500)
    d, client = deliverer(server, retry=RetryPolicy(max_attempts=3, initial_backoff=0.0))
    async with client:
        results = await d.send([batch(1), batch(2)])
    assert len(server.requests) == 3
    for result in results:
        assert isinstance(result.error, RetryBudgetExhaustedError)
        assert result.error.retriable
        assert result.status == 500
        assert result.attempts == 3
        assert result.reason == "retry_budget"
        assert "3 attempts" in str(result.error)


async def test_retry_after_beyond_the_time_budget_gives_up_without_waiting() -> None:
    server = Recorder(httpx.Response(429, headers={"Retry-After": "30"}))
    d, client = deliverer(server, retry=RetryPolicy(max_elapsed=5.0))
    async with client:
        with anyio.fail_after(3):
            (result,) = await d.send([batch(1)])
    assert isinstance(result.error, RetryBudgetExhaustedError)
    assert result.status == 429
    assert len(server.requests) == 1


async def test_retry_after_is_honoured() -> None:
    server = Recorder(httpx.Response(429, headers={"Retry-After": "0.3"}), 202)
    d, client = deliverer(server, retry=RetryPolicy(initial_backoff=0.0, max_backoff=0.0))
    async with client:
        (result,) = await d.send([batch(1)])
    assert result.delivered
    assert server.times[1] - server.times[0] >= 0.3 - 0.02


async def test_cancellation_mid_retry_propagates() -> None:
    server = Recorder(httpx.Response(503, headers={"Retry-After": "30"}))
    d, client = deliverer(server, retry=RetryPolicy(max_elapsed=60.0))
    async with client:
        with anyio.move_on_after(0.2) as scope:
            await d.send([batch(1)])
    assert scope.cancelled_caught
    assert len(server.requests) == 1


@pytest.mark.parametrize("status", [401, 403])
async def test_auth_failure_is_not_retried_and_fails_every_batch(
    status: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    server = Recorder(status)
    d, client = deliverer(server)
    async with client:
        first = await d.send([batch(1), batch(2), batch(3)])
        later = await d.send([batch(4)])
    assert len(server.requests) == 1
    assert d.auth_failed
    for result in [*first, *later]:
        assert isinstance(result.error, AuthenticationError)
        assert not result.error.retriable
        assert result.status == status
        assert result.reason == "authentication"
    assert later[0].attempts == 0  # failed fast, never sent
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert str(status) in errors[0].getMessage()


async def test_auth_failure_stops_a_concurrent_retry() -> None:
    async def handler(request: httpx.Request) -> httpx.Response:
        if json.loads(request.content)[0]["source_request_id"] == "r1":
            return httpx.Response(503)
        await anyio.sleep(0.05)
        return httpx.Response(401)

    calls: list[httpx.Request] = []

    async def recording(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return await handler(request)

    retry = RetryPolicy(initial_backoff=0.1, max_backoff=0.1, max_attempts=50)
    d, client = deliverer(recording, retry=retry)
    results: dict[str, BatchResult] = {}

    async def send(i: int) -> None:
        (results[f"r{i}"],) = await d.send([batch(i)])

    async with client, anyio.create_task_group() as tg:
        tg.start_soon(send, 1)
        tg.start_soon(send, 2)
    assert all(isinstance(r.error, AuthenticationError) for r in results.values())
    assert len(calls) < 6  # the retrying send stopped once the credentials were refused


async def test_rejected_single_batch_carries_the_server_message() -> None:
    body = {"errors": [{"code": "VALIDATION_ERROR", "message": "events[0].event_name is required"}]}
    server = Recorder(httpx.Response(400, json=body))
    d, client = deliverer(server)
    async with client:
        (result,) = await d.send([batch(1)])
    assert len(server.requests) == 1
    assert isinstance(result.error, RejectedError)
    assert result.error.server_message == "VALIDATION_ERROR: events[0].event_name is required"
    assert "event_name is required" in str(result.error)
    assert result.reason == "rejected"


async def test_non_json_error_text_is_kept_truncated() -> None:
    server = Recorder(httpx.Response(400, text="<html>\n  Bad   request " + "x" * 2000))
    d, client = deliverer(server)
    async with client:
        (result,) = await d.send([batch(1)])
    assert isinstance(result.error, RejectedError)
    assert result.error.server_message.startswith("<html> Bad request xxx")
    assert len(result.error.server_message) == 500


async def test_other_4xx_fails_the_request_without_retry_or_split() -> None:
    server = Recorder(httpx.Response(404, text="no such path"))
    d, client = deliverer(server)
    async with client:
        results = await d.send([batch(i) for i in range(5)])
    assert len(server.requests) == 1
    assert all(isinstance(r.error, RejectedError) and r.status == 404 for r in results)


@pytest.mark.parametrize("bad", [0, 4, 9])
async def test_one_rejected_batch_among_ten_is_isolated(bad: int) -> None:
    calls: list[list[str]] = []
    d, client = deliverer(rejecting_bad(calls))
    async with client:
        results = await d.send([batch(i, bad=i == bad) for i in range(10)])
    assert [r.delivered for r in results] == [i != bad for i in range(10)]
    error = results[bad].error
    assert isinstance(error, RejectedError)
    assert error.server_message == f"BAD_REQUEST: batch r{bad} is invalid"
    assert len(calls) <= 7  # 1 + ~2·log2(10); sending one by one would take 11
    _assert_each_good_batch_delivered_once(calls, {f"r{bad}"})


@pytest.mark.parametrize("bad", list(combinations(range(10), 2)))
async def test_two_rejected_batches_among_ten_are_isolated(bad: tuple[int, int]) -> None:
    calls: list[list[str]] = []
    d, client = deliverer(rejecting_bad(calls))
    async with client:
        results = await d.send([batch(i, bad=i in bad) for i in range(10)])
    assert [r.delivered for r in results] == [i not in bad for i in range(10)]
    for i in bad:
        error = results[i].error
        assert isinstance(error, RejectedError)
        assert error.server_message == f"BAD_REQUEST: batch r{i} is invalid"
    assert len(calls) <= 11
    _assert_each_good_batch_delivered_once(calls, {f"r{i}" for i in bad})


def _assert_each_good_batch_delivered_once(calls: list[list[str]], bad: set[str]) -> None:
    accepted = [sid for call in calls if not bad & set(call) for sid in call]
    assert sorted(accepted) == sorted({f"r{i}" for i in range(10)} - bad)


async def test_too_large_bulk_request_is_split_until_it_fits() -> None:
    async def handler(request: httpx.Request) -> httpx.Response:
        if len(json.loads(request.content)) > 2:
            return httpx.Response(413, text="Request Entity Too Large")
        return httpx.Response(202)

    d, client = deliverer(handler)
    async with client:
        results = await d.send([batch(i) for i in range(8)])
    assert all(r.delivered for r in results)


async def test_transport_error_a_retry_cannot_fix_fails_at_once() -> None:
    server = Recorder(httpx.UnsupportedProtocol("bad scheme"))
    d, client = deliverer(server)
    async with client:
        (result,) = await d.send([batch(1)])
    assert len(server.requests) == 1
    assert type(result.error) is DeliveryError
    assert result.reason == "error"


async def test_secrets_never_appear_in_logs_reprs_errors_or_counters(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    echo = {"errors": [{"code": "BAD", "message": f"header was Basic {TOKEN}"}]}
    server = Recorder(
        httpx.ReadTimeout("timed out"),
        503,
        httpx.Response(400, json=echo),
        401,
    )
    d, client = deliverer(server)
    async with client:
        rejected = await d.send([batch(1)])
        refused = await d.send([batch(2)])
    texts = [
        caplog.text,
        repr(d),
        repr(d.counters),
        repr(d.pacer),
        *(repr(r) for r in [*rejected, *refused]),
        *(str(r.error) for r in [*rejected, *refused]),
        *(repr(r.error) for r in [*rejected, *refused]),
    ]
    for text in texts:
        assert TOKEN not in text
        assert "secret" not in text
    assert isinstance(rejected[0].error, RejectedError)
    assert rejected[0].error.server_message == "BAD: header was Basic ***"


async def test_wrong_credentials_cost_one_request_however_many_senders_start() -> None:
    calls: list[httpx.Request] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        await anyio.sleep(0.05)  # the others are ready to send meanwhile
        return httpx.Response(403)

    d, client = deliverer(handler)
    results: list[BatchResult] = []

    async def send(i: int) -> None:
        results.extend(await d.send([batch(i)]))

    async with client, anyio.create_task_group() as tg:
        for i in range(5):
            tg.start_soon(send, i)
    assert len(calls) == 1
    assert len(results) == 5
    assert all(isinstance(r.error, AuthenticationError) for r in results)


async def test_a_cancelled_first_attempt_lets_one_next_sender_try() -> None:
    calls: list[str] = []
    never = anyio.Event()

    async def handler(request: httpx.Request) -> httpx.Response:
        sid = json.loads(request.content)[0]["source_request_id"]
        calls.append(sid)
        if sid == "r1":
            await never.wait()
        await anyio.sleep(0.05)
        return httpx.Response(403)

    d, client = deliverer(handler)
    results: list[BatchResult] = []

    async def waiter(i: int) -> None:
        results.extend(await d.send([batch(i)]))

    async with client, anyio.create_task_group() as tg:
        with anyio.move_on_after(0.1):
            for i in (2, 3, 4):
                tg.start_soon(waiter, i)  # they queue behind the first attempt
            await d.send([batch(1)])
    # The cancelled attempt proved nothing, so exactly one waiter tried the credentials.
    assert len(calls) == 2
    assert len(results) == 3
    assert all(isinstance(r.error, AuthenticationError) for r in results)
