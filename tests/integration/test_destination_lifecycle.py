"""Lifecycle: open/close states, cancellation, errors in the body, loops, hooks, secrets."""

from __future__ import annotations

import base64
import logging
import threading
from collections.abc import Sequence
from typing import Any

import anyio
import httpx
import pytest
from support.engine import FAST_PACING, FAST_RETRY, event, interleaved, make_config

from mparticle_dest import DestinationClosedError
from mparticle_dest._batching import SealedBatch
from mparticle_dest._delivery import BatchResult, DeliveryCounters
from mparticle_dest._destination.destination import Destination
from mparticle_dest._destination.options import FailedBatch
from mparticle_dest.testing import FakeMparticle, Fault, FaultPlan

pytestmark = pytest.mark.anyio


async def test_push_and_flush_need_an_open_destination() -> None:
    async with FakeMparticle() as server:
        dest = Destination(make_config(server), base_url=server.url)
        with pytest.raises(DestinationClosedError, match="async with"):
            await dest.push(event("u1", 1))
        with pytest.raises(DestinationClosedError):
            await dest.flush()
        async with dest:
            assert not dest.closed
            await dest.push(event("u1", 1))
        assert dest.closed
        with pytest.raises(DestinationClosedError, match="closed"):
            await dest.push(event("u1", 2))
        with pytest.raises(DestinationClosedError):
            await dest.flush()
        with pytest.raises(DestinationClosedError, match="only once"):
            async with dest:
                pass
        assert server.event_count == 1


async def test_aclose_before_open_is_an_empty_report() -> None:
    report = await Destination(make_config(None)).aclose()
    assert (report.delivered, report.failed, report.undelivered) == (0, 0, 0)
    assert report.ok


async def test_aclose_inside_the_context_drains_and_is_idempotent() -> None:
    async with FakeMparticle() as server:
        async with Destination(make_config(server, age=60_000), base_url=server.url) as dest:
            for i in range(5):
                await dest.push(event("u1", i))
            report = await dest.aclose()
            assert report.delivered == 5 and server.event_count == 5
            assert dest.closed
            with pytest.raises(DestinationClosedError):
                await dest.push(event("u1", 9))
            assert await dest.aclose() is report
        assert await dest.aclose() is report


async def test_aclose_from_another_task_while_the_body_runs() -> None:
    async with FakeMparticle() as server:
        async with Destination(make_config(server, age=60_000), base_url=server.url) as dest:
            await dest.push(event("u1", 1))
            reports = []

            async def closer() -> None:
                reports.append(await dest.aclose())

            async with anyio.create_task_group() as tg:
                tg.start_soon(closer)
                tg.start_soon(closer)  # a concurrent second close waits for the first
            assert reports[0] is reports[1]
            assert reports[0].delivered == 1
            await anyio.sleep(0.01)  # the body still runs normally after the close
        assert server.event_count == 1


async def test_an_error_in_the_body_propagates_unchanged_after_delivering() -> None:
    async with FakeMparticle() as server:
        with pytest.raises(KeyError, match="boom"):
            async with Destination(make_config(server, age=60_000), base_url=server.url) as dest:
                await dest.push(event("u1", 1))
                raise KeyError("boom")
        assert server.event_count == 1


async def test_a_cancelled_body_still_delivers_what_was_accepted() -> None:
    async with FakeMparticle() as server:
        with anyio.move_on_after(0.1):
            async with Destination(make_config(server, age=60_000), base_url=server.url) as dest:
                for i in range(20):
                    await dest.push(event("u1", i))
                await anyio.sleep(10)
        assert server.event_count == 20
        assert dest.stats.delivered_events == 20


async def test_a_cancelled_flush_loses_nothing() -> None:
    async with FakeMparticle(faults=FaultPlan.script([Fault.slow(0.3)])) as server:
        async with Destination(make_config(server, age=60_000), base_url=server.url) as dest:
            receipts = [await dest.push(event("u1", i)) for i in range(10)]
            with anyio.move_on_after(0.05) as scope:
                await dest.flush()
            assert scope.cancelled_caught
            await dest.flush()
            assert all(r.outcome is not None and r.outcome.delivered for r in receipts)
        assert [e.source_message_id for e in server.events] == [f"u1-{i:05d}" for i in range(10)]


async def test_use_from_another_event_loop_is_refused() -> None:
    async with FakeMparticle() as server:
        async with Destination(make_config(server), base_url=server.url) as dest:

            def push_from_a_new_loop() -> None:
                async def push() -> None:
                    await dest.push(event("u1", 1))

                anyio.run(push)

            with pytest.raises(DestinationClosedError, match="another event loop"):
                await anyio.to_thread.run_sync(push_from_a_new_loop)
            assert dest.stats.pushed == 0


async def test_a_caller_owned_http_client_is_used_and_left_open() -> None:
    async with FakeMparticle() as server:
        async with httpx.AsyncClient(follow_redirects=False) as client:
            async with Destination(
                make_config(server), base_url=server.url, http_client=client
            ) as dest:
                assert (await (await dest.push(event("u1", 1)))).delivered
            assert not client.is_closed
            response = await client.get(server.url + "/health")
            assert response.status_code < 600  # the client still works


