"""Accumulator: one open batch per user, size/age/wait/byte limits, rule overrides (SPEC §6).

Pure and synchronous: the tests drive it with an explicit clock (plain floats).
"""

from __future__ import annotations

import gc
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support.built import Built, Hint
from support.sealing import seal_all, seal_eligible

from mparticle_dest import LimitExceededError
from mparticle_dest._batching.accumulator import Accumulator, BatchLimits, SealedBatch
from mparticle_dest._mparticle.constants import MAX_BATCH_BYTES, MAX_USER_ATTRIBUTES
from mparticle_dest._payload.builder import BatchKey, EventBuilder
from mparticle_dest._receipt import outcome_of, resolve_outcome
from mparticle_dest._wire import compact_key


def key(user: str, srid: str | None = None) -> BatchKey:
    return BatchKey("production", (("customer_id", user),), source_request_id=srid)


def ck(user: str) -> bytes:
    """The key of ``user``'s batch in the accumulator's and the scheduler's tables."""
    return compact_key(key(user))


def event(
    user: str,
    event_id: str,
    *,
    pad: int = 0,
    ua: dict[str, Any] | None = None,
    hint: Hint | None = None,
    srid: str | None = None,
) -> Built:
    body = json.dumps(
        {
            "event_type": "custom_event",
            "data": {
                "event_name": "page view",
                "custom_event_type": "other",
                "custom_attributes": {"pad": "p" * pad},
                "source_message_id": event_id,
            },
        },
        separators=(",", ":"),
    ).encode()
    return Built(key(user, srid), body, event_id, srid or event_id, ua, hint)


def due(acc: Accumulator, now: float) -> list[SealedBatch]:
    """Make the due batches eligible, then seal every eligible one (as a scheduler would)."""
    acc.due(now)
    return seal_eligible(acc)


def ids(batch: SealedBatch) -> list[str]:
    parsed = json.loads(batch.body)
    return [e["data"]["source_message_id"] for e in parsed["events"]]


def test_events_of_one_user_share_a_batch_in_order() -> None:
    acc = Accumulator()
    for i in range(3):
        receipt, sealed = acc.add(event("u1", f"e{i}"), now=0.0)
        assert sealed == []
        assert receipt.event_id == f"e{i}"
    acc.add(event("u2", "x0"), now=0.0)
    assert (acc.open_batches, acc.open_events) == (2, 4)
    first, second = seal_all(acc)
    assert ids(first) == ["e0", "e1", "e2"]
    assert ids(second) == ["x0"]
    parsed = json.loads(first.body)
    assert parsed["user_identities"] == {"customer_id": "u1"}
    assert parsed["source_request_id"] == "e0" == first.source_request_id
    assert first.event_count == 3
    assert first.seq < second.seq
    assert (acc.open_batches, acc.open_events) == (0, 0)


def test_a_batch_seals_when_it_reaches_its_size() -> None:
    acc = Accumulator(BatchLimits(size=2))
    assert acc.add(event("u", "a"), 0.0)[1] == []
    _, sealed = acc.add(event("u", "b"), 0.0)
    assert [ids(b) for b in sealed] == [["a", "b"]]
    _, sealed = acc.add(event("u", "c"), 0.0)
    assert sealed == []


def test_a_batch_is_due_when_its_oldest_event_reaches_the_age() -> None:
    acc = Accumulator(BatchLimits(age=1.0))
    acc.add(event("u", "a"), now=10.0)
    acc.add(event("u", "b"), now=10.8)  # a later event does not postpone the batch
    acc.add(event("v", "c"), now=10.5)
    assert acc.next_deadline() == 11.0
    assert due(acc, 10.99) == []
    (batch,) = due(acc, 11.0)
    assert ids(batch) == ["a", "b"]
    assert acc.next_deadline() == 11.5
    assert [ids(b) for b in due(acc, 20.0)] == [["c"]]
    assert acc.next_deadline() is None


def test_wait_debounces_but_never_past_the_age() -> None:
    acc = Accumulator(BatchLimits(age=1.0, wait=0.3))
    acc.add(event("u", "a"), now=0.0)
    assert acc.next_deadline() == pytest.approx(0.3)
    acc.add(event("u", "b"), now=0.2)
    assert acc.next_deadline() == pytest.approx(0.5)
    assert due(acc, 0.45) == []
    for t in (0.4, 0.6, 0.8):
        acc.add(event("u", f"t{t}"), now=t)
    assert acc.next_deadline() == pytest.approx(1.0)  # capped by the age
    (batch,) = due(acc, 1.0)
    assert len(ids(batch)) == 5


