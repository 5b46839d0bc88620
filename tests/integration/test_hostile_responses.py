"""Hostile or broken answers: huge bodies, dripping servers, echoed credentials (#16).

Every server here is real and on loopback: the fake server's ``huge_body``, ``drip``
and ``error`` faults, and for a server that drips its status line, a raw TCP listener.
The waits are hang guards (the old code never ended these requests), not timings.
"""

from __future__ import annotations

import base64
import logging
from collections import Counter
from typing import Any

import anyio
import httpx
import pytest
from anyio.abc import SocketStream
from support.engine import FAST_PACING, event, make_config

from mparticle_dest import (
    AuthenticationError,
    Destination,
    FailedBatch,
    RejectedError,
    RetryBudgetExhaustedError,
    RetryPolicy,
)
from mparticle_dest.testing import FakeMparticle, Fault, FaultPlan

pytestmark = pytest.mark.anyio

HANG_GUARD = 30.0  # seconds: only a hang (the defect) gets anywhere near it
TWO_ATTEMPTS = RetryPolicy(max_attempts=2, initial_backoff=0.0, max_backoff=0.0)
SECRET = "s3cr3t-VALUE-e2b7"
PAIR = f"test-key:{SECRET}"
TOKEN = base64.b64encode(PAIR.encode()).decode()


async def _deliver_one(server: FakeMparticle, **options: Any) -> tuple[Destination, Any]:
    """Push one event to ``server`` and return the destination and the event's outcome."""
    with anyio.fail_after(HANG_GUARD):
        async with Destination(
            make_config(server), base_url=server.url, pacing=FAST_PACING, **options
        ) as dest:
            receipt = await dest.push(event("u1", 1))
            outcome = await receipt
    return dest, outcome


# -- huge bodies ---------------------------------------------------------------------------


async def test_a_huge_body_is_not_read_beyond_a_small_bound() -> None:
    size = 64 * 1024 * 1024  # far beyond what socket buffers hold on the way
    async with FakeMparticle(faults=FaultPlan.script([Fault.huge_body(size)])) as server:
        _, outcome = await _deliver_one(server)
    assert outcome.delivered  # the 202 decides; its body is not needed
    (request,) = server.requests
    assert request.fault == "huge_body"
    assert request.response_bytes is not None
    # The client closed the connection after the first few KB: the server could write
    # only what the socket buffers took, nowhere near the whole body.
    assert request.response_bytes < size // 2


async def test_an_endless_error_body_ends_the_attempt_which_is_retried() -> None:
    plan = FaultPlan.script([Fault.huge_body(None, status=503)])
    async with FakeMparticle(faults=plan) as server:
        dest, outcome = await _deliver_one(server, retry=TWO_ATTEMPTS)
    assert outcome.delivered and outcome.attempts == 2
    # A streamed answer is recorded when its stream ends (here when the client hung up),
    # which may come after the retry's 202: the two attempts, in either order.
    assert Counter((r.fault, r.status) for r in server.requests) == Counter(
        [("huge_body", 503), (None, 202)]
    )
    assert dest.stats.retries == 1


async def test_a_huge_rejection_body_gives_a_bounded_message() -> None:
    plan = FaultPlan.always(Fault.huge_body(16 * 1024 * 1024, status=400))
    async with FakeMparticle(faults=plan) as server:
        _, outcome = await _deliver_one(server)
    assert outcome.reason == "rejected"
    assert isinstance(outcome.error, RejectedError)
    assert outcome.error.server_message == "HTTP 400"  # the body is only spaces
    assert all(r.response_bytes < 16 * 1024 * 1024 for r in server.requests)  # type: ignore[operator]


# -- dripping servers ----------------------------------------------------------------------


async def test_a_dripping_error_answer_ends_at_request_timeout_and_is_retried() -> None:
    plan = FaultPlan.always(Fault.drip(0.05, status=503))
    async with FakeMparticle(faults=plan) as server:
        dest, outcome = await _deliver_one(server, request_timeout=0.5, retry=TWO_ATTEMPTS)
    assert outcome.reason == "retry_budget"
    assert isinstance(outcome.error, RetryBudgetExhaustedError)
    assert "2 attempts" in str(outcome.error) and "HTTP 503" in str(outcome.error)
    assert [r.fault for r in server.requests] == ["drip", "drip"]
    assert dest.stats.requests == 2


async def test_a_dripping_success_is_delivered_once_the_deadline_ends_it() -> None:
    # The 202 is the answer; the body that never ends is abandoned, not retried.
    plan = FaultPlan.script([Fault.drip(0.05)])
    async with FakeMparticle(faults=plan) as server:
        dest, outcome = await _deliver_one(server, request_timeout=0.5, retry=TWO_ATTEMPTS)
    assert outcome.delivered and outcome.attempts == 1
    assert [r.fault for r in server.requests] == ["drip"]
    assert dest.stats.retries == 0


