"""Packer: requests of ≤ 100 batches and ≤ 256 KB, one batch per key in flight, FIFO per key."""

from __future__ import annotations

import json
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from mparticle_dest._accumulator import SealedBatch
from mparticle_dest._constants import MAX_BATCH_BYTES, MAX_REQUEST_BYTES
from mparticle_dest._packer import Packer
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
