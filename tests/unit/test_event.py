"""walkerOS event validation and completion (SPEC §3): ``normalize_event`` and ``WalkerEvent``."""

from __future__ import annotations

import copy
import datetime
import decimal
import enum
import math
import re
import time
from collections import OrderedDict
from types import MappingProxyType
from typing import Any

import pytest
from support.walkeros_steps import load_steps

from mparticle_dest._event import MAX_DEPTH, WalkerEvent, new_event_id, normalize_event
from mparticle_dest._exceptions import InvalidEventError, MparticleDestError

HEX16 = re.compile(r"^[0-9a-f]{16}$")


def reference_events() -> list[dict[str, Any]]:
    return [step.event for step in load_steps()]


# -- completion ------------------------------------------------------------------------------


def test_entity_and_action_are_derived_from_the_name() -> None:
    out = normalize_event({"name": "product view"})
    assert (out["entity"], out["action"]) == ("product", "view")


def test_a_longer_name_is_kept_whole_and_gives_its_first_two_words() -> None:
    out = normalize_event({"name": "product view detail page"})
    assert out["name"] == "product view detail page"
    assert (out["entity"], out["action"]) == ("product", "view")


def test_given_entity_and_action_are_kept() -> None:
    out = normalize_event({"name": "product view", "entity": "item", "action": "seen"})
    assert (out["entity"], out["action"]) == ("item", "seen")


def test_missing_id_is_filled_with_16_lowercase_hex_characters() -> None:
    ids = {normalize_event({"name": "page view"})["id"] for _ in range(1000)}
    assert len(ids) == 1000
    assert all(HEX16.match(event_id) for event_id in ids)
    assert HEX16.match(new_event_id())


def test_missing_timestamp_is_filled_with_the_current_time_in_ms() -> None:
    before = time.time_ns() // 1_000_000
    stamp = normalize_event({"name": "page view"})["timestamp"]
    after = time.time_ns() // 1_000_000
    assert type(stamp) is int
    assert before <= stamp <= after


def test_given_id_and_timestamp_are_kept() -> None:
    out = normalize_event({"name": "page view", "id": "ev-1", "timestamp": 1700000000000.5})
    assert out["id"] == "ev-1"
    assert out["timestamp"] == 1700000000000.5


@pytest.mark.parametrize("event", reference_events(), ids=lambda e: e["name"])
def test_reference_events_pass_unchanged(event: dict[str, Any]) -> None:
    assert normalize_event(event) == event


def test_the_caller_event_is_never_mutated_and_a_new_dict_is_returned() -> None:
    event = {"name": "order complete", "data": {"id": "o-1"}, "nested": [{"entity": "x"}]}
    before = copy.deepcopy(event)
    out = normalize_event(event)
    assert event == before
    assert out is not event
    assert set(out) - set(event) == {"entity", "action", "id", "timestamp"}


def test_any_mapping_is_accepted_and_copied_into_a_dict() -> None:
    out = normalize_event(MappingProxyType({"name": "page view", "data": {"a": 1}}))
    assert type(out) is dict
    assert out["data"] == {"a": 1}


def test_unknown_top_level_keys_are_kept() -> None:
    assert normalize_event({"name": "page view", "extra": [1, "two"]})["extra"] == [1, "two"]


class Colour(str, enum.Enum):
    RED = "red"


class Level(enum.IntEnum):
    HIGH = 3


@pytest.mark.parametrize(
    "value",
    [
        None,
        True,
        0,
        -(2**70),
        1.5,
        "",
        [],
        {},
        [None, [1, [2.5, {"a": None}]]],
        OrderedDict(a=1),
        Colour.RED,
        Level.HIGH,
    ],
    ids=repr,
)
def test_json_values_and_subclasses_of_json_types_are_accepted(value: Any) -> None:
    assert normalize_event({"name": "page view", "data": {"v": value}})["data"]["v"] is value


def test_nesting_up_to_the_depth_limit_is_accepted() -> None:
    deep: Any = 1
    for _ in range(MAX_DEPTH - 1):
        deep = [deep]
    normalize_event({"name": "page view", "data": {"deep": deep}})


# -- rejection -------------------------------------------------------------------------------


