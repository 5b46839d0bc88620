"""Property: every JSON-able event with a valid name normalizes and survives a JSON round trip."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from mparticle_dest._event import WalkerEvent, normalize_event

word = st.text(st.characters(blacklist_characters=" ", blacklist_categories=("Cs",)), min_size=1)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
json_objects = st.dictionaries(st.text(max_size=8), json_values, max_size=4)
names = st.builds(
    lambda entity, action, rest: " ".join([entity, action, *rest]),
    word,
    word,
    st.lists(st.text(), max_size=2),
)
optional_fields = st.fixed_dictionaries(
    {},
    optional={
        "data": json_objects,
        "context": json_objects,
        "globals": json_objects,
        "custom": json_objects,
        "user": json_objects,
        "source": json_objects,
        "nested": st.lists(json_objects, max_size=3),
        "consent": st.dictionaries(st.text(max_size=8), st.booleans(), max_size=3),
        "id": st.text(min_size=1),
        "trigger": st.text(),
        "timestamp": st.integers(min_value=0, max_value=2**53),
        "timing": st.floats(allow_nan=False, allow_infinity=False),
        "group": st.text(),
        "count": st.integers(),
    },
)


@given(name=names, fields=optional_fields, extra=json_objects)
def test_json_able_events_normalize_and_round_trip(
    name: str, fields: dict[str, Any], extra: dict[str, Any]
) -> None:
    event = {**{f"x_{key}": value for key, value in extra.items()}, **fields, "name": name}
    out = normalize_event(event)
    words = name.split(" ")
    assert out["entity"] == words[0]
    assert out["action"] == words[1]
    assert {key: out[key] for key in event} == event
    assert json.loads(json.dumps(out, allow_nan=False)) == out
    typed = {key: value for key, value in event.items() if not key.startswith("x_")}
    assert WalkerEvent.from_dict(typed).to_dict() == typed
