"""Pacer.acquire on a real event loop: it sleeps for the gate and honours a gate moved meanwhile."""

from __future__ import annotations

import anyio
import pytest

from mparticle_dest._delivery.pacing import Pacer, PacingPolicy

pytestmark = pytest.mark.anyio


async def test_acquire_returns_at_once_when_unpaced() -> None:
    pacer = Pacer()
    with anyio.fail_after(1):
        for _ in range(100):
            await pacer.acquire(100)


async def test_acquire_waits_for_a_gate_extended_while_sleeping() -> None:
    pacer = Pacer(PacingPolicy())
    pacer.on_response(429, {"retry-after": "0.1"})
    started = anyio.current_time()
    woke: list[float] = []

    async def waiter() -> None:
        await pacer.acquire(1)
        woke.append(anyio.current_time() - started)

    async with anyio.create_task_group() as tg:
        tg.start_soon(waiter)
        await anyio.sleep(0.05)
        # Another sender is throttled again while the first one sleeps.
        pacer.on_response(429, {"retry-after": "0.25"})
    assert woke[0] >= 0.3 - 0.02