def test_rule_age_zero_makes_the_users_batch_eligible_now() -> None:
    acc = Accumulator()
    acc.add(event("u", "a"), 0.0)
    acc.add(event("v", "other"), 0.0)
    _, sealed = acc.add(event("u", "buy", hint=Hint(age=0)), 0.1)
    assert sealed == []  # eligible, not sealed: it may still grow until it is taken
    assert list(acc.eligible) == [ck("u")]  # the other user's batch keeps waiting
    acc.add(event("u", "more"), 0.1)
    assert [ids(b) for b in seal_eligible(acc)] == [["a", "buy", "more"]]
    assert acc.open_events == 1


def test_an_eligible_batch_is_listed_once_and_not_while_its_key_is_muted() -> None:
    acc = Accumulator(BatchLimits(age=1.0))
    acc.muted.add(ck("v"))  # v has a request in flight
    for user in ("u", "v", "u"):
        acc.add(event(user, f"{user}-x{len(acc.eligible)}"), 0.0)
    assert acc.due(5.0) == 3  # events marked
    assert list(acc.eligible) == [ck("u")]
    assert acc.eligible_since(ck("v")) == 5.0


def test_rule_overrides_apply_to_the_batch_they_join() -> None:
    acc = Accumulator(BatchLimits(size=100, age=60.0))
    acc.add(event("u", "a"), 0.0)
    acc.add(event("u", "b", hint=Hint(age=500)), 1.0)  # ms
    assert acc.next_deadline() == pytest.approx(1.5)
    _, sealed = acc.add(event("u", "c", hint=Hint(size=3)), 1.2)
    assert [ids(b) for b in sealed] == [["a", "b", "c"]]


def test_no_batch_exceeds_128_kb_and_the_overflowing_event_opens_the_next() -> None:
    acc = Accumulator()
    sealed_all: list[SealedBatch] = []
    for i in range(10):
        _, sealed = acc.add(event("u", f"e{i}", pad=30_000), 0.0)
        sealed_all += sealed
    sealed_all += seal_all(acc)
    assert [len(ids(b)) for b in sealed_all] == [4, 4, 2]
    assert all(len(b.body) <= MAX_BATCH_BYTES for b in sealed_all)
    assert [i for b in sealed_all for i in ids(b)] == [f"e{i}" for i in range(10)]


def test_byte_accounting_is_exact_at_the_limit() -> None:
    probe = Accumulator()
    probe.add(event("u", "e0", pad=0), 0.0)
    (one,) = seal_all(probe)
    overhead = len(one.body) - len(event("u", "e0").body)
    body_len = len(event("u", "e1").body)
    # Two events exactly filling a batch limit fit; one more byte does not.
    limit = overhead + 2 * body_len + 1
    acc = Accumulator(BatchLimits(max_bytes=limit))
    acc.add(event("u", "e0"), 0.0)
    assert acc.add(event("u", "e1"), 0.0)[1] == []
    (batch,) = seal_all(acc)
    assert len(batch.body) == limit
    tight = Accumulator(BatchLimits(max_bytes=limit - 1))
    tight.add(event("u", "e0"), 0.0)
    _, sealed = tight.add(event("u", "e1"), 0.0)
    assert [ids(b) for b in sealed] == [["e0"]]


def test_an_event_too_large_for_any_batch_is_rejected_without_side_effects() -> None:
    acc = Accumulator()
    acc.add(event("u", "small"), 0.0)
    with pytest.raises(LimitExceededError) as info:
        acc.add(event("u", "huge", pad=MAX_BATCH_BYTES), 0.0)
    assert info.value.limit == "batch_bytes"
    assert "huge" in str(info.value)
    assert (acc.open_batches, acc.open_events) == (1, 1)
    (batch,) = seal_all(acc)
    assert ids(batch) == ["small"]


def test_user_attributes_merge_last_write_wins() -> None:
    acc = Accumulator()
    acc.add(event("u", "a", ua={"plan": "free", "age": 30}), 0.0)
    acc.add(event("u", "b"), 0.0)
    acc.add(event("u", "c", ua={"plan": "pro"}), 0.0)
    (batch,) = seal_all(acc)
    assert json.loads(batch.body)["user_attributes"] == {"plan": "pro", "age": 30}