async def test_an_on_error_hook_that_raises_is_contained(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls: list[FailedBatch] = []

    def hook(failed: FailedBatch) -> None:
        calls.append(failed)
        raise RuntimeError("hook bug")

    async with FakeMparticle(reject_batch=lambda batch: True) as server:
        async with Destination(
            make_config(server), base_url=server.url, on_error=hook, retry=FAST_RETRY
        ) as dest:
            first = await dest.push(event("u1", 1))
            assert (await first).reason == "rejected"
            second = await dest.push(event("u2", 1))
            assert (await second).reason == "rejected"  # the engine kept working
    assert len(calls) == 2
    assert any("on_error hook raised" in r.getMessage() for r in caplog.records)


def test_invalid_options_are_refused_at_construction() -> None:
    config = make_config(None)
    with pytest.raises(ValueError, match="max_buffered_events"):
        Destination(config, max_buffered_events=0)
    with pytest.raises(ValueError, match="full_policy"):
        Destination(config, full_policy="evict")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="close_timeout"):
        Destination(config, close_timeout=-1)
    with pytest.raises(ValueError, match="base_url"):
        Destination(config, base_url="127.0.0.1:8080")

    async def async_hook(failed: FailedBatch) -> None:
        pass

    with pytest.raises(TypeError, match="sync"):
        Destination(config, on_error=async_hook)


async def test_secrets_never_appear_in_logs_reprs_errors_or_stats(
    caplog: pytest.LogCaptureFixture,
) -> None:
    secret = "s3cr3t-VALUE-4f9a"
    token = base64.b64encode(f"test-key:{secret}".encode()).decode()
    caplog.set_level(logging.DEBUG)  # every logger, httpx and httpcore included
    failed: list[FailedBatch] = []
    texts: list[str] = []
    plan = FaultPlan.script([Fault.server_error(503), Fault.drop(), Fault.rate_limited(0)])

    # A run with retried faults, then a run refused for a wrong secret.
    for server_secret in (secret, "another-secret"):
        async with FakeMparticle(api_secret=server_secret, faults=plan) as server:
            dest = Destination(
                make_config(server, age=10, secret=secret),
                base_url=server.url,
                retry=FAST_RETRY,
                pacing=FAST_PACING,
                on_error=failed.append,
            )
            texts.append(repr(dest))
            async with dest:
                receipts = [await dest.push(e) for e in interleaved(users=3, per_user=4)]
                texts.append(repr(dest))
            report = await dest.aclose()
            outcomes = [await r for r in receipts]
            texts += [repr(dest), repr(dest.options), repr(dest.config), repr(report)]
            texts += [repr(dest.stats), str(dest.stats), repr(receipts[0])]
            texts += [repr(o) for o in outcomes]
            texts += [str(o.error) for o in outcomes if o.error is not None]

    assert failed, "the wrong secret must have failed some batches"
    texts += [repr(f) for f in failed] + [str(f.error) for f in failed]
    texts += [r.getMessage() for r in caplog.records]
    texts += [caplog.text]
    for text in texts:
        assert secret not in text
        assert token not in text


class _BrokenDeliverer:
    """A ``Sender`` (the engine's HTTP side) that fails with a bug, not an HTTP outcome."""

    def __init__(self, counters: DeliveryCounters) -> None:
        self.counters = counters

    async def send(self, batches: Sequence[SealedBatch]) -> list[BatchResult]:
        raise RuntimeError("bug in delivery")


async def test_a_bug_in_a_send_fails_its_batches_and_the_engine_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with FakeMparticle() as server:
        async with Destination(make_config(server), base_url=server.url) as dest:
            real = dest._engine.sender
            assert real is not None
            dest._engine.sender = _BrokenDeliverer(real.counters)
            outcome = await (await dest.push(event("u1", 1)))
            assert (outcome.status, outcome.reason) == ("failed", "error")
            dest._engine.sender = real
            assert (await (await dest.push(event("u1", 2)))).delivered
    assert any("internal error" in r.getMessage() for r in caplog.records)
    assert dest.stats.failed_events == 1 and dest.stats.delivered_events == 1


async def test_a_bug_in_the_flusher_fails_every_receipt_and_closes_push(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken_due(now: float, **_: object) -> int:
        raise RuntimeError("bug in the flusher")

    async with FakeMparticle() as server:
        async with Destination(make_config(server, age=60_000), base_url=server.url) as dest:
            # The first event of an idle destination wakes the flusher, which runs (and
            # fails) as soon as this task yields.
            receipt = await dest.push(event("u1", 1))
            dest._engine.acc.due = broken_due  # type: ignore[method-assign,assignment]
            outcome = await receipt
            assert (outcome.status, outcome.reason) == ("failed", "error")
            with pytest.raises(DestinationClosedError, match="internal error"):
                await dest.push(event("u1", 3))
        report = await dest.aclose()
    assert report.failed == 1 and report.delivered == 0
    assert any("delivery engine stopped" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_a_caller_cancelled_while_the_engine_starts_does_not_hang(backend: str) -> None:
    # The engine task shields itself from cancellation; a caller cancelled before the engine
    # reported readiness once left the task group waiting forever. Run in a thread so a
    # regression fails this test instead of hanging the run.
    result: dict[str, Any] = {}

    async def main() -> None:
        async with FakeMparticle() as server:
            dest = Destination(make_config(server), base_url=server.url)
            real_run = dest._engine.run

            async def run(*, task_status: Any) -> None:
                scope.cancel()  # the caller's deadline expires exactly now
                await real_run(task_status=task_status)

            dest._engine.run = run  # type: ignore[method-assign]
            with anyio.CancelScope() as scope:
                async with dest:
                    pass
            result["state"] = repr(dest)

    worker = threading.Thread(target=anyio.run, args=(main,), kwargs={"backend": backend})
    worker.daemon = True
    worker.start()
    worker.join(timeout=15)
    assert not worker.is_alive(), "async with Destination(...) never returned"
    assert "closed" in result["state"]
