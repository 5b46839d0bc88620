"""Deliverer against the loopback FakeMparticle: faults, poisoned batches, auth, pacing."""

from __future__ import annotations

import json
import logging
import time
from collections import deque
from collections.abc import Mapping, Sequence

import anyio
import httpx
import pytest

from mparticle_dest import AuthenticationError, RejectedError
from mparticle_dest._batching.accumulator import SealedBatch
from mparticle_dest._delivery import BatchResult, Deliverer, make_client
from mparticle_dest._delivery.pacing import Pacer, PacingPolicy
from mparticle_dest._delivery.retry import RetryPolicy
from mparticle_dest._mparticle.constants import BULK_PATH
from mparticle_dest._wire import basic_auth_header, endpoint
from mparticle_dest.testing import FakeMparticle, Fault, FaultPlan

pytestmark = pytest.mark.anyio

KEY, SECRET = "it-key", "it-secret-value"
FAST = RetryPolicy(max_attempts=30, initial_backoff=0.005, max_backoff=0.05, max_elapsed=30.0)


def batch(i: int) -> SealedBatch:
    sid = f"req-{i:04d}"
    body = {
        "events": [
            {
                "event_type": "custom_event",
                "data": {
                    "event_name": "product view",
                    "custom_event_type": "other",
                    "timestamp_unixtime_ms": 1_700_000_000_000 + i,
                    "source_message_id": f"ev-{i:04d}",
                },
            }
        ],
        "environment": "development",
        "user_identities": {"customer_id": f"user-{i}"},
        "source_request_id": sid,
    }
    raw = json.dumps(body, separators=(",", ":")).encode()
    return SealedBatch(key=i, body=raw, event_count=1, source_request_id=sid, seq=i)


class SendTimes:
    """Client-side event hooks: when each request left and each response arrived."""

    def __init__(self) -> None:
        self.sent: list[float] = []
        self.throttled: list[float] = []
        self.first_429 = anyio.Event()

    async def on_request(self, request: httpx.Request) -> None:
        self.sent.append(time.monotonic())

    async def on_response(self, response: httpx.Response) -> None:
        if response.status_code == 429:
            self.throttled.append(time.monotonic())
            self.first_429.set()


def make_deliverer(
    server: FakeMparticle,
    *,
    retry: RetryPolicy = FAST,
    pacing: PacingPolicy | None = None,
    pacer: Pacer | None = None,
    auth: str = basic_auth_header(KEY, SECRET),
    times: SendTimes | None = None,
) -> tuple[Deliverer, httpx.AsyncClient]:
    client = make_client(timeout=httpx.Timeout(5.0), max_connections=8)
    if times is not None:
        client.event_hooks = {"request": [times.on_request], "response": [times.on_response]}
    deliverer = Deliverer(
        client,
        url=endpoint(base_url=server.url, path=BULK_PATH),
        auth_header=auth,
        retry=retry,
        pacer=pacer or Pacer(pacing or PacingPolicy(throttle_pause=0.02)),
    )
    return deliverer, client


async def send_all(
    deliverer: Deliverer, batches: Sequence[SealedBatch], *, per_request: int, senders: int
) -> list[BatchResult]:
    """Send ``batches`` in requests of ``per_request`` from ``senders`` concurrent tasks."""
    pending = deque(batches[i : i + per_request] for i in range(0, len(batches), per_request))
    results: list[BatchResult] = []

    async def sender() -> None:
        while pending:
            results.extend(await deliverer.send(pending.popleft()))

    async with anyio.create_task_group() as tg:
        for _ in range(senders):
            tg.start_soon(sender)
    return results


async def test_every_batch_is_delivered_through_thirty_percent_faults() -> None:
    plan = FaultPlan.random(
        seed=20240501,
        rates={
            Fault.rate_limited(0): 0.08,
            Fault.rate_limited(None): 0.04,
            Fault.server_error(503): 0.06,
            Fault.server_error(500): 0.06,
            Fault.drop(): 0.06,
        },
    )
    batches = [batch(i) for i in range(120)]
    async with FakeMparticle(api_key=KEY, api_secret=SECRET, faults=plan) as server:
        # Random 429s are not a real rate limit: keep the pacing floor high so the
        # test stays short while the gate and the retries are still exercised.
        pacing = PacingPolicy(throttle_pause=0.02, min_rate=1000.0)
        deliverer, client = make_deliverer(server, pacing=pacing)
        async with client:
            results = await send_all(deliverer, batches, per_request=6, senders=4)
    assert len(results) == len(batches)
    assert all(r.delivered for r in results), [r.error for r in results if not r.delivered]
    received = {b.source_request_id for b in server.batches}
    assert received == {b.source_request_id for b in batches}
    faulted = [r for r in server.requests if not r.accepted]
    assert faulted, "the plan injected no fault: the test would prove nothing"
    assert deliverer.counters.retries == len(faulted)
    assert deliverer.counters.throttled == sum(r.status == 429 for r in server.requests)


async def test_dropped_connections_are_retried() -> None:
    plan = FaultPlan.script([Fault.drop(), Fault.drop()])
    async with FakeMparticle(api_key=KEY, api_secret=SECRET, faults=plan) as server:
        deliverer, client = make_deliverer(server)
        async with client:
            (result,) = await deliverer.send([batch(1)])
    assert result.delivered
    assert result.attempts == 3
    assert [r.fault for r in server.requests] == ["drop", "drop", None]
    # The server read both dropped requests: mParticle could have processed them.
    assert result.batch.ambiguous_attempts == 2