def test_a_batch_seals_before_user_attributes_would_exceed_100() -> None:
    acc = Accumulator()
    acc.add(event("u", "a", ua={f"a{i}": i for i in range(60)}), 0.0)
    _, sealed = acc.add(event("u", "b", ua={f"b{i}": i for i in range(60)}), 0.0)
    assert [ids(b) for b in sealed] == [["a"]]
    (rest,) = seal_all(acc)
    assert len(json.loads(rest.body)["user_attributes"]) == 60
    acc.add(event("u", "c", ua={f"a{i}": i for i in range(MAX_USER_ATTRIBUTES)}), 0.0)
    assert acc.add(event("u", "d", ua={"a0": "updated"}), 0.0)[1] == []  # overwrite: no growth


def test_source_request_ids_are_never_shared_by_two_batches() -> None:
    acc = Accumulator(BatchLimits(size=1))
    got = [
        acc.add(event("u", "same-id"), 0.0)[1][0].source_request_id,
        acc.add(event("v", "same-id"), 0.0)[1][0].source_request_id,
        acc.add(event("u", "m1", srid="req-9"), 0.0)[1][0].source_request_id,
        acc.add(event("u", "m2", srid="req-9"), 0.0)[1][0].source_request_id,
        acc.add(event("u", "m3", srid="req-9"), 0.0)[1][0].source_request_id,
        acc.add(event("u", "same-id-2"), 0.0)[1][0].source_request_id,
    ]
    assert got == ["same-id", "same-id-2", "req-9", "req-9-2", "req-9-3", "same-id-2-2"]


def test_a_mapped_source_request_id_is_used_verbatim_in_the_body() -> None:
    acc = Accumulator()
    acc.add(event("u", "e1", srid="req-1"), 0.0)
    acc.add(event("u", "e2", srid="req-1"), 0.0)
    (batch,) = seal_all(acc)
    assert json.loads(batch.body)["source_request_id"] == "req-1"


def test_receipts_share_their_batch_outcome() -> None:
    acc = Accumulator()
    r1, _ = acc.add(event("u", "a"), 0.0)
    r2, _ = acc.add(event("u", "b"), 0.0)
    (batch,) = seal_all(acc)
    assert not r1.done()
    resolve_outcome(batch.outcome, "delivered", 1, 202)
    assert r1.outcome is not None and r1.outcome.delivered and r1.outcome.event_id == "a"
    assert r2.outcome is not None and r2.outcome.http_status == 202


def test_a_growing_batch_keeps_every_event_in_order_as_its_events_change_form() -> None:
    # A batch's events stay one bytes object while short, then grow in a bytearray.
    acc = Accumulator()
    for n in range(12):
        acc.add(event("u", f"e{n}", pad=150), float(n))
    acc.add(event("v", "w0", ua={"a": 1}), 0.0)  # the general path, across the change too
    for n in range(1, 12):
        acc.add(event("v", f"w{n}", pad=150, ua={"a": n}), float(n))
    batches = {json.loads(b.body)["user_identities"]["customer_id"]: b for b in seal_all(acc)}
    assert ids(batches["u"]) == [f"e{n}" for n in range(12)]
    assert ids(batches["v"]) == [f"w{n}" for n in range(12)]
    assert json.loads(batches["v"].body)["user_attributes"] == {"a": 11}


# -- property: no loss, no duplication, order per user, every limit held ---------------------

_op = st.tuples(
    st.sampled_from(["u1", "u2", "u3", "u4"]),  # user
    st.integers(0, 40_000),  # padding bytes
    st.one_of(st.none(), st.dictionaries(st.sampled_from("abcdefgh"), st.integers(), max_size=3)),
    st.one_of(
        st.none(),
        st.builds(
            Hint,
            size=st.one_of(st.none(), st.integers(1, 5)),
            age=st.one_of(st.none(), st.sampled_from([0, 50, 300])),
            wait=st.one_of(st.none(), st.sampled_from([0, 20, 100])),
        ),
    ),
    st.floats(0, 0.2),  # time advance before the event
    st.booleans(),  # run due() after the event
)


