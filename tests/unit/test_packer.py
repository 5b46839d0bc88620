"""Packer: requests of ≤ 100 batches and ≤ 256 KB, one batch per key in flight, FIFO per key."""

from __future__ import annotations

import json
import random
from collections.abc import Hashable

from hypothesis import given, settings
from hypothesis import strategies as st

from mparticle_dest._batching.accumulator import SealedBatch
from mparticle_dest._batching.packer import Packer
from mparticle_dest._mparticle.constants import MAX_BATCH_BYTES, MAX_REQUEST_BYTES
from mparticle_dest._wire import encode_bulk

_seq = iter(range(10**9))


def batch(key: str, size: int = 100, events: int = 1) -> SealedBatch:
    """A sealed batch whose JSON body is exactly ``size`` bytes."""
    filler = "x" * (size - len(json.dumps({"k": key, "f": ""}, separators=(",", ":"))))
    body = json.dumps({"k": key, "f": filler}, separators=(",", ":")).encode()
    assert len(body) == size
    return SealedBatch(
        key=key, body=body, event_count=events, source_request_id=f"{key}-sr", seq=next(_seq)
    )


def test_a_request_holds_at_most_100_batches() -> None:
    packer = Packer()
    for i in range(250):
        packer.add(batch(f"u{i}"))
    sizes = []
    while packer.has_ready():
        sizes.append(len(packer.next_request()))
    assert sizes == [100, 100, 50]


def test_a_request_body_stays_within_256_kb() -> None:
    packer = Packer()
    for i in range(10):
        packer.add(batch(f"u{i}", size=60_000))
    requests = []
    while packer.has_ready():
        taken = packer.next_request()
        requests.append(taken)
        assert len(encode_bulk([b.body for b in taken])) <= MAX_REQUEST_BYTES
    assert [len(r) for r in requests] == [4, 4, 2]


def test_two_full_size_batches_share_a_request() -> None:
    # 2 x 128 KB batches + brackets and comma exceed 256 KB by 3 bytes: they must be split.
    packer = Packer()
    packer.add(batch("a", size=MAX_BATCH_BYTES))
    packer.add(batch("b", size=MAX_BATCH_BYTES))
    assert len(packer.next_request()) == 1
    assert len(packer.next_request()) == 1


def test_a_batch_that_does_not_fit_keeps_its_place_for_the_next_request() -> None:
    packer = Packer()
    first, big, small = batch("a", 200_000), batch("b", 100_000), batch("c", 1_000)
    for b in (first, big, small):
        packer.add(b)
    assert packer.next_request() == [first, small]
    assert packer.next_request() == [big]


def test_a_key_in_flight_is_muted_until_released() -> None:
    packer = Packer()
    a1, a2, b1 = batch("a"), batch("a"), batch("b")
    for b in (a1, a2, b1):
        packer.add(b)
    assert packer.next_request() == [a1, b1]
    assert packer.next_request() == []  # a2 waits behind the in-flight a1
    packer.release([b1])
    assert packer.next_request() == []
    packer.release([a1])
    assert packer.next_request() == [a2]


def test_a_batch_added_while_its_key_is_in_flight_waits() -> None:
    packer = Packer()
    a1 = batch("a")
    packer.add(a1)
    assert packer.next_request() == [a1]
    a2 = batch("a")
    packer.add(a2)
    assert not packer.has_ready()
    assert packer.queued_batches == 1
    packer.release([a1])
    assert packer.next_request() == [a2]


def test_counts_and_drain() -> None:
    packer = Packer()
    a1, a2, b1 = batch("a", events=3), batch("a", events=2), batch("b", events=5)
    for b in (a1, a2, b1):
        packer.add(b)
    assert (packer.queued_batches, packer.queued_events) == (3, 10)
    assert packer.next_request() == [a1, b1]
    assert (packer.queued_batches, packer.queued_events) == (1, 2)
    assert packer.drain() == [a2]
    assert (packer.queued_batches, packer.queued_events) == (0, 0)
    packer.release([a1, b1])
    assert packer.next_request() == []


