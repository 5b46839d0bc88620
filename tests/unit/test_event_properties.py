"""Property: every JSON-able event with a valid name normalizes and survives a JSON round trip."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from mparticle_dest._event import WalkerEvent, normalize_event
from mparticle_dest._exceptions import InvalidEventError

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


_BAD_VALUES = st.sampled_from(
    [(1, 2), float("nan"), float("-inf"), {1, 2}, b"bytes", object(), Ellipsis]
)


@given(name=names, fields=optional_fields, data=st.data())
def test_a_non_json_value_anywhere_is_rejected_with_its_path(
    name: str, fields: dict[str, Any], data: st.DataObject
) -> None:
    event: dict[str, Any] = {**fields, "name": name, "x_extra": {"inner": {"deep": [1]}}}
    # Pick a container (the event, a dict at any depth or a list) and plant the value.
    containers: list[tuple[Any, list[str]]] = []

    def walk(value: Any, path: list[str]) -> None:
        if type(value) is dict:
            containers.append((value, path))
            for key, item in value.items():
                walk(item, [*path, key])
        elif type(value) is list:
            containers.append((value, path))
            for index, item in enumerate(value):
                walk(item, [*path, str(index)])

    walk(event, [])
    target, path = data.draw(st.sampled_from(containers[1:]))  # not the event itself
    bad = data.draw(_BAD_VALUES)
    if type(target) is dict:
        key = data.draw(st.text(min_size=1, max_size=4).filter(lambda k: k not in target))
        target[key] = bad
        where = ".".join([*path, key])
    else:
        target.append(bad)
        where = ".".join([*path, str(len(target) - 1)])
    try:
        normalize_event(event)
    except InvalidEventError as exc:
        assert exc.field == where
    else:
        raise AssertionError(f"{bad!r} at {where} was accepted")


@given(name=names, fields=optional_fields, data=st.data())
def test_a_non_string_key_anywhere_is_rejected(
    name: str, fields: dict[str, Any], data: st.DataObject
) -> None:
    event: dict[str, Any] = {**fields, "name": name, "x_extra": {"inner": {}}}
    candidates = (event["x_extra"], event["x_extra"]["inner"], *fields.values())
    dicts = [d for d in candidates if type(d) is dict and d is not fields.get("consent")]
    target = data.draw(st.sampled_from(dicts))
    target[data.draw(st.sampled_from([1, None, 2.5, ("t",)]))] = "v"
    try:
        normalize_event(event)
    except InvalidEventError as exc:
        assert "is not a string" in str(exc)
    else:
        raise AssertionError("a non-string key was accepted")