@settings(max_examples=100, deadline=None)
@given(
    ops=st.lists(_op, max_size=60),
    size=st.one_of(st.none(), st.integers(1, 10)),
    age=st.sampled_from([0.0, 0.1, 0.5]),
    wait=st.one_of(st.none(), st.sampled_from([0.05, 0.2])),
)
def test_property_no_loss_no_duplication_order_and_limits(
    ops: list[tuple[str, int, dict[str, int] | None, Hint | None, float, bool]],
    size: int | None,
    age: float,
    wait: float | None,
) -> None:
    acc = Accumulator(BatchLimits(size=size, age=age, wait=wait))
    now = 0.0
    pushed: dict[str, list[str]] = {}
    sealed: list[SealedBatch] = []
    for n, (user, pad, ua, hint, advance, check) in enumerate(ops):
        now += advance
        eid = f"e{n}"
        _, out = acc.add(event(user, eid, pad=pad, ua=ua, hint=hint), now)
        pushed.setdefault(user, []).append(eid)
        sealed += out
        if check:
            sealed += due(acc, now)
        deadline = acc.next_deadline()
        assert deadline is None or acc.open_batches > 0
    sealed += seal_all(acc)
    assert acc.open_events == 0

    seen: list[str] = []
    per_user: dict[str, list[str]] = {}
    for batch in sorted(sealed, key=lambda b: b.seq):
        body = json.loads(batch.body)
        assert len(batch.body) <= MAX_BATCH_BYTES
        assert len(body.get("user_attributes", {})) <= MAX_USER_ATTRIBUTES
        assert 1 <= batch.event_count == len(body["events"])
        if size is not None:  # a rule hint may raise the size (hints here are ≤ 5)
            assert batch.event_count <= max(size, 5)
        user = body["user_identities"]["customer_id"]
        per_user.setdefault(user, []).extend(ids(batch))
        seen += ids(batch)
        assert body["source_request_id"] == batch.source_request_id
    assert sorted(seen) == sorted(e for es in pushed.values() for e in es)  # no loss, no dup
    assert per_user == pushed  # order per user
    srids = [b.source_request_id for b in sealed]
    assert len(srids) == len(set(srids))


def test_due_until_marks_the_earliest_deadlines_first_in_slices() -> None:
    acc = Accumulator(BatchLimits(age=10.0))
    for user, n, t in (("u1", 3, 0.0), ("u2", 2, 1.0), ("u3", 4, 2.0)):
        for i in range(n):
            acc.add(event(user, f"{user}-{i}"), now=t)
    # A flush or a full buffer: the oldest batches first, a slice of events at a time.
    assert acc.due(3.0, until=float("inf"), max_events=4) == 5  # u1 holds 3: u2 goes too
    assert list(acc.eligible) == [ck("u1"), ck("u2")]
    assert acc.due(3.0, until=float("inf")) == 4
    assert acc.next_deadline() is None
    assert [ids(b) for b in seal_eligible(acc)][2] == ["u3-0", "u3-1", "u3-2", "u3-3"]


# -- the fast path of add() against the general one --------------------------------------------


class GeneralOnly(Accumulator):
    """The accumulator with its fast path switched off: every event takes the general path."""

    def add(self, built: Any, now: float) -> tuple[Any, list[SealedBatch]]:
        compact = compact_key(built.key)
        return self._add_general(built, now, compact, self._slots.get(compact))


def _trace(acc: Accumulator, ops: list[Any], back: list[bool]) -> list[Any]:
    """Everything observable while ``ops`` go through ``acc`` (the clock may step back)."""
    out: list[Any] = []
    now = 10.0
    holders: list[Any] = []  # batch outcomes in order of first sight (kept alive: ids stay unique)

    def holder(receipt: Any) -> int:
        outcome = outcome_of(receipt)
        for i, seen in enumerate(holders):
            if seen is outcome:
                return i
        holders.append(outcome)
        return len(holders) - 1

    def sealed_view(batches: list[SealedBatch]) -> list[Any]:
        return [(b.body, b.event_count, b.source_request_id, b.seq, b.key) for b in batches]

    for n, ((user, pad, ua, hint, advance, check), step_back) in enumerate(
        zip(ops, back, strict=False)
    ):
        now = now - advance if step_back else now + advance
        try:
            receipt, sealed = acc.add(event(user, f"e{n}", pad=pad, ua=ua, hint=hint), now)
        except LimitExceededError as exc:
            out.append(("limit", str(exc)))
            continue
        out.append((receipt.event_id, holder(receipt), sealed_view(sealed)))
        for batch in sealed:
            out.append(("sealed-holder", any(batch.outcome is h for h in holders)))
        if check:
            out.append(("due", sealed_view(due(acc, now))))
        out.append((acc.next_deadline(), acc.open_batches, acc.open_events))
    out.append(("all", sealed_view(seal_all(acc))))
    return out


@settings(max_examples=150, deadline=None)
@given(
    ops=st.lists(_op, max_size=60),
    back=st.lists(st.booleans(), min_size=60, max_size=60),
    size=st.one_of(st.none(), st.integers(1, 10)),
    age=st.sampled_from([0.0, 0.1, 0.5]),
    wait=st.one_of(st.none(), st.sampled_from([0.05, 0.2])),
)
def test_property_fast_path_equals_general_path(
    ops: list[Any], back: list[bool], size: int | None, age: float, wait: float | None
) -> None:
    limits = BatchLimits(size=size, age=age, wait=wait)
    assert _trace(Accumulator(limits), ops, back) == _trace(GeneralOnly(limits), ops, back)


