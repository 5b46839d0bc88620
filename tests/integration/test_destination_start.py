"""The explicit lifecycle: ``await dest.start()`` in one task, ``await dest.aclose()`` in another.

Start-up and shutdown hooks (aiohttp's ``on_startup``/``on_cleanup``, say) run in
different tasks, each with cancel scopes of its own; a destination entered by hand
with ``__aenter__`` left its task group in the start-up task, and the hook's own scope
then failed to exit. ``start()`` binds nothing to the calling task (asyncio only).
"""

from __future__ import annotations

import asyncio
import types
from typing import Any

import anyio
import pytest
from support.engine import event, make_config

import mparticle_dest._destination.engine
from mparticle_dest import Destination, DestinationClosedError
from mparticle_dest.testing import FakeMparticle

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_start_and_aclose_in_different_tasks_deliver_everything() -> None:
    async with FakeMparticle() as server:
        dest = Destination(make_config(server, age=60_000), base_url=server.url)
        loop = asyncio.get_running_loop()

        async def on_startup() -> None:
            with anyio.CancelScope():  # the hook's own scope exits after start()
                assert await dest.start() is dest

        async def handle_request(n: int) -> None:
            await dest.push(event("u1", n))

        await loop.create_task(on_startup())  # this task has ended when the next ones run
        for n in range(5):
            await loop.create_task(handle_request(n))
        assert server.event_count == 0  # buffered until the close
        report = await loop.create_task(dest.aclose())  # on_cleanup

    assert report.ok and report.delivered == 5
    assert dest.closed
    assert [e.source_message_id for e in server.events] == [f"u1-{n:05d}" for n in range(5)]


async def test_a_started_destination_delivers_in_the_background_and_flushes() -> None:
    async with FakeMparticle() as server:
        dest = await Destination(make_config(server, age=10), base_url=server.url).start()
        receipt = await dest.push(event("u1", 1))
        assert (await receipt).delivered  # the engine runs without anyone awaiting it
        await dest.push(event("u2", 1))
        await dest.flush()
        assert server.event_count == 2
        assert (await dest.aclose()).delivered == 2


async def test_open_twice_or_reopen_after_close_is_refused_precisely() -> None:
    async with FakeMparticle() as server:
        dest = Destination(make_config(server), base_url=server.url)
        await dest.start()
        with pytest.raises(RuntimeError, match="already open"):
            await dest.start()
        with pytest.raises(RuntimeError, match="already open"):
            async with dest:
                pass
        await dest.push(event("u1", 1))  # still open and working
        await dest.aclose()
        with pytest.raises(DestinationClosedError, match="opened only once"):
            await dest.start()

        entered = Destination(make_config(server), base_url=server.url)
        async with entered:
            with pytest.raises(RuntimeError, match="already open"):
                await entered.start()
        with pytest.raises(DestinationClosedError, match="create a new one"):
            await entered.start()
        assert server.event_count == 1


async def test_a_plain_cancel_while_start_waits_for_the_engine_leaves_nothing_running() -> None:
    async with FakeMparticle() as server:
        dest = Destination(make_config(server), base_url=server.url)
        real_run = dest._engine.run
        engine_entered = asyncio.Event()

        async def slow_to_start(*, task_status: Any) -> None:
            engine_entered.set()
            await asyncio.sleep(0.05)  # the caller is cancelled meanwhile
            await real_run(task_status=task_status)

        dest._engine.run = slow_to_start  # type: ignore[method-assign]
        before = asyncio.all_tasks()
        starter = asyncio.get_running_loop().create_task(dest.start())
        await engine_entered.wait()
        starter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await starter
        for _ in range(100):  # loop iterations, not time: the engine task ends at once
            if asyncio.all_tasks() == before:
                break
            await asyncio.sleep(0)
        assert asyncio.all_tasks() == before  # the engine task is gone
        assert dest.closed
        with pytest.raises(DestinationClosedError):
            await dest.push(event("u1", 1))
        assert (await dest.aclose()).ok


async def test_an_engine_that_fails_to_start_makes_start_raise(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def no_task_group() -> Any:
        raise RuntimeError("injected: no task group")

    broken_anyio = types.SimpleNamespace(**vars(anyio))
    broken_anyio.create_task_group = no_task_group
    monkeypatch.setattr(mparticle_dest._destination.engine, "anyio", broken_anyio)
    dest = Destination(make_config(None))

    with pytest.raises(DestinationClosedError, match="internal error"):
        await dest.start()

    assert dest.closed
    assert any("delivery engine stopped" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("anyio_backend", ["trio"])
async def test_start_under_trio_says_to_use_async_with_and_leaves_it_usable() -> None:
    async with FakeMparticle() as server:
        dest = Destination(make_config(server, age=10), base_url=server.url)
        with pytest.raises(RuntimeError, match=r"asyncio.*async with Destination"):
            await dest.start()
        assert not dest.closed
        async with dest:
            await dest.push(event("u1", 1))
        assert server.event_count == 1