@settings(max_examples=60, deadline=None)
@given(
    specs=st.lists(
        st.tuples(st.integers(0, 6), st.integers(50, MAX_BATCH_BYTES)), min_size=1, max_size=60
    ),
    release_order=st.randoms(use_true_random=False),
    max_batches=st.integers(1, 5),
)
def test_every_batch_leaves_once_in_key_order_within_limits(
    specs: list[tuple[int, int]], release_order: random.Random, max_batches: int
) -> None:
    rng = release_order
    packer = Packer(max_batches=max_batches)
    added = [batch(f"k{key}", size) for key, size in specs]
    for b in added:
        packer.add(b)
    sent: list[SealedBatch] = []
    in_flight: list[list[SealedBatch]] = []
    while packer.has_ready() or in_flight:
        if packer.has_ready() and (not in_flight or rng.random() < 0.6):
            taken = packer.next_request()
            assert 1 <= len(taken) <= max_batches
            assert len({b.key for b in taken}) == len(taken)
            flying = {b.key for r in in_flight for b in r}
            assert not flying & {b.key for b in taken}
            assert len(taken) == 1 or len(encode_bulk([b.body for b in taken])) <= MAX_REQUEST_BYTES
            in_flight.append(taken)
            sent.extend(taken)
        else:
            packer.release(in_flight.pop(rng.randrange(len(in_flight))))
    assert sorted(b.seq for b in sent) == sorted(b.seq for b in added)
    for key in {b.key for b in added}:
        seqs = [b.seq for b in sent if b.key == key]
        assert seqs == sorted(seqs)


class ModelPacker:
    """The packing rule written plainly (a list of ready keys, scanned in order)."""

    def __init__(self, max_batches: int, max_bytes: int) -> None:
        self.max_batches, self.max_bytes = max_batches, max_bytes
        self.ready: list[Hashable] = []
        self.queues: dict[Hashable, list[SealedBatch]] = {}
        self.muted: set[Hashable] = set()

    def add(self, b: SealedBatch) -> None:
        self.queues.setdefault(b.key, []).append(b)
        if b.key not in self.muted and b.key not in self.ready:
            self.ready.append(b.key)

    def next_request(self) -> list[SealedBatch]:
        taken: list[Hashable] = []
        total = skips = 0
        for key in self.ready:
            size = len(self.queues[key][0].body)
            if taken and 2 + total + size + len(taken) > self.max_bytes:
                skips += 1
                if skips >= 32:
                    break
                continue
            skips = 0
            taken.append(key)
            total += size
            if len(taken) >= self.max_batches:
                break
        self.ready = [k for k in self.ready if k not in taken]
        self.muted.update(taken)
        return [self.queues[k].pop(0) for k in taken]

    def release(self, batches: list[SealedBatch]) -> None:
        for b in batches:
            self.muted.discard(b.key)
            if self.queues[b.key]:
                self.ready.append(b.key)


_sizes = st.one_of(st.sampled_from([50, 20_000, 35_000, 60_000]), st.integers(50, 60_000))


@settings(max_examples=150, deadline=None)
@given(
    rounds=st.lists(
        st.tuples(
            st.lists(st.tuples(st.integers(0, 40), _sizes), max_size=12),  # batches added
            st.integers(0, 3),  # requests taken
            st.integers(-1, 10**6),  # which request in flight finishes (-1: none)
        ),
        max_size=15,
    ),
    max_batches=st.integers(1, 8),
    max_bytes=st.sampled_from([MAX_REQUEST_BYTES, 150_000, 70_000]),
)
def test_packer_matches_the_plain_model(
    rounds: list[tuple[list[tuple[int, int]], int, int]], max_batches: int, max_bytes: int
) -> None:
    # Many keys and tight byte limits: requests pass over batches (up to 32 in a row).
    packer = Packer(max_batches=max_batches, max_bytes=max_bytes)
    model = ModelPacker(max_batches, max_bytes)
    in_flight: list[list[SealedBatch]] = []
    for added, takes, finish in rounds:
        for k, size in added:
            b = batch(f"k{k}", size, events=1 + k % 3)
            packer.add(b)
            model.add(b)
        for _ in range(takes):
            got = packer.next_request()
            assert [b.seq for b in got] == [b.seq for b in model.next_request()]
            if got:
                in_flight.append(got)
        if finish >= 0 and in_flight:
            done = in_flight.pop(finish % len(in_flight))
            packer.release(done)
            model.release(done)
        queued = [b for q in model.queues.values() for b in q]
        assert packer.queued_batches == len(queued)
        assert packer.queued_events == sum(b.event_count for b in queued)
        assert packer.has_ready() == bool(model.ready)


def test_a_passed_over_batch_goes_first_in_the_next_request() -> None:
    packer = Packer(max_batches=2, max_bytes=70_000)
    a, b, c, d = batch("a", 40_000), batch("b", 35_000), batch("c", 10_000), batch("d", 30_000)
    for x in (a, b, c, d):
        packer.add(x)
    assert packer.next_request() == [a, c]  # b does not fit after a: passed over
    assert packer.next_request() == [b, d]  # ...and keeps its place ahead of d
