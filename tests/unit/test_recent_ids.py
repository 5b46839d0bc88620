"""The memory of recent ``source_request_id``s: the ids it gives, what it forgets, its size.

mParticle drops a batch whose ``source_request_id`` it has seen, so no two batches may
share one among the last ids recorded; the memory is an open-addressing table of
hashes, checked here against a plain model (a deque of the ids) with tables small enough
that every probe sequence collides and wraps around.
"""

from __future__ import annotations

import gc
import tracemalloc
from collections import deque

from hypothesis import given, settings
from hypothesis import strategies as st

from mparticle_dest._batching.recent_ids import RecentIds


class Model:
    """What the memory must do, with the ids themselves."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.ring: deque[str] = deque()
        self.suffixes: dict[str, int] = {}

    def choose(self, base: str) -> str:
        if base not in self.ring:
            return base
        suffix = self.suffixes.get(base, 2)
        while f"{base}-{suffix}" in self.ring:
            suffix += 1
        return f"{base}-{suffix}"

    def record(self, base: str, srid: str) -> None:
        if srid != base:
            self.suffixes[base] = int(srid.rpartition("-")[2]) + 1
        self.ring.append(srid)
        if len(self.ring) > self.capacity:
            self.suffixes.pop(self.ring.popleft(), None)


@settings(max_examples=300, deadline=None)
@given(
    capacity=st.integers(1, 9),
    bases=st.lists(st.sampled_from(["a", "b", "c", "d", "a-2", "a-3", "b-2", ""]), max_size=80),
)
def test_property_ids_are_unique_among_the_last_recorded_and_match_the_model(
    capacity: int, bases: list[str]
) -> None:
    memory, model = RecentIds(capacity), Model(capacity)
    recorded: list[str] = []
    for base in bases:
        srid = memory.choose(base)
        assert srid == model.choose(base)
        memory.record(base, srid)
        model.record(base, srid)
        recorded.append(srid)
        last = recorded[-capacity:]
        assert len(set(last)) == len(last)  # never shared within the memory's reach
        assert len(memory) == len(last)
        assert all(srid in memory for srid in last)
    # What it forgot is forgotten: everything older than the last `capacity` ids.
    for srid in set(recorded[:-capacity]) - set(recorded[-capacity:]):
        assert srid not in memory


def test_a_reused_base_takes_the_next_suffix_in_one_step() -> None:
    # A constant mapped id: each new batch takes the next suffix without trying the ones
    # before it (the base remembers its next suffix while the base itself is remembered).
    memory = RecentIds(1_000)
    got = []
    for _ in range(5):
        srid = memory.choose("req")
        memory.record("req", srid)
        got.append(srid)
    assert got == ["req", "req-2", "req-3", "req-4", "req-5"]


def test_the_memory_does_not_grow_with_the_ids_it_records() -> None:
    # Its table and ring are allocated whole: no object per id (a dict of hashes grew to
    # about 80 bytes per id remembered).
    memory = RecentIds(4_096)
    ids = [f"{n:016x}" for n in range(3 * 4_096)]
    gc.collect()
    tracemalloc.start()
    try:
        start, _ = tracemalloc.get_traced_memory()
        for srid in ids:
            memory.record(srid, memory.choose(srid))
        end, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert end - start < 1_024, end - start
    assert len(memory) == 4_096
