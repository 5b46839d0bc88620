"""Scheduler: what leaves in each request and when; pure, driven with plain-float clocks."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support.built import Built

from mparticle_dest._batching import Accumulator, BatchLimits, Scheduler, SealedBatch
from mparticle_dest._mparticle.constants import MAX_BATCH_BYTES, MAX_REQUEST_BYTES
from mparticle_dest._payload.builder import BatchKey

_KEYS: dict[str, BatchKey] = {}


def key(user: str) -> BatchKey:
    if user not in _KEYS:
        _KEYS[user] = BatchKey("production", (("customer_id", user),))
    return _KEYS[user]


def push(acc: Accumulator, sched: Scheduler, user: str, n: int, now: float, pad: int = 0) -> None:
    body = json.dumps({"id": f"{user}-{n}", "pad": "p" * pad}, separators=(",", ":")).encode()
    _, sealed = acc.add(Built(key(user), body, f"{user}-{n}", f"{user}-{n}"), now)
    for batch in sealed:
        sched.add_sealed(batch)


def ids(batch: SealedBatch) -> list[str]:
    return [e["id"] for e in json.loads(batch.body)["events"]]


def users(batches: list[SealedBatch]) -> list[str]:
    return [json.loads(b.body)["user_identities"]["customer_id"] for b in batches]


def make(age: float = 1.0, **kw: Any) -> tuple[Accumulator, Scheduler]:
    acc = Accumulator(BatchLimits(age=age))
    return acc, Scheduler(acc, **kw)


def test_nothing_leaves_before_it_is_eligible() -> None:
    acc, sched = make(age=1.0)
    push(acc, sched, "u1", 0, 0.0)
    assert sched.ready_at(0.5) is None
    assert sched.take(0.5) == []  # a request never carries a batch that is not due
    acc.due(1.0)
    assert sched.ready_at(1.0) == 1.0 + sched.linger


def test_an_eligible_batch_keeps_growing_until_it_is_taken() -> None:
    acc, sched = make(age=1.0)
    push(acc, sched, "u1", 0, 0.0)
    acc.due(1.0)
    for n in range(1, 5):
        push(acc, sched, "u1", n, 1.01)
    (batch,) = sched.take(1.1)
    assert ids(batch) == [f"u1-{n}" for n in range(5)]
    assert batch.eligible_at == 1.0


def test_a_request_leaves_when_full_or_after_the_linger() -> None:
    acc, sched = make(age=0.0, max_batches=3, linger=0.05)
    push(acc, sched, "a", 0, 10.0)
    push(acc, sched, "b", 0, 10.0)
    assert sched.ready_at(10.0) == 10.05  # two of three: waits a little for more
    push(acc, sched, "c", 0, 10.01)
    assert sched.ready_at(10.01) == 10.01  # full: at once
    assert len(sched.take(10.01)) == 3
    push(acc, sched, "d", 0, 10.02)
    sched.urgent += 1  # a flush is waiting: no linger
    assert sched.ready_at(10.02) == 10.02


def test_a_request_full_by_bytes_does_not_linger() -> None:
    acc, sched = make(age=0.0)
    for user in "abc":
        push(acc, sched, user, 0, 0.0, pad=MAX_BATCH_BYTES - 200)
    assert sched.ready_at(0.0) == 0.0


def test_a_request_holds_at_most_max_batches_and_256_kb() -> None:
    acc, sched = make(age=0.0)
    for u in range(150):
        push(acc, sched, f"u{u}", 0, 0.0, pad=4000)
    sizes = []
    while batches := sched.take(0.0):
        body = b"[" + b",".join(b.body for b in batches) + b"]"
        assert len(batches) <= 100 and len(body) <= MAX_REQUEST_BYTES
        sizes.append(len(batches))
        sched.release(batches)
    assert sum(sizes) == 150 and len(sizes) == math.ceil(150 * 4100 / MAX_REQUEST_BYTES)


def test_a_key_in_flight_is_muted_and_its_next_batch_waits_in_order() -> None:
    acc, sched = make(age=0.0)
    push(acc, sched, "u1", 0, 0.0)
    (first,) = sched.take(0.0)
    push(acc, sched, "u1", 1, 0.1)  # eligible at once (age 0), but u1 is in flight
    push(acc, sched, "u1", 2, 0.1)
    assert sched.ready_at(0.1) is None and sched.take(0.1) == []
    sched.release([first])
    (second,) = sched.take(0.2)
    assert ids(second) == ["u1-1", "u1-2"]


def test_a_throttled_batch_goes_back_to_the_front_ahead_of_its_users_next_batch() -> None:
    acc, sched = make(age=0.0, max_batches=2)
    for user in ("a", "b", "c"):
        push(acc, sched, user, 0, 0.0)
    taken = sched.take(0.0)
    assert users(taken) == ["a", "b"]
    push(acc, sched, "a", 1, 0.1)  # a's next batch, while the first is in flight
    sched.release(taken, throttled=taken)  # 429: "not yet"
    again = sched.take(0.2)
    assert [ids(b) for b in again] == [["a-0"], ["b-0"]]  # the same bytes, first in line
    assert again[0] is taken[0]
    sched.release(again)
    assert [ids(b) for b in sched.take(0.3)] == [["c-0"], ["a-1"]]


def test_when_the_quota_binds_the_fullest_batches_go_first_but_overdue_ones_before_them() -> None:
    acc, sched = make(age=1.0, max_batches=2, max_delay=5.0)
    push(acc, sched, "light", 0, 0.0)
    for u in range(200):
        for n in range(1 + u % 7):
            push(acc, sched, f"u{u}", n, 0.5)
    acc.due(1.6)  # everybody eligible: 201 batches for requests of 2
    assert {len(ids(b)) for b in sched.take(1.6)} == {7}  # most events per quota token
    acc.due(7.0)
    first = sched.take(7.0)
    assert users(first)[0] == "light"  # eligible for ≥ max_delay: goes first regardless


def test_during_a_flush_batches_leave_in_the_order_they_became_eligible() -> None:
    # Every batch goes anyway: no ranking work per request, oldest first.
    acc, sched = make(age=1.0, max_batches=2)
    for u in range(200):
        for n in range(1 + u % 7):
            push(acc, sched, f"u{u}", n, 0.5)
    acc.due(1.6)
    sched.urgent += 1
    taken = [users(sched.take(1.6)) for _ in range(3)]
    assert taken == [["u0", "u1"], ["u2", "u3"], ["u4", "u5"]]


def test_without_a_known_quota_batches_leave_in_the_order_they_became_eligible() -> None:
    # No quota token to save: no ranking work per request (at many users a read of
    # SCAN counts in a large table), oldest first; the fullest first once a quota is known.
    known = False
    acc, sched = make(age=1.0, max_batches=2, quota_known=lambda: known)
    for u in range(200):
        for n in range(1 + u % 7):
            push(acc, sched, f"u{u}", n, 0.5)
    acc.due(1.6)
    taken = [users(sched.take(1.6)) for _ in range(2)]
    assert taken == [["u0", "u1"], ["u2", "u3"]]
    known = True
    assert {len(ids(b)) for b in sched.take(1.6)} == {7}


def test_many_requests_keep_the_eligibility_order_and_the_shared_table() -> None:
    # Keys leave the eligible table from its front; it is rebuilt now and then (the
    # holes a dict keeps there), in place: the accumulator shares it.
    acc, sched = make(age=1.0, max_batches=100)
    table = acc.eligible
    for u in range(20_000):
        push(acc, sched, f"u{u}", 0, u * 1e-5)
    acc.due(2.0)
    taken: list[str] = []
    sched.urgent += 1
    while batch := sched.take(2.0):
        taken += users(batch)
        assert acc.eligible is table
    assert taken == [f"u{u}" for u in range(20_000)]


def test_drain_returns_everything_not_taken_in_seal_order() -> None:
    acc, sched = make(age=0.0, max_batches=1)
    push(acc, sched, "a", 0, 0.0)
    push(acc, sched, "b", 0, 0.0)
    (taken,) = sched.take(0.0)
    sched.release([taken], throttled=[taken])
    push(acc, sched, "c", 0, 0.0)
    out = sched.drain()
    assert [ids(b) for b in out] == [["a-0"], ["b-0"], ["c-0"]]
    assert sched.ready_at(1.0) is None and acc.open_batches == 0


# -- property: no loss, no duplication, one request per key, order, limits --------------------

_op = st.one_of(
    st.tuples(st.just("push"), st.integers(0, 5), st.integers(0, 30_000)),
    st.tuples(st.just("tick"), st.floats(0.0, 0.5), st.just(0)),
    st.tuples(st.just("take"), st.integers(1, 4), st.just(0)),
    st.tuples(st.just("answer"), st.booleans(), st.just(0)),
)


@settings(max_examples=150, deadline=None)
@given(ops=st.lists(_op, max_size=80), max_batches=st.integers(1, 4))
def test_property_every_event_leaves_once_in_order_within_limits(
    ops: list[tuple[str, Any, int]], max_batches: int
) -> None:
    acc, sched = make(age=0.2, max_batches=max_batches, max_bytes=80_000)
    now = 0.0
    counter = 0
    pushed: dict[str, list[str]] = {}
    in_flight: list[list[SealedBatch]] = []
    delivered: dict[str, list[str]] = {}
    for op, a, b in ops:
        if op == "push":
            user = f"u{a}"
            push(acc, sched, user, counter, now, pad=b)
            pushed.setdefault(user, []).append(f"{user}-{counter}")
            counter += 1
        elif op == "tick":
            now += a
            acc.due(now)
        elif op == "take":
            batches = sched.take(now, a)
            assert len(batches) <= min(a, max_batches)
            assert len(set(users(batches))) == len(batches)  # one batch per key per request
            flying = {u for req in in_flight for u in users(req)}
            assert not flying & set(users(batches))  # never two requests for one key
            if batches:
                assert sum(len(x.body) for x in batches) + len(batches) + 1 <= 80_000 or (
                    len(batches) == 1
                )
                in_flight.append(batches)
        elif in_flight:
            batches = in_flight.pop(0)
            if a:  # delivered
                for batch in batches:
                    delivered.setdefault(users([batch])[0], []).extend(ids(batch))
                sched.release(batches)
            else:  # 429: back in line
                sched.release(batches, throttled=batches)
    # Close: everything left, in flight or not, goes in seal order per key.
    for batches in in_flight:
        for batch in batches:
            delivered.setdefault(users([batch])[0], []).extend(ids(batch))
        sched.release(batches)
    for batch in sched.drain():
        delivered.setdefault(users([batch])[0], []).extend(ids(batch))
    assert {u: v for u, v in delivered.items() if v} == pushed


# -- under a declared quota, young batches are held back -------------------------------------
# max_batches 2: more than 2 + 32 eligible batches means the quota binds.
_MANY = 40


def binding(rate: float | None = 10.0, **kw: Any) -> tuple[Accumulator, Scheduler]:
    """``_MANY`` users, each with one event opened at 0 and eligible at 1 (age 1 s)."""
    acc, sched = make(age=1.0, max_batches=2, max_delay=30.0, quota_rate=lambda: rate, **kw)
    for u in range(_MANY):
        push(acc, sched, f"u{u}", 0, 0.0)
    acc.due(1.0)
    return acc, sched


def test_under_a_declared_binding_quota_a_batch_is_held_until_it_is_part_of_a_cycle_old() -> None:
    acc, sched = binding(rate=10.0)
    # A cycle: 40 eligible batches at 10 per second = 4 s; held below 3/4 of it.
    assert sched.hold() == 0.75 * _MANY / 10.0 == 3.0
    assert sched.take(2.0) == []  # opened 2 s ago: too young to spend a token on
    assert sched.ready_at(2.0) == 3.0 + sched.linger  # when the oldest is old enough
    push(acc, sched, "late", 0, 2.5)  # opened later: not old enough at 3.1 s
    acc.due(3.5)
    assert sched.hold() == pytest.approx(0.75 * (_MANY + 1) / 10.0)  # 3.075 s
    taken = sched.take(3.1)
    assert len(taken) == 2 and "late" not in users(taken)
    assert sched.ready_at(3.1) == 3.1  # the others are old enough too: no linger


def test_nothing_is_held_without_a_declared_quota_or_when_the_quota_does_not_bind() -> None:
    _, sched = binding(rate=None)  # rate unknown
    assert sched.hold() == 0.0 and len(sched.take(1.0)) == 2
    acc, sched = make(age=1.0, max_batches=2, quota_rate=lambda: 10.0)
    for u in range(5):  # fewer eligible batches than a request and its skips
        push(acc, sched, f"u{u}", 0, 0.0)
    acc.due(1.0)
    assert sched.hold() == 0.0 and len(sched.take(1.0)) == 2


def test_the_hold_is_at_most_max_delay_and_lifts_for_a_flush_or_a_filling_buffer() -> None:
    _, sched = binding(rate=1.0)  # a 40 s cycle
    assert sched.hold() == sched.max_delay == 30.0
    sched.urgent += 1  # a flush (or the close) is waiting: everything goes
    assert sched.hold() == 0.0 and len(sched.take(1.0)) == 2
    sched.urgent -= 1
    # 40 events in open batches (38 after the take): at 3/4 of a 50-event cap, room matters more.
    _, full = binding(rate=1.0, max_events=50)
    assert full.hold() == 0.0
    _, roomy = binding(rate=1.0, max_events=54)
    assert roomy.hold() == 30.0


def test_a_batch_sealed_by_its_size_is_never_held() -> None:
    acc = Accumulator(BatchLimits(age=1.0, size=3))
    sched = Scheduler(acc, max_batches=2, max_delay=30.0, quota_rate=lambda: 10.0)
    for u in range(_MANY):
        push(acc, sched, f"u{u}", 0, 0.0)
    for n in range(3):  # full at 3 events: sealed and eligible at once
        push(acc, sched, "busy", n, 0.5)
    acc.due(1.0)
    assert sched.hold() > 0.0
    assert sched.ready_at(1.0) == 1.0  # eligible since 0.5: it has lingered enough
    assert users(sched.take(1.0)) == ["busy"]  # the only batch worth a token yet