def rejection(event: Any) -> InvalidEventError:
    with pytest.raises(InvalidEventError) as info:
        normalize_event(event)
    return info.value


@pytest.mark.parametrize(
    ("event", "message"),
    [
        ([("name", "page view")], "event: expected a mapping or WalkerEvent, got list"),
        ("page view", "event: expected a mapping or WalkerEvent, got str"),
        (None, "event: expected a mapping or WalkerEvent, got NoneType"),
    ],
)
def test_a_non_mapping_event_is_rejected(event: Any, message: str) -> None:
    error = rejection(event)
    assert str(error) == message
    assert error.field is None


@pytest.mark.parametrize(
    ("name", "message"),
    [
        (None, "name: expected a string like 'entity action', got NoneType"),
        (42, "name: expected a string like 'entity action', got int"),
        (
            "pageview",
            "name: expected 'entity action' (two words separated by a space), got 'pageview'",
        ),
        ("", "name: expected 'entity action' (two words separated by a space), got ''"),
        (" view", "name: empty entity in ' view'"),
        ("page ", "name: empty action in 'page '"),
        ("page  view", "name: empty action in 'page  view'"),
    ],
)
def test_a_bad_name_is_rejected(name: Any, message: str) -> None:
    error = rejection({"name": name})
    assert str(error) == message
    assert error.field == "name"


def test_a_missing_name_is_rejected() -> None:
    error = rejection({"data": {}})
    assert (str(error), error.field) == ("name: required", "name")


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("data", [], "data: expected an object (dict), got list"),
        ("context", "x", "context: expected an object (dict), got str"),
        ("globals", None, "globals: expected an object (dict), got NoneType"),
        ("custom", 1, "custom: expected an object (dict), got int"),
        ("user", "u-1", "user: expected an object (dict), got str"),
        ("consent", ["functional"], "consent: expected an object (dict), got list"),
        ("source", "server", "source: expected an object (dict), got str"),
        ("version", 4, "version: expected an object (dict), got int"),
        ("nested", {}, "nested: expected a list, got dict"),
        ("id", 7, "id: expected a string, got int"),
        ("id", "", "id: must be a non-empty string"),
        ("trigger", False, "trigger: expected a string, got bool"),
        ("entity", 1, "entity: expected a string, got int"),
        ("action", None, "action: expected a string, got NoneType"),
        ("group", 1, "group: expected a string, got int"),
        ("count", 1.5, "count: expected an integer, got float"),
        ("count", True, "count: expected an integer, got bool"),
        ("timestamp", "1700000000000", "timestamp: expected a number, got str"),
        ("timestamp", True, "timestamp: expected a number, got bool"),
        ("timestamp", math.nan, "timestamp: nan is not a finite number"),
        ("timing", "fast", "timing: expected a number, got str"),
        (
            "timing",
            math.inf,
            "timing: inf is not JSON-serializable (NaN and infinity are rejected)",
        ),
    ],
)
def test_a_known_field_of_the_wrong_type_is_rejected(key: str, value: Any, message: str) -> None:
    error = rejection({"name": "page view", key: value})
    assert str(error) == message
    assert error.field == key


def test_consent_values_must_be_booleans() -> None:
    error = rejection({"name": "page view", "consent": {"functional": True, "marketing": "yes"}})
    assert (str(error), error.field) == (
        "consent.marketing: expected true or false, got str",
        "consent.marketing",
    )


def test_nested_entities_must_be_objects() -> None:
    error = rejection({"name": "page view", "nested": [{"entity": "a"}, "b"]})
    assert (str(error), error.field) == ("nested.1: expected an object (dict), got str", "nested.1")


