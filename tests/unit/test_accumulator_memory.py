"""Accumulator: what an open batch costs in memory, and the ids it keeps to stay unique.

A service with many distinct users holds about one open batch per user, often of one
event, for seconds: the bytes an open batch costs beside its events' JSON decide how
much memory the buffer takes (#13).
"""

from __future__ import annotations

import gc
import json
import sys
import tracemalloc
from typing import Any

import pytest
from support.built import Built
from support.sealing import seal_all

from mparticle_dest._batching import accumulator as accumulator_module
from mparticle_dest._batching.accumulator import Accumulator, BatchLimits
from mparticle_dest._payload.builder import BatchKey

#: Bytes an open one-event batch may cost beside its event's JSON (measured with Python 3.11:
#: 247; 412 while each open batch had its own outcome dict, the id memory was a dict of
#: hashes, and the size limit, age deadline and debounce were columns; 490 before the id
#: memory kept hashes and batches stopped copying their id).
PER_BATCH_BOUND = 280


def ev(user: str, eid: str, *, ascii_only: bool = True, attr: str = "x") -> Built:
    """An event of ``user`` whose JSON ends with its id, as the builders write it, after
    a custom attribute named like the id's field."""
    data: dict[str, Any] = {
        "event_name": "e",
        "custom_attributes": {"source_message_id": attr},
        "source_message_id": eid,
    }
    body = json.dumps(
        {"event_type": "custom_event", "data": data},
        separators=(",", ":"),
        ensure_ascii=ascii_only,
    ).encode()
    return Built(BatchKey("production", (("customer_id", user),)), body, eid, eid)


def _built(n: int) -> Built:
    """The n-th user's event, as the builder makes it (fresh objects per push)."""
    body = json.dumps(
        {
            "event_type": "custom_event",
            "data": {
                "event_name": "product view",
                "custom_event_type": "other",
                "custom_attributes": {"product_id": f"SKU-{n % 97:05d}", "price": 12.5},
                "timestamp_unixtime_ms": 1_700_000_000_000 + n,
                "source_message_id": f"{n:016x}",
            },
        },
        separators=(",", ":"),
    ).encode()
    eid = f"{n:016x}"
    identities = (("customer_id", f"user-{n:06d}"), ("email", f"user{n}@example.com"))
    return Built(BatchKey("production", identities), body, eid, eid)


def test_an_open_one_event_batch_costs_less_than_the_bound_beside_its_event() -> None:
    users = 20_000
    acc = Accumulator(BatchLimits(age=60.0))
    acc.add(_built(users), 0.0)  # the tables' first allocations
    gc.collect()
    tracemalloc.start()
    try:
        start, _ = tracemalloc.get_traced_memory()
        event_bytes = 0
        for n in range(users):
            built = _built(n)  # made and dropped per push, as a service does
            event_bytes += sys.getsizeof(built.body)
            acc.add(built, 0.0)  # the receipt is dropped
        del built
        gc.collect()
        end, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert acc.open_batches == users + 1
    per_batch = (end - start - event_bytes) / users
    assert per_batch < PER_BATCH_BOUND, per_batch


def test_a_batch_takes_its_first_events_id_whatever_the_id_or_the_event_holds() -> None:
    # Most batches keep no copy of their id: it is read back from the first event's JSON
    # when they are sealed. Ids that JSON escapes, ids in UTF-8, and an attribute named
    # like the id's field must all come back exactly.
    firsts = {
        "a": ev("a", "plain-1"),
        "b": ev("b", 'quo"te\\d'),
        "c": ev("c", "grüße-👋", ascii_only=False),
        "d": ev("d", "grüße-2"),  # escaped as \u00fc by json.dumps
        "e": ev("e", "id-5", attr='"source_message_id":"other"}}'),
    }
    acc = Accumulator()
    for built in firsts.values():
        acc.add(built, 0.0)
    acc.add(ev("a", "plain-2"), 0.1)  # a second event: the batch's events grow
    acc.add(ev("c", "c-2"), 0.1)
    acc.add(ev("e", "e-2"), 0.1)
    sealed = {json.loads(b.body)["user_identities"]["customer_id"]: b for b in seal_all(acc)}
    for user, built in firsts.items():
        batch = sealed[user]
        assert batch.source_request_id == built.source_request_id
        assert json.loads(batch.body)["source_request_id"] == built.source_request_id


def test_the_id_memory_is_bounded_and_forgets_the_oldest_id_first(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Two batches never share a source_request_id among the last ids recorded (mParticle
    # drops a batch whose id it has seen); a long-lived process keeps only that many.
    monkeypatch.setattr(accumulator_module, "_SRID_MEMORY", 4)
    acc = Accumulator(BatchLimits(size=1))

    def srid(eid: str) -> str:
        return acc.add(ev("u", eid), 0.0)[1][0].source_request_id

    assert [srid("a"), srid("a"), srid("b"), srid("a")] == ["a", "a-2", "b", "a-3"]
    # Recorded: a, a-2, b, a-3 (the memory is full). Four new ids push them all out.
    assert [srid(x) for x in ("c", "d", "e", "f")] == ["c", "d", "e", "f"]
    assert srid("a") == "a"  # forgotten: used again verbatim
    assert srid("f") == "f-2"  # still remembered
    assert len(acc._recent_ids) == 4