def test_an_event_without_hint_brings_the_default_size_to_a_batch_a_hint_opened() -> None:
    # Found by the property above: the fast path kept the hint's larger size.
    acc = Accumulator(BatchLimits(size=1, age=0.1))
    assert acc.add(event("u", "a", hint=Hint(size=3)), 0.0)[1] == []
    _, sealed = acc.add(event("u", "b"), 0.0)
    assert [ids(b) for b in sealed] == [["a", "b"]]


def test_fast_path_still_marks_an_overdue_batch_and_seals_a_full_one() -> None:
    acc = Accumulator(BatchLimits(size=3, age=1.0))
    acc.add(event("u", "a"), 0.0)
    _, sealed = acc.add(event("u", "b"), 1.5)  # the batch's age ran out before a sender looked
    assert sealed == [] and list(acc.eligible) == [ck("u")]
    assert [ids(b) for b in seal_eligible(acc)] == [["a", "b"]]
    for eid in ("c", "d"):
        assert acc.add(event("u", eid), 2.0)[1] == []
    _, sealed = acc.add(event("u", "e"), 2.0)
    assert [ids(b) for b in sealed] == [["c", "d", "e"]]


def test_a_new_deadline_is_reported_once_per_change() -> None:
    acc = Accumulator(BatchLimits(age=1.0))
    seen: list[float] = []
    acc.on_deadline = seen.append
    acc.add(event("u1", "a"), 0.0)  # opens a batch: its deadline
    acc.add(event("u1", "b"), 0.5)  # joins it: the deadline does not move
    acc.add(event("u2", "c"), 0.5)
    acc.add(event("u1", "d", hint=Hint(age=100)), 0.6)  # a rule hint brings it forward
    assert seen == [1.0, 1.5, pytest.approx(0.7)]


def test_an_open_batch_leaves_no_object_the_garbage_collector_tracks() -> None:
    # A service may hold one open batch per user for seconds or minutes; every tracked
    # object living that long is promoted to the oldest generation, and enough of them
    # trigger a full collection (a pause of the whole heap). Keys arrive as fresh named
    # tuples with every event, as the builder makes them; events without user attributes.
    users = 5000
    acc = Accumulator(BatchLimits(age=60.0))
    gc.collect()
    before = len(gc.get_objects())
    receipts = []
    for n in range(users):
        for i in range(3):
            built = Built(
                BatchKey("production", (("customer_id", f"user-{n}"), ("email", f"{n}@x.org"))),
                b'{"event_type":"custom_event","data":{}}',
                f"e{n}-{i}",
                f"e{n}-{i}",
            )
            receipt, _ = acc.add(built, 0.0)
            if i == 0:
                receipts.append(receipt)  # a kept receipt keeps its batch's outcome alive
    del built
    gc.collect()
    tracked = len(gc.get_objects()) - before - len(receipts) - 1  # the receipts and their list
    assert acc.open_batches == users
    assert tracked / users < 0.01  # none per batch: a few for the tables themselves
    assert not any(gc.is_tracked(r._holder) for r in receipts)


def test_an_identity_beyond_64_bits_is_sealed_exactly_as_built() -> None:
    config = {
        "settings": {"apiKey": "k", "apiSecret": "s", "userIdentities": {"customer_id": "user.id"}}
    }
    builder = EventBuilder.from_config(config)
    event = {"name": "page view", "id": "e1", "timestamp": 1700000000000, "user": {"id": 2**70 + 1}}
    built = builder.build(event)
    acc = Accumulator()
    acc.add(built, 0.0)  # type: ignore[arg-type]
    (key,) = acc.open_keys()
    size = acc.batch_bytes(key)
    batch = acc.seal(key)
    assert b'"user_identities":{"customer_id":1180591620717411303425}' in batch.body
    assert len(batch.body) == size


def test_a_batch_of_an_identity_integer_beyond_64_bits_seals_with_its_digits() -> None:
    # A user id of 1e20 (a JavaScript number) is the integer 10**20: the batch's envelope,
    # made from its compact key when sealed, must carry it exactly (and keep the exact
    # size the accumulator counted).
    big = BatchKey("production", (("customer_id", 10**20),))
    acc = Accumulator()
    first = event("u", "e1")
    acc.add(Built(big, first.body, "e1", "e1"), 0.0)
    (batch,) = seal_all(acc)
    assert json.loads(batch.body)["user_identities"] == {"customer_id": 10**20}
