"""_limits: each mParticle limit at the limit and one past it, under both policies."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from mparticle_dest import LimitExceededError
from mparticle_dest._payload.limits import LIMIT_POLICY_DEFAULTS, Limits, check_batch_bytes


def _policy(**overrides: str) -> Any:
    return SimpleNamespace(**{**LIMIT_POLICY_DEFAULTS, **overrides})


TRUNCATE_ALL = _policy(
    event_name="truncate",
    custom_attributes="truncate",
    attribute_value="truncate",
    user_attributes="truncate",
)
REJECT_ALL = _policy(
    event_name="reject",
    custom_attributes="reject",
    attribute_value="reject",
    user_attributes="reject",
)


def test_defaults_truncate_names_and_reject_the_rest() -> None:
    assert LIMIT_POLICY_DEFAULTS == {
        "event_name": "truncate",
        "custom_attributes": "reject",
        "attribute_value": "reject",
        "user_attributes": "reject",
    }
    limits = Limits()
    notes: list[str] = []
    assert limits.event_name("n" * 257, "e1", notes) == "n" * 256
    with pytest.raises(LimitExceededError):
        limits.custom_attributes({str(i): i for i in range(101)}, "e1", "a b", notes)


def test_unknown_action_is_refused() -> None:
    with pytest.raises(ValueError, match=r"settings\.limits\.event_name"):
        Limits(_policy(event_name="drop"))


# ------------------------------------------------------------------ event name: 256 chars


@pytest.mark.parametrize("policy", [TRUNCATE_ALL, REJECT_ALL])
def test_event_name_at_the_limit_passes_untouched(policy: Any) -> None:
    notes: list[str] = []
    assert Limits(policy).event_name("x" * 256, "e1", notes) == "x" * 256
    assert notes == []


def test_event_name_past_the_limit_is_truncated() -> None:
    notes: list[str] = []
    assert Limits(TRUNCATE_ALL).event_name("é" * 257, "e1", notes) == "é" * 256
    assert notes == ["event_name_length"]


def test_event_name_past_the_limit_is_rejected_naming_the_event() -> None:
    with pytest.raises(LimitExceededError) as info:
        Limits(REJECT_ALL).event_name("x" * 257, "ev-9", [])
    assert info.value.limit == "event_name_length"
    assert info.value.field == "name"
    assert "'ev-9'" in str(info.value) and "257" in str(info.value) and "256" in str(info.value)


# ------------------------------------------------------- custom attributes: 100 per event


def _attributes(n: int) -> dict[str, Any]:
    return {f"k{i}": i for i in range(n)}


@pytest.mark.parametrize("policy", [TRUNCATE_ALL, REJECT_ALL])
def test_100_custom_attributes_pass(policy: Any) -> None:
    notes: list[str] = []
    assert Limits(policy).custom_attributes(_attributes(100), "e1", "a b", notes) == _attributes(
        100
    )
    assert notes == []


def test_101_custom_attributes_keep_the_first_100_in_order() -> None:
    notes: list[str] = []
    out = Limits(TRUNCATE_ALL).custom_attributes(_attributes(101), "e1", "a b", notes)
    assert list(out) == [f"k{i}" for i in range(100)]
    assert notes == ["custom_attributes_count"]


def test_101_custom_attributes_are_rejected() -> None:
    with pytest.raises(LimitExceededError) as info:
        Limits(REJECT_ALL).custom_attributes(_attributes(101), "ev-2", "product view", [])
    assert info.value.limit == "custom_attributes_count"
    assert "'ev-2'" in str(info.value) and "'product view'" in str(info.value)
    assert "101" in str(info.value) and "100" in str(info.value)


def test_dropped_none_values_do_not_count() -> None:
    attributes = {**_attributes(100), "gone": None}
    assert len(Limits(REJECT_ALL).custom_attributes(attributes, "e1", "a b", [])) == 100


def test_custom_attribute_values_become_scalars() -> None:
    out = Limits().custom_attributes(
        {"s": "x", "i": 1, "f": 1.5, "b": False, "n": None, "d": {"a": [1, "é"]}, "l": [1, 2]},
        "e1",
        "a b",
        [],
    )
    assert out == {"s": "x", "i": 1, "f": 1.5, "b": False, "d": '{"a":[1,"é"]}', "l": "[1,2]"}


# ----------------------------------------------------- attribute values: 4096 chars each


@pytest.mark.parametrize("policy", [TRUNCATE_ALL, REJECT_ALL])
def test_value_of_4096_chars_passes(policy: Any) -> None:
    limits = Limits(policy)
    value = "v" * 4096
    assert limits.custom_attributes({"a": value}, "e1", "a b", []) == {"a": value}
    assert limits.user_attributes({"a": value, "l": [value]}, "e1", "a b", []) == {
        "a": value,
        "l": [value],
    }


def test_value_of_4097_chars_is_cut_to_4096() -> None:
    notes: list[str] = []
    limits = Limits(TRUNCATE_ALL)
    assert limits.custom_attributes({"a": "v" * 4097}, "e1", "a b", notes) == {"a": "v" * 4096}
    assert limits.user_attributes({"l": ["w" * 4097]}, "e1", "a b", notes) == {"l": ["w" * 4096]}
    assert notes == ["attribute_value_length"]


def test_serialized_dict_value_counts_after_serialization() -> None:
    long_list = ["x" * 10] * 400  # 400 * 13 + 1 = 5201 chars once serialized
    with pytest.raises(LimitExceededError) as info:
        Limits(REJECT_ALL).custom_attributes({"items": long_list}, "e1", "a b", [])
    assert info.value.field == "custom_attributes.items"


def test_value_of_4097_chars_is_rejected_naming_the_attribute() -> None:
    with pytest.raises(LimitExceededError) as info:
        Limits(REJECT_ALL).user_attributes({"bio": "v" * 4097}, "ev-3", "form submit", [])
    assert info.value.limit == "attribute_value_length"
    assert info.value.field == "user_attributes.bio"
    assert "'ev-3'" in str(info.value) and "4097" in str(info.value)


# ------------------------------------------------------- user attributes: 100 per batch


@pytest.mark.parametrize("policy", [TRUNCATE_ALL, REJECT_ALL])
def test_100_user_attributes_pass(policy: Any) -> None:
    assert len(Limits(policy).user_attributes(_attributes(100), "e1", "a b", [])) == 100


def test_101_user_attributes_keep_the_first_100() -> None:
    notes: list[str] = []
    out = Limits(TRUNCATE_ALL).user_attributes(_attributes(101), "e1", "a b", notes)
    assert list(out) == [f"k{i}" for i in range(100)]
    assert notes == ["user_attributes_count"]


def test_101_user_attributes_are_rejected() -> None:
    with pytest.raises(LimitExceededError) as info:
        Limits(REJECT_ALL).user_attributes(_attributes(101), "ev-4", "a b", [])
    assert info.value.limit == "user_attributes_count"
    assert "'ev-4'" in str(info.value)


def test_user_attribute_values_become_scalars_or_string_lists() -> None:
    out = Limits().user_attributes(
        {"n": None, "d": {"a": 1}, "l": ["a", 1, True, None, {"b": 2}], "f": 2.5}, "e1", "a b", []
    )
    assert out == {"d": '{"a":1}', "l": ["a", "1", "true", '{"b":2}'], "f": 2.5}


# ------------------------------------------------------------- batch bytes: 128 KB


def test_batch_of_exactly_128_kb_passes_and_one_byte_more_is_rejected() -> None:
    check_batch_bytes(128 * 1024, "e1", "a b")
    with pytest.raises(LimitExceededError) as info:
        check_batch_bytes(128 * 1024 + 1, "ev-5", "big event")
    assert info.value.limit == "batch_bytes"
    assert "'ev-5'" in str(info.value) and "'big event'" in str(info.value)
    assert "131073" in str(info.value)
