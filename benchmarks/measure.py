"""Measurement primitives: process CPU, resident memory, latency percentiles."""

from __future__ import annotations

import os
import resource
import time
from dataclasses import dataclass

_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


def rss_bytes() -> int:
    """The process's current resident set size (``/proc/self/statm``)."""
    with open("/proc/self/statm", "rb") as f:
        return int(f.read().split()[1]) * _PAGE_SIZE


def peak_rss_bytes() -> int:
    """The process's peak resident set size so far (``ru_maxrss`` is in KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


@dataclass
class Clock:
    """Wall and client-process CPU time (user + system) between :meth:`start` and :meth:`stop`."""

    wall_s: float = 0.0
    cpu_s: float = 0.0
    _wall0: float = 0.0
    _cpu0: float = 0.0

    def start(self) -> None:
        self._wall0 = time.perf_counter()
        self._cpu0 = time.process_time()

    def stop(self) -> None:
        self.cpu_s = time.process_time() - self._cpu0
        self.wall_s = time.perf_counter() - self._wall0


def percentiles_us(samples_ns: list[int], warmup_fraction: float = 0.05) -> dict[str, float]:
    """p50 / p99 / max in microseconds of ``samples_ns`` after dropping the warm-up prefix."""
    steady = sorted(samples_ns[int(len(samples_ns) * warmup_fraction) :])
    if not steady:
        return {"p50": 0.0, "p99": 0.0, "max": 0.0}

    def rank(q: float) -> float:
        return steady[min(len(steady) - 1, int(q * len(steady)))] / 1000

    return {"p50": rank(0.50), "p99": rank(0.99), "max": steady[-1] / 1000}
