"""A close that is cancelled still ends within ``close_timeout`` and resolves every receipt.

A plain asyncio ``task.cancel()`` (what ``asyncio.run`` does on Ctrl-C, and a SIGTERM
handler calling ``task.cancel()``) reaches a task even inside an anyio shielded scope;
it once abandoned the close half-way and left ``async with`` waiting for ever. Each
case runs its event loop in a thread joined with a timeout, so a regression fails the
test instead of hanging the run. The server stalls every request, so the close always
runs out its timeout: what it must do then is resolve every receipt (failed,
``"closed"``), call ``on_error``, and let the cancellation propagate.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from importlib.util import find_spec
from typing import Any

import anyio
import pytest
from support.engine import event, make_config

from mparticle_dest import Destination, FailedBatch, Receipt
from mparticle_dest.testing import FakeMparticle, Fault, FaultPlan

CLOSE_TIMEOUT = 0.5
EVENTS = 12
ASYNCIO_LOOPS = [
    pytest.param(False, id="asyncio"),
    pytest.param(
        True,
        id="uvloop",
        marks=pytest.mark.skipif(
            find_spec("uvloop") is None,
            reason="uvloop is not installed (the test extra has it on CPython, not Windows)",
        ),
    ),
]


def run_bounded(main: Callable[[], Awaitable[None]], backend: str, uvloop: bool = False) -> None:
    """Run ``main`` on a fresh loop in a thread; fail (not hang) if it does not end."""
    errors: list[BaseException] = []

    def target() -> None:
        options = {"use_uvloop": uvloop} if backend == "asyncio" else {}
        try:
            anyio.run(main, backend=backend, backend_options=options)
        except BaseException as exc:  # reported by the test thread
            errors.append(exc)

    worker = threading.Thread(target=target, daemon=True)
    worker.start()
    worker.join(timeout=CLOSE_TIMEOUT + 20)
    assert not worker.is_alive(), "the cancelled close never ended"
    if errors:
        raise errors[0]


class Service:
    """A destination against a stalled server, with what a test checks afterwards."""

    def __init__(self, server: FakeMparticle) -> None:
        self.failed: list[FailedBatch] = []
        self.receipts: list[Receipt] = []
        self.dest = Destination(
            make_config(server, age=60_000),  # nothing leaves before the close
            base_url=server.url,
            close_timeout=CLOSE_TIMEOUT,
            request_timeout=600,  # the stall, not a timeout, holds the requests
            on_error=self.failed.append,
        )

    async def push_events(self) -> None:
        for n in range(EVENTS):
            self.receipts.append(await self.dest.push(event(f"u{n % 3}", n)))

    def assert_closed_and_reported(self) -> None:
        assert self.dest.closed
        assert len(self.receipts) == EVENTS
        for receipt in self.receipts:
            assert receipt.outcome is not None, "a receipt was never resolved"
            assert (receipt.outcome.status, receipt.outcome.reason) == ("failed", "closed")
        assert sum(f.event_count for f in self.failed) == EVENTS
        assert {f.reason for f in self.failed} == {"closed"}
        assert self.dest.stats.undelivered_at_close == EVENTS


async def wait_until_held(server: FakeMparticle) -> None:
    """Until the close's first request is held by the server: the drain is under way."""
    while server.held == 0:  # noqa: ASYNC110 - the server is a thread: no event to wait on
        await anyio.sleep(0.01)


@pytest.fixture
def server() -> Any:
    with FakeMparticle(faults=FaultPlan.always(Fault.stall())) as fake:
        yield fake


@pytest.mark.parametrize("uvloop", ASYNCIO_LOOPS)
@pytest.mark.parametrize("cancels", [1, 2], ids=["one-cancel", "two-cancels"])
def test_a_plain_asyncio_cancel_of_the_closing_task_ends_within_close_timeout(
    server: FakeMparticle, uvloop: bool, cancels: int
) -> None:
    service = Service(server)
    outcome: dict[str, Any] = {}

    async def body() -> None:
        async with service.dest:
            await service.push_events()

    async def main() -> None:
        task = asyncio.get_running_loop().create_task(body())
        await wait_until_held(server)
        for _ in range(cancels):  # a second cancel lands during the shielded drain
            task.cancel()
            await asyncio.sleep(0.05)
        with pytest.raises(asyncio.CancelledError):
            await task
        outcome["report"] = await service.dest.aclose()  # the close's own report

    run_bounded(main, "asyncio", uvloop)

    service.assert_closed_and_reported()
    report = outcome["report"]
    assert report.timed_out and report.undelivered == EVENTS and not report.ok


@pytest.mark.parametrize("uvloop", ASYNCIO_LOOPS)
def test_a_plain_asyncio_cancel_of_an_aclose_caller_ends_within_close_timeout(
    server: FakeMparticle, uvloop: bool
) -> None:
    service = Service(server)

    async def main() -> None:
        async with service.dest:
            await service.push_events()
            closer = asyncio.get_running_loop().create_task(service.dest.aclose())
            await wait_until_held(server)
            closer.cancel()
            with pytest.raises(asyncio.CancelledError):
                await closer
            assert (await service.dest.aclose()).undelivered == EVENTS

    run_bounded(main, "asyncio", uvloop)

    service.assert_closed_and_reported()


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_an_anyio_cancel_scope_cancelled_during_the_close_ends_within_close_timeout(
    server: FakeMparticle, backend: str
) -> None:
    service = Service(server)

    after_the_close: list[str] = []

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            with anyio.CancelScope() as scope:

                async def cancel_during_the_drain() -> None:
                    await wait_until_held(server)
                    scope.cancel()

                tg.start_soon(cancel_during_the_drain)
                async with service.dest:
                    await service.push_events()
                await anyio.lowlevel.checkpoint()  # the caller is still cancelled
                after_the_close.append("not cancelled")
        assert scope.cancelled_caught and not after_the_close

    run_bounded(main, backend)

    service.assert_closed_and_reported()


def test_the_close_goes_on_when_the_event_loop_is_torn_down_mid_close(
    server: FakeMparticle,
) -> None:
    # A second Ctrl-C under asyncio.run stops the loop and cancels every task, the close's
    # own task included: the receipts still resolve, on_error still hears of them.
    service = Service(server)

    async def main() -> None:
        async def body() -> None:
            async with service.dest:
                await service.push_events()

        task = asyncio.get_running_loop().create_task(body())
        await wait_until_held(server)
        for other in asyncio.all_tasks() - {asyncio.current_task()}:
            other.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    run_bounded(main, "asyncio")

    service.assert_closed_and_reported()
