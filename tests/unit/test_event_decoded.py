"""``prepare_decoded_event`` (the relay's check of a decoded entry) decides exactly as
``prepare_event``: the same event back, or the same error naming the same field."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from mparticle_dest._event import (
    DECODED_WALK_FREE_BYTES,
    MAX_DEPTH,
    prepare_decoded_event,
    prepare_event,
)
from mparticle_dest._exceptions import InvalidEventError

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(blacklist_categories=("Cs",)), max_size=6),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=12,
)
KNOWN = ["data", "context", "globals", "custom", "user", "nested", "consent", "id", "trigger"]
KNOWN += ["entity", "action", "timestamp", "timing", "group", "count", "version", "source"]
objects = st.dictionaries(st.text(max_size=4), json_values, max_size=2)
# A complete, valid event (as a producer writes it), with some optional fields.
valid = st.fixed_dictionaries(
    {
        "name": st.sampled_from(["page view", "page view now", "a b"]),
        "entity": st.just("page"),
        "action": st.just("view"),
        "id": st.text(min_size=1, max_size=4),
        "timestamp": st.integers(min_value=0, max_value=2**53),
    },
    optional={
        "data": objects,
        "user": objects,
        "consent": st.dictionaries(st.text(max_size=4), st.booleans(), max_size=2),
        "nested": st.lists(objects, max_size=2),
        "timing": st.floats(allow_nan=False, allow_infinity=False),
        "count": st.integers(min_value=-(2**63), max_value=2**63 - 1),
    },
)
# What another writer of the stream might have put there instead.
wrong = st.one_of(
    json_values,
    st.sampled_from(["", "nospace", " x", "a  b", "page  view"]),
    st.dictionaries(st.text(max_size=4), json_values, min_size=1, max_size=2),  # consent
    st.lists(json_values, min_size=1, max_size=2),  # nested
)
changes = st.dictionaries(st.sampled_from([*KNOWN, "name", "x"]), wrong, max_size=3)
dropped = st.sets(st.sampled_from(["name", "entity", "action", "id", "timestamp"]), max_size=2)


def outcome(prepare: Any, payload: bytes) -> Any:
    """What ``prepare`` makes of its own decoded copy of ``payload`` (it may fill in a
    copy); an ``id`` or ``timestamp`` it generated is left out (random, or the clock)."""
    event = orjson.loads(payload)
    try:
        out = prepare(event)
    except InvalidEventError as exc:
        return ("invalid", str(exc), exc.field)
    given = orjson.loads(payload)
    return ("ok", {k: v for k, v in out.items() if k in given or k not in ("id", "timestamp")})


BASE = {"name": "page view", "entity": "page", "action": "view", "id": "e1", "timestamp": 1}


@settings(max_examples=300)
@given(event=valid, change=changes, drop=dropped)
@example(event=dict(BASE), change={"id": ""}, drop=set())
@example(event=dict(BASE), change={"consent": {"marketing": 1}}, drop=set())
@example(event=dict(BASE), change={"nested": [{"entity": "a"}, 3]}, drop=set())
@example(event=dict(BASE), change={"timestamp": 1.5, "data": []}, drop=set())
def test_a_decoded_event_is_refused_or_accepted_exactly_as_by_prepare_event(
    event: dict[str, Any], change: dict[str, Any], drop: set[str]
) -> None:
    event.update(change)
    for key in drop:
        event.pop(key, None)
    payload = orjson.dumps(event)
    assert outcome(prepare_decoded_event, payload) == outcome(prepare_event, payload)


@pytest.mark.parametrize("payload", [b"[1, 2]", b'"page view"', b"3", b"null"])
def test_json_that_is_not_an_object_is_refused_as_by_prepare_event(payload: bytes) -> None:
    decoded = outcome(prepare_decoded_event, payload)
    assert decoded[0] == "invalid"
    assert decoded == outcome(prepare_event, payload)


def test_only_a_larger_payload_can_hold_what_the_walk_refuses() -> None:
    """Past the fast pass's container budget a too deep value is refused; that takes
    more than DECODED_WALK_FREE_BYTES of JSON, the bound of the decoded check."""
    deep: Any = 0
    for _ in range(MAX_DEPTH + 1):
        deep = [deep]
    event = {
        "name": "page view",
        "entity": "page",
        "action": "view",
        "id": "e1",
        "timestamp": 1,
        "x": {"wide": [[] for _ in range(DECODED_WALK_FREE_BYTES // 2)], "deep": deep},
    }
    assert len(orjson.dumps(event)) >= DECODED_WALK_FREE_BYTES
    with pytest.raises(InvalidEventError, match="nested deeper"):
        prepare_event(event)
    del event["x"]["wide"]  # under the bound: the walk accepts the deep value too
    assert len(orjson.dumps(event)) < DECODED_WALK_FREE_BYTES
    assert prepare_event(event) is prepare_decoded_event(event)
