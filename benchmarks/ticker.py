"""A 1 ms ticker task: how late the host's event loop runs its other tasks.

A host application shares its event loop with the library. The ticker sleeps 1 ms
at a time and records, at each wake, how much later than asked it woke: any code
that holds the loop (the library's or the host's own) shows as lateness. Phases are
marked with :meth:`Ticker.mark` so that each tick can be charged to the phase it
woke in. Garbage collections are timed too (``gc.callbacks``), because a long
collection is a stall no profiler of Python code shows.
"""

from __future__ import annotations

import gc
from time import perf_counter
from typing import Any

import anyio

PERIOD_S = 0.001


class Ticker:
    """Records ``(wake time, lateness)`` of every tick and the pause of every collection."""

    def __init__(self, period: float = PERIOD_S) -> None:
        self.period = period
        self.ticks: list[tuple[float, float]] = []
        self.marks: dict[str, float] = {}
        self.gc_pauses: list[tuple[int, float, float]] = []  # (generation, seconds, start)
        self._gc_start = 0.0

    async def run(self) -> None:
        """Tick until cancelled."""
        period = self.period
        ticks = self.ticks
        while True:
            t0 = perf_counter()
            await anyio.sleep(period)
            now = perf_counter()
            ticks.append((now, now - t0 - period))

    def mark(self, name: str) -> float:
        """Record the time ``name`` happened (``perf_counter``) and return it."""
        self.marks[name] = t = perf_counter()
        return t

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._gc_start = perf_counter()
        else:
            start = self._gc_start
            self.gc_pauses.append((info["generation"], perf_counter() - start, start))

    def __enter__(self) -> Ticker:
        gc.callbacks.append(self._on_gc)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self._on_gc)

    def lateness(self, start: str, end: str, *, grace: float = 0.0) -> dict[str, float]:
        """Worst, p99 and median lateness (ms) of the ticks that woke between two marks.

        Args:
            start: The mark opening the span.
            end: The mark closing it.
            grace: Seconds after ``end`` still charged to the span (a tick held by the
                span's last step wakes just after it).
        """
        t0, t1 = self.marks[start], self.marks[end] + grace
        late = sorted(lat for t, lat in self.ticks if t0 < t <= t1)
        if not late:
            return {"ticks": 0, "worst_ms": 0.0, "p99_ms": 0.0, "p50_ms": 0.0, "over_10ms": 0}
        return {
            "ticks": len(late),
            "worst_ms": late[-1] * 1e3,
            "p99_ms": late[min(len(late) - 1, int(0.99 * len(late)))] * 1e3,
            "p50_ms": late[len(late) // 2] * 1e3,
            "over_10ms": sum(1 for x in late if x > 0.010),
        }

    def gc_summary(self, since: str | None = None) -> dict[str, Any]:
        """Collections by generation, the longest pause (ms), and when each full
        collection started (seconds after the mark ``since``, if given)."""
        by_gen = [0, 0, 0]
        worst = [0.0, 0.0, 0.0]
        for gen, pause, _ in self.gc_pauses:
            by_gen[gen] += 1
            worst[gen] = max(worst[gen], pause * 1e3)
        t0 = self.marks[since] if since is not None else 0.0
        return {
            "collections": by_gen,
            "worst_pause_ms": worst,
            "total_s": sum(p for _, p, _ in self.gc_pauses),
            "full_at_s": [round(start - t0, 3) for gen, _, start in self.gc_pauses if gen == 2],
        }
