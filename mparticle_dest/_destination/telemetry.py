"""The destination's figures as its telemetry reads them (``_telemetry.Figures``)."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

from .._telemetry import StatsView
from .engine import Engine
from .stats import Counters

__all__ = ["EngineFigures"]


class EngineFigures:
    """Reads a destination's engine for its metrics, possibly from the metric reader's
    thread: it only reads, and copies the containers it iterates.

    Args:
        stats: The destination's ``stats`` getter.
        counters: Its counters.
        engine: Its engine.
        clock_offset: The engine clock minus ``time.monotonic()`` (the engine's clock
            may only be read on its event loop; this one can be read anywhere).
    """

    __slots__ = ("_clock_offset", "_counters", "_engine", "_stats")

    def __init__(
        self,
        stats: Callable[[], StatsView],
        counters: Counters,
        engine: Engine,
        clock_offset: float,
    ) -> None:
        self._stats = stats
        self._counters = counters
        self._engine = engine
        self._clock_offset = clock_offset

    def stats(self) -> StatsView:
        return self._stats()

    def failed_by_reason(self) -> Mapping[str, int]:
        return dict(self._counters.failed_by_reason)

    def buffered_bytes(self) -> int:
        open_bytes, _ = self._engine.acc.open_figures()
        return open_bytes + sum(len(b.body) for b in self._engine.held_batches())

    def oldest_buffered_age(self) -> float | None:
        _, oldest = self._engine.acc.open_figures()
        for batch in self._engine.held_batches():
            if oldest is None or batch.opened < oldest:
                oldest = batch.opened
        if oldest is None:
            return None
        return max(time.monotonic() + self._clock_offset - oldest, 0.0)
