"""The clock push stamps batches with is the event loop's own (deadlines the flusher honours)."""

from __future__ import annotations

import asyncio
import time

import anyio
from support.engine import event, make_config

from mparticle_dest._destination.destination import Destination, _loop_probe
from mparticle_dest.testing import FakeMparticle


class _ShiftedLoop(asyncio.SelectorEventLoop):
    """A loop whose clock is not time.monotonic() (as a third-party loop's may not be)."""

    def time(self) -> float:
        return time.monotonic() - 1_000.0


def _run(loop: asyncio.AbstractEventLoop, main: object) -> object:
    try:
        return loop.run_until_complete(main)  # type: ignore[arg-type]
    finally:
        loop.close()


def test_the_stock_loop_clock_is_read_directly() -> None:
    async def main() -> tuple[object, float, float]:
        _, clock = _loop_probe()
        return clock, clock(), anyio.current_time()

    clock, ours, anyio_now = _run(asyncio.new_event_loop(), main())  # type: ignore[misc]
    assert clock is time.monotonic
    assert abs(ours - anyio_now) < 1.0


def test_a_loop_with_its_own_clock_keeps_it_and_batches_age_on_it() -> None:
    async def main() -> tuple[float, float, int, bool]:
        _, clock = _loop_probe()
        ours, anyio_now = clock(), anyio.current_time()
        async with FakeMparticle() as server:
            config = make_config(server, age=50)  # 50 ms: flushed by age, not by close
            async with Destination(config, base_url=server.url) as dest:
                receipt = await dest.push(event("u1", 1))
                with anyio.fail_after(5):
                    outcome = await receipt
                delivered_before_close = outcome.delivered
            return ours, anyio_now, server.event_count, delivered_before_close

    ours, anyio_now, received, delivered = _run(_ShiftedLoop(), main())  # type: ignore[misc]
    assert abs(ours - anyio_now) < 1.0  # the loop's clock, not time.monotonic()
    assert delivered and received == 1