async def test_a_dripping_answer_frees_its_slot_for_the_next_batches() -> None:
    # One request in flight at a time: while the drip held it, nothing else could go.
    plan = FaultPlan.script([Fault.drip(0.05)])
    async with FakeMparticle(faults=plan) as server:
        with anyio.fail_after(HANG_GUARD):
            async with Destination(
                make_config(server, size=1),
                base_url=server.url,
                request_timeout=0.5,
                max_in_flight=1,
                max_batches_per_request=1,
                pacing=FAST_PACING,
            ) as dest:
                receipts = [await dest.push(event(f"u{n}", n)) for n in range(3)]
                outcomes = [await r for r in receipts]
    assert all(o.delivered for o in outcomes)
    # (Recorded when each answer ended: the drip's after the deadline.)
    assert sorted(str(r.fault) for r in server.requests) == ["None", "None", "drip"]


async def _drip_status_line(stream: SocketStream) -> None:
    """Read the request, then send the status line one byte at a time, for ever."""
    async with stream:
        await stream.receive()
        try:
            for byte in b"HTTP/1.1 202 Accepted\r\n" * 1000:
                await stream.send(bytes([byte]))
                await anyio.sleep(0.05)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            pass  # the client gave up: what the test wants


async def test_a_status_line_that_never_completes_is_a_timeout_retried_per_policy() -> None:
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)  # noqa: S610 - not Django
    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, _drip_status_line)
        with anyio.fail_after(HANG_GUARD):
            async with Destination(
                make_config(None),
                base_url=f"http://127.0.0.1:{port}",
                request_timeout=0.5,
                retry=TWO_ATTEMPTS,
            ) as dest:
                outcome = await (await dest.push(event("u1", 1)))
        tg.cancel_scope.cancel()
    assert outcome.reason == "retry_budget"
    assert "no answer within 0.5 s" in str(outcome.error)
    assert outcome.http_status is None
    assert dest.stats.requests == 2 and dest.stats.retries == 1


# -- credentials echoed by the server ---------------------------------------------------------


def _assert_masked(*texts: str) -> None:
    for text in texts:
        assert SECRET not in text
        assert TOKEN not in text


async def test_a_rejection_echoing_the_secret_is_masked_everywhere(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)  # every logger, httpx and httpcore included
    failed: list[FailedBatch] = []
    echo = f"invalid secret {SECRET}; credentials {PAIR}; header Basic {TOKEN}"
    plan = FaultPlan.always(Fault.bad_request(echo))
    async with FakeMparticle(api_secret=SECRET, faults=plan) as server:
        with anyio.fail_after(HANG_GUARD):
            async with Destination(
                make_config(server), base_url=server.url, on_error=failed.append
            ) as dest:
                outcome = await (await dest.push(event("u1", 1)))
            report = await dest.aclose()
    error = outcome.error
    assert isinstance(error, RejectedError)
    assert error.server_message == (
        "BAD_REQUEST: invalid secret ***; credentials ***; header Basic ***"
    )
    (batch,) = failed
    assert batch.reason == "rejected" and batch.error is error
    _assert_masked(str(error), repr(error), repr(outcome), repr(batch), repr(report), caplog.text)
    assert "invalid secret ***" in caplog.text  # the WARNING log line carries the message


@pytest.mark.parametrize("status", [401, 403])
async def test_an_auth_refusal_echoing_the_secret_is_shown_masked(
    status: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    failed: list[FailedBatch] = []
    plan = FaultPlan.always(Fault.error(status, f"secret {SECRET} ({PAIR}) revoked"))
    async with FakeMparticle(api_secret=SECRET, faults=plan) as server:
        with anyio.fail_after(HANG_GUARD):
            async with Destination(
                make_config(server), base_url=server.url, on_error=failed.append
            ) as dest:
                outcome = await (await dest.push(event("u1", 1)))
    error = outcome.error
    assert isinstance(error, AuthenticationError)
    assert "the server said:" in str(error) and "secret *** (***) revoked" in str(error)
    _assert_masked(str(error), repr(outcome), repr(failed), caplog.text)


async def test_a_transport_error_quoting_the_credentials_is_masked() -> None:
    async def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.RemoteProtocolError(f"illegal header line: Authorization: Basic {TOKEN}")

    config = make_config(None, secret=SECRET)
    config["settings"]["apiKey"] = "test-key"
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        with anyio.fail_after(HANG_GUARD):
            async with Destination(config, http_client=client, retry=TWO_ATTEMPTS) as dest:
                outcome = await (await dest.push(event("u1", 1)))
    assert outcome.reason == "retry_budget"
    assert "RemoteProtocolError: illegal header line: Authorization: Basic ***" in str(
        outcome.error
    )
    _assert_masked(str(outcome.error))
