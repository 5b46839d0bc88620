"""Receipts of open batches: how they find their batch's outcome.

An open batch has no outcome object of its own (a service with many users holds one
open batch per user, and most receipts are dropped at once): its receipts hold a group
shared with the batches opened around it and their index in it. The outcome is made when
the batch is sealed, or earlier when one of its receipts is asked for it, and every
receipt of the batch, kept or asked at any time, must find that same outcome.
"""

from __future__ import annotations

import json
import random

import anyio
import pytest
from support.built import Built
from support.sealing import seal_all

from mparticle_dest._batching.accumulator import Accumulator, BatchLimits, SealedBatch
from mparticle_dest._payload.builder import BatchKey
from mparticle_dest._receipt import outcome_of, resolve_outcome
from mparticle_dest._wire import compact_key


def key(user: str) -> BatchKey:
    return BatchKey("production", (("customer_id", user),))


def event(user: str, event_id: str) -> Built:
    data = {"event_name": "e", "source_message_id": event_id}
    body = json.dumps({"event_type": "custom_event", "data": data}, separators=(",", ":"))
    return Built(key(user), body.encode(), event_id, event_id)


def ids(batch: SealedBatch) -> list[str]:
    return [e["data"]["source_message_id"] for e in json.loads(batch.body)["events"]]


def test_every_batch_of_a_group_resolves_its_own_receipts() -> None:
    # 300 users: batches opened one after the other share groups (64 per group); each
    # batch is resolved on its own, in a random order, and its receipts see only that.
    acc = Accumulator()
    receipts = {}
    for n in range(300):
        receipts[n] = [acc.add(event(f"u{n}", f"e{n}-{i}"), 0.0)[0] for i in range(n % 3 + 1)]
    batches = seal_all(acc)
    random.Random(7).shuffle(batches)
    for done, batch in enumerate(batches):
        user = int(ids(batch)[0].split("-")[0][1:])
        resolve_outcome(batch.outcome, "delivered", user + 1, 202)
        for rs in list(receipts.values())[:5]:  # others stay pending until their turn
            assert all(r.done() == (r.outcome is not None) for r in rs)
        for r in receipts[user]:
            outcome = r.outcome
            assert outcome is not None and outcome.attempts == user + 1
            assert outcome.event_id == r.event_id
            assert outcome_of(r) is batch.outcome
        assert sum(r.done() for rs in receipts.values() for r in rs) == sum(
            len(receipts[int(ids(b)[0].split("-")[0][1:])]) for b in batches[: done + 1]
        )


def test_a_receipt_asked_while_its_batch_is_open_shares_the_sealed_batchs_outcome() -> None:
    acc = Accumulator()
    first, _ = acc.add(event("u", "a"), 0.0)
    asked = outcome_of(first)  # the batch is open: its outcome is made now
    later, _ = acc.add(event("u", "b"), 0.1)
    (batch,) = seal_all(acc)
    assert batch.outcome is asked and outcome_of(later) is asked
    assert not first.done() and first.outcome is None and repr(later).endswith("pending>")


def test_the_next_batch_of_a_user_gets_a_new_outcome() -> None:
    acc = Accumulator(BatchLimits(size=2))
    r1, _ = acc.add(event("u", "a"), 0.0)
    r2, (b1,) = acc.add(event("u", "b"), 0.0)  # full: sealed
    r3, _ = acc.add(event("u", "c"), 0.0)  # its slot again, a new batch
    resolve_outcome(b1.outcome, "failed", 3)
    assert r1.outcome is not None and r1.outcome.status == "failed"
    assert r2.done() and not r3.done() and r3.outcome is None
    assert outcome_of(r3) is not b1.outcome


def test_the_open_batches_outcomes_are_those_their_receipts_and_seal_give() -> None:
    # What a flush waits for: resolving them resolves the receipts of the open batches.
    acc = Accumulator()
    kept = [acc.add(event(f"u{n}", f"e{n}"), 0.0)[0] for n in range(100)]
    outcomes = acc.outcomes()
    assert [outcome_of(r) for r in kept] == outcomes
    assert all(a is b for a, b in zip((outcome_of(r) for r in kept), outcomes, strict=True))
    resolve_outcome(outcomes[0], "delivered")
    assert kept[0].done() and not kept[1].done()
    sealed = acc.seal(compact_key(key("u1")))
    assert sealed.outcome is outcomes[1]


@pytest.mark.anyio
async def test_awaiting_a_receipt_of_an_open_batch_returns_once_it_is_resolved() -> None:
    acc = Accumulator()
    receipt, _ = acc.add(event("u", "a"), 0.0)
    got = []

    async def waiter() -> None:
        got.append(await receipt)

    async with anyio.create_task_group() as tg:
        tg.start_soon(waiter)
        await anyio.sleep(0.01)  # it waits on the open batch
        (batch,) = seal_all(acc)
        resolve_outcome(batch.outcome, "delivered", 1, 202)
    assert got[0].delivered and got[0].event_id == "a" and got[0].http_status == 202