async def test_retry_after_is_honoured_by_the_throttled_sender() -> None:
    plan = FaultPlan.script([Fault.rate_limited(0.3)])
    times = SendTimes()
    async with FakeMparticle(api_key=KEY, api_secret=SECRET, faults=plan) as server:
        retry = RetryPolicy(initial_backoff=0.0, max_backoff=0.0)
        deliverer, client = make_deliverer(server, retry=retry, times=times)
        async with client:
            (result,) = await deliverer.send([batch(1)])
    assert result.delivered and result.attempts == 2
    assert times.sent[1] - times.throttled[0] >= 0.3 - 0.02


async def test_a_429_pauses_every_sender_not_only_the_throttled_one() -> None:
    plan = FaultPlan.script([Fault.rate_limited(0.3)])
    times = SendTimes()
    gate_closed = anyio.Event()

    class WatchedPacer(Pacer):
        def on_response(self, status: int, headers: Mapping[str, str], batches: int = 0) -> None:
            super().on_response(status, headers, batches)
            if self.gate_remaining() > 0:
                gate_closed.set()

    async with FakeMparticle(api_key=KEY, api_secret=SECRET, faults=plan) as server:
        deliverer, client = make_deliverer(server, times=times, pacer=WatchedPacer())
        results: list[BatchResult] = []

        async def other_sender() -> None:
            await gate_closed.wait()  # the first sender's 429 was just processed
            results.extend(await deliverer.send([batch(2)]))

        async with client, anyio.create_task_group() as tg:
            tg.start_soon(other_sender)
            results.extend(await deliverer.send([batch(1)]))
    assert all(r.delivered for r in results)
    # The second sender's only request waited for the gate the first one's 429 closed.
    assert len(times.sent) == 3
    assert min(times.sent[1:]) - times.throttled[0] >= 0.3 - 0.02


async def test_poisoned_batch_is_isolated_and_the_rest_delivered_once() -> None:
    batches = [batch(i) for i in range(12)]
    poisoned = batches[7].source_request_id

    def reject(body: object) -> bool:
        return isinstance(body, dict) and body.get("source_request_id") == poisoned

    async with FakeMparticle(api_key=KEY, api_secret=SECRET, reject_batch=reject) as server:
        deliverer, client = make_deliverer(server)
        async with client:
            results = await deliverer.send(batches)
    assert [r.delivered for r in results] == [b.source_request_id != poisoned for b in batches]
    error = results[7].error
    assert isinstance(error, RejectedError)
    assert "batch rejected (reject_batch)" in error.server_message
    received = [b.source_request_id for b in server.batches]
    assert sorted(received) == sorted(b.source_request_id for b in batches if b is not batches[7])
    assert len(server.requests) <= 8


@pytest.mark.parametrize(
    ("auth", "status"),
    [(basic_auth_header(KEY, "wrong-secret"), 403), ("Basic not-base64!", 401)],
)
async def test_refused_credentials_make_exactly_one_request(
    auth: str, status: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with FakeMparticle(api_key=KEY, api_secret=SECRET) as server:
        deliverer, client = make_deliverer(server, auth=auth)
        async with client:
            with anyio.fail_after(5):  # prompt: no backoff, no retry storm
                first = await send_all(
                    deliverer, [batch(i) for i in range(20)], per_request=5, senders=4
                )
                later = await deliverer.send([batch(99)])
    assert len(server.requests) == 1
    assert all(isinstance(r.error, AuthenticationError) for r in [*first, *later])
    assert {r.status for r in [*first, *later]} == {status}
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert "apiKey and apiSecret" in errors[0].getMessage()


async def test_high_rate_limit_usage_engages_pacing() -> None:
    plan = FaultPlan.script([Fault.ok(percentage_used=95)], then=Fault.ok(percentage_used=10))
    # A frozen clock: the 50 batches were accepted within the last second.
    pacer = Pacer(PacingPolicy(min_rate=1.0), clock=lambda: 0.0)
    async with FakeMparticle(api_key=KEY, api_secret=SECRET, faults=plan) as server:
        deliverer, client = make_deliverer(server, pacer=pacer)
        async with client:
            await deliverer.send([batch(i) for i in range(50)])
            engaged = deliverer.pacer.rate
    # Pacing starts at what mParticle accepted over the last second (this one's share).
    assert engaged == pytest.approx(50.0)


async def test_secrets_stay_out_of_logs_reprs_and_errors(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)  # httpx and httpcore debug logs included
    token = basic_auth_header(KEY, SECRET).split()[1]
    plan = FaultPlan.script([Fault.drop(), Fault.server_error(503), Fault.rate_limited(0)])

    def reject(body: object) -> bool:
        return isinstance(body, dict) and body.get("source_request_id") == "req-0002"

    async with FakeMparticle(
        api_key=KEY, api_secret=SECRET, faults=plan, reject_batch=reject
    ) as server:
        deliverer, client = make_deliverer(server)
        async with client:
            results = await deliverer.send([batch(i) for i in range(4)])
    assert not results[2].delivered
    shown = [caplog.text, repr(deliverer), repr(deliverer.counters), repr(deliverer.pacer)]
    shown += [repr(r) for r in results] + [str(r.error) for r in results if r.error]
    for text in shown:
        assert SECRET not in text
        assert token not in text