@pytest.mark.parametrize(
    ("event", "path", "problem"),
    [
        (
            {"data": {"when": datetime.datetime(2024, 1, 1)}},
            "data.when",
            "datetime is not JSON-serializable",
        ),
        (
            {"data": {"x": [1, {"y": math.nan}]}},
            "data.x.1.y",
            "nan is not JSON-serializable (NaN and infinity are rejected)",
        ),
        ({"user": {"score": -math.inf}}, "user.score", "-inf is not JSON-serializable"),
        ({"globals": {"tags": ("a", "b")}}, "globals.tags", "tuple is not JSON-serializable"),
        ({"custom": {"raw": b"x"}}, "custom.raw", "bytes is not JSON-serializable"),
        ({"data": {"set": {1}}}, "data.set", "set is not JSON-serializable"),
        ({"data": {"price": decimal.Decimal("1.5")}}, "data.price", "Decimal is not JSON"),
        ({"data": {"nested": {1: "one"}}}, "data.nested.1", "key 1 is not a string"),
        ({"source": {"obj": object()}}, "source.obj", "object is not JSON-serializable"),
        ({"extra": {1, 2}}, "extra", "set is not JSON-serializable"),
        ({"nested": [{"data": {"when": datetime.date(2024, 1, 1)}}]}, "nested.0.data.when", "date"),
    ],
)
def test_non_json_values_are_rejected_naming_the_dotted_path(
    event: dict[str, Any], path: str, problem: str
) -> None:
    error = rejection({"name": "page view", **event})
    assert error.field == path
    assert str(error).startswith(f"{path}: {problem}")


def test_a_top_level_null_is_json_also_when_another_value_is_not() -> None:
    # The slow pass that names the offending value took a top-level null for one.
    error = rejection({"name": "page view", "note": None, "data": {"x": math.nan}})
    assert error.field == "data.x"

    class Key(str):
        pass

    kept = normalize_event({"name": "page view", "note": None, "data": {Key("k"): 1}})
    assert kept["note"] is None


def test_a_wrong_known_field_is_named_before_a_non_string_key_inside_a_later_dict() -> None:
    error = rejection({"name": "page view", "data": {1: "x"}, "id": 5})
    assert error.field == "id"
    assert str(error) == "id: expected a string, got int"


def test_a_non_string_top_level_key_is_rejected() -> None:
    error = rejection({"name": "page view", 3: "x"})
    assert str(error) == "event key 3 is not a string"


def test_a_circular_structure_is_rejected_not_looped_over() -> None:
    data: dict[str, Any] = {}
    data["self"] = data
    error = rejection({"name": "page view", "data": data})
    assert f"nested deeper than {MAX_DEPTH} levels (circular reference?)" in str(error)
    assert error.field is not None
    assert error.field.startswith("data.self.self")


def test_rejections_are_value_errors_of_the_library() -> None:
    error = rejection({"name": "nope"})
    assert isinstance(error, ValueError)
    assert isinstance(error, MparticleDestError)


# -- the typed event -------------------------------------------------------------------------


def test_walker_event_normalizes_like_its_dict() -> None:
    typed = WalkerEvent(name="product view", data={"id": "A"}, id="ev-1", timestamp=5)
    assert normalize_event(typed) == normalize_event(typed.to_dict())
    assert normalize_event(typed)["entity"] == "product"


def test_walker_event_to_dict_holds_only_the_set_fields() -> None:
    assert WalkerEvent(name="page view", user={"id": "u"}).to_dict() == {
        "name": "page view",
        "user": {"id": "u"},
    }


@pytest.mark.parametrize("event", reference_events(), ids=lambda e: e["name"])
def test_walker_event_round_trips_the_reference_events(event: dict[str, Any]) -> None:
    typed = WalkerEvent.from_dict(event)
    assert typed.to_dict() == event
    assert typed.source == event["source"]


def test_walker_event_from_dict_validates() -> None:
    with pytest.raises(InvalidEventError, match=r"^data: expected an object \(dict\), got list$"):
        WalkerEvent.from_dict({"name": "page view", "data": []})
    with pytest.raises(InvalidEventError, match=r"^colour: unknown walkerOS event field$"):
        WalkerEvent.from_dict({"name": "page view", "colour": "red"})
    with pytest.raises(InvalidEventError, match=r"^event: expected a mapping, got str$"):
        WalkerEvent.from_dict("page view")  # type: ignore[arg-type]


def test_walker_event_from_dict_does_not_fill_id_or_timestamp() -> None:
    typed = WalkerEvent.from_dict({"name": "page view"})
    assert (typed.id, typed.timestamp, typed.entity) == (None, None, None)
